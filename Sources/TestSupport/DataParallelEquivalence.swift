import Datasets
import SwiftMPI
import Training

/// Data-parallel equivalence, shared by `swift test` (simulated ranks, Tests/TrainingTests/DataParallelTests.swift)
/// and swift-train-mpi-checks (real MPI): k steps on N ranks with per-rank batch b give the parameters of one rank
/// with batch N·b. The two differ only in float summation order (per-rank means then a reduction, vs one mean), so
/// parameters agree to a few float32 ulps per step. The tolerance (max |Δθ| over max(1, |θ|)) is stated per
/// optimizer: SGD is smooth in g; Adam's g/√v amplifies relative gradient differences where |g| is tiny.
///
/// The uneven variant (`unevenCases`) is the same property for a global batch of 256 split into ⌈⌉/⌊⌋ shares
/// (BatchSplit: 86, 85, 85 on 3 ranks) and 3 unequal micro-batches per rank, against one rank taking all 256 at once;
/// every gradient is scaled by 1/256, so again only the summation order differs and the same tolerances apply.
public enum DataParallelEquivalence {
    public static let cases: [(optimizer: String, tolerance: Float)] = [("sgd", 1e-6), ("adamw", 1e-5)]
    public static let unevenCases: [(optimizer: String, tolerance: Float)] = [("adamw", 1e-5), ("lamb", 1e-5)]
    public static let unevenGlobalBatch = 256, unevenGradAccum = 3
    public static let steps = 8
    public static let perRankBatch = 8

    /// The synthetic data set of the check (20 features, 5 classes).
    public static func data() -> (train: ImageDataset, test: ImageDataset) {
        (ImageDataset.synthetic(count: 512, featureCount: 20, classes: 5, seed: 3),
         ImageDataset.synthetic(count: 100, featureCount: 20, classes: 5, seed: 4))
    }

    /// The global batch and accumulation of the check on `world` ranks (even: `perRankBatch` per rank).
    static func batch(world: Int, uneven: Bool) -> (global: Int, accum: Int) {
        uneven ? (unevenGlobalBatch, unevenGradAccum) : (perRankBatch * world, 1)
    }

    /// The configuration for `optimizer` with global batch `globalBatch` and `gradAccum`, validated for `world` ranks.
    public static func config(optimizer: String, globalBatch: Int, gradAccum: Int = 1, world: Int) throws -> TrainConfig {
        let c = try ResolvedConfig(name: "equivalence", overrides: [
            "model.hidden=[16, 12]", "model.activation=gelu", "train.steps=\(steps)",
            "train.global_batch=\(globalBatch)", "train.grad_accum=\(gradAccum)", "train.log_every=4",
            "optimizer.name=\(optimizer)", "optimizer.lr=0.01", "schedule.warmup_steps=3", "optimizer.momentum=0.9",
            "optimizer.nesterov=true", "train.seed=5"])
        return try TrainConfig(c, worldSize: world)
    }

    /// Trains on this rank as one of `comm.size` ranks (collective over `comm`).
    public static func trainDistributed(optimizer: String, comm: Communicator, data: (train: ImageDataset, test: ImageDataset),
                                        uneven: Bool = false) throws -> (params: [Float], summary: TrainSummary) {
        let b = batch(world: comm.size, uneven: uneven)
        let trainer = try Trainer(config: config(optimizer: optimizer, globalBatch: b.global, gradAccum: b.accum, world: comm.size),
                                  comm: comm, train: data.train, test: data.test)
        let summary = try trainer.run()
        return (trainer.params.array, summary)
    }

    /// The same run on one rank taking the whole global batch at once (no communication, no accumulation).
    public static func trainSingle(optimizer: String, world: Int, data: (train: ImageDataset, test: ImageDataset),
                                   uneven: Bool = false) throws -> [Float] {
        let solo = try config(optimizer: optimizer, globalBatch: batch(world: world, uneven: uneven).global, world: 1)
        return try SimulatedWorld.run(size: 1) { comm -> [Float] in
            let trainer = try Trainer(config: solo, comm: comm, train: data.train, test: data.test)
            _ = try trainer.run()
            return trainer.params.array
        }[0]
    }
}
