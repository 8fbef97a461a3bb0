import Datasets
import Distributed
import SwiftMPI
import Tensors
import TestSupport
import Training
import XCTest

/// `train.precision: bf16` through the trainer and the engine: configuration, the bf16 weight copy and the fp32
/// masters (stage equivalence in bf16 is in ShardingTests and the mpi checks).
final class PrecisionTrainingTests: XCTestCase {
    private func config(_ overrides: [String], world: Int = 1) throws -> TrainConfig {
        try TrainConfig(try ResolvedConfig(name: "precision", overrides: overrides), worldSize: world)
    }

    /// Without AVX512-BF16 or AMX-BF16, bf16 is a configuration error naming what is missing and the way out; with
    /// them (or forced) it is accepted.
    func testBF16NeedsTheCPUFeatureUnlessForced() throws {
        if let missing = CPUFeatures.bf16Unsupported() {
            XCTAssertThrowsError(try config(["train.precision=bf16"])) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(missing), text)
                XCTAssertTrue(text.contains("train.force_bf16=true") && text.contains("train.precision=fp32"), text)
            }
        } else {
            XCTAssertEqual(try config(["train.precision=bf16"]).precision, .bf16)
        }
        XCTAssertEqual(try config(["train.precision=bf16", "train.force_bf16=true"]).precision, .bf16)
        XCTAssertEqual(try config([]).precision, .fp32, "fp32 is the default")
    }

    /// After bf16 steps at stage 1 on 2 simulated ranks: each rank holds the fp32 masters of what it owns; of what
    /// the other rank owns, matrices and heads arrive as bf16(master) — bit for bit the round-to-nearest of the
    /// master — and biases as the exact masters. The gathered masters (checkpoints, export) agree on both ranks and
    /// keep fp32 bits bf16 cannot hold. Parameter memory: 4 B per parameter plus the packed gather buffer, 2 B per
    /// matrix element and 4 B per bias element.
    func testBF16WeightGatherSendsMatricesAsBF16AndKeepsMasters() throws {
        let data = ImageDataset.synthetic(count: 200, featureCount: 12, classes: 3, seed: 2)
        let config = try self.config(["model.hidden=[16]", "train.steps=4", "train.global_batch=16", "zero.stage=1",
                                      "optimizer.lr=0.01", "train.precision=bf16", "train.force_bf16=true",
                                      "train.log_every=2"], world: 2)
        let results = try SimulatedWorld.run(size: 2) { comm in
            let trainer = try Trainer(config: config, comm: comm, train: data, test: data)
            let summary = try trainer.run()
            return (params: trainer.params.array, masters: try trainer.engine.masterParameters().array,
                    owned: trainer.engine.ownedRanges, table: trainer.engine.plan.table, summary: summary)
        }
        let masters = results[0].masters
        XCTAssertEqual(results[1].masters, masters, "the gathered masters are the same on both ranks")
        let table = results[0].table
        var rounded = [UInt16](repeating: 0, count: masters.count)
        BF16.round(masters, into: &rounded, count: masters.count)
        for (rank, r) in results.enumerated() {
            for entry in table.entries {
                for i in entry.range {
                    let owned = r.owned.contains { $0.contains(i) }
                    let expected = owned || !(entry.role == .matrix || entry.role == .head)
                        ? masters[i] : Float(bitPattern: UInt32(rounded[i]) << 16)
                    XCTAssertEqual(r.params[i].bitPattern, expected.bitPattern,
                                   "rank \(rank) \(entry.name)[\(i - entry.offset)] (owned: \(owned))")
                }
            }
        }
        XCTAssertGreaterThan(masters.filter { $0.bitPattern & 0xFFFF != 0 }.count, masters.count / 2,
                             "masters keep fp32 bits a bf16 copy would drop")
        let summary = results[0].summary
        XCTAssertTrue(summary.evalLoss.isFinite)
        XCTAssertEqual(summary.precision, "bf16")
        let matrixElements = table.entries.filter { $0.role == .matrix || $0.role == .head }.reduce(0) { $0 + $1.count }
        let packed = 2 * matrixElements + 4 * (masters.count - matrixElements)
        XCTAssertEqual(summary.parameterBytesPerRank, [4 * masters.count + packed, 4 * masters.count + packed])
    }

    /// At stage 0 both precisions keep one fp32 copy per rank (bf16 rounds GEMM operands on the fly; nothing is
    /// gathered, so there is no packed buffer).
    func testStage0ParameterBytesAreOneCopyInEitherPrecision() throws {
        let data = ImageDataset.synthetic(count: 100, featureCount: 12, classes: 3, seed: 2)
        for precision in ["fp32", "bf16"] {
            let config = try self.config(["model.hidden=[16]", "train.steps=1", "train.global_batch=8",
                                          "train.precision=\(precision)", "train.force_bf16=true"])
            let summary = try SimulatedWorld.run(size: 1) { comm in
                try Trainer(config: config, comm: comm, train: data, test: data).run()
            }[0]
            XCTAssertEqual(summary.parameterBytesPerRank, [4 * summary.paramCount], precision)
            XCTAssertEqual(summary.precision, precision)
        }
    }
}

/// `zero.comm_dtype: bf16`: the reduce-scatter's messages carry bf16 and each owner sums in fp32.
final class GradientPayloadTests: XCTestCase {
    private func run(stage: Int, payload: String, world: Int) throws -> (params: [Float], summary: TrainSummary) {
        let data = StageEquivalence.data()
        let config = try TrainConfig(try ResolvedConfig(name: "payload", overrides: [
            "model.hidden=[20, 16]", "train.steps=12", "train.global_batch=\(8 * world)", "optimizer.name=sgd",
            "optimizer.momentum=0.9", "optimizer.lr=0.05", "zero.stage=\(stage)", "zero.bucket_mb=0.001",
            "zero.comm_dtype=\(payload)", "train.log_every=6"]), worldSize: world)
        return try SimulatedWorld.run(size: world) { comm -> ([Float], TrainSummary) in
            let trainer = try Trainer(config: config, comm: comm, train: data.train, test: data.test)
            let summary = try trainer.run()
            return (trainer.params.array, summary)
        }[0]
    }

    /// SGD with momentum is linear in the gradient, so the parameters move by lr·Σ(momentum-weighted) gradient
    /// perturbations: each peer contribution is off by ≤ u = 2⁻⁸ relative, so after k = 12 steps
    /// |Δθ| ≤ lr·k·Σ_t|m_t|·u, about 12 × 0.05 × 10 × 0.004 ≈ 2e-2 in the worst case for these gradients (|g| ≲ 1), but
    /// the rounding errors have random signs and mostly cancel (measured 2e-5), so the check bounds the max difference
    /// by 1e-3 — far below the O(lr) = 5e-2 a dropped or doubled block would cause — and requires it to be non-zero
    /// (the payload really was rounded).
    /// Bytes sent per step halve exactly.
    func testBF16PayloadHalvesBytesAndStaysNearFP32() throws {
        for stage in [1, 2] {
            let fp32 = try run(stage: stage, payload: "fp32", world: 3), bf16 = try run(stage: stage, payload: "bf16", world: 3)
            let worst = zip(bf16.params, fp32.params).map { abs($0 - $1) }.max()!
            print("[comm bf16] stage \(stage): max |Δθ| = \(worst); bytes/step \(fp32.summary.gradientBytesSentPerStep) → \(bf16.summary.gradientBytesSentPerStep)")
            XCTAssertGreaterThan(worst, 0, "stage \(stage): bf16 payloads changed nothing")
            XCTAssertLessThanOrEqual(worst, 1e-3, "stage \(stage)")
            XCTAssertEqual(bf16.summary.gradientBytesSentPerStep * 2, fp32.summary.gradientBytesSentPerStep, "stage \(stage)")
            XCTAssertGreaterThan(bf16.summary.gradientBytesSentPerStep, 0)
        }
    }

    func testBF16PayloadNeedsAReduceScatterStage() {
        XCTAssertThrowsError(try TrainConfig(try ResolvedConfig(name: "p", overrides: ["zero.comm_dtype=bf16"]), worldSize: 2)) {
            XCTAssertTrue("\($0)".contains("zero.stage=1"), "\($0)")
        }
    }
}
