import Foundation
import Tensors

// MARK: - Test functions and the sampler loop without training

/// Standard test functions for hyper-parameter samplers, evaluated without training (`swift-train search
/// --function NAME`), to compare samplers on a known landscape (Tests/Anchors/tpe_anchor.py runs Optuna on the same).
public enum SearchTestFunction: String, CaseIterable, Sendable {
    /// Σ (xᵢ − cᵢ)² on [−5, 5]³ with c = (1.5, −2, 0.5): minimum 0.
    case quadratic
    /// Branin–Hoo on x₁ ∈ [−5, 10], x₂ ∈ [0, 15]: minimum 0.397887 at three points.
    case branin

    public var space: [SearchParameter] {
        switch self {
        case .quadratic: return (0..<3).map { SearchParameter(name: "x\($0)", distribution: .uniform(low: -5, high: 5)) }
        case .branin: return [SearchParameter(name: "x1", distribution: .uniform(low: -5, high: 10)),
                              SearchParameter(name: "x2", distribution: .uniform(low: 0, high: 15))]
        }
    }

    public static let quadraticCentre = [1.5, -2.0, 0.5]

    public func value(_ x: [Double]) -> Double {
        switch self {
        case .quadratic:
            return zip(x, Self.quadraticCentre).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        case .branin:
            let b = 5.1 / (4 * Double.pi * Double.pi), c = 5 / Double.pi, t = 1 / (8 * Double.pi)
            let u = x[1] - b * x[0] * x[0] + c * x[0] - 6
            return u * u + 10 * (1 - t) * cos(x[0]) + 10
        }
    }
}

/// Which sampler proposes trials.
public enum SamplerKind: String, Sendable, CaseIterable { case random, tpe }

/// A sampler over `space`, deterministic given `seed`: trial t draws from its own stream (seed, t), so a trial's
/// proposal depends only on the history before it, not on how many draws earlier trials made.
public struct SearchSampler {
    public let kind: SamplerKind
    public let tpe: TPESampler
    public let seed: UInt64

    public init(kind: SamplerKind, space: [SearchParameter], settings: TPESettings = TPESettings(), seed: UInt64) {
        self.kind = kind
        tpe = TPESampler(space: space, settings: settings)
        self.seed = seed
    }

    public func suggest(trial: Int, history: [SearchObservation], running: [[Double]]) -> [Double] {
        var rng = SplitMix64(seed: seed, stream: UInt64(trial))
        switch kind {
        case .random: return tpe.space.map { $0.distribution.sample(&rng) }
        case .tpe: return tpe.suggest(history: history, running: running, rng: &rng)
        }
    }

    /// Runs `trials` sequential trials on `function`; returns every trial's value, in order.
    public func minimize(_ function: SearchTestFunction, trials: Int) -> [(params: [Double], value: Double)] {
        var history: [SearchObservation] = []
        var out: [(params: [Double], value: Double)] = []
        for t in 0..<trials {
            let x = suggest(trial: t, history: history, running: [])
            let v = function.value(x)
            history.append(SearchObservation(number: t, params: x, score: v))
            out.append((x, v))
        }
        return out
    }
}
