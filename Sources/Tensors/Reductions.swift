/// Σ x² accumulated in double (4 partial sums so the loop vectorises); non-finite if any element is.
public func sumOfSquares(_ x: UnsafeBufferPointer<Float>) -> Double {
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
