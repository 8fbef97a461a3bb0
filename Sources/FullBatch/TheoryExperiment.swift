// The theory check: three textbook convergence claims measured on ℓ2-regularised logistic regression
// (LogisticRegression.swift; m = 200 samples, n = 10 features, μ = 1), plus the full-batch optimizers on the same
// problem. Tests in Tests/FullBatchTests assert the claims; `swift-train theory` writes docs/theory.svg.
// Dimension letters: m = samples, n = features.
//
// Claims (f μ-strongly convex, L-smooth; f* = min f):
// (a) Gradient descent with step 1/L converges linearly: f(w_{k+1}) − f* ≤ (1 − μ/L)(f(w_k) − f*) at every step
//     (Polyak–Łojasiewicz argument, Karimi, Nutini & Schmidt 2016, Theorem 1; Nesterov 2004, Theorem 2.1.15).
// (b) SGD with a constant step γ converges only to a neighbourhood of f*: E[f − f*] → O(γLσ²/μ) (Bottou, Curtis &
//     Nocedal 2018, Theorem 4.6), σ² the variance of the sample gradients.
// (c) SGD with a step decaying like β/(t + t₀), β > 1/μ, keeps converging at rate O(1/t) (same paper, Theorem 4.7).

import Foundation
import Plots
import Tensors

/// The experiment's settings. Defaults are the ones the tests and docs/theory.md use.
public struct TheoryConfiguration: Sendable, Equatable {
    public var samples = 200
    public var features = 10
    public var mu = 1.0
    public var dataSeed: UInt64 = 2024
    /// Standard deviation s of the features (xᵢ ~ N(0, s²I)).
    public var featureScale = 3.0
    /// SGD epochs (m single-sample steps each; sampling uniform with replacement).
    public var epochs = 600
    /// Constant SGD step γ, and γ₀ of the decaying schedule.
    public var sgdStep = 0.003
    public var sgdSeed: UInt64 = 7
    /// f − f* that gradient descent must reach within its predicted number of iterations.
    public var gdTarget = 1e-10

    public init() {}
}

/// SGD step schedules for the strongly convex case.
public enum SGDStepSchedule: Sendable, Equatable {
    /// γ_t = γ.
    case constant(Double)
    /// γ_t = γ₀ / (1 + μγ₀t/2) = β/(t + t₀) with β = 2/μ, t₀ = 2/(μγ₀) (t = 0, 1, … single-sample steps).
    /// Bottou, Curtis & Nocedal (2018), Theorem 4.7, needs β > 1/μ for the O(1/t) rate; the schedule
    /// γ₀/(1 + μγ₀t) (β = 1/μ exactly) sits on that boundary, where the guarantee weakens to O(log t / t), hence the /2.
    case decaying(initial: Double, mu: Double)

    @inline(__always)
    public func step(_ t: Int) -> Double {
        switch self {
        case .constant(let gamma): return gamma
        case let .decaying(gamma0, mu): return gamma0 / (1 + 0.5 * mu * gamma0 * Double(t))
        }
    }
}

extension TheoryExperiment {
/// Runs single-sample SGD from w = 0 on `data` for `epochs` × m steps, drawing sample indices uniformly with
/// replacement from `SplitMix64(seed:)` (index = next() mod m; the modulo bias, < m/2⁶⁴, is negligible).
/// Returns f(w) after each epoch, epoch 0 being the starting point (epochs + 1 values).
    public static func runSGD(_ data: LogisticRegressionData, schedule: SGDStepSchedule, epochs: Int, seed: UInt64) -> [Double] {
    let n = data.features, m = data.samples
    var rng = SplitMix64(seed: seed)
    var w = [Double](repeating: 0, count: n), g = w
    var values = [data.value(w)]
    var t = 0
    for _ in 0..<epochs {
        w.withUnsafeMutableBufferPointer { wp in g.withUnsafeMutableBufferPointer { gp in
            let W = wp.baseAddress!, G = gp.baseAddress!
            for _ in 0..<m {
                let i = Int(rng.next() % UInt64(m))
                data.sampleGradient(i, w: W, into: G)
                let gamma = schedule.step(t)
                for j in 0..<n { W[j] -= gamma * G[j] }
                t += 1
            }
        }}
        values.append(data.value(w))
    }
    return values
}
}

/// Everything the theory check measures.
public struct TheoryResult: Sendable {
    public var configuration: TheoryConfiguration
    public var data: LogisticRegressionData
    /// Smoothness bound L = λ_max(XᵀX)/(4m) + μ.
    public var smoothness: Double
    /// The reference minimiser (Newton) and its value and gradient norm.
    public var wStar: [Double]
    public var fStar: Double
    public var optimumGradientNorm: Double
    public var newtonIterations: Int
    /// σ² = (1/m) Σᵢ ‖∇ℓᵢ(w*) + μw*‖², the sample-gradient variance at w* (its mean is ∇f(w*) = 0).
    public var gradientVariance: Double

    /// (a) f(w_k) − f* for gradient descent with step 1/L, k = 0, 1, … (one iteration = one epoch of m samples).
    public var gdGaps: [Double]
    /// (b), (c) f − f* after each epoch, epoch 0 = start.
    public var sgdConstantGaps: [Double]
    public var sgdDecayingGaps: [Double]

    /// Full-batch optimizers from w = 0 to ‖∇f‖₂ < 1e-8 (GD with Armijo backtracking from step 1; L-BFGS m = 10).
    public var gdArmijo: FullBatchResult
    public var lbfgs: FullBatchResult
    /// Coordinate descent with exact line minimisation from w = 0 to ‖∇f‖₂ < 1e-8 (one iteration = one sweep of n
    /// coordinates), cyclic and randomised (seed 1).
    public var coordinateCyclic: FullBatchResult
    public var coordinateRandomised: FullBatchResult
    /// Wall seconds of each full-batch solve, in `fullBatchNames` order (the fastest of `timingRepeats` runs).
    public var solverSeconds: [Double]
    public static let fullBatchNames = ["GD-Armijo", "L-BFGS", "CD cyclic", "CD randomised"]
    public var fullBatchResults: [FullBatchResult] { [gdArmijo, lbfgs, coordinateCyclic, coordinateRandomised] }

    public var mu: Double { data.mu }
    /// The linear-rate bound 1 − μ/L of claim (a).
    public var gdRateBound: Double { 1 - mu / smoothness }

    /// Gradient-descent iterations the bound predicts for f − f* ≤ target: ⌈log(target/(f₀ − f*)) / log(1 − μ/L)⌉.
    public var gdPredictedIterations: Int {
        Int((log(configuration.gdTarget / gdGaps[0]) / log(gdRateBound)).rounded(.up))
    }

    /// First iteration with f − f* ≤ target (nil if never).
    public var gdIterationsToTarget: Int? { gdGaps.firstIndex { $0 <= configuration.gdTarget } }

    /// Per-step contraction ratios (f_{k+1} − f*)/(f_k − f*) over steps starting at f_k − f* ≥ `floor`. Below about
    /// 1e-9 the gaps carry rounding errors of ~1e-16 (f ≈ 0.5 in Double), which would make the ratios noise.
    public func gdRatios(floor: Double = 1e-9) -> [Double] {
        (0..<(gdGaps.count - 1)).filter { gdGaps[$0] >= floor }.map { gdGaps[$0 + 1] / gdGaps[$0] }
    }

    /// The constant-step floor the theory bounds: γLσ²/(2μ) (Bottou et al. 2018, Thm 4.6 with M = σ², c = μ).
    public var sgdFloorBound: Double { configuration.sgdStep * smoothness * gradientVariance / (2 * mu) }

    /// Mean of `curve` over epochs `range` (clamped to the curve).
    public static func mean(_ curve: [Double], _ range: Range<Int>) -> Double {
        let r = max(0, range.lowerBound)..<min(curve.count, range.upperBound)
        return r.isEmpty ? .nan : curve[r].reduce(0, +) / Double(r.count)
    }

    /// The plot: f − f* against epochs, both axes logarithmic (so GD's linear rate is a cliff, the constant-step
    /// floor a flat line and the decaying step's O(1/t) a line of slope −1; epoch 0 is not drawn on the log x axis).
    public func plot() -> SVGPlot {
        var plot = SVGPlot(title: "Logistic regression (m = \(data.samples), n = \(data.features), μ = \(format(mu))): f − f*",
                           xLabel: "epoch (m = \(data.samples) sample gradients, or one full gradient for GD)",
                           yLabel: "f(w) − f*", logX: true, logY: true)
        plot.legend = .bottomRight  // the lower right is empty: GD has left it by epoch ~20, SGD stays above 1e-6
        // GD beyond 1e-14 is rounding noise in f (≈ 1e-16 resolution near f* ≈ 0.5), so the curve ends there.
        let gd = Array(gdGaps.prefix { $0 > 1e-14 })
        let last = Double(sgdConstantGaps.count - 1)
        plot.add("GD, step 1/L = \(format(1 / smoothness))", values: gd, color: "#0072B2")
        plot.add("GD bound (1 − μ/L)ᵏ (f₀ − f*)", values: (0..<gd.count).map { gdGaps[0] * pow(gdRateBound, Double($0)) },
                 color: "#0072B2", dashed: true)
        plot.add("SGD, constant γ = \(format(configuration.sgdStep))", values: sgdConstantGaps, color: "#D55E00")
        plot.add("SGD floor bound γLσ²/(2μ)", points: [(1, sgdFloorBound), (last, sgdFloorBound)], color: "#D55E00",
                 dashed: true)
        plot.add("SGD, γₜ = γ₀/(1 + μγ₀t/2), γ₀ = γ", values: sgdDecayingGaps, color: "#009E73")
        return plot
    }

    /// A plain-text table of the measured numbers.
    public func table() -> String {
        let e = configuration.epochs, late = lateWindows
        let ratios = gdRatios()
        var lines: [String] = []
        lines.append("problem: logistic regression, m = \(data.samples), n = \(data.features), μ = \(format(mu)), data seed \(configuration.dataSeed)")
        lines.append("L = λmax(XᵀX)/(4m) + μ = \(format(smoothness)); f* = \(String(format: "%.15f", fStar)) (Newton, \(newtonIterations) steps, ‖∇f(w*)‖ = \(format(optimumGradientNorm)))")
        lines.append("σ² at w* = \(format(gradientVariance))")
        lines.append("")
        lines.append(pad("claim", 44) + pad("measured", 22) + "reference")
        lines.append(pad("(a) GD 1/L: worst per-step ratio", 44) + pad(format(ratios.max() ?? .nan), 22) + "≤ 1 − μ/L = \(format(gdRateBound))")
        lines.append(pad("(a) GD 1/L: mean per-step ratio", 44) + pad(format(geometricMean(ratios)), 22) + "")
        lines.append(pad("(a) GD 1/L: iterations to f − f* ≤ \(format(configuration.gdTarget))", 44)
                     + pad(gdIterationsToTarget.map(String.init) ?? "never", 22) + "≤ predicted \(gdPredictedIterations)")
        lines.append(pad("(b) SGD γ = \(format(configuration.sgdStep)): mean gap epochs \(late.early)", 44) + pad(format(Self.mean(sgdConstantGaps, late.early)), 22) + "")
        lines.append(pad("(b) SGD γ = \(format(configuration.sgdStep)): mean gap epochs \(late.late)", 44) + pad(format(Self.mean(sgdConstantGaps, late.late)), 22) + "γLσ²/(2μ) = \(format(sgdFloorBound))")
        lines.append(pad("(c) decaying SGD: mean gap epochs \(late.early)", 44) + pad(format(Self.mean(sgdDecayingGaps, late.early)), 22) + "")
        lines.append(pad("(c) decaying SGD: mean gap epochs \(late.late)", 44) + pad(format(Self.mean(sgdDecayingGaps, late.late)), 22) + "")
        lines.append(pad("(c) decaying SGD: gap at epoch \(e)", 44) + pad(format(sgdDecayingGaps[e]), 22) + "")
        lines.append("")
        lines.append("to ‖∇f‖ < 1e-8 from w = 0 (an iteration of CD is a sweep of n coordinates; evaluations in full-gradient passes):")
        lines.append(pad("method", 16) + pad("iterations", 12) + pad("evaluations", 13) + pad("time", 12) + pad("stop", 11) + "‖∇f‖")
        for (k, r) in fullBatchResults.enumerated() {
            lines.append(pad(Self.fullBatchNames[k], 16) + pad("\(r.iterations)", 12) + pad("\(r.evaluations)", 13)
                         + pad(String(format: "%.3f ms", solverSeconds[k] * 1e3), 12) + pad(r.stop.rawValue, 11)
                         + format(r.gradientNorm))
        }
        return lines.joined(separator: "\n")
    }

    /// The two windows claims (b) and (c) compare, for E epochs: the middle and the last third, [E/3, 2E/3) and
    /// [2E/3, E] (200..<400 and 400..<601 at the default E = 600). Long windows, because successive constant-step
    /// SGD iterates are correlated over ~1/(γμ) steps and a short window's mean is noisy.
    public var lateWindows: (early: Range<Int>, late: Range<Int>) {
        let e = configuration.epochs
        return ((e / 3)..<(2 * e / 3), (2 * e / 3)..<(e + 1))
    }
}

public enum TheoryExperiment {
    /// Full-batch solves are timed as the fastest of this many runs (each takes well under a millisecond here, so a
    /// single run's time is mostly scheduling noise).
    public static let timingRepeats = 5

    /// Runs everything (well under a second in release builds).
    public static func run(_ configuration: TheoryConfiguration = TheoryConfiguration()) throws -> TheoryResult {
        let data = LogisticRegressionData.generate(samples: configuration.samples, features: configuration.features,
                                                   mu: configuration.mu, seed: configuration.dataSeed,
                                                   featureScale: configuration.featureScale)
        let n = data.features
        // Phase 1: the reference optimum.
        let newton = data.newtonMinimiser(tolerance: 1e-12)
        let fStar = newton.value
        var variance = 0.0
        var g = [Double](repeating: 0, count: n)
        newton.w.withUnsafeBufferPointer { w in g.withUnsafeMutableBufferPointer { gp in
            for i in 0..<data.samples {
                data.sampleGradient(i, w: w.baseAddress!, into: gp.baseAddress!)
                for j in 0..<n { variance += gp[j] * gp[j] }
            }
        }}
        variance /= Double(data.samples)
        let smoothness = data.smoothness

        // Phase 2: (a) gradient descent with step 1/L, for twice the predicted iterations (to show the tail).
        let objective = LogisticRegressionObjective(data: data)
        let gap0 = data.value([Double](repeating: 0, count: n)) - fStar
        let predicted = Int((log(configuration.gdTarget / gap0) / log(1 - data.mu / smoothness)).rounded(.up))
        let gd = try GradientDescent(stepRule: .constant(1 / smoothness), maxIterations: max(2 * predicted, 10),
                                     gradientTolerance: 0).minimize(objective, from: [Double](repeating: 0, count: n))

        // Phase 3: (b), (c) SGD from w = 0 with the same sample sequence.
        let constant = Self.runSGD(data, schedule: .constant(configuration.sgdStep), epochs: configuration.epochs,
                              seed: configuration.sgdSeed)
        let decaying = Self.runSGD(data, schedule: .decaying(initial: configuration.sgdStep, mu: data.mu),
                              epochs: configuration.epochs, seed: configuration.sgdSeed)

        // Phase 4: the full-batch optimizers, each timed as the fastest of `timingRepeats` identical solves.
        let zero = [Double](repeating: 0, count: n)
        let solves: [() throws -> FullBatchResult] = [
            { try GradientDescent(stepRule: .armijo(ArmijoBacktracking()), gradientTolerance: 1e-8)
                .minimize(LogisticRegressionObjective(data: data), from: zero) },
            { try LBFGS(gradientTolerance: 1e-8).minimize(LogisticRegressionObjective(data: data), from: zero) },
            { CoordinateDescent(order: .cyclic).minimize(LogisticCoordinateProblem(data: data), from: zero) },
            { CoordinateDescent(order: .randomised(seed: 1)).minimize(LogisticCoordinateProblem(data: data), from: zero) },
        ]
        var results: [FullBatchResult] = [], seconds: [Double] = []
        for solve in solves {
            var best = Double.infinity, result: FullBatchResult?
            for _ in 0..<timingRepeats {
                let start = DispatchTime.now().uptimeNanoseconds
                result = try solve()
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
            }
            results.append(result!)
            seconds.append(best)
        }

        return TheoryResult(configuration: configuration, data: data, smoothness: smoothness, wStar: newton.w,
                            fStar: fStar, optimumGradientNorm: newton.gradientNorm, newtonIterations: newton.iterations,
                            gradientVariance: variance, gdGaps: gd.history.map { $0.value - fStar },
                            sgdConstantGaps: constant.map { $0 - fStar }, sgdDecayingGaps: decaying.map { $0 - fStar },
                            gdArmijo: results[0], lbfgs: results[1], coordinateCyclic: results[2],
                            coordinateRandomised: results[3], solverSeconds: seconds)
    }
}

private func format(_ v: Double) -> String {
    guard v.isFinite else { return "\(v)" }
    if v != 0 && (abs(v) < 1e-3 || abs(v) >= 1e5) { return String(format: "%.3e", v) }
    return String(format: "%.4g", v)
}

private func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count) }

private func geometricMean(_ v: [Double]) -> Double {
    v.isEmpty ? .nan : exp(v.map { log($0) }.reduce(0, +) / Double(v.count))
}
