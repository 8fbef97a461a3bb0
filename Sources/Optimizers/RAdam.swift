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
public final class RAdam: Optimizer {
    public static let info = OptimizerInfo(names: ["radam"], adamLike: true, reference: "Liu et al. 2020; torch.optim.RAdam")

    public struct Hyper: Equatable, Sendable {
        public var beta1: Float = 0.9
        public var beta2: Float = 0.999
        public var eps: Float = 1e-8
        /// true: decoupled decay θ(1 − γλ) (torch's decoupled_weight_decay); false: L2 added to the gradient.
        public var decoupled = false
        public init(beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, decoupled: Bool = false) {
            self.beta1 = beta1
            self.beta2 = beta2
            self.eps = eps
            self.decoupled = decoupled
        }
    }

    public var name: String { hyper.decoupled ? "radamw" : "radam" }
    public let count: Int
    public let hyper: Hyper
    public var stepCount = 0
    public let state: [FloatBuffer]
    public let stateNames = ["exp_avg", "exp_avg_sq"]

    public init(count: Int, hyper: Hyper = Hyper()) {
        precondition(hyper.beta1 >= 0 && hyper.beta1 < 1 && hyper.beta2 > 0 && hyper.beta2 < 1,
                     "RAdam needs beta1 in [0, 1) and beta2 in (0, 1), got (\(hyper.beta1), \(hyper.beta2))")
        precondition(hyper.eps >= 0, "RAdam eps must be >= 0, got \(hyper.eps)")
        self.count = count
        self.hyper = hyper
        state = [FloatBuffer(count: count), FloatBuffer(count: count)]
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
        let bc1 = Float(1 - pow(b1d, t))
        let bc2Sqrt = Float((1 - pow(b2d, t)).squareRoot())
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
