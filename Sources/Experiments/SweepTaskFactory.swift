import Datasets
import Foundation
import Training

// MARK: - Task factory

/// The CLI's task factory: classification data (Fashion-MNIST, or `.npy` arrays) is loaded once per source and shared
/// by every point (each point gets its own model, sampler and buffers); other tasks are built by
/// `TrainConfig.makeTask()`.
public final class CachedTaskFactory: @unchecked Sendable {
    private let lock = NSLock()
    private var images: [String: (train: any LabelledExamples, test: any LabelledExamples)] = [:]

    public init() {}

    public func make(_ config: TrainConfig) throws -> TrainingTask {
        guard config.modelKind == "mlp" else { return try config.makeTask() }
        lock.lock()
        defer { lock.unlock() }
        // Arrays are identified by their files and class count, Fashion-MNIST by its folder.
        let source = config.dataset != "arrays" ? config.dataDirectory
            : ["data.train_features", "data.train_labels", "data.test_features", "data.test_labels", "data.classes"]
                .map { "\(config.resolved.value($0)!)" }.joined(separator: "\n")
        let data: (train: any LabelledExamples, test: any LabelledExamples)
        if let cached = images[source] { data = cached } else {
            data = try config.classificationData()
            images[source] = data
        }
        // Checked here because the task's sampler requires it (TrainConfig.totalSteps words the same error).
        guard config.globalBatch <= data.train.count else {
            throw ConfigError("train.global_batch = \(config.globalBatch) exceeds the \(data.train.count) training examples")
        }
        return config.imageTask(train: data.train, test: data.test)
    }

    public var factory: SweepTaskFactory { { [self] in try self.make($0) } }
}
