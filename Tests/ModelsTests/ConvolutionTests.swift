import Models
import Tensors
import TestSupport
import XCTest

/// The convolution, pooling and batch-norm kernels: im2col + GEMM against the direct-loop twin, and every gradient
/// against central finite differences of L = Σ r·out for a fixed random r (so dOut = r).
final class ConvolutionTests: XCTestCase {
    private func random(_ n: Int, _ rng: inout SplitMix64) -> [Float] { (0..<n).map { _ in rng.uniform(-1, 1) } }

    private let shapes = [
        ConvShape(inChannels: 3, height: 7, width: 6, outChannels: 4, kernel: 3, stride: 1, padding: 1),
        ConvShape(inChannels: 2, height: 8, width: 8, outChannels: 5, kernel: 3, stride: 2, padding: 1),
        ConvShape(inChannels: 4, height: 5, width: 5, outChannels: 3, kernel: 1, stride: 2, padding: 0),
        // Edges of im2col's valid-column ranges: padding wider than the kernel's reach on one side, stride 3,
        // an odd width with no padding, a kernel as wide as the padded input.
        ConvShape(inChannels: 2, height: 6, width: 4, outChannels: 3, kernel: 5, stride: 3, padding: 2),
        ConvShape(inChannels: 1, height: 5, width: 7, outChannels: 2, kernel: 3, stride: 2, padding: 0),
        ConvShape(inChannels: 1, height: 3, width: 3, outChannels: 2, kernel: 5, stride: 1, padding: 1),
    ]

    /// fp32 GEMM against double accumulation over at most C·K·K = 36 terms of size ≤ 1: error ≲ 36 · 6e-8, so 1e-5.
    func testForwardAndBackwardMatchNaiveTwins() {
        var rng = SplitMix64(seed: 21)
        for s in shapes {
            let images = 2
            let x = random(images * s.inputCount, &rng), w = random(s.outChannels * s.patch, &rng)
            let b = random(s.outChannels, &rng), dy = random(images * s.outputCount, &rng)
            let fast = FloatBuffer(count: images * s.outputCount), slow = FloatBuffer(count: images * s.outputCount)
            let cols = FloatBuffer(count: s.columnCount), dcols = FloatBuffer(count: s.columnCount)
            // Gradients start non-zero to check that both accumulate.
            let start = random(images * s.inputCount + w.count + b.count, &rng)
            let fastGrads = FloatBuffer(start), slowGrads = FloatBuffer(start)
            let nx = images * s.inputCount, nw = w.count
            conv2dForward(fast.pointer, x, w, b, cols: cols.pointer, images: images, s)
            conv2dForwardNaive(slow.pointer, x, w, b, images: images, s)
            conv2dBackward(fastGrads.pointer, fastGrads.pointer + nx, fastGrads.pointer + nx + nw, dy, x, w,
                           cols: cols.pointer, dcols: dcols.pointer, images: images, s)
            conv2dBackwardNaive(slowGrads.pointer, slowGrads.pointer + nx, slowGrads.pointer + nx + nw, dy, x, w, images: images, s)
            for i in 0..<fast.count { XCTAssertEqual(fast[i], slow[i], accuracy: 1e-5, "forward \(s) [\(i)]") }
            for i in 0..<fastGrads.count { XCTAssertEqual(fastGrads[i], slowGrads[i], accuracy: 1e-5, "backward \(s) [\(i)]") }
        }
    }

    /// Step 1e-2 on an L of order 10 in fp32: rounding ≈ 1e-6 / 1e-2 = 1e-4; L is linear in x and in W separately
    /// (bilinear), so central differences have no truncation error. Tolerance 2e-3 absolute + 1e-2 relative.
    func testConvolutionGradientsMatchFiniteDifferences() {
        var rng = SplitMix64(seed: 22)
        for s in shapes {
            let images = 2
            var table = ParameterTable()
            table.add("x", shape: [images * s.inputCount], role: .norm)
            table.add("weight", shape: s.weightShape, role: .matrix)
            table.add("bias", shape: [s.outChannels], role: .bias)
            let params = FloatBuffer(random(table.count, &rng))
            let r = random(images * s.outputCount, &rng)
            let y = FloatBuffer(count: r.count), cols = FloatBuffer(count: s.columnCount), dcols = FloatBuffer(count: s.columnCount)
            let (x, w, b) = (params.pointer, params.pointer + table["weight"]!.offset, params.pointer + table["bias"]!.offset)
            func loss() -> Double {
                conv2dForward(y.pointer, x, w, b, cols: cols.pointer, images: images, s)
                return (0..<r.count).reduce(0.0) { $0 + Double(r[$1]) * Double(y[$1]) }
            }
            let grads = FloatBuffer(count: table.count)
            conv2dBackward(grads.pointer, grads.pointer + table["weight"]!.offset, grads.pointer + table["bias"]!.offset, r, x, w,
                           cols: cols.pointer, dcols: dcols.pointer, images: images, s)
            let result = FiniteDifferenceCheck(absolute: 2e-3, relative: 1e-2).run(table: table, params: params, grads: grads, loss: loss)
            XCTAssertEqual(result.mismatches.map(\.description), [], "\(s)")
            XCTAssertEqual(result.checked, table.count)
            for name in ["x", "weight", "bias"] { XCTAssertGreaterThan(result.largestGradient[name]!, 0.1, name) }
        }
    }

    /// Batch norm (training statistics) is smooth; L = Σ r·out is of order 10. Step 1e-2, truncation O(h²·|f'''|)
    /// ≈ 1e-4 · (rstd³ terms ≈ 10) = 1e-3 at most; tolerance 3e-3 absolute + 2e-2 relative.
    func testBatchNormGradientsMatchFiniteDifferences() {
        var rng = SplitMix64(seed: 23)
        let images = 3, channels = 2, pixels = 5
        var table = ParameterTable()
        table.add("x", shape: [images * channels * pixels], role: .norm)
        table.add("gamma", shape: [channels], role: .norm)
        table.add("beta", shape: [channels], role: .norm)
        let params = FloatBuffer(random(table.count, &rng))
        let r = random(images * channels * pixels, &rng)
        let out = FloatBuffer(count: r.count), bn = BatchNormState(channels: channels)
        let (x, g, b) = (params.pointer, params.pointer + table["gamma"]!.offset, params.pointer + table["beta"]!.offset)
        func loss() -> Double {
            bn.forwardTraining(out.pointer, x, g, b, images: images, pixels: pixels, reducer: nil)
            return (0..<r.count).reduce(0.0) { $0 + Double(r[$1]) * Double(out[$1]) }
        }
        _ = loss()
        let grads = FloatBuffer(count: table.count)
        bn.backward(grads.pointer, grads.pointer + table["gamma"]!.offset, grads.pointer + table["beta"]!.offset, r, x, g,
                    images: images, pixels: pixels, reducer: nil)
        let result = FiniteDifferenceCheck(absolute: 3e-3, relative: 2e-2).run(table: table, params: params, grads: grads, loss: loss)
        XCTAssertEqual(result.mismatches.map(\.description), [])
        for name in ["x", "gamma", "beta"] { XCTAssertGreaterThan(result.largestGradient[name]!, 0.1, name) }
    }

    /// Training normalises to mean 0 and variance 1 per channel; the running statistics move by `momentum` towards the
    /// batch's (unbiased variance), and evaluation with them reproduces the formula.
    func testBatchNormStatisticsAndEvaluation() {
        var rng = SplitMix64(seed: 24)
        let images = 4, channels = 3, pixels = 6, n = images * channels * pixels
        let x = (0..<n).map { _ in rng.uniform(-1, 1) * 3 + 2 }
        let ones = [Float](repeating: 1, count: channels), zeros = [Float](repeating: 0, count: channels)
        let out = FloatBuffer(count: n), bn = BatchNormState(channels: channels)
        bn.forwardTraining(out.pointer, x, ones, zeros, images: images, pixels: pixels, reducer: nil)
        for c in 0..<channels {
            var values: [Double] = [], inputs: [Double] = []
            for i in 0..<images { for p in 0..<pixels {
                values.append(Double(out[(i * channels + c) * pixels + p]))
                inputs.append(Double(x[(i * channels + c) * pixels + p]))
            } }
            let m = values.reduce(0, +) / Double(values.count)
            let v = values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(values.count)
            XCTAssertEqual(m, 0, accuracy: 1e-5)
            XCTAssertEqual(v, 1, accuracy: 1e-3)  // eps = 1e-5 against a variance ≈ 3: relative 1e-5
            let im = inputs.reduce(0, +) / Double(inputs.count)
            let unbiased = inputs.map { ($0 - im) * ($0 - im) }.reduce(0, +) / Double(inputs.count - 1)
            XCTAssertEqual(Double(bn.runningMean[c]), 0.1 * im, accuracy: 1e-5)
            XCTAssertEqual(Double(bn.runningVariance[c]), 0.9 + 0.1 * unbiased, accuracy: 1e-4)
        }
        bn.forwardEvaluation(out.pointer, x, ones, zeros, images: images, pixels: pixels)
        for i in 0..<n {
            let c = (i / pixels) % channels
            let expected = (x[i] - bn.runningMean[c]) / (bn.runningVariance[c] + batchNormEpsilon).squareRoot()
            XCTAssertEqual(out[i], expected, accuracy: 1e-5)
        }
    }

    func testGlobalAveragePoolIsTheMeanAndItsGradientSpreadsEvenly() {
        let x: [Float] = [1, 2, 3, 4, 10, 20, 30, 40]  // 1 image, 2 channels, 4 pixels
        let out = FloatBuffer(count: 2), dx = FloatBuffer([1, 1, 1, 1, 0, 0, 0, 0])
        globalAveragePoolForward(out.pointer, x, images: 1, channels: 2, pixels: 4)
        XCTAssertEqual([out[0], out[1]], [2.5, 25])
        globalAveragePoolBackward(dx.pointer, [4, 8], images: 1, channels: 2, pixels: 4)
        XCTAssertEqual((0..<8).map { dx[$0] }, [2, 2, 2, 2, 2, 2, 2, 2])
    }
}
