import CKernels
import Tensors

/// Adagrad (Duchi, Hazan & Singer 2011), as in `torch.optim.Adagrad`:
///   g ← g + λθ                                   (L2 decay added to the gradient)
///   γ_t = γ / (1 + (t−1)·lr_decay)               (computed once per step in double)
///   s ← s + g²,   θ ← θ − γ_t·g / (√s + ε)
///
/// State per element: `sum` (s), starting at `initialAccumulator`. torch defaults: lr 1e-2, lr_decay 0,
/// initial_accumulator_value 0, eps 1e-10. Deviations from torch: no sparse gradients, no `maximize`.
public final class Adagrad: KernelTwinOptimizer {
    public static let info = OptimizerInfo(names: ["adagrad"], reference: "Duchi, Hazan & Singer 2011; torch.optim.Adagrad")

    public struct Hyper: Equatable, Sendable {
        /// lr_decay: the learning rate is divided by 1 + (t−1)·lrDecay.
        public var lrDecay: Float = 0
        /// initial_accumulator_value: the starting value of s (must be ≥ 0).
        public var initialAccumulator: Float = 0
        public var eps: Float = 1e-10
        public init(lrDecay: Float = 0, initialAccumulator: Float = 0, eps: Float = 1e-10) {
            self.lrDecay = lrDecay
            self.initialAccumulator = initialAccumulator
            self.eps = eps
        }
    }

    public let name = "adagrad"
    public let count: Int
    public let hyper: Hyper
    public var stepCount = 0
    public let state: [FloatBuffer]
    public let stateNames = ["sum"]

    public init(count: Int, hyper: Hyper = Hyper()) {
        precondition(hyper.lrDecay >= 0, "Adagrad lr_decay must be >= 0, got \(hyper.lrDecay)")
        precondition(hyper.initialAccumulator >= 0,
                     "Adagrad initial_accumulator must be >= 0, got \(hyper.initialAccumulator)")
        precondition(hyper.eps >= 0, "Adagrad eps must be >= 0, got \(hyper.eps)")
        self.count = count
        self.hyper = hyper
        let sum = FloatBuffer(count: count)
        if hyper.initialAccumulator != 0 { sum.fill(hyper.initialAccumulator) }
        state = [sum]
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
