// Over 400 lines: every property test of the whole-matrix optimizers (Muon, Newton–Schulz, Shampoo) in one suite,
// sharing its matrix helpers.

import XCTest
import Optimizers
import Tensors

/// Deterministic pseudo-random floats in [-1, 1) (tests only).
struct TestRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> Float {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return Float(state >> 40) / Float(1 << 23) - 1
    }
    mutating func array(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
}

/// C = A·Bᵀ in double (A m×k, B n×k), for checks.
func gramDouble(_ a: [Float], rows: Int, cols: Int) -> [Double] {
    var c = [Double](repeating: 0, count: rows * rows)
    for i in 0..<rows {
        for j in 0..<rows {
            var acc = 0.0
            for k in 0..<cols { acc += Double(a[i * cols + k]) * Double(a[j * cols + k]) }
            c[i * rows + j] = acc
        }
    }
    return c
}

final class NewtonSchulzTests: XCTestCase {
    /// Keller quintic on scalar singular values (optimizers.md oracles), via diagonal matrices whose Frobenius norm
    /// is exactly 1 so normalisation leaves the diagonal unchanged. Both orientations.
    func testKellerQuinticScalarOracles() {
        let oracles: [(Float, Float)] = [(1e-3, 0.4705), (1e-2, 0.6989), (0.1, 0.7121), (0.5, 0.7654)]
        var diag = oracles.map(\.0)
        diag.append((1 - diag.reduce(0) { $0 + $1 * $1 }).squareRoot())   // pad to ‖G‖_F = 1
        let s = diag.count
        for (rows, cols) in [(s, s + 3), (s + 3, s)] {
            var g = [Float](repeating: 0, count: rows * cols)
            for i in 0..<s { g[i * cols + i] = diag[i] }
            let ns = NewtonSchulz(rows: rows, cols: cols, steps: 5, coefficients: .quintic, eps: 0)
            var out = [Float](repeating: .nan, count: rows * cols)
            ns.orthogonalize(g, into: &out)
            for (i, (sigma, expected)) in oracles.enumerated() {
                XCTAssertEqual(out[i * cols + i], expected, accuracy: 1e-4, "σ = \(sigma), \(rows)×\(cols)")
            }
            // Off-diagonal stays exactly zero for a diagonal input.
            for r in 0..<rows { for c in 0..<cols where r != c { XCTAssertEqual(out[r * cols + c], 0) } }
        }
        // σ = 1: a 1×1 matrix normalises to exactly 1.
        let one = NewtonSchulz(rows: 1, cols: 1, steps: 5, coefficients: .quintic, eps: 0)
        var out: Float = .nan
        one.orthogonalize([3.5], into: &out)
        XCTAssertEqual(out, 0.6964, accuracy: 1e-4)
    }

    func testZeroMatrixReturnsZeros() {
        for coefficients in NewtonSchulzCoefficients.allCases {
            for (rows, cols) in [(6, 10), (10, 4), (5, 5)] {
                let ns = NewtonSchulz(rows: rows, cols: cols, coefficients: coefficients)
                let zeros = [Float](repeating: 0, count: rows * cols)
                var out = [Float](repeating: .nan, count: rows * cols)
                ns.orthogonalize(zeros, into: &out)
                XCTAssert(out.allSatisfy { $0 == 0 }, "\(coefficients) \(rows)×\(cols): \(out.prefix(4))")
            }
        }
    }

    /// Polar Express ends much closer to an orthogonal factor than the quintic: compare ‖OOᵀ − I‖_F / √S
    /// (the RMS of σᵢ² − 1) on a random 32×64 matrix (normalised σ_min ≈ 0.05). numpy float64 gives, for 5 steps,
    /// quintic 0.40 vs Polar Express 0.17 (σ in [0.88, 1.12]); for 6 steps 0.30 vs 0.002.
    func testPolarExpressIsCloserToOrthogonalThanQuintic() {
        let rows = 32, cols = 64
        var rng = TestRNG(seed: 7)
        let g = rng.array(rows * cols)
        func deviation(_ coefficients: NewtonSchulzCoefficients, steps: Int) -> (rms: Double, maxDiag: Double) {
            let ns = NewtonSchulz(rows: rows, cols: cols, steps: steps, coefficients: coefficients)
            var out = [Float](repeating: 0, count: rows * cols)
            ns.orthogonalize(g, into: &out)
            let gram = gramDouble(out, rows: rows, cols: cols)
            var sum = 0.0, maxDiag = 0.0
            for i in 0..<rows {
                for j in 0..<rows {
                    let d = gram[i * rows + j] - (i == j ? 1 : 0)
                    sum += d * d
                    if i == j { maxDiag = max(maxDiag, abs(d)) }
                }
            }
            return ((sum / Double(rows)).squareRoot(), maxDiag)
        }
        for steps in [5, 6] {
            let quintic = deviation(.quintic, steps: steps), polar = deviation(.polarExpress, steps: steps)
            print("[ns] \(steps) steps, RMS(σ²−1): quintic \(quintic.rms), polar express \(polar.rms)")
            XCTAssertGreaterThan(quintic.rms, 0.2, "the quintic is not expected to converge")
            XCTAssertLessThan(polar.rms, quintic.rms / (steps == 5 ? 2 : 50))
            XCTAssertLessThan(polar.maxDiag, quintic.maxDiag)
        }
    }

    /// Newton–Schulz with bf16 GEMM operands (`optimizer.ns_precision: bf16`) against the fp32 path, on a 64×192
    /// matrix, wide and tall. Orthogonality error e = RMS over rows of ‖XXᵀ − I‖ (in double, as
    /// `testPolarExpressIsCloserToOrthogonalThanQuintic`). Rounding the operands of each product perturbs it by
    /// ≈ u = 2⁻⁸ relative, and Polar Express contracts towards orthogonality, so the bf16 iterate settles at a floor
    /// of about u instead of fp32's ~1e-7: bound e_bf16 ≤ e_fp32 + 4u (measured 4.6e-3 ≈ 1.2u), and ‖X₁₆ − X₃₂‖ ≤
    /// 4u relative (measured 1.9u). The quintic does not converge (singular values end in ≈ [0.68, 1.13] by design)
    /// and amplifies perturbations near σ = 0 by its slope 3.4 per step, so its bounds are wider: e within 8u·e_fp32
    /// of fp32's (measured 1.6u) and ‖X₁₆ − X₃₂‖ ≤ 12u relative (measured 7u).
    func testBF16NewtonSchulzOrthogonality() {
        let short = 64, long = 192
        var rng = TestRNG(seed: 11)
        let g = rng.array(short * long)
        let u = pow(2.0, -8.0)
        for tall in [false, true] {
            let (rows, cols) = tall ? (long, short) : (short, long)
            func run(_ coefficients: NewtonSchulzCoefficients, _ precision: GEMMPrecision, steps: Int) -> (e: Double, x: [Float]) {
                let ns = NewtonSchulz(rows: rows, cols: cols, steps: steps, coefficients: coefficients, precision: precision)
                var out = [Float](repeating: 0, count: rows * cols)
                ns.orthogonalize(g, into: &out)
                // Gram of the short side: XXᵀ (wide) or XᵀX (tall, via the transpose).
                var wide = out
                if tall { for i in 0..<rows { for j in 0..<cols { wide[j * rows + i] = out[i * cols + j] } } }
                let gram = gramDouble(wide, rows: short, cols: long)
                var sum = 0.0
                for i in 0..<short { for j in 0..<short { let d = gram[i * short + j] - (i == j ? 1 : 0); sum += d * d } }
                return ((sum / Double(short)).squareRoot(), out)
            }
            func distance(_ a: [Float], _ b: [Float]) -> Double {
                var d = 0.0, n = 0.0
                for (x, y) in zip(a, b) { d += Double(x - y) * Double(x - y); n += Double(y) * Double(y) }
                return (d / n).squareRoot()
            }
            let polar32 = run(.polarExpress, .fp32, steps: 8), polar16 = run(.polarExpress, .bf16, steps: 8)
            let quintic32 = run(.quintic, .fp32, steps: 5), quintic16 = run(.quintic, .bf16, steps: 5)
            print("[ns bf16] \(tall ? "tall" : "wide") \(rows)×\(cols): polar express e fp32 \(polar32.e) bf16 \(polar16.e); " +
                  "quintic e fp32 \(quintic32.e) bf16 \(quintic16.e); ‖X16 − X32‖/‖X32‖ polar \(distance(polar16.x, polar32.x)) " +
                  "quintic \(distance(quintic16.x, quintic32.x))")
            XCTAssertLessThanOrEqual(polar16.e, polar32.e + 4 * u, "Polar Express in bf16 stays near-orthogonal")
            XCTAssertGreaterThan(polar16.e, polar32.e, "bf16 rounding is visible above the fp32 floor (the bf16 path ran)")
            XCTAssertEqual(quintic16.e, quintic32.e, accuracy: 8 * u * quintic32.e, "the quintic's band is kept in bf16")
            XCTAssertLessThanOrEqual(distance(polar16.x, polar32.x), 4 * u)
            XCTAssertLessThanOrEqual(distance(quintic16.x, quintic32.x), 12 * u)
        }
    }

    /// Tall and wide orientations are transposes of each other.
    func testTallIsTransposeOfWide() {
        let rows = 7, cols = 12
        var rng = TestRNG(seed: 3)
        let g = rng.array(rows * cols)
        var gT = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows { for c in 0..<cols { gT[c * rows + r] = g[r * cols + c] } }
        var wide = [Float](repeating: 0, count: rows * cols), tall = wide
        NewtonSchulz(rows: rows, cols: cols).orthogonalize(g, into: &wide)
        NewtonSchulz(rows: cols, cols: rows).orthogonalize(gT, into: &tall)
        for r in 0..<rows {
            for c in 0..<cols { XCTAssertEqual(wide[r * cols + c], tall[c * rows + r], accuracy: 1e-5) }
        }
    }

    /// alpha/beta fuse the caller's update: out = alpha·NS(g) + beta·out.
    func testAlphaBetaFusion() {
        var rng = TestRNG(seed: 11)
        let g = rng.array(24), base = rng.array(24)
        let ns = NewtonSchulz(rows: 4, cols: 6)
        var plain = [Float](repeating: 0, count: 24)
        ns.orthogonalize(g, into: &plain)
        var fused = base
        ns.orthogonalize(g, into: &fused, alpha: -0.3, beta: 0.9)
        for i in 0..<24 { XCTAssertEqual(fused[i], 0.9 * base[i] - 0.3 * plain[i], accuracy: 1e-6) }
    }

    func testFlopCount() {
        let ns = NewtonSchulz(rows: 10, cols: 6, steps: 5)
        XCTAssertEqual(ns.flopsPerCall, 5 * (4 * 36 * 10 + 2 * 216))
        XCTAssertEqual(NewtonSchulz(rows: 1024, cols: 1024).flopsPerCall, 5 * 6 * pow(1024, 3))
    }

    func testPolarExpressSchedule() {
        let first = NewtonSchulzCoefficients.polarExpress.triple(step: 0)
        XCTAssertEqual(first.a, 8.28721201814563 / 1.01, accuracy: 1e-12)
        XCTAssertEqual(first.b, -23.595886519098837 / pow(1.01, 3), accuracy: 1e-12)
        XCTAssertEqual(first.c, 17.300387312530933 / pow(1.01, 5), accuracy: 1e-12)
        let last = NewtonSchulzCoefficients.polarExpress.triple(step: 7)
        XCTAssert(last == (1.875, -1.25, 0.375), "last triple is unscaled")
        XCTAssert(NewtonSchulzCoefficients.polarExpress.triple(step: 12) == (1.875, -1.25, 0.375))
        XCTAssert(NewtonSchulzCoefficients.quintic.triple(step: 3) == (3.4445, -4.7750, 2.0315))
    }
}

final class MuonTests: XCTestCase {
    func testValidationRejectsNon2DTensorByName() {
        var table = ParameterTable()
        let w = table.add("layers.0.weight", shape: [4, 3], role: .matrix)
        let b = table.add("layers.0.bias", shape: [4], role: .bias)
        let conv = table.add("conv.weight", shape: [2, 3, 3, 3], role: .matrix)
        XCTAssertNil(Muon.validate(tensor: w))
        let message = Muon.validate(tensor: b)
        XCTAssertNotNil(message)
        XCTAssert(message?.contains("layers.0.bias") == true, message ?? "")
        XCTAssert(message?.contains("[4]") == true, message ?? "")
        XCTAssert(Muon.validate(tensor: conv)?.contains("conv.weight") == true)
        // A slice of a matrix (element sharding) is rejected too.
        let partial = ParamSegment(range: 0..<6, tensor: w, tensorIndex: 0, weightDecay: 0)
        XCTAssert(Muon.validate(segment: partial)?.contains("layers.0.weight") == true)
        XCTAssertNil(Muon.validate(segment: ParamSegment(range: 0..<12, tensor: w, tensorIndex: 0, weightDecay: 0)))
    }

    /// A zero gradient on the first step: momentum stays 0, NS(0) = 0, so θ is only decayed, with no NaN.
    func testZeroGradientFirstStepOnlyDecays() {
        var table = ParameterTable()
        table.add("w", shape: [3, 5], role: .matrix)
        var rng = TestRNG(seed: 5)
        let start = rng.array(15)
        let params = FloatBuffer(start), grads = FloatBuffer(count: 15)
        let muon = Muon.make(count: 15)
        let segs = makeSegments(table: table, owned: 0..<15, weightDecay: { _ in 0.1 })
        muon.update(params: params.buffer, grads: UnsafeBufferPointer(grads.buffer), segments: segs,
                    context: StepContext(lr: 0.5))
        for i in 0..<15 { XCTAssertEqual(params[i], start[i] * (1 - 0.05), accuracy: 1e-7) }
    }

    /// match_rms: the update of an exactly orthogonal-ish factor has RMS ≈ 0.2·√max / √max = 0.2 when NS converges;
    /// with Polar Express (close to orthogonal) the per-step update RMS is close to 0.2·γ.
    func testMatchRMSScaleGivesUpdateRMSNearPointTwo() {
        let rows = 16, cols = 48
        var table = ParameterTable()
        table.add("w", shape: [rows, cols], role: .matrix)
        var rng = TestRNG(seed: 9)
        let grads = FloatBuffer(rng.array(rows * cols))
        let params = FloatBuffer(count: rows * cols)
        let muon = Muon.make(count: rows * cols, ["ns_steps": 8, "ns_coefficients": "polar_express", "muon_scale": "match_rms"])
        let segs = makeSegments(table: table, owned: 0..<(rows * cols), weightDecay: { _ in 0 })
        muon.update(params: params.buffer, grads: UnsafeBufferPointer(grads.buffer), segments: segs,
                    context: StepContext(lr: 1))
        let rms = (params.array.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(rows * cols)).squareRoot()
        XCTAssertEqual(rms, 0.2, accuracy: 0.01)
        XCTAssertEqual(muon.updateScale(rows: rows, cols: cols), 0.2 * Float(48).squareRoot(), accuracy: 1e-6)
        let original = Muon.make(count: 1, ["muon_scale": "original"])
        XCTAssertEqual(original.updateScale(rows: 12, cols: 3), 2, accuracy: 1e-6)
        XCTAssertEqual(original.updateScale(rows: 3, cols: 12), 1)
    }

    func testDefaults() {
        let h = Muon.make(count: 1).hyper
        XCTAssertEqual(h.momentum, 0.95)
        XCTAssertTrue(h.nesterov)
        XCTAssertEqual(h.nsSteps, 5)
        XCTAssertEqual(h.eps, 1e-7)
        XCTAssertEqual(h.nsCoefficients, .quintic)
        XCTAssertEqual(h.scale, .original)
        XCTAssertEqual(Muon.defaultLearningRate, 1e-3)
        XCTAssertEqual(Muon.defaultWeightDecay, 0.1)
        XCTAssertEqual(Muon.make(count: 4).stateNames, ["momentum_buffer"])
    }
}

final class TrustRatioTests: XCTestCase {
    /// w [4, 5] matrix, v [5, 3] matrix, b [4] bias: 20 + 15 + 4 = 39 elements.
    static func table() -> ParameterTable {
        var t = ParameterTable()
        t.add("w", shape: [4, 5], role: .matrix)
        t.add("v", shape: [5, 3], role: .matrix)
        t.add("b", shape: [4], role: .bias)
        return t
    }

    func makeOptimizer(_ kind: String, count: Int) -> TensorNormOptimizer {
        kind == "lars" ? LARS.make(count: count, ["trust_coefficient": 0.1])
            : LAMB.make(count: count, ["max_trust_ratio": 5.0])
    }

    /// Two owners of a split tensor (as element sharding produces), partial sums added, give the unsharded
    /// result; using only the local partial sums (the ZeRO bug) gives a different one.
    func testShardedSplitMatchesWholeTensor() {
        for kind in ["lars", "lamb"] {
            let table = Self.table(), n = table.count
            let split = 27   // inside "v" (20..<35)
            let decay: (TensorRole) -> Float = { defaultDecays($0) ? 0.01 : 0 }
            var rng = TestRNG(seed: 21)
            let start = rng.array(n)
            let whole = FloatBuffer(start), sharded = FloatBuffer(start), wrong = FloatBuffer(start)
            let one = makeOptimizer(kind, count: n)
            let a = makeOptimizer(kind, count: split), b = makeOptimizer(kind, count: n - split)
            let wa = makeOptimizer(kind, count: split), wb = makeOptimizer(kind, count: n - split)
            let segAll = makeSegments(table: table, owned: 0..<n, weightDecay: decay)
            let segA = makeSegments(table: table, owned: 0..<split, weightDecay: decay)
            let segB = makeSegments(table: table, owned: split..<n, weightDecay: decay)
            XCTAssertEqual(segA.last?.tensor.name, "v")
            XCTAssertEqual(segB.first?.tensor.name, "v")
            let ctx = StepContext(lr: 0.05)
            for _ in 0..<5 {
                let g = FloatBuffer(rng.array(n))
                let gAll = UnsafeBufferPointer(g.buffer)
                one.update(params: whole.buffer, grads: gAll, segments: segAll, context: ctx)

                func twoOwners(_ p: FloatBuffer, _ x: TensorNormOptimizer, _ y: TensorNormOptimizer, sum: Bool) {
                    var pa = [Double](repeating: 0, count: 6), pb = pa
                    pa.withUnsafeMutableBufferPointer {
                        x.prepare(params: p.slice(0..<split), grads: UnsafeBufferPointer(g.slice(0..<split)),
                                  segments: segA, context: ctx, partialSquares: $0)
                    }
                    pb.withUnsafeMutableBufferPointer {
                        y.prepare(params: p.slice(split..<n), grads: UnsafeBufferPointer(g.slice(split..<n)),
                                  segments: segB, context: ctx, partialSquares: $0)
                    }
                    let total = zip(pa, pb).map(+)
                    (sum ? total : pa).withUnsafeBufferPointer {
                        x.apply(params: p.slice(0..<split), segments: segA, context: ctx, totalSquares: $0)
                    }
                    (sum ? total : pb).withUnsafeBufferPointer {
                        y.apply(params: p.slice(split..<n), segments: segB, context: ctx, totalSquares: $0)
                    }
                }
                twoOwners(sharded, a, b, sum: true)
                twoOwners(wrong, wa, wb, sum: false)
            }
            var maxDiff: Float = 0, wrongDiff: Float = 0
            for i in 0..<n {
                maxDiff = max(maxDiff, abs(sharded[i] - whole[i]))
                wrongDiff = max(wrongDiff, abs(wrong[i] - whole[i]))
            }
            // Only the order of two double additions differs, so agreement is to float32 rounding.
            XCTAssertLessThanOrEqual(maxDiff, 1e-6, "\(kind): sharded differs from whole by \(maxDiff)")
            XCTAssertGreaterThan(wrongDiff, 1e-3, "\(kind): local-only norms should differ (test sensitivity)")
            XCTAssertEqual(a.stepCount, 5)
        }
    }

    /// Zero weights: ratio 1, so the tensor still moves (LARS: θ = −γg; LAMB: θ = −γ·g/(|g| + ε)).
    func testZeroWeightNormStillMoves() {
        var table = ParameterTable()
        table.add("w", shape: [3, 4], role: .matrix)
        var rng = TestRNG(seed: 4)
        let g = rng.array(12)
        let segs = makeSegments(table: table, owned: 0..<12, weightDecay: { _ in 0.01 })
        let lars = LARS.make(count: 12), lamb = LAMB.make(count: 12)
        let pl = FloatBuffer(count: 12), pm = FloatBuffer(count: 12)
        let gb = FloatBuffer(g)
        lars.update(params: pl.buffer, grads: UnsafeBufferPointer(gb.buffer), segments: segs,
                    context: StepContext(lr: 0.1))
        lamb.update(params: pm.buffer, grads: UnsafeBufferPointer(gb.buffer), segments: segs,
                    context: StepContext(lr: 0.1))
        for i in 0..<12 {
            XCTAssertEqual(pl[i], -0.1 * g[i], accuracy: 1e-7)
            XCTAssertEqual(pm[i], -0.1 * g[i] / (abs(g[i]) + 1e-6), accuracy: 1e-6)
            XCTAssertNotEqual(pm[i], 0)
        }
    }

    /// Zero gradient and no decay: the direction norm is 0; nothing moves and nothing is NaN.
    func testZeroUpdateNormDoesNotDivideByZero() {
        let table = Self.table(), n = table.count
        var rng = TestRNG(seed: 8)
        let start = rng.array(n)
        let segs = makeSegments(table: table, owned: 0..<n, weightDecay: { _ in 0 })
        for opt in [LARS.make(count: n) as TensorNormOptimizer, LAMB.make(count: n)] {
            let p = FloatBuffer(start), g = FloatBuffer(count: n)
            for _ in 0..<3 {
                opt.update(params: p.buffer, grads: UnsafeBufferPointer(g.buffer), segments: segs,
                           context: StepContext(lr: 0.1))
            }
            XCTAssertEqual(p.array, start, "\(opt.name)")
            XCTAssert(opt.state.allSatisfy { $0.array.allSatisfy(\.isFinite) })
        }
        // The ratio helpers themselves.
        XCTAssertEqual(LAMB.make(count: 1).trustRatio(paramSquares: 4, directionSquares: 0), 1)
        XCTAssertEqual(LAMB.make(count: 1).trustRatio(paramSquares: 0, directionSquares: 4), 1)
        XCTAssertEqual(LAMB.make(count: 1).trustRatio(paramSquares: 4, directionSquares: 1), 2)
        XCTAssertEqual(LAMB.make(count: 1, ["max_trust_ratio": 1.5]).trustRatio(paramSquares: 4,
                                                                                  directionSquares: 1), 1.5)
        XCTAssertEqual(LARS.make(count: 1).trustRatio(paramSquares: 0, gradSquares: 4, weightDecay: 0.1), 1)
        XCTAssertEqual(LARS.make(count: 1).trustRatio(paramSquares: 4, gradSquares: 0, weightDecay: 0.1), 1)
        XCTAssertEqual(LARS.make(count: 1, ["trust_coefficient": 0.5])
            .trustRatio(paramSquares: 4, gradSquares: 9, weightDecay: 0.5), 0.5 * 2 / (3 + 1), accuracy: 1e-12)
    }

    /// With exclusion on, a bias moves by plain γ·g (LAMB: by the Adam direction) regardless of its norm.
    func testBiasExcludedFromTrustRatio() {
        var table = ParameterTable()
        table.add("b", shape: [5], role: .bias)
        let start: [Float] = [10, -10, 10, -10, 10], g: [Float] = [1, 2, 3, 4, 5]
        let segs = makeSegments(table: table, owned: 0..<5, weightDecay: { _ in 0.5 })
        for exclude in [true, false] {
            let lars = LARS.make(count: 5, ["trust_coefficient": 1e-3, "exclude_bias_and_norm": .flag(exclude)])
            let p = FloatBuffer(start), gb = FloatBuffer(g)
            lars.update(params: p.buffer, grads: UnsafeBufferPointer(gb.buffer), segments: segs,
                        context: StepContext(lr: 0.1))
            if exclude {
                for i in 0..<5 { XCTAssertEqual(p[i], start[i] - 0.1 * g[i], accuracy: 1e-6) }
            } else {
                // local = 1e-3·‖θ‖/(‖g‖ + 0.5‖θ‖), ‖θ‖ = √500, ‖g‖ = √55; decay 0.5 applies too.
                let local = 1e-3 * Float(500).squareRoot() / (Float(55).squareRoot() + 0.5 * Float(500).squareRoot())
                for i in 0..<5 {
                    XCTAssertEqual(p[i], start[i] - 0.1 * local * (g[i] + 0.5 * start[i]), accuracy: 1e-6)
                }
            }
        }
    }
}

final class ShampooTests: XCTestCase {
    func testRejectsPartialTensorAndReportsState() {
        var table = ParameterTable()
        table.add("w", shape: [3, 4], role: .matrix)
        table.add("b", shape: [3], role: .bias)
        let segs = makeSegments(table: table, owned: 0..<15, weightDecay: { _ in 0 })
        let s = Shampoo.make(count: 15, segments: segs, ["graft": "adam"])
        XCTAssertEqual(s.stateNames, ["left_stats", "right_stats", "left_inv_root", "right_inv_root", "diag_stats",
                                      "exp_avg", "exp_avg_sq"])
        XCTAssertEqual(s.state.map(\.count), [9, 16, 9, 16, 3, 15, 15])
    }

    /// After one step from zero statistics, with L = GGᵀ and R = GᵀG, (L + δI)^(−1/4)·G·(R + δI)^(−1/4) is close
    /// to the polar factor UVᵀ of G (it equals U·Σ/(Σ² + δ)^(1/2)·Vᵀ), so the first step is ≈ −γ·UVᵀ: its Gram
    /// matrix is ≈ γ²I.
    func testFirstStepIsNearlyOrthogonal() {
        for (rows, cols) in [(4, 6), (24, 40), (40, 24), (48, 64)] {
            var table = ParameterTable()
            table.add("w", shape: [rows, cols], role: .matrix)
            var rng = TestRNG(seed: UInt64(rows * 100 + cols))
            let g = FloatBuffer(rng.array(rows * cols))
            let p = FloatBuffer(count: rows * cols)
            let segs = makeSegments(table: table, owned: 0..<(rows * cols), weightDecay: { _ in 0 })
            let s = Shampoo.make(count: rows * cols, segments: segs, ["damping": 1e-8])
            s.update(params: p.buffer, grads: UnsafeBufferPointer(g.buffer), segments: segs,
                     context: StepContext(lr: 1))
            // Gram of the short side: PPᵀ (wide) or PᵀP (tall) ≈ I.
            var q = p.array, r = rows, c = cols
            if rows > cols {
                q = [Float](repeating: 0, count: rows * cols)
                for i in 0..<rows { for j in 0..<cols { q[j * rows + i] = p[i * cols + j] } }
                (r, c) = (cols, rows)
            }
            let gram = gramDouble(q, rows: r, cols: c)
            var worst = 0.0
            for i in 0..<r { for j in 0..<r { worst = max(worst, abs(gram[i * r + j] - (i == j ? 1 : 0))) } }
            XCTAssertLessThan(worst, 1e-4, "\(rows)×\(cols)")
        }
    }
}

/// Regression: a Shampoo shard that owns only vectors (as a rank can at ZeRO stage 1/2) must size its direction
/// workspace for them (it once overflowed the heap).
final class ShampooVectorOnlyShardTests: XCTestCase {
    func testShampooOverOnlyABiasVector() {
        var t = ParameterTable()
        let bias = t.add("bias", shape: [37], role: .bias)
        let seg = ParamSegment(range: 0..<37, tensor: bias, tensorIndex: 0, weightDecay: 0)
        let opt = Shampoo.make(count: 37, segments: [seg])
        let params = FloatBuffer(count: 37), grads = FloatBuffer((0..<37).map { Float($0) - 18 })
        opt.update(params: params.buffer, grads: UnsafeBufferPointer(grads.buffer), segments: [seg], context: StepContext(lr: 0.1))
        // Diagonal (Adagrad-like) step: −γ·g/√(g² + δ) ≈ −γ·sign(g) for |g| ≫ √δ.
        XCTAssertEqual(params[0], 0.1, accuracy: 1e-4)
        XCTAssertEqual(params[36], -0.1, accuracy: 1e-4)
        XCTAssertEqual(params[18], 0)
    }
}
