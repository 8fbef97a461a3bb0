import ArgumentParser
import Experiments
import Foundation
import Training

/// `swift-train search`: hyper-parameter search (random or TPE sampling, optional ASHA pruning) over any
/// configuration keys, trials trained on rank groups; or, with --function, a sampler on a test function without
/// training. docs/search.md documents the search file.
struct Search: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Hyper-parameter search: random or TPE sampling, successive-halving (ASHA) pruning, trials on rank groups.",
        discussion: """
        `launch/mpirun -n 2 swift-train search --config configs/searches/fashion-tpe.yaml --ranks-per-trial 1` trains \
        trials two at a time, one per rank. Results: <out>/results.csv and results.json, each trial's run in \
        <out>/trials/NNNN/. Running the same command again resumes. `swift-train search --function branin --sampler \
        tpe --trials 60 --seed 0` runs a sampler on a test function (no MPI, no training). See docs/search.md.
        """)

    @Option(name: .long, help: ArgumentHelp("Search file (configs/searches/*.yaml).", valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Search directory (default: runs/searches/<name>; an existing one is resumed).", valueName: "dir"))
    var out: String?

    @Option(name: .long, help: ArgumentHelp("Ranks that train each trial (default: all); must divide the world size.", valueName: "k"))
    var ranksPerTrial: Int?

    @Option(name: .long, help: ArgumentHelp("Test function instead of training: \(SearchTestFunction.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "name"))
    var function: String?

    @Option(name: .long, help: ArgumentHelp("With --function: random or tpe.", valueName: "kind"))
    var sampler = "tpe"

    @Option(name: .long, help: ArgumentHelp("With --function: number of trials.", valueName: "n"))
    var trials = 60

    @Option(name: .long, help: ArgumentHelp("With --function: sampler seed.", valueName: "n"))
    var seed = 0

    mutating func run() throws {
        if let function { return try runFunction(function) }
        let launch = LaunchEnvironment.current()
        let isRoot = launch.rank == 0
        // Phase 1, before MPI: the search file, the group size and both ends of the space validated on every rank.
        var spec: SearchSpec?
        let factory = CachedTaskFactory()
        var groupSize = launch.worldSize
        var inputError: Error?
        do {
            guard let config else { throw ConfigError("search needs --config <search file> (or --function NAME for a test function)") }
            let s = try SearchSpec.load(path: config)
            groupSize = try RankGroups.groupSize(ranksPerTrial, worldSize: launch.worldSize)
            for corner in [s.space.map { Self.corner($0.distribution, high: false) }, s.space.map { Self.corner($0.distribution, high: true) }] {
                do { _ = try SearchRunner.plan(spec: s, params: corner, groupSize: groupSize, taskFactory: factory.factory) } catch {
                    throw ConfigError("\(config): a trial at the \(corner == s.space.map { Self.corner($0.distribution, high: false) } ? "low" : "high") " +
                                      "end of the space is invalid: \(error)")
                }
            }
            spec = s
        } catch {
            inputError = error
        }
        let path = out ?? "runs/searches/\(spec?.name ?? "search")"
        _ = launch.configureBLASThreads()

        // Phase 2: MPI.
        try runMPIPhase(launch, interrupted: "search interrupted; run the same command again to resume") {
            let world = try MPISession.start(expecting: launch)
            try MPISession.agreeOnInput(inputError, comm: world)
            guard let spec else { preconditionFailure("no input error, so the search was read") }
            let group = try RankGroups.split(world, groupSize: groupSize)
            let runner = SearchRunner(spec: spec, world: world, group: group, taskFactory: factory.factory)
            var stored: [SearchRecord] = []
            var directoryError: Error?
            if isRoot { do { stored = try SearchResults.open(path: path, spec: spec, rungs: runner.rungCount) } catch { directoryError = error } }
            try MPISession.agreeOnInput(directoryError, comm: world)
            StopRequest.install()
            runner.directoryPath = path
            runner.console = isRoot ? Console() : nil
            runner.mpiLibrary = MPISession.libraryVersion
            runner.console?.line("""
            swift-train \(swiftTrainVersion) search '\(spec.name)' · \(spec.sampler.rawValue) sampler, seed \(spec.seed) · \
            \(spec.pruner.map { "successive halving η=\($0.reductionFactor), rungs \($0.rungs)" } ?? "no pruner") · \(spec.trials) trials
            world size \(world.size) in \(world.size / group.size) group(s) of \(group.size) rank(s) · directory \(path)
            """)
            let records = try runner.run(stored: stored)
            if let best = records.min(by: { $0.score < $1.score }) {
                runner.console?.line("best: trial \(best.trial), \(spec.metric) \(spec.maximize ? -best.score : best.score) · " +
                                     "\(records.reduce(0) { $0 + $1.examples }) examples trained · \(path)/results.csv")
            }
        }
    }

    static func corner(_ d: SearchDistribution, high: Bool) -> Double {
        switch d {
        case let .uniform(l, h), let .logUniform(l, h): return high ? h : l
        case let .int(l, h): return Double(high ? h : l)
        case let .categorical(c): return high ? Double(c.count - 1) : 0
        }
    }

    /// --function: sequential trials on a test function, written as results.csv (one process, no MPI).
    func runFunction(_ name: String) throws {
        guard let f = SearchTestFunction(rawValue: name) else {
            printError("error: --function \(name) is not a test function; use one of \(SearchTestFunction.allCases.map(\.rawValue).joined(separator: ", "))")
            throw ExitCode(inputErrorStatus)
        }
        guard let kind = SamplerKind(rawValue: sampler) else {
            printError("error: --sampler \(sampler) must be random or tpe")
            throw ExitCode(inputErrorStatus)
        }
        guard trials >= 1, seed >= 0 else {
            printError("error: --trials must be ≥ 1 and --seed ≥ 0")
            throw ExitCode(inputErrorStatus)
        }
        let s = SearchSampler(kind: kind, space: f.space, seed: UInt64(seed))
        var best = Double.infinity
        var lines = ["trial," + f.space.map(\.name).joined(separator: ",") + ",value,best_so_far"]
        for (t, r) in s.minimize(f, trials: trials).enumerated() {
            best = min(best, r.value)
            lines.append("\(t)," + r.params.map { "\($0)" }.joined(separator: ",") + ",\(r.value),\(best)")
        }
        let text = lines.joined(separator: "\n") + "\n"
        if let out {
            try createFolders(out, what: "search directory")
            try writeAtomically(Data(text.utf8), to: "\(out)/results.csv")
            print("\(name) · \(kind.rawValue) · seed \(seed) · \(trials) trials · best \(best) · \(out)/results.csv")
        } else {
            print(text, terminator: "")
        }
    }
}
