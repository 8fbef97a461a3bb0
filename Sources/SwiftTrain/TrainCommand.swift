import ArgumentParser
import Foundation
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a model (the default command).")

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: ArgumentHelp("Run directory (default: runs/<config>-<UTC time>; never overwritten). With --resume: the run to continue in (its own directory), or a new one.", valueName: "dir"))
    var out: String?

    @Option(name: .long, help: ArgumentHelp("Resume from a checkpoint directory, a run directory (its latest checkpoint), or `latest` (the latest checkpoint of --out if given, else of the newest run under runs/). Any world size and ZeRO stage; the checkpoint's config is used unless --config is given, then --set applies.", valueName: "path"))
    var resume: String?

    mutating func run() throws {
        let launch = LaunchEnvironment.current()
        let isRoot = launch.rank == 0
        // Phase 1, before MPI: everything that can fail because of the user's input, on every rank, writing
        // nothing. An error is kept, not thrown: every rank must take part in the agreement below.
        var prepared: PreparedRun?
        var inputError: Error?
        do {
            prepared = try PreparedRun(configPath: options.config, overrides: options.overrides, out: out, resume: resume,
                                       isRoot: isRoot, worldSize: launch.worldSize)
        }
        catch { inputError = error }
        let blasThreads = launch.configureBLASThreads()

        // Phase 2: MPI.
        do {
            MPISession.startWatchdog(timeout: prepared?.plan.config.hangTimeout, launch: launch)
            let comm = try MPISession.start(expecting: launch)
            // Building the trainer restores the checkpoint, locally and without communicating: a checkpoint that
            // cannot be restored (another optimizer, a missing state) is still an input error.
            var trainer: Trainer?
            var populationTrainer: PopulationTrainer?  // train.method es/ga/sa: its own loop, one loss all-reduce per step
            if let prepared {
                do {
                    if prepared.plan.config.population != nil {
                        populationTrainer = try PopulationTrainer(plan: prepared.plan, comm: comm, resume: prepared.populationCheckpoint)
                    } else {
                        trainer = try Trainer(plan: prepared.plan, comm: comm, resume: prepared.checkpoint)
                    }
                } catch { inputError = error }
            }
            try MPISession.agreeOnInput(inputError, comm: comm)
            guard let prepared, trainer != nil || populationTrainer != nil else {
                preconditionFailure("no input error, so the run was prepared")
            }
            let config = prepared.plan.config

            // Phase 3: only now is anything written. Rank 0 claims the run directory; a claim that fails (another
            // run took it in the meantime) stops every rank alike.
            var runDirectory: RunDirectory?
            var claimError: Error?
            if isRoot { do { runDirectory = try prepared.claimRunDirectory() } catch { claimError = error } }
            try MPISession.agreeOnInput(claimError, comm: comm)
            // The default run directory name has rank 0's clock in it: every rank takes rank 0's.
            let runPath = try MPISession.broadcast(runDirectory?.path ?? "", comm: comm)
            StopRequest.install()
            MPISession.publishHeartbeats(runDirectory: runPath)
            let console = isRoot ? Console() : nil
            if let runDirectory, let console {
                let header = """
                swift-train \(swiftTrainVersion) · \(MPISession.libraryVersion)
                world size \(comm.size) · BLAS threads per rank \(blasThreads) · global batch \(config.globalBatch) \
                = \(comm.size) ranks × \(config.gradAccum) micro-batches × \(config.split.isEven ? "" : "≤ ")\(config.split.largestMicroBatch)\
                \(config.split.isEven ? "" : " (uneven shares, each gradient scaled by 1/\(config.globalBatch))")\
                \(config.batchSchedule.kind == .fixed ? "" : " · train.batch_schedule \(config.batchSchedule.kind.rawValue) up to \(config.batchSchedule.largestBatch)")
                run directory \(runDirectory.path)
                """
                console.line(header)
                console.line("resolved config:\n" + config.resolved.yaml())
                try runDirectory.write("config.yaml", text: config.resolved.yaml(header: "resolved configuration of this run; rerun with --config \(runDirectory.path)/config.yaml"))
            }
            if let populationTrainer {
                populationTrainer.output = runDirectory
                populationTrainer.console = console
                populationTrainer.checkpointRoot = runPath
                if let resumed = prepared.populationCheckpoint {
                    console?.line("resumed from \(resumed.path) at step \(resumed.manifest.step)")
                }
                console?.line("model: \(prepared.plan.task.modelDescription), \(populationTrainer.params.count) parameters · " +
                              "\(populationTrainer.method.name), \(populationTrainer.method.populationSize) evaluations per step · " +
                              "\(populationTrainer.totalSteps) steps")
                let summary = try populationTrainer.run()
                if let runDirectory, let console {
                    try runDirectory.write("summary.json", text: summary.json(config: config, mpiLibrary: MPISession.libraryVersion).pretty)
                    if config.saveModel { try runDirectory.write("model.safetensors", populationTrainer.modelSafeTensors()) }
                    console.line(String(format: "done: %d steps in %@ · test accuracy %.4f · test loss %.4f · %@",
                                        summary.steps, formatDuration(summary.wallSeconds), summary.evalAccuracy,
                                        summary.evalLoss, runDirectory.path))
                }
                MPISession.finalize()
                return
            }
            guard let trainer else { preconditionFailure("a gradient run has a trainer") }
            trainer.output = runDirectory
            trainer.console = console
            trainer.checkpointRoot = runPath
            if let checkpoint = prepared.checkpoint, let console {
                console.line("resumed from \(checkpoint.path) at step \(checkpoint.manifest.step) " +
                             "(written by \(checkpoint.manifest.worldSize) ranks at ZeRO stage \(checkpoint.manifest.zeroStage))")
                let changes = prepared.configChanges
                console.line(changes.isEmpty ? "configuration: as the checkpoint's"
                                             : "configuration changed from the checkpoint's: " + changes.joined(separator: "; "))
                if let preserved = runDirectory?.preserved {
                    console.line("kept what this run replaces (later metrics lines, config, summary, model) in \(preserved)")
                }
            }
            if let console {
                let groups = trainer.engine.plan.groups.map { "\($0.name) (\($0.range.count) parameters)" }.joined(separator: ", ")
                console.line("model: \(prepared.plan.task.modelDescription), \(trainer.model.table.count) parameters · optimizers: \(groups) · " +
                             "ZeRO stage \(config.zeroStage) · \(trainer.totalSteps) steps")
            }
            let summary = try trainer.run()
            if let runDirectory, let console {
                try runDirectory.write("summary.json", text: summary.json(config: config, mpiLibrary: MPISession.libraryVersion).pretty)
                if config.saveModel {
                    try runDirectory.write("model.safetensors", trainer.modelSafeTensors())
                }
                console.line(String(format: "done: %d steps in %@ · test accuracy %.4f · test loss %.4f · %.0f samples/s · %@",
                                    summary.steps, formatDuration(summary.wallSeconds), summary.evalAccuracy, summary.evalLoss,
                                    summary.samplesPerSecond, runDirectory.path))
            }
            MPISession.finalize()
        } catch is InputRejected {
            // Rank 0 has printed every rank's message; all ranks stop here together.
            MPISession.finalize()
            throw ExitCode(inputErrorStatus)
        } catch let stopped as TrainingStopped {
            // Rank 0 has already reported why (before the ranks' last barrier).
            MPISession.finalize()
            throw ExitCode(stopped.exitCode)
        } catch {
            printError("error (rank \(launch.rank)): \(error)")
            MPISession.abort(code: 1)
        }
    }
}
