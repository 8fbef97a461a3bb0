/// The simple gradient noise scale B_simple = tr(Σ)/|G|² (McCandlish, Kaplan, Amodei et al. 2018, "An Empirical
/// Model of Large-Batch Training", appendix A), measured online from the data-parallel step at no extra
/// communication beyond one scalar pair.
///
/// With squared norms of mean gradients measured at two batch sizes B_small < B_big — here the per-rank (or
/// micro-) batch and the global batch — the unbiased estimators are
///   |G|²  ≈ (B_big·|G_big|² − B_small·|G_small|²) / (B_big − B_small)
///   tr(Σ) ≈ (|G_small|² − |G_big|²) / (1/B_small − 1/B_big)
/// Each is smoothed by its own exponential moving average and B_simple is the ratio of the averages (the ratio of
/// unbiased estimates is biased, and single-step estimates of |G|² can be negative). Computed in double, from raw
/// gradients (before clipping and weight decay); non-finite steps are not fed.
public struct GradientNoiseScale: Sendable {
    public let decay: Double
    public private(set) var gradientSquared: Double?
    public private(set) var trace: Double?
    /// Bias correction of the EMAs (as Adam's): the first estimates are not pulled towards zero.
    private var weight = 0.0

    public init(decay: Double = 0.95) {
        precondition(decay >= 0 && decay < 1, "EMA decay must be in [0, 1)")
        self.decay = decay
    }

    /// One step's measurement: `smallSquared` = mean over small batches of ‖mean gradient‖², `bigSquared` =
    /// ‖mean gradient over the big batch‖². With small batches of unequal sizes b_i, `smallBatch` is their
    /// harmonic mean 1/mean(1/b_i), which keeps both estimators unbiased (E‖g_i‖² = |G|² + tr Σ/b_i).
    public mutating func update(smallSquared: Double, smallBatch: Double, bigSquared: Double, bigBatch: Double) {
        guard smallBatch < bigBatch, smallSquared.isFinite, bigSquared.isFinite else { return }
        let bs = smallBatch, bb = bigBatch
        let g2 = (bb * bigSquared - bs * smallSquared) / (bb - bs)
        let tr = (smallSquared - bigSquared) / (1 / bs - 1 / bb)
        weight = decay * weight + (1 - decay)
        gradientSquared = decay * (gradientSquared ?? 0) + (1 - decay) * g2
        trace = decay * (trace ?? 0) + (1 - decay) * tr
    }

    /// The estimator's whole state (checkpointed when the batch schedule follows it, so a resumed run continues
    /// with the same averages).
    public struct State: Codable, Equatable, Sendable {
        public var gradientSquared: Double?
        public var trace: Double?
        public var weight: Double
    }

    public var state: State {
        get { State(gradientSquared: gradientSquared, trace: trace, weight: weight) }
        set { gradientSquared = newValue.gradientSquared; trace = newValue.trace; weight = newValue.weight }
    }

    /// B_simple = EMA(tr Σ) / EMA(|G|²); nil before the first measurement or while EMA(|G|²) ≤ 0.
    public var value: Double? {
        guard let g2 = gradientSquared, let tr = trace, g2 > 0 else { return nil }
        return (tr / weight) / (g2 / weight)
    }
}
