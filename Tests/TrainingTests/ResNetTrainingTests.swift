import Datasets
import Distributed
import Models
import SwiftMPI
import Tensors
import Training
import XCTest

/// `model.kind: resnet` through the configuration and a real Trainer on simulated ranks: the task builds the ResNet
/// from the keys, `model.sync_batchnorm` hands the engine's reducer to the model, and non-square images are an error.
final class ResNetTrainingTests: XCTestCase {
    /// 8×8 single-channel images, 3 classes, deterministic.
    private func images(_ count: Int, seed: UInt64) -> ImageDataset {
        var rng = SplitMix64(seed: seed)
        let labels = (0..<count).map { Int32($0 % 3) }
        let features = labels.flatMap { l in (0..<64).map { p in Float(p % 8 == Int(l) * 2 ? 1 : 0) + rng.uniform(-0.3, 0.3) } }
        return ImageDataset(features: features, labels: labels, featureCount: 64, classes: 3)
    }

    private func config(sync: Bool) throws -> TrainConfig {
        try TrainConfig(ResolvedConfig(name: "resnet", overrides: [
            "model.kind=resnet", "model.depth=1", "model.channels=2", "model.sync_batchnorm=\(sync)",
            "train.global_batch=8", "train.steps=3", "train.log_every=10", "schedule.warmup_steps=1",
        ]), worldSize: 2)
    }

    /// Per rank: the batch-norm running means after training, and the reducer's call count.
    private func train(sync: Bool) throws -> [([Float], Int)] {
        let c = try config(sync: sync)
        let (train, test) = (images(32, seed: 1), images(12, seed: 2))
        return try SimulatedWorld.run(size: 2) { comm in
            let task = c.imageTask(train: train, test: test)
            guard let resnet = task.model as? ResNet else { throw ConfigError("not a ResNet: \(task.modelDescription)") }
            _ = try Trainer(config: c, comm: comm, task: task).run()
            let means = resnet.batchNormStates.flatMap { s in (0..<s.channels).map { s.runningMean[$0] } }
            return (means, (resnet.statisticsReducer as? CommunicatorStatisticsReducer)?.calls ?? 0)
        }
    }

    func testSyncBatchNormSharesStatisticsAcrossRanks() throws {
        let synced = try train(sync: true)
        // 9 batch-norm layers (stem, 2 + 3 + 3 in the blocks), two all-reduces each per step, 3 steps.
        XCTAssertEqual(synced.map(\.1), [54, 54])
        // Every rank normalised by the same global statistics, so their running averages are equal (the same
        // all-reduced doubles in the same order on both ranks: bit for bit).
        XCTAssertEqual(synced[0].0, synced[1].0)
        let alone = try train(sync: false)
        XCTAssertEqual(alone.map(\.1), [0, 0], "no reducer without model.sync_batchnorm")
        XCTAssertNotEqual(alone[0].0, alone[1].0, "each rank's own rows give other statistics")
    }

    /// The ResNet reads its parameters layer by layer (stem, blocks, head), so it trains at ZeRO stage 3 too: with
    /// synchronised batch norm on 2 ranks, stages 1–3 end within the stage-equivalence tolerance (1e-5 relative:
    /// summation order only) of stage 0, and evaluation (which acquires the whole model once) agrees.
    func testStagesAgreeIncludingStageThree() throws {
        let (train, test) = (images(32, seed: 1), images(12, seed: 2))
        var results: [(params: [Float], eval: Double)] = []
        for stage in 0...3 {
            var resolved = try ResolvedConfig(name: "resnet", overrides: [
                "model.kind=resnet", "model.depth=1", "model.channels=2", "model.sync_batchnorm=true",
                "train.global_batch=8", "train.steps=3", "train.log_every=10", "schedule.warmup_steps=1",
                "zero.bucket_mb=0.0001", "groups.matrix.optimizer=muon", "groups.matrix.lr=0.02"])
            try resolved.override("zero.stage=\(stage)")
            let c = try TrainConfig(resolved, worldSize: 2)
            let runs = try SimulatedWorld.run(size: 2) { comm -> ([Float], Double) in
                let trainer = try Trainer(config: c, comm: comm, task: c.imageTask(train: train, test: test))
                let summary = try trainer.run()
                return (try trainer.engine.masterParameters().array, summary.evalLoss)
            }
            XCTAssertEqual(runs[0].0, runs[1].0, "stage \(stage): ranks differ")
            results.append((runs[0].0, runs[0].1))
        }
        for stage in 1...3 {
            let worst = zip(results[stage].params, results[0].params).map { abs($0 - $1) / max(1, abs($1)) }.max()!
            XCTAssertLessThanOrEqual(worst, 1e-5, "stage \(stage) vs 0")
            XCTAssertEqual(results[stage].eval, results[0].eval, accuracy: 1e-5 * max(1, abs(results[0].eval)))
        }
    }

    func testTaskDescribesTheResNetFromTheKeys() throws {
        let task = try config(sync: false).imageTask(train: images(8, seed: 3), test: images(4, seed: 4))
        XCTAssertTrue(task.modelDescription.hasPrefix("ResNet 1×8×8 depth 1 width 2 (3 blocks"), task.modelDescription)
        XCTAssertEqual(task.model.table["head.weight"]?.shape, [3, 8])
    }

    func testNonSquareImagesAreAConfigurationError() throws {
        let fixtures = "\(repositoryRoot)/Tests/DatasetsTests/Fixtures"
        let c = try TrainConfig(ResolvedConfig(name: "arrays", overrides: [
            "model.kind=resnet", "data.dataset=arrays", "data.train_features=\(fixtures)/features_u8_v2.npy",
            "data.train_labels=\(fixtures)/labels_i64.npy", "data.test_features=\(fixtures)/test_features_2x3.npy",
            "data.test_labels=\(fixtures)/test_labels_i64.npy", "train.global_batch=2", "train.steps=1",
        ]), worldSize: 1)
        XCTAssertThrowsError(try c.makeTask()) {
            XCTAssertTrue("\($0)".contains("model.kind = resnet needs square single-channel images"), "\($0)")
        }
    }
}
