import Foundation

/// A training run as the `train` command prepares it before MPI starts, on every rank alike: the configuration
/// (the checkpoint's when resuming, unless a file is given), the validated plan, the checkpoint to continue from,
/// and where the run directory will be. Nothing is written: `claimRunDirectory()` does that, on rank 0, once every
/// rank agreed the input is good.
public struct PreparedRun {
    public let plan: TrainingPlan
    public let checkpoint: LoadedCheckpoint?
    /// A population run's checkpoint (train.method es/ga/sa: its own format, replicated state), when resuming one.
    public let populationCheckpoint: LoadedPopulationCheckpoint?
    /// The run directory: the checkpoint's own run when continuing in place, else `--out` or a default name.
    public let runPath: String?
    /// Whether the run continues in the directory its checkpoint belongs to.
    public let continuesInPlace: Bool
    /// "key: old → new" for every key this run sets differently from the checkpoint's configuration.
    public let configChanges: [String]
    private let defaultName: String
    /// `output.tensorboard`.
    private let tensorboard: Bool

    /// - Parameters:
    ///   - configPath, overrides: `--config` and the `--set` assignments.
    ///   - out: `--out`; with `resume`, the directory of the checkpoint's own run means "continue it there".
    ///   - resume: `--resume` (a checkpoint, a run directory, or `latest`).
    ///   - isRoot: rank 0 checks the run directory (only it writes there).
    public init(configPath: String?, overrides: [String], out: String?, resume: String?, isRoot: Bool, worldSize: Int) throws {
        var resolved = try configPath.map(ResolvedConfig.load(path:)) ?? ResolvedConfig()
        var checkpoint: LoadedCheckpoint?
        var population: LoadedPopulationCheckpoint?
        var saved: ResolvedConfig?
        /// The checkpoint's own configuration: this run's unless a file is given (then only compared with it).
        func adoptSaved(_ yaml: String, source: String) throws {
            var original = ResolvedConfig(name: "resumed")
            try original.merge(yaml: yaml, source: source)
            if configPath == nil { resolved = original }
            saved = original
        }
        if let resume, let path = PopulationCheckpoint.find(resume) {
            population = try PopulationCheckpoint.load(path)
            try adoptSaved(population!.manifest.config, source: "\(path)/population.json (config)")
        } else if let resume {
            let path = try Checkpoint.resolve(resume, runDirectory: out)
            checkpoint = try Checkpoint.load(path)
            try adoptSaved(checkpoint!.manifest.config, source: "\(path)/manifest.json (config)")
        }
        for assignment in overrides { try resolved.override(assignment) }
        if let out { try resolved.set("output.dir", raw: out, source: "--out") }
        let config = try TrainConfig(resolved, worldSize: worldSize)
        if resume != nil && (config.population != nil) != (population != nil) {
            throw ConfigError("--resume \(resume ?? ""): the checkpoint is from a " +
                              (population != nil ? "population run" : "gradient run") +
                              " but train.method = \(resolved.string("train.method")); resume with the method that wrote it")
        }
        plan = try TrainingPlan(config: config)  // data, model, steps and optimizer groups, validated once
        self.checkpoint = checkpoint
        populationCheckpoint = population
        defaultName = resolved.name
        tensorboard = resolved.bool("output.tensorboard")

        if let population {
            if population.manifest.step >= plan.totalSteps {
                throw CheckpointError("\(population.path) is at step \(population.manifest.step), not before the last step " +
                                      "of this run (train.steps = \(plan.totalSteps)): raise train.steps to continue it")
            }
            let ownRun = URL(fileURLWithPath: population.path).deletingLastPathComponent().deletingLastPathComponent().path
            continuesInPlace = out.map { Self.sameFolder($0, ownRun) } ?? true
            runPath = continuesInPlace ? ownRun : out
            configChanges = saved.map { resolved.differences(from: $0).filter { !$0.hasPrefix("output.dir:") } } ?? []
        } else if let checkpoint {
            // The same model check Trainer makes, and where the run stands, here before any rank communicates.
            try checkpoint.checkModel(plan.task.model.table, description: plan.task.modelDescription)
            try checkpoint.checkResumable(totalSteps: plan.totalSteps, globalBatch: plan.config.globalBatch)
            let ownRun = checkpoint.runDirectory
            continuesInPlace = out.map { Self.sameFolder($0, ownRun) } ?? true
            // A checkpoint copied out of its run has no run to continue in: its parent is not one to write into.
            if continuesInPlace && URL(fileURLWithPath: checkpoint.path).deletingLastPathComponent().lastPathComponent != "checkpoints" {
                throw CheckpointError("\(checkpoint.path) is not inside a run directory (<run>/checkpoints/step-N): " +
                                      "give --out DIR for the continued run")
            }
            runPath = continuesInPlace ? ownRun : out
            // The output directory is where this run happens to be written, not a setting that changed.
            configChanges = saved.map { resolved.differences(from: $0).filter { !$0.hasPrefix("output.dir:") } } ?? []
        } else {
            continuesInPlace = false
            runPath = config.outputDirectory.isEmpty ? nil : config.outputDirectory
            configChanges = []
        }
        if isRoot, !continuesInPlace, let runPath { try RunDirectory.checkAvailable(runPath) }
    }

    /// Creates (or, continuing in place, reopens) the run directory. Rank 0 only, after every rank agreed.
    public func claimRunDirectory() throws -> RunDirectory {
        if continuesInPlace, let runPath, let step = checkpoint?.manifest.step ?? populationCheckpoint?.manifest.step {
            return try RunDirectory(resuming: runPath, atStep: step, tensorboard: tensorboard)
        }
        if let runPath { return try RunDirectory(claiming: runPath, tensorboard: tensorboard) }
        return try RunDirectory.claimDefault(name: defaultName, tensorboard: tensorboard)
    }

    /// Whether two paths name the same folder (`runs/a`, `./runs/a/`, an absolute path or a symbolic link to it).
    static func sameFolder(_ a: String, _ b: String) -> Bool {
        func canonical(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.resolvingSymlinksInPath().path }
        return canonical(a) == canonical(b)
    }
}

extension LoadedCheckpoint {
    /// The run directory this checkpoint belongs to (`<run>/checkpoints/step-N`).
    public var runDirectory: String {
        URL(fileURLWithPath: path).deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// Whether a run of `totalSteps` steps can continue from this checkpoint: it must stand before the end. A
    /// checkpoint at the end is a finished run (resuming it would rewrite its results with nothing trained); one
    /// past the end would never reach the end.
    /// With `globalBatch` and a recorded batch schedule, where the run stands is in examples (a schedule's batches
    /// change, so its steps do not say): the run lasts `totalSteps` × `globalBatch` examples.
    public func checkResumable(totalSteps: Int, globalBatch: Int? = nil) throws {
        let step = manifest.step
        if let globalBatch, let state = manifest.batchSchedule {
            let total = totalSteps * globalBatch
            guard state.examples < total else {
                throw CheckpointError("\(path) is after \(state.examples) examples (step \(step)), not before the end of this run's " +
                                      "\(total) (train.steps \(totalSteps) × train.global_batch \(globalBatch)): to train longer, raise " +
                                      "train.steps (e.g. --set train.steps=\(2 * max(totalSteps, 1)))")
            }
            return
        }
        if step == totalSteps {
            throw CheckpointError("\(path) is at step \(step), the last step of this run (train.steps = \(totalSteps)): " +
                                  "nothing left to train; to train longer, raise it (e.g. --set train.steps=\(2 * max(step, 1)))")
        }
        if step > totalSteps {
            throw CheckpointError("\(path) is at step \(step), past the \(totalSteps) steps of this run: " +
                                  "set train.steps above \(step) to continue it (e.g. --set train.steps=\(2 * step))")
        }
    }
}
