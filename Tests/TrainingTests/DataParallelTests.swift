import Datasets
import Distributed
import Optimizers
import SwiftMPI
import Tensors
import TestSupport
import Training
import XCTest

/// Multi-rank logic in one process, with `SimulatedWorld` (threads) standing in for MPI. The same properties are
/// checked with real MPI under `mpirun -n 4` by swift-train-mpi-checks (launch/test runs both).
final class DataParallelTests: XCTestCase {
    /// The mpirun check's property and configuration (TestSupport.DataParallelEquivalence) on 4 simulated ranks:
    /// k steps on 4 ranks with batch b = 1 rank with batch 4b, within each case's tolerance.
    func testFourRanksEqualOneRankWithFourTimesTheBatch() throws {
        let data = DataParallelEquivalence.data()
        for (optimizer, tolerance) in DataParallelEquivalence.cases {
            let distributed = try SimulatedWorld.run(size: 4) { comm -> [Float] in
                try DataParallelEquivalence.trainDistributed(optimizer: optimizer, comm: comm, data: data).params
            }
            for r in 1..<4 { XCTAssertEqual(distributed[r], distributed[0], "\(optimizer): rank \(r) diverged") }
            let single = try DataParallelEquivalence.trainSingle(optimizer: optimizer, world: 4, data: data)
            XCTAssertLessThanOrEqual(StageEquivalence.worstRelativeDifference(distributed[0], single), tolerance, optimizer)
            let solo = try DataParallelEquivalence.config(optimizer: optimizer, globalBatch: DataParallelEquivalence.perRankBatch, world: 1)
            let untrained = try SimulatedWorld.run(size: 1) { comm in
                try Trainer(config: solo, comm: comm, train: data.train, test: data.test).params.array
            }[0]
            XCTAssertNotEqual(single, untrained, "\(optimizer): training must have changed the parameters")
        }
    }

    /// Any batch on any world size: 256 rows in ⌈⌉/⌊⌋ shares on 3, 5 and 7 simulated ranks with 3 unequal
    /// micro-batches each = 1 rank with all 256 at once, for AdamW and LAMB (the mpi checks do it on 1–4 real ranks).
    func testUnevenSharesOnAnyWorldSizeEqualOneRank() throws {
        let data = DataParallelEquivalence.data()
        for (optimizer, tolerance) in DataParallelEquivalence.unevenCases {
            let single = try DataParallelEquivalence.trainSingle(optimizer: optimizer, world: 1, data: data, uneven: true)
            for world in [3, 5, 7] {
                let distributed = try SimulatedWorld.run(size: world) { comm -> [Float] in
                    try DataParallelEquivalence.trainDistributed(optimizer: optimizer, comm: comm, data: data, uneven: true).params
                }
                for r in 1..<world { XCTAssertEqual(distributed[r], distributed[0], "\(optimizer): rank \(r) of \(world) diverged") }
                let worst = StageEquivalence.worstRelativeDifference(distributed[0], single)
                XCTAssertLessThanOrEqual(worst, tolerance, "\(optimizer) on \(world) ranks")
            }
        }
    }

    /// A two-tensor engine on one simulated rank: w (matrix, decayed) and b (bias).
    private static func engine(_ comm: Communicator, stage: ZeroStage = .replicated, clip: Double? = nil,
                        optimizer: String = "adamw") -> ShardedDataParallel {
        var layout = ParameterTable()
        layout.add("w", shape: [2, 2], role: .matrix)
        layout.add("b", shape: [2], role: .bias)
        let plan = ShardPlan(table: layout, groups: [GroupSpec(name: optimizer, sharding: .element, tensorNames: ["w", "b"])],
                             worldSize: comm.size)
        return ShardedDataParallel(comm: comm, plan: plan, stage: stage, clipNorm: clip, layers: [[0], [1]], backwardLayers: [1, 0],
                                   makeOptimizer: { _, n, _ in OptimizerCatalog.make(optimizer, count: n, config: ResolvedConfig()) },
                                   hyperparameters: { $0.role == .bias ? (0, 1) : (0.1, 1) })
    }

    private static func write(_ e: ShardedDataParallel, _ values: [Float]) {
        e.beginMicroBatch(0, rows: 1)
        let table = e.plan.table
        for (i, entry) in table.entries.enumerated().reversed() {
            for rows in e.sink.rowBlocks(i) {
                let g = e.sink.gradient(i, rows: rows)
                let start = entry.offset + rows.lowerBound * entry.blockCols
                // Each rank writes its share of the mean, 1/world of it (the engine sums shares).
                for k in 0..<(rows.count * entry.blockCols) { g[k] += values[start + k] / Float(e.worldSize) }
                e.sink.finished(i, rows: rows)
            }
        }
        e.endMicroBatch()
    }

    func testNonFiniteGradientOnOneRankSkipsTheStepEverywhere() throws {
        for stage in ZeroStage.allCases {
            let results = try SimulatedWorld.run(size: 3) { comm -> ([Float], Bool, Int) in
                let e = Self.engine(comm, stage: stage)
                e.initializeParameters { $0.update(from: [1, 2, 3, 4, 5, 6]) }
                // Only rank 2 sees a NaN.
                Self.write(e, comm.rank == 2 ? [0.1, .nan, 0.1, 0.1, 0.1, 0.1] : [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
                let report = try e.step(lr: 0.1)
                return (try e.masterParameters().array, report.skipped, e.optimizers[0].stepCount)
            }
            for (rank, r) in results.enumerated() {
                XCTAssertTrue(r.1, "stage \(stage.rawValue) rank \(rank) did not skip")
                XCTAssertEqual(r.0, [1, 2, 3, 4, 5, 6], "parameters changed on a skipped step")
                XCTAssertEqual(r.2, 0, "optimizer state advanced on a skipped step")
            }
        }
    }

    func testGlobalNormClippingCountsEachElementOnce() throws {
        for stage in ZeroStage.allCases {
            let results = try SimulatedWorld.run(size: 2) { comm -> ([Float], StepReport) in
                let e = Self.engine(comm, stage: stage, clip: 1, optimizer: "sgd")
                // Averaged over 2 ranks: g = [3, 4, 0, 0, 0, 0], ‖g‖ = 5.
                Self.write(e, comm.rank == 0 ? [6, 0, 0, 0, 0, 0] : [0, 8, 0, 0, 0, 0])
                let report = try e.step(lr: 1)
                return (try e.masterParameters().array, report)
            }
            for r in results {
                XCTAssertTrue(r.1.clipped)
                XCTAssertEqual(r.1.gradNorm, 5, accuracy: 1e-9, "stage \(stage.rawValue)")
                XCTAssertEqual(r.0[0], -0.6, accuracy: 1e-5)
                XCTAssertEqual(r.0[1], -0.8, accuracy: 1e-5)
            }
        }
    }
}

/// A checkpoint written on 2 ranks resumes on 3 with a global batch that does not divide by 3 (20 = 7 + 7 + 6),
/// and ends where one uninterrupted rank does (only summation order differs: the equivalence tolerance, 1e-5).
final class UnevenResumeTests: XCTestCase {
    func testRunWrittenOnTwoRanksResumesOnThreeWithAnUnevenBatch() throws {
        let data = DataParallelEquivalence.data()
        @Sendable func config(world: Int, stopAt: Int = 0) throws -> TrainConfig {
            try TrainConfig(try ResolvedConfig(name: "uneven-resume", overrides: [
                "model.hidden=[16]", "train.steps=8", "train.global_batch=20", "optimizer.name=adamw", "optimizer.lr=0.01",
                "train.log_every=4", "checkpoint.every=4", "train.stop_at=\(stopAt)"]), worldSize: world)
        }
        let reference = try SimulatedWorld.run(size: 1) { comm -> [Float] in
            let t = try Trainer(config: try config(world: 1), comm: comm, train: data.train, test: data.test)
            _ = try t.run()
            return t.params.array
        }[0]
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("uneven-resume-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        _ = try SimulatedWorld.run(size: 2) { comm in
            let t = try Trainer(config: try config(world: 2, stopAt: 4), comm: comm, train: data.train, test: data.test)
            t.checkpointRoot = root
            do { _ = try t.run(); XCTFail("train.stop_at=4 should pause the run") } catch TrainingStopped.paused(let step) {
                XCTAssertEqual(step, 4)
            }
        }
        let checkpoint = try Checkpoint.load("\(root)/checkpoints/step-00000004")
        XCTAssertEqual(checkpoint.manifest.worldSize, 2)
        let resumed = try SimulatedWorld.run(size: 3) { comm -> [Float] in
            let t = try Trainer(config: try config(world: 3), comm: comm, train: data.train, test: data.test, resume: checkpoint)
            XCTAssertEqual(t.startStep, 4)
            _ = try t.run()
            return t.params.array
        }
        for r in 1..<3 { XCTAssertEqual(resumed[r], resumed[0], "rank \(r) differs") }
        let worst = StageEquivalence.worstRelativeDifference(resumed[0], reference)
        XCTAssertLessThanOrEqual(worst, 1e-5, "resumed on 3 ranks vs uninterrupted on 1")
    }
}
