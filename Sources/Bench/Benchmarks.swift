import Foundation
import Training
import Optimizers
import Tensors

/// Micro-benchmarks behind `swift-train bench`: each result is a median over repeated runs, measured beside the
/// hardware reference it is compared with (memory copy bandwidth, sgemm GFLOP/s) in the same process.
public enum Benchmarks {
    /// One BLAS thread: the targets compare against one core's bandwidth and sgemm rate.
    public static func useOneCore() { BLASThreads.set(1) }

    /// Median of `repeats` timings of `body` (seconds), after one warm-up call.
    public static func median(repeats: Int, _ body: () -> Void) -> Double {
        body()
        var times: [Double] = []
        for _ in 0..<repeats {
            let t0 = monotonicNow()
            body()
            times.append(monotonicNow() - t0)
        }
        times.sort()
        return times[times.count / 2]
    }

    static func monotonicNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Memory copy bandwidth in bytes per second, counting bytes read plus bytes written (2 × 4n per copy).
    public static func copyBandwidth(elements n: Int, repeats: Int) -> Double {
        let src = FloatBuffer(count: n), dst = FloatBuffer(count: n)
        src.fill(1)
        let s = median(repeats: repeats) { memcpy(dst.pointer, src.pointer, n * 4) }
        return Double(2 * 4 * n) / s
    }

    public struct OptimizerResult: Sendable {
        public var name: String
        /// Median over repetitions of (optimizer bytes/s) / (copy bytes/s), each pair timed back to back so both
        /// see the same machine load.
        public var ratioToCopy: Double
        public var elementsPerSecond: Double
        /// Bytes read + written per second, counting parameters, gradients and every state buffer once each way.
        public var bytesPerSecond: Double
        public var bytesPerElement: Int
    }

    /// One optimizer update over `n` elements (one tensor, one segment), median time; each repetition is paired
    /// with a memory copy of the same length timed right before it.
    public static func optimizerUpdate(_ name: String, elements n: Int, repeats: Int) -> OptimizerResult {
        var table = ParameterTable()
        let rows = 4096
        let entry = table.add("w", shape: [rows, n / rows], role: .matrix)
        let segments = [ParamSegment(range: 0..<entry.count, tensor: entry, tensorIndex: 0, weightDecay: 0.01)]
        let optimizer = OptimizerCatalog.make(name, count: entry.count, segments: segments, config: ResolvedConfig())
        let params = FloatBuffer(count: entry.count), grads = FloatBuffer(count: entry.count)
        var rng = SplitMix64(seed: 1)
        for i in 0..<entry.count { params[i] = rng.uniform(-1, 1); grads[i] = rng.uniform(-1e-2, 1e-2) }
        let context = StepContext(lr: 1e-3)
        let src = FloatBuffer(count: entry.count), dst = FloatBuffer(count: entry.count)
        src.fill(1)
        let update = {
            optimizer.update(params: params.buffer, grads: UnsafeBufferPointer(grads.buffer), segments: segments, context: context)
        }
        update()
        memcpy(dst.pointer, src.pointer, entry.count * 4)
        var times: [Double] = [], ratios: [Double] = []
        // Reads: θ, g, each state; writes: θ, each state.
        let stateBuffers = optimizer.state.count
        let bytesPerElement = 4 * ((2 + stateBuffers) + (1 + stateBuffers))
        for _ in 0..<repeats {
            var t0 = monotonicNow()
            memcpy(dst.pointer, src.pointer, entry.count * 4)
            let copy = monotonicNow() - t0
            t0 = monotonicNow()
            update()
            let t = monotonicNow() - t0
            times.append(t)
            ratios.append((Double(bytesPerElement) / t) / (8 / copy))
        }
        times.sort(); ratios.sort()
        let s = times[times.count / 2]
        return OptimizerResult(name: name, ratioToCopy: ratios[ratios.count / 2], elementsPerSecond: Double(entry.count) / s,
                               bytesPerSecond: Double(bytesPerElement * entry.count) / s, bytesPerElement: bytesPerElement)
    }

    /// sgemm GFLOP/s for an n×n×n product (2n³ flops).
    public static func sgemmGFLOPs(n: Int, repeats: Int) -> Double {
        let a = FloatBuffer(count: n * n), b = FloatBuffer(count: n * n), c = FloatBuffer(count: n * n)
        a.fill(0.5); b.fill(0.25)
        let s = median(repeats: repeats) {
            Tensors.gemm(.fp32, transposeA: false, transposeB: false, m: n, n: n, k: n, alpha: 1, a.pointer, lda: n, b.pointer, ldb: n,
                  beta: 0, c.pointer, ldc: n)
        }
        return 2 * Double(n) * Double(n) * Double(n) / s / 1e9
    }

    /// Newton–Schulz (5 quintic steps) GFLOP/s on a rows×cols matrix, counting GEMM flops.
    public static func newtonSchulzGFLOPs(rows: Int, cols: Int, repeats: Int) -> (gflops: Double, seconds: Double) {
        let ns = NewtonSchulz(rows: rows, cols: cols)
        let g = FloatBuffer(count: rows * cols), out = FloatBuffer(count: rows * cols)
        var rng = SplitMix64(seed: 2)
        for i in 0..<g.count { g[i] = rng.uniform(-1, 1) }
        let s = median(repeats: repeats) { ns.orthogonalize(g.pointer, into: out.pointer) }
        return (Double(ns.flopsPerCall) / s / 1e9, s)
    }
}
