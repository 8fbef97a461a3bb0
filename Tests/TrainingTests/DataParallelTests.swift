import Datasets
import Distributed
import Optimizers
import SwiftMPI
import Tensors
import Training
import XCTest

/// Multi-rank logic in one process, with `SimulatedWorld` (threads) standing in for MPI. The same properties are
/// checked with real MPI under `mpirun -n 4` by swift-train-mpi-checks (launch/test runs both).
final class DataParallelTests: XCTestCase {
    /// Same property as the mpirun check: k steps on 4 ranks with batch b = 1 rank with batch 4b (float
    /// summation order differs only; tolerance 1e-5 relative to max(1, |θ|), see MPIChecks).
    func testFourRanksEqualOneRankWithFourTimesTheBatch() throws {
        let train = ImageDataset.synthetic(count: 256, featureCount: 12, classes: 4, seed: 1)
        let test = ImageDataset.synthetic(count: 64, featureCount: 12, classes: 4, seed: 2)
        func config(_ world: Int) throws -> TrainConfig {
            var c = ResolvedConfig(name: "t")
            for s in ["model.hidden=[10]", "train.steps=6", "train.global_batch=32", "train.log_every=3",
                      "optimizer.lr=0.01", "schedule.warmup_steps=2"] { try c.override(s) }
            return try TrainConfig(c, worldSize: world)
        }
        let four = try config(4), one = try config(1)
        let distributed = try SimulatedWorld.run(size: 4) { comm -> [Float] in
            let t = try Trainer(config: four, comm: comm, train: train, test: test)
            _ = try t.run()
            return t.params.array
        }
        let single = try SimulatedWorld.run(size: 1) { comm -> [Float] in
            let t = try Trainer(config: one, comm: comm, train: train, test: test)
            _ = try t.run()
            return t.params.array
        }[0]
        for r in 1..<4 { XCTAssertEqual(distributed[r], distributed[0], "rank \(r) diverged") }
        let worst = zip(distributed[0], single).map { abs($0 - $1) / max(1, abs($1)) }.max()!
        XCTAssertLessThanOrEqual(worst, 1e-5)
        XCTAssertNotEqual(distributed[0], try SimulatedWorld.run(size: 1) { comm -> [Float] in
            let t = try Trainer(config: one, comm: comm, train: train, test: test)
            return t.params.array  // untrained: training must have changed the parameters
        }[0])
    }

    /// A two-tensor engine on one simulated rank: w (matrix, decayed) and b (bias).
    private static func engine(_ comm: Communicator, stage: ZeroStage = .replicated, clip: Double? = nil,
                        optimizer: String = "adamw") -> ShardedDataParallel {
        var layout = ParameterTable()
        layout.add("w", shape: [2, 2], role: .matrix)
        layout.add("b", shape: [2], role: .bias)
        let plan = ShardPlan(table: layout, groups: [GroupSpec(name: optimizer, sharding: .element, tensorNames: ["w", "b"])],
                             worldSize: comm.size)
        return ShardedDataParallel(comm: comm, plan: plan, stage: stage, clipNorm: clip,
                                   makeOptimizer: { _, n, _ in OptimizerCatalog.make(optimizer, count: n, config: ResolvedConfig()) },
                                   hyperparameters: { $0.role == .bias ? (0, 1) : (0.1, 1) })
    }

    private static func write(_ e: ShardedDataParallel, _ values: [Float]) {
        e.beginMicroBatch(0)
        let table = e.plan.table
        for (i, entry) in table.entries.enumerated().reversed() {
            for rows in e.sink.rowBlocks(i) {
                let g = e.sink.gradient(i, rows: rows)
                let start = entry.offset + rows.lowerBound * entry.blockCols
                // Each rank writes its share of the mean (the engine sums shares).
                for k in 0..<(rows.count * entry.blockCols) { g[k] += values[start + k] * e.contributionScale }
                e.sink.finished(i, rows: rows)
            }
        }
        e.endMicroBatch()
    }

    func testNonFiniteGradientOnOneRankSkipsTheStepEverywhere() throws {
        for stage in ZeroStage.allCases {
            let results = try SimulatedWorld.run(size: 3) { comm -> ([Float], Bool, Int) in
                let e = Self.engine(comm, stage: stage)
                e.params.buffer.update(from: [1, 2, 3, 4, 5, 6])
                // Only rank 2 sees a NaN.
                Self.write(e, comm.rank == 2 ? [0.1, .nan, 0.1, 0.1, 0.1, 0.1] : [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
                let report = try e.step(lr: 0.1)
                return (e.params.array, report.skipped, e.optimizers[0].stepCount)
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
                return (e.params.array, report)
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
