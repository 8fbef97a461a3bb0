import CBLAS
import CKernels

// Dimension letters used in this file:
//   B  rows in the batch        I  input features        O  output features
// Layout is row-major throughout; weights are [O, I] as in PyTorch, so y = x·Wᵀ + b.
// Backward kernels accumulate (+=) into gradients, so zeroing is one fill and accumulation needs no extra code.

/// y[B, O] = x[B, I] · W[O, I]ᵀ + b[O]   (GEMM in `precision`: bf16 rounds x and W, accumulates and adds b in fp32).
public func linearForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                          _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                          batch: Int, inFeatures: Int, outFeatures: Int, precision: GEMMPrecision = .fp32) {
    linearForward(y, .fp32(x), .fp32(weight), bias, batch: batch, inFeatures: inFeatures, outFeatures: outFeatures,
                  precision: precision)
}

/// `linearForward` on operands that may already be rounded to bf16 (`GEMMOperand`; bf16 ones need `precision` bf16).
public func linearForward(_ y: UnsafeMutablePointer<Float>, _ x: GEMMOperand, _ weight: GEMMOperand,
                          _ bias: UnsafePointer<Float>?, batch: Int, inFeatures: Int, outFeatures: Int,
                          precision: GEMMPrecision) {
    if let bias {
        for row in 0..<batch { (y + row * outFeatures).update(from: bias, count: outFeatures) }
    }
    gemm(precision, transposeB: true, m: batch, n: outFeatures, k: inFeatures, x, lda: inFeatures, weight, ldb: inFeatures,
         beta: bias == nil ? 0 : 1, y, ldc: outFeatures)
}

/// Gradients of `linearForward`, accumulated (both products in `precision`, as the forward's):
///   dx[B, I] += dy[B, O] · W[O, I]      (skipped when dx is nil: the input layer needs no input gradient)
///   dW[O, I] += dy[B, O]ᵀ · x[B, I]
///   db[O]    += Σ_B dy[B, O]            (fp32 always)
public func linearBackward(_ dx: UnsafeMutablePointer<Float>?, _ dWeight: UnsafeMutablePointer<Float>,
                           _ dBias: UnsafeMutablePointer<Float>?, _ dy: UnsafePointer<Float>,
                           _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                           batch: Int, inFeatures: Int, outFeatures: Int, precision: GEMMPrecision = .fp32) {
    if let dx {
        gemm(precision, m: batch, n: inFeatures, k: outFeatures, dy, lda: outFeatures, weight, ldb: inFeatures,
             beta: 1, dx, ldc: inFeatures)
    }
    gemm(precision, transposeA: true, m: outFeatures, n: inFeatures, k: batch, dy, lda: outFeatures, x, ldb: inFeatures,
         beta: 1, dWeight, ldc: inFeatures)
    if let dBias { swt_column_sums_add(dBias, dy, batch, outFeatures, outFeatures) }
}

/// The weight and bias gradients of `linearBackward` for output rows `rows` only (o ∈ rows), accumulated:
///   dW[rows, I] += dy[B, rows]ᵀ · x[B, I],   db[rows] += Σ_B dy[B, rows]
/// `dWeightRows` and `dBiasRows` point at the first element of those rows. Used to produce a large gradient in
/// blocks, so each block can be communicated as soon as it is final.
public func linearBackwardParameterRows(_ dWeightRows: UnsafeMutablePointer<Float>?, _ dBiasRows: UnsafeMutablePointer<Float>?,
                                        _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, rows: Range<Int>,
                                        batch: Int, inFeatures: Int, outFeatures: Int, precision: GEMMPrecision = .fp32) {
    if let dWeightRows {
        linearBackwardWeightRows(dWeightRows, .fp32(dy), .fp32(x), rows: rows, batch: batch, inFeatures: inFeatures,
                                 outFeatures: outFeatures, precision: precision)
    }
    if let dBiasRows { linearBackwardBiasRows(dBiasRows, dy, rows: rows, batch: batch, outFeatures: outFeatures) }
}

/// db[rows] += Σ_B dy[B, rows] (fp32 always).
public func linearBackwardBiasRows(_ dBiasRows: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>,
                                   rows: Range<Int>, batch: Int, outFeatures: Int) {
    swt_column_sums_add(dBiasRows, dy + rows.lowerBound, batch, rows.count, outFeatures)
}

/// dW[rows, I] += dy[B, rows]ᵀ · x[B, I] on operands that may already be rounded to bf16 (a bf16 dy is rounded
/// once for all of a weight's blocks and its input gradient).
public func linearBackwardWeightRows(_ dWeightRows: UnsafeMutablePointer<Float>, _ dy: GEMMOperand, _ x: GEMMOperand,
                                     rows: Range<Int>, batch: Int, inFeatures: Int, outFeatures: Int,
                                     precision: GEMMPrecision) {
    guard !rows.isEmpty else { return }
    gemm(precision, transposeA: true, m: rows.count, n: inFeatures, k: batch, dy.advanced(by: rows.lowerBound),
         lda: outFeatures, x, ldb: inFeatures, beta: 1, dWeightRows, ldc: inFeatures)
}

/// Naive twin of `linearForward` (triple loop, double accumulation) for tests.
public func linearForwardNaive(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                               _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                               batch: Int, inFeatures: Int, outFeatures: Int) {
    for b in 0..<batch {
        for o in 0..<outFeatures {
            var acc = Double(bias?[o] ?? 0)
            for i in 0..<inFeatures { acc += Double(x[b * inFeatures + i]) * Double(weight[o * inFeatures + i]) }
            y[b * outFeatures + o] = Float(acc)
        }
    }
}

/// Naive twin of `linearBackward`.
public func linearBackwardNaive(_ dx: UnsafeMutablePointer<Float>?, _ dWeight: UnsafeMutablePointer<Float>,
                                _ dBias: UnsafeMutablePointer<Float>?, _ dy: UnsafePointer<Float>,
                                _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                                batch: Int, inFeatures: Int, outFeatures: Int) {
    if let dx {
        for b in 0..<batch {
            for i in 0..<inFeatures {
                var acc = 0.0
                for o in 0..<outFeatures { acc += Double(dy[b * outFeatures + o]) * Double(weight[o * inFeatures + i]) }
                dx[b * inFeatures + i] += Float(acc)
            }
        }
    }
    for o in 0..<outFeatures {
        for i in 0..<inFeatures {
            var acc = 0.0
            for b in 0..<batch { acc += Double(dy[b * outFeatures + o]) * Double(x[b * inFeatures + i]) }
            dWeight[o * inFeatures + i] += Float(acc)
        }
        if let dBias {
            var acc = 0.0
            for b in 0..<batch { acc += Double(dy[b * outFeatures + o]) }
            dBias[o] += Float(acc)
        }
    }
}

/// BLAS threading: with as many ranks as cores, each rank must use one thread or they fight over cores.
public enum BLASThreads {
    public static func set(_ n: Int) { openblas_set_num_threads(Int32(Swift.max(1, n))) }
    public static var current: Int { Int(openblas_get_num_threads()) }
}
