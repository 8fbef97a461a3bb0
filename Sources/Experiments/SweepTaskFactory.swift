import Datasets
import Foundation
import Training

// MARK: - Task factory

/// The CLI's task factory: Fashion-MNIST is loaded once per data directory and shared by every point (each point
/// gets its own model, sampler and buffers); other tasks are built by `TrainConfig.makeTask()`.
public final class CachedTaskFactory: @unchecked Sendable {
    private let lock = NSLock()
    private var images: [String: (train: ImageDataset, test: ImageDataset)] = [:]

    public init() {}

    public func make(_ config: TrainConfig) throws -> TrainingTask {
        guard config.modelKind == "mlp" else { return try config.makeTask() }
        lock.lock()
        defer { lock.unlock() }
        let data: (train: ImageDataset, test: ImageDataset)
        if let cached = images[config.dataDirectory] { data = cached } else {
            data = try FashionMNIST.load(directory: config.dataDirectory)
            images[config.dataDirectory] = data
        }
        // Checked here because the task's sampler requires it (TrainConfig.totalSteps words the same error).
        guard config.globalBatch <= data.train.count else {
            throw ConfigError("train.global_batch = \(config.globalBatch) exceeds the \(data.train.count) training examples")
        }
        return config.imageTask(train: data.train, test: data.test)
    }

    public var factory: SweepTaskFactory { { [self] in try self.make($0) } }
}
