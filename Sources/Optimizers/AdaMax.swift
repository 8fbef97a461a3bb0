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
public final class AdaMax: Optimizer {
    public static let info = OptimizerInfo(names: ["adamax"], adamLike: true, reference: "Kingma & Ba 2015, section 7.1; torch.optim.Adamax")

    public struct Hyper: Equatable, Sendable {
        public var beta1: Float = 0.9
        public var beta2: Float = 0.999
        public var eps: Float = 1e-8
        public init(beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8) {
            self.beta1 = beta1
            self.beta2 = beta2
            self.eps = eps
        }
    }

    public let name = "adamax"
    public let count: Int
    public let hyper: Hyper
    public var stepCount = 0
    public let state: [FloatBuffer]
    public let stateNames = ["exp_avg", "exp_inf"]

    public init(count: Int, hyper: Hyper = Hyper()) {
        precondition(hyper.beta1 >= 0 && hyper.beta1 < 1 && hyper.beta2 >= 0 && hyper.beta2 < 1,
                     "AdaMax betas must lie in [0, 1), got (\(hyper.beta1), \(hyper.beta2))")
        precondition(hyper.eps > 0, "AdaMax eps must be > 0 (it keeps u positive), got \(hyper.eps)")
        self.count = count
        self.hyper = hyper
        state = [FloatBuffer(count: count), FloatBuffer(count: count)]
    }

    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext) {
        stepCount += 1
        let b1d = decimalWidened(hyper.beta1)
        let w1 = Float(1 - b1d), b2 = hyper.beta2, eps = hyper.eps
        let bc1 = 1 - pow(b1d, Double(stepCount))
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
