// Full-batch objectives and the two line searches used by the full-batch optimizers (LBFGS.swift).
// Dimension letters: n = number of parameters (`FullBatchObjective.dimension`).
//
// Precision: everything here is Double. These are small full-batch problems (n in the tens to thousands) where the
// cost is the objective, not the optimizer's O(n·m) vector work, and the stopping tests need it: near a minimiser
// the decrease of f is ≈ ‖g‖²/(2L), which in Float (ε ≈ 6e-8 relative to f) vanishes below ‖g‖ ≈ 1e-4, so an
// Armijo test cannot tell a descent step from rounding and ‖∇f‖ < 1e-8 is unreachable. In Double the same limit
// is ‖g‖ ≈ 1e-8.

/// A smooth objective evaluated on the whole data set at once (full batch), for `GradientDescent` and `LBFGS`.
///
/// Distributed use (data parallel, the case this package runs): every rank holds the same parameters x (replicated)
/// and a shard of the data, and f(x) and ∇f(x) are sums over the data. The objective performs the all-reduce itself:
/// `valueAndGradient` reduces the pair (Σ_shard value, Σ_shard gradient) — one all-reduce of n + 1 numbers per
/// evaluation — and returns the global value and gradient, identical on every rank. After that every vector the
/// optimizer touches (x, g, the search direction, the L-BFGS pairs s and y) is replicated, so every dot product is
/// already identical on every rank and needs no further communication: "every dot product is an all-reduce" in the
/// reference sheet (docs/optimizers.md, L-BFGS row) is met by reducing the *data* sums once per evaluation, not
/// by reducing each dot product. That is why the default `reduceParameterSums` does nothing.
///
/// A model-parallel objective (parameters sharded, each rank owning a slice of x, g, s, y) would instead implement
/// `reduceParameterSums` as an all-reduce (sum): every reduction the optimizers compute over parameter vectors
/// (dot products, ‖·‖₁, ‖·‖₂²) is a per-rank partial sum passed through that hook before use.
///
/// Preconditions: every rank calls `valueAndGradient` and `reduceParameterSums` the same number of times in the same
/// order (the optimizers guarantee this when every rank sees the same values, which the contract above ensures).
public protocol FullBatchObjective: AnyObject {
    /// n, the number of parameters.
    var dimension: Int { get }

    /// Returns f(x) and overwrites `g` (n elements) with ∇f(x); both global (already reduced over ranks).
    /// `x` and `g` do not alias. Throws when communication fails.
    func valueAndGradient(_ x: UnsafeBufferPointer<Double>, _ g: UnsafeMutableBufferPointer<Double>) throws -> Double

    /// Turns per-rank partial sums of reductions over parameter vectors into totals, in place.
    /// Replicated parameters (the default): already totals, nothing to do.
    func reduceParameterSums(_ partials: UnsafeMutableBufferPointer<Double>) throws
}

extension FullBatchObjective {
    public func reduceParameterSums(_ partials: UnsafeMutableBufferPointer<Double>) throws {}
}

// MARK: - Vector kernels over raw buffers (n elements each)

@inline(__always)
func fullBatchDot(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, _ n: Int) -> Double {
    var s = 0.0
    for i in 0..<n { s += a[i] * b[i] }
    return s
}

@inline(__always)
func fullBatchAbsSum(_ a: UnsafePointer<Double>, _ n: Int) -> Double {
    var s = 0.0
    for i in 0..<n { s += abs(a[i]) }
    return s
}

/// y ← y + α·x
@inline(__always)
func fullBatchAxpy(_ alpha: Double, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ n: Int) {
    for i in 0..<n { y[i] += alpha * x[i] }
}

/// out ← x + α·d
@inline(__always)
func fullBatchStepPoint(_ out: UnsafeMutablePointer<Double>, _ x: UnsafePointer<Double>, _ alpha: Double,
               _ d: UnsafePointer<Double>, _ n: Int) {
    for i in 0..<n { out[i] = x[i] + alpha * d[i] }
}

extension FullBatchObjective {
    /// aᵀb over the whole parameter vector (partial sum passed through `reduceParameterSums`).
    func dot(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>) throws -> Double {
        var s = fullBatchDot(a, b, dimension)
        try withUnsafeMutablePointer(to: &s) { try reduceParameterSums(UnsafeMutableBufferPointer(start: $0, count: 1)) }
        return s
    }

    /// (‖a‖₂, ‖a‖₁) with one reduction.
    func norms(_ a: UnsafePointer<Double>) throws -> (l2: Double, l1: Double) {
        var sums = (fullBatchDot(a, a, dimension), fullBatchAbsSum(a, dimension))
        try withUnsafeMutablePointer(to: &sums) {
            try $0.withMemoryRebound(to: Double.self, capacity: 2) {
                try reduceParameterSums(UnsafeMutableBufferPointer(start: $0, count: 2))
            }
        }
        return (sums.0.squareRoot(), sums.1)
    }
}

// MARK: - Line searches

/// One line search along a direction d from x: φ(α) = f(x + αd), φ'(α) = ∇f(x + αd)ᵀd.
public struct LineSearchStep: Sendable, Equatable {
    /// The accepted step length α (0 when the search failed to find any decrease).
    public var step: Double
    /// φ(0) and φ'(0) (the slope is negative for a descent direction).
    public var value0: Double, slope0: Double
    /// φ(α) and φ'(α) at the accepted step.
    public var value: Double, slope: Double
    /// Objective evaluations this search used.
    public var evaluations: Int
    /// Whether the accepted step meets the search's conditions (Armijo for backtracking, strong Wolfe for
    /// `StrongWolfeLineSearch`). False means a fallback: the best decrease found within the evaluation budget.
    public var satisfied: Bool

    public init(step: Double, value0: Double, slope0: Double, value: Double, slope: Double, evaluations: Int,
                satisfied: Bool) {
        self.step = step; self.value0 = value0; self.slope0 = slope0
        self.value = value; self.slope = slope; self.evaluations = evaluations; self.satisfied = satisfied
    }
}

/// Evaluates φ at trial points, leaving x + αd in `xTrial` and its gradient in `gTrial`.
private struct LinePhi {
    let objective: any FullBatchObjective
    let x: UnsafePointer<Double>, direction: UnsafePointer<Double>
    let xTrial: UnsafeMutableBufferPointer<Double>, gTrial: UnsafeMutableBufferPointer<Double>
    var evaluations = 0

    /// Returns (φ(α), φ'(α)); φ'(α) needs the gradient, which every evaluation produces anyway.
    mutating func callAsFunction(_ alpha: Double) throws -> (value: Double, slope: Double) {
        let n = objective.dimension
        fullBatchStepPoint(xTrial.baseAddress!, x, alpha, direction, n)
        evaluations += 1
        let value = try objective.valueAndGradient(UnsafeBufferPointer(xTrial), gTrial)
        return (value, try objective.dot(gTrial.baseAddress!, direction))
    }
}

/// Backtracking line search with the Armijo (sufficient decrease) condition, Nocedal & Wright (2006), Algorithm 3.1:
/// try α = `initialStep`, then α·shrink, α·shrink², … until φ(α) ≤ φ(0) + c₁αφ'(0).
///
/// Every search starts again from `initialStep` (no warm start from the previous step, as in Algorithm 3.1).
/// A trial value that is NaN or infinite counts as failing the condition, so overflowing steps are backtracked.
public struct ArmijoBacktracking: Sendable, Equatable {
    public var initialStep: Double
    public var c1: Double
    public var shrink: Double
    /// Trials before giving up (0.5⁶⁰ ≈ 1e-18: by then the step is below rounding).
    public var maxEvaluations: Int

    public init(initialStep: Double = 1, c1: Double = 1e-4, shrink: Double = 0.5, maxEvaluations: Int = 60) {
        precondition(initialStep > 0 && c1 > 0 && c1 < 1 && shrink > 0 && shrink < 1 && maxEvaluations > 0,
                     "Armijo backtracking needs initialStep > 0, 0 < c1 < 1, 0 < shrink < 1, maxEvaluations > 0")
        self.initialStep = initialStep; self.c1 = c1; self.shrink = shrink; self.maxEvaluations = maxEvaluations
    }

    /// Searches along `direction` from `x` (value `value0`, slope `slope0` < 0). On return `xTrial`/`gTrial` hold the
    /// accepted point and its gradient (when `satisfied` is false they hold the last, rejected trial).
    public func search(_ objective: any FullBatchObjective, x: UnsafePointer<Double>, value0: Double, slope0: Double,
                       direction: UnsafePointer<Double>, xTrial: UnsafeMutableBufferPointer<Double>,
                       gTrial: UnsafeMutableBufferPointer<Double>) throws -> LineSearchStep {
        var phi = LinePhi(objective: objective, x: x, direction: direction, xTrial: xTrial, gTrial: gTrial)
        var alpha = initialStep
        var last = (value: Double.nan, slope: Double.nan)
        while phi.evaluations < maxEvaluations {
            last = try phi(alpha)
            if last.value <= value0 + c1 * alpha * slope0 {
                return LineSearchStep(step: alpha, value0: value0, slope0: slope0, value: last.value, slope: last.slope,
                                      evaluations: phi.evaluations, satisfied: true)
            }
            alpha *= shrink
        }
        return LineSearchStep(step: 0, value0: value0, slope0: slope0, value: last.value, slope: last.slope,
                              evaluations: phi.evaluations, satisfied: false)
    }
}

/// Line search for the strong Wolfe conditions, Nocedal & Wright (2006), Algorithm 3.5 (bracketing) and
/// Algorithm 3.6 (zoom):
///   φ(α) ≤ φ(0) + c₁αφ'(0)   and   |φ'(α)| ≤ c₂|φ'(0)|.
///
/// Trial steps come from the minimiser of the cubic through the two bracket ends' values and slopes
/// (N&W eq. 3.59). Safeguards, as in torch.optim.LBFGS's `_strong_wolfe`: while bracketing, the next trial is clamped
/// to [α + 0.01(α − α_prev), 10α]; in zoom a cubic point within 10% of the bracket's width from either end is
/// replaced by bisection (N&W only ask that the trial lie strictly inside the bracket). The search gives up when the
/// bracket shrinks below `intervalTolerance` (|Δα|·‖d‖₂) or after `maxEvaluations`, returning the best point found
/// that satisfies sufficient decrease (flagged `satisfied = false`).
///
/// Deviation, for rounding: the sufficient-decrease test is φ(α) ≤ φ(0) + c₁αφ'(0) + `valueTolerance`·|φ(0)|.
/// Near a minimiser the decrease c₁αφ'(0) falls below the few ulps to which a sum of m terms is known (at ‖g‖ ≈ 1e-8
/// and f ≈ 0.5 the whole decrease is ≈ 1e-16), and the exact test then fails on rounding noise, ending the run short
/// of the gradient tolerance. The default 4ε|φ(0)| (ε = 2.2e-16) only treats values equal up to rounding as not
/// increased; the curvature condition, which uses the accurate gradient, still has to hold. This is the idea of
/// Hager & Zhang's (2005) approximate Wolfe conditions with their ε = 1e-6 replaced by a rounding-level one.
public struct StrongWolfeLineSearch: Sendable, Equatable {
    public var c1: Double
    public var c2: Double
    /// torch's max_ls default.
    public var maxEvaluations: Int
    /// Smallest bracket worth refining, measured as the change in x it represents (torch: tolerance_change 1e-9).
    public var intervalTolerance: Double
    /// Relative slack on the sufficient-decrease test for rounding in f (see above; 0 gives the exact test).
    public var valueTolerance: Double

    public init(c1: Double = 1e-4, c2: Double = 0.9, maxEvaluations: Int = 25, intervalTolerance: Double = 1e-12,
                valueTolerance: Double = 4 * Double.ulpOfOne) {
        precondition(0 < c1 && c1 < c2 && c2 < 1, "strong Wolfe needs 0 < c1 < c2 < 1 (got \(c1), \(c2))")
        precondition(maxEvaluations > 0, "maxEvaluations must be positive")
        self.c1 = c1; self.c2 = c2; self.maxEvaluations = maxEvaluations; self.intervalTolerance = intervalTolerance
        self.valueTolerance = valueTolerance
    }

    /// Searches along `direction` from `x` (value `value0`, slope `slope0` < 0), first trying `initialStep`.
    /// On return `xTrial`/`gTrial` hold the accepted point and its gradient.
    public func search(_ objective: any FullBatchObjective, x: UnsafePointer<Double>, value0: Double, slope0: Double,
                       direction: UnsafePointer<Double>, initialStep: Double, xTrial: UnsafeMutableBufferPointer<Double>,
                       gTrial: UnsafeMutableBufferPointer<Double>) throws -> LineSearchStep {
        var phi = LinePhi(objective: objective, x: x, direction: direction, xTrial: xTrial, gTrial: gTrial)
        let directionNorm = try objective.norms(direction).l2
        typealias Point = (alpha: Double, value: Double, slope: Double)
        func done(_ p: Point, _ satisfied: Bool, _ evaluations: Int) -> LineSearchStep {
            LineSearchStep(step: p.alpha, value0: value0, slope0: slope0, value: p.value, slope: p.slope,
                           evaluations: evaluations, satisfied: satisfied)
        }
        let slack = valueTolerance * abs(value0)
        func sufficientDecrease(_ p: Point) -> Bool { p.value <= value0 + c1 * p.alpha * slope0 + slack }  // false for NaN
        func curvature(_ p: Point) -> Bool { abs(p.slope) <= -c2 * slope0 }

        // Phase 1 (Algorithm 3.5): grow α until [previous, current] brackets a strong-Wolfe point.
        var previous: Point = (0, value0, slope0)
        var alpha = initialStep
        var lo: Point, hi: Point
        var lastEvaluated = 0.0
        while true {
            let (value, slope) = try phi(alpha)
            lastEvaluated = alpha
            let current: Point = (alpha, value, slope)
            if !sufficientDecrease(current) || (phi.evaluations > 1 && value >= previous.value) {
                lo = previous; hi = current; break
            }
            if curvature(current) { return done(current, true, phi.evaluations) }
            if slope >= 0 { lo = current; hi = previous; break }
            if phi.evaluations >= maxEvaluations { return done(current, false, phi.evaluations) }
            let next = cubicMinimiser(previous, current,
                                      bounds: (alpha + 0.01 * (alpha - previous.alpha), 10 * alpha))
            previous = current
            alpha = next
        }

        // Phase 2 (Algorithm 3.6): shrink the bracket; lo always satisfies sufficient decrease and has the lowest value.
        while phi.evaluations < maxEvaluations && abs(hi.alpha - lo.alpha) * directionNorm >= intervalTolerance {
            let lower = min(lo.alpha, hi.alpha), upper = max(lo.alpha, hi.alpha), width = upper - lower
            var trial = cubicMinimiser(lo, hi, bounds: (lower, upper))
            if !(trial > lower + 0.1 * width && trial < upper - 0.1 * width) { trial = lower + 0.5 * width }
            let (value, slope) = try phi(trial)
            lastEvaluated = trial
            let current: Point = (trial, value, slope)
            if !sufficientDecrease(current) || value >= lo.value {
                hi = current
            } else {
                if curvature(current) { return done(current, true, phi.evaluations) }
                if slope * (hi.alpha - lo.alpha) >= 0 { hi = lo }
                lo = current
            }
        }
        // Fallback: the best sufficient-decrease point found. Its gradient must be in gTrial, so re-evaluate unless it
        // was the last point evaluated (or it is α = 0: no decrease found at all).
        guard lo.alpha > 0 else { return done((0, value0, slope0), false, phi.evaluations) }
        if lo.alpha != lastEvaluated { _ = try phi(lo.alpha) }
        return done(lo, false, phi.evaluations)
    }
}

/// Minimiser of the cubic interpolating (a, φ(a), φ'(a)) and (b, φ(b), φ'(b)), clamped to `bounds`; the middle of
/// `bounds` when the cubic has no minimiser (N&W 2006, eq. 3.59; the same formula as torch's `_cubic_interpolate`).
@inline(__always)
private func cubicMinimiser(_ a: (alpha: Double, value: Double, slope: Double), _ b: (alpha: Double, value: Double, slope: Double),
                    bounds: (Double, Double)) -> Double {
    let (low, high) = bounds.0 <= bounds.1 ? bounds : (bounds.1, bounds.0)
    let d1 = a.slope + b.slope - 3 * (a.value - b.value) / (a.alpha - b.alpha)
    let discriminant = d1 * d1 - a.slope * b.slope
    guard discriminant >= 0 else { return (low + high) / 2 }
    let d2 = discriminant.squareRoot()
    let m: Double
    if a.alpha <= b.alpha {
        m = b.alpha - (b.alpha - a.alpha) * ((b.slope + d2 - d1) / (b.slope - a.slope + 2 * d2))
    } else {
        m = a.alpha - (a.alpha - b.alpha) * ((a.slope + d2 - d1) / (a.slope - b.slope + 2 * d2))
    }
    guard m.isFinite else { return (low + high) / 2 }
    return min(max(m, low), high)
}
