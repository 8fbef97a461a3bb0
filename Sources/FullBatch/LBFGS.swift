// Full-batch optimizers: gradient descent (constant step or Armijo backtracking) and L-BFGS.
// Dimension letters: n = number of parameters, m = L-BFGS history length.
//
// Unlike the `Optimizer` types, these own the whole loop: they call the objective (which, when distributed,
// all-reduces the data sums itself — see `FullBatchObjective`) and never communicate directly.

/// One row of a full-batch optimizer's history.
public struct FullBatchRecord: Sendable, Equatable {
    /// 0 for the starting point, k after the k-th update.
    public var iteration: Int
    /// f(x_k).
    public var value: Double
    /// ‖∇f(x_k)‖₂.
    public var gradientNorm: Double
    /// Objective evaluations so far (cumulative, including the one at x₀).
    public var evaluations: Int
    /// The line search that produced x_k (nil for x₀ and for constant-step gradient descent).
    public var lineSearch: LineSearchStep?

    public init(iteration: Int, value: Double, gradientNorm: Double, evaluations: Int, lineSearch: LineSearchStep? = nil) {
        self.iteration = iteration; self.value = value; self.gradientNorm = gradientNorm
        self.evaluations = evaluations; self.lineSearch = lineSearch
    }
}

/// Why a full-batch optimizer stopped.
public enum FullBatchStop: String, Sendable, Equatable {
    /// ‖∇f‖₂ ≤ gradientTolerance.
    case converged
    case maxIterations
    /// The line search found no decrease (typically: already at the limit of floating-point resolution of f).
    case lineSearchFailed
    /// f or ∇f became NaN or infinite (constant-step gradient descent with too large a step).
    case diverged
}

/// The outcome of a full-batch minimisation.
public struct FullBatchResult: Sendable {
    /// The final iterate (n).
    public var x: [Double]
    public var history: [FullBatchRecord]
    /// x₀, x₁, … (one per history row) when the optimizer was asked to record them; empty otherwise.
    public var iterates: [[Double]]
    public var stop: FullBatchStop

    public var value: Double { history.last!.value }
    public var gradientNorm: Double { history.last!.gradientNorm }
    /// Updates taken.
    public var iterations: Int { history.last!.iteration }
    public var evaluations: Int { history.last!.evaluations }
}

/// Shared loop state: x, g and the trial buffers (n each), plus the history.
private struct FullBatchState {
    var x: [Double], g: [Double], xTrial: [Double], gTrial: [Double]
    var value = 0.0, gradientNorm = 0.0, evaluations = 0
    var history: [FullBatchRecord] = [], iterates: [[Double]] = []
    let recordIterates: Bool

    init(_ objective: any FullBatchObjective, x0: [Double], recordIterates: Bool) throws {
        let n = objective.dimension
        precondition(x0.count == n, "starting point has \(x0.count) elements, the objective \(n)")
        x = x0; g = [Double](repeating: 0, count: n); xTrial = g; gTrial = g
        self.recordIterates = recordIterates
        value = try x.withUnsafeBufferPointer { xp in
            try g.withUnsafeMutableBufferPointer { try objective.valueAndGradient(xp, $0) }
        }
        evaluations = 1
        gradientNorm = try g.withUnsafeBufferPointer { try objective.norms($0.baseAddress!).l2 }
        record(iteration: 0, lineSearch: nil)
    }

    mutating func record(iteration: Int, lineSearch: LineSearchStep?) {
        history.append(FullBatchRecord(iteration: iteration, value: value, gradientNorm: gradientNorm,
                                       evaluations: evaluations, lineSearch: lineSearch))
        if recordIterates { iterates.append(x) }
    }

    /// Accepts the trial point as the new iterate (swap, no copy).
    mutating func acceptTrial(value newValue: Double, _ objective: any FullBatchObjective) throws {
        swap(&x, &xTrial)
        swap(&g, &gTrial)
        value = newValue
        gradientNorm = try g.withUnsafeBufferPointer { try objective.norms($0.baseAddress!).l2 }
    }

    var finite: Bool { value.isFinite && gradientNorm.isFinite }

    func result(_ stop: FullBatchStop) -> FullBatchResult {
        FullBatchResult(x: x, history: history, iterates: iterates, stop: stop)
    }
}

/// Full-batch gradient descent x ← x − α∇f(x), with a constant step or Armijo backtracking
/// (Nocedal & Wright 2006, Algorithm 3.1, started from `initialStep` at every iteration).
///
/// With a constant step 1/L on an L-smooth, μ-strongly convex f, f(x_k) − f* ≤ (1 − μ/L)^k (f(x₀) − f*)
/// (the theory check in Training/TheoryExperiment.swift measures this).
/// Stops when ‖∇f‖₂ ≤ `gradientTolerance`, after `maxIterations` updates, when backtracking finds no decrease, or when
/// f or ∇f stops being finite.
public struct GradientDescent: Sendable {
    public enum StepRule: Sendable, Equatable {
        /// α fixed (e.g. 1/L).
        case constant(Double)
        case armijo(ArmijoBacktracking)
    }

    public var stepRule: StepRule
    public var maxIterations: Int
    public var gradientTolerance: Double
    /// Keep every iterate in the result (for tests and plots; n doubles per iteration).
    public var recordIterates: Bool

    public init(stepRule: StepRule = .armijo(ArmijoBacktracking()), maxIterations: Int = 10_000,
                gradientTolerance: Double = 1e-8, recordIterates: Bool = false) {
        self.stepRule = stepRule; self.maxIterations = maxIterations
        self.gradientTolerance = gradientTolerance; self.recordIterates = recordIterates
    }

    public func minimize(_ objective: any FullBatchObjective, from x0: [Double]) throws -> FullBatchResult {
        var s = try FullBatchState(objective, x0: x0, recordIterates: recordIterates)
        let n = objective.dimension
        var direction = [Double](repeating: 0, count: n)
        for k in 1...max(1, maxIterations) {
            guard s.finite else { return s.result(.diverged) }
            if s.gradientNorm <= gradientTolerance { return s.result(.converged) }
            guard k <= maxIterations else { break }
            for i in 0..<n { direction[i] = -s.g[i] }
            switch stepRule {
            case .constant(let alpha):
                for i in 0..<n { s.xTrial[i] = s.x[i] + alpha * direction[i] }
                let value = try s.xTrial.withUnsafeBufferPointer { xp in
                    try s.gTrial.withUnsafeMutableBufferPointer { try objective.valueAndGradient(xp, $0) }
                }
                s.evaluations += 1
                try s.acceptTrial(value: value, objective)
                s.record(iteration: k, lineSearch: nil)
            case .armijo(let search):
                let slope0 = -s.gradientNorm * s.gradientNorm
                let step = try s.x.withUnsafeBufferPointer { xp in
                    try direction.withUnsafeBufferPointer { dp in
                        try s.xTrial.withUnsafeMutableBufferPointer { xt in
                            try s.gTrial.withUnsafeMutableBufferPointer { gt in
                                try search.search(objective, x: xp.baseAddress!, value0: s.value, slope0: slope0,
                                                  direction: dp.baseAddress!, xTrial: xt, gTrial: gt)
                            }
                        }
                    }
                }
                s.evaluations += step.evaluations
                guard step.satisfied else { return s.result(.lineSearchFailed) }
                try s.acceptTrial(value: step.value, objective)
                s.record(iteration: k, lineSearch: step)
            }
        }
        guard s.finite else { return s.result(.diverged) }
        return s.result(s.gradientNorm <= gradientTolerance ? .converged : .maxIterations)
    }
}

/// Limited-memory BFGS (Nocedal 1980; Liu & Nocedal 1989), as Nocedal & Wright (2006), Algorithm 7.5, with the search
/// direction from the two-loop recursion (Algorithm 7.4) and the step from a strong-Wolfe line search
/// (Algorithms 3.5/3.6, `StrongWolfeLineSearch`, c₁ = 1e-4, c₂ = 0.9).
///
/// Details and deviations:
/// - History m = 10 by default (N&W suggest 3–20; torch.optim.LBFGS uses 100). On the problems here (n ≤ a few
///   hundred, well conditioned) longer histories change nothing measurable and cost 2m vectors of memory.
/// - Pairs with yᵀs ≤ 1e-10 are skipped (not stored), keeping H positive definite — the same absolute threshold as
///   torch. The oldest pair is dropped when m are held.
/// - H₀ = γI with γ = sᵀy / yᵀy of the newest pair (N&W eq. 7.20); with no pairs H₀ = I.
/// - Initial trial step: min(1, 1/‖g₀‖₁) on the first iteration (as torch: the first direction is −g₀, unscaled, so
///   the first trial moves x by at most 1 in ℓ₁), then 1 (the natural quasi-Newton step).
/// - The line search's sufficient-decrease test allows rounding-level slack in f (`StrongWolfeLineSearch.valueTolerance`).
/// - Stopping: ‖∇f‖₂ ≤ `gradientTolerance` (torch tests max|g| ≤ 1e-7 and also stops on small changes of x or f;
///   here those cases end as `lineSearchFailed` when the line search can make no progress), or `maxIterations`.
/// - If the two-loop direction is not a descent direction (impossible in exact arithmetic with the yᵀs filter), the
///   history is cleared and −g is used.
public struct LBFGS: Sendable {
    public var history: Int
    public var maxIterations: Int
    public var gradientTolerance: Double
    public var lineSearch: StrongWolfeLineSearch
    public var curvatureThreshold: Double
    /// Keep every iterate in the result (for tests; n doubles per iteration).
    public var recordIterates: Bool

    public init(history: Int = 10, maxIterations: Int = 1_000, gradientTolerance: Double = 1e-8,
                lineSearch: StrongWolfeLineSearch = StrongWolfeLineSearch(), curvatureThreshold: Double = 1e-10,
                recordIterates: Bool = false) {
        precondition(history >= 1, "L-BFGS needs a history of at least one pair")
        self.history = history; self.maxIterations = maxIterations; self.gradientTolerance = gradientTolerance
        self.lineSearch = lineSearch; self.curvatureThreshold = curvatureThreshold; self.recordIterates = recordIterates
    }

    public func minimize(_ objective: any FullBatchObjective, from x0: [Double]) throws -> FullBatchResult {
        var st = try FullBatchState(objective, x0: x0, recordIterates: recordIterates)
        let n = objective.dimension
        // Ring of the last m pairs: s (m, n), y (m, n), ρ = 1/yᵀs (m); `count` valid, newest at (newest).
        var s = [Double](repeating: 0, count: history * n), y = s
        var rho = [Double](repeating: 0, count: history), alphas = rho
        var count = 0, newest = -1
        var direction = [Double](repeating: 0, count: n)
        var sNew = direction, yNew = direction  // (n) the candidate pair

        for k in 1...max(1, maxIterations) {
            guard st.finite else { return st.result(.diverged) }
            if st.gradientNorm <= gradientTolerance { return st.result(.converged) }
            guard k <= maxIterations else { break }

            // Phase 1: direction d = −H∇f by the two-loop recursion (Algorithm 7.4).
            var slope = 0.0
            try s.withUnsafeMutableBufferPointer { sp in try y.withUnsafeMutableBufferPointer { yp in
                try direction.withUnsafeMutableBufferPointer { dp in try st.g.withUnsafeBufferPointer { gp in
                    let d = dp.baseAddress!, g = gp.baseAddress!, S = sp.baseAddress!, Y = yp.baseAddress!
                    for i in 0..<n { d[i] = -g[i] }  // q = −g; the recursion is linear, so d = −(H g) directly
                    for j in 0..<count {  // newest to oldest
                        let slot = (newest - j + history) % history
                        let a = try rho[slot] * objective.dot(S + slot * n, d)
                        alphas[slot] = a
                        fullBatchAxpy(-a, Y + slot * n, d, n)
                    }
                    if count > 0 {
                        let yy = try objective.dot(Y + newest * n, Y + newest * n)
                        let gamma = 1 / (rho[newest] * yy)  // sᵀy / yᵀy
                        for i in 0..<n { d[i] *= gamma }
                    }
                    for j in stride(from: count - 1, through: 0, by: -1) {  // oldest to newest
                        let slot = (newest - j + history) % history
                        let b = try rho[slot] * objective.dot(Y + slot * n, d)
                        fullBatchAxpy(alphas[slot] - b, S + slot * n, d, n)
                    }
                    slope = try objective.dot(g, d)
                    if !(slope < 0) {  // not a descent direction (or NaN): restart from steepest descent
                        count = 0; newest = -1
                        for i in 0..<n { d[i] = -g[i] }
                        slope = -st.gradientNorm * st.gradientNorm
                    }
                }}
            }}

            // Phase 2: strong-Wolfe step.
            var initialStep = 1.0
            if k == 1 {
                let l1 = try st.g.withUnsafeBufferPointer { try objective.norms($0.baseAddress!).l1 }
                initialStep = min(1, 1 / l1)
            }
            let step = try st.x.withUnsafeBufferPointer { xp in
                try direction.withUnsafeBufferPointer { dp in
                    try st.xTrial.withUnsafeMutableBufferPointer { xt in
                        try st.gTrial.withUnsafeMutableBufferPointer { gt in
                            try lineSearch.search(objective, x: xp.baseAddress!, value0: st.value, slope0: slope,
                                                  direction: dp.baseAddress!, initialStep: initialStep, xTrial: xt, gTrial: gt)
                        }
                    }
                }
            }
            st.evaluations += step.evaluations
            guard step.step > 0 else { return st.result(.lineSearchFailed) }

            // Phase 3: the new pair s = x₊ − x = αd, y = g₊ − g; stored only if yᵀs > threshold.
            // Built in scratch first: a rejected pair must not overwrite the oldest stored one.
            for i in 0..<n {
                sNew[i] = step.step * direction[i]
                yNew[i] = st.gTrial[i] - st.g[i]
            }
            let ys = try sNew.withUnsafeBufferPointer { sp in
                try yNew.withUnsafeBufferPointer { try objective.dot($0.baseAddress!, sp.baseAddress!) }
            }
            if ys > curvatureThreshold {
                let slot = (newest + 1) % history
                s.withUnsafeMutableBufferPointer { sp in y.withUnsafeMutableBufferPointer { yp in
                    let S = sp.baseAddress! + slot * n, Y = yp.baseAddress! + slot * n
                    for i in 0..<n { S[i] = sNew[i]; Y[i] = yNew[i] }
                }}
                rho[slot] = 1 / ys
                newest = slot
                count = min(count + 1, history)
            }
            try st.acceptTrial(value: step.value, objective)
            st.record(iteration: k, lineSearch: step)
        }
        guard st.finite else { return st.result(.diverged) }
        return st.result(st.gradientNorm <= gradientTolerance ? .converged : .maxIterations)
    }
}
