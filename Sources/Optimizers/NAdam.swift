#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CKernels
import Tensors

/// NAdam, Adam with Nesterov momentum (Dozat 2016), as in `torch.optim.NAdam`:
///   decoupled: θ ← θ(1 − γλ)                     otherwise: g ← g + λθ
///   μ_t = β₁(1 − ½·0.96^(t·ψ)),   Π_t = μ₁·…·μ_t          (ψ = momentum_decay, default 4e-3)
///   m ← β₁m + (1−β₁)g,   v ← β₂v + (1−β₂)g²,   d = √(v/bc₂) + ε,   bc₂ = 1 − β₂ᵗ
///   θ ← θ − γ(1−μ_t)/(1−Π_t)·g/d − γμ_{t+1}/(1−Π_t·μ_{t+1})·m/d
/// With `decoupled` this is torch's `decoupled_weight_decay=True` (NAdamW).
///
/// State per element: `exp_avg` (m), `exp_avg_sq` (v), starting at 0. Scalar state: `muProduct` (Π_t, torch's
/// `mu_product`), kept in double. It is a pure function of `stepCount`, so it is not checkpointed: when `stepCount`
/// was changed from outside (a restored checkpoint), the next update recomputes it from μ₁…μ_t.
/// torch defaults: lr 2e-3, betas (0.9, 0.999), eps 1e-8, momentum_decay 4e-3, decoupled_weight_decay false.
/// Deviation from torch: Π is kept in double (torch rounds its `mu_product` tensor to float32 every step); the two
/// differ by under 1e-7 relative.
public final class NAdam: OptimizerBase, KernelTwinOptimizer {
    public static let info = OptimizerInfo(
        names: ["nadam"], adamLike: true, reference: "Dozat 2016; torch.optim.NAdam",
        keys: [.beta1(), .beta2(), .eps(1e-8),
               HyperKey("momentum_decay", .number(0...1), default: 4e-3, "NAdam momentum-decay ψ in μ_t = β₁(1 − ½·0.96^(tψ))."),
               .decoupledWeightDecay],
        build: { NAdam(count: $0.count, hyper: Hyper($0.values)) })

    public struct Hyper: Equatable, Sendable {
        public let beta1, beta2, eps: Float
        /// ψ in the momentum schedule μ_t = β₁(1 − ½·0.96^(tψ)).
        public let momentumDecay: Float
        /// true: decoupled decay θ(1 − γλ) (torch's decoupled_weight_decay); false: L2 added to the gradient.
        public let decoupled: Bool
        public init(_ v: HyperValues) {
            (beta1, beta2, eps) = (v.float("beta1"), v.float("beta2"), v.float("eps"))
            (momentumDecay, decoupled) = (v.float("momentum_decay"), v.bool("decoupled_weight_decay"))
        }
    }
    public let hyper: Hyper
    /// Π_t = μ₁·…·μ_t after `muProductStep` steps (1 before the first step).
    public private(set) var muProduct: Double = 1
    private var muProductStep = 0
    /// β₁ and ψ as the doubles torch sees (decimal widening), for the μ schedule.
    private let beta1Double: Double, psiDouble: Double

    public init(count: Int, hyper: Hyper) {
        self.hyper = hyper
        beta1Double = decimalWidened(hyper.beta1)
        psiDouble = decimalWidened(hyper.momentumDecay)
        super.init(name: hyper.decoupled ? "nadamw" : "nadam", count: count, stateNames: ["exp_avg", "exp_avg_sq"])
    }

    /// μ_t of the momentum schedule, in double as torch computes it.
    public func mu(_ t: Int) -> Double {
        beta1Double * (1 - 0.5 * pow(0.96, Double(t) * psiDouble))
    }

    /// The coefficients of g/d and m/d at step t (before the factor −γ), given Π_{t−1}.
    public func coefficients(step t: Int, previousProduct: Double) -> (grad: Double, momentum: Double) {
        let muT = mu(t), muNext = mu(t + 1)
        let product = previousProduct * muT
        return ((1 - muT) / (1 - product), muNext / (1 - product * muNext))
    }

    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext, kernel: KernelChoice) {
        if muProductStep != stepCount {
            muProduct = 1
            for k in stride(from: 1, through: stepCount, by: 1) { muProduct *= mu(k) }
        }
        stepCount += 1
        let (cg, cm) = coefficients(step: stepCount, previousProduct: muProduct)
        muProduct *= mu(stepCount)
        muProductStep = stepCount

        let b2d = decimalWidened(hyper.beta2)
        let w1 = Float(1 - beta1Double), w2 = Float(1 - b2d), b2 = hyper.beta2, eps = hyper.eps
        let bc2 = Float(biasCorrection(beta: hyper.beta2, step: stepCount))
        let p = params.baseAddress!, g = grads.baseAddress!
        let m = state[0].pointer, v = state[1].pointer
        for seg in segments {
            let lr = context.lr * seg.lrScale, wd = seg.weightDecay
            let gradCoef = Float(-Double(lr) * cg), momCoef = Float(-Double(lr) * cm)
            let decay: Float = hyper.decoupled ? decoupledDecayFactor(lr: lr, weightDecay: wd) : 1
            let l2: Float = hyper.decoupled ? 0 : wd
            if kernel == .c {
                let lo = seg.range.lowerBound
                swt_nadam_update(p + lo, g + lo, m + lo, v + lo, seg.range.count, decay, l2, w1, b2, w2, bc2, eps,
                                 gradCoef, momCoef)
                continue
            }
            for i in seg.range {  // the C kernel's twin
                let pi = p[i] * decay
                let gi = g[i] + l2 * pi
                let mi = m[i] + w1 * (gi - m[i])
                let vi = v[i] * b2 + w2 * gi * gi
                m[i] = mi
                v[i] = vi
                let d = (vi / bc2).squareRoot() + eps
                // Two separate additions, in torch's order (two addcdiv_ calls).
                let pg = pi + gradCoef * gi / d
                p[i] = pg + momCoef * mi / d
            }
        }
    }
}
