import Datasets
import Distributed
import Models

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
        if config.zeroStage == 3 && self.task.model.layers.count < 2 {
            throw ConfigError("zero.stage = 3 gathers the model layer by layer, but \(self.task.modelDescription) lists no " +
                              "layers (Model.layers is one unit of every tensor): use zero.stage=2, or list the model's layers " +
                              "(docs/distributed.md, \"Stage 3\")")
        }
    }
}

extension TrainConfig {
    /// The image-classification task of this configuration over loaded data (the one place it is built).
    public func imageTask(train: any LabelledExamples, test: any LabelledExamples) -> ImageClassificationTask {
        // Population methods score the whole global batch on every rank, so the batch buffer must hold all of it.
        let rows = population == nil ? microBatch : globalBatch
        guard modelKind == "resnet" else {
            return ImageClassificationTask(train: train, test: test, hidden: hidden, activation: activation,
                                           globalBatch: globalBatch, microBatch: rows, seed: seed)
        }
        // makeTask checked that the features form a square image.
        let side = Int(Double(train.featureCount).squareRoot().rounded())
        let resnet = ResNet(imageChannels: 1, imageSide: side, classes: train.classes, depth: resnetDepth, width: resnetChannels)
        return ImageClassificationTask(train: train, test: test, model: resnet, description: resnet.summary,
                                       globalBatch: globalBatch, microBatch: rows, seed: seed)
    }

    /// The classification data of `data.dataset`: Fashion-MNIST from `data.dir`, or `.npy` arrays (`arrays`).
    public func classificationData() throws -> (train: any LabelledExamples, test: any LabelledExamples) {
        guard dataset == "arrays" else {
            let (train, test) = try Self.naming("data.dir", dataDirectory) { try FashionMNIST.load(directory: dataDirectory) }
            return (train, test)
        }
        let keys = ["data.train_features", "data.train_labels", "data.test_features", "data.test_labels"]
        let paths = keys.map { resolved.string($0) }
        if let missing = keys.indices.first(where: { paths[$0].isEmpty }) {
            throw ConfigError("data.dataset = arrays needs \(keys[missing]): set it to an .npy file " +
                              "(docs/datasets.md describes the four files)")
        }
        let classes = resolved.int("data.classes")
        let (train, test) = try ArrayDataset.loadSplits(trainFeatures: paths[0], trainLabels: paths[1], testFeatures: paths[2],
                                                        testLabels: paths[3], classes: classes > 0 ? classes : nil)
        return (train, test)
    }
}
