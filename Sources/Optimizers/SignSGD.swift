import Tensors

/// signSGD and Signum (Bernstein et al. 2018, "signSGD: Compressed Optimisation for Non-Convex Problems"):
///   signSGD (momentum 0):  θ ← θ(1 − γλ) − γ·sign(g)
///   Signum (momentum β>0): b ← βb + (1−β)g,  θ ← θ(1 − γλ) − γ·sign(b)
/// torch has no such class; the reference is the paper's formula (fixtures use a float64 implementation of it).
///
/// State per element: none for signSGD; `momentum_buffer` (b, starting at 0) for Signum. Defaults: momentum 0
/// (signSGD); the paper's Signum experiments use β = 0.9. sign(0) = 0.
/// Deviation from the paper: it has no weight decay; ours is decoupled (θ(1 − γλ), as in Lion and MXNet's Signum
/// `wd_lh`), because an L2 term added before the sign would change only the sign, not the magnitude.
public final class SignSGD: OptimizerBase, Optimizer {
    public static let info = OptimizerInfo(
        names: ["signsgd", "signum"], reference: "Bernstein et al. 2018 (signSGD, Signum)",
        keys: [HyperKey("momentum", .number(0...0.999_999), default: 0.9, "Signum's momentum β (EMA b ← βb + (1−β)g); signsgd ignores it (β = 0).")],
        build: { SignSGD(count: $0.count, hyper: Hyper(momentum: $0.name == "signsgd" ? 0 : $0.values.float("momentum"))) })

    public struct Hyper: Equatable, Sendable {
        /// β of Signum's momentum; 0 gives plain signSGD.
        public let momentum: Float
        public init(momentum: Float) { self.momentum = momentum }
    }
    public let hyper: Hyper

    public init(count: Int, hyper: Hyper) {
        self.hyper = hyper
        super.init(name: hyper.momentum > 0 ? "signum" : "signsgd", count: count,
                   stateNames: hyper.momentum > 0 ? ["momentum_buffer"] : [])
    }

    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext) {
        stepCount += 1
        let beta = hyper.momentum, w = Float(1 - decimalWidened(beta))
        let p = params.baseAddress!, g = grads.baseAddress!
        for seg in segments {
            let lr = context.lr * seg.lrScale
            let decay = decoupledDecayFactor(lr: lr, weightDecay: seg.weightDecay)
            if beta > 0 {
                let b = state[0].pointer
                for i in seg.range {
                    let bi = beta * b[i] + w * g[i]
                    b[i] = bi
                    p[i] = p[i] * decay - lr * signOf(bi)
                }
            } else {
                for i in seg.range { p[i] = p[i] * decay - lr * signOf(g[i]) }
            }
        }
    }
}
