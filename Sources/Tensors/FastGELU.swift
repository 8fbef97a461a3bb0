import CKernels

// GELU, tanh approximation, computed without libm calls so the loops vectorise.
//
// Why: glibc's tanhf goes through expm1f and costs ~50 ns an element; in the GPT benchmark model (N·4C = 2M
// elements per layer) `geluForward`/`geluBackward` took about a third of a training step. Here, with
// q = exp(−2u) and r = 1 / (1 + q),
//   ½(1 + tanh u) = r,   ½(1 − tanh² u) = 2·(q·r)·r
// (no cancellation in either tail, and no overflow: q saturates at e^88 and r at 0 or 1), and exp from Cephes' expf (range reduction to r ∈ [−ln2/2, ln2/2], degree-6
// polynomial, 2ⁿ built in the exponent bits): plain arithmetic the compiler turns into SIMD. Tests check both
// against a double-precision reference and against the libm-based `geluForward`/`geluBackward` (the naive twins).
// Inputs beyond ±1e19 (where x³ overflows float) are outside the contract, as for the libm version.

@inline(__always)
private func expCephes(_ value: Float) -> Float {
    // Clamp to the finite range of expf; 2ⁿ below then stays a normal float (n ∈ −126…127).
    let x = Swift.min(Swift.max(value, -87.3), 88.3)
    // n = round(x / ln 2) by the 1.5·2²³ trick (round-to-nearest without a libm call).
    let shifter: Float = 12_582_912
    let n = (x * 1.442_695_04 + shifter) - shifter
    // r = x − n·ln 2, with ln 2 split in two so the product is exact.
    let r = (x - n * 0.693_359_375) + n * 2.121_944_40e-4
    var p: Float = 1.987_569_150_0e-4
    p = p * r + 1.398_199_950_7e-3
    p = p * r + 8.333_451_907_3e-3
    p = p * r + 4.166_579_589_4e-2
    p = p * r + 1.666_666_545_9e-1
    p = p * r + 5.000_000_120_1e-1
    p = p * r * r + r + 1
    let scale = Float(bitPattern: UInt32(truncatingIfNeeded: Int32(n) &+ 127) &<< 23)
    return p * scale
}

private let geluScaleFast: Float = 0.797_884_560_802_865_4  // √(2/π)
private let geluCubicFast: Float = 0.044715

/// y[n] = ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))   (same function as `geluForward`). Runs the C kernel
/// (AVX-512/AVX2 where available: the Swift loop below vectorises only to the baseline's 4 lanes); bit-identical
/// to `geluFastForwardSwift`.
public func geluFastForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
    swt_gelu_forward(y, x, n)
}

/// dx[n] += dy · GELU'(x): the C kernel, bit-identical to `geluFastBackwardSwift`.
public func geluFastBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                             count n: Int) {
    swt_gelu_backward_add(dx, dy, x, n)
}

/// Swift twin of `geluFastForward` (tests).
public func geluFastForwardSwift(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
    for i in 0..<n {
        let v = x[i]
        let u = geluScaleFast * (v + geluCubicFast * v * v * v)
        let r = 1 / (1 + expCephes(-2 * u))
        y[i] = v * r
    }
}

/// Swift twin of `geluFastBackward`:
/// dx[n] += dy · (½(1 + tanh u) + ½·x·(1 − tanh² u)·√(2/π)·(1 + 3·0.044715·x²))   (as `geluBackward`).
public func geluFastBackwardSwift(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                             count n: Int) {
    for i in 0..<n {
        let v = x[i]
        let u = geluScaleFast * (v + geluCubicFast * v * v * v)
        let q = expCephes(-2 * u)
        let r = 1 / (1 + q)
        let du = geluScaleFast * (1 + 3 * geluCubicFast * v * v)
        dx[i] += dy[i] * (r + 2 * v * du * (q * r) * r)
    }
}

// Fused with the bf16 rounding, for an output read only by matrix products (the GPT's GELU output in bf16) and a
// gradient the products read as bf16 while its fp32 values feed the bias sums. Both are bit-identical to their
// naive twins, the unfused sequence: the same fp32 values (the kernels above), rounded by the same `BF16.round`.

/// yh[n] = bf16(GELU(x[n])) with no fp32 output: `geluFastForward` then `BF16.round` in one pass.
public func geluFastForwardBF16(_ yh: UnsafeMutablePointer<UInt16>, _ x: UnsafePointer<Float>, count n: Int) {
    swt_gelu_forward_bf16(yh, x, n)
}

/// dx[n] = dy · GELU'(x) (overwritten: what `geluFastBackward` adds to a zeroed dx) and dxh[n] = bf16(dx[n]).
public func geluFastBackwardBF16(_ dx: UnsafeMutablePointer<Float>, _ dxh: UnsafeMutablePointer<UInt16>,
                                 _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
    swt_gelu_backward_bf16(dx, dxh, dy, x, n)
}

/// Naive twin of `geluFastForwardBF16` (tests): the fp32 kernel over the whole buffer, then `BF16.round`.
public func geluFastForwardBF16Naive(_ yh: UnsafeMutablePointer<UInt16>, _ x: UnsafePointer<Float>, count n: Int) {
    guard n > 0 else { return }
    var y = [Float](repeating: 0, count: n)
    y.withUnsafeMutableBufferPointer { y in
        geluFastForward(y.baseAddress!, x, count: n)
        BF16.round(y.baseAddress!, into: yh, count: n)
    }
}

/// Naive twin of `geluFastBackwardBF16` (tests): zero dx, accumulate `geluFastBackward` into it, `BF16.round`.
public func geluFastBackwardBF16Naive(_ dx: UnsafeMutablePointer<Float>, _ dxh: UnsafeMutablePointer<UInt16>,
                                      _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
    dx.update(repeating: 0, count: n)
    geluFastBackward(dx, dy, x, count: n)
    BF16.round(dx, into: dxh, count: n)
}
