import CKernels
import Tensors

/// Adagrad (Duchi, Hazan & Singer 2011), as in `torch.optim.Adagrad`:
///   g ← g + λθ                                   (L2 decay added to the gradient)
///   γ_t = γ / (1 + (t−1)·lr_decay)               (computed once per step in double)
///   s ← s + g²,   θ ← θ − γ_t·g / (√s + ε)
///
/// State per element: `sum` (s), starting at `initialAccumulator`. torch defaults: lr 1e-2, lr_decay 0,
/// initial_accumulator_value 0, eps 1e-10. Deviations from torch: no sparse gradients, no `maximize`.
public final class Adagrad: OptimizerBase, KernelTwinOptimizer {
    public static let info = OptimizerInfo(
        names: ["adagrad"], reference: "Duchi, Hazan & Singer 2011; torch.optim.Adagrad",
        keys: [
            HyperKey("lr_decay", .number(0...1e6), default: 0.0, "Adagrad learning-rate decay: γ_t = γ / (1 + (t−1)·lr_decay)."),
            HyperKey("initial_accumulator", .number(0...1e6), default: 0.0, "Adagrad starting value of the squared-gradient sum."),
            .eps(1e-10),
        ],
        build: { Adagrad(count: $0.count, hyper: Hyper($0.values)) })

    public struct Hyper: Equatable, Sendable {
        /// lr_decay: the learning rate is divided by 1 + (t−1)·lrDecay.
        public let lrDecay: Float
        /// initial_accumulator_value: the starting value of s.
        public let initialAccumulator: Float
        public let eps: Float
        public init(_ v: HyperValues) {
            (lrDecay, initialAccumulator, eps) = (v.float("lr_decay"), v.float("initial_accumulator"), v.float("eps"))
        }
    }
    public let hyper: Hyper

    public init(count: Int, hyper: Hyper) {
        self.hyper = hyper
        super.init(name: "adagrad", count: count, stateNames: ["sum"])
        if hyper.initialAccumulator != 0 { state[0].fill(hyper.initialAccumulator) }
    }

    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext, kernel: KernelChoice) {
        stepCount += 1
        let divisor = 1 + Double(stepCount - 1) * decimalWidened(hyper.lrDecay)
        let eps = hyper.eps
        let p = params.baseAddress!, g = grads.baseAddress!, s = state[0].pointer
        for seg in segments {
            let clr = Float(Double(context.lr * seg.lrScale) / divisor)
            let wd = seg.weightDecay
            if kernel == .c {
                let lo = seg.range.lowerBound
                swt_adagrad_update(p + lo, g + lo, s + lo, seg.range.count, wd, clr, eps)
                continue
            }
            for i in seg.range {  // the C kernel's twin
                let gi = g[i] + wd * p[i]
                let si = s[i] + gi * gi
                s[i] = si
                p[i] += -clr * gi / (si.squareRoot() + eps)
            }
        }
    }
}
