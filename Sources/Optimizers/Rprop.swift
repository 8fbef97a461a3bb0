import Tensors

/// Rprop, resilient backpropagation (Riedmiller & Braun 1993), in `torch.optim.Rprop`'s variant: no weight
/// backtracking, and the gradient is zeroed after a sign flip (iRprop−, Igel & Hüsken 2000):
///   g ← g + λθ                                   (L2 decay; torch's Rprop has none, see below)
///   same sign as the previous g (g·g_prev > 0):  s ← min(s·η₊, s_max)
///   flipped sign (g·g_prev < 0):                 s ← max(s·η₋, s_min), and g ← 0 for this step
///   otherwise (a zero in g or g_prev):           s ← clamp(s, s_min, s_max)
///   θ ← θ − sign(g)·s,   g_prev ← g
/// A full-batch method: with mini-batch noise the sign flips constantly and the step sizes collapse.
///
/// State per element: `prev` (g_prev, starting at 0) and `step_size` (s), which the first update fills with that
/// segment's learning rate γ (context.lr × lrScale), as torch fills it with the group's lr on the first step; later
/// learning rates are ignored, as in torch. torch defaults: lr 1e-2, etas (0.5, 1.2), step_sizes (1e-6, 50).
/// Deviation from torch: a segment's weight decay λ, when non-zero, is added to the gradient as L2 decay (torch's
/// Rprop has no weight_decay; with λ = 0 the update is torch's).
public final class Rprop: OptimizerBase, Optimizer {
    public static let info = OptimizerInfo(
        names: ["rprop"], reference: "Riedmiller & Braun 1993; torch.optim.Rprop",
        keys: [
            HyperKey("eta_minus", .number(1e-9...0.999_999_9), default: 0.5, "Rprop step-size factor η₋ after a sign flip (0 < η₋ < 1)."),
            HyperKey("eta_plus", .number(1.000_000_1...100), default: 1.2, "Rprop step-size factor η₊ when the sign holds (η₊ > 1)."),
            HyperKey("step_size_min", .number(0...1e6), default: 1e-6, "Rprop lower bound on the per-element step size."),
            HyperKey("step_size_max", .number(0...1e6), default: 50.0, "Rprop upper bound on the per-element step size."),
        ],
        check: { _, v in
            v.double("step_size_min") <= v.double("step_size_max") ? nil
                : "optimizer.step_size_min = \(v.double("step_size_min")) exceeds optimizer.step_size_max = \(v.double("step_size_max"))"
        },
        build: { Rprop(count: $0.count, hyper: Hyper($0.values)) })

    public struct Hyper: Equatable, Sendable {
        /// η₋ and η₊, the step-size factors after a sign flip and when the sign is kept.
        public let etaMinus, etaPlus: Float
        public let stepSizeMin, stepSizeMax: Float
        public init(_ v: HyperValues) {
            (etaMinus, etaPlus) = (v.float("eta_minus"), v.float("eta_plus"))
            (stepSizeMin, stepSizeMax) = (v.float("step_size_min"), v.float("step_size_max"))
        }
    }
    public let hyper: Hyper

    public init(count: Int, hyper: Hyper) {
        self.hyper = hyper
        super.init(name: "rprop", count: count, stateNames: ["prev", "step_size"])
    }

    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext) {
        let first = stepCount == 0
        stepCount += 1
        let up = hyper.etaPlus, down = hyper.etaMinus, lo = hyper.stepSizeMin, hi = hyper.stepSizeMax
        let p = params.baseAddress!, g = grads.baseAddress!
        let prev = state[0].pointer, s = state[1].pointer
        for seg in segments {
            if first { (s + seg.range.lowerBound).update(repeating: context.lr * seg.lrScale, count: seg.range.count) }
            let wd = seg.weightDecay
            for i in seg.range {
                var gi = g[i] + wd * p[i]
                let product = gi * prev[i]
                // torch multiplies s by η₊, η₋ or 1 and then clamps to [s_min, s_max] in every case.
                let factor: Float = product > 0 ? up : (product < 0 ? down : 1)
                if product < 0 { gi = 0 }
                let si = min(max(s[i] * factor, lo), hi)
                s[i] = si
                p[i] += -signOf(gi) * si
                prev[i] = gi
            }
        }
    }
}
