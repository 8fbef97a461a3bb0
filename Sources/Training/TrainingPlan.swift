import Datasets
import Distributed

/// Everything a run needs, resolved and validated once, before MPI starts: the typed configuration for the world
/// size, the task (data loaded, model built), the step count and the optimizer groups. A bad flag, a missing data
/// file or an optimizer that cannot update a tensor is an error here, on every rank alike, so no rank is left
/// waiting in a collective. The CLI's train command, the sweep and the multi-rank checks all build one; `Trainer`
/// takes it as it is and validates nothing again.
public struct TrainingPlan {
    public let config: TrainConfig
    public let task: TrainingTask
    public let totalSteps: Int
    /// One group per distinct optimizer, in order of first use in the model's parameter table.
    public let groups: [GroupSpec]

    /// Validates `config` against `task` (built from the configuration when nil).
    public init(config: TrainConfig, task: TrainingTask? = nil) throws {
        self.config = config
        self.task = try task ?? config.makeTask()
        totalSteps = try config.totalSteps(datasetSize: self.task.rowsPerEpoch)
        groups = try config.groupSpecs(for: self.task.model.table)  // e.g. Muon routed to a vector, named here
    }
}

extension TrainConfig {
    /// The image-classification task of this configuration over loaded data (the one place it is built).
    public func imageTask(train: ImageDataset, test: ImageDataset) -> ImageClassificationTask {
        // Population methods score the whole global batch on every rank, so the batch buffer must hold all of it.
        ImageClassificationTask(train: train, test: test, hidden: hidden, activation: activation,
                                globalBatch: globalBatch, microBatch: population == nil ? microBatch : globalBatch, seed: seed)
    }
}
