import CKernels

/// What this CPU offers the bf16 GEMM path, from cpuid (`swt_cpu_features` in CKernels), each feature counted only
/// when the OS has enabled its registers (XCR0). cpuid rather than /proc/cpuinfo: it works in any container or OS.
public enum CPUFeatures {
    static let bits = swt_cpu_features()

    public static var avx512F: Bool { bits & SWT_CPU_AVX512F != 0 }
    /// AVX512-BF16 (VCVTNEPS2BF16, VDPBF16PS): Intel Cooper Lake and Sapphire Rapids on, AMD Zen 4 on.
    public static var avx512BF16: Bool { bits & SWT_CPU_AVX512_BF16 != 0 }
    /// AMX-BF16 tile multiplies: Intel Sapphire Rapids on.
    public static var amxBF16: Bool { bits & SWT_CPU_AMX_BF16 != 0 }

    /// nil when the bf16 GEMM can run at bf16 speed here (AVX512-BF16 or AMX-BF16 present), else a message naming
    /// what is missing, for configuration validation to reject `precision: bf16` before a run starts. Without
    /// either feature `GEMMContext` still computes bf16 products correctly (the operands widened to fp32), but no
    /// faster than fp32, so a bf16 run would only lose accuracy.
    public static func bf16Unsupported() -> String? {
        if avx512BF16 || amxBF16 { return nil }
        return "bf16 precision needs AVX512-BF16 (cpuid flag avx512_bf16) or AMX-BF16 (amx_bf16); this CPU has "
            + (avx512F ? "AVX-512F but neither" : "neither (nor AVX-512F)")
    }

    /// One line for logs and `swift-train bench`: e.g. "avx512f avx512_bf16" or "no avx512f, avx512_bf16, amx_bf16".
    public static var summary: String {
        let named = [("avx512f", avx512F), ("avx512_bf16", avx512BF16), ("amx_bf16", amxBF16)]
        let present = named.filter { $0.1 }.map { $0.0 }
        return present.isEmpty ? "no avx512f, avx512_bf16, amx_bf16" : present.joined(separator: " ")
    }
}
