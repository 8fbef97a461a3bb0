import ArgumentParser
import Foundation
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a model (the default command).")

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: ArgumentHelp("Run directory (default: runs/<config>-<UTC time>; never overwritten).", valueName: "dir"))
    var out: String?

    @Option(name: .long, help: ArgumentHelp("Resume from a checkpoint directory, a run directory (its latest checkpoint), or `latest`. Any world size and ZeRO stage; the checkpoint's config is used unless --config is given, then --set applies.", valueName: "path"))
    var resume: String?

    mutating func run() throws {
        let launch = LaunchEnvironment.current()
        let isRoot = launch.rank == 0
        // Phase 1, before MPI: everything that can fail because of the user's input. Each rank checks the same
        // inputs; a failure exits non-zero here and mpirun ends the job, so no rank is left waiting in a collective.
        let config: TrainConfig
        let plan: TrainingPlan
        var runDirectory: RunDirectory?
        var checkpoint: LoadedCheckpoint?
        var populationResume: LoadedPopulationCheckpoint?
        var runPath = ""
        do {
            var resolved: ResolvedConfig
            if let resume, let path = PopulationCheckpoint.find(resume) {
                // A population run (train.method es/ga/sa): its own checkpoint format, replicated state.
                let loaded = try PopulationCheckpoint.load(path)
                populationResume = loaded
                resolved = ResolvedConfig(name: "resumed")
                if options.config == nil {
                    try resolved.merge(yaml: loaded.manifest.config, source: "\(path)/population.json (config)")
                    for assignment in options.overrides { try resolved.override(assignment) }
                } else {
                    resolved = try options.resolve()
                }
            } else if let resume {
                let path = try Checkpoint.resolve(resume)
                checkpoint = try Checkpoint.load(path)
                if options.config == nil {
                    // The checkpoint's own configuration, then this command's --set overrides.
                    resolved = ResolvedConfig(name: "resumed")
                    try resolved.merge(yaml: checkpoint!.manifest.config, source: "\(path)/manifest.json (config)")
                    for assignment in options.overrides { try resolved.override(assignment) }
                } else {
                    resolved = try options.resolve()
                }
            } else {
                resolved = try options.resolve()
            }
            if let out { try resolved.set("output.dir", raw: out, source: "--out") }
            config = try TrainConfig(resolved, worldSize: launch.worldSize)
            if resume != nil && (config.population != nil) != (populationResume != nil) {
                throw ConfigError("--resume \(resume ?? ""): the checkpoint is from a " +
                                  (populationResume != nil ? "population run" : "gradient run") +
                                  " but train.method = \(resolved.string("train.method")); resume with the method that wrote it")
            }
            plan = try TrainingPlan(config: config)  // data, model, steps and optimizer groups, validated once
            // The same model check Trainer makes, here before any rank communicates.
            try checkpoint?.checkModel(plan.task.model.table, description: plan.task.modelDescription)
            if let populationResume, out == nil {
                runPath = URL(fileURLWithPath: populationResume.path).deletingLastPathComponent().deletingLastPathComponent().path
                if isRoot { runDirectory = try RunDirectory(resuming: runPath, atStep: populationResume.manifest.step) }
            } else if let checkpoint, out == nil {
                runPath = URL(fileURLWithPath: checkpoint.path).deletingLastPathComponent().deletingLastPathComponent().path
                if isRoot {
                    runDirectory = try RunDirectory(resuming: runPath, atStep: checkpoint.manifest.step,
                                                    tensorboard: resolved.bool("output.tensorboard"))
                }
            } else {
                runPath = config.outputDirectory.isEmpty ? RunDirectory.defaultPath(name: resolved.name) : config.outputDirectory
                if isRoot { runDirectory = try RunDirectory(path: runPath, tensorboard: resolved.bool("output.tensorboard")) }
            }
        } catch {
            throw failedBeforeMPI(error, isRoot: isRoot)
        }
        let blasThreads = launch.configureBLASThreads()

        // Phase 2: MPI.
        do {
            let comm = try MPISession.start(expecting: launch)
            // The default run directory name has rank 0's clock in it: every rank takes rank 0's.
            runPath = try MPISession.broadcast(runPath, comm: comm)
            StopRequest.install()
            let console = isRoot ? Console() : nil
            if let runDirectory, let console {
                let header = """
                swift-train \(swiftTrainVersion) · \(MPISession.libraryVersion)
                world size \(comm.size) · BLAS threads per rank \(blasThreads) · global batch \(config.globalBatch) \
                = \(comm.size) ranks × \(config.gradAccum) micro-batches × \(config.split.isEven ? "" : "≤ ")\(config.microBatch)\
                \(config.split.isEven ? "" : " (uneven shares, each gradient scaled by 1/\(config.globalBatch))")
                run directory \(runDirectory.path)
                """
                console.line(header)
                console.line("resolved config:\n" + config.resolved.yaml())
                try runDirectory.write("config.yaml", text: config.resolved.yaml(header: "resolved configuration of this run; rerun with --config \(runDirectory.path)/config.yaml"))
            }
            if config.population != nil {
                // Gradient-free training: its own loop (no gradient engine, one loss all-reduce per step).
                let trainer = try PopulationTrainer(plan: plan, comm: comm, output: runDirectory, console: console,
                                                    resume: populationResume)
                trainer.checkpointRoot = runPath
                if let populationResume {
                    console?.line("resumed from \(populationResume.path) at step \(populationResume.manifest.step)")
                }
                console?.line("model: \(plan.task.modelDescription), \(trainer.params.count) parameters · \(trainer.method.name), " +
                              "\(trainer.method.populationSize) evaluations per step · \(trainer.totalSteps) steps")
                let summary = try trainer.run()
                if let runDirectory, let console {
                    try runDirectory.write("summary.json", text: summary.json(config: config, mpiLibrary: MPISession.libraryVersion).pretty)
                    if config.saveModel { try runDirectory.write("model.safetensors", trainer.modelSafeTensors()) }
                    console.line(String(format: "done: %d steps in %@ · test accuracy %.4f · test loss %.4f · %@",
                                        summary.steps, formatDuration(summary.wallSeconds), summary.evalAccuracy,
                                        summary.evalLoss, runDirectory.path))
                }
                MPISession.finalize()
                return
            }
            let trainer = try Trainer(plan: plan, comm: comm, output: runDirectory, console: console,
                                      resume: checkpoint)
            trainer.checkpointRoot = runPath
            if let checkpoint, let console {
                console.line("resumed from \(checkpoint.path) at step \(checkpoint.manifest.step) " +
                             "(written by \(checkpoint.manifest.worldSize) ranks at ZeRO stage \(checkpoint.manifest.zeroStage))")
            }
            if let console {
                let groups = trainer.engine.plan.groups.map { "\($0.name) (\($0.range.count) parameters)" }.joined(separator: ", ")
                console.line("model: \(plan.task.modelDescription), \(trainer.model.table.count) parameters · optimizers: \(groups) · " +
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

