import Optimizers
import SwiftMPI
import Tensors

/// What happened in one distributed optimizer step.
public struct StepReport: Equatable, Sendable {
    /// Global L2 norm of the averaged (raw, unclipped) gradient.
    public var gradNorm: Double
    /// True when a non-finite gradient was seen on any rank and the step was skipped everywhere.
    public var skipped: Bool
    /// True when the gradient was scaled down by global-norm clipping.
    public var clipped: Bool
}

/// Replicated data parallelism (ZeRO stage 0): every rank holds all parameters, gradients and optimizer state.
///
/// One step: all-reduce (sum) the gradient buffer, scale by 1/world (MPI has no average), check for non-finite
/// values, clip by global norm on the raw averaged gradient, then apply the same optimizer update on every rank.
/// Because every rank then holds bit-identical gradients, the skip and clip decisions need no further collective.
public final class ReplicatedDataParallel {
    public let comm: Communicator
    public let table: ParameterTable
    public let optimizer: Optimizer
    public let segments: [ParamSegment]
    /// Global-norm clipping threshold; nil disables clipping.
    public let clipNorm: Double?

    public init(comm: Communicator, table: ParameterTable, optimizer: Optimizer, segments: [ParamSegment],
                clipNorm: Double?) {
        precondition(optimizer.count == table.count, "a replicated optimizer owns the whole buffer")
        self.comm = comm
        self.table = table
        self.optimizer = optimizer
        self.segments = segments
        self.clipNorm = clipNorm
    }

    /// Averages `grads` across ranks in place (sum, then ×1/world).
    public func averageGradients(_ grads: FloatBuffer) throws {
        if comm.size > 1 { try comm.allReduce(grads.buffer, op: .sum) }
        if comm.size > 1 { scale(grads.buffer, by: 1 / Float(comm.size)) }
    }

    /// Averages gradients, then applies one update unless a gradient is non-finite.
    public func step(params: FloatBuffer, grads: FloatBuffer, lr: Float) throws -> StepReport {
        try averageGradients(grads)
        let sumSquares = sumOfSquares(UnsafeBufferPointer(grads.buffer))
        guard sumSquares.isFinite else { return StepReport(gradNorm: .nan, skipped: true, clipped: false) }
        let norm = sumSquares.squareRoot()
        var clipped = false
        if let clipNorm, norm > clipNorm {
            // torch.nn.utils.clip_grad_norm_: g ← g · max_norm / (‖g‖ + 1e-6)
            scale(grads.buffer, by: Float(clipNorm / (norm + 1e-6)))
            clipped = true
        }
        optimizer.update(params: params.buffer, grads: UnsafeBufferPointer(grads.buffer), segments: segments,
                         context: StepContext(lr: lr))
        return StepReport(gradNorm: norm, skipped: false, clipped: clipped)
    }
}

/// Σ x² accumulated in double (4 partial sums so the loop vectorises); non-finite if any element is.
public func sumOfSquares(_ x: UnsafeBufferPointer<Float>) -> Double {
    guard let p = x.baseAddress else { return 0 }
    let n = x.count
    var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    var i = 0
    while i + 4 <= n {
        let a = Double(p[i]), b = Double(p[i + 1]), c = Double(p[i + 2]), d = Double(p[i + 3])
        s0 += a * a; s1 += b * b; s2 += c * c; s3 += d * d
        i += 4
    }
    while i < n { let a = Double(p[i]); s0 += a * a; i += 1 }
    return (s0 + s1) + (s2 + s3)
}

/// x ← a·x
public func scale(_ x: UnsafeMutableBufferPointer<Float>, by a: Float) {
    guard let p = x.baseAddress else { return }
    for i in 0..<x.count { p[i] *= a }
}
