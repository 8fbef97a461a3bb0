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
public final class Adadelta: OptimizerBase, KernelTwinOptimizer {
    public static let info = OptimizerInfo(
        names: ["adadelta"], reference: "Zeiler 2012; torch.optim.Adadelta",
        keys: [HyperKey("rho", .number(0...1), default: 0.9, "Adadelta decay ρ of both running averages."),
               .eps(1e-6, in: 1e-30...1)],  // ε > 0 seeds the step size
        build: { Adadelta(count: $0.count, hyper: Hyper($0.values)) })

    public struct Hyper: Equatable, Sendable {
        public let rho, eps: Float
        public init(_ v: HyperValues) { (rho, eps) = (v.float("rho"), v.float("eps")) }
    }
    public let hyper: Hyper

    public init(count: Int, hyper: Hyper) {
        self.hyper = hyper
        super.init(name: "adadelta", count: count, stateNames: ["square_avg", "acc_delta"])
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
