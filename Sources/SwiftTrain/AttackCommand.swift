import ArgumentParser
import Foundation
import Training

/// `swift-train attack RUN`: clean and robust test accuracy of a trained classifier under FGSM and PGD.
struct Attack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a trained classifier under FGSM and PGD adversarial attacks (ε in pixel units).",
        discussion: """
        Each rank attacks a contiguous share of the test set; the accuracies are combined with one all-reduce. \
        Writes <out>/attack.json and <out>/adversarial.svg (the first --images test examples, clean and attacked). \
        Example: launch/mpirun -n 4 swift-train attack runs/<run> --eps 0.05,0.1,0.2 --steps 10. See docs/gradient-free.md.
        """)

    @Argument(help: "Run directory (its latest checkpoint), a checkpoint directory, or `latest`.")
    var runDirectory: String

    @Option(help: ArgumentHelp("Comma-separated ε values in pixel units ([0, 1] images).", valueName: "list"))
    var eps = "0.05,0.1,0.2"

    @Option(help: ArgumentHelp("Comma-separated attacks: fgsm, pgd.", valueName: "list"))
    var method = "fgsm,pgd"

    @Option(help: "PGD steps.")
    var steps = 10

    @Option(name: .customLong("step-size"), help: "PGD step α in pixel units (default 2.5ε/steps).")
    var stepSize: Float?

    @Flag(name: .customLong("no-random-start"), help: "Start PGD at the clean input instead of a uniform point of the ε-ball.")
    var noRandomStart = false

    @Option(help: "Attack only the first N test examples (0: all 10,000).")
    var limit = 0

    @Option(help: "Test examples drawn in adversarial.svg.")
    var images = 8

    @Option(help: "PGD random-start seed.")
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("Output directory (default: <run>/attack).", valueName: "dir"))
    var out: String?

    func request() throws -> AttackRequest {
        try AttackRequest(run: runDirectory, epsilonList: eps, methodList: method, steps: steps, stepSize: stepSize,
                          randomStart: !noRandomStart, limit: limit, images: images, out: out, seed: seed)
    }

    func run() throws {
        let launch = LaunchEnvironment.current()
        let isRoot = launch.rank == 0
        // Before MPI: the checkpoint, its model, the data and the settings (every rank alike).
        let plan: AttackPlan
        // An input error: the entry point prints it and exits 2 (every rank meets the same one, before MPI).
        do { plan = try AttackPlan(try request()) } catch let error as ConfigError { throw error } catch let error as CheckpointError {
            throw error
        } catch { throw ConfigError("\(error)") }
        _ = launch.configureBLASThreads()
        do {
            let comm = try MPISession.start(expecting: launch)
            let console = isRoot ? Console() : nil
            console?.line("attacking \(plan.checkpointPath) (\(plan.model.widths.map(String.init).joined(separator: "-")) MLP) on \(comm.size) ranks: " +
                          "\(plan.examples) test examples × \(plan.attacks.count) attacks")
            let start = Date().timeIntervalSince1970
            let report = try AttackRunner.run(plan, comm: comm) { console?.progress($0, now: Date().timeIntervalSince1970 - start) }
            if let console {
                try FileManager.default.createDirectory(atPath: plan.outputDirectory, withIntermediateDirectories: true)
                try report.json(checkpoint: plan.checkpointPath).pretty.write(toFile: "\(plan.outputDirectory)/attack.json", atomically: true, encoding: .utf8)
                if plan.request.images > 0 {
                    try AttackRunner.imageGrid(plan, count: plan.request.images).write(to: "\(plan.outputDirectory)/adversarial.svg")
                }
                console.line(report.table())
                console.line("wrote \(plan.outputDirectory)/attack.json" + (plan.request.images > 0 ? " and adversarial.svg" : ""))
            }
            MPISession.finalize()
        } catch {
            printError("error (rank \(launch.rank)): \(error)")
            MPISession.abort(code: 1)
        }
    }
}
