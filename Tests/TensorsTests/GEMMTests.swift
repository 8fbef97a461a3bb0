import Foundation
import Tensors
import XCTest

// MARK: - Naive twins

/// Reference GEMM: C = alpha·op(A)·op(B) + beta·C, row-major with leading dimensions, every sum in double.
/// Only the M×N block of C is written, so padding columns (ldc > N) must come back untouched.
func naiveGEMM(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, _ a: [Float], lda: Int,
               _ b: [Float], ldb: Int, beta: Float, _ c: inout [Float], ldc: Int) {
    for i in 0..<m {
        for j in 0..<n {
            var acc = 0.0
            for p in 0..<k {
                let x = transposeA ? a[p * lda + i] : a[i * lda + p]
                let y = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                acc += Double(x) * Double(y)
            }
            let old = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])  // beta 0 never reads C (NaN there)
            c[i * ldc + j] = Float(Double(alpha) * acc + old)
        }
    }
}

/// Value of a bf16 bit pattern's magnitude in double, with the pattern after the largest finite one (0x7F80,
/// infinity) standing for 2¹²⁸ — where round-to-nearest puts the overflow threshold.
private func bf16Magnitude(_ bits: UInt16) -> Double {
    let e = Int((bits >> 7) & 0xFF), f = Double(bits & 0x7F)
    if e == 0 { return f / 128 * pow(2, -126) }
    if e == 255 { return pow(2, 128) }
    return (1 + f / 128) * pow(2, Double(e - 127))
}

/// Naive twin of `BF16.round` for one value, by definition rather than the bit trick: of the two bf16 neighbours of
/// |x| (truncated, and one step up) take the nearer, on a tie the one with an even last bit; distances in double
/// (exact for these magnitudes). NaN: sign and top payload kept, quiet bit set.
func roundToBF16Naive(_ x: Float) -> UInt16 {
    let bits = x.bitPattern
    if x.isNaN { return UInt16(bits >> 16) | 0x0040 }
    if x.isInfinite { return UInt16(bits >> 16) }
    let down = UInt16(bits >> 16), up = down &+ 1  // same sign bit: one step up in magnitude
    let v = abs(Double(x))
    let dDown = v - bf16Magnitude(down & 0x7FFF), dUp = bf16Magnitude(up & 0x7FFF) - v
    if dDown < dUp { return down }
    if dUp < dDown { return up }
    return down & 1 == 0 ? down : up
}

/// Naive twin of `BF16.widen`: the bf16 bits are the float's high half.
func widenBF16Naive(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

/// Unit roundoff: fp32 (24-bit significand) and bf16 (8-bit significand), round to nearest.
private let u32 = 0x1p-24, u16 = 0x1p-8

final class GEMMTests: XCTestCase {
    private func random(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in rng.uniform(-1, 1) }
    }

    private func roundedThroughBF16(_ x: [Float]) -> [Float] {
        var h = [UInt16](repeating: 0, count: x.count), back = [Float](repeating: 0, count: x.count)
        BF16.round(x, into: &h, count: x.count)
        BF16.widen(h, into: &back, count: x.count)
        return back
    }

    /// One product through `context` against the double reference. Operands and C are stored with padding
    /// (lda, ldb, ldc beyond the used width; padding holds a sentinel that must survive). With beta = 0 C starts as
    /// NaN, which must be overwritten. Error allowed per element: |alpha|·bound·Σ_p|a_ip||b_pj| + 2u₃₂|beta·c_ij|.
    /// `referenceOnRounded`: the reference multiplies the operands rounded to bf16. Returns max |err| / Σ|a||b|.
    @discardableResult
    private func check(_ context: GEMMContext, _ precision: GEMMPrecision, bf16Operands: Bool = false,
                       transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, pad: (Int, Int, Int),
                       alpha: Float = 1, beta: Float, referenceOnRounded: Bool, bound: Double,
                       seed: UInt64, file: StaticString = #filePath, line: UInt = #line) -> Double {
        let (rowsA, colsA) = transposeA ? (k, m) : (m, k), (rowsB, colsB) = transposeB ? (n, k) : (k, n)
        let lda = colsA + pad.0, ldb = colsB + pad.1, ldc = n + pad.2
        let sentinel: Float = 12345
        var a = random(rowsA * lda, seed: seed), b = random(rowsB * ldb, seed: seed + 1)
        for r in 0..<rowsA { for j in colsA..<lda { a[r * lda + j] = sentinel } }  // padding must never be read
        for r in 0..<rowsB { for j in colsB..<ldb { b[r * ldb + j] = sentinel } }
        var c0 = beta == 0 ? [Float](repeating: .nan, count: m * ldc) : random(m * ldc, seed: seed + 2)
        for r in 0..<m { for j in n..<ldc { c0[r * ldc + j] = sentinel } }
        let ra = referenceOnRounded ? roundedThroughBF16(a) : a, rb = referenceOnRounded ? roundedThroughBF16(b) : b
        var reference = c0, out = c0
        naiveGEMM(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, ra, lda: lda,
                  rb, ldb: ldb, beta: beta, &reference, ldc: ldc)
        if bf16Operands {
            var a16 = [UInt16](repeating: 0, count: a.count), b16 = [UInt16](repeating: 0, count: b.count)
            BF16.round(a, into: &a16, count: a.count)
            BF16.round(b, into: &b16, count: b.count)
            context.gemmBF16(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a16, lda: lda,
                             b16, ldb: ldb, beta: beta, &out, ldc: ldc)
        } else {
            context.gemm(precision, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                         a, lda: lda, b, ldb: ldb, beta: beta, &out, ldc: ldc)
        }
        var worst = 0.0
        let what = "\(precision) \(transposeA ? "T" : "N")\(transposeB ? "T" : "N") \(m)×\(k)×\(n) beta \(beta)"
        for i in 0..<m {
            for j in 0..<ldc {
                let got = out[i * ldc + j], want = reference[i * ldc + j]
                if j >= n { XCTAssertEqual(got, sentinel, "\(what): C padding written", file: file, line: line); continue }
                var scale = 0.0
                for p in 0..<k {
                    let x = transposeA ? a[p * lda + i] : a[i * lda + p], y = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                    scale += abs(Double(x) * Double(y))
                }
                let err = abs(Double(got) - Double(want))
                let old = beta == 0 ? 0 : abs(Double(beta) * Double(c0[i * ldc + j]))  // 0·NaN is NaN
                let tolerance = Double(abs(alpha)) * bound * scale + 2 * u32 * old
                XCTAssertLessThanOrEqual(err, tolerance, "\(what) at (\(i), \(j)): \(got) vs \(want)", file: file, line: line)
                worst = max(worst, err / scale)
            }
        }
        return worst
    }

    /// fp32 accumulation bound: any summation order of K products, plus the alpha and beta steps, errs by at most
    /// (K + 2)·u₃₂·Σ|a||b| (first order; K·u₃₂ ≪ 1). Index or transpose mistakes give errors of order Σ|a||b| itself.
    private func fp32Bound(_ k: Int) -> Double { Double(k + 2) * u32 }

    private let shapes = [(m: 37, n: 53, k: 19), (m: 33, n: 65, k: 257)]

    /// Both fp32 backends, four transpose combinations, beta 0 and 1, padded leading dimensions, odd sizes.
    func testFP32MatchesNaiveForEveryTransposeAndBeta() {
        for backend in GEMMBackend.allCases {
            let context = GEMMContext()
            context.fp32Backend = backend
            var seed: UInt64 = 100
            for s in shapes { for ta in [false, true] { for tb in [false, true] { for beta: Float in [0, 1] {
                seed += 3
                check(context, .fp32, transposeA: ta, transposeB: tb, m: s.m, n: s.n, k: s.k, pad: (3, 5, 2),
                      beta: beta, referenceOnRounded: false, bound: fp32Bound(s.k), seed: seed)
            } } } }
            XCTAssertEqual(backend == .oneDNN ? context.counters.oneDNNCalls : context.counters.openBLASCalls, 16)
        }
    }

    /// alpha through oneDNN's output scale and a general beta through the sum post-op's scale.
    func testAlphaAndGeneralBeta() {
        for backend in GEMMBackend.allCases {
            let context = GEMMContext()
            context.fp32Backend = backend
            check(context, .fp32, transposeA: true, transposeB: false, m: 21, n: 17, k: 40, pad: (1, 0, 3), alpha: -0.5,
                  beta: 0.75, referenceOnRounded: false, bound: fp32Bound(40), seed: 7)
            check(context, .bf16, transposeA: false, transposeB: true, m: 21, n: 17, k: 40, pad: (0, 2, 0), alpha: 2,
                  beta: 1, referenceOnRounded: true, bound: fp32Bound(40), seed: 8)
        }
    }

    /// bf16 products against the double reference on the same bf16-rounded operands: only fp32 accumulation error
    /// remains, so the fp32 bound applies. Both entry points (fp32 operands rounded inside; bf16 operands given),
    /// padded and dense leading dimensions.
    func testBF16MatchesReferenceOnRoundedOperands() {
        for backend in GEMMBackend.allCases {
            let context = GEMMContext()
            context.fp32Backend = backend  // used by the widened path where oneDNN has no bf16 kernel
            var seed: UInt64 = 300
            for s in shapes { for ta in [false, true] { for tb in [false, true] { for beta: Float in [0, 1] {
                seed += 3
                for given in [false, true] {
                    check(context, .bf16, bf16Operands: given, transposeA: ta, transposeB: tb, m: s.m, n: s.n, k: s.k,
                          pad: given ? (2, 1, 4) : (0, 0, 0), beta: beta, referenceOnRounded: true,
                          bound: fp32Bound(s.k), seed: seed)
                }
            } } } }
        }
    }

    /// `GEMMOperand`: an operand rounded once by the caller (kept with its own leading dimension, as the GPT keeps
    /// activations) gives the product of rounding it at the call, for either operand and every transpose. The
    /// rounded values are identical, so only the summation order oneDNN picks for another leading dimension may
    /// differ: the fp32 accumulation bound, relative to Σ|a||b|.
    func testPreRoundedOperandsGiveTheProductOfRoundingAtTheCall() {
        let context = GEMMContext()
        let (m, n, k) = (19, 23, 67)
        for ta in [false, true] { for tb in [false, true] { for preRoundA in [false, true] {
            let (rowsA, colsA) = ta ? (k, m) : (m, k), (rowsB, colsB) = tb ? (n, k) : (k, n)
            let lda = colsA + 3, ldb = colsB + 1
            var rng = SplitMix64(seed: 900 + (ta ? 4 : 0) + (tb ? 2 : 0) + (preRoundA ? 1 : 0))
            let a = (0..<(rowsA * lda)).map { _ in Float(rng.normal()) }, b = (0..<(rowsB * ldb)).map { _ in Float(rng.normal()) }
            var a16 = [UInt16](repeating: 0, count: a.count), b16 = [UInt16](repeating: 0, count: b.count)
            BF16.round(a, into: &a16, count: a.count)
            BF16.round(b, into: &b16, count: b.count)
            var atCall = [Float](repeating: 0, count: m * n), given = atCall
            context.gemm(.bf16, transposeA: ta, transposeB: tb, m: m, n: n, k: k, a, lda: lda, b, ldb: ldb, &atCall, ldc: n)
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                a16.withUnsafeBufferPointer { a16p in b16.withUnsafeBufferPointer { b16p in
                    let opA: GEMMOperand = preRoundA ? .bf16(a16p.baseAddress!) : .fp32(ap.baseAddress!)
                    let opB: GEMMOperand = preRoundA ? .fp32(bp.baseAddress!) : .bf16(b16p.baseAddress!)
                    given.withUnsafeMutableBufferPointer { cp in
                        context.gemm(.bf16, transposeA: ta, transposeB: tb, m: m, n: n, k: k, opA, lda: lda, opB,
                                     ldb: ldb, cp.baseAddress!, ldc: n)
                    }
                } }
            } }
            for i in 0..<m { for j in 0..<n {
                var scale = 0.0
                for p in 0..<k {
                    let x = ta ? a[p * lda + i] : a[i * lda + p], y = tb ? b[j * ldb + p] : b[p * ldb + j]
                    scale += abs(Double(x) * Double(y))
                }
                XCTAssertLessThanOrEqual(abs(Double(given[i * n + j]) - Double(atCall[i * n + j])), fp32Bound(k) * scale,
                                         "ta \(ta) tb \(tb) pre-rounded \(preRoundA ? "A" : "B") at (\(i), \(j))")
            } }
        } } }
    }

    /// bf16 products against the fp32 reference on the unrounded operands. Each operand is off by a relative
    /// δ ≤ u = 2⁻⁸ after rounding, so each product by ≤ 2u + u²; with fp32 accumulation on top the error per output
    /// is ≤ (2u + u² + (K + 2)·u₃₂)·Σ|a||b|. The rounding must also show: a worst relative error below u/32 would mean
    /// the operands were not rounded to bf16 at all (expected ≈ 0.7u/√K per element, the worst of ~2000 about 3× that).
    func testBF16WithinRoundingBoundOfFP32Reference() {
        let context = GEMMContext()
        for s in shapes { for ta in [false, true] { for tb in [false, true] {
            let worst = check(context, .bf16, transposeA: ta, transposeB: tb, m: s.m, n: s.n, k: s.k, pad: (1, 2, 3),
                              beta: 1, referenceOnRounded: false,
                              bound: 2 * u16 + u16 * u16 + fp32Bound(s.k) * (1 + 2 * u16), seed: 500)
            XCTAssertGreaterThan(worst, u16 / 32, "bf16 result indistinguishable from fp32: operands not rounded?")
        } } }
    }

    /// The same shape twice hits the cache (no new primitive) and still gives the right answer for new data; a new
    /// beta is a new primitive. bf16 where oneDNN lacks a kernel is counted as widened, never as a primitive.
    func testRepeatedShapeReusesThePrimitive() {
        let context = GEMMContext()
        context.fp32Backend = .oneDNN
        for seed: UInt64 in [1, 2] {
            check(context, .fp32, transposeA: false, transposeB: true, m: 37, n: 53, k: 19, pad: (0, 0, 0), beta: 0,
                  referenceOnRounded: false, bound: fp32Bound(19), seed: seed)
        }
        XCTAssertEqual(context.counters.primitivesCreated, 1)
        XCTAssertEqual(context.counters.oneDNNCalls, 2)
        check(context, .fp32, transposeA: false, transposeB: true, m: 37, n: 53, k: 19, pad: (0, 0, 0), beta: 1,
              referenceOnRounded: false, bound: fp32Bound(19), seed: 3)
        XCTAssertEqual(context.counters.primitivesCreated, 2)

        let native = context.nativeBF16  // creates the probe primitive when native
        let before = context.counters
        for seed: UInt64 in [4, 5] {
            check(context, .bf16, transposeA: true, transposeB: false, m: 37, n: 53, k: 19, pad: (0, 0, 0), beta: 1,
                  referenceOnRounded: true, bound: fp32Bound(19), seed: seed)
        }
        // One new primitive either way: the bf16 one where native, else the f32 one the widened operands run on
        // (fp32Backend is oneDNN here); both calls ran on it.
        XCTAssertEqual(context.counters.primitivesCreated - before.primitivesCreated, 1)
        XCTAssertEqual(context.counters.widenedBF16Calls - before.widenedBF16Calls, native ? 0 : 2)
        XCTAssertEqual(context.counters.oneDNNCalls - before.oneDNNCalls, 2)
    }

    /// K = 0: no products, C = beta·C (and C = 0 for beta 0, even over NaN); empty M or N touch nothing.
    func testEmptyInnerDimensionScalesC() {
        let context = GEMMContext()
        var c: [Float] = [1, 2, .nan, 4]
        context.gemm(m: 2, n: 2, k: 0, [0], lda: 1, [0], ldb: 2, beta: 0.5, &c, ldc: 2)
        XCTAssertEqual(c[0], 0.5); XCTAssertEqual(c[1], 1); XCTAssertTrue(c[2].isNaN); XCTAssertEqual(c[3], 2)
        context.gemm(.bf16, m: 2, n: 2, k: 0, [0], lda: 1, [0], ldb: 2, beta: 0, &c, ldc: 2)
        XCTAssertEqual(c, [0, 0, 0, 0])
        c = [7]
        context.gemm(m: 0, n: 1, k: 3, [0], lda: 3, [0, 0, 0], ldb: 1, beta: 0, &c, ldc: 1)
        XCTAssertEqual(c, [7])
    }

    /// oneDNN runs on one OpenMP thread by default: the context sets it on the calling thread before its first
    /// primitive; a context asking for 2 threads sets 2.
    func testOneDNNThreadCount() throws {
        guard BF16.openMPMaxThreads != nil else { throw XCTSkip("oneDNN built without OpenMP") }
        for threads in [2, 1] {
            let context = GEMMContext(threads: threads)
            context.fp32Backend = .oneDNN
            check(context, .fp32, transposeA: false, transposeB: false, m: 8, n: 8, k: 8, pad: (0, 0, 0), beta: 0,
                  referenceOnRounded: false, bound: fp32Bound(8), seed: 9)
            XCTAssertEqual(BF16.openMPMaxThreads, threads)
        }
    }

    /// oneDNN must have a native bf16 kernel where the CPU has bf16 instructions, and has none without AVX-512.
    func testNativeBF16FollowsTheCPU() {
        let native = GEMMContext().nativeBF16
        if CPUFeatures.avx512BF16 || CPUFeatures.amxBF16 { XCTAssertTrue(native, CPUFeatures.summary) }
        if !CPUFeatures.avx512F { XCTAssertFalse(native, CPUFeatures.summary) }
    }

    /// cpuid against the kernel's view in /proc/cpuinfo (Linux), and the validation message naming the features.
    func testCPUFeaturesAgreeWithProcCPUInfo() throws {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else {
            throw XCTSkip("no /proc/cpuinfo")
        }
        let flags = Set(flagsLine.split(separator: ":")[1].split(separator: " ").map(String.init))
        XCTAssertEqual(CPUFeatures.avx512F, flags.contains("avx512f"))
        XCTAssertEqual(CPUFeatures.avx512BF16, flags.contains("avx512_bf16"))
        XCTAssertEqual(CPUFeatures.amxBF16, flags.contains("amx_bf16"))
        if let message = CPUFeatures.bf16Unsupported() {
            XCTAssertFalse(CPUFeatures.avx512BF16 || CPUFeatures.amxBF16)
            XCTAssertTrue(message.contains("AVX512-BF16") && message.contains("AMX-BF16"), message)
        } else {
            XCTAssertTrue(CPUFeatures.avx512BF16 || CPUFeatures.amxBF16)
        }
    }

    // MARK: - bf16 conversion kernels against their twins

    private func roundKernel(_ x: [Float]) -> [UInt16] {
        var h = [UInt16](repeating: 0, count: x.count)
        BF16.round(x, into: &h, count: x.count)
        return h
    }

    /// Fixed cases with the expected bits written out: ties to even both ways, NaNs (including ones whose payload
    /// lies only in the dropped half, which naive rounding turns into infinity), infinities, overflow, subnormals.
    func testRoundToBF16EdgeCases() {
        let cases: [(UInt32, UInt16, String)] = [
            (0x3F80_0000, 0x3F80, "1"),
            (0x3F80_8000, 0x3F80, "tie, even below: down"),
            (0x3F81_8000, 0x3F82, "tie, odd below: up"),
            (0x3F80_8001, 0x3F81, "above the tie: up"),
            (0x3F80_7FFF, 0x3F80, "below the tie: down"),
            (0xBF81_8000, 0xBF82, "negative tie: up in magnitude"),
            (0x3FFF_8000, 0x4000, "tie carrying into the exponent"),
            (0x7F7F_7FFF, 0x7F7F, "largest finite bf16"),
            (0x7F7F_8000, 0x7F80, "tie at the top: overflow to inf"),
            (0x7F7F_FFFF, 0x7F80, "FLT_MAX: overflow to inf"),
            (0x7F80_0000, 0x7F80, "+inf"),
            (0xFF80_0000, 0xFF80, "-inf"),
            (0x7FC0_0000, 0x7FC0, "quiet NaN"),
            (0x7F80_0001, 0x7FC0, "signalling NaN, payload below bit 16"),
            (0x7F80_FFFF, 0x7FC0, "NaN that truncation+carry would turn into inf"),
            (0xFFFF_FFFF, 0xFFFF, "negative NaN, full payload"),
            (0x0000_0000, 0x0000, "+0"),
            (0x8000_0000, 0x8000, "-0"),
            (0x0000_0001, 0x0000, "smallest subnormal: rounds to 0"),
            (0x0000_8000, 0x0000, "subnormal tie, even below: 0"),
            (0x0001_8000, 0x0002, "subnormal tie, odd below: up"),
            (0x0000_8001, 0x0001, "subnormal above the tie: smallest bf16 subnormal"),
            (0x007F_FFFF, 0x0080, "largest subnormal: rounds to the smallest normal"),
            (0x8000_8001, 0x8001, "negative subnormal"),
        ]
        // Padded to 40 values so the vector bodies (16 and 8 wide) see them too, not only the scalar tail.
        var inputs = cases.map { Float(bitPattern: $0.0) }
        inputs += inputs.prefix(40 - inputs.count)
        let got = roundKernel(inputs)
        for (i, (bits, want, what)) in cases.enumerated() {
            XCTAssertEqual(got[i], want, "\(what): 0x\(String(bits, radix: 16)) → 0x\(String(got[i], radix: 16))")
            XCTAssertEqual(got[i + cases.count < 40 ? i + cases.count : i], want, "\(what) (second lane)")
            XCTAssertEqual(roundToBF16Naive(Float(bitPattern: bits)), want, "twin: \(what)")
        }
    }

    /// Every bf16 high half with the low halves that matter (0, just below/at/above the tie, all ones), plus random
    /// bit patterns, against the twin; odd lengths and offsets so every vector body and tail runs.
    func testRoundToBF16MatchesTwinOnManyValues() {
        var inputs: [Float] = []
        for high in 0..<UInt32(65536) {
            for low: UInt32 in [0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF] {
                inputs.append(Float(bitPattern: high << 16 | low))
            }
        }
        var rng = SplitMix64(seed: 42)
        for _ in 0..<200_000 { inputs.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
        let got = roundKernel(inputs)
        var mismatches = 0
        for (x, h) in zip(inputs, got) where h != roundToBF16Naive(x) {
            mismatches += 1
            if mismatches <= 5 { XCTFail("0x\(String(x.bitPattern, radix: 16)) → 0x\(String(h, radix: 16)), twin 0x\(String(roundToBF16Naive(x), radix: 16))") }
        }
        XCTAssertEqual(mismatches, 0)
        for (offset, count) in [(0, 1), (1, 15), (3, 17), (5, 33), (7, 1031)] {
            let slice = Array(inputs[(offset * 4099)..<(offset * 4099 + count)])
            XCTAssertEqual(roundKernel(slice), slice.map(roundToBF16Naive), "length \(count)")
        }
    }

    /// Widening all 65536 patterns is exact (NaN payloads included), and rounding a widened value gives it back.
    func testWidenBF16IsExactAndRoundTrips() {
        let all = (0..<65536).map { UInt16($0) }
        var wide = [Float](repeating: 0, count: all.count)
        BF16.widen(all, into: &wide, count: all.count)
        for (h, f) in zip(all, wide) { XCTAssertEqual(f.bitPattern, widenBF16Naive(h).bitPattern) }
        let back = roundKernel(wide)
        for (h, r) in zip(all, back) {
            let isNaN = h & 0x7F80 == 0x7F80 && h & 0x7F != 0
            // A quiet NaN returns as itself; a signalling one comes back quieted; everything else unchanged.
            XCTAssertEqual(r, isNaN ? h | 0x0040 : h, "0x\(String(h, radix: 16))")
        }
    }
}
