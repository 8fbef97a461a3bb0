#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CKernels
import Tensors

/// LAMB, layer-wise adaptive moments (You et al. 2019/2020, "Large Batch Optimization for Deep Learning: Training
/// BERT in 76 minutes"), Algorithm 2:
///   m ← β₁m + (1−β₁)g,   v ← β₂v + (1−β₂)g²
///   m̂ = m/bc₁, v̂ = v/bc₂  (bc_i = 1 − β_iᵗ; both 1 when `biasCorrection` is off)
///   r = m̂/(√v̂ + ε) + λθ
///   ratio = ‖θ‖/‖r‖       (1 if either norm is 0; then min(ratio, maxTrustRatio) when a maximum is set)
///   θ ← θ − γ·ratio·r
/// Norms are over whole tensors. Biases and norm gains (roles .bias / .norm) are excluded from decay and
/// adaptation (λ = 0, ratio 1) when `excludeBiasAndNorm` is set.
///
/// Two phases (`TensorNormOptimizer`): `prepare` updates m and v, stores r in scratch and adds Σθ² at [2i] and Σr²
/// at [2i + 1]; `apply` scales r by the ratio from the totals. Splitting a tensor between owners gives the
/// unsharded ratio once the partial sums are added.
///
/// Choices where implementations disagree: bias correction on by default (the paper's Algorithm 2; NVIDIA's
/// FusedLAMB also defaults to it); the paper's scaling function φ is the identity unless `maxTrustRatio` is set
/// (e.g. 10, as in some BERT recipes), and no lower clip. Gradient pre-normalisation by the global norm is not done
/// here (it is a global-norm clip, which the trainer applies before the optimizer).
public final class LAMB: OptimizerBase, TensorNormOptimizer {
    public static let info = OptimizerInfo(
        names: ["lamb"], sharding: .tensorNorm, adamLike: true, reference: "You et al. 2020",
        keys: [.beta1(), .beta2(), .eps(1e-6),
               HyperKey("lamb_bias_correction", .flag, default: true, "LAMB: bias-correct the moments (m̂, v̂)."),
               HyperKey("max_trust_ratio", .number(0...1e6), default: 0.0, "LAMB: clip the trust ratio to at most this; 0: no clipping."),
               .excludeBiasAndNorm],
        build: { LAMB(count: $0.count, hyper: Hyper($0.values)) })

    public struct Hyper: Equatable, Sendable {
        public let beta1, beta2, eps: Float
        /// Divide m and v by 1 − βᵗ.
        public let biasCorrection: Bool
        /// Upper clip of the trust ratio (nil: no clip; configuration spells that 0).
        public let maxTrustRatio: Float?
        /// Roles .bias and .norm get λ = 0 and ratio 1.
        public let excludeBiasAndNorm: Bool
        public init(_ v: HyperValues) {
            (beta1, beta2, eps) = (v.float("beta1"), v.float("beta2"), v.float("eps"))
            biasCorrection = v.bool("lamb_bias_correction")
            maxTrustRatio = v.double("max_trust_ratio") > 0 ? v.float("max_trust_ratio") : nil
            excludeBiasAndNorm = v.bool("exclude_bias_and_norm")
        }
    }
    public let hyper: Hyper
    /// r for the owned range, written by `prepare` and read by `apply` (not checkpointed).
    private let direction: FloatBuffer

    public init(count: Int, hyper: Hyper) {
        self.hyper = hyper
        direction = FloatBuffer(count: count)
        super.init(name: "lamb", count: count, stateNames: ["exp_avg", "exp_avg_sq"])
    }

    private func excluded(_ seg: ParamSegment) -> Bool { excludedFromTrustRatio(seg, enabled: hyper.excludeBiasAndNorm) }

    public func prepare(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                        segments: [ParamSegment], context: StepContext,
                        partialSquares: UnsafeMutableBufferPointer<Double>) {
        prepare(params: params, grads: grads, segments: segments, context: context, partialSquares: partialSquares, kernel: .c)
    }

    /// The C kernel's naive twin, for tests: phase 1 through the plain Swift loop (norms summed in another order).
    public func referencePrepare(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                                 segments: [ParamSegment], context: StepContext,
                                 partialSquares: UnsafeMutableBufferPointer<Double>) {
        prepare(params: params, grads: grads, segments: segments, context: context, partialSquares: partialSquares,
                kernel: .swiftReference)
    }

    private func prepare(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                         segments: [ParamSegment], context: StepContext,
                         partialSquares: UnsafeMutableBufferPointer<Double>, kernel: KernelChoice) {
        stepCount += 1
        let b1 = hyper.beta1, b2 = hyper.beta2, eps = hyper.eps
        // Bias corrections in double on the host, as PyTorch-style implementations do.
        let invBc1 = hyper.biasCorrection ? Float(1 / biasCorrection(beta: b1, step: stepCount)) : 1
        let invSqrtBc2 = hyper.biasCorrection ? Float(1 / biasCorrection(beta: b2, step: stepCount).squareRoot()) : 1
        let p = params.baseAddress!, g = grads.baseAddress!, r = direction.pointer
        let m = state[0].pointer, v = state[1].pointer
        for seg in segments {
            let wd: Float = excluded(seg) ? 0 : seg.weightDecay
            var sumP = 0.0, sumR = 0.0
            if kernel == .c {
                let lo = seg.range.lowerBound
                swt_lamb_direction(p + lo, g + lo, m + lo, v + lo, r + lo, seg.range.count, b1, b2, invBc1, invSqrtBc2,
                                   eps, wd, &sumP, &sumR)
                partialSquares[2 * seg.tensorIndex] += sumP
                partialSquares[2 * seg.tensorIndex + 1] += sumR
                continue
            }
            for i in seg.range {  // the C kernel's twin
                let gi = g[i], pi = p[i]
                let mi = b1 * m[i] + (1 - b1) * gi
                let vi = b2 * v[i] + (1 - b2) * gi * gi
                m[i] = mi
                v[i] = vi
                let ri = (mi * invBc1) / (vi.squareRoot() * invSqrtBc2 + eps) + wd * pi
                r[i] = ri
                sumP += Double(pi) * Double(pi)
                sumR += Double(ri) * Double(ri)
            }
            partialSquares[2 * seg.tensorIndex] += sumP
            partialSquares[2 * seg.tensorIndex + 1] += sumR
        }
    }

    /// The trust ratio for a tensor with ‖θ‖² = `paramSquares` and ‖r‖² = `directionSquares`.
    public func trustRatio(paramSquares: Double, directionSquares: Double) -> Double {
        let normP = paramSquares.squareRoot(), normR = directionSquares.squareRoot()
        var ratio = normP > 0 && normR > 0 ? normP / normR : 1
        if let maxRatio = hyper.maxTrustRatio { ratio = Swift.min(ratio, Double(maxRatio)) }
        return ratio
    }

    public func apply(params: UnsafeMutableBufferPointer<Float>, segments: [ParamSegment], context: StepContext,
                      totalSquares: UnsafeBufferPointer<Double>) {
        let p = params.baseAddress!, r = direction.pointer
        for seg in segments {
            let ratio = excluded(seg) ? 1 : trustRatio(paramSquares: totalSquares[2 * seg.tensorIndex],
                                                       directionSquares: totalSquares[2 * seg.tensorIndex + 1])
            let step = Float(Double(context.lr * seg.lrScale) * ratio)
            for i in seg.range { p[i] -= step * r[i] }
        }
    }
}
