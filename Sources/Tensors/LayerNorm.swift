// Dimension letters used in this file:
//   N  rows (B·T positions of a sequence batch)     C  channels
// Layer normalisation (Ba, Kiros & Hinton 2016) over the last dimension, as GPT-2 / PyTorch's nn.LayerNorm:
//   out = (x − mean) · rstd · weight + bias,   rstd = 1/√(var + eps),   var the biased (population) variance.
// Backward kernels accumulate (+=). No BLAS here: tests check against finite differences, and the forward kernels
// (rows in SIMD groups, fused with bf16 rounding) bit for bit against their naive twins (one row at a time;
// `layerNormForward` then `BF16.round`).

/// eps inside the square root, as PyTorch's default and GPT-2.
public let layerNormEpsilon: Float = 1e-5

/// out[N, C] = LayerNorm(x[N, C]) · weight[C] + bias[C]; saves mean[N] and rstd[N] for backward.
public func layerNormForward(_ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>,
                             _ rstd: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                             _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                             rows: Int, channels: Int) {
    let C = channels
    forEachRowStatistics(x, rows: rows, channels: C, mean, rstd) { n, m, s in
        layerNormApply(out + n * C, x + n * C, m, s, weight, bias, channels: C)
    }
}

/// `layerNormForward` with the output rounded to bf16 and no fp32 output, for a normalised value read only by
/// matrix products (the GPT's ln_1, ln_2, ln_f in bf16; backward recomputes x̂ from x, mean and rstd). Each row is
/// computed by the same code as `layerNormForward` into one row of scratch and rounded from there by `BF16.round`
/// while in cache: outH is bit-identical to `layerNormForward` followed by `BF16.round` (its naive twin,
/// `layerNormForwardBF16Naive`), mean and rstd to `layerNormForward`'s.
public func layerNormForwardBF16(_ outH: UnsafeMutablePointer<UInt16>, _ mean: UnsafeMutablePointer<Float>,
                                 _ rstd: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                                 _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                                 rows: Int, channels: Int) {
    let C = channels
    guard rows > 0, C > 0 else { return }
    withUnsafeTemporaryAllocation(of: Float.self, capacity: C) { row in
        let o = row.baseAddress!
        forEachRowStatistics(x, rows: rows, channels: C, mean, rstd) { n, m, s in
            layerNormApply(o, x + n * C, m, s, weight, bias, channels: C)
            BF16.round(o, into: outH + n * C, count: C)
        }
    }
}

/// Naive twin of `layerNormForwardBF16` (tests): `layerNormForward` over all rows, then `BF16.round`.
public func layerNormForwardBF16Naive(_ outH: UnsafeMutablePointer<UInt16>, _ mean: UnsafeMutablePointer<Float>,
                                      _ rstd: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                                      _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                                      rows: Int, channels: Int) {
    guard rows > 0, channels > 0 else { return }
    var out = [Float](repeating: 0, count: rows * channels)
    out.withUnsafeMutableBufferPointer { out in
        layerNormForward(out.baseAddress!, mean, rstd, x, weight, bias, rows: rows, channels: channels)
        BF16.round(out.baseAddress!, into: outH, count: rows * channels)
    }
}

/// Gradients of `layerNormForward`, accumulated:
///   dx[N, C] += rstd · (g − mean_C(g) − x̂ · mean_C(g · x̂)),   g = dOut · weight,  x̂ = (x − mean) · rstd
///   dWeight[C] += Σ_N dOut · x̂,   dBias[C] += Σ_N dOut
public func layerNormBackward(_ dx: UnsafeMutablePointer<Float>, _ dWeight: UnsafeMutablePointer<Float>,
                              _ dBias: UnsafeMutablePointer<Float>, _ dOut: UnsafePointer<Float>,
                              _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                              _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>,
                              rows: Int, channels: Int) {
    for n in 0..<rows { layerNormBackwardRow(dx, dWeight, dBias, dOut, x, weight, mean, rstd, row: n, channels: channels) }
}

/// Naive twin of `layerNormForward` (tests): one row at a time, each row's sums in one scalar accumulator — the
/// reference the grouped kernel must match bit for bit.
public func layerNormForwardRowByRow(_ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>,
                                     _ rstd: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                                     _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                                     rows: Int, channels: Int) {
    let C = channels, invC = 1 / Float(C)
    for n in 0..<rows {
        (mean[n], rstd[n]) = layerNormRowStatistics(x + n * C, channels: C, invC: invC)
        layerNormApply(out + n * C, x + n * C, mean[n], rstd[n], weight, bias, channels: C)
    }
}

// MARK: Row kernels
//
// Each row's mean and variance are sequential float sums over its C channels: one dependent add chain a row, so
// one row at a time waits on the add latency. The forward kernels run `rowGroup` rows together, each in its own
// SIMD lane doing exactly the scalar sequence of operations (same operands, same order, no fused multiply-add:
// Swift does not contract), so the results are bit-identical to one row at a time while the chains overlap
// (measured: LayerNorm forward's CPU time halved in the bf16 GPT). Leftover rows go one at a time. Backward stays
// one row at a time: its two sums already overlap, and the same grouping (two strided gathers a channel) measured
// slower.

/// Rows run together by the LayerNorm forward kernels (one SIMD lane each).
private let rowGroup = 8
private typealias RowLanes = SIMD8<Float>

private extension SIMD8 where Scalar == Float {
    /// p[0], p[stride], …, p[7·stride]: element c of 8 consecutive rows.
    @inline(__always) init(_ p: UnsafePointer<Float>, stride: Int = 1) {
        self.init(p[0], p[stride], p[2 * stride], p[3 * stride], p[4 * stride], p[5 * stride], p[6 * stride],
                  p[7 * stride])
    }
}

/// Calls body(n, mean[n], rstd[n]) for every row in order, after storing the row's statistics.
@inline(__always)
private func forEachRowStatistics(_ x: UnsafePointer<Float>, rows: Int, channels C: Int,
                                  _ mean: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
                                  _ body: (_ row: Int, _ mean: Float, _ rstd: Float) -> Void) {
    let invC = 1 / Float(C)
    var n = 0
    while n + rowGroup <= rows {
        let xg = x + n * C
        var sum = RowLanes(repeating: 0)
        for c in 0..<C { sum += RowLanes(xg + c, stride: C) }
        let m = sum * invC
        var sumSquares = RowLanes(repeating: 0)
        for c in 0..<C {
            let d = RowLanes(xg + c, stride: C) - m
            sumSquares += d * d
        }
        for k in 0..<rowGroup {
            let s = 1 / (sumSquares[k] * invC + layerNormEpsilon).squareRoot()
            mean[n + k] = m[k]
            rstd[n + k] = s
            body(n + k, m[k], s)
        }
        n += rowGroup
    }
    for n in n..<rows {
        (mean[n], rstd[n]) = layerNormRowStatistics(x + n * C, channels: C, invC: invC)
        body(n, mean[n], rstd[n])
    }
}

/// One row's mean and rstd, the scalar sequence each lane of `forEachRowStatistics` repeats.
@inline(__always)
private func layerNormRowStatistics(_ xr: UnsafePointer<Float>, channels C: Int, invC: Float) -> (mean: Float, rstd: Float) {
    var sum: Float = 0
    for c in 0..<C { sum += xr[c] }
    let m = sum * invC
    var sumSquares: Float = 0
    for c in 0..<C {
        let d = xr[c] - m
        sumSquares += d * d
    }
    return (m, 1 / (sumSquares * invC + layerNormEpsilon).squareRoot())
}

/// o[C] = (xr − m) · s · weight + bias.
@inline(__always)
private func layerNormApply(_ o: UnsafeMutablePointer<Float>, _ xr: UnsafePointer<Float>, _ m: Float, _ s: Float,
                            _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>, channels C: Int) {
    for c in 0..<C { o[c] = (xr[c] - m) * s * weight[c] + bias[c] }
}

/// Backward of one row from scratch (its sums, then `layerNormBackwardApply`).
@inline(__always)
private func layerNormBackwardRow(_ dx: UnsafeMutablePointer<Float>, _ dWeight: UnsafeMutablePointer<Float>,
                                  _ dBias: UnsafeMutablePointer<Float>, _ dOut: UnsafePointer<Float>,
                                  _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                                  _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>, row n: Int, channels C: Int) {
    let invC = 1 / Float(C)
    let xr = x + n * C, dr = dOut + n * C
    let m = mean[n], s = rstd[n]
    var gMean: Float = 0, gxMean: Float = 0
    for c in 0..<C {
        let norm = (xr[c] - m) * s
        let g = dr[c] * weight[c]
        gMean += g
        gxMean += g * norm
    }
    gMean *= invC
    gxMean *= invC
    layerNormBackwardApply(dx + n * C, dWeight, dBias, dr, xr, weight, m, s, gMean, gxMean, channels: C)
}

/// One row's accumulation into dx, dWeight and dBias, given its sums.
@inline(__always)
private func layerNormBackwardApply(_ dxr: UnsafeMutablePointer<Float>, _ dWeight: UnsafeMutablePointer<Float>,
                                    _ dBias: UnsafeMutablePointer<Float>, _ dr: UnsafePointer<Float>,
                                    _ xr: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ m: Float, _ s: Float,
                                    _ gMean: Float, _ gxMean: Float, channels C: Int) {
    for c in 0..<C {
        let norm = (xr[c] - m) * s
        let g = dr[c] * weight[c]
        dWeight[c] += norm * dr[c]
        dBias[c] += dr[c]
        dxr[c] += s * (g - gMean - norm * gxMean)
    }
}
