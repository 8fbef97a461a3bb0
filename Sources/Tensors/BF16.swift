#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CDNNL
import CKernels

/// bfloat16 as UInt16 bit patterns (the high half of an IEEE float32: 8 exponent bits, 7 stored significand bits),
/// converted by the C kernels in CKernels (AVX512-BF16 where present, else vectorised integer rounding; every path
/// gives the same bits). Callers of `GEMMContext.gemmBF16` round their operands with `round`.
public enum BF16 {
    /// dst[i] = bf16(src[i]) for i < count: round to nearest even; NaN stays NaN, overflow gives ±inf, subnormals
    /// round like any other value.
    public static func round(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<UInt16>, count: Int) {
        swt_f32_to_bf16(dst, src, count)
    }

    /// dst[i] = Float(src[i]) for i < count (exact).
    public static func widen(_ src: UnsafePointer<UInt16>, into dst: UnsafeMutablePointer<Float>, count: Int) {
        swt_bf16_to_f32(dst, src, count)
    }

    /// OpenMP's thread limit on the calling thread (what oneDNN will use here), or nil without an OpenMP runtime.
    public static var openMPMaxThreads: Int? {
        let n = swt_openmp_max_threads()
        return n < 0 ? nil : Int(n)
    }
}

/// Rows of a strided fp32 matrix rounded into a dense bf16 one (one kernel call when the rows are contiguous).
func roundRows(_ src: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int, into dst: UnsafeMutablePointer<UInt16>) {
    if ld == cols { swt_f32_to_bf16(dst, src, rows * cols); return }
    for r in 0..<rows { swt_f32_to_bf16(dst + r * cols, src + r * ld, cols) }
}

/// Rows of a strided bf16 matrix widened into a dense fp32 one (exact).
func widenRows(_ src: UnsafePointer<UInt16>, rows: Int, cols: Int, ld: Int, into dst: UnsafeMutablePointer<Float>) {
    if ld == cols { swt_bf16_to_f32(dst, src, rows * cols); return }
    for r in 0..<rows { swt_bf16_to_f32(dst + r * cols, src + r * ld, cols) }
}

/// One contiguous, 64-byte-aligned allocation of bf16 values (UInt16 bit patterns), zero-filled: activations and
/// weights kept rounded for the products that read them more than once.
public final class BF16Buffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<UInt16>

    public init(count: Int) {
        self.count = count
        pointer = allocateZeroed(UInt16.self, count: count, zero: 0)
    }

    deinit { free(pointer) }

    public var byteCount: Int { count * MemoryLayout<UInt16>.stride }
}
