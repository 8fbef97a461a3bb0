import Tensors

/// Lion, EvoLved Sign Momentum (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2):
///   c = β₁m + (1−β₁)g
///   θ ← θ(1 − γλ) − γ·sign(c)                    (decoupled decay, as in the paper)
///   m ← β₂m + (1−β₂)g
/// torch has no Lion; the reference is the paper's formula (fixtures use a float64 implementation of it).
///
/// State per element: `exp_avg` (m), starting at 0. Defaults: betas (0.9, 0.99); the paper's lr is 3–10× below
/// AdamW's and its weight decay 3–10× above, keeping γλ about the same. sign(0) = 0, so a zero gradient from a zero
/// state leaves θ unchanged apart from decay.
public final class Lion: OptimizerBase, Optimizer {
    public static let info = OptimizerInfo(
        names: ["lion"], reference: "Chen et al. 2023, Algorithm 2",
        keys: [HyperKey("beta1", .number(0...1), default: 0.9, "Lion: interpolation weight β₁ of the update direction c."),
               HyperKey("beta2", .number(0...1), default: 0.99, "Lion: decay β₂ of the momentum m.")],
        build: { Lion(count: $0.count, hyper: Hyper($0.values)) })

    public struct Hyper: Equatable, Sendable {
        /// Interpolation weight for the update direction c, and the decay of the momentum m.
        public let beta1, beta2: Float
        public init(_ v: HyperValues) { (beta1, beta2) = (v.float("beta1"), v.float("beta2")) }
    }
    public let hyper: Hyper

    public init(count: Int, hyper: Hyper) {
        self.hyper = hyper
        super.init(name: "lion", count: count, stateNames: ["exp_avg"])
    }

    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext) {
        stepCount += 1
        let b1 = hyper.beta1, b2 = hyper.beta2
        let w1 = Float(1 - decimalWidened(b1)), w2 = Float(1 - decimalWidened(b2))
        let p = params.baseAddress!, g = grads.baseAddress!, m = state[0].pointer
        for seg in segments {
            let lr = context.lr * seg.lrScale
            let decay = decoupledDecayFactor(lr: lr, weightDecay: seg.weightDecay)
            for i in seg.range {
                let gi = g[i], mi = m[i]
                let c = b1 * mi + w1 * gi
                p[i] = p[i] * decay - lr * signOf(c)
                m[i] = b2 * mi + w2 * gi
            }
        }
    }
}
