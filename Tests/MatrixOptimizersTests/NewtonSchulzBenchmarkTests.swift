import Foundation
import XCTest
import Optimizers
import Tensors

/// Newton–Schulz throughput against plain sgemm on one BLAS thread. Opt-in (timing on a shared 2-core machine is
/// noisy): `MATRIX_BENCH=1 swift test --filter NewtonSchulzBenchmarkTests`; `MATRIX_BENCH_N` sets the size (default
/// 1024). The GEMMs dominate, so a debug build measures nearly the same ratio as a release one.
final class NewtonSchulzBenchmarkTests: XCTestCase {
    func bestSeconds(repeats: Int, _ body: () -> Void) -> Double {
        var best = Double.infinity
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return best
    }

    func testNewtonSchulzReachesEightyPercentOfSGEMM() throws {
        let env = ProcessInfo.processInfo.environment
        guard env["MATRIX_BENCH"] != nil else { throw XCTSkip("set MATRIX_BENCH=1 to run the benchmark") }
        let n = Int(env["MATRIX_BENCH_N"] ?? "") ?? 1024
        let threads = BLASThreads.current
        BLASThreads.set(1)
        defer { BLASThreads.set(threads) }
        var rng = TestRNG(seed: 1)
        let a = FloatBuffer(rng.array(n * n)), b = FloatBuffer(rng.array(n * n)), c = FloatBuffer(count: n * n)
        let gemmSeconds = bestSeconds(repeats: 5) {
            sgemm(transposeA: false, transposeB: false, m: n, n: n, k: n, alpha: 1, a.pointer, lda: n, b.pointer,
                  ldb: n, beta: 0, c.pointer, ldc: n)
        }
        let gemmRate = 2 * pow(Double(n), 3) / gemmSeconds / 1e9
        let ns = NewtonSchulz(rows: n, cols: n)
        let nsSeconds = bestSeconds(repeats: 3) { ns.orthogonalize(a.pointer, into: c.pointer) }
        let nsRate = ns.flopsPerCall / nsSeconds / 1e9
        print(String(format: "[bench] %d×%d: sgemm %.1f GFLOP/s (%.4f s); NS %.1f GFLOP/s (%.4f s per call, "
                     + "%.1f GFLOP); ratio %.3f", n, n, gemmRate, gemmSeconds, nsRate, nsSeconds,
                     ns.flopsPerCall / 1e9, nsRate / gemmRate))
        XCTAssertGreaterThanOrEqual(nsRate / gemmRate, 0.8)
    }
}
