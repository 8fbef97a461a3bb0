#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CKernels
import Tensors

/// Adam (Kingma & Ba 2015), AdamW (Loshchilov & Hutter 2019) and AMSGrad (Reddi et al. 2018), as in
/// `torch.optim.Adam` / `torch.optim.AdamW` (`amsgrad=True` for AMSGrad):
///   decoupled (AdamW): θ ← θ(1 − γλ)            coupled (Adam): g ← g + λθ
///   m ← β₁m + (1−β₁)g,   v ← β₂v + (1−β₂)g²,   AMSGrad: v̂ ← max(v̂, v) and v̂ replaces v below
///   θ ← θ − (γ/bc₁)·m / (√v/√bc₂ + ε),   bc_i = 1 − β_iᵗ
/// ε is added after dividing √v by √bc₂, exactly where PyTorch adds it. Bias corrections are computed once per step
/// in double from the decimal value of β (see `decimalWidened`), as torch does from Python floats.
///
/// State per element: `exp_avg` (m), `exp_avg_sq` (v), and with AMSGrad `max_exp_avg_sq` (v̂), starting at 0.
/// Deviations from torch: none (no `maximize`, `capturable`, `differentiable` or `fused` options).
public final class Adam: OptimizerBase, Optimizer {
    public static let info = OptimizerInfo(
        names: ["adamw", "adam"], adamLike: true,
        reference: "Kingma & Ba 2015; Loshchilov & Hutter 2019 (AdamW); torch.optim.Adam/AdamW",
        keys: [.beta1(), .beta2(), .eps(1e-8),
               HyperKey("amsgrad", .flag, default: false, "Adam/AdamW: normalise by the running maximum of past second moments (AMSGrad).")],
        build: { Adam(count: $0.count, hyper: Hyper($0.values, decoupled: $0.name == "adamw")) })

    public struct Hyper: Equatable, Sendable {
        public let beta1, beta2, eps: Float
        /// true: AdamW's decoupled decay; false: L2 decay added to the gradient (torch.optim.Adam's weight_decay).
        public let decoupled: Bool
        /// AMSGrad: normalise by the running maximum of v instead of v.
        public let amsgrad: Bool
        public init(_ v: HyperValues, decoupled: Bool) {
            (beta1, beta2, eps) = (v.float("beta1"), v.float("beta2"), v.float("eps"))
            (self.decoupled, amsgrad) = (decoupled, v.bool("amsgrad"))
        }
    }
    public let hyper: Hyper

    /// Ranges at least this long (4 MiB per buffer) bypass the cache with streaming stores: they will be evicted
    /// before the next step anyway, and skipping the read-for-ownership saves a third of the memory traffic.
    static let streamingThreshold = 1 << 20

    /// The naive twin of the C kernel, for tests: one Adam/AdamW element update in plain Swift.
    @inline(__always)
    public static func adamReference(p: inout Float, g: Float, m: inout Float, v: inout Float, decay: Float, l2: Float,
                                     w1: Float, beta2: Float, w2: Float, step: Float, invBc2Sqrt: Float, eps: Float) {
        let gi = g + l2 * p
        let mi = m + w1 * (gi - m)
        let vi = v * beta2 + w2 * gi * gi
        m = mi
        v = vi
        p = p * decay - step * mi / (vi.squareRoot() * invBc2Sqrt + eps)
    }

    public init(count: Int, hyper: Hyper) {
        self.hyper = hyper
        let name = (hyper.decoupled ? "adamw" : "adam") + (hyper.amsgrad ? "-amsgrad" : "")
        super.init(name: name, count: count,
                   stateNames: ["exp_avg", "exp_avg_sq"] + (hyper.amsgrad ? ["max_exp_avg_sq"] : []))
    }

    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext) {
        stepCount += 1
        let b1d = decimalWidened(hyper.beta1), b2d = decimalWidened(hyper.beta2)
        let b2 = hyper.beta2, eps = hyper.eps
        let w1 = Float(1 - b1d), w2 = Float(1 - b2d)
        // Bias corrections in double, as PyTorch computes them on the host.
        let bc1 = biasCorrection(beta: hyper.beta1, step: stepCount)
        let bc2Sqrt = Float(biasCorrection(beta: hyper.beta2, step: stepCount).squareRoot())
        let p = params.baseAddress!, g = grads.baseAddress!
        let m = state[0].pointer, v = state[1].pointer
        for seg in segments {
            let lr = context.lr * seg.lrScale
            let stepSize = Float(Double(lr) / bc1)
            let wd = seg.weightDecay
            let decay: Float = hyper.decoupled ? decoupledDecayFactor(lr: lr, weightDecay: wd) : 1
            let l2: Float = hyper.decoupled ? 0 : wd
            if hyper.amsgrad {
                let vmax = state[2].pointer
                for i in seg.range {
                    // All loads before any store, so the vectoriser needs no alias reasoning across them.
                    let pi = p[i], m0 = m[i], v0 = v[i], vmax0 = vmax[i]
                    let gi = g[i] + l2 * pi
                    let mi = m0 + w1 * (gi - m0)
                    let vi = v0 * b2 + w2 * gi * gi
                    let vhat = max(vmax0, vi)
                    m[i] = mi
                    v[i] = vi
                    vmax[i] = vhat
                    p[i] = pi * decay - stepSize * mi / (vhat.squareRoot() / bc2Sqrt + eps)
                }
            } else {
                // The C kernel (SIMD, streaming stores for large ranges) computes exactly `adamReference`'s expression.
                let lo = seg.range.lowerBound
                swt_adam_update(p + lo, g + lo, m + lo, v + lo, seg.range.count, decay, l2, w1, b2, w2, stepSize,
                                1 / bc2Sqrt, eps, seg.range.count >= Self.streamingThreshold ? 1 : 0)
            }
        }
    }
}
