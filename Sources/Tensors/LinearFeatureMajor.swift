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
    linearForwardFeatureMajor(yT, .fp32(x), inputIsBatchMajor: inputIsBatchMajor, .fp32(weight), bias, batch: batch,
                              inFeatures: inFeatures, outFeatures: outFeatures, precision: precision)
}

/// `linearForwardFeatureMajor` on operands that may already be rounded to bf16 (`GEMMOperand`).
public func linearForwardFeatureMajor(_ yT: UnsafeMutablePointer<Float>, _ x: GEMMOperand, inputIsBatchMajor: Bool,
                                      _ weight: GEMMOperand, _ bias: UnsafePointer<Float>?,
                                      batch: Int, inFeatures: Int, outFeatures: Int, precision: GEMMPrecision) {
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
    linearBackwardInputFeatureMajor(dxT, .fp32(dyT), .fp32(weight), batch: batch, inFeatures: inFeatures,
                                    outFeatures: outFeatures, precision: precision)
}

/// `linearBackwardInputFeatureMajor` on operands that may already be rounded to bf16 (`GEMMOperand`).
public func linearBackwardInputFeatureMajor(_ dxT: UnsafeMutablePointer<Float>, _ dyT: GEMMOperand,
                                            _ weight: GEMMOperand, batch: Int, inFeatures: Int, outFeatures: Int,
                                            precision: GEMMPrecision) {
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
    if let dWeightRows {
        linearBackwardWeightRowsFeatureMajor(dWeightRows, .fp32(dyT), .fp32(x), inputIsBatchMajor: inputIsBatchMajor,
                                             rows: rows, batch: batch, inFeatures: inFeatures, precision: precision)
    }
    if let dBiasRows { swt_row_sums_add(dBiasRows, dyT + rows.lowerBound * batch, rows.count, batch, batch) }
}

/// dW[rows, I] += dyᵀ[rows, B] · x[B, I] on operands that may already be rounded to bf16 (x as xᵀ[I, B] or, if
/// `inputIsBatchMajor`, x[B, I]).
public func linearBackwardWeightRowsFeatureMajor(_ dWeightRows: UnsafeMutablePointer<Float>, _ dyT: GEMMOperand,
                                                 _ x: GEMMOperand, inputIsBatchMajor: Bool, rows: Range<Int>,
                                                 batch: Int, inFeatures: Int, precision: GEMMPrecision) {
    guard !rows.isEmpty else { return }
    gemm(precision, transposeB: !inputIsBatchMajor, m: rows.count, n: inFeatures, k: batch,
         dyT.advanced(by: rows.lowerBound * batch), lda: batch, x, ldb: inputIsBatchMajor ? inFeatures : batch,
         beta: 1, dWeightRows, ldc: inFeatures)
}

/// out[C, R] = in[R, C]ᵀ (small matrices: the MLP's logits between layouts).
public func transpose(_ input: UnsafePointer<Float>, rows: Int, cols: Int, into output: UnsafeMutablePointer<Float>) {
    for r in 0..<rows {
        for c in 0..<cols { output[c * rows + r] = input[r * cols + c] }
    }
}

/// dx[B, I] += dyᵀ[O, B]ᵀ · W[O, I]  — the input gradient in the batch-major layout the data arrives in (the MLP's
/// first layer: adversarial attacks need d(loss)/d(input)). Accumulates, as every backward kernel does. Naive twin:
/// the dx of `linearBackwardNaive` with dy = (dyᵀ)ᵀ.
public func linearBackwardInputToBatchMajor(_ dx: UnsafeMutablePointer<Float>, _ dyT: UnsafePointer<Float>,
                                            _ weight: UnsafePointer<Float>, batch: Int, inFeatures: Int, outFeatures: Int) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(batch), Int32(inFeatures), Int32(outFeatures),
                1, dyT, Int32(batch), weight, Int32(inFeatures), 1, dx, Int32(inFeatures))
}
