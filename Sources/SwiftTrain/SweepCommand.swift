import ArgumentParser
import Foundation
import Experiments
import Training

/// `swift-train sweep`: every point of a sweep file's grid, one after another in one MPI job, each trained to the
/// sweep's target within its budget; results in <out>/results.csv. docs/batch-size.md documents the sweep file.
struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a grid of training runs (e.g. batch sizes × optimizers × learning rates) to a target.",
        discussion: """
        Launch once for all points: `launch/mpirun -n 2 swift-train sweep --config configs/sweeps/smoke.yaml`. Every \
        point is validated for the world size before MPI starts. Each point writes <out>/points/<name>/ (config.yaml, \
        metrics.jsonl, summary.json) and a row of <out>/results.csv. Running the same command again resumes: points \
        with a summary.json are skipped. Then `swift-train report <out>`. See docs/batch-size.md.
        """)

    @Option(name: .long, help: ArgumentHelp("Sweep file (configs/sweeps/*.yaml).", valueName: "file"))
    var config: String

    @Option(name: .long, help: ArgumentHelp("Sweep directory (default: runs/sweeps/<sweep name>; an existing one is resumed).", valueName: "dir"))
    var out: String?

    @Flag(name: .long, help: "Print every point's derived settings and exit (no MPI, no training).")
    var dryRun = false

    @Flag(name: .long, help: "Print each point's training progress, not only one line per point.")
    var verbose = false

    @Option(name: .long, help: ArgumentHelp("Ranks that train each point (default: all): the job's ranks form world/k groups, each training one point at a time, points handed out as groups finish. Must divide the world size. See docs/search.md.", valueName: "k"))
    var ranksPerTrial: Int?

    mutating func run() throws {
        let launch = LaunchEnvironment.current()
        let isRoot = launch.rank == 0
        // Phase 1, before MPI: the whole sweep is validated on every rank, writing nothing. An error is kept, not
        // thrown: every rank must take part in the agreement below, so a point bad on one rank stops them all.
        var plan: SweepPlan?
        let factory = CachedTaskFactory()
        var directory: SweepDirectory?
        var path = ""
        var inputError: Error?
        do {
            let spec = try SweepSpec.load(path: config)
            let groupSize = try RankGroups.groupSize(ranksPerTrial, worldSize: launch.worldSize)
            plan = try SweepPlan(spec: spec, worldSize: groupSize, taskFactory: factory.factory)
            path = out ?? "runs/sweeps/\(spec.name)"
        } catch {
            inputError = error
        }
        if dryRun {
            // No MPI: a dry run only prints, so a rank's error is its own.
            if let inputError { throw inputError }
            if isRoot, let plan { print(Self.describe(plan, path: path)) }
            return
        }
        let blasThreads = launch.configureBLASThreads()

        // Phase 2: MPI, once for every point.
        try runMPIPhase(launch, interrupted: "sweep interrupted; run the same command again to resume") {
            let world = try MPISession.start(expecting: launch)
            try MPISession.agreeOnInput(inputError, comm: world)
            guard let plan else { preconditionFailure("no input error, so the sweep was planned") }
            let comm = try RankGroups.split(world, groupSize: plan.worldSize)
            // Only now is anything written: rank 0 opens the sweep directory, and a failure stops every rank alike.
            var directoryError: Error?
            if isRoot { do { directory = try SweepDirectory(path: path, plan: plan) } catch { directoryError = error } }
            try MPISession.agreeOnInput(directoryError, comm: world)
            StopRequest.install()
            let console = isRoot ? Console() : nil
            if let directory, let console {
                let resumed = directory.finished.count
                console.line("""
                swift-train \(swiftTrainVersion) sweep '\(plan.spec.name)' · \(MPISession.libraryVersion)
                world size \(world.size)\(world.size > comm.size ? " in \(world.size / comm.size) groups of \(comm.size) rank(s)" : "") · BLAS threads per rank \(blasThreads) · \(plan.points.count) points\
                \(resumed > 0 ? " (\(resumed) finished earlier)" : "") · target \(plan.spec.target?.description ?? "none")
                sweep directory \(directory.path)
                """)
            }
            let runner = SweepRunner(plan: plan, comm: comm, taskFactory: factory.factory, directory: directory, console: console)
            runner.verbose = verbose
            runner.mpiLibrary = MPISession.libraryVersion
            runner.sweepPath = path
            if world.size > comm.size { runner.world = world }
            let rows = try runner.run()
            if let console {
                let outcome = plan.spec.target == nil ? "trained to their budget"
                    : "\(rows.filter(\.reached).count) reached the target"
                console.line("done: \(rows.count) points, \(outcome) · \(path)/results.csv · " +
                             "report: swift-train report \(path)")
            }
        }
    }

    /// The --dry-run table: each point's derived settings.
    static func describe(_ plan: SweepPlan, path: String) -> String {
        var out = "sweep '\(plan.spec.name)': \(plan.points.count) points for \(plan.worldSize) rank(s) · target " +
            "\(plan.spec.target?.description ?? "none") · directory \(path)\n"
        out += "  #  point                                     batch  accum  lr          warmup  eval_every  max steps\n"
        var totalExamples = 0
        for p in plan.points {
            let c = p.config
            let name = p.name.count >= 40 ? p.name : p.name.padding(toLength: 40, withPad: " ", startingAt: 0)
            let lr = String(format: "%.4g", c.lr).padding(toLength: 10, withPad: " ", startingAt: 0)
            out += String(format: "%3d  ", p.index + 1) + name + "  " + String(format: "%5d  %5d  ", c.globalBatch, c.gradAccum) + lr +
                String(format: "  %6d  %10d  %9d", c.warmupSteps, c.evalEvery, p.totalSteps)
            out += p.groupLRs.isEmpty ? "\n" : "  (\(p.groupLRs))\n"
            totalExamples += p.totalSteps * c.globalBatch
        }
        out += "budget if no point stops early: \(totalExamples) training examples in all"
        return out
    }
}
