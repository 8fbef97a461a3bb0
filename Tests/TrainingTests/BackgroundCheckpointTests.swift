import Datasets
import Foundation
import SwiftMPI
import Training
import XCTest

/// `checkpoint.async`: checkpoints written by a background thread hold exactly what synchronous ones hold, each is
/// complete before the next starts, and a rank whose write fails stops every rank with the rank named. The real-
/// process case (a rank killed while its write is in flight) is in Tests/Faults/checkpoint_faults.py.
final class BackgroundCheckpointTests: XCTestCase {
    private var folder = ""

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "swift-train-async-checkpoint-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

    private static let data = (ImageDataset.synthetic(count: 256, featureCount: 12, classes: 4, seed: 1),
                               ImageDataset.synthetic(count: 64, featureCount: 12, classes: 4, seed: 2))

    /// Trains `ranks` simulated ranks (ZeRO stage 2, so every rank owns state and writes a file) for 8 steps with a
    /// checkpoint every `every` steps into `runDirectory`; returns rank 0's final parameters.
    private func train(ranks: Int, async: Bool, every: Int, runDirectory: String) throws -> [Float] {
        let config = try TrainConfig(ResolvedConfig(name: "async-checkpoint", overrides: [
            "model.hidden=[8]", "train.global_batch=32", "train.steps=8", "train.log_every=4", "schedule.warmup_steps=0",
            "optimizer.name=adamw", "zero.stage=2", "checkpoint.every=\(every)", "checkpoint.keep=100",
            "checkpoint.final=false", "checkpoint.async=\(async)", "train.noise_scale=false"]), worldSize: ranks)
        return try SimulatedWorld.run(size: ranks) { comm -> [Float] in
            let trainer = try Trainer(config: config, comm: comm, train: Self.data.0, test: Self.data.1)
            trainer.checkpointRoot = runDirectory
            _ = try trainer.run()
            return trainer.params.array
        }[0]
    }

    private func checkpointNames(_ runDirectory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(runDirectory)/checkpoints")) ?? []).sorted()
    }

    private func contents(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    func testBackgroundCheckpointsHoldWhatSynchronousOnesHold() throws {
        for ranks in [1, 3] {
            let sync = "\(folder)/sync-\(ranks)", background = "\(folder)/async-\(ranks)"
            let a = try train(ranks: ranks, async: false, every: 2, runDirectory: sync)
            let b = try train(ranks: ranks, async: true, every: 2, runDirectory: background)
            XCTAssertEqual(a, b, "writing checkpoints in the background changed training (\(ranks) ranks)")
            // Every checkpoint complete (no .partial left), the same steps, `latest` at the last one.
            let names = checkpointNames(background)
            XCTAssertEqual(names, checkpointNames(sync))
            XCTAssertEqual(names, ["latest", "step-00000002", "step-00000004", "step-00000006", "step-00000008"])
            XCTAssertEqual(try String(contentsOfFile: "\(background)/checkpoints/latest", encoding: .utf8), "step-00000008\n")
            for step in names.dropFirst() {
                let s = try Checkpoint.load("\(sync)/checkpoints/\(step)"), b = try Checkpoint.load("\(background)/checkpoints/\(step)")
                // The manifests differ only in the configuration they record (checkpoint.async) and their creation
                // time, and so in their checksums; every file they list is byte-identical.
                var m = b.manifest
                XCTAssertNotEqual(m.config, s.manifest.config)
                m.config = s.manifest.config; m.created = s.manifest.created; m.checksum = s.manifest.checksum
                XCTAssertEqual(m, s.manifest, "\(step) manifest (\(ranks) ranks)")
                XCTAssertEqual(s.manifest.files.count, 1 + ranks, "params.bin and one state file per rank")
                for file in s.manifest.files {
                    XCTAssertEqual(try contents("\(background)/checkpoints/\(step)/\(file.name)"),
                                   try contents("\(sync)/checkpoints/\(step)/\(file.name)"), "\(step)/\(file.name) (\(ranks) ranks)")
                }
            }
        }
    }

    func testACheckpointEveryStepIsEachCompleteBeforeTheNext() throws {
        // checkpoint.every=1: every step's snapshot must first commit the previous one, the last is committed at the
        // end of training, and each verifies (sizes and CRC-32 of every file) and names its own step.
        let run = "\(folder)/every-step"
        _ = try train(ranks: 2, async: true, every: 1, runDirectory: run)
        let names = checkpointNames(run).filter { $0.hasPrefix("step-") }
        XCTAssertEqual(names, (1...8).map { String(format: "step-%08d", $0) })
        XCTAssertFalse(checkpointNames(run).contains { $0.hasSuffix(".partial") })
        for (i, name) in names.enumerated() {
            XCTAssertEqual(try Checkpoint.load("\(run)/checkpoints/\(name)").manifest.step, i + 1)
        }
    }

    func testAPauseCompletesThePendingCheckpointBeforeItsOwn() throws {
        // Step 4's checkpoint goes to the background; train.stop_at=5 pauses one step later with a synchronous
        // checkpoint, which must first complete step 4's (whether or not its writer is done by then).
        let config = try TrainConfig(ResolvedConfig(name: "async-checkpoint", overrides: [
            "model.hidden=[8]", "train.global_batch=32", "train.steps=8", "train.stop_at=5", "zero.stage=1",
            "checkpoint.every=2", "checkpoint.keep=10", "checkpoint.async=true", "train.noise_scale=false"]), worldSize: 2)
        let run = "\(folder)/paused"
        let outcomes = try SimulatedWorld.run(size: 2) { comm -> String in
            let trainer = try Trainer(config: config, comm: comm, train: Self.data.0, test: Self.data.1)
            trainer.checkpointRoot = run
            do { _ = try trainer.run(); return "finished" } catch { return "\(error)" }
        }
        XCTAssertEqual(outcomes[0], outcomes[1])
        XCTAssertTrue(outcomes[0].contains("paused after step 5"), outcomes[0])
        XCTAssertEqual(checkpointNames(run), ["latest", "step-00000002", "step-00000004", "step-00000005"])
        XCTAssertEqual(try Checkpoint.load("\(run)/checkpoints/step-00000004").manifest.step, 4)
    }

    func testAFailedWriteOnOneRankStopsEveryRankNamingIt() throws {
        let config = try TrainConfig(ResolvedConfig(name: "async-checkpoint", overrides: [
            "model.hidden=[8]", "train.global_batch=32", "train.steps=2", "zero.stage=2", "train.noise_scale=false"]),
                                     worldSize: 3)
        let root = folder
        let outcomes = try SimulatedWorld.run(size: 3) { comm -> String in
            let trainer = try Trainer(config: config, comm: comm, train: Self.data.0, test: Self.data.1)
            let run = Checkpoint.RunState(step: 0, model: "mlp", table: trainer.model.table, dataSeed: 0, skippedSteps: 0,
                                          consecutiveBadSteps: 0, config: "")
            let snapshot = try Checkpoint.snapshot(trainer.engine, run: run, runDirectory: root, keep: 3)
            // Rank 1's disk refuses its file; the others write theirs.
            let written: Result<Checkpoint.Written, Error> = comm.rank == 1
                ? .failure(CheckpointError("cannot write state-rank-00001.bin: No space left on device"))
                : Result { try Checkpoint.write(snapshot) }
            do { _ = try Checkpoint.agree(snapshot, written, engine: trainer.engine); return "agreed" } catch { return "\(error)" }
        }
        XCTAssertTrue(outcomes[1].contains("No space left on device"), outcomes[1])
        for r in [0, 2] {
            XCTAssertTrue(outcomes[r].contains("was not written: rank 1 could not write its part"), outcomes[r])
        }
        // Nothing a resume would accept: only the temporary directory, no `latest`.
        XCTAssertEqual(checkpointNames(root), [".step-00000000.partial"])
    }
}
