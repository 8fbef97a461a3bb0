import Tensors

/// LARS, layer-wise adaptive rate scaling (You, Gitman & Ginsburg 2017, "Large Batch Training of Convolutional
/// Networks"), Algorithm 1, with heavy-ball momentum:
///   local = η‖θ‖ / (‖g‖ + λ‖θ‖)          (local = 1 if ‖θ‖ = 0 or ‖g‖ = 0)
///   b ← μb + γ·local·(g + λθ)
///   θ ← θ − b
/// Norms are over whole tensors. Biases and norm gains (roles .bias / .norm) are excluded from decay and
/// adaptation (λ = 0, local = 1) when `excludeBiasAndNorm` is set, as in most LARS trainers.
///
/// Two phases (`TensorNormOptimizer`): `prepare` stores the direction d = g + λθ in scratch and adds the partial
/// sums Σθ² at [2i] and **Σg² at [2i + 1]** (for LARS the norm in the trust ratio is the raw gradient's, not the
/// direction's); `apply` computes `local` from the totals and updates momentum and θ. A tensor split between owners
/// therefore gets exactly the unsharded trust ratio once the partial sums are added.
///
/// Deviations: the paper's rule leaves `local` undefined for zero norms; we use 1 (move by the plain momentum step)
/// rather than 0 or NaN, so a zero-initialised tensor still trains and a zero gradient does not divide by zero.
/// The first step starts from b = 0 (b₁ = γ·local·(g + λθ)).
public final class LARS: OptimizerBase, TensorNormOptimizer {
    public static let info = OptimizerInfo(
        names: ["lars"], sharding: .tensorNorm, reference: "You, Gitman & Ginsburg 2017",
        keys: [.momentum(0.9), HyperKey("trust_coefficient", .number(0...1e3), default: 1e-3, "LARS trust coefficient η."),
               .excludeBiasAndNorm],
        build: { LARS(count: $0.count, hyper: Hyper($0.values)) })

    public struct Hyper: Equatable, Sendable {
        /// μ and η.
        public let momentum, trustCoefficient: Float
        /// Roles .bias and .norm get λ = 0 and local = 1.
        public let excludeBiasAndNorm: Bool
        public init(_ v: HyperValues) {
            (momentum, trustCoefficient) = (v.float("momentum"), v.float("trust_coefficient"))
            excludeBiasAndNorm = v.bool("exclude_bias_and_norm")
        }
    }
    public let hyper: Hyper
    /// d = g + λθ for the owned range, written by `prepare` and read by `apply` (not checkpointed).
    private let direction: FloatBuffer

    public init(count: Int, hyper: Hyper) {
        self.hyper = hyper
        direction = FloatBuffer(count: count)
        super.init(name: "lars", count: count, stateNames: ["momentum_buffer"])
    }

    private func excluded(_ seg: ParamSegment) -> Bool { excludedFromTrustRatio(seg, enabled: hyper.excludeBiasAndNorm) }

    public func prepare(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                        segments: [ParamSegment], context: StepContext,
                        partialSquares: UnsafeMutableBufferPointer<Double>) {
        stepCount += 1
        let p = params.baseAddress!, g = grads.baseAddress!, d = direction.pointer
        for seg in segments {
            let wd: Float = excluded(seg) ? 0 : seg.weightDecay
            var sumP = 0.0, sumG = 0.0
            for i in seg.range {
                let pi = p[i], gi = g[i]
                d[i] = gi + wd * pi
                sumP += Double(pi) * Double(pi)
                sumG += Double(gi) * Double(gi)
            }
            partialSquares[2 * seg.tensorIndex] += sumP
            partialSquares[2 * seg.tensorIndex + 1] += sumG
        }
    }

    /// local for a tensor with ‖θ‖² = `paramSquares`, ‖g‖² = `gradSquares` and decay λ.
    public func trustRatio(paramSquares: Double, gradSquares: Double, weightDecay: Float) -> Double {
        let normP = paramSquares.squareRoot(), normG = gradSquares.squareRoot()
        guard normP > 0, normG > 0 else { return 1 }
        return Double(hyper.trustCoefficient) * normP / (normG + Double(weightDecay) * normP)
    }

    public func apply(params: UnsafeMutableBufferPointer<Float>, segments: [ParamSegment], context: StepContext,
                      totalSquares: UnsafeBufferPointer<Double>) {
        let p = params.baseAddress!, d = direction.pointer, b = state[0].pointer
        let mu = hyper.momentum
        for seg in segments {
            let skip = excluded(seg)
            let local = skip ? 1 : trustRatio(paramSquares: totalSquares[2 * seg.tensorIndex],
                                               gradSquares: totalSquares[2 * seg.tensorIndex + 1],
                                               weightDecay: seg.weightDecay)
            let coef = Float(Double(context.lr * seg.lrScale) * local)
            for i in seg.range {
                let bi = mu * b[i] + coef * d[i]
                b[i] = bi
                p[i] -= bi
            }
        }
    }
}
