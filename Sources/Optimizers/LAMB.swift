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
public final class LAMB: TensorNormOptimizer {
    public static let info = OptimizerInfo(names: ["lamb"], sharding: .tensorNorm, adamLike: true, reference: "You et al. 2020")

    public struct Hyper: Equatable, Sendable {
        /// β₁, `optimizer.beta1` (default 0.9).
        public var beta1: Float = 0.9
        /// β₂, `optimizer.beta2` (default 0.999).
        public var beta2: Float = 0.999
        /// ε, `optimizer.eps` (default 1e-6).
        public var eps: Float = 1e-6
        /// Divide m and v by 1 − βᵗ, `optimizer.bias_correction` (default true).
        public var biasCorrection = true
        /// Upper clip of the trust ratio, `optimizer.max_trust_ratio` (default nil: no clip).
        public var maxTrustRatio: Float? = nil
        /// Roles .bias and .norm get λ = 0 and ratio 1, `optimizer.exclude_bias_and_norm` (default true).
        public var excludeBiasAndNorm = true

        public init(beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-6, biasCorrection: Bool = true,
                    maxTrustRatio: Float? = nil, excludeBiasAndNorm: Bool = true) {
            self.beta1 = beta1
            self.beta2 = beta2
            self.eps = eps
            self.biasCorrection = biasCorrection
            self.maxTrustRatio = maxTrustRatio
            self.excludeBiasAndNorm = excludeBiasAndNorm
        }
    }

    public let name = "lamb"
    public let count: Int
    public let hyper: Hyper
    public var stepCount = 0
    public let state: [FloatBuffer]
    public let stateNames = ["exp_avg", "exp_avg_sq"]
    /// r for the owned range, written by `prepare` and read by `apply` (not checkpointed).
    private let direction: FloatBuffer

    public init(count: Int, hyper: Hyper = Hyper()) {
        if let maxRatio = hyper.maxTrustRatio {
            precondition(maxRatio > 0, "optimizer.max_trust_ratio must be > 0, got \(maxRatio)")
        }
        self.count = count
        self.hyper = hyper
        state = [FloatBuffer(count: count), FloatBuffer(count: count)]
        direction = FloatBuffer(count: count)
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
        let t = Double(stepCount)
        let b1 = hyper.beta1, b2 = hyper.beta2, eps = hyper.eps
        // Bias corrections in double on the host, as PyTorch-style implementations do.
        let invBc1 = hyper.biasCorrection ? Float(1 / (1 - pow(Double(b1), t))) : 1
        let invSqrtBc2 = hyper.biasCorrection ? Float(1 / (1 - pow(Double(b2), t)).squareRoot()) : 1
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
