import CBLAS
import CKernels

// Linear layers with activations stored feature-major: [F, B], one row per feature with the batch along it
// (the transpose of Linear.swift's [B, F]). Weights stay [O, I] as in PyTorch.
//
// Why: with a small per-rank batch (B = 128) and wide layers (I, O ~ 1024), the batch-major forward
// y = x·Wᵀ puts B in GEMM's M dimension, which OpenBLAS runs slower than the same product with the wide
// dimensions as M and K. Measured on the benchmark machine (one core, OpenBLAS 0.3.21, Zen 4), the seven GEMMs of
// one MLP 784-1024-1024-10 step at B = 128: 14.2 ms batch-major, 13.3 ms feature-major (forward 128×1024×1024: 3.57
// → 2.85 ms). The first layer reads its input batch-major ([B, I], as the data arrives), selected by `inputIsBatchMajor`.
//
// Dimension letters: B batch rows, I input features, O output features.

/// yᵀ[O, B] = W[O, I] · xᵀ[I, B] + b[O], with x given as xᵀ[I, B] or, if `inputIsBatchMajor`, as x[B, I].
public func linearForwardFeatureMajor(_ yT: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, inputIsBatchMajor: Bool,
                                      _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                                      batch: Int, inFeatures: Int, outFeatures: Int, precision: GEMMPrecision = .fp32) {
    if let bias {
        for o in 0..<outFeatures { (yT + o * batch).update(repeating: bias[o], count: batch) }
    }
    gemm(precision, transposeB: inputIsBatchMajor, m: outFeatures, n: batch, k: inFeatures, weight, lda: inFeatures,
         x, ldb: inputIsBatchMajor ? inFeatures : batch, beta: bias == nil ? 0 : 1, yT, ldc: batch)
}

/// dxᵀ[I, B] = Wᵀ[I, O] · dyᵀ[O, B]  — overwrites dxᵀ (β = 0, so the buffer needs no zeroing).
public func linearBackwardInputFeatureMajor(_ dxT: UnsafeMutablePointer<Float>, _ dyT: UnsafePointer<Float>,
                                            _ weight: UnsafePointer<Float>, batch: Int, inFeatures: Int, outFeatures: Int,
                                            precision: GEMMPrecision = .fp32) {
    gemm(precision, transposeA: true, m: inFeatures, n: batch, k: outFeatures, weight, lda: inFeatures, dyT, ldb: batch,
         dxT, ldc: batch)
}

/// The weight and bias gradients for output rows `rows` only, accumulated:
///   dW[rows, I] += dyᵀ[rows, B] · x[B, I],   db[rows] += Σ_B dyᵀ[rows, B]
/// with x given as xᵀ[I, B] or, if `inputIsBatchMajor`, as x[B, I]. `dWeightRows`/`dBiasRows` point at row
/// `rows.lowerBound`; producing a large gradient in row blocks lets each block be communicated as soon as it is final.
public func linearBackwardParameterRowsFeatureMajor(_ dWeightRows: UnsafeMutablePointer<Float>?,
                                                    _ dBiasRows: UnsafeMutablePointer<Float>?,
                                                    _ dyT: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                                    inputIsBatchMajor: Bool, rows: Range<Int>,
                                                    batch: Int, inFeatures: Int, precision: GEMMPrecision = .fp32) {
    let dyRows = dyT + rows.lowerBound * batch
    if let dWeightRows, !rows.isEmpty {
        gemm(precision, transposeB: !inputIsBatchMajor, m: rows.count, n: inFeatures, k: batch, dyRows, lda: batch,
             x, ldb: inputIsBatchMajor ? inFeatures : batch, beta: 1, dWeightRows, ldc: inFeatures)
    }
    if let dBiasRows { swt_row_sums_add(dBiasRows, dyRows, rows.count, batch, batch) }
}

/// out[C, R] = in[R, C]ᵀ (small matrices: the MLP's logits between layouts).
public func transpose(_ input: UnsafePointer<Float>, rows: Int, cols: Int, into output: UnsafeMutablePointer<Float>) {
    for r in 0..<rows {
        for c in 0..<cols { output[c * rows + r] = input[r * cols + c] }
    }
}
