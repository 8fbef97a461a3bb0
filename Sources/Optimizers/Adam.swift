#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Tensors

/// Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), as in `torch.optim.Adam` / `torch.optim.AdamW`:
///   decoupled (AdamW): θ ← θ(1 − γλ)            coupled (Adam): g ← g + λθ
///   m ← β₁m + (1−β₁)g,   v ← β₂v + (1−β₂)g²
///   θ ← θ − (γ/bc₁)·m / (√v/√bc₂ + ε),   bc_i = 1 − β_iᵗ
/// ε is added after dividing √v by √bc₂, exactly where PyTorch adds it.
public final class Adam: Optimizer {
    public struct Hyper: Equatable, Sendable {
        public var beta1: Float = 0.9
        public var beta2: Float = 0.999
        public var eps: Float = 1e-8
        /// true: AdamW's decoupled decay; false: L2 decay added to the gradient (torch.optim.Adam's weight_decay).
        public var decoupled = true
        public init(beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, decoupled: Bool = true) {
            self.beta1 = beta1
            self.beta2 = beta2
            self.eps = eps
            self.decoupled = decoupled
        }
    }

    public var name: String { hyper.decoupled ? "adamw" : "adam" }
    public let count: Int
    public let hyper: Hyper
    public var stepCount = 0
    public let state: [FloatBuffer]
    public let stateNames = ["exp_avg", "exp_avg_sq"]

    public init(count: Int, hyper: Hyper) {
        self.count = count
        self.hyper = hyper
        state = [FloatBuffer(count: count), FloatBuffer(count: count)]
    }

    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext) {
        stepCount += 1
        let t = Double(stepCount)
        let b1 = hyper.beta1, b2 = hyper.beta2, eps = hyper.eps
        // Bias corrections in double, as PyTorch computes them on the host.
        let bc1 = 1 - pow(Double(b1), t)
        let bc2Sqrt = Float((1 - pow(Double(b2), t)).squareRoot())
        let invBc2Sqrt = 1 / bc2Sqrt
        let p = params.baseAddress!, g = grads.baseAddress!
        let m = state[0].pointer, v = state[1].pointer
        for seg in segments {
            let lr = context.lr * seg.lrScale
            let stepSize = Float(Double(lr) / bc1)
            let wd = seg.weightDecay
            let decay: Float = hyper.decoupled ? 1 - lr * wd : 1
            let l2: Float = hyper.decoupled ? 0 : wd
            for i in seg.range {
                let gi = g[i] + l2 * p[i]
                let mi = b1 * m[i] + (1 - b1) * gi
                let vi = b2 * v[i] + (1 - b2) * gi * gi
                m[i] = mi
                v[i] = vi
                p[i] = p[i] * decay - stepSize * mi / (vi.squareRoot() * invBc2Sqrt + eps)
            }
        }
    }
}
