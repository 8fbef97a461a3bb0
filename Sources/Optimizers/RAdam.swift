#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Tensors

/// RAdam, Adam with a rectified adaptive learning rate (Liu et al. 2020), as in `torch.optim.RAdam`:
///   decoupled: θ ← θ(1 − γλ)                     otherwise: g ← g + λθ
///   m ← β₁m + (1−β₁)g,   v ← β₂v + (1−β₂)g²,   bc_i = 1 − β_iᵗ
///   ρ∞ = 2/(1−β₂) − 1,   ρ_t = ρ∞ − 2tβ₂ᵗ/bc₂
///   ρ_t > 5:  r_t = √((ρ_t−4)(ρ_t−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρ_t)),   θ ← θ − γ·r_t·(m/bc₁)·√bc₂/(√v + ε)
///   else:     θ ← θ − γ·m/bc₁                    (SGD with bias-corrected momentum)
/// All scalars (ρ, r_t, bc) are computed once per step in double. With `decoupled` this is torch's
/// `decoupled_weight_decay=True` (RAdamW).
///
/// State per element: `exp_avg` (m), `exp_avg_sq` (v), starting at 0. torch defaults: lr 1e-3, betas (0.9, 0.999),
/// eps 1e-8, decoupled_weight_decay false. Deviations from torch: none.
public final class RAdam: OptimizerBase, Optimizer {
    public static let info = OptimizerInfo(
        names: ["radam"], adamLike: true, reference: "Liu et al. 2020; torch.optim.RAdam",
        keys: [.beta1(), .beta2(0.999, in: 1e-9...HyperKey.unitInterval.upperBound), .eps(1e-8), .decoupledWeightDecay],
        build: { RAdam(count: $0.count, hyper: Hyper($0.values)) })

    public struct Hyper: Equatable, Sendable {
        public let beta1, beta2, eps: Float
        /// true: decoupled decay θ(1 − γλ) (torch's decoupled_weight_decay); false: L2 added to the gradient.
        public let decoupled: Bool
        public init(_ v: HyperValues) {
            (beta1, beta2, eps) = (v.float("beta1"), v.float("beta2"), v.float("eps"))
            decoupled = v.bool("decoupled_weight_decay")
        }
    }
    public let hyper: Hyper

    public init(count: Int, hyper: Hyper) {
        self.hyper = hyper
        super.init(name: hyper.decoupled ? "radamw" : "radam", count: count, stateNames: ["exp_avg", "exp_avg_sq"])
    }

    /// ρ_t and the rectification r_t at step t (r_t is nil when ρ_t ≤ 5 and the step is not rectified).
    public func rectification(step t: Int) -> (rho: Double, r: Double?) {
        let b2 = decimalWidened(hyper.beta2), tt = Double(t)
        let bc2 = 1 - pow(b2, tt)
        let rhoInf = 2 / (1 - b2) - 1
        let rho = rhoInf - 2 * tt * pow(b2, tt) / bc2
        guard rho > 5 else { return (rho, nil) }
        return (rho, ((rho - 4) * (rho - 2) * rhoInf / ((rhoInf - 4) * (rhoInf - 2) * rho)).squareRoot())
    }

    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext) {
        stepCount += 1
        let t = Double(stepCount)
        let b1d = decimalWidened(hyper.beta1), b2d = decimalWidened(hyper.beta2)
        let w1 = Float(1 - b1d), w2 = Float(1 - b2d), b2 = hyper.beta2, eps = hyper.eps
        let bc1 = Float(biasCorrection(beta: hyper.beta1, step: stepCount))
        let bc2Sqrt = Float(biasCorrection(beta: hyper.beta2, step: stepCount).squareRoot())
        let rect = rectification(step: stepCount).r.map { Float($0) }
        let p = params.baseAddress!, g = grads.baseAddress!
        let m = state[0].pointer, v = state[1].pointer
        for seg in segments {
            let lr = context.lr * seg.lrScale, wd = seg.weightDecay
            let decay: Float = hyper.decoupled ? decoupledDecayFactor(lr: lr, weightDecay: wd) : 1
            let l2: Float = hyper.decoupled ? 0 : wd
            if let rect {
                for i in seg.range {
                    let pi = p[i] * decay
                    let gi = g[i] + l2 * pi
                    let mi = m[i] + w1 * (gi - m[i])
                    let vi = v[i] * b2 + w2 * gi * gi
                    m[i] = mi
                    v[i] = vi
                    let adaptive = 1 / (vi.squareRoot() + eps) * bc2Sqrt
                    p[i] = pi - mi / bc1 * lr * adaptive * rect
                }
            } else {
                for i in seg.range {
                    let pi = p[i] * decay
                    let gi = g[i] + l2 * pi
                    let mi = m[i] + w1 * (gi - m[i])
                    m[i] = mi
                    v[i] = v[i] * b2 + w2 * gi * gi
                    p[i] = pi - mi / bc1 * lr
                }
            }
        }
    }
}
