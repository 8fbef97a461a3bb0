import ArgumentParser
import Experiments
import Foundation
import Training

/// `swift-train branch RUN`: the critical batch size during training, measured by branching (Merrill et al. 2025):
/// from RUN's checkpoints at `--steps`, one short run per `--batches` value for `--examples` examples each, then
/// the CBS per checkpoint by `CriticalBatchRule`. docs/batch-size.md documents it.
struct Branch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Branch a run's checkpoints to several batch sizes and report the critical batch size at each.",
        discussion: """
        Launch once for all branches: `launch/mpirun -n 2 swift-train branch runs/fashion --steps 200,800 --batches \
        64,256,1024 --examples 30000`. Each branch resumes the checkpoint (parameters and optimizer state) with its \
        batch (accumulation from --max-rank-batch, peak lr scaled by --lr-scaling from the run's batch, held \
        constant), trains --examples examples and is evaluated once. Results: <out>/results.csv (one row per \
        branch) and <out>/cbs.csv (the CBS per checkpoint: the largest batch whose final eval loss, and that of every \
        smaller batch, is within --tolerance of the smallest batch's), rewritten atomically after each branch. \
        Running the same command again skips finished branches.
        """)

    @Argument(help: ArgumentHelp("The run directory (with checkpoints/step-N).", valueName: "run"))
    var runDirectory: String

    @Option(name: .long, help: ArgumentHelp("Checkpoint steps to branch from, comma-separated.", valueName: "s1,s2"))
    var steps: String

    @Option(name: .long, help: ArgumentHelp("Global batch sizes of the branches, comma-separated.", valueName: "b1,b2"))
    var batches: String

    @Option(name: .long, help: ArgumentHelp("Training examples per branch.", valueName: "n"))
    var examples: Int

    @Option(name: .long, help: ArgumentHelp("Relative loss tolerance of the CBS rule (default 0.01).", valueName: "x"))
    var tolerance = 0.01

    @Option(name: .long, help: ArgumentHelp("lr rule from the reference batch: none, linear or sqrt (default sqrt).", valueName: "rule"))
    var lrScaling = "sqrt"

    @Option(name: .long, help: ArgumentHelp("Reference batch of the lr rule (default: the run's train.global_batch).", valueName: "B"))
    var referenceBatch: Int?

    @Option(name: .long, help: ArgumentHelp("Largest per-rank micro-batch; sets train.grad_accum (default 512).", valueName: "n"))
    var maxRankBatch = 512

    @Option(name: .long, help: ArgumentHelp("Output directory (default: <run>/branches).", valueName: "dir"))
    var out: String?

    mutating func run() throws {
        let launch = LaunchEnvironment.current()
        let isRoot = launch.rank == 0
        // Phase 1, before MPI: every branch derived and validated on every rank; the error is kept for the agreement.
        var plan: BranchPlan?
        var inputError: Error?
        let factory = CachedTaskFactory()
        do {
            let list = { (flag: String, text: String) throws -> [Int] in
                let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else {
                    throw ConfigError("\(flag) '\(text)': give comma-separated integers, e.g. \(flag) 100,400")
                }
                return values.map { $0! }
            }
            guard let rule = LRScaling(rawValue: lrScaling) else { throw ConfigError("--lr-scaling '\(lrScaling)' must be none, linear or sqrt") }
            plan = try BranchPlan(runPath: runDirectory, steps: list("--steps", steps), batches: list("--batches", batches), examples: examples,
                                  tolerance: tolerance, lrScaling: rule, referenceBatch: referenceBatch, maxRankBatch: maxRankBatch,
                                  worldSize: launch.worldSize, datasetSize: { try factory.make($0).rowsPerEpoch })
        } catch {
            inputError = error
        }
        let path = out ?? "\(runDirectory)/branches"
        _ = launch.configureBLASThreads()
        do {
            let comm = try MPISession.start(expecting: launch)
            try MPISession.agreeOnInput(inputError, comm: comm)
            guard let plan else { preconditionFailure("no input error, so the branches were planned") }
            var directoryError: Error?
            if isRoot { do { try createFolders("\(path)/branches", what: "branch directory") } catch { directoryError = error } }
            try MPISession.agreeOnInput(directoryError, comm: comm)
            StopRequest.install()
            let console = isRoot ? Console() : nil
            console?.line("swift-train \(swiftTrainVersion) branch \(runDirectory) · \(plan.branches.count) branches · world size \(comm.size) · \(path)")
            let runner = BranchRunner(plan: plan, comm: comm, out: isRoot ? path : nil, console: console, taskFactory: factory.factory)
            runner.mpiLibrary = MPISession.libraryVersion
            let rows = try runner.run()
            for r in rows {
                console?.line("step \(r.step) (\(r.examples) examples): CBS \(r.cbs.map(String.init) ?? "undefined") · smallest-batch loss " +
                              String(format: "%.4f", r.referenceLoss) + (r.noiseScale.map { String(format: " · B_simple %.0f", $0) } ?? ""))
            }
            console?.line("results: \(path)/results.csv, \(path)/cbs.csv")
            MPISession.finalize()
        } catch is InputRejected {
            MPISession.finalize()
            throw ExitCode(inputErrorStatus)
        } catch let stopped as TrainingStopped {
            MPISession.finalize()
            if isRoot { printError("branching interrupted; run the same command again to resume") }
            throw ExitCode(stopped.exitCode)
        } catch {
            printError("error (rank \(launch.rank)): \(error)")
            MPISession.abort(code: 1)
        }
    }
}
