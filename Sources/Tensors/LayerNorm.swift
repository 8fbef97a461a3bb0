// Dimension letters used in this file:
//   N  rows (B·T positions of a sequence batch)     C  channels
// Layer normalisation (Ba, Kiros & Hinton 2016) over the last dimension, as GPT-2 / PyTorch's nn.LayerNorm:
//   out = (x − mean) · rstd · weight + bias,   rstd = 1/√(var + eps),   var the biased (population) variance.
// Backward kernels accumulate (+=). No BLAS here, so there is no fast/naive pair: tests check against finite
// differences. The one pair is the forward fused with bf16 rounding, checked bit for bit against its naive twin.

/// eps inside the square root, as PyTorch's default and GPT-2.
public let layerNormEpsilon: Float = 1e-5

/// out[N, C] = LayerNorm(x[N, C]) · weight[C] + bias[C]; saves mean[N] and rstd[N] for backward.
public func layerNormForward(_ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>,
                             _ rstd: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                             _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                             rows: Int, channels: Int) {
    let C = channels
    for n in 0..<rows {
        (mean[n], rstd[n]) = layerNormRow(out + n * C, x + n * C, weight, bias, channels: C)
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
        for n in 0..<rows {
            (mean[n], rstd[n]) = layerNormRow(o, x + n * C, weight, bias, channels: C)
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

/// One row of `layerNormForward`: o[C] from xr[C]; returns the row's mean and rstd.
@inline(__always)
private func layerNormRow(_ o: UnsafeMutablePointer<Float>, _ xr: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                          _ bias: UnsafePointer<Float>, channels C: Int) -> (mean: Float, rstd: Float) {
    let invC = 1 / Float(C)
    var sum: Float = 0
    for c in 0..<C { sum += xr[c] }
    let m = sum * invC
    var sumSquares: Float = 0
    for c in 0..<C {
        let d = xr[c] - m
        sumSquares += d * d
    }
    let s = 1 / (sumSquares * invC + layerNormEpsilon).squareRoot()
    for c in 0..<C { o[c] = (xr[c] - m) * s * weight[c] + bias[c] }
    return (m, s)
}

/// Gradients of `layerNormForward`, accumulated:
///   dx[N, C] += rstd · (g − mean_C(g) − x̂ · mean_C(g · x̂)),   g = dOut · weight,  x̂ = (x − mean) · rstd
///   dWeight[C] += Σ_N dOut · x̂,   dBias[C] += Σ_N dOut
public func layerNormBackward(_ dx: UnsafeMutablePointer<Float>, _ dWeight: UnsafeMutablePointer<Float>,
                              _ dBias: UnsafeMutablePointer<Float>, _ dOut: UnsafePointer<Float>,
                              _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                              _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>,
                              rows: Int, channels: Int) {
    let C = channels
    let invC = 1 / Float(C)
    for n in 0..<rows {
        let xr = x + n * C, dr = dOut + n * C, dxr = dx + n * C
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
        for c in 0..<C {
            let norm = (xr[c] - m) * s
            let g = dr[c] * weight[c]
            dWeight[c] += norm * dr[c]
            dBias[c] += dr[c]
            dxr[c] += s * (g - gMean - norm * gxMean)
        }
    }
}
