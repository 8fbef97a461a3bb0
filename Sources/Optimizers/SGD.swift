import Tensors

/// Stochastic gradient descent with optional momentum (Polyak, heavy ball), dampening, Nesterov momentum
/// (Sutskever et al. 2013, in PyTorch's form) and L2 weight decay added to the gradient.
///
/// Matches `torch.optim.SGD`:
///   g ← g + λθ
///   b ← μb + (1−τ)g, except b₁ = g (dampening ignored on the first step)
///   d = nesterov ? g + μb : b      (d = g when μ = 0)
///   θ ← θ − γd
public final class SGD: OptimizerBase, Optimizer {
    public static let info = OptimizerInfo(
        names: ["sgd"], reference: "torch.optim.SGD (momentum, dampening, Nesterov)",
        keys: [
            .momentum(0),
            HyperKey("dampening", .number(0...1), default: 0.0, "SGD dampening τ: b ← μb + (1−τ)g (not on the first step, as in PyTorch)."),
            HyperKey("nesterov", .flag, default: false, "SGD Nesterov momentum (needs momentum > 0 and dampening 0)."),
        ],
        check: { _, v in
            v.bool("nesterov") && (v.double("momentum") <= 0 || v.double("dampening") != 0)
                ? "optimizer.nesterov = true needs optimizer.momentum > 0 and optimizer.dampening = 0" : nil
        },
        build: { SGD(count: $0.count, hyper: Hyper($0.values)) })

    public struct Hyper: Equatable, Sendable {
        public let momentum, dampening: Float
        public let nesterov: Bool
        public init(_ v: HyperValues) {
            (momentum, dampening, nesterov) = (v.float("momentum"), v.float("dampening"), v.bool("nesterov"))
        }
    }
    public let hyper: Hyper

    public init(count: Int, hyper: Hyper) {
        self.hyper = hyper
        super.init(name: "sgd", count: count, stateNames: hyper.momentum != 0 ? ["momentum_buffer"] : [])
    }

    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext) {
        stepCount += 1
        let first = stepCount == 1
        let mu = hyper.momentum, damp = 1 - hyper.dampening, nesterov = hyper.nesterov
        let p = params.baseAddress!, g = grads.baseAddress!
        for seg in segments {
            let lr = context.lr * seg.lrScale, wd = seg.weightDecay
            if mu == 0 {
                for i in seg.range { p[i] -= lr * (g[i] + wd * p[i]) }
                continue
            }
            let b = state[0].pointer
            for i in seg.range {
                let gi = g[i] + wd * p[i]
                let bi = first ? gi : mu * b[i] + damp * gi
                b[i] = bi
                p[i] -= lr * (nesterov ? gi + mu * bi : bi)
            }
        }
    }
}
