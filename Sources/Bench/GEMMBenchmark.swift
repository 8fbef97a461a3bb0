import Foundation
import Tensors

/// `swift-train bench --gemm`: GFLOP/s (2·M·N·K per product) of the GEMM layer's backends on one core, per shape.
extension Benchmarks {
    public struct GEMMShape: Sendable {
        public var name: String
        public var m, n, k: Int
        public var transposeA, transposeB: Bool
        /// 1 for the backward products, which accumulate into gradients; 0 for the forward ones.
        public var beta: Float

        /// "2048×256×768 NT" (M×K×N, then op(A) op(B)).
        public var label: String { "\(m)×\(k)×\(n) \(transposeA ? "T" : "N")\(transposeB ? "T" : "N")" }
    }

    /// The GPT's Linear products (B = 2048 rows, width 256: attention qkv 256→768, projection 256→256, MLP 256→1024
    /// and 1024→256), each as forward y = x·Wᵀ, input gradient dx = dy·W and weight gradient dW = dyᵀ·x; then 1024³.
    public static let gptGEMMShapes: [GEMMShape] = {
        let batch = 2048
        var shapes: [GEMMShape] = []
        for (name, inFeatures, outFeatures) in [("qkv", 256, 768), ("proj", 256, 256), ("mlp up", 256, 1024), ("mlp down", 1024, 256)] {
            shapes.append(GEMMShape(name: "\(name) forward", m: batch, n: outFeatures, k: inFeatures,
                                    transposeA: false, transposeB: true, beta: 0))
            shapes.append(GEMMShape(name: "\(name) dx", m: batch, n: inFeatures, k: outFeatures,
                                    transposeA: false, transposeB: false, beta: 1))
            shapes.append(GEMMShape(name: "\(name) dW", m: outFeatures, n: inFeatures, k: batch,
                                    transposeA: true, transposeB: false, beta: 1))
        }
        shapes.append(GEMMShape(name: "square", m: 1024, n: 1024, k: 1024, transposeA: false, transposeB: false, beta: 0))
        return shapes
    }()

    public struct GEMMResult: Sendable {
        public var shape: GEMMShape
        public var openBLAS, oneDNNFP32: Double
        /// bf16 operands given (the kernel alone) and fp32 operands rounded inside (conversion included).
        public var bf16, bf16WithConversion: Double
    }

    /// Median GFLOP/s of each backend on `shape`, one thread each. Every variant is warmed first (primitive
    /// creation and scratch growth are not timed), then the variants take turns, one timing each per round, so a
    /// slow phase of this shared machine hits them alike.
    public static func gemm(_ shape: GEMMShape, repeats: Int) -> GEMMResult {
        let (m, n, k) = (shape.m, shape.n, shape.k)
        let lda = shape.transposeA ? m : k, ldb = shape.transposeB ? k : n
        let a = FloatBuffer(count: m * k), b = FloatBuffer(count: k * n), c = FloatBuffer(count: m * n)
        var rng = SplitMix64(seed: 3)
        for i in 0..<a.count { a[i] = rng.uniform(-1, 1) }
        for i in 0..<b.count { b[i] = rng.uniform(-1, 1) }
        let a16 = UnsafeMutablePointer<UInt16>.allocate(capacity: a.count), b16 = UnsafeMutablePointer<UInt16>.allocate(capacity: b.count)
        defer { a16.deallocate(); b16.deallocate() }
        BF16.round(a.pointer, into: a16, count: a.count)
        BF16.round(b.pointer, into: b16, count: b.count)

        let openBLAS = GEMMContext(), oneDNN = GEMMContext()
        oneDNN.fp32Backend = .oneDNN
        // bf16 as the layers get it (default context): where oneDNN has no bf16 kernel the operands are widened and
        // multiplied by the default fp32 backend, OpenBLAS.
        let bf16 = GEMMContext()
        func fp32(_ context: GEMMContext) -> () -> Void {
            { context.gemm(.fp32, transposeA: shape.transposeA, transposeB: shape.transposeB, m: m, n: n, k: k,
                           a.pointer, lda: lda, b.pointer, ldb: ldb, beta: shape.beta, c.pointer, ldc: n) }
        }
        let variants: [() -> Void] = [
            fp32(openBLAS), fp32(oneDNN),
            { bf16.gemmBF16(transposeA: shape.transposeA, transposeB: shape.transposeB, m: m, n: n, k: k,
                            a16, lda: lda, b16, ldb: ldb, beta: shape.beta, c.pointer, ldc: n) },
            { bf16.gemm(.bf16, transposeA: shape.transposeA, transposeB: shape.transposeB, m: m, n: n, k: k,
                        a.pointer, lda: lda, b.pointer, ldb: ldb, beta: shape.beta, c.pointer, ldc: n) },
        ]
        for variant in variants { variant() }
        var times = [[Double]](repeating: [], count: variants.count)
        for _ in 0..<repeats {
            c.zero()  // beta = 1 grows C over the rounds; from zero each round it stays far from overflow
            for (v, variant) in variants.enumerated() {
                let t0 = monotonicNow()
                variant()
                times[v].append(monotonicNow() - t0)
            }
        }
        let flops = 2 * Double(m) * Double(n) * Double(k)
        let rates = times.map { flops / $0.sorted()[$0.count / 2] / 1e9 }
        return GEMMResult(shape: shape, openBLAS: rates[0], oneDNNFP32: rates[1], bf16: rates[2], bf16WithConversion: rates[3])
    }

    /// The table `swift-train bench --gemm` prints, one line per shape, and the JSON rows.
    public static func gemmTable(repeats: Int, print line: (String) -> Void) -> [String] {
        let native = GEMMContext().nativeBF16
        line("GEMM, one core, GFLOP/s (median of \(repeats)); CPU: \(CPUFeatures.summary); oneDNN bf16 "
             + (native ? "native" : "not available here: bf16 operands widened to fp32, run by OpenBLAS"))
        line("  product          M×K×N op     OpenBLAS fp32  oneDNN fp32  bf16 (gemmBF16)  bf16 incl. fp32→bf16")
        var rows: [String] = []
        for shape in gptGEMMShapes {
            let r = gemm(shape, repeats: repeats)
            line("  " + shape.name.padding(toLength: 16, withPad: " ", startingAt: 0) + " "
                 + shape.label.padding(toLength: 17, withPad: " ", startingAt: 0)
                 + String(format: "%8.1f %12.1f %14.1f %16.1f", r.openBLAS, r.oneDNNFP32, r.bf16, r.bf16WithConversion))
            rows.append("{\"shape\":\"\(shape.name)\",\"m\":\(shape.m),\"k\":\(shape.k),\"n\":\(shape.n),"
                        + "\"transpose_a\":\(shape.transposeA),\"transpose_b\":\(shape.transposeB),\"beta\":\(shape.beta),"
                        + "\"openblas_fp32\":\(r.openBLAS),\"onednn_fp32\":\(r.oneDNNFP32),\"onednn_bf16\":\(r.bf16),"
                        + "\"bf16_with_conversion\":\(r.bf16WithConversion),\"bf16_native\":\(native)}")
        }
        return rows
    }
}
