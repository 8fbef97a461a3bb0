import Datasets
import Experiments
import Foundation
import SwiftMPI
import Training
import XCTest

/// `swift-train branch` (issue 17, item 1): the CBS rule on synthetic loss tables with known answers, bad input named
/// before any rank communicates, and a real branching of a real checkpoint on 2 simulated ranks, resumed.
final class BranchingTests: XCTestCase {
    /// Losses L(b) = L∞ + c·b/(b + B*) rise past B* ≈ the knee: with tolerance 1 % of L(b_min) the CBS is the largest
    /// batch at most 1 % above the smallest batch's loss, computed here by hand from the formula.
    func testCriticalBatchRuleOnSyntheticTables() {
        let batches = [32, 64, 128, 256, 512, 1024, 2048, 4096]
        let loss = { (b: Int) in 0.5 + 0.2 * Double(b) / Double(b + 20_000) }
        // L(32) = 0.500320; 1 % above is 0.505323: L(512) = 0.504993 is within, L(1024) = 0.509742 is not.
        XCTAssertEqual(CriticalBatchRule.criticalBatch(batches.map { ($0, loss($0)) }, tolerance: 0.01), 512)
        // Order does not matter; a tolerance of 0 accepts only ties with the smallest batch.
        XCTAssertEqual(CriticalBatchRule.criticalBatch(batches.reversed().map { ($0, loss($0)) }, tolerance: 0.01), 512)
        XCTAssertEqual(CriticalBatchRule.criticalBatch(batches.map { ($0, loss($0)) }, tolerance: 0), 32)
        // Every smaller batch must be within tolerance: a lucky large batch after a miss does not count.
        XCTAssertEqual(CriticalBatchRule.criticalBatch([(32, 1.0), (64, 1.005), (128, 1.02), (256, 1.0)], tolerance: 0.01), 64)
        // A diverged branch (NaN) ends the run of acceptable batches; no finite reference: undefined.
        XCTAssertEqual(CriticalBatchRule.criticalBatch([(32, 1.0), (64, .nan), (128, 1.0)], tolerance: 0.01), 32)
        XCTAssertNil(CriticalBatchRule.criticalBatch([(32, .nan), (64, 1.0)], tolerance: 0.01))
        XCTAssertNil(CriticalBatchRule.criticalBatch([], tolerance: 0.01))
        // Flat losses: every batch is within tolerance.
        XCTAssertEqual(CriticalBatchRule.criticalBatch(batches.map { ($0, 2.0) }, tolerance: 0.01), 4096)
    }

    private static let data = (ImageDataset.synthetic(count: 512, featureCount: 12, classes: 4, seed: 1),
                               ImageDataset.synthetic(count: 128, featureCount: 12, classes: 4, seed: 2))

    /// A 2-rank run with checkpoints at steps 4 and 8 under `root`.
    private func makeRun(_ root: String) throws {
        let config = try TrainConfig(try ResolvedConfig(name: "branch-run", overrides: [
            "model.hidden=[16]", "train.global_batch=16", "train.steps=8", "optimizer.name=adamw", "optimizer.lr=0.01",
            "train.log_every=1", "checkpoint.every=4", "checkpoint.keep=5"]), worldSize: 2)
        _ = try SimulatedWorld.run(size: 2) { comm in
            let t = try Trainer(config: config, comm: comm, train: Self.data.0, test: Self.data.1)
            t.checkpointRoot = root
            _ = try t.run()
        }
    }

    private func plan(_ root: String, steps: [Int], batches: [Int], world: Int = 2) throws -> BranchPlan {
        try BranchPlan(runPath: root, steps: steps, batches: batches, examples: 64, tolerance: 0.01, lrScaling: .sqrt,
                       referenceBatch: nil, maxRankBatch: 16, worldSize: world, datasetSize: { _ in 512 })
    }

    func testBadInputNamesTheItem() throws {
        let root = NSTemporaryDirectory() + "branch-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try makeRun(root)
        func message(_ body: () throws -> Void) -> String { do { try body(); return "" } catch { return "\(error)" } }
        let missing = message { _ = try plan(root, steps: [4, 6], batches: [16]) }
        XCTAssertTrue(missing.contains("--steps 6: \(root) has no checkpoint at step 6") && missing.contains("it has 4, 8"), missing)
        let small = message { _ = try plan(root, steps: [4], batches: [16, 2], world: 3) }
        XCTAssertTrue(small.contains("--batches 2: smaller than the 3 ranks"), small)
        // Derived settings: accumulation from --max-rank-batch, sqrt-scaled lr, the branch's step count.
        let p = try plan(root, steps: [4], batches: [16, 64])
        XCTAssertEqual(p.branches.map(\.config.gradAccum), [1, 2])
        XCTAssertEqual(p.branches[1].config.lr, 0.02, accuracy: 1e-12)
        XCTAssertEqual(p.branches.map(\.steps), [4, 1])
        XCTAssertEqual(p.branches[0].examplesAtBranch, 64)
    }

    /// Branches of a real checkpoint on 2 simulated ranks: each trains exactly --examples examples from the
    /// checkpoint's data position; results.csv and cbs.csv are written; a second run skips finished branches.
    func testBranchesRunFromTheCheckpointAndResume() throws {
        let root = NSTemporaryDirectory() + "branch-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try makeRun(root)
        let p = try plan(root, steps: [4, 8], batches: [16, 32, 64])
        let out = "\(root)/branches"
        try createFolders("\(out)/branches")
        let factory: SweepTaskFactory = { $0.imageTask(train: Self.data.0, test: Self.data.1) }
        let cbs = try SimulatedWorld.run(size: 2) { comm in
            try BranchRunner(plan: p, comm: comm, out: comm.rank == 0 ? out : nil, console: nil, taskFactory: factory).run()
        }[0]
        XCTAssertEqual(cbs.map(\.step), [4, 8])
        XCTAssertEqual(cbs.map(\.examples), [64, 128])
        for r in cbs { XCTAssertNotNil(r.cbs); XCTAssertTrue(r.referenceLoss.isFinite) }
        let results = try String(contentsOfFile: "\(out)/results.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(results.count, 7)
        for line in results.dropFirst() { XCTAssertTrue(line.contains(",64,"), "every branch trains 64 examples: \(line)") }
        // Resume: nothing left to run, the same table comes back.
        let modified = try FileManager.default.attributesOfItem(atPath: "\(out)/branches/step-00000004_b16/summary.json")[.modificationDate] as? Date
        let again = try SimulatedWorld.run(size: 2) { comm in
            try BranchRunner(plan: p, comm: comm, out: comm.rank == 0 ? out : nil, console: nil, taskFactory: factory).run()
        }[0]
        XCTAssertEqual(again.map(\.cbs), cbs.map(\.cbs))
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: "\(out)/branches/step-00000004_b16/summary.json")[.modificationDate] as? Date, modified)
    }
    /// The lr-grid table of `batch-report --lr-grid`: best per batch, a diverged run (non-finite loss) shown as such
    /// and never best, a missing lr as "—", an unfinished run (no summary.json) and foreign folders left out.
    func testLearningRateGridTables() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lr-grid-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func run(_ name: String, _ summary: String?) throws {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(name)", withIntermediateDirectories: true)
            try summary?.write(toFile: "\(dir)/\(name)/summary.json", atomically: true, encoding: .utf8)
        }
        try run("adamw-b8-lr0.001", #"{"eval_loss": 2.0}"#)
        try run("adamw-b8-lr0.003", #"{"eval_loss": 2.1}"#)
        try run("adamw-b32-lr0.003", #"{"eval_loss": 2.2}"#)
        try run("adamw-b32-lr0.01", #"{"eval_loss": null}"#)
        try run("sgd-b8-lr0.1", nil)
        try run("notes", #"{"eval_loss": 1.0}"#)
        let (md, best) = BatchPlots.learningRateTables(try BatchPlots.learningRateGrid(dir))
        XCTAssertTrue(md.contains("| B | lr 0.001 | lr 0.003 | lr 0.01 |"), md)
        XCTAssertTrue(md.contains("| 8 | **2.0000** | 2.1000 | — |"), md)
        XCTAssertTrue(md.contains("| 32 | — | **2.2000** | diverged |"), md)
        XCTAssertFalse(md.contains("sgd"), md)
        XCTAssertEqual(best.count, 1)
        XCTAssertEqual(best[0].points.map(\.batch), [8, 32])
        XCTAssertEqual(best[0].points.map(\.lr), [0.001, 0.003])
    }
}
