// Dimension letters: N images, C channels, S = H·W pixels per channel plane; M = N·S values per channel on this rank,
// M_all the same summed over the ranks that share statistics.
// Batch normalisation (Ioffe & Szegedy 2015) over NCHW, per channel, as PyTorch's nn.BatchNorm2d:
//   train: out = (x − mean) · rstd · γ + β,  mean and biased variance over the batch (all ranks' with a reducer),
//          running statistics ← (1 − momentum)·running + momentum·batch (the unbiased variance, as PyTorch)
//   eval:  the same with the running statistics.
// Backward (accumulating), with x̂ = (x − mean)·rstd and sums Σ over every value of the channel on every rank:
//   dγ += Σ_local dy·x̂,   dβ += Σ_local dy   (the engine sums these over ranks like any gradient)
//   dx += γ·rstd · (dy − Σ dy / M_all − x̂ · Σ dy·x̂ / M_all)
// No BLAS here, so there is no fast/naive pair: tests check against finite differences, and the synchronised form
// against one rank holding the whole batch (MPIChecks).

/// Sums a small buffer over the ranks that share batch statistics (an all-reduce with op sum), in place.
///
/// Why a protocol here: a model (module Models) imports only Tensors, and only module Distributed may communicate
/// during a training step. Distributed provides the implementation over its communicator
/// (`CommunicatorStatisticsReducer`) and the trainer hands it to models that ask for synchronised statistics
/// (`model.sync_batchnorm`). Every rank calls it the same number of times in the same order (each batch-norm layer,
/// forward then backward, each micro-batch), like any collective.
public protocol StatisticsReducer: AnyObject {
    func sumOverRanks(_ values: UnsafeMutableBufferPointer<Double>)
}

/// eps inside the square root and the running-average momentum, PyTorch's defaults.
public let batchNormEpsilon: Float = 1e-5
public let batchNormMomentum: Float = 0.1

/// One batch-norm layer's saved state: per-channel batch statistics (for backward), running statistics (for eval)
/// and a reduction buffer, all sized once at construction.
public final class BatchNormState {
    public let channels: Int
    public let mean: FloatBuffer, rstd: FloatBuffer
    public let runningMean: FloatBuffer, runningVariance: FloatBuffer
    /// [2C] doubles: Σx, Σx² in forward; Σdy, Σdy·x̂ in backward; plus one slot for the value count.
    private let sums: UnsafeMutableBufferPointer<Double>

    public init(channels: Int) {
        self.channels = channels
        mean = FloatBuffer(count: channels)
        rstd = FloatBuffer(count: channels)
        runningMean = FloatBuffer(count: channels)
        runningVariance = FloatBuffer(count: channels)
        runningVariance.pointer.update(repeating: 1, count: channels)
        sums = .allocate(capacity: 2 * channels + 1)
        sums.initialize(repeating: 0)
    }

    deinit { sums.deallocate() }

    /// Resets the running statistics to PyTorch's initial values (mean 0, variance 1).
    public func resetRunningStatistics() {
        runningMean.pointer.update(repeating: 0, count: channels)
        runningVariance.pointer.update(repeating: 1, count: channels)
    }

    /// Training forward: out[N, C, S] from x with this batch's statistics (summed over ranks by `reducer` when
    /// given), which are kept for backward and folded into the running statistics.
    public func forwardTraining(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ gamma: UnsafePointer<Float>,
                                _ beta: UnsafePointer<Float>, images: Int, pixels: Int, reducer: StatisticsReducer?) {
        let C = channels, S = pixels
        // Phase 1: local sums per channel (in double: Σx² − (Σx)²/M cancels badly in float).
        for c in 0..<C {
            var s = 0.0, q = 0.0
            for n in 0..<images {
                let plane = x + (n * C + c) * S
                for i in 0..<S {
                    let v = Double(plane[i])
                    s += v
                    q += v * v
                }
            }
            sums[c] = s
            sums[C + c] = q
        }
        // Phase 2: one all-reduce of [Σx, Σx², M] across the ranks that share statistics.
        let count = reduceSums(values: images * S, reducer)
        // Phase 3: statistics, running averages, normalisation.
        for c in 0..<C {
            let m = sums[c] / count
            let variance = max(0, sums[C + c] / count - m * m)
            let r = Float(1 / (variance + Double(batchNormEpsilon)).squareRoot())
            mean[c] = Float(m)
            rstd[c] = r
            let unbiased = count > 1 ? variance * count / (count - 1) : variance
            runningMean[c] = (1 - batchNormMomentum) * runningMean[c] + batchNormMomentum * Float(m)
            runningVariance[c] = (1 - batchNormMomentum) * runningVariance[c] + batchNormMomentum * Float(unbiased)
            let scale = r * gamma[c], shift = beta[c] - Float(m) * scale
            for n in 0..<images {
                let src = x + (n * C + c) * S, dst = out + (n * C + c) * S
                for i in 0..<S { dst[i] = src[i] * scale + shift }
            }
        }
    }

    /// Sums `sums` (its 2C per-channel sums, with this rank's value count in the last slot) over the ranks; returns
    /// the count of values they cover.
    private func reduceSums(values: Int, _ reducer: StatisticsReducer?) -> Double {
        sums[2 * channels] = Double(values)
        reducer?.sumOverRanks(sums)
        return sums[2 * channels]
    }

    /// Evaluation forward with the running statistics (no communication).
    public func forwardEvaluation(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ gamma: UnsafePointer<Float>,
                                  _ beta: UnsafePointer<Float>, images: Int, pixels: Int) {
        let C = channels, S = pixels
        for c in 0..<C {
            let scale = gamma[c] / (runningVariance[c] + batchNormEpsilon).squareRoot()
            let shift = beta[c] - runningMean[c] * scale
            for n in 0..<images {
                let src = x + (n * C + c) * S, dst = out + (n * C + c) * S
                for i in 0..<S { dst[i] = src[i] * scale + shift }
            }
        }
    }

    /// Backward of the last `forwardTraining` (same reducer), accumulating into dx, dγ, dβ.
    public func backward(_ dx: UnsafeMutablePointer<Float>, _ dGamma: UnsafeMutablePointer<Float>, _ dBeta: UnsafeMutablePointer<Float>,
                         _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ gamma: UnsafePointer<Float>,
                         images: Int, pixels: Int, reducer: StatisticsReducer?) {
        let C = channels, S = pixels
        // Phase 1: local Σdy and Σdy·x̂ per channel; the parameter gradients are their local values.
        for c in 0..<C {
            let m = mean[c], r = rstd[c]
            var s = 0.0, q = 0.0
            for n in 0..<images {
                let g = dy + (n * C + c) * S, xp = x + (n * C + c) * S
                for i in 0..<S {
                    s += Double(g[i])
                    q += Double(g[i] * (xp[i] - m) * r)
                }
            }
            dBeta[c] += Float(s)
            dGamma[c] += Float(q)
            sums[c] = s
            sums[C + c] = q
        }
        // Phase 2: the input gradient needs the sums over every value the statistics were taken over.
        let count = reduceSums(values: images * S, reducer)
        // Phase 3: dx.
        for c in 0..<C {
            let m = mean[c], r = rstd[c], k = gamma[c] * r
            let meanDy = Float(sums[c] / count), meanDyXhat = Float(sums[C + c] / count)
            for n in 0..<images {
                let g = dy + (n * C + c) * S, xp = x + (n * C + c) * S, d = dx + (n * C + c) * S
                for i in 0..<S { d[i] += k * (g[i] - meanDy - (xp[i] - m) * r * meanDyXhat) }
            }
        }
    }
}
