import CKernels
import Tensors

/// Adadelta (Zeiler 2012), as in `torch.optim.Adadelta`:
///   g ← g + λθ                                   (L2 decay added to the gradient)
///   v ← ρv + (1−ρ)g²
///   Δ = √(u + ε) / √(v + ε) · g
///   u ← ρu + (1−ρ)Δ²
///   θ ← θ − γΔ
///
/// State per element: `square_avg` (v) and `acc_delta` (u), starting at 0. torch defaults: lr 1.0, rho 0.9,
/// eps 1e-6 (the paper has no γ; torch's lr 1.0 recovers it). Deviations from torch: no `maximize`.
public final class Adadelta: KernelTwinOptimizer {
    public static let info = OptimizerInfo(names: ["adadelta"], reference: "Zeiler 2012; torch.optim.Adadelta")

    public struct Hyper: Equatable, Sendable {
        public var rho: Float = 0.9
        public var eps: Float = 1e-6
        public init(rho: Float = 0.9, eps: Float = 1e-6) {
            self.rho = rho
            self.eps = eps
        }
    }

    public let name = "adadelta"
    public let count: Int
    public let hyper: Hyper
    public var stepCount = 0
    public let state: [FloatBuffer]
    public let stateNames = ["square_avg", "acc_delta"]

    public init(count: Int, hyper: Hyper = Hyper()) {
        precondition(hyper.rho >= 0 && hyper.rho <= 1, "Adadelta rho must lie in [0, 1], got \(hyper.rho)")
        precondition(hyper.eps > 0, "Adadelta eps must be > 0 (it seeds the step size), got \(hyper.eps)")
        self.count = count
        self.hyper = hyper
        state = [FloatBuffer(count: count), FloatBuffer(count: count)]
    }

    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext, kernel: KernelChoice) {
        stepCount += 1
        let rho = hyper.rho, w = Float(1 - decimalWidened(hyper.rho)), eps = hyper.eps
        let p = params.baseAddress!, g = grads.baseAddress!
        let v = state[0].pointer, u = state[1].pointer
        for seg in segments {
            let lr = context.lr * seg.lrScale, wd = seg.weightDecay
            if kernel == .c {
                let lo = seg.range.lowerBound
                swt_adadelta_update(p + lo, g + lo, v + lo, u + lo, seg.range.count, wd, rho, w, eps, lr)
                continue
            }
            for i in seg.range {  // the C kernel's twin
                let gi = g[i] + wd * p[i]
                let vi = v[i] * rho + w * gi * gi
                v[i] = vi
                let delta = (u[i] + eps).squareRoot() / (vi + eps).squareRoot() * gi
                u[i] = u[i] * rho + w * delta * delta
                p[i] += -lr * delta
            }
        }
    }
}
