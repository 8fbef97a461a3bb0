import Foundation
import Tensors
import XCTest

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

final class GEMMTests: XCTestCase {
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
