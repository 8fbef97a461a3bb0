import Datasets
import Foundation
import SwiftMPI
import Training
import XCTest

/// Regression tests for the defects a reliability probe found (issue 15, item 6) that a single process can show:
/// checkpoints and manifests as input, resuming, run directories, non-finite parameters, every rank's input error.
/// The ones that need real processes (mpirun, signals, two runs at once) are in Tests/Faults/checkpoint_faults.py.
final class ReliabilityTests: XCTestCase {
    private var folder = ""

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "swift-train-reliability-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

    private func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    private static let data = (ImageDataset.synthetic(count: 256, featureCount: 12, classes: 4, seed: 1),
                               ImageDataset.synthetic(count: 64, featureCount: 12, classes: 4, seed: 2))

    private static func config(_ overrides: [String]) throws -> TrainConfig {
        try TrainConfig(ResolvedConfig(name: "reliability", overrides: [
            "model.hidden=[8]", "train.global_batch=32", "train.log_every=1", "schedule.warmup_steps=0",
            "checkpoint.every=1", "checkpoint.keep=1", "train.noise_scale=false"] + overrides), worldSize: 1)
    }

    /// Trains on one simulated rank writing checkpoints under `runDirectory`; returns how training ended.
    private func train(_ overrides: [String], runDirectory: String, train: ImageDataset = data.0,
                       resume: LoadedCheckpoint? = nil) throws -> Result<Int, Error> {
        let config = try Self.config(overrides)
        return try SimulatedWorld.run(size: 1) { comm -> Result<Int, Error> in
            let trainer = try Trainer(config: config, comm: comm, train: train, test: Self.data.1, resume: resume)
            trainer.checkpointRoot = runDirectory
            return Result { try trainer.run().steps }
        }[0]
    }

    private func checkpointNames(_ runDirectory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(runDirectory)/checkpoints")) ?? []).filter { $0.hasPrefix("step-") }.sorted()
    }

    // MARK: A, B, J — the manifest is input

    func testManifestFieldsOutOfRangeAreNamed() throws {
        _ = try train(["train.steps=2"], runDirectory: folder).get()
        let loaded = try Checkpoint.load("\(folder)/checkpoints/step-00000002")
        XCTAssertNil(loaded.manifest.problem())
        func problem(_ edit: (inout Checkpoint.Manifest) -> Void) -> String {
            var m = loaded.manifest
            edit(&m)
            return m.problem() ?? ""
        }
        XCTAssertTrue(problem { $0.step = -5; $0.dataStep = -5 }.contains("step -5"))
        XCTAssertTrue(problem { $0.step = 1_000_000_000; $0.dataStep = 1_000_000_000 }.contains("step 1000000000"))
        XCTAssertTrue(problem { $0.groups[0].stepCount = -3 }.contains("stepCount -3"))
        XCTAssertTrue(problem { $0.groups[0].range = [0, 1 << 40] }.contains("range"))
        XCTAssertTrue(problem { $0.files[0].name = "../../etc/passwd" }.contains("not a checkpoint file name"))
        XCTAssertTrue(problem { $0.zeroStage = 7 }.contains("zeroStage 7"))
        XCTAssertTrue(problem { $0.skippedSteps = 9 }.contains("skippedSteps 9"))
    }

    func testAnEditedManifestFailsItsChecksum() throws {
        _ = try train(["train.steps=2"], runDirectory: folder).get()
        let path = "\(folder)/checkpoints/step-00000002/manifest.json"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(text.contains("\"step\" : 2"), text)
        try text.replacingOccurrences(of: "\"step\" : 2", with: "\"step\" : 1").write(toFile: path, atomically: true, encoding: .utf8)
        let m = message { _ = try Checkpoint.load("\(folder)/checkpoints/step-00000002") }
        XCTAssertTrue(m.contains("manifest.json: checksum mismatch"), m)
    }

    func testResumingAtOrPastTheEndIsAnErrorNamingTrainSteps() throws {
        _ = try train(["train.steps=4"], runDirectory: folder).get()
        let loaded = try Checkpoint.load(try Checkpoint.resolve(folder))
        XCTAssertEqual(loaded.manifest.step, 4)
        XCTAssertNoThrow(try loaded.checkResumable(totalSteps: 5))
        let finished = message { try loaded.checkResumable(totalSteps: 4) }
        XCTAssertTrue(finished.contains("nothing left to train") && finished.contains("train.steps"), finished)
        let past = message { try loaded.checkResumable(totalSteps: 2) }
        XCTAssertTrue(past.contains("past the 2 steps") && past.contains("train.steps above 4"), past)
    }

    // MARK: Paper cuts — --resume latest with --out; export/sample name themselves

    func testResumeLatestWithOutTakesThatRunsCheckpoint() throws {
        let mine = "\(folder)/mine", newer = "\(folder)/runs/newer"
        _ = try train(["train.steps=2"], runDirectory: mine).get()
        _ = try train(["train.steps=3"], runDirectory: newer).get()
        XCTAssertEqual(try Checkpoint.resolve("latest", runDirectory: mine), "\(mine)/checkpoints/step-00000002")
        XCTAssertEqual(try Checkpoint.resolve("latest", runsRoot: "\(folder)/runs"), "\(newer)/checkpoints/step-00000003")
        let m = message { _ = try Checkpoint.resolve("latest", runDirectory: "\(folder)/empty") }
        XCTAssertTrue(m.contains("--resume latest with --out \(folder)/empty: no checkpoint"), m)
        let missing = message { _ = try Checkpoint.resolve("\(folder)/nowhere", for: "export") }
        XCTAssertTrue(missing.hasPrefix("export \(folder)/nowhere: no such file or directory") && !missing.contains("--resume"), missing)
    }

    // MARK: D, E, paper cut — run directories

    func testARunDirectoryIsClaimedOnce() throws {
        let path = "\(folder)/run"
        let first = try RunDirectory(claiming: path)
        let second = message { _ = try RunDirectory(claiming: path) }
        XCTAssertTrue(second.contains("already holds a run (metrics.jsonl)"), second)
        try first.appendMetrics({ var o = JSONObject(); o.add("step", 1); return o }())
        XCTAssertEqual(try String(contentsOfFile: "\(path)/metrics.jsonl", encoding: .utf8), "{\"step\":1}\n")
        // Default names of runs started in the same second differ.
        let date = Date(timeIntervalSince1970: 1_700_000_000)
        let cwd = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(folder)
        defer { FileManager.default.changeCurrentDirectoryPath(cwd) }
        let a = try RunDirectory.claimDefault(name: "x", date: date), b = try RunDirectory.claimDefault(name: "x", date: date)
        XCTAssertEqual(a.path, "runs/x-20231114-221320")
        XCTAssertEqual(b.path, "runs/x-20231114-221320-2")
    }

    func testResumingInPlaceKeepsEverythingItReplaces() throws {
        let path = "\(folder)/run"
        let run = try RunDirectory(claiming: path)
        for step in [1, 2, 3, 4] { try run.appendMetrics({ var o = JSONObject(); o.add("step", step); return o }()) }
        try run.write("config.yaml", text: "old config\n")
        try run.write("summary.json", text: "{\"steps\": 4}\n")
        let resumed = try RunDirectory(resuming: path, atStep: 2)
        try resumed.appendMetrics({ var o = JSONObject(); o.add("step", 3); return o }())
        XCTAssertEqual(try String(contentsOfFile: "\(path)/metrics.jsonl", encoding: .utf8),
                       "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n")
        let kept = try XCTUnwrap(resumed.preserved)
        XCTAssertEqual(kept, "\(path)/previous/step-00000002")
        XCTAssertEqual(try String(contentsOfFile: "\(kept)/metrics-after-step-2.jsonl", encoding: .utf8), "{\"step\":3}\n{\"step\":4}\n")
        XCTAssertEqual(try String(contentsOfFile: "\(kept)/config.yaml", encoding: .utf8), "old config\n")
        XCTAssertEqual(try String(contentsOfFile: "\(kept)/summary.json", encoding: .utf8), "{\"steps\": 4}\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(path)/summary.json"))
        // A second resume from the same step keeps the first one's folder.
        try resumed.write("summary.json", text: "{\"steps\": 3}\n")
        XCTAssertEqual(try RunDirectory(resuming: path, atStep: 2).preserved, "\(kept)-2")
    }

    func testConfigurationDifferencesAreListed() throws {
        let before = try ResolvedConfig(overrides: ["optimizer.lr=0.01"])
        let after = try ResolvedConfig(overrides: ["optimizer.lr=0.02", "optimizer.beta2=0.95"])
        XCTAssertEqual(after.differences(from: before), ["optimizer.lr: 0.01 → 0.02", "optimizer.beta2: unset → 0.95"])
        XCTAssertEqual(before.differences(from: before), [])
    }

    // MARK: F, G — non-finite parameters, checkpoints during a bad streak

    func testNonFiniteParametersStopTheRunAndAreNotCheckpointed() throws {
        let config = try Self.config(["train.steps=5", "checkpoint.every=2", "checkpoint.keep=3"])
        let path = folder
        let ended = try SimulatedWorld.run(size: 1) { comm -> String in
            let trainer = try Trainer(config: config, comm: comm, train: Self.data.0, test: Self.data.1)
            trainer.checkpointRoot = path
            // One weight blown up, as an update with a degenerate setting leaves it.
            trainer.params.buffer[3] = .nan
            do { _ = try trainer.run(); return "finished" } catch { return "\(error)" }
        }[0]
        XCTAssertTrue(ended.contains("after step 1 the parameters are non-finite"), ended)
        XCTAssertTrue(ended.contains("no checkpoint was written before it") && !ended.contains("consecutive steps"), ended)
        XCTAssertEqual(checkpointNames(folder), [])
    }

    func testADivergingStreakKeepsTheCheckpointBeforeIt() throws {
        _ = try train(["train.steps=2"], runDirectory: folder).get()
        let before = try Checkpoint.load("\(folder)/checkpoints/step-00000002")
        // The same run continued on data whose every row gives a NaN loss: every step is skipped.
        var poisoned = Self.data.0
        for i in poisoned.features.indices where i % 12 == 0 { poisoned.features[i] = .nan }
        let ended = try train(["train.steps=20", "train.max_bad_steps=3"], runDirectory: folder, train: poisoned, resume: before)
        guard case .failure(let error) = ended else { return XCTFail("a run with every gradient NaN must stop") }
        XCTAssertTrue("\(error)".contains("3 consecutive steps had a non-finite gradient (last: step 5)"), "\(error)")
        XCTAssertTrue("\(error)".contains("the last checkpoint before it is \(folder)/checkpoints/step-00000002"), "\(error)")
        // checkpoint.every=1 and keep=1: without the rule, step 3 and 4 would have replaced step 2.
        XCTAssertEqual(checkpointNames(folder), ["step-00000002"])
    }

    // MARK: K — an input error on one rank only

    func testAnInputErrorOnOneRankStopsEveryRankWithItsMessage() throws {
        let outcomes = try SimulatedWorld.run(size: 3) { comm -> String in
            let error: Error? = comm.rank == 1 ? ConfigError("data.dir fmnist: no such folder (rank 1's working directory)") : nil
            do { try MPISession.agreeOnInput(error, comm: comm); return "continued" } catch let rejected as InputRejected {
                return rejected.report
            }
        }
        XCTAssertEqual(outcomes, Array(repeating: "error (rank 1 of 3): data.dir fmnist: no such folder (rank 1's working directory)", count: 3))
        let same = try SimulatedWorld.run(size: 2) { comm -> String in
            do { try MPISession.agreeOnInput(ConfigError("bad key"), comm: comm); return "continued" } catch { return "\(error)" }
        }
        XCTAssertEqual(same, ["error: bad key", "error: bad key"])
        let none = try SimulatedWorld.run(size: 2) { comm -> String in try MPISession.agreeOnInput(nil, comm: comm); return "continued" }
        XCTAssertEqual(none, ["continued", "continued"])
    }

    // MARK: M — file errors name the file and the reason

    func testAFullDiskNamesTheFile() throws {
        let path = "\(folder)/run"
        let run = try RunDirectory(claiming: path)
        // /dev/full fails every write with ENOSPC: the run directory's file, as a full disk leaves it.
        try FileManager.default.removeItem(atPath: "\(path)/summary.json.tmp-\(getpid())", ifExists: true)
        try FileManager.default.createSymbolicLink(atPath: "\(path)/summary.json.tmp-\(getpid())", withDestinationPath: "/dev/full")
        let m = message { try run.write("summary.json", text: "{}") }
        XCTAssertTrue(m.contains("cannot write \(path)/summary.json: No space left on device; free space"), m)
        XCTAssertFalse(m.contains("NSCocoaErrorDomain"), m)
    }
}

private extension FileManager {
    func removeItem(atPath path: String, ifExists: Bool) throws {
        if fileExists(atPath: path) { try removeItem(atPath: path) }
    }
}
