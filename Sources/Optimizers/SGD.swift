import Tensors

/// Stochastic gradient descent with optional momentum (Polyak, heavy ball), dampening, Nesterov momentum
/// (Sutskever et al. 2013, in PyTorch's form) and L2 weight decay added to the gradient.
///
/// Matches `torch.optim.SGD`:
///   g ← g + λθ
///   b ← μb + (1−τ)g, except b₁ = g (dampening ignored on the first step)
///   d = nesterov ? g + μb : b      (d = g when μ = 0)
///   θ ← θ − γd
public final class SGD: Optimizer {
    public static let info = OptimizerInfo(names: ["sgd"], reference: "torch.optim.SGD (momentum, dampening, Nesterov)")

    public struct Hyper: Equatable, Sendable {
        public var momentum: Float = 0
        public var dampening: Float = 0
        public var nesterov = false
        public init(momentum: Float = 0, dampening: Float = 0, nesterov: Bool = false) {
            self.momentum = momentum
            self.dampening = dampening
            self.nesterov = nesterov
        }
    }

    public let name = "sgd"
    public let count: Int
    public let hyper: Hyper
    public var stepCount = 0
    public let state: [FloatBuffer]
    public var stateNames: [String] { hyper.momentum != 0 ? ["momentum_buffer"] : [] }

    public init(count: Int, hyper: Hyper) {
        precondition(!hyper.nesterov || (hyper.momentum > 0 && hyper.dampening == 0),
                     "Nesterov momentum requires momentum > 0 and dampening = 0")
        self.count = count
        self.hyper = hyper
        state = hyper.momentum != 0 ? [FloatBuffer(count: count)] : []
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
