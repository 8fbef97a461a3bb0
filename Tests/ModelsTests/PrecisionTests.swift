import Models
import Tensors
import XCTest

/// bf16 mixed precision (`precision = .bf16`): every matrix product of the model takes bf16-rounded operands with
/// fp32 accumulation; everything else is fp32. The gradients are compared with the same model's fp32 gradients on
/// the same weights and batch.
///
/// Tolerance. Rounding an operand to bf16 perturbs it by a relative δ ≤ u = 2⁻⁸ (round to nearest); a GEMM output
/// then moves by ≤ 2u·Σ|a||b|, and with independent rounding errors its typical relative error is ≈ u (signs
/// cancel less in outputs dominated by few terms). A gradient passes through several such products (the MLP's
/// deepest weight: 3 forward, 2 backward and its own; the GPT's: more), so per tensor the relative error in norm,
/// ‖g_bf16 − g_fp32‖ / ‖g_fp32‖, is bounded here by 8u ≈ 3.1e-2 (measured: 2e-3 … 1.3e-2, printed by the test).
/// The check is two-sided: the error must also exceed 1e-4 (≫ fp32's 6e-8 unit roundoff) in some tensor, so a
/// bf16 path that silently computed in fp32 fails.
final class PrecisionTests: XCTestCase {
    static let u = pow(2.0, -8.0)

    /// ‖a − b‖ / ‖b‖ over `range`.
    private func relativeError(_ a: FloatBuffer, _ b: FloatBuffer, _ range: Range<Int>) -> Double {
        var diff = 0.0, norm = 0.0
        for i in range {
            let d = Double(a[i] - b[i])
            diff += d * d
            norm += Double(b[i]) * Double(b[i])
        }
        return (diff / max(norm, 1e-300)).squareRoot()
    }

    private func compare(_ model: Model, params: FloatBuffer, batch: ModelBatch, label: String) {
        let fp32 = FloatBuffer(count: model.table.count), bf16 = FloatBuffer(count: model.table.count)
        model.precision = .fp32
        let lossFP32 = model.forwardBackward(params: params.pointer, grads: fp32.pointer, batch: batch, lossScale: 0.01)
        let before = GEMMContext.current.counters
        model.precision = .bf16
        let lossBF16 = model.forwardBackward(params: params.pointer, grads: bf16.pointer, batch: batch, lossScale: 0.01)
        let after = GEMMContext.current.counters
        XCTAssertGreaterThan(after.oneDNNCalls + after.widenedBF16Calls, before.oneDNNCalls + before.widenedBF16Calls,
                             "\(label): the bf16 products go through the GEMM context")
        // The loss is a sum over the batch of log-probabilities moved by ~u relative each.
        XCTAssertEqual(lossBF16.lossSum, lossFP32.lossSum, accuracy: 4 * Self.u * abs(lossFP32.lossSum), label)
        var largest = 0.0
        for e in model.table.entries {
            let error = relativeError(bf16, fp32, e.range)
            largest = max(largest, error)
            XCTAssertLessThanOrEqual(error, 8 * Self.u, "\(label) \(e.name): ‖Δg‖/‖g‖ = \(error)")
        }
        XCTAssertGreaterThan(largest, 1e-4, "\(label): bf16 gradients equal fp32 ones — the bf16 path did not run")
        print("\(label): largest per-tensor ‖g_bf16 − g_fp32‖/‖g_fp32‖ = \(largest) (bound 8u = \(8 * Self.u))")
    }

    func testMLPBF16GradientsMatchFP32() {
        let model = MLP(widths: [64, 96, 80, 10], activation: .gelu)
        let params = FloatBuffer(count: model.table.count)
        model.initializeParameters(params.buffer, seed: 3)
        let rows = 32
        var rng = SplitMix64(seed: 5)
        let features = (0..<(rows * 64)).map { _ in Float(rng.uniform(0, 1)) }
        let targets = (0..<rows).map { _ in Int32(rng.next() % 10) }
        features.withUnsafeBufferPointer { x in targets.withUnsafeBufferPointer { y in
            compare(model, params: params, batch: ModelBatch(features: x.baseAddress!, targets: y.baseAddress!, rows: rows),
                    label: "MLP 64-96-80-10")
        } }
    }

    func testGPTBF16GradientsMatchFP32() {
        let model = GPT(GPTConfig(vocabulary: 32, context: 16, layers: 2, heads: 2, width: 32, tiedHead: true))
        let params = FloatBuffer(count: model.table.count)
        model.initializeParameters(params.buffer, seed: 4)
        let rows = 4, n = rows * 16
        var rng = SplitMix64(seed: 6)
        let tokens = (0..<n).map { _ in Int32(rng.next() % 32) }, targets = (0..<n).map { _ in Int32(rng.next() % 32) }
        tokens.withUnsafeBufferPointer { t in targets.withUnsafeBufferPointer { y in
            compare(model, params: params, batch: ModelBatch(tokens: t.baseAddress!, targets: y.baseAddress!, rows: rows),
                    label: "GPT 2 layers × 32")
        } }
    }

    /// fp32 stays exactly what it was: the precision switch routes fp32 products to cblas_sgemm unchanged.
    func testFP32PathIsUnchangedByTheSwitch() {
        let model = MLP(widths: [16, 12, 4], activation: .relu)
        let params = FloatBuffer(count: model.table.count)
        model.initializeParameters(params.buffer, seed: 1)
        let features = (0..<(8 * 16)).map { Float($0 % 7) / 7 }, targets = (0..<8).map { Int32($0 % 4) }
        let first = FloatBuffer(count: model.table.count), second = FloatBuffer(count: model.table.count)
        features.withUnsafeBufferPointer { x in targets.withUnsafeBufferPointer { y in
            let batch = ModelBatch(features: x.baseAddress!, targets: y.baseAddress!, rows: 8)
            _ = model.forwardBackward(params: params.pointer, grads: first.pointer, batch: batch, lossScale: 1)
            model.precision = .bf16
            _ = model.forwardBackward(params: params.pointer, grads: second.pointer, batch: batch, lossScale: 1)
            model.precision = .fp32
            second.zero()
            _ = model.forwardBackward(params: params.pointer, grads: second.pointer, batch: batch, lossScale: 1)
        } }
        XCTAssertEqual(first.array, second.array)
    }
}
