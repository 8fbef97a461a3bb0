import Foundation
import Tensors
import XCTest

private func random(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<n).map { _ in Float(rng.normal()) * scale }
}

/// The transformer kernels: attention against its naive twin, LayerNorm against finite differences, embedding
/// against direct sums; every backward checked to accumulate.
final class TransformerKernelTests: XCTestCase {
    let B = 2, T = 7, C = 12, NH = 3

    func testAttentionMatchesNaiveTwin() {
        let qkv = random(B * T * 3 * C, seed: 1)
        let dOut = random(B * T * C, seed: 2)
        let start = random(B * T * 3 * C, seed: 3)  // backward must add to this
        var out = [Float](repeating: 0, count: B * T * C), outNaive = out
        var att = [Float](repeating: 9, count: B * NH * T * T), attNaive = att
        attentionForward(&out, &att, qkv, batch: B, time: T, channels: C, heads: NH)
        attentionForwardNaive(&outNaive, &attNaive, qkv, batch: B, time: T, channels: C, heads: NH)
        for i in out.indices { XCTAssertEqual(out[i], outNaive[i], accuracy: 1e-5, "out[\(i)]") }
        for i in att.indices { XCTAssertEqual(att[i], attNaive[i], accuracy: 1e-6, "att[\(i)]") }
        // Rows are distributions over 0...t and zero above the diagonal.
        for bh in 0..<(B * NH) {
            for t in 0..<T {
                let row = att[(bh * T + t) * T..<(bh * T + t + 1) * T]
                XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-5)
                XCTAssertTrue(row.dropFirst(t + 1).allSatisfy { $0 == 0 })
            }
        }
        var dqkv = start, dqkvNaive = start
        var scratch = [Float](repeating: 0, count: T * T)
        attentionBackward(&dqkv, dOut, qkv, att, scratch: &scratch, batch: B, time: T, channels: C, heads: NH)
        attentionBackwardNaive(&dqkvNaive, dOut, qkv, att, batch: B, time: T, channels: C, heads: NH)
        for i in dqkv.indices { XCTAssertEqual(dqkv[i], dqkvNaive[i], accuracy: 1e-5, "dqkv[\(i)]") }
    }

    /// d/dqkv of Σ out·r against central differences (float32 forward, h = 1e-2; tolerance 2e-3 + 1e-2·|numeric|
    /// as in the MLP test: rounding ≈ 1e-5, truncation ≈ 2e-5·|f'''|).
    func testAttentionBackwardMatchesFiniteDifferences() {
        var qkv = random(B * T * 3 * C, seed: 4)
        let r = random(B * T * C, seed: 5)
        var out = [Float](repeating: 0, count: B * T * C), att = [Float](repeating: 0, count: B * NH * T * T)
        func loss() -> Double {
            attentionForward(&out, &att, qkv, batch: B, time: T, channels: C, heads: NH)
            return zip(out, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        _ = loss()
        var dqkv = [Float](repeating: 0, count: qkv.count), scratch = [Float](repeating: 0, count: T * T)
        attentionBackward(&dqkv, r, qkv, att, scratch: &scratch, batch: B, time: T, channels: C, heads: NH)
        for i in qkv.indices {
            let original = qkv[i], h: Float = 1e-2
            qkv[i] = original + h
            let up = loss()
            qkv[i] = original - h
            let down = loss()
            qkv[i] = original
            let numeric = (up - down) / Double(2 * h)
            XCTAssertEqual(Double(dqkv[i]), numeric, accuracy: 2e-3 + 1e-2 * abs(numeric), "dqkv[\(i)]")
        }
    }

    /// dx, dweight, dbias of Σ out·r against central differences; backward accumulates onto non-zero gradients.
    func testLayerNormMatchesFiniteDifferences() {
        let N = 5
        var x = random(N * C, seed: 6, scale: 2), weight = random(C, seed: 7), bias = random(C, seed: 8)
        let r = random(N * C, seed: 9)
        var out = [Float](repeating: 0, count: N * C), mean = [Float](repeating: 0, count: N), rstd = mean
        func loss() -> Double {
            layerNormForward(&out, &mean, &rstd, x, weight, bias, rows: N, channels: C)
            return zip(out, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        _ = loss()
        // Normalised rows: mean 0, variance 1 before the affine part (checked with weight 1, bias 0 below).
        XCTAssertEqual(mean[0], x[0..<C].reduce(0, +) / Float(C), accuracy: 1e-5)
        let offset: Float = 0.25
        var dx = [Float](repeating: offset, count: N * C), dw = [Float](repeating: offset, count: C), db = dw
        layerNormBackward(&dx, &dw, &db, r, x, weight, mean, rstd, rows: N, channels: C)
        // A setter, not inout: loss() reads the arrays while a value is perturbed.
        func fd(_ original: Float, _ set: (Float) -> Void) -> Double {
            let h: Float = 1e-2
            set(original + h)
            let up = loss()
            set(original - h)
            let down = loss()
            set(original)
            return (up - down) / Double(2 * h)
        }
        for i in x.indices {
            let n = fd(x[i]) { x[i] = $0 }
            XCTAssertEqual(Double(dx[i] - offset), n, accuracy: 2e-3 + 1e-2 * abs(n), "dx[\(i)]")
        }
        for c in 0..<C {
            let nw = fd(weight[c]) { weight[c] = $0 }, nb = fd(bias[c]) { bias[c] = $0 }
            XCTAssertEqual(Double(dw[c] - offset), nw, accuracy: 2e-3 + 1e-2 * abs(nw), "dweight[\(c)]")
            XCTAssertEqual(Double(db[c] - offset), nb, accuracy: 2e-3 + 1e-2 * abs(nb), "dbias[\(c)]")
        }
        let ones = [Float](repeating: 1, count: C), zeros = [Float](repeating: 0, count: C)
        layerNormForward(&out, &mean, &rstd, x, ones, zeros, rows: N, channels: C)
        let row = out[0..<C].map(Double.init)
        XCTAssertEqual(row.reduce(0, +) / Double(C), 0, accuracy: 1e-5)
        XCTAssertEqual(row.map { $0 * $0 }.reduce(0, +) / Double(C), 1, accuracy: 1e-3)
    }

    func testEmbeddingForwardAndBackward() {
        let V = 4, Tmax = 8
        let tokens: [Int32] = [3, 0, 3, 1, 2, 2, 0, 3, 1, 1, 0, 0, 2, 3]  // [B = 2, T = 7]
        let wte = random(V * C, seed: 10), wpe = random(Tmax * C, seed: 11)
        var out = [Float](repeating: 0, count: B * T * C)
        embeddingForward(&out, tokens, wte, wpe, batch: B, time: T, channels: C, vocabulary: V)
        for b in 0..<B {
            for t in 0..<T {
                for c in 0..<C {
                    XCTAssertEqual(out[(b * T + t) * C + c], wte[Int(tokens[b * T + t]) * C + c] + wpe[t * C + c])
                }
            }
        }
        let dOut = random(B * T * C, seed: 12)
        var dWte = [Float](repeating: 1, count: V * C), dWpe = [Float](repeating: 1, count: Tmax * C)
        embeddingBackward(&dWte, &dWpe, dOut, tokens, batch: B, time: T, channels: C)
        for v in 0..<V {
            for c in 0..<C {
                var sum: Float = 1
                for n in 0..<(B * T) where tokens[n] == v { sum += dOut[n * C + c] }
                XCTAssertEqual(dWte[v * C + c], sum, accuracy: 1e-5)
            }
        }
        for t in 0..<Tmax {
            for c in 0..<C {
                let sum: Float = t < T ? 1 + dOut[t * C + c] + dOut[(T + t) * C + c] : 1
                XCTAssertEqual(dWpe[t * C + c], sum, accuracy: 1e-5)
            }
        }
    }

    /// The libm-free GELU against a double-precision reference (tolerance 1e-6·max(1, |value|): a few float32
    /// ulps) and against the libm one (`geluForward`/`geluBackward`, its naive twin, whose 1 + tanh u cancels in
    /// the negative tail, hence 1e-5), including the saturated tails where exp over/underflows.
    func testFastGELUMatchesReferenceAndLibmGELU() {
        var x = random(4000, seed: 16, scale: 3)
        x += [0, -0.0, 1e-8, -1e-8, 10, -10, 50, -50, 200, -200, 1e6, -1e6]
        let dy = random(x.count, seed: 17)
        var y = [Float](repeating: 0, count: x.count), yLibm = y
        geluFastForward(&y, x, count: x.count)
        geluForward(&yLibm, x, count: x.count)
        var dx = [Float](repeating: 0.5, count: x.count), dxLibm = dx
        geluFastBackward(&dx, dy, x, count: x.count)
        geluBackward(&dxLibm, dy, x, count: x.count)
        for i in x.indices {
            let v = Double(x[i]), k = 0.7978845608028654
            let t = tanh(k * (v + 0.044715 * v * v * v))
            let yRef = 0.5 * v * (1 + t)
            let dRef = 0.5 + Double(dy[i]) * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * 0.044715 * v * v))
            XCTAssertEqual(Double(y[i]), yRef, accuracy: 1e-6 * max(1, abs(yRef)), "gelu(\(x[i]))")
            XCTAssertEqual(Double(dx[i]), dRef, accuracy: 1e-6 * max(1, abs(dRef)), "gelu'(\(x[i]))")
            XCTAssertEqual(y[i], yLibm[i], accuracy: 1e-5 * max(1, abs(yLibm[i])), "gelu(\(x[i])) vs libm")
            XCTAssertEqual(dx[i], dxLibm[i], accuracy: 1e-5 * max(1, abs(dxLibm[i])), "gelu'(\(x[i])) vs libm")
        }
    }

    /// The C GELU kernels (16 lanes under AVX-512) do the same float operations in the same order as their Swift
    /// twins (CKernels is built with -ffp-contract=off, so no fused multiply-adds): bit-identical, tails included.
    func testFastGELUCKernelsAreBitIdenticalToSwiftTwins() {
        var x = random(4099, seed: 18, scale: 4)
        x += [0, -0.0, 1e-8, -1e-8, 10, -10, 50, -50, 200, -200, 1e6, -1e6]
        let dy = random(x.count, seed: 19)
        var y = [Float](repeating: 0, count: x.count), ySwift = y
        geluFastForward(&y, x, count: x.count)
        geluFastForwardSwift(&ySwift, x, count: x.count)
        var dx = random(x.count, seed: 20), dxSwift = dx
        geluFastBackward(&dx, dy, x, count: x.count)
        geluFastBackwardSwift(&dxSwift, dy, x, count: x.count)
        XCTAssertEqual(y.map(\.bitPattern), ySwift.map(\.bitPattern))
        XCTAssertEqual(dx.map(\.bitPattern), dxSwift.map(\.bitPattern))
    }

    /// LayerNorm forward runs rows in SIMD groups of 8, each lane doing one row's scalar sequence of operations:
    /// bit-identical to one row at a time (`layerNormForwardRowByRow`), for row counts around the group size.
    func testLayerNormRowGroupsAreBitIdenticalToRowByRow() {
        for (rows, channels) in [(1, 1), (7, 3), (8, 12), (17, 96), (37, 256), (16, 5)] {
            var x = random(rows * channels, seed: UInt64(50 + rows), scale: 2)
            for r in 0..<rows { for c in 0..<channels { x[r * channels + c] += Float(r % 5) - 1 } }
            let weight = random(channels, seed: 51), bias = random(channels, seed: 52)
            var out = [Float](repeating: 9, count: rows * channels), outRef = out
            var mean = [Float](repeating: 9, count: rows), rstd = mean, meanRef = mean, rstdRef = mean
            layerNormForward(&out, &mean, &rstd, x, weight, bias, rows: rows, channels: channels)
            layerNormForwardRowByRow(&outRef, &meanRef, &rstdRef, x, weight, bias, rows: rows, channels: channels)
            XCTAssertEqual(out.map(\.bitPattern), outRef.map(\.bitPattern), "forward \(rows)×\(channels)")
            XCTAssertEqual(mean.map(\.bitPattern), meanRef.map(\.bitPattern))
            XCTAssertEqual(rstd.map(\.bitPattern), rstdRef.map(\.bitPattern))
        }
    }

    /// Attention in bf16 with P kept rounded (`attH`) and dS rounded once for its two products against rounding at
    /// every product: the products read the same fp32 values rounded by the same code, so every output is
    /// bit-identical.
    func testAttentionKeepingRoundedOperandsIsBitIdentical() {
        let qkv = random(B * T * 3 * C, seed: 21), dOut = random(B * T * C, seed: 22)
        let start = random(B * T * 3 * C, seed: 23)
        var out = [Float](repeating: 0, count: B * T * C), outKept = out
        var att = [Float](repeating: 9, count: B * NH * T * T), attKept = att
        var attH = [UInt16](repeating: 0xFFFF, count: B * NH * T * T)
        var dqkv = start, dqkvKept = start, scratch = [Float](repeating: 0, count: T * T)
        qkv.withUnsafeBufferPointer { qkv in
            dOut.withUnsafeBufferPointer { dOut in
                let q = GEMMOperand.fp32(qkv.baseAddress!), d = GEMMOperand.fp32(dOut.baseAddress!)
                attentionForward(&out, &att, q, batch: B, time: T, channels: C, heads: NH, precision: .bf16)
                attentionForward(&outKept, &attKept, q, batch: B, time: T, channels: C, heads: NH, precision: .bf16,
                                 attH: &attH)
                attentionBackward(&dqkv, d, q, att, scratch: &scratch, batch: B, time: T, channels: C, heads: NH,
                                  precision: .bf16)
                attentionBackward(&dqkvKept, d, q, attKept, attH: attH, scratch: &scratch, batch: B, time: T,
                                  channels: C, heads: NH, precision: .bf16)
            }
        }
        var rounded = [UInt16](repeating: 0, count: att.count)
        BF16.round(att, into: &rounded, count: att.count)
        XCTAssertEqual(attH, rounded, "attH holds P rounded")
        XCTAssertEqual(out.map(\.bitPattern), outKept.map(\.bitPattern))
        XCTAssertEqual(att.map(\.bitPattern), attKept.map(\.bitPattern))
        XCTAssertEqual(dqkv.map(\.bitPattern), dqkvKept.map(\.bitPattern))
        XCTAssertNotEqual(dqkv, start)
    }

    /// The fused bf16 kernels against their naive twins (the fp32 kernel over the whole buffer, then `BF16.round`):
    /// both round the same fp32 values to nearest even with the same code, so the bits must be exactly equal — no
    /// tolerance. Sizes cross the C kernels' 1024-element blocks and their vector tails; values include ±0, NaN,
    /// ±inf, saturated tails and results that are subnormal (|GELU(x)| < 2⁻¹²⁶, rounded apart on AVX512-BF16).
    func testFusedBF16KernelsAreBitIdenticalToUnfused() {
        let special: [Float] = [0, -0.0, 1e-8, -1e-8, 1e-40, -1e-40, 3e-38, -3e-38, 10, -10, 50, -50, 200, -200, 1e6,
                                -1e6, .nan, .infinity, -.infinity]
        for n in [0, 1, 5, 17, 1024, 1025, 3 * 1024 + 77] {
            var x = random(n, seed: UInt64(30 + n), scale: 4)
            let spread = max(1, n / special.count)
            for (j, v) in special.enumerated() where j * spread < n { x[j * spread] = v }
            let dy = random(n, seed: UInt64(31 + n))
            var yh = [UInt16](repeating: 0xFFFF, count: n), yhNaive = yh
            geluFastForwardBF16(&yh, x, count: n)
            geluFastForwardBF16Naive(&yhNaive, x, count: n)
            XCTAssertEqual(yh, yhNaive, "GELU forward, n = \(n)")
            var dx = random(n, seed: UInt64(32 + n)), dxNaive = random(n, seed: UInt64(33 + n))  // overwritten
            var dxh = [UInt16](repeating: 0xFFFF, count: n), dxhNaive = dxh
            geluFastBackwardBF16(&dx, &dxh, dy, x, count: n)
            geluFastBackwardBF16Naive(&dxNaive, &dxhNaive, dy, x, count: n)
            XCTAssertEqual(dx.map(\.bitPattern), dxNaive.map(\.bitPattern), "GELU backward fp32, n = \(n)")
            XCTAssertEqual(dxh, dxhNaive, "GELU backward bf16, n = \(n)")
        }
        for (rows, channels) in [(1, 1), (3, 7), (37, 96), (19, 256), (5, 50)] {
            // Offsets and scales per row, so the means and variances differ; weight and bias arbitrary.
            var x = random(rows * channels, seed: UInt64(40 + rows), scale: 3)
            for r in 0..<rows { for c in 0..<channels { x[r * channels + c] += Float(r) - 2 } }
            let weight = random(channels, seed: 41), bias = random(channels, seed: 42, scale: 0.1)
            var outH = [UInt16](repeating: 0xFFFF, count: rows * channels), outHNaive = outH
            var mean = [Float](repeating: 9, count: rows), rstd = mean, meanNaive = mean, rstdNaive = mean
            layerNormForwardBF16(&outH, &mean, &rstd, x, weight, bias, rows: rows, channels: channels)
            layerNormForwardBF16Naive(&outHNaive, &meanNaive, &rstdNaive, x, weight, bias, rows: rows, channels: channels)
            XCTAssertEqual(outH, outHNaive, "LayerNorm \(rows)×\(channels)")
            XCTAssertEqual(mean.map(\.bitPattern), meanNaive.map(\.bitPattern))
            XCTAssertEqual(rstd.map(\.bitPattern), rstdNaive.map(\.bitPattern))
        }
    }

    func testResidual() {
        let a = random(10, seed: 13), b = random(10, seed: 14), d = random(10, seed: 15)
        var out = [Float](repeating: 0, count: 10)
        residualForward(&out, a, b, count: 10)
        for i in 0..<10 { XCTAssertEqual(out[i], a[i] + b[i]) }
        var da = [Float](repeating: 1, count: 10), db = [Float](repeating: 2, count: 10)
        residualBackward(&da, &db, d, count: 10)
        for i in 0..<10 { XCTAssertEqual(da[i], 1 + d[i]); XCTAssertEqual(db[i], 2 + d[i]) }
    }
}
