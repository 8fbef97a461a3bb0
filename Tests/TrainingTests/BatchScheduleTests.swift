import Datasets
import Foundation
import SwiftMPI
import Tensors
import TestSupport
import Training
import XCTest

/// `train.batch_schedule` (issue 17, item 2): the noise-scale rule's rounding, bounds, monotonicity and spacing; the
/// data position in examples (no example repeated or skipped within an epoch when the batch changes); resume in the
/// middle of an adaptive schedule; and the gradient staying an exact mean across a mid-run batch change.
final class BatchScheduleTests: XCTestCase {
    private static func settings(_ overrides: [String], world: Int = 3) throws -> BatchScheduleSettings {
        try TrainConfig(try ResolvedConfig(name: "batch-schedule", overrides: ["model.hidden=[8]"] + overrides), worldSize: world)
            .batchSchedule
    }

    /// q = 3 ranks × 2 = 6, k = 2, B₀ = 12, max 60, changes ≥ 3 steps apart. Worked by hand: at step 3 the noise
    /// scale 10 gives k·B = 20 → nearest multiple of 6 is 18; at step 6, 4 → 8 → 6, below the current 18: kept
    /// (never decreasing); at step 9, 100 → 200 → capped at 60; at step 10 (too soon) nothing changes.
    func testNoiseScaleRuleRoundsToRanksTimesAccumulationWithinBoundsAndNeverDecreases() throws {
        let s = try Self.settings(["train.global_batch=12", "train.grad_accum=2", "train.batch_schedule=noise_scale",
                                   "train.batch_noise_k=2", "train.batch_max=60", "train.batch_change_every=3"])
        XCTAssertEqual(s.quantum, 6)
        var schedule = BatchSchedule(s, datasetSize: 1000)
        let noise: [Double?] = [nil, 50, 50, 10, 10, 10, 4, 4, 4, 100, 1000, 1000, 1000]
        let batches = noise.enumerated().map { schedule.batch(forStep: $0.offset, noiseScale: $0.element) }
        XCTAssertEqual(batches, [12, 12, 12, 18, 18, 18, 18, 18, 18, 60, 60, 60, 60])
        // Properties over a long random walk of the estimate: multiples of q, in [B₀, max], never decreasing,
        // changes at least `changeEvery` steps apart.
        var walk = BatchSchedule(s, datasetSize: 1000)
        var rng = SplitMix64(seed: 7, stream: 0)
        var previous = 12, lastChange = 0
        for step in 0..<500 {
            let b = walk.batch(forStep: step, noiseScale: Double(rng.next() % 40))
            XCTAssertTrue(b % 6 == 0, "step \(step): batch \(b) is not a multiple of 6")
            XCTAssertTrue((12...60).contains(b) && b >= previous, "step \(step): batch \(b) after \(previous)")
            if b != previous { XCTAssertGreaterThanOrEqual(step - lastChange, 3, "step \(step)"); lastChange = step }
            previous = b
        }
    }

    func testStepsScheduleAndItsErrorsNameTheItem() throws {
        var s = BatchSchedule(try Self.settings(["train.global_batch=12", "train.batch_schedule=steps",
                                                 "train.batch_steps=[2, 24, 5, 9]"]), datasetSize: 100)
        XCTAssertEqual((0..<7).map { s.batch(forStep: $0, noiseScale: nil) }, [12, 12, 24, 24, 24, 9, 9])
        func message(_ overrides: [String]) -> String {
            do { _ = try Self.settings(["train.global_batch=12"] + overrides); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(message(["train.batch_schedule=steps", "train.batch_steps=[2, 24, 5, 2]"])
            .contains("train.batch_steps pair 2 (step 5): batch 2 is smaller than 3 ranks"))
        XCTAssertTrue(message(["train.batch_schedule=steps", "train.batch_steps=[4, 24, 3, 30]"]).contains("not after step 4"))
        XCTAssertTrue(message(["train.batch_schedule=noise_scale"]).contains("set train.batch_max"))
        do {
            _ = try Self.settings(["train.batch_schedule=noise_scale", "train.batch_max=64"], world: 1)
            XCTFail("noise_scale on one rank without accumulation measures nothing")
        } catch { XCTAssertTrue("\(error)".contains("set train.grad_accum ≥ 2 or run on ≥ 2 ranks"), "\(error)") }
        XCTAssertTrue(message(["train.batch_schedule=noise_scale", "train.batch_max=64", "train.noise_scale=false"])
            .contains("set train.noise_scale=true"))
    }

    /// With batches changing every step, each epoch's examples are distinct (no repeat), consecutive in the
    /// epoch's permutation (no skip), and only a tail shorter than the next batch is dropped — as with a fixed
    /// batch. With a fixed batch the position-based indices equal the step-based ones.
    func testDataPositionInExamplesNeitherRepeatsNorSkips() {
        let n = 50
        var sampler = BatchSampler(datasetSize: n, globalBatch: 5, seed: 3)
        var reference = sampler
        var position = 0, seenThisEpoch = Set<Int32>(), epoch = 0, indices: [Int32] = []
        let batches = [5, 7, 3, 11, 2, 13, 4, 9, 1, 8, 6, 10, 12, 3, 7, 5, 9]
        for b in batches {
            let start = BatchSampler.batchStart(position: position, batch: b, datasetSize: n)
            if start / n != epoch {
                XCTAssertLessThan(n - seenThisEpoch.count, b, "epoch \(epoch) dropped a tail no shorter than the next batch")
                XCTAssertEqual(position, epoch * n + seenThisEpoch.count, "examples skipped inside epoch \(epoch)")
                epoch = start / n; seenThisEpoch = []
            }
            sampler.indices(batchStart: start, offset: 0, rows: b, into: &indices)
            for i in indices { XCTAssertTrue(seenThisEpoch.insert(i).inserted, "example \(i) repeated in epoch \(epoch)") }
            position = start + b
        }
        XCTAssertGreaterThan(epoch, 1, "the walk should cross epochs")
        var fromStep: [Int32] = []
        var state = BatchSchedule(.fixed(5, quantum: 1), datasetSize: n)
        for step in 0..<25 {
            let start = state.consume(batch: 5)
            XCTAssertEqual(start, BatchSchedule.fixedState(step: step, batch: 5, datasetSize: n).dataPosition)
            sampler.indices(batchStart: start, offset: 1, rows: 3, into: &indices)
            reference.indices(step: step, offset: 1, rows: 3, into: &fromStep)
            XCTAssertEqual(indices, fromStep, "step \(step)")
        }
    }

    /// An adaptive (noise_scale) run on 2 ranks paused mid-schedule and resumed ends bit-identical to the
    /// uninterrupted run: the checkpoint holds the batch, the data position and the estimator's averages.
    func testResumeMidNoiseScaleScheduleIsBitIdentical() throws {
        let data = DataParallelEquivalence.data()
        @Sendable func config(stopAt: Int = 0) throws -> TrainConfig {
            try TrainConfig(try ResolvedConfig(name: "adaptive-resume", overrides: [
                "model.hidden=[16]", "train.steps=80", "train.global_batch=8", "optimizer.name=adamw", "optimizer.lr=0.01",
                "train.batch_schedule=noise_scale", "train.batch_noise_k=1", "train.batch_max=96", "train.batch_change_every=3",
                "train.noise_scale_ema=0.5", "train.log_every=1", "checkpoint.every=0", "train.stop_at=\(stopAt)"]), worldSize: 2)
        }
        let uninterrupted = try SimulatedWorld.run(size: 2) { comm -> ([Float], BatchScheduleState, Int, GradientNoiseScale.State) in
            let t = try Trainer(config: try config(), comm: comm, train: data.train, test: data.test)
            let steps = try t.run().steps
            var state = t.batchSchedule.state
            state.noise = nil  // recorded at checkpoints only; compared live below
            return (t.params.array, state, steps, t.noiseScale.state)
        }[0]
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("adaptive-resume-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        _ = try SimulatedWorld.run(size: 2) { comm in
            let t = try Trainer(config: try config(stopAt: 5), comm: comm, train: data.train, test: data.test)
            t.checkpointRoot = root
            do { _ = try t.run(); XCTFail("train.stop_at=5 should pause the run") } catch TrainingStopped.paused(let step) {
                XCTAssertEqual(step, 5)
            }
        }
        let checkpoint = try Checkpoint.load("\(root)/checkpoints/step-00000005")
        let saved = try XCTUnwrap(checkpoint.manifest.batchSchedule)
        XCTAssertGreaterThan(saved.globalBatch, 8, "the batch should have grown before the pause")
        XCTAssertNotNil(saved.noise)
        XCTAssertGreaterThan(uninterrupted.1.globalBatch, saved.globalBatch, "and again after it")
        let resumed = try SimulatedWorld.run(size: 2) { comm -> ([Float], BatchScheduleState, Int, GradientNoiseScale.State) in
            let t = try Trainer(config: try config(), comm: comm, train: data.train, test: data.test, resume: checkpoint)
            let steps = try t.run().steps
            var state = t.batchSchedule.state
            state.noise = nil  // recorded at checkpoints only; compared live below
            return (t.params.array, state, steps, t.noiseScale.state)
        }[0]
        XCTAssertEqual(resumed.2, uninterrupted.2)
        XCTAssertEqual(resumed.1, uninterrupted.1)
        XCTAssertEqual(resumed.3, uninterrupted.3, "the noise-scale averages")
        XCTAssertEqual(resumed.0, uninterrupted.0, "resumed parameters differ from the uninterrupted run's")
    }

    /// The step after a batch change is an exact mean over the new batch: a `steps` run on 3 ranks × 2 micro-batches
    /// changes 12 → 40 (shares 14/13/13, micro-batches 7/7, 7/6, 7/6) after step 2; a fixed-40 run on one rank
    /// without accumulation, resumed from the same step-2 checkpoint (same parameters, optimizer state and data
    /// position), makes one step. The two updates differ only in float summation order: AdamW's equivalence
    /// tolerance (DataParallelEquivalence, 1e-5 relative).
    func testABatchChangeMidRunLeavesTheGradientAnExactMean() throws {
        let data = DataParallelEquivalence.data()
        @Sendable func config(_ overrides: [String], world: Int) throws -> TrainConfig {
            try TrainConfig(try ResolvedConfig(name: "batch-change", overrides: [
                "model.hidden=[16]", "optimizer.name=adamw", "optimizer.lr=0.01", "schedule.kind=constant",
                "train.log_every=1", "train.batch_lr_scaling=none"] + overrides), worldSize: world)
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("batch-change-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let changed = try SimulatedWorld.run(size: 3) { comm -> [Float] in
            let t = try Trainer(config: try config(["train.global_batch=12", "train.grad_accum=2", "train.steps=5",
                                                    "train.batch_schedule=steps", "train.batch_steps=[2, 40]",
                                                    "checkpoint.every=2", "checkpoint.keep=5"], world: 3),
                                comm: comm, train: data.train, test: data.test)
            t.checkpointRoot = root
            XCTAssertEqual(try t.run().steps, 3, "12 + 12 + 40 examples reach the 5 × 12 budget at step 3")
            return t.params.array
        }[0]
        let checkpoint = try Checkpoint.load("\(root)/checkpoints/step-00000002")
        XCTAssertEqual(checkpoint.manifest.batchSchedule?.dataPosition, 24)
        let fresh = try SimulatedWorld.run(size: 1) { comm -> [Float] in
            let t = try Trainer(config: try config(["train.global_batch=40", "train.steps=10", "train.stop_at=3"], world: 1),
                                comm: comm, train: data.train, test: data.test, resume: checkpoint)
            do { _ = try t.run(); XCTFail("train.stop_at=3 should pause") } catch TrainingStopped.paused(let step) { XCTAssertEqual(step, 3) }
            return t.params.array
        }[0]
        let worst = StageEquivalence.worstRelativeDifference(changed, fresh)
        XCTAssertLessThanOrEqual(worst, 1e-5, "the step after the change vs a batch-40 step from the same state")
        // And the check can fail: without the change (a batch-12 step from the same state) the update differs.
        let unchanged = try SimulatedWorld.run(size: 1) { comm -> [Float] in
            let t = try Trainer(config: try config(["train.global_batch=12", "train.steps=10", "train.stop_at=3"], world: 1),
                                comm: comm, train: data.train, test: data.test, resume: checkpoint)
            do { _ = try t.run() } catch TrainingStopped.paused { }
            return t.params.array
        }[0]
        XCTAssertGreaterThan(StageEquivalence.worstRelativeDifference(changed, unchanged), 1e-4)
    }
}
