#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Tensors

/// AdEMAMix (Pagliardini, Ablin & Grangier 2024, "The AdEMAMix Optimizer: Better, Faster, Older"), as in Apple's
/// reference implementation (github.com/apple/ml-ademamix, `AdEMAMix.step`): Adam plus a slow EMA of the gradient
/// that keeps very old gradients relevant:
///   m₁ ← β₁m₁ + (1−β₁)g,   m₂ ← β₃m₂ + (1−β₃)g,   v ← β₂v + (1−β₂)g²
///   u = (m₁/bc₁ + α·m₂) / (√v/√bc₂ + ε),   bc_i = 1 − β_iᵗ     (m₂ is not bias-corrected)
///   θ ← θ − γ(u + λθ)                                            (decoupled decay, added to the update as the reference does)
/// Warmups (off at 0, as the reference's None): α rises linearly from 0 over `alpha_warmup` steps; β₃ rises from β₁
/// over `beta3_warmup` steps linearly in half-life, β₃(t) = 0.5^(1/(h(t)+1)) with h interpolating
/// h(β) = ln 0.5 / ln(β + 1e-8) − 1 between h(β₁) and h(β₃). Both are scalars computed once per step in double.
///
/// State per element: `exp_avg_fast` (m₁), `exp_avg_slow` (m₂), `exp_avg_sq` (v), starting at 0. Reference
/// defaults: lr 1e-3, betas (0.9, 0.999, 0.9999), α 2, no warmups; the paper trains with α 5–8, β₃ 0.9999 and both
/// warmups over the whole run. Deviations: none (the reference skips m₁ when β₁ = 0; here m₁ = g then, the same).
public final class AdEMAMix: OptimizerBase, Optimizer {
    public static let info = OptimizerInfo(
        names: ["ademamix"], adamLike: true,
        reference: "Pagliardini, Ablin & Grangier 2024; github.com/apple/ml-ademamix",
        keys: [
            .beta1(), .beta2(),
            HyperKey("beta3", .number(HyperKey.unitInterval), default: 0.9999, "AdEMAMix: decay β₃ of the slow gradient EMA m₂."),
            HyperKey("ademamix_alpha", .number(0...1e3), default: 2.0, "AdEMAMix: weight α of the slow EMA in the update (the paper uses 5–8)."),
            HyperKey("alpha_warmup", .integer(0...Int.max), default: 0, "AdEMAMix: steps over which α rises linearly from 0; 0: no warmup."),
            HyperKey("beta3_warmup", .integer(0...Int.max), default: 0, "AdEMAMix: steps over which β₃ rises from β₁ (linearly in half-life); 0: no warmup."),
            .eps(1e-8),
        ],
        build: { AdEMAMix(count: $0.count, hyper: Hyper($0.values)) })

    public struct Hyper: Equatable, Sendable {
        public let beta1, beta2, beta3, alpha, eps: Float
        public let alphaWarmup, beta3Warmup: Int
        public init(_ v: HyperValues) {
            (beta1, beta2, beta3) = (v.float("beta1"), v.float("beta2"), v.float("beta3"))
            (alpha, eps) = (v.float("ademamix_alpha"), v.float("eps"))
            (alphaWarmup, beta3Warmup) = (v.int("alpha_warmup"), v.int("beta3_warmup"))
        }
    }
    public let hyper: Hyper

    public init(count: Int, hyper: Hyper) {
        self.hyper = hyper
        super.init(name: "ademamix", count: count, stateNames: ["exp_avg_fast", "exp_avg_slow", "exp_avg_sq"])
    }

    /// α and β₃ at step t (from 1), after their warmups.
    public func scheduled(step t: Int) -> (alpha: Double, beta3: Double) {
        let alphaEnd = decimalWidened(hyper.alpha), beta3End = decimalWidened(hyper.beta3)
        let alpha = t < hyper.alphaWarmup ? alphaEnd * Double(t) / Double(hyper.alphaWarmup) : alphaEnd
        guard t < hyper.beta3Warmup else { return (alpha, beta3End) }
        func halfLife(_ beta: Double) -> Double { log(0.5) / log(beta + 1e-8) - 1 }
        let a = Double(t) / Double(hyper.beta3Warmup)
        let h = (1 - a) * halfLife(decimalWidened(hyper.beta1)) + a * halfLife(beta3End)
        return (alpha, pow(0.5, 1 / (h + 1)))
    }

    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext) {
        stepCount += 1
        let (alphaD, beta3D) = scheduled(step: stepCount)
        let alpha = Float(alphaD), b3 = Float(beta3D), w3 = Float(1 - beta3D)
        let b1 = hyper.beta1, b2 = hyper.beta2, eps = hyper.eps
        let w1 = Float(1 - decimalWidened(b1)), w2 = Float(1 - decimalWidened(b2))
        let invBc1 = Float(1 / biasCorrection(beta: b1, step: stepCount))
        let invBc2Sqrt = Float(1 / biasCorrection(beta: b2, step: stepCount).squareRoot())
        let p = params.baseAddress!, g = grads.baseAddress!
        let m1 = state[0].pointer, m2 = state[1].pointer, v = state[2].pointer
        for seg in segments {
            let lr = context.lr * seg.lrScale, wd = seg.weightDecay
            for i in seg.range {
                let gi = g[i], pi = p[i]
                let fast = b1 * m1[i] + w1 * gi
                let slow = b3 * m2[i] + w3 * gi
                let vi = b2 * v[i] + w2 * gi * gi
                m1[i] = fast
                m2[i] = slow
                v[i] = vi
                let u = (fast * invBc1 + alpha * slow) / (vi.squareRoot() * invBc2Sqrt + eps)
                p[i] = pi - lr * (u + wd * pi)
            }
        }
    }
}
