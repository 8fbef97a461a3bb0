import CKernels

/// Σ x² accumulated in double; non-finite if any element is. Runs the C kernel (AVX-512/AVX2 where the CPU has
/// them: at the memory bandwidth for large buffers); `sumOfSquaresNaive` is its twin for tests.
public func sumOfSquares(_ x: UnsafeBufferPointer<Float>) -> Double {
    guard let p = x.baseAddress else { return 0 }
    return swt_sum_squares(p, x.count)
}

/// Σ x² accumulated in double with 4 partial sums: the twin of `sumOfSquares` (equal up to summation order).
public func sumOfSquaresNaive(_ x: UnsafeBufferPointer<Float>) -> Double {
    guard let p = x.baseAddress else { return 0 }
    let n = x.count
    var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    var i = 0
    while i + 4 <= n {
        let a = Double(p[i]), b = Double(p[i + 1]), c = Double(p[i + 2]), d = Double(p[i + 3])
        s0 += a * a; s1 += b * b; s2 += c * c; s3 += d * d
        i += 4
    }
    while i < n { let a = Double(p[i]); s0 += a * a; i += 1 }
    return (s0 + s1) + (s2 + s3)
}
