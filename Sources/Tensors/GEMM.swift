#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CBLAS
import CDNNL

// General matrix products for the layers, in fp32 or bf16 mixed precision (issue 13), row-major like
// cblas_sgemm(CblasRowMajor, …):
//   C[M×N] = alpha · op(A)[M×K] · op(B)[K×N] + beta · C
//   op(A) = A stored M×K (row stride lda ≥ K), or Aᵀ with A stored K×M (lda ≥ M); op(B) likewise with ldb;
//   C stored M×N, ldc ≥ N.
// The GPT's products (B = 2048 rows in a batch; Linear weights W[O×I]):
//   forward    y[B×O]  = x[B×I] · W[O×I]ᵀ          transposeB
//   backward   dx[B×I] = dy[B×O] · W[O×I]           no transpose, beta 1 (accumulates)
//              dW[O×I] = dy[B×O]ᵀ · x[B×I]          transposeA, beta 1
//
// fp32 backend, measured (`swift-train bench --gemm`, one thread, GFLOP/s, OpenBLAS 0.3.21 cblas_sgemm vs oneDNN
// 2.6.3 f32 matmul) on two machines:
//   AMD EPYC Zen 3 (AVX2): oneDNN at most ~8 % faster on some forward shapes, up to 2× slower on the transposed-A
//     weight gradients (1024×2048×256 TN 67.3 vs 31.6, 256×2048×1024 TN 76.4 vs 34.9).
//   AMD Zen 4 (AVX-512): two sittings disagree — oneDNN 1–13 % faster on 10 of the GPT's 12 shapes in one
//     (2048×1024×256 NT 92.2 vs 104.6), 30–35 % slower on 1024×2048×256 TN (58.7 vs 41.5) and 2048×256×1024 NN
//     (79.8 vs 51.4) in the other.
// No backend wins every shape on both, so fp32 stays on OpenBLAS (`GEMMContext.fp32Backend`, settable for
// comparisons); on Zen 4 the fp32 path is not what users of speed run — bf16 is, at 170–200 GFLOP/s.
//
// bf16: A and B are bf16 (UInt16 bit patterns, the high half of an IEEE float), products and sums fp32, C fp32.
// oneDNN runs it natively where it has a bf16 kernel (AVX-512 CPUs; fast with AVX512-BF16 or AMX-BF16, see
// CPUFeatures). Where it has none (an AVX2 machine: dnnl_primitive_desc_create returns dnnl_unimplemented) the
// operands are widened to fp32 (exact) and multiplied by the fp32 backend: the same numbers up to summation order,
// no faster than fp32 — so configuration should reject bf16 there (CPUFeatures.bf16Unsupported()), while tests of
// the numerics still run everywhere.
//
// Threads: one per rank by default. Debian's libdnnl uses OpenMP (libgomp); the context sets omp_set_num_threads
// (`threads`, default 1) on the calling thread before creating or running a primitive whenever omp_get_max_threads
// differs (OpenMP keeps the count per thread, so a new calling thread or another context's setting is corrected). OPENBLAS_NUM_THREADS / BLASThreads govern the
// OpenBLAS paths as before.
//
// Not thread-safe, by design: one caller per thread. `GEMMContext.current` is the calling thread's (created on first
// use), so a rank's model and optimizer share one primitive cache, and simulated ranks running on threads of one
// process never share a context.

public enum GEMMPrecision: String, Sendable, CaseIterable {
    /// fp32 operands, fp32 accumulation.
    case fp32
    /// Operands rounded to bf16 (8-bit significand, round to nearest even), products and sums in fp32, fp32 C.
    case bf16
}

/// A matrix operand of `gemm`: fp32 values (rounded to bf16 at the product when the precision is bf16), or values
/// already rounded to bf16 — an activation, gradient or weight rounded once and read by several products (the GPT's
/// `x` feeds the forward product and the weight gradient; `dy` the input and the weight gradient).
public enum GEMMOperand {
    case fp32(UnsafePointer<Float>)
    case bf16(UnsafePointer<UInt16>)

    /// The operand `elements` further on (a row or column offset into the same matrix).
    @inline(__always) public func advanced(by elements: Int) -> GEMMOperand {
        switch self {
        case .fp32(let p): return .fp32(p + elements)
        case .bf16(let p): return .bf16(p + elements)
        }
    }

    /// The models' "round once" step: in bf16 rounds `count` values into their bf16 copy and returns the copy as
    /// the operand (read again later with `stored`); in fp32 (or without a copy) the fp32 values themselves.
    @inline(__always) public static func rounding(_ values: UnsafePointer<Float>, into copy: UnsafeMutablePointer<UInt16>?,
                                                  count: Int, in precision: GEMMPrecision) -> GEMMOperand {
        guard precision == .bf16, let copy else { return .fp32(values) }
        BF16.round(values, into: copy, count: count)
        return .bf16(UnsafePointer(copy))
    }

    /// A value rounded earlier by `rounding` (or written as bf16 by a fused kernel): its bf16 copy in bf16, the
    /// fp32 values otherwise (or without a copy).
    @inline(__always) public static func stored(_ values: UnsafePointer<Float>, _ copy: UnsafePointer<UInt16>?,
                                                in precision: GEMMPrecision) -> GEMMOperand {
        guard precision == .bf16, let copy else { return .fp32(values) }
        return .bf16(copy)
    }
}

/// The library that multiplies fp32 operands (and bf16 operands widened to fp32 where oneDNN has no bf16 kernel).
public enum GEMMBackend: String, Sendable, CaseIterable {
    case openBLAS, oneDNN
}

/// What a context has done, for tests and benchmarks (the cache path shows as calls without new primitives).
public struct GEMMCounters: Sendable, Equatable {
    /// oneDNN primitives created (cache misses; each takes about a millisecond).
    public var primitivesCreated = 0
    public var oneDNNCalls = 0
    public var openBLASCalls = 0
    /// bf16 products computed on fp32-widened operands because oneDNN has no bf16 kernel on this CPU.
    public var widenedBF16Calls = 0
}

/// The state behind `gemm`: the oneDNN stream, the primitive cache and grow-only scratch buffers.
/// `@unchecked Sendable` only so `shared` can be a global: one thread at a time may use a context.
public final class GEMMContext: @unchecked Sendable {
    /// The calling thread's context (created on first use, released with the thread).
    public static var current: GEMMContext {
        if let raw = pthread_getspecific(currentKey) { return Unmanaged<GEMMContext>.fromOpaque(raw).takeUnretainedValue() }
        let context = GEMMContext()
        pthread_setspecific(currentKey, Unmanaged.passRetained(context).toOpaque())
        return context
    }

    /// The fp32 library; OpenBLAS by default (measured above).
    public var fp32Backend: GEMMBackend = .openBLAS
    /// OpenMP threads oneDNN may use for this context's calls.
    public let threads: Int
    public private(set) var counters = GEMMCounters()

    private let stream: dnnl_stream_t
    private enum Cached { case dnnl(DNNLMatmul), widened }
    private var cache: [GEMMKey: Cached] = [:]
    private let scratchpad = GrowBuffer()
    private let roundedA = GrowBuffer(), roundedB = GrowBuffer()  // bf16 copies of fp32 operands
    private let wideA = GrowBuffer(), wideB = GrowBuffer()        // fp32 copies of bf16 operands (no bf16 kernel)

    public init(threads: Int = 1) {
        precondition(threads >= 1, "GEMMContext needs at least one thread, got \(threads)")
        self.threads = threads
        var stream: dnnl_stream_t?
        checkDNNL(dnnl_stream_create(&stream, dnnlEngine, dnnl_stream_default_flags.rawValue), "dnnl_stream_create")
        self.stream = stream!
    }

    deinit { dnnl_stream_destroy(stream) }

    /// C = alpha·op(A)·op(B) + beta·C with fp32 operands. `.bf16` rounds A and B to bf16 first (into scratch kept
    /// for the next call) and multiplies them as `gemmBF16` does.
    public func gemm(_ precision: GEMMPrecision = .fp32, transposeA: Bool = false, transposeB: Bool = false,
                     m: Int, n: Int, k: Int, alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int,
                     _ b: UnsafePointer<Float>, ldb: Int, beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        gemm(precision, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, .fp32(a),
             lda: lda, .fp32(b), ldb: ldb, beta: beta, c, ldc: ldc)
    }

    /// C = alpha·op(A)·op(B) + beta·C on operands that may already be bf16: `.fp32` operands are used as they are
    /// in fp32 and rounded (into scratch kept for the next call) in bf16; `.bf16` operands need `precision` bf16.
    public func gemm(_ precision: GEMMPrecision, transposeA: Bool = false, transposeB: Bool = false,
                     m: Int, n: Int, k: Int, alpha: Float = 1, _ a: GEMMOperand, lda: Int, _ b: GEMMOperand, ldb: Int,
                     beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        if precision == .fp32 {
            guard case .fp32(let a32) = a, case .fp32(let b32) = b else {
                preconditionFailure("gemm: a bf16 operand in an fp32 product")
            }
            guard checkShape(transposeA, transposeB, m, n, k, lda, ldb, ldc, beta, c) else { return }
            fp32Product(transposeA, transposeB, m, n, k, alpha, a32, lda, b32, ldb, beta, c, ldc)
            return
        }
        guard checkShape(transposeA, transposeB, m, n, k, lda, ldb, ldc, beta, c) else { return }
        // op(A) is stored rowsA×colsA with stride lda; a copy rounded here is dense (stride colsA).
        let (rowsA, colsA) = transposeA ? (k, m) : (m, k), (rowsB, colsB) = transposeB ? (n, k) : (k, n)
        func bf16(_ x: GEMMOperand, _ rows: Int, _ cols: Int, _ ld: Int, _ scratch: GrowBuffer) -> (UnsafePointer<UInt16>, Int) {
            switch x {
            case .bf16(let p): return (p, ld)
            case .fp32(let p):
                let rounded = scratch.bf16(rows * cols)
                roundRows(p, rows: rows, cols: cols, ld: ld, into: rounded)
                return (UnsafePointer(rounded), cols)
            }
        }
        let (a16, lda16) = bf16(a, rowsA, colsA, lda, roundedA), (b16, ldb16) = bf16(b, rowsB, colsB, ldb, roundedB)
        bf16Product(transposeA, transposeB, m, n, k, alpha, a16, lda16, b16, ldb16, beta, c, ldc)
    }

    /// C = alpha·op(A)·op(B) + beta·C with bf16 operands (the caller rounded them, e.g. with `BF16.round`),
    /// fp32 accumulation and output.
    public func gemmBF16(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                         _ a: UnsafePointer<UInt16>, lda: Int, _ b: UnsafePointer<UInt16>, ldb: Int,
                         beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard checkShape(transposeA, transposeB, m, n, k, lda, ldb, ldc, beta, c) else { return }
        bf16Product(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    /// Whether oneDNN multiplies bf16 natively here (false: bf16 operands are widened to fp32). Probed once with a
    /// 16×16×16 primitive, which then stays in the cache.
    public var nativeBF16: Bool {
        let key = GEMMKey(m: 16, n: 16, k: 16, lda: 16, ldb: 16, ldc: 16, transposeA: false, transposeB: false,
                          precision: .bf16, alphaBits: Float(1).bitPattern, betaBits: Float(0).bitPattern)
        if case .dnnl = cached(key) { return true }
        return false
    }

    // MARK: - Paths

    /// Preconditions as BLAS states them; handles the empty cases (false: nothing left to multiply).
    private func checkShape(_ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int, _ lda: Int,
                            _ ldb: Int, _ ldc: Int, _ beta: Float, _ c: UnsafeMutablePointer<Float>) -> Bool {
        precondition(m >= 0 && n >= 0 && k >= 0, "gemm: negative size \(m)×\(k)×\(n)")
        precondition(lda >= Swift.max(1, transposeA ? m : k), "gemm: lda \(lda) < \(transposeA ? m : k)")
        precondition(ldb >= Swift.max(1, transposeB ? k : n), "gemm: ldb \(ldb) < \(transposeB ? k : n)")
        precondition(ldc >= Swift.max(1, n), "gemm: ldc \(ldc) < \(n)")
        if m == 0 || n == 0 { return false }
        if k == 0 {  // no products: C = beta·C (oneDNN rejects an empty K)
            for row in 0..<m {
                let r = c + row * ldc
                if beta == 0 { r.update(repeating: 0, count: n) } else if beta != 1 { for j in 0..<n { r[j] *= beta } }
            }
            return false
        }
        return true
    }

    private func fp32Product(_ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                             _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                             _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        switch fp32Backend {
        case .openBLAS:
            counters.openBLASCalls += 1
            cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        case .oneDNN:
            let key = GEMMKey(m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, transposeA: transposeA,
                              transposeB: transposeB, precision: .fp32, alphaBits: alpha.bitPattern,
                              betaBits: beta.bitPattern)
            guard case .dnnl(let matmul) = cached(key) else { fatalError("oneDNN has no f32 matmul") }
            run(matmul, a, b, c)
        }
    }

    private func bf16Product(_ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                             _ a: UnsafePointer<UInt16>, _ lda: Int, _ b: UnsafePointer<UInt16>, _ ldb: Int,
                             _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        let key = GEMMKey(m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, transposeA: transposeA,
                          transposeB: transposeB, precision: .bf16, alphaBits: alpha.bitPattern,
                          betaBits: beta.bitPattern)
        switch cached(key) {
        case .dnnl(let matmul):
            run(matmul, a, b, c)
        case .widened:
            counters.widenedBF16Calls += 1
            let (rowsA, colsA) = transposeA ? (k, m) : (m, k), (rowsB, colsB) = transposeB ? (n, k) : (k, n)
            let a32 = wideA.floats(rowsA * colsA), b32 = wideB.floats(rowsB * colsB)
            widenRows(a, rows: rowsA, cols: colsA, ld: lda, into: a32)
            widenRows(b, rows: rowsB, cols: colsB, ld: ldb, into: b32)
            fp32Product(transposeA, transposeB, m, n, k, alpha, a32, colsA, b32, colsB, beta, c, ldc)
        }
    }

    private func run(_ matmul: DNNLMatmul, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ c: UnsafeMutablePointer<Float>) {
        useThreads()
        counters.oneDNNCalls += 1
        let scratch = matmul.scratchpadBytes > 0 ? scratchpad.reserve(matmul.scratchpadBytes) : nil
        matmul.execute(stream: stream, a: a, b: b, c: c, scratch: scratch)
    }

    /// The primitive for `key`, created on first use (bf16 without a oneDNN kernel is remembered as `.widened`).
    private func cached(_ key: GEMMKey) -> Cached {
        if let hit = cache[key] { return hit }
        useThreads()  // some oneDNN kernels choose their blocking for the thread count at creation
        let entry: Cached
        if let matmul = DNNLMatmul(key) {
            counters.primitivesCreated += 1
            entry = .dnnl(matmul)
        } else {
            entry = .widened
        }
        cache[key] = entry
        return entry
    }

    /// OpenMP's thread count is per calling thread (and another context may have changed it): reading it back is a
    /// thread-local load, so it is checked on every call and set when it differs.
    private func useThreads() {
        if swt_openmp_max_threads() != Int32(threads) { _ = swt_openmp_set_num_threads(Int32(threads)) }
    }
}

/// The thread-specific slot behind `GEMMContext.current`; its destructor releases a thread's context when the thread ends.
private let currentKey: pthread_key_t = {
    var key = pthread_key_t()
    let status = pthread_key_create(&key) { raw in
        #if canImport(Darwin)
        Unmanaged<GEMMContext>.fromOpaque(raw).release()
        #else
        if let raw { Unmanaged<GEMMContext>.fromOpaque(raw).release() }
        #endif
    }
    precondition(status == 0, "pthread_key_create failed (\(status))")
    return key
}()

/// C = alpha·op(A)·op(B) + beta·C in `precision`, row-major (the layers' and optimizers' one entry point): fp32 goes
/// straight to OpenBLAS's cblas_sgemm (the measured faster fp32 backend, no cache lookup); bf16 rounds A and B to
/// bf16 and multiplies them on the calling thread's `GEMMContext` (fp32 accumulation and output). Rounding an operand
/// costs one pass over it, under 0.5 % of the product for the layers' shapes (K ≥ 256), so a weight already rounded
/// once per step (its values exact in bf16) rounds to itself here at that cost.
public func gemm(_ precision: GEMMPrecision, transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
                 alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                 beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
    switch precision {
    case .fp32:
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    case .bf16:
        GEMMContext.current.gemm(.bf16, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                                 a, lda: lda, b, ldb: ldb, beta: beta, c, ldc: ldc)
    }
}

/// `gemm` on operands that may already be rounded to bf16 (see `GEMMOperand`), on the calling thread's context;
/// fp32 operands in an fp32 product go straight to OpenBLAS as above.
public func gemm(_ precision: GEMMPrecision, transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
                 alpha: Float = 1, _ a: GEMMOperand, lda: Int, _ b: GEMMOperand, ldb: Int,
                 beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
    if case .fp32(let a32) = a, case .fp32(let b32) = b {
        gemm(precision, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a32, lda: lda,
             b32, ldb: ldb, beta: beta, c, ldc: ldc)
        return
    }
    GEMMContext.current.gemm(precision, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                             a, lda: lda, b, ldb: ldb, beta: beta, c, ldc: ldc)
}
