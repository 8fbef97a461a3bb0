import Optimizers
import Tensors
import XCTest

/// The C kernels of Adagrad, RMSprop (all four variants), Adadelta, NAdam and LAMB against each optimizer's own Swift loop
/// (`referenceUpdate`, LAMB's `referencePrepare`), bit for bit: both evaluate the same expression in the same order, and CKernels is built
/// with -ffp-contract=off, so vectorisation (8 or 16 lanes) must not change a single result. Two segments with
/// different weight decay and learning-rate scale, an odd length (the scalar tail) and five steps.
final class ElementwiseKernelTests: XCTestCase {
    /// `parameterTolerance`: 0 demands identical bits; LAMB's trust ratio uses norms summed in a different order
    /// (8 partial sums in C), so its parameters may differ by float rounding: relative 1e-6.
    private func assertTwinsAgree(_ name: String, parameterTolerance: Float = 0, _ make: (Int) -> Optimizer) {
        let n = 1037
        var table = ParameterTable()
        let a = table.add("a", shape: [600], role: .matrix), b = table.add("b", shape: [n - 600], role: .bias)
        let segments = [ParamSegment(range: 0..<600, tensor: a, tensorIndex: 0, weightDecay: 0.1),
                        ParamSegment(range: 600..<n, tensor: b, tensorIndex: 1, weightDecay: 0, lrScale: 0.5)]
        let fast = make(n), twin = make(n)
        var rng = SplitMix64(seed: 99)
        let start = (0..<n).map { _ in rng.uniform(-1, 1) }
        let pFast = FloatBuffer(count: n), pTwin = FloatBuffer(count: n), g = FloatBuffer(count: n)
        pFast.buffer.update(from: start); pTwin.buffer.update(from: start)
        for _ in 0..<5 {
            for i in 0..<n { g[i] = rng.uniform(-0.5, 0.5) }
            g[7] = 0  // a zero gradient element
            fast.update(params: pFast.buffer, grads: UnsafeBufferPointer(g.buffer), segments: segments, context: StepContext(lr: 0.01))
            referenceUpdate(twin, params: pTwin.buffer, grads: UnsafeBufferPointer(g.buffer), segments: segments)
        }
        XCTAssertNotEqual(pFast.array, start, "\(name): parameters did not move")
        if parameterTolerance == 0 {
            XCTAssertEqual(pFast.array.map(\.bitPattern), pTwin.array.map(\.bitPattern), "\(name): parameters differ")
        } else {
            for i in 0..<n {
                XCTAssertEqual(pFast[i], pTwin[i], accuracy: parameterTolerance * max(1, abs(pTwin[i])), "\(name) θ[\(i)]")
            }
        }
        for (s, t) in zip(fast.state, twin.state) {
            XCTAssertEqual(s.array.map(\.bitPattern), t.array.map(\.bitPattern), "\(name): state differs")
        }
    }

    /// One step of `o` through its naive Swift twin.
    private func referenceUpdate(_ o: Optimizer, params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                                 segments: [ParamSegment]) {
        let context = StepContext(lr: 0.01)
        switch o {
        case let x as KernelTwinOptimizer: x.referenceUpdate(params: params, grads: grads, segments: segments, context: context)
        case let x as LAMB:
            var squares = [Double](repeating: 0, count: 2 * 2)
            squares.withUnsafeMutableBufferPointer {
                x.referencePrepare(params: params, grads: grads, segments: segments, context: context, partialSquares: $0)
            }
            squares.withUnsafeBufferPointer { x.apply(params: params, segments: segments, context: context, totalSquares: $0) }
        default: XCTFail("no naive twin for \(type(of: o))")
        }
    }

    func testAdagrad() { assertTwinsAgree("adagrad") { Adagrad.make(count: $0, ["lr_decay": 0.01, "initial_accumulator": 0.1]) } }
    func testRMSpropVariants() {
        for (momentum, centered) in [(Float(0), false), (0.9, false), (0, true), (0.9, true)] {
            assertTwinsAgree("rmsprop momentum \(momentum) centered \(centered)") {
                RMSprop.make(count: $0, ["momentum": .number(Double(momentum)), "centered": .flag(centered)])
            }
        }
    }
    func testAdadelta() { assertTwinsAgree("adadelta") { Adadelta.make(count: $0) } }
    func testLAMB() { assertTwinsAgree("lamb", parameterTolerance: 1e-6) { LAMB.make(count: $0) } }
    func testNAdam() {
        for decoupled in [false, true] {
            assertTwinsAgree("nadam decoupled \(decoupled)") { NAdam.make(count: $0, ["decoupled_weight_decay": .flag(decoupled)]) }
        }
    }
}
