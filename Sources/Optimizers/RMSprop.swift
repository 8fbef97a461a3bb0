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
public final class RMSprop: KernelTwinOptimizer {
    public static let info = OptimizerInfo(names: ["rmsprop"], reference: "Hinton, Coursera lecture 6e; torch.optim.RMSprop")

    public struct Hyper: Equatable, Sendable {
        /// Smoothing constant α of the squared-gradient average.
        public var alpha: Float = 0.99
        public var eps: Float = 1e-8
        public var momentum: Float = 0
        /// Normalise by an estimate of the variance (v − ḡ²) instead of the second moment.
        public var centered = false
        public init(alpha: Float = 0.99, eps: Float = 1e-8, momentum: Float = 0, centered: Bool = false) {
            self.alpha = alpha
            self.eps = eps
            self.momentum = momentum
            self.centered = centered
        }
    }

    public let name = "rmsprop"
    public let count: Int
    public let hyper: Hyper
    public var stepCount = 0
    public let state: [FloatBuffer]
    public let stateNames: [String]

    public init(count: Int, hyper: Hyper = Hyper()) {
        precondition(hyper.alpha >= 0 && hyper.alpha <= 1, "RMSprop alpha must lie in [0, 1], got \(hyper.alpha)")
        precondition(hyper.eps >= 0, "RMSprop eps must be >= 0, got \(hyper.eps)")
        precondition(hyper.momentum >= 0, "RMSprop momentum must be >= 0, got \(hyper.momentum)")
        self.count = count
        self.hyper = hyper
        var names = ["square_avg"]
        if hyper.momentum > 0 { names.append("momentum_buffer") }
        if hyper.centered { names.append("grad_avg") }
        stateNames = names
        state = names.map { _ in FloatBuffer(count: count) }
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
