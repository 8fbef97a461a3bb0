// Dimension letters used in this file:
//   N  rows (B·T positions of a sequence batch)     C  channels
// Layer normalisation (Ba, Kiros & Hinton 2016) over the last dimension, as GPT-2 / PyTorch's nn.LayerNorm:
//   out = (x − mean) · rstd · weight + bias,   rstd = 1/√(var + eps),   var the biased (population) variance.
// Backward kernels accumulate (+=). No BLAS here, so there is no fast/naive pair: tests check against finite
// differences.

/// eps inside the square root, as PyTorch's default and GPT-2.
public let layerNormEpsilon: Float = 1e-5

/// out[N, C] = LayerNorm(x[N, C]) · weight[C] + bias[C]; saves mean[N] and rstd[N] for backward.
public func layerNormForward(_ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>,
                             _ rstd: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                             _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                             rows: Int, channels: Int) {
    let C = channels
    let invC = 1 / Float(C)
    for n in 0..<rows {
        let xr = x + n * C
        var sum: Float = 0
        for c in 0..<C { sum += xr[c] }
        let m = sum * invC
        var sumSquares: Float = 0
        for c in 0..<C {
            let d = xr[c] - m
            sumSquares += d * d
        }
        let s = 1 / (sumSquares * invC + layerNormEpsilon).squareRoot()
        let o = out + n * C
        for c in 0..<C { o[c] = (xr[c] - m) * s * weight[c] + bias[c] }
        mean[n] = m
        rstd[n] = s
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
