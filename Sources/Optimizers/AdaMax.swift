#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Tensors

/// AdaMax, the infinity-norm variant of Adam (Kingma & Ba 2015, section 7.1), as in `torch.optim.Adamax`:
///   g ← g + λθ                                   (L2 decay added to the gradient)
///   m ← β₁m + (1−β₁)g,   u ← max(β₂u, |g| + ε)
///   θ ← θ − (γ/bc₁)·m/u,   bc₁ = 1 − β₁ᵗ         (bc₁ once per step in double)
///
/// State per element: `exp_avg` (m) and `exp_inf` (u), starting at 0. torch defaults: lr 2e-3, betas (0.9, 0.999),
/// eps 1e-8. Deviations from torch: none (ε inside the max, as torch places it, keeps u > 0 for zero gradients).
public final class AdaMax: OptimizerBase, Optimizer {
    public static let info = OptimizerInfo(
        names: ["adamax"], adamLike: true, reference: "Kingma & Ba 2015, section 7.1; torch.optim.Adamax",
        keys: [.beta1(), .beta2(), .eps(1e-8, in: 1e-30...1)],  // ε > 0 keeps u positive
        build: { AdaMax(count: $0.count, hyper: Hyper($0.values)) })

    public struct Hyper: Equatable, Sendable {
        public let beta1, beta2, eps: Float
        public init(_ v: HyperValues) { (beta1, beta2, eps) = (v.float("beta1"), v.float("beta2"), v.float("eps")) }
    }
    public let hyper: Hyper

    public init(count: Int, hyper: Hyper) {
        self.hyper = hyper
        super.init(name: "adamax", count: count, stateNames: ["exp_avg", "exp_inf"])
    }

    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext) {
        stepCount += 1
        let b1d = decimalWidened(hyper.beta1)
        let w1 = Float(1 - b1d), b2 = hyper.beta2, eps = hyper.eps
        let bc1 = biasCorrection(beta: hyper.beta1, step: stepCount)
        let p = params.baseAddress!, g = grads.baseAddress!
        let m = state[0].pointer, u = state[1].pointer
        for seg in segments {
            let clr = Float(Double(context.lr * seg.lrScale) / bc1), wd = seg.weightDecay
            for i in seg.range {
                let gi = g[i] + wd * p[i]
                let mi = m[i] + w1 * (gi - m[i])
                let ui = max(u[i] * b2, abs(gi) + eps)
                m[i] = mi
                u[i] = ui
                p[i] += -clr * mi / ui
            }
        }
    }
}
