import Foundation
import Tensors
import XCTest

/// Fast kernels against their naive twins and against finite differences.
final class KernelTests: XCTestCase {
    private func random(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in rng.uniform(-scale, scale) }
    }

    /// BLAS and the naive triple loop accumulate in different orders; with |x|, |w| ≤ 1 and I = 37 terms the float32
    /// rounding difference is far below 1e-5 relative, so 1e-5 catches any indexing or transpose error.
    func testLinearForwardMatchesNaive() {
        let (b, i, o) = (5, 37, 11)
        let x = random(b * i, seed: 1), w = random(o * i, seed: 2), bias = random(o, seed: 3)
        var fast = [Float](repeating: 0, count: b * o), naive = fast
        linearForward(&fast, x, w, bias, batch: b, inFeatures: i, outFeatures: o)
        linearForwardNaive(&naive, x, w, bias, batch: b, inFeatures: i, outFeatures: o)
        for k in 0..<(b * o) { XCTAssertEqual(fast[k], naive[k], accuracy: 1e-5 * max(1, abs(naive[k]))) }
    }

    func testLinearBackwardMatchesNaiveAndAccumulates() {
        let (b, i, o) = (6, 19, 13)
        let x = random(b * i, seed: 4), w = random(o * i, seed: 5), dy = random(b * o, seed: 6)
        // Start from non-zero gradients: backward must add to them, not overwrite.
        let dx0 = random(b * i, seed: 7), dw0 = random(o * i, seed: 8), db0 = random(o, seed: 9)
        var dxF = dx0, dwF = dw0, dbF = db0, dxN = dx0, dwN = dw0, dbN = db0
        linearBackward(&dxF, &dwF, &dbF, dy, x, w, batch: b, inFeatures: i, outFeatures: o)
        linearBackwardNaive(&dxN, &dwN, &dbN, dy, x, w, batch: b, inFeatures: i, outFeatures: o)
        for k in 0..<dxF.count { XCTAssertEqual(dxF[k], dxN[k], accuracy: 1e-5) }
        for k in 0..<dwF.count { XCTAssertEqual(dwF[k], dwN[k], accuracy: 1e-5) }
        for k in 0..<dbF.count { XCTAssertEqual(dbF[k], dbN[k], accuracy: 1e-5) }
        XCTAssertNotEqual(dwF[0], dw0[0], "backward did not change the gradient")
    }

    /// Feature-major kernels against the naive batch-major twins on transposed data, both input layouts, and the
    /// row-block gradient summed over blocks equal to the whole. Same 1e-5 tolerance as above (BLAS order vs naive).
    func testFeatureMajorLinearMatchesNaive() {
        let (b, i, o) = (6, 37, 11)
        let x = random(b * i, seed: 21), w = random(o * i, seed: 22), bias = random(o, seed: 23), dy = random(b * o, seed: 24)
        var xT = [Float](repeating: 0, count: b * i), dyT = [Float](repeating: 0, count: b * o)
        transpose(x, rows: b, cols: i, into: &xT)
        transpose(dy, rows: b, cols: o, into: &dyT)
        var y = [Float](repeating: 0, count: b * o), dxN = [Float](repeating: 0, count: b * i)
        var dwN = [Float](repeating: 0, count: o * i), dbN = [Float](repeating: 0, count: o)
        linearForwardNaive(&y, x, w, bias, batch: b, inFeatures: i, outFeatures: o)
        linearBackwardNaive(&dxN, &dwN, &dbN, dy, x, w, batch: b, inFeatures: i, outFeatures: o)
        for batchMajor in [true, false] {
            var yT = [Float](repeating: 0, count: b * o)
            linearForwardFeatureMajor(&yT, batchMajor ? x : xT, inputIsBatchMajor: batchMajor, w, bias,
                                      batch: b, inFeatures: i, outFeatures: o)
            for r in 0..<b { for c in 0..<o { XCTAssertEqual(yT[c * b + r], y[r * o + c], accuracy: 1e-5 * max(1, abs(y[r * o + c]))) } }
            var dw = [Float](repeating: 0.25, count: o * i), db = [Float](repeating: 0.25, count: o)  // accumulates
            for block in [0..<4, 4..<5, 5..<o] {
                dw.withUnsafeMutableBufferPointer { dwp in db.withUnsafeMutableBufferPointer { dbp in
                    linearBackwardParameterRowsFeatureMajor(dwp.baseAddress! + block.lowerBound * i, dbp.baseAddress! + block.lowerBound,
                                                            dyT, batchMajor ? x : xT, inputIsBatchMajor: batchMajor,
                                                            rows: block, batch: b, inFeatures: i)
                } }
            }
            for k in 0..<(o * i) { XCTAssertEqual(dw[k] - 0.25, dwN[k], accuracy: 1e-5 * max(1, abs(dwN[k]))) }
            for k in 0..<o { XCTAssertEqual(db[k] - 0.25, dbN[k], accuracy: 1e-5 * max(1, abs(dbN[k]))) }
        }
        var dxT = [Float](repeating: .nan, count: b * i)  // overwritten, never read
        linearBackwardInputFeatureMajor(&dxT, dyT, w, batch: b, inFeatures: i, outFeatures: o)
        for r in 0..<b { for c in 0..<i { XCTAssertEqual(dxT[c * b + r], dxN[r * i + c], accuracy: 1e-5 * max(1, abs(dxN[r * i + c]))) } }
        // The batch-major input gradient (adversarial attacks) accumulates onto what dx held.
        var dx = [Float](repeating: 0.5, count: b * i)
        linearBackwardInputToBatchMajor(&dx, dyT, w, batch: b, inFeatures: i, outFeatures: o)
        for k in 0..<(b * i) { XCTAssertEqual(dx[k] - 0.5, dxN[k], accuracy: 1e-5 * max(1, abs(dxN[k]))) }
    }

    /// The C kernels (vectorised, runtime-dispatched) against their Swift twins, on lengths that exercise the
    /// vector body and the scalar tail. ReLU backward must be bit-identical (same operation per element, zeros and
    /// NaN activations included); Σx² differs only in summation order of doubles: relative 1e-12.
    func testCKernelsMatchTheirTwins() {
        for n in [0, 1, 7, 16, 17, 1000, 4099] {
            var x = random(n, seed: UInt64(n) + 7)
            if n > 3 { x[1] = 0; x[2] = -0.0; x[3] = .nan }
            let dy = random(n, seed: UInt64(n) + 8)
            var fast = random(n, seed: 9), naive = fast
            reluBackward(&fast, dy, x, count: n)
            reluBackwardNaive(&naive, dy, x, count: n)
            XCTAssertEqual(fast.map(\.bitPattern), naive.map(\.bitPattern), "relu backward, n = \(n)")

            let y = random(n, seed: UInt64(n) + 11, scale: 3)
            let s = y.withUnsafeBufferPointer { sumOfSquares($0) }, t = y.withUnsafeBufferPointer { sumOfSquaresNaive($0) }
            XCTAssertEqual(s, t, accuracy: 1e-12 * max(t, 1e-30), "sum of squares, n = \(n)")
            if n > 0 { XCTAssertGreaterThan(s, 0) }
        }
        var bad: [Float] = [1, 2, .infinity, 3]
        XCTAssertFalse(bad.withUnsafeBufferPointer { sumOfSquares($0) }.isFinite)
        bad[2] = .nan
        XCTAssertTrue(bad.withUnsafeBufferPointer { sumOfSquares($0) }.isNaN)
    }

    /// Central differences in double on the float kernel: step 1e-3, error O(h²) ≈ 1e-6 plus float32 rounding of
    /// y (≈ 6e-8 / 2e-3 ≈ 3e-5); tolerance 1e-3 absolute on derivatives of order 1.
    func testActivationBackwardMatchesFiniteDifferences() {
        let x: [Float] = [-2.1, -0.7, -0.05, 0.3, 0.9, 1.7, 3.2]
        let n = x.count
        for (name, forward, backward) in [
            ("gelu", geluForward as (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int) -> Void, geluBackward as (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Void),
            ("relu", reluForward, reluBackward),
        ] {
            var dx = [Float](repeating: 0.5, count: n)  // accumulates on top of 0.5
            let dy = [Float](repeating: 1, count: n)
            backward(&dx, dy, x, n)
            for k in 0..<n {
                let h: Float = 1e-3
                var plus = [Float](repeating: 0, count: 1), minus = plus
                forward(&plus, [x[k] + h], 1)
                forward(&minus, [x[k] - h], 1)
                let numeric = (Double(plus[0]) - Double(minus[0])) / Double(2 * h)
                XCTAssertEqual(Double(dx[k]) - 0.5, numeric, accuracy: 1e-3, "\(name)'(\(x[k]))")
            }
        }
    }

    func testGeluValues() {
        // PyTorch: F.gelu(torch.tensor([-1., 0., 1., 2.]), approximate='tanh')
        let x: [Float] = [-1, 0, 1, 2]
        var y = [Float](repeating: 0, count: 4)
        geluForward(&y, x, count: 4)
        let expected: [Float] = [-0.15880801, 0, 0.84119199, 1.95459769]
        for k in 0..<4 { XCTAssertEqual(y[k], expected[k], accuracy: 1e-6) }
    }

    func testCrossEntropyForwardBackward() {
        let logits: [Float] = [2, 1, 0.1, -1, 0.5, 3]  // 2 rows × 3 classes
        let targets: [Int32] = [0, 2]
        var probs = [Float](repeating: 0, count: 6)
        var correct = 0
        let loss = softmaxCrossEntropyForward(&probs, logits, targets: targets, batch: 2, classes: 3, correct: &correct)
        // −log softmax computed in double by hand.
        func nll(_ row: [Double], _ t: Int) -> Double { log(row.map { exp($0) }.reduce(0, +)) - row[t] }
        let expected = nll([2, 1, 0.1], 0) + nll([-1, 0.5, 3], 2)
        XCTAssertEqual(loss, expected, accuracy: 1e-6)
        XCTAssertEqual(correct, 2)
        var d = [Float](repeating: 0, count: 6)
        softmaxCrossEntropyBackward(&d, probs, targets: targets, batch: 2, classes: 3, scale: 0.5)
        XCTAssertEqual(d[0], 0.5 * (probs[0] - 1), accuracy: 1e-7)
        XCTAssertEqual(d[1], 0.5 * probs[1], accuracy: 1e-7)
        XCTAssertEqual(d.reduce(0, +), 0, accuracy: 1e-6, "softmax gradient rows sum to zero")
    }

    func testCrossEntropyIsStableForHugeLogits() {
        var probs = [Float](repeating: 0, count: 2)
        let loss = softmaxCrossEntropyForward(&probs, [1000, -1000], targets: [1], batch: 1, classes: 2)
        XCTAssertEqual(loss, 2000, accuracy: 1e-3)
        XCTAssertTrue(probs.allSatisfy(\.isFinite))
    }

    func testParameterTableLayout() {
        var t = ParameterTable()
        t.add("w", shape: [3, 4], role: .matrix)
        t.add("b", shape: [3], role: .bias)
        XCTAssertEqual(t.count, 15)
        XCTAssertEqual(t["b"]?.range, 12..<15)
        let overlaps = t.entries(overlapping: 10..<13)
        XCTAssertEqual(overlaps.map(\.entry.name), ["w", "b"])
        XCTAssertEqual(overlaps.map(\.overlap), [10..<12, 12..<13])
    }

    func testSafeTensorsRoundTrip() throws {
        let tensors = [SafeTensors.Tensor(name: "layer0.weight", shape: [2, 3], values: [1, 2, 3, 4, 5, -6.5]),
                       SafeTensors.Tensor(name: "layer0.bias", shape: [2], values: [0.25, -0])]
        let data = SafeTensors.encode(tensors, metadata: ["model": "mlp"])
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual((8 + headerLength) % 8, 0, "data section is 8-byte aligned")
        let (decoded, metadata) = try SafeTensors.decode(data)
        XCTAssertEqual(decoded, tensors)
        XCTAssertEqual(metadata["model"], "mlp")
        XCTAssertThrowsError(try SafeTensors.decode(data.prefix(20)))
    }

    func testSeededRandomIsReproducible() {
        var a = SplitMix64(seed: 42), b = SplitMix64(seed: 42), c = SplitMix64(seed: 43)
        let xs = (0..<5).map { _ in a.next() }
        XCTAssertEqual(xs, (0..<5).map { _ in b.next() })
        XCTAssertNotEqual(xs, (0..<5).map { _ in c.next() })
        var u = SplitMix64(seed: 1)
        XCTAssertTrue((0..<1000).map { _ in u.nextUnitFloat() }.allSatisfy { $0 >= 0 && $0 < 1 })
    }
}
