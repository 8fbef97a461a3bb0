import CKernels
import Tensors

/// RMSprop (Tieleman & Hinton 2012, lecture 6.5; centered form from Graves 2013), as in `torch.optim.RMSprop`:
///   g ← g + λθ                                   (L2 decay added to the gradient)
///   v ← αv + (1−α)g²
///   centered: ḡ ← ḡ + (1−α)(g − ḡ),  d = √(v − ḡ²) + ε;   otherwise d = √v + ε
///   momentum μ > 0: b ← μb + g/d,  θ ← θ − γb;            otherwise θ ← θ − γg/d
///
/// State per element: `square_avg` (v), then `momentum_buffer` (b) when μ > 0, then `grad_avg` (ḡ) when centered,
/// all starting at 0. torch defaults: lr 1e-2, alpha 0.99, eps 1e-8, momentum 0, centered false.
/// Deviation from torch: centered clamps v − ḡ² at 0 before the square root. Exactly v ≥ ḡ², but float rounding can
/// make the difference a hair negative for a constant gradient, where torch returns NaN; results are otherwise equal.
public final class RMSprop: OptimizerBase, KernelTwinOptimizer {
    public static let info = OptimizerInfo(
        names: ["rmsprop"], reference: "Hinton, Coursera lecture 6e; torch.optim.RMSprop",
        keys: [
            HyperKey("alpha", .number(0...1), default: 0.99, "RMSprop smoothing α of the squared-gradient average."),
            .eps(1e-8), .momentum(0, in: 0...1e6),
            HyperKey("centered", .flag, default: false, "RMSprop: normalise by the variance estimate √(v − ḡ²)."),
        ],
        build: { RMSprop(count: $0.count, hyper: Hyper($0.values)) })

    public struct Hyper: Equatable, Sendable {
        /// Smoothing constant α of the squared-gradient average.
        public let alpha, eps, momentum: Float
        /// Normalise by an estimate of the variance (v − ḡ²) instead of the second moment.
        public let centered: Bool
        public init(_ v: HyperValues) {
            (alpha, eps, momentum, centered) = (v.float("alpha"), v.float("eps"), v.float("momentum"), v.bool("centered"))
        }
    }
    public let hyper: Hyper

    public init(count: Int, hyper: Hyper) {
        self.hyper = hyper
        super.init(name: "rmsprop", count: count, stateNames: ["square_avg"] + (hyper.momentum > 0 ? ["momentum_buffer"] : [])
                   + (hyper.centered ? ["grad_avg"] : []))
    }

    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext, kernel: KernelChoice) {
        stepCount += 1
        let alpha = hyper.alpha, w = Float(1 - decimalWidened(hyper.alpha)), eps = hyper.eps, mu = hyper.momentum
        let p = params.baseAddress!, g = grads.baseAddress!, v = state[0].pointer
        let b: UnsafeMutablePointer<Float>? = mu > 0 ? state[1].pointer : nil
        let gbar: UnsafeMutablePointer<Float>? = hyper.centered ? state[state.count - 1].pointer : nil
        for seg in segments {
            let lr = context.lr * seg.lrScale, wd = seg.weightDecay
            if kernel == .c {
                let lo = seg.range.lowerBound
                swt_rmsprop_update(p + lo, g + lo, v + lo, b.map { $0 + lo }, gbar.map { $0 + lo }, seg.range.count, wd,
                                   alpha, w, eps, mu, lr)
                continue
            }
            // The C kernel's twin. One loop per configuration so nothing configuration-dependent is decided per element.
            switch (b, gbar) {
            case (nil, nil):
                for i in seg.range {
                    let gi = g[i] + wd * p[i]
                    let vi = v[i] * alpha + w * gi * gi
                    v[i] = vi
                    p[i] += -lr * gi / (vi.squareRoot() + eps)
                }
            case (let b?, nil):
                for i in seg.range {
                    let gi = g[i] + wd * p[i]
                    let vi = v[i] * alpha + w * gi * gi
                    v[i] = vi
                    let bi = b[i] * mu + gi / (vi.squareRoot() + eps)
                    b[i] = bi
                    p[i] += -lr * bi
                }
            case (nil, let gbar?):
                for i in seg.range {
                    let gi = g[i] + wd * p[i]
                    let vi = v[i] * alpha + w * gi * gi
                    let ai = gbar[i] + w * (gi - gbar[i])
                    v[i] = vi
                    gbar[i] = ai
                    p[i] += -lr * gi / (max(vi - ai * ai, 0).squareRoot() + eps)
                }
            case (let b?, let gbar?):
                for i in seg.range {
                    let gi = g[i] + wd * p[i]
                    let vi = v[i] * alpha + w * gi * gi
                    let ai = gbar[i] + w * (gi - gbar[i])
                    v[i] = vi
                    gbar[i] = ai
                    let bi = b[i] * mu + gi / (max(vi - ai * ai, 0).squareRoot() + eps)
                    b[i] = bi
                    p[i] += -lr * bi
                }
            }
        }
    }
}
