#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CDNNL

// The oneDNN side of GEMM.swift: the process-wide engine, status checks, one cached matmul primitive per shape with
// its memory objects, and grow-only scratch buffers.

/// Stops the process with the failing oneDNN call's name (a failure here is a bug or a broken install, not a
/// condition a caller could handle; a GEMM has no error to return in the middle of a training step).
func checkDNNL(_ status: dnnl_status_t, _ call: @autoclosure () -> String) {
    if status != dnnl_success {
        fatalError("oneDNN \(call()) failed: \(String(cString: dnnl_status2str(status))) (status \(status.rawValue))")
    }
}

/// The CPU engine, one per process (created on first use; an engine is safe to share between threads).
nonisolated(unsafe) let dnnlEngine: dnnl_engine_t = {
    var engine: dnnl_engine_t?
    checkDNNL(dnnl_engine_create(&engine, dnnl_cpu, 0), "dnnl_engine_create(cpu, 0)")
    return engine!
}()

/// What a cached primitive is keyed by: everything its creation depends on. alpha and beta are part of the
/// primitive in oneDNN 2.x (output scale and sum post-op), kept as bit patterns so the key is Hashable exactly.
struct GEMMKey: Hashable {
    var m, n, k, lda, ldb, ldc: Int
    var transposeA, transposeB: Bool
    var precision: GEMMPrecision
    var alphaBits, betaBits: UInt32
}

/// One oneDNN matmul C[M×N] = alpha·op(A)[M×K]·op(B)[K×N] (+ beta·C), created once per key with its three memory
/// objects (no data yet; each call points them at the caller's buffers) and a user-mode scratchpad.
final class DNNLMatmul {
    let primitive: dnnl_primitive_t
    let a, b, c: dnnl_memory_t
    let scratchpad: dnnl_memory_t?
    let scratchpadBytes: Int
    /// SRC, WEIGHTS, DST and SCRATCHPAD arguments, allocated once.
    let args: UnsafeMutablePointer<dnnl_exec_arg_t>
    let argCount: Int32

    /// nil when oneDNN has no implementation for this data type on this CPU (`dnnl_unimplemented`: bf16 without
    /// AVX-512); any other failure stops the process.
    init?(_ key: GEMMKey) {
        let type = key.precision == .bf16 ? dnnl_bf16 : dnnl_f32
        // Row-major op(A)[M×K]: (i, p) at i·lda + p, or p·lda + i when A is stored transposed (K×M); same for B.
        var aDesc = dnnl_memory_desc_t(), bDesc = dnnl_memory_desc_t(), cDesc = dnnl_memory_desc_t()
        checkDNNL(swt_dnnl_md_2d(&aDesc, Int64(key.m), Int64(key.k), key.transposeA ? 1 : Int64(key.lda),
                                 key.transposeA ? Int64(key.lda) : 1, type), "dnnl_memory_desc_init_by_strides(A)")
        checkDNNL(swt_dnnl_md_2d(&bDesc, Int64(key.k), Int64(key.n), key.transposeB ? 1 : Int64(key.ldb),
                                 key.transposeB ? Int64(key.ldb) : 1, type), "dnnl_memory_desc_init_by_strides(B)")
        checkDNNL(swt_dnnl_md_2d(&cDesc, Int64(key.m), Int64(key.n), Int64(key.ldc), 1, dnnl_f32),
                  "dnnl_memory_desc_init_by_strides(C)")
        var desc = dnnl_matmul_desc_t()
        checkDNNL(dnnl_matmul_desc_init(&desc, &aDesc, &bDesc, nil, &cDesc), "dnnl_matmul_desc_init")

        var attr: dnnl_primitive_attr_t?
        checkDNNL(dnnl_primitive_attr_create(&attr), "dnnl_primitive_attr_create")
        defer { dnnl_primitive_attr_destroy(attr) }
        // User scratchpad: the caller's grow-only buffer, so executing never allocates one.
        checkDNNL(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user),
                  "dnnl_primitive_attr_set_scratchpad_mode(user)")
        let alpha = Float(bitPattern: key.alphaBits), beta = Float(bitPattern: key.betaBits)
        if alpha != 1 {
            var scale = alpha  // output scale: applied to A·B before the post-ops, i.e. alpha·A·B
            checkDNNL(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale), "dnnl_primitive_attr_set_output_scales")
        }
        if beta != 0 {
            // Sum post-op: dst = (alpha·A·B) + beta·dst. Without it dst is only written, never read (beta = 0
            // overwrites NaN garbage, as BLAS does).
            var postOps: dnnl_post_ops_t?
            checkDNNL(dnnl_post_ops_create(&postOps), "dnnl_post_ops_create")
            defer { dnnl_post_ops_destroy(postOps) }
            checkDNNL(dnnl_post_ops_append_sum(postOps, beta), "dnnl_post_ops_append_sum")
            checkDNNL(dnnl_primitive_attr_set_post_ops(attr, postOps), "dnnl_primitive_attr_set_post_ops")
        }

        var pd: dnnl_primitive_desc_t?
        let created = withUnsafePointer(to: &desc) { dnnl_primitive_desc_create(&pd, $0, attr, dnnlEngine, nil) }
        if created == dnnl_unimplemented && key.precision == .bf16 { return nil }
        checkDNNL(created, "dnnl_primitive_desc_create(matmul \(key.m)×\(key.k)×\(key.n), \(key.precision))")
        defer { dnnl_primitive_desc_destroy(pd) }  // the primitive keeps what it needs

        var primitive: dnnl_primitive_t?
        checkDNNL(dnnl_primitive_create(&primitive, pd), "dnnl_primitive_create(matmul)")
        self.primitive = primitive!

        func memory(_ md: inout dnnl_memory_desc_t, _ name: String) -> dnnl_memory_t {
            var mem: dnnl_memory_t?
            checkDNNL(dnnl_memory_create(&mem, &md, dnnlEngine, nil), "dnnl_memory_create(\(name))")
            return mem!
        }
        a = memory(&aDesc, "A")
        b = memory(&bDesc, "B")
        c = memory(&cDesc, "C")
        args = .allocate(capacity: 4)
        args[0] = dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: a)
        args[1] = dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: b)
        args[2] = dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: c)
        guard let scratchMD = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0) else {
            fatalError("oneDNN dnnl_primitive_desc_query_md(scratchpad) returned nothing")
        }
        scratchpadBytes = dnnl_memory_desc_get_size(scratchMD)
        if scratchpadBytes > 0 {
            var md = scratchMD.pointee
            let mem = memory(&md, "scratchpad")
            scratchpad = mem
            args[3] = dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: mem)
            argCount = 4
        } else {
            scratchpad = nil
            argCount = 3
        }
    }

    deinit {
        for mem in [a, b, c, scratchpad].compactMap({ $0 }) { dnnl_memory_destroy(mem) }
        dnnl_primitive_destroy(primitive)
        args.deallocate()
    }

    /// Points the memory objects at this call's buffers and runs the primitive on `stream` (synchronous: the CPU
    /// stream is in order and the wait returns when C is written).
    func execute(stream: dnnl_stream_t, a: UnsafeRawPointer, b: UnsafeRawPointer, c: UnsafeMutablePointer<Float>,
                 scratch: UnsafeMutableRawPointer?) {
        checkDNNL(dnnl_memory_set_data_handle(self.a, UnsafeMutableRawPointer(mutating: a)), "dnnl_memory_set_data_handle(A)")
        checkDNNL(dnnl_memory_set_data_handle(self.b, UnsafeMutableRawPointer(mutating: b)), "dnnl_memory_set_data_handle(B)")
        checkDNNL(dnnl_memory_set_data_handle(self.c, c), "dnnl_memory_set_data_handle(C)")
        if let scratchpad { checkDNNL(dnnl_memory_set_data_handle(scratchpad, scratch), "dnnl_memory_set_data_handle(scratchpad)") }
        checkDNNL(dnnl_primitive_execute(primitive, stream, argCount, args), "dnnl_primitive_execute(matmul)")
        checkDNNL(dnnl_stream_wait(stream), "dnnl_stream_wait")
    }
}

/// A 64-byte-aligned buffer that only grows: after the largest shape has been seen once, `reserve` never allocates.
/// Each instance holds one element type (floats or bf16), never both.
final class GrowBuffer {
    private(set) var pointer: UnsafeMutableRawPointer?
    private(set) var bytes = 0

    func reserve(_ needed: Int) -> UnsafeMutableRawPointer {
        if needed > bytes || pointer == nil {
            free(pointer)
            var raw: UnsafeMutableRawPointer?
            let size = Swift.max(needed, 64)
            guard posix_memalign(&raw, 64, size) == 0, let raw else { fatalError("out of memory allocating \(size) bytes") }
            pointer = raw
            bytes = size
        }
        return pointer!
    }

    func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        reserve(count * 4).bindMemory(to: Float.self, capacity: count)
    }

    func bf16(_ count: Int) -> UnsafeMutablePointer<UInt16> {
        reserve(count * 2).bindMemory(to: UInt16.self, capacity: count)
    }

    deinit { free(pointer) }
}
