// ℓ2-regularised binary logistic regression: the strongly convex test problem of the theory check
// (TheoryExperiment.swift) and of the full-batch optimizer tests.
// Dimension letters: m = samples, n = features.
//
//   f(w) = (1/m) Σᵢ log(1 + exp(−yᵢ xᵢᵀw)) + (μ/2)‖w‖²,   yᵢ ∈ {−1, +1}
//   ∇f(w) = (1/m) Σᵢ −yᵢ σ(−yᵢ xᵢᵀw) xᵢ + μw,           σ(t) = 1/(1 + e^{−t})
//   ∇²f(w) = (1/m) Σᵢ σ(zᵢ)(1 − σ(zᵢ)) xᵢxᵢᵀ + μI  ⪯  XᵀX/(4m) + μI   (σ(1 − σ) ≤ 1/4)
//
// so f is μ-strongly convex and L-smooth with L = λ_max(XᵀX)/(4m) + μ.

import Foundation
import SwiftMPI
import Tensors

/// A deterministic logistic-regression data set and its regularised objective (single rank, all samples).
///
/// Generating process (`generate`), all draws from one `SplitMix64(seed:)` stream in this order:
/// 1. a "true" weight vector w_true ∈ ℝⁿ with i.i.d. N(0, 1) entries (Box–Muller, `SplitMix64.normal()`);
/// 2. for each sample i = 0..<m: xᵢ with i.i.d. N(0, s²) entries (s = `featureScale`), then a uniform u ∈ [0, 1) (53 bits) and the label
///    yᵢ = +1 if u < σ(xᵢᵀw_true), else −1 (so the classes overlap and the minimiser is finite even without μ).
public struct LogisticRegressionData: Sendable {
    public let samples: Int
    public let features: Int
    /// Feature rows, (m, n) row-major.
    public let x: [Double]
    /// Labels ±1, (m).
    public let y: [Double]
    /// Strong-convexity constant μ (the ℓ2 coefficient).
    public let mu: Double
    public let seed: UInt64
    public let featureScale: Double

    public init(x: [Double], y: [Double], samples: Int, features: Int, mu: Double, seed: UInt64 = 0,
                featureScale: Double = 1) {
        precondition(samples > 0 && features > 0 && x.count == samples * features && y.count == samples,
                     "logistic regression data: x must be (m, n) = (\(samples), \(features)) and y (m)")
        precondition(mu >= 0, "μ must be non-negative")
        self.x = x; self.y = y; self.samples = samples; self.features = features; self.mu = mu; self.seed = seed
        self.featureScale = featureScale
    }

    /// The data set of the theory check by default: m = 200, n = 10, μ = 1, s = 3, seed 2024.
    /// Why s = 3: with s = 1 the regulariser dominates (L/μ ≈ 1.3, f* ≈ 0.65 ≈ f(0) − 0.04) and every method converges
    /// almost at once; s = 3 gives L/μ ≈ 4 and a data term that matters, while staying small enough for constant-step
    /// SGD (per-sample smoothness ≈ s²n/4 + μ ≈ 24) to be stable at γ = 0.003.
    public static func generate(samples: Int = 200, features: Int = 10, mu: Double = 1, seed: UInt64 = 2024,
                                featureScale: Double = 3) -> Self {
        var rng = SplitMix64(seed: seed)
        let wTrue = (0..<features).map { _ in rng.normal() }
        var x = [Double](repeating: 0, count: samples * features), y = [Double](repeating: 0, count: samples)
        for i in 0..<samples {
            var z = 0.0
            for j in 0..<features {
                let v = featureScale * rng.normal()
                x[i * features + j] = v
                z += v * wTrue[j]
            }
            let u = Double(rng.next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
            y[i] = u < 1 / (1 + exp(-z)) ? 1 : -1
        }
        return LogisticRegressionData(x: x, y: y, samples: samples, features: features, mu: mu, seed: seed,
                                      featureScale: featureScale)
    }

    /// L = λ_max(XᵀX)/(4m) + μ, the smoothness bound above (λ_max by power iteration on the n×n Gram matrix, run
    /// until the Rayleigh quotient stops changing at 1e-15 relative).
    public var smoothness: Double {
        let n = features, m = samples
        var gram = [Double](repeating: 0, count: n * n)  // (n, n) XᵀX
        x.withUnsafeBufferPointer { X in
            for i in 0..<m { let row = X.baseAddress! + i * n
                for a in 0..<n { for b in 0..<n { gram[a * n + b] += row[a] * row[b] } }
            }
        }
        var v = [Double](repeating: 1 / Double(n).squareRoot(), count: n), w = v
        var lambda = 0.0
        for _ in 0..<100_000 {
            for a in 0..<n { var s = 0.0; for b in 0..<n { s += gram[a * n + b] * v[b] }; w[a] = s }
            var rq = 0.0, norm = 0.0
            for a in 0..<n { rq += v[a] * w[a]; norm += w[a] * w[a] }
            norm = norm.squareRoot()
            for a in 0..<n { v[a] = w[a] / norm }
            if abs(rq - lambda) <= 1e-15 * rq { lambda = rq; break }
            lambda = rq
        }
        return lambda / (4 * Double(m)) + mu
    }

    /// f(w) on all samples.
    public func value(_ w: [Double]) -> Double {
        var g = [Double](repeating: 0, count: features)
        return valueAndGradient(w, into: &g)
    }

    /// f(w), writing ∇f(w) into `g` (n).
    public func valueAndGradient(_ w: [Double], into g: inout [Double]) -> Double {
        var sums = [Double](repeating: 0, count: features + 1)
        w.withUnsafeBufferPointer { wp in sums.withUnsafeMutableBufferPointer {
            accumulateLossSums(rows: 0..<samples, w: wp.baseAddress!, sums: $0.baseAddress!)
        }}
        return finish(sums: sums, w: w, g: &g)
    }

    /// Adds Σᵢ log(1 + exp(−yᵢzᵢ)) into sums[n] and Σᵢ −yᵢσ(−yᵢzᵢ)xᵢ into sums[0..<n] over `rows`
    /// (zᵢ = xᵢᵀw). The data term before the 1/m and the regulariser, so shards can be summed.
    func accumulateLossSums(rows: Range<Int>, w: UnsafePointer<Double>, sums: UnsafeMutablePointer<Double>) {
        let n = features
        x.withUnsafeBufferPointer { X in y.withUnsafeBufferPointer { Y in
            for i in rows {
                let row = X.baseAddress! + i * n
                var z = 0.0
                for j in 0..<n { z += row[j] * w[j] }
                let t = Y[i] * z
                // log(1 + e^{−t}) and σ(−t) = 1/(1 + e^{t}) without overflow for large |t|.
                let e = exp(-abs(t))
                sums[n] += (t > 0 ? 0 : -t) + log1p(e)
                let sigmaMinus = t > 0 ? e / (1 + e) : 1 / (1 + e)
                let c = -Y[i] * sigmaMinus
                for j in 0..<n { sums[j] += c * row[j] }
            }
        }}
    }

    /// From reduced data sums (n + 1) to f and ∇f: scale by 1/m, add (μ/2)‖w‖² and μw.
    func finish(sums: UnsafePointer<Double>, w: UnsafePointer<Double>, g: UnsafeMutablePointer<Double>) -> Double {
        let n = features, scale = 1 / Double(samples)
        var squared = 0.0
        for j in 0..<n {
            g[j] = scale * sums[j] + mu * w[j]
            squared += w[j] * w[j]
        }
        return scale * sums[n] + 0.5 * mu * squared
    }

    private func finish(sums: [Double], w: [Double], g: inout [Double]) -> Double {
        sums.withUnsafeBufferPointer { s in w.withUnsafeBufferPointer { wp in g.withUnsafeMutableBufferPointer {
            finish(sums: s.baseAddress!, w: wp.baseAddress!, g: $0.baseAddress!)
        }}}
    }

    /// The stochastic gradient of sample i: ∇ℓᵢ(w) + μw (an unbiased estimate of ∇f(w) when i is uniform), into `g` (n).
    @inline(__always)
    public func sampleGradient(_ i: Int, w: UnsafePointer<Double>, into g: UnsafeMutablePointer<Double>) {
        let n = features
        x.withUnsafeBufferPointer { X in
            let row = X.baseAddress! + i * n
            var z = 0.0
            for j in 0..<n { z += row[j] * w[j] }
            let t = y[i] * z
            let e = exp(-abs(t))
            let c = -y[i] * (t > 0 ? e / (1 + e) : 1 / (1 + e))
            for j in 0..<n { g[j] = c * row[j] + mu * w[j] }
        }
    }

    /// Newton's method with a Cholesky solve of the n×n Hessian, for the reference minimiser w* (quadratic
    /// convergence, so ‖∇f‖ reaches rounding level, ≈ 1e-16 here, in a handful of steps). Far from w* the step is
    /// backtracked (Armijo, c₁ = 1e-4, halving) so convergence is global; once ‖∇f‖ < 1e-6 full steps are taken,
    /// since there f can no longer resolve the decrease. Stops when ‖∇f‖₂ ≤ `tolerance` or after `maxIterations`.
    public func newtonMinimiser(tolerance: Double = 1e-12, maxIterations: Int = 100)
        -> (w: [Double], value: Double, gradientNorm: Double, iterations: Int) {
        let n = features, m = samples
        var w = [Double](repeating: 0, count: n), g = w, trial = w, gTrial = w, step = w
        var value = valueAndGradient(w, into: &g)
        var iterations = 0
        var hessian = [Double](repeating: 0, count: n * n)  // (n, n)
        while norm2(g) > tolerance && iterations < maxIterations {
            iterations += 1
            // H = (1/m) Σ σ(1 − σ) xxᵀ + μI
            for k in 0..<(n * n) { hessian[k] = 0 }
            for i in 0..<m {
                var z = 0.0
                for j in 0..<n { z += x[i * n + j] * w[j] }
                let s = 1 / (1 + exp(-z)), weight = s * (1 - s) / Double(m)
                for a in 0..<n { for b in 0...a { hessian[a * n + b] += weight * x[i * n + a] * x[i * n + b] } }
            }
            for a in 0..<n { hessian[a * n + a] += mu; for b in 0..<a { hessian[b * n + a] = hessian[a * n + b] } }
            choleskySolve(hessian, n: n, rhs: g, into: &step)  // step = H⁻¹g
            var alpha = 1.0
            let slope = -zip(g, step).reduce(0) { $0 + $1.0 * $1.1 }
            while true {
                for j in 0..<n { trial[j] = w[j] - alpha * step[j] }
                let v = valueAndGradient(trial, into: &gTrial)
                if norm2(g) < 1e-6 || v <= value + 1e-4 * alpha * slope || alpha < 1e-10 { value = v; break }
                alpha *= 0.5
            }
            swap(&w, &trial); swap(&g, &gTrial)
        }
        return (w, value, norm2(g), iterations)
    }
}

private func norm2(_ v: [Double]) -> Double { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }

/// Solves A·x = b for symmetric positive definite A (n, n) by Cholesky factorisation A = LLᵀ.
private func choleskySolve(_ a: [Double], n: Int, rhs b: [Double], into x: inout [Double]) {
    var l = [Double](repeating: 0, count: n * n)  // (n, n) lower triangle
    for i in 0..<n {
        for j in 0...i {
            var s = a[i * n + j]
            for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
            if i == j {
                precondition(s > 0, "choleskySolve: matrix is not positive definite")
                l[i * n + i] = s.squareRoot()
            } else {
                l[i * n + j] = s / l[j * n + j]
            }
        }
    }
    var z = [Double](repeating: 0, count: n)
    for i in 0..<n {  // L z = b
        var s = b[i]
        for k in 0..<i { s -= l[i * n + k] * z[k] }
        z[i] = s / l[i * n + i]
    }
    for i in stride(from: n - 1, through: 0, by: -1) {  // Lᵀ x = z
        var s = z[i]
        for k in (i + 1)..<n { s -= l[k * n + i] * x[k] }
        x[i] = s / l[i * n + i]
    }
}

/// The logistic-regression objective for the full-batch optimizers, optionally distributed: with a communicator,
/// rank r holds the contiguous block of samples [⌊r·m/p⌋, ⌊(r+1)·m/p⌋) of p ranks (any p ≤ m; blocks differ by at
/// most one sample when p does not divide m), computes its partial data sums, and all-reduces (sum) the n + 1 numbers
/// (Σ loss, Σ gradient) once per evaluation; the 1/m and the regulariser, which depend only on the replicated w, are
/// applied after the reduction. Value and gradient are therefore identical on every rank (the all-reduce returns
/// the same bits everywhere), and so is every iterate of `LBFGS`/`GradientDescent` (see `FullBatchObjective`).
///
/// The 1-rank and p-rank objectives differ only in summation order (≈ 1e-16 relative).
public final class LogisticRegressionObjective: FullBatchObjective {
    public let data: LogisticRegressionData
    public let comm: Communicator?
    /// This rank's samples.
    public let rows: Range<Int>
    /// Evaluations so far (each one all-reduce when distributed).
    public private(set) var evaluations = 0
    private var sums: [Double]  // (n + 1) partial, then reduced, data sums

    public var dimension: Int { data.features }

    /// `comm` nil: every sample on this process (no communication).
    public init(data: LogisticRegressionData, comm: Communicator? = nil) {
        self.data = data
        self.comm = comm
        let p = comm?.size ?? 1, r = comm?.rank ?? 0
        precondition(p <= data.samples, "more ranks (\(p)) than samples (\(data.samples)): some would hold no data")
        rows = (r * data.samples / p)..<((r + 1) * data.samples / p)
        sums = [Double](repeating: 0, count: data.features + 1)
    }

    public func valueAndGradient(_ x: UnsafeBufferPointer<Double>, _ g: UnsafeMutableBufferPointer<Double>) throws -> Double {
        precondition(x.count == dimension && g.count == dimension, "w and g must have n = \(dimension) elements")
        evaluations += 1
        return try sums.withUnsafeMutableBufferPointer { s in
            for k in 0..<s.count { s[k] = 0 }
            data.accumulateLossSums(rows: rows, w: x.baseAddress!, sums: s.baseAddress!)
            if let comm { try comm.allReduce(s, op: .sum) }
            return data.finish(sums: s.baseAddress!, w: x.baseAddress!, g: g.baseAddress!)
        }
    }
}
