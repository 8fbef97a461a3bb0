import Optimizers
import Tensors
import XCTest

/// The C Adam kernel (SIMD, streaming stores) against its plain Swift twin, element by element. Both evaluate the
/// same expression in the same order with FMA contraction disabled, so they agree bit for bit.
final class AdamKernelTests: XCTestCase {
    private func run(count: Int, offset: Int, decoupled: Bool) {
        var table = ParameterTable()
        let e = table.add("w", shape: [offset + count], role: .matrix)
        let seg = [ParamSegment(range: offset..<(offset + count), tensor: e, tensorIndex: 0, weightDecay: 0.1)]
        let opt = Adam.make(count: offset + count, name: decoupled ? "adamw" : "adam")
        let params = FloatBuffer(count: offset + count), grads = FloatBuffer(count: offset + count)
        var rng = SplitMix64(seed: UInt64(count))
        for i in 0..<params.count { params[i] = rng.uniform(-1, 1); grads[i] = rng.uniform(-0.1, 0.1) }
        var p = params.array, m = [Float](repeating: 0, count: params.count), v = m
        for step in 1...3 {
            opt.update(params: params.buffer, grads: UnsafeBufferPointer(grads.buffer), segments: seg, context: StepContext(lr: 0.01))
            let bc1 = 1 - pow(0.9, Double(step)), bc2 = 1 - pow(0.999, Double(step))
            let lr: Float = 0.01
            for i in offset..<(offset + count) {
                Adam.adamReference(p: &p[i], g: grads[i], m: &m[i], v: &v[i], decay: decoupled ? 1 - lr * 0.1 : 1,
                                   l2: decoupled ? 0 : 0.1, w1: Float(1 - 0.9), beta2: 0.999, w2: Float(1 - 0.999),
                                   step: Float(Double(lr) / bc1), invBc2Sqrt: 1 / Float(bc2.squareRoot()), eps: 1e-8)
            }
        }
        var mismatches = 0
        for i in 0..<params.count where params[i] != p[i] { mismatches += 1 }
        XCTAssertEqual(mismatches, 0, "count \(count) offset \(offset): \(mismatches) elements differ")
        XCTAssertEqual(opt.state[0].array[offset..<(offset + count)].map { $0 }, Array(m[offset..<(offset + count)]))
    }

    func testSmallMisalignedRange() { run(count: 37, offset: 3, decoupled: true) }
    func testCoupledDecay() { run(count: 1000, offset: 0, decoupled: false) }
    /// Above the streaming threshold (1 Mi elements): the non-temporal store path.
    func testStreamingPath() { run(count: (1 << 20) + 13, offset: 8, decoupled: true) }
}
