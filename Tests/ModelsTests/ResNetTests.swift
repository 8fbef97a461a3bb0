import Models
import Tensors
import TestSupport
import XCTest

/// The whole ResNet: every parameter gradient against finite differences of the training-mode loss, row-blocked
/// sinks, the parameter table's order and roles, and evaluation with running statistics.
final class ResNetTests: XCTestCase {
    /// A tiny network (8×8 images, width 2, one block per stage: every unit kind, both shortcut kinds, stride 2).
    private func tiny() -> (ResNet, FloatBuffer, [Float], [Int32]) {
        let model = ResNet(imageChannels: 1, imageSide: 8, classes: 3, depth: 1, width: 2)
        let params = FloatBuffer(count: model.table.count)
        model.initializeParameters(params.buffer, seed: 31)
        var rng = SplitMix64(seed: 32)
        let rows = 8
        let features = (0..<(rows * 64)).map { _ in rng.uniform(-1, 1) }
        let targets = (0..<rows).map { Int32($0 % 3) }
        return (model, params, features, targets)
    }

    private func withBatch<T>(_ f: [Float], _ t: [Int32], _ body: (ModelBatch) -> T) -> T {
        f.withUnsafeBufferPointer { f in t.withUnsafeBufferPointer { t in
            body(ModelBatch(features: f.baseAddress!, targets: t.baseAddress!, rows: t.count))
        } }
    }

    /// The loss sum over 8 rows (order 10), fp32 kernels, double loss sum. The loss has a ReLU kink wherever a unit
    /// crosses 0 and batch norm makes it curved, so large steps measure the kinks, not the slope: measured on this
    /// seed, the numeric derivative moves by up to 0.07 between h = 1e-2 and 1e-3 and settles to within 1e-3 of the
    /// analytic one from h = 3e-4 on. Step 3e-4: rounding ≈ 1e-6 / 6e-4 ≈ 2e-3; tolerance 5e-3 absolute + 2e-2
    /// relative. A wrong index, a missing term or a dropped shortcut gradient exceeds it by orders of magnitude.
    func testGradientsMatchFiniteDifferences() {
        let (model, params, features, targets) = tiny()
        let grads = FloatBuffer(count: model.table.count)
        _ = withBatch(features, targets) { model.forwardBackward(params: params.pointer, grads: grads.pointer, batch: $0, lossScale: 1) }
        func loss() -> Double {
            withBatch(features, targets) { model.forwardTraining(params: params.pointer, batch: $0).lossSum }
        }
        let result = FiniteDifferenceCheck(step: 3e-4, absolute: 5e-3, relative: 2e-2)
            .run(table: model.table, params: params, grads: grads, loss: loss)
        // An element whose ±h interval holds a kink is measured again at h = 1e-4 (a kink's error shrinks with h, a
        // wrong gradient's does not; rounding at that step ≈ 1e-6 / 2e-4 = 5e-3, so the absolute tolerance doubles).
        let remaining = result.mismatches.filter { m in
            let numeric = FiniteDifferenceCheck.derivative(params: params, element: model.table[m.tensor]!.offset + m.element,
                                                           step: 1e-4, loss: loss)
            return !(abs(m.analytic - numeric) <= 1e-2 + 2e-2 * abs(numeric))
        }
        XCTAssertEqual(remaining.map(\.description), [])
        XCTAssertLessThan(result.mismatches.count, result.checked / 100, "kinks hit only a few elements")
        XCTAssertEqual(result.checked, model.table.count)
        // β of a norm feeding straight into the next norm has no gradient (a constant shift is normalised away);
        // every kernel, every γ and the head must have one.
        for e in model.table.entries where !e.name.hasSuffix("bn.bias") {
            XCTAssertGreaterThan(result.largestGradient[e.name]!, 1e-3, e.name)
        }
    }

    func testRowBlockedSinkEqualsFlatGradient() {
        let (model, params, features, targets) = tiny()
        let whole = FloatBuffer(count: model.table.count), blocked = FloatBuffer(count: model.table.count)
        let sink = BlockSink(base: blocked.pointer, table: model.table)
        withBatch(features, targets) {
            _ = model.forwardBackward(params: params.pointer, grads: whole.pointer, batch: $0, lossScale: 0.125)
            _ = model.forwardBackward(params: params.pointer, sink: sink, batch: $0, lossScale: 0.125)
        }
        for i in 0..<whole.count { XCTAssertEqual(blocked[i], whole[i], accuracy: 1e-6) }
        for (i, e) in model.table.entries.enumerated() {
            XCTAssertEqual(sink.finishedBlocks[i], (e.blockRows + 1) / 2, "\(e.name): every block reported once")
        }
    }

    /// Forward order, grouped by block; kernels are [O, C·K·K] matrices so Muon, LARS and LAMB apply.
    func testParameterTableOrderRolesAndGroups() {
        let model = ResNet(imageChannels: 1, imageSide: 28, classes: 10, depth: 2, width: 16)
        XCTAssertEqual(model.tensorGroups.count, 1 + 6 + 1)
        XCTAssertEqual(model.tensorGroups.flatMap { $0 }, model.table.entries.map(\.name))
        XCTAssertEqual(model.tensorGroups[3], ["block2.conv1.conv.weight", "block2.conv1.bn.weight", "block2.conv1.bn.bias",
                                               "block2.conv2.conv.weight", "block2.conv2.bn.weight", "block2.conv2.bn.bias",
                                               "block2.shortcut.conv.weight", "block2.shortcut.bn.weight", "block2.shortcut.bn.bias"])
        XCTAssertEqual(model.table["stem.conv.weight"]?.shape, [16, 9])
        XCTAssertEqual(model.table["block2.conv1.conv.weight"]?.shape, [32, 16 * 9])
        XCTAssertEqual(model.table["block2.shortcut.conv.weight"]?.shape, [32, 16])
        XCTAssertEqual(model.table["head.weight"]?.shape, [10, 64])
        for e in model.table.entries {
            let expected: TensorRole = e.name.hasSuffix("conv.weight") ? .matrix : e.name.contains(".bn.") ? .norm
                : e.name == "head.weight" ? .head : .bias
            XCTAssertEqual(e.role, expected, e.name)
        }
    }

    /// Evaluation uses the running statistics: after many training forwards on one batch they converge to that
    /// batch's statistics (momentum 0.1: 0.9^200 ≈ 7e-10), so evaluation on it matches training mode up to the
    /// unbiased-vs-biased variance factor M/(M−1) (≥ 16 values per channel here: ≤ 3 % in rstd), i.e. closely.
    func testEvaluationUsesRunningStatistics() {
        let (model, params, features, targets) = tiny()
        let fresh = withBatch(features, targets) { model.forward(params: params.pointer, batch: $0) }
        var training = BatchResult()
        for _ in 0..<200 { training = withBatch(features, targets) { model.forwardTraining(params: params.pointer, batch: $0) } }
        let evaluated = withBatch(features, targets) { model.forward(params: params.pointer, batch: $0) }
        XCTAssertEqual(evaluated.lossSum, training.lossSum, accuracy: 0.05 * training.lossSum)
        XCTAssertNotEqual(fresh.lossSum, evaluated.lossSum, "initial running statistics (0, 1) differ from the batch's")
    }
}
