// Coordinate descent: minimise along one coordinate at a time, exactly (Wright 2015, "Coordinate descent
// algorithms", Math. Programming 151; Nesterov 2012 for the randomised variant). For the ℓ2-regularised logistic
// regression of the theory check each 1-D problem φ(t) = f(w + t·eⱼ) is smooth and μ-strongly convex, and is solved
// to rounding level by safeguarded Newton steps in t over the cached margins zᵢ = xᵢᵀw, so one coordinate update
// costs O(m) per Newton step and a sweep over all n coordinates costs about what one full gradient does.
// Dimension letters: m = samples, n = features.

import Foundation
import Tensors

/// A problem coordinate descent can minimise exactly along single coordinates.
public protocol CoordinateProblem: AnyObject {
    var dimension: Int { get }
    /// Makes `x` (n) the current point, rebuilding any cached quantities (margins).
    func reset(to x: [Double])
    /// Replaces x[j] by the exact minimiser of f along coordinate j from the current point, updating the caches.
    /// Returns the passes over the data it took (a pass reads every sample's value of feature j once).
    func minimiseAlong(_ j: Int, x: inout [Double]) -> Int
    /// f(x) and ∇f(x) (n) at the current point (for the stopping test and the history).
    func valueAndGradient(_ x: [Double], into g: inout [Double]) -> Double
}

/// Cyclic (j = 0, 1, …, n−1 every sweep) or randomised (n coordinates per sweep drawn uniformly with replacement
/// from `SplitMix64(seed:)`, Nesterov 2012) coordinate descent with exact line minimisation.
/// One iteration in the history is one sweep of n coordinate updates; stops when ‖∇f‖₂ ≤ `gradientTolerance`
/// (checked after each sweep) or after `maxSweeps`. `evaluations` counts full-gradient equivalents: the single-feature
/// data passes of the 1-D solves divided by n, plus one per sweep for the gradient check.
public struct CoordinateDescent: Sendable {
    public enum Order: Sendable, Equatable {
        case cyclic
        case randomised(seed: UInt64)
    }
    public var order: Order
    public var maxSweeps: Int
    public var gradientTolerance: Double

    public init(order: Order = .cyclic, maxSweeps: Int = 10_000, gradientTolerance: Double = 1e-8) {
        self.order = order; self.maxSweeps = maxSweeps; self.gradientTolerance = gradientTolerance
    }

    public func minimize(_ problem: CoordinateProblem, from x0: [Double]) -> FullBatchResult {
        let n = problem.dimension
        precondition(x0.count == n, "starting point has \(x0.count) elements, the problem \(n)")
        var x = x0, g = [Double](repeating: 0, count: n)
        problem.reset(to: x)
        var rng: SplitMix64? = nil
        if case .randomised(let seed) = order { rng = SplitMix64(seed: seed) }
        var passes = 1.0  // the gradient at x₀
        func record(_ sweep: Int) -> FullBatchRecord {
            let value = problem.valueAndGradient(x, into: &g)
            return FullBatchRecord(iteration: sweep, value: value, gradientNorm: g.reduce(0) { $0 + $1 * $1 }.squareRoot(),
                                   evaluations: Int(passes.rounded(.up)))
        }
        var history = [record(0)]
        var sweep = 0
        while history.last!.gradientNorm > gradientTolerance && sweep < maxSweeps {
            if !history.last!.value.isFinite { return FullBatchResult(x: x, history: history, iterates: [], stop: .diverged) }
            sweep += 1
            var dataPasses = 0
            for k in 0..<n {
                let j = rng != nil ? Int(rng!.next() % UInt64(n)) : k
                dataPasses += problem.minimiseAlong(j, x: &x)
            }
            passes += Double(dataPasses) / Double(n) + 1
            history.append(record(sweep))
        }
        let stop: FullBatchStop = history.last!.gradientNorm <= gradientTolerance ? .converged : .maxIterations
        return FullBatchResult(x: x, history: history, iterates: [], stop: stop)
    }
}

/// Logistic regression (LogisticRegression.swift) as a coordinate problem: margins zᵢ = xᵢᵀw are cached, and
/// φ(t) = f(w + t·eⱼ) is minimised by Newton's method in t,
///   φ'(t) = (1/m) Σᵢ −yᵢ σ(−yᵢzᵢ) xᵢⱼ + μ(wⱼ + t),   φ''(t) = (1/m) Σᵢ σ(zᵢ)(1 − σ(zᵢ)) xᵢⱼ² + μ ≥ μ,
/// safeguarded by bisection inside the bracket the signs of φ' give, until |φ'| ≤ `derivativeTolerance` or the
/// step no longer changes t (quadratic convergence near the minimiser: a handful of passes).
public final class LogisticCoordinateProblem: CoordinateProblem {
    public let data: LogisticRegressionData
    public var derivativeTolerance = 1e-14
    private var margins: [Double]  // (m) zᵢ = xᵢᵀw, kept in step with every coordinate update
    public var dimension: Int { data.features }

    public init(data: LogisticRegressionData) {
        self.data = data
        margins = [Double](repeating: 0, count: data.samples)
    }

    public func reset(to w: [Double]) {
        let n = data.features
        for i in 0..<data.samples {
            var z = 0.0
            for j in 0..<n { z += data.x[i * n + j] * w[j] }
            margins[i] = z
        }
    }

    public func minimiseAlong(_ j: Int, x w: inout [Double]) -> Int {
        let n = data.features, m = data.samples, scale = 1 / Double(m)
        // φ' is increasing (φ convex), so every evaluated t with φ'(t) < 0 lies left of the minimiser and every one
        // with φ'(t) > 0 right of it: [low, high] brackets it, and a Newton step leaving the bracket is replaced
        // by bisection (a safeguard that costs no extra pass over the data).
        var t = 0.0, low = -Double.infinity, high = Double.infinity, passes = 0
        while passes < 200 {
            passes += 1
            var d1 = 0.0, d2 = 0.0
            for i in 0..<m {
                let xij = data.x[i * n + j], yz = data.y[i] * (margins[i] + t * xij)
                let e = exp(-abs(yz))
                let sigmaMinus = yz > 0 ? e / (1 + e) : 1 / (1 + e)  // σ(−yz)
                d1 -= data.y[i] * sigmaMinus * xij
                d2 += sigmaMinus * (1 - sigmaMinus) * xij * xij      // σ(z)(1 − σ(z)) = σ(−yz)(1 − σ(−yz))
            }
            d1 = d1 * scale + data.mu * (w[j] + t)
            d2 = d2 * scale + data.mu
            if abs(d1) <= derivativeTolerance { break }
            if d1 > 0 { high = t } else { low = t }
            var next = t - d1 / d2
            if !(next > low && next < high) && low.isFinite && high.isFinite { next = 0.5 * (low + high) }
            if next == t { break }
            t = next
        }
        w[j] += t
        for i in 0..<m { margins[i] += t * data.x[i * n + j] }
        return passes
    }

    public func valueAndGradient(_ w: [Double], into g: inout [Double]) -> Double {
        data.valueAndGradient(w, into: &g)
    }
}

/// A strictly convex quadratic f(x) = ½xᵀAx − bᵀx (A (n, n) symmetric positive definite) as a coordinate problem:
/// the exact minimiser along j is xⱼ ← xⱼ − (Ax − b)ⱼ / Aⱼⱼ, so cyclic coordinate descent is the Gauss–Seidel
/// iteration for Ax = b.
public final class QuadraticCoordinateProblem: CoordinateProblem {
    public let a: [Double]  // (n, n)
    public let b: [Double]  // (n)
    public let dimension: Int

    public init(a: [Double], b: [Double]) {
        precondition(a.count == b.count * b.count, "A must be (n, n) for b of n elements")
        self.a = a; self.b = b; dimension = b.count
    }

    public func reset(to x: [Double]) {}

    public func minimiseAlong(_ j: Int, x: inout [Double]) -> Int {
        let n = dimension
        var residual = -b[j]
        for k in 0..<n { residual += a[j * n + k] * x[k] }
        x[j] -= residual / a[j * n + j]
        return 1
    }

    public func valueAndGradient(_ x: [Double], into g: inout [Double]) -> Double {
        let n = dimension
        var value = 0.0
        for j in 0..<n {
            var ax = 0.0
            for k in 0..<n { ax += a[j * n + k] * x[k] }
            g[j] = ax - b[j]
            value += 0.5 * x[j] * ax - b[j] * x[j]
        }
        return value
    }
}
