import Models
import Tensors
import TestSupport
import XCTest

/// Every parameter gradient of the MLP against central finite differences of the loss.
final class MLPGradientTests: XCTestCase {
    /// Loss is computed in float32 (the kernels' precision) and summed in double. With step h = 1e-2 on a loss of
    /// order 1 the rounding noise is ≈ 1e-7 / 1e-2 = 1e-5 and the truncation error O(h²) ≈ 1e-4 · |f'''|; the check
    /// uses |analytic − numeric| ≤ 2e-3 + 2e-2·|numeric|, which any wrong index, transpose or missing term exceeds.
    private func check(activation: Activation, widths: [Int], rows: Int, seed: UInt64) {
        let model = MLP(widths: widths, activation: activation)
        let params = FloatBuffer(count: model.table.count)
        model.initializeParameters(params.buffer, seed: seed)
        var rng = SplitMix64(seed: seed + 1)
        let features = (0..<(rows * widths[0])).map { _ in rng.uniform(-1, 1) }
        let targets = (0..<rows).map { _ in Int32(rng.next() % UInt64(widths.last!)) }
        let scale = 1 / Float(rows)

        func loss() -> Double {
            features.withUnsafeBufferPointer { f in targets.withUnsafeBufferPointer { t in
                model.forward(params: params.pointer, batch: ModelBatch(features: f.baseAddress!, targets: t.baseAddress!, rows: rows)).lossSum
            } } / Double(rows)
        }
        let grads = FloatBuffer(count: model.table.count)
        features.withUnsafeBufferPointer { f in targets.withUnsafeBufferPointer { t in
            _ = model.forwardBackward(params: params.pointer, grads: grads.pointer,
                                      batch: ModelBatch(features: f.baseAddress!, targets: t.baseAddress!, rows: rows), lossScale: scale)
        } }
        let result = FiniteDifferenceCheck(absolute: 2e-3, relative: 2e-2).run(table: model.table, params: params, grads: grads, loss: loss)
        XCTAssertEqual(result.mismatches.map(\.description), [], "\(activation)")
        XCTAssertEqual(result.checked, model.table.count)
    }

    func testGELUGradientsMatchFiniteDifferences() {
        check(activation: .gelu, widths: [7, 6, 5, 4], rows: 3, seed: 11)
    }

    /// ReLU is not differentiable at 0; with random inputs no pre-activation lies within h of 0 for this seed
    /// (a kink inside the difference interval would show up as a failure, not pass silently).
    func testReLUGradientsMatchFiniteDifferences() {
        check(activation: .relu, widths: [7, 6, 5, 4], rows: 3, seed: 12)
    }

    func testGradientsAccumulateAcrossCalls() {
        let model = MLP(widths: [4, 3, 2], activation: .relu)
        let params = FloatBuffer(count: model.table.count)
        model.initializeParameters(params.buffer, seed: 3)
        let features: [Float] = [0.1, -0.2, 0.3, 0.4, 0.5, 0.6, -0.7, 0.8]
        let targets: [Int32] = [0, 1]
        let once = FloatBuffer(count: model.table.count), twice = FloatBuffer(count: model.table.count)
        features.withUnsafeBufferPointer { f in targets.withUnsafeBufferPointer { t in
            let batch = ModelBatch(features: f.baseAddress!, targets: t.baseAddress!, rows: 2)
            _ = model.forwardBackward(params: params.pointer, grads: once.pointer, batch: batch, lossScale: 1)
            _ = model.forwardBackward(params: params.pointer, grads: twice.pointer, batch: batch, lossScale: 1)
            _ = model.forwardBackward(params: params.pointer, grads: twice.pointer, batch: batch, lossScale: 1)
        } }
        for i in 0..<once.count { XCTAssertEqual(twice[i], 2 * once[i], accuracy: 1e-6) }
    }

    func testParameterTableNamesAndRoles() {
        let model = MLP(widths: [784, 128, 10], activation: .relu)
        XCTAssertEqual(model.table.entries.map(\.name), ["layer0.weight", "layer0.bias", "layer1.weight", "layer1.bias"])
        XCTAssertEqual(model.table.entries.map(\.role), [.matrix, .bias, .head, .bias])
        XCTAssertEqual(model.table.count, 784 * 128 + 128 + 128 * 10 + 10)
        XCTAssertEqual(model.table["layer1.weight"]?.shape, [10, 128])
    }
}

final class MLPBlockGradientTests: XCTestCase {
    func testRowBlockedBackwardEqualsWholeTensorBackward() {
        let model = MLP(widths: [5, 7, 3], activation: .gelu)
        let params = FloatBuffer(count: model.table.count)
        model.initializeParameters(params.buffer, seed: 4)
        var rng = SplitMix64(seed: 5)
        let features = (0..<(4 * 5)).map { _ in rng.uniform(-1, 1) }
        let targets: [Int32] = [0, 1, 2, 1]
        let whole = FloatBuffer(count: model.table.count), blocked = FloatBuffer(count: model.table.count)
        let sink = BlockSink(base: blocked.pointer, table: model.table)
        features.withUnsafeBufferPointer { f in targets.withUnsafeBufferPointer { t in
            let batch = ModelBatch(features: f.baseAddress!, targets: t.baseAddress!, rows: 4)
            _ = model.forwardBackward(params: params.pointer, grads: whole.pointer, batch: batch, lossScale: 0.25)
            _ = model.forwardBackward(params: params.pointer, sink: sink, batch: batch, lossScale: 0.25)
        } }
        for i in 0..<whole.count { XCTAssertEqual(blocked[i], whole[i], accuracy: 1e-6) }
        for (i, e) in model.table.entries.enumerated() {
            XCTAssertEqual(sink.finishedBlocks[i], (e.blockRows + 1) / 2, "\(e.name): every block reported once")
        }
    }
}
