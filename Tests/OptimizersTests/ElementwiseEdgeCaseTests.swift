import Foundation
import Optimizers
import Tensors
import XCTest

/// Edge cases and oracles from docs/optimizers.md and the reference sheet: zero gradients, NAdam's momentum schedule,
/// RAdam's rectification boundary, Rprop's sign flips, and sharding (two owners of halves = one owner of the whole).
final class ElementwiseEdgeCaseTests: XCTestCase {
    /// One configuration per code path (each flag that selects a different loop).
    static let configurations: [(kind: String, hyper: [String: Double])] = [
        ("sgd", [:]), ("sgd", ["momentum": 0.9]), ("sgd", ["momentum": 0.9, "nesterov": 1]),
        ("sgd", ["momentum": 0.9, "dampening": 0.5]),
        ("adagrad", [:]), ("adagrad", ["lr_decay": 0.1, "initial_accumulator": 0.5]),
        ("adadelta", [:]),
        ("rmsprop", [:]), ("rmsprop", ["centered": 1]), ("rmsprop", ["momentum": 0.9]),
        ("rmsprop", ["centered": 1, "momentum": 0.9]),
        ("adam", [:]), ("adamw", [:]), ("adam", ["amsgrad": 1]), ("adamw", ["amsgrad": 1]),
        ("adamax", [:]),
        ("nadam", [:]), ("nadam", ["decoupled_weight_decay": 1]),
        ("radam", [:]), ("radam", ["decoupled_weight_decay": 1]),
        ("lion", [:]), ("signsgd", [:]), ("signum", ["momentum": 0.9]),
        ("rprop", [:]), ("ademamix", [:]), ("ademamix", ["alpha_warmup": 5, "beta3_warmup": 5]),
    ]

    private func label(_ c: (kind: String, hyper: [String: Double])) -> String {
        "\(c.kind) \(c.hyper.sorted { $0.key < $1.key })"
    }

    private func allFinite(_ values: [Float]) -> Bool { values.allSatisfy(\.isFinite) }
    private func stateFinite(_ opt: any Optimizer) -> Bool {
        opt.state.allSatisfy { buf in (0..<buf.count).allSatisfy { buf[$0].isFinite } }
    }

    // MARK: - Zero gradients

    /// A zero gradient on a zero state (no decay) must leave every parameter exactly where it was and produce no NaN
    /// (0/0 appears in several rules if ε is misplaced); zero steps after real ones must stay finite too.
    func testZeroGradientStepsProduceNoNaN() throws {
        let fixture = try ElementwiseFixture.load()
        let n = fixture.count, zeros = [Float](repeating: 0, count: n)
        for c in Self.configurations {
            let opt = makeElementwiseOptimizer(c.kind, hyper: c.hyper, count: n)
            let undecayed = fixture.segments(owned: 0..<n, weightDecay: 0)
            var params = fixture.initial
            for _ in 0..<3 { step(opt, params: &params, grads: zeros, segments: undecayed, lr: 0.1) }
            XCTAssertEqual(params, fixture.initial, "\(label(c)): zero gradients from a zero state moved θ")
            XCTAssertTrue(stateFinite(opt), "\(label(c)): non-finite state after zero gradients")

            let decayed = fixture.segments(owned: 0..<n, weightDecay: 0.1)
            for g in fixture.grads.prefix(6) { step(opt, params: &params, grads: g, segments: decayed, lr: 0.01) }
            for _ in 0..<4 { step(opt, params: &params, grads: zeros, segments: decayed, lr: 0.01) }
            XCTAssertTrue(allFinite(params), "\(label(c)): non-finite parameters after zero-gradient steps")
            XCTAssertTrue(stateFinite(opt), "\(label(c)): non-finite state after zero-gradient steps")
            XCTAssertEqual(opt.stepCount, 13)
        }
    }

    // MARK: - Sharding

    /// Two instances owning [0, k) and [k, n) (a split inside the weight tensor, as a sharded optimizer sees it)
    /// give bit-for-bit the parameters and state of one instance owning [0, n).
    func testSplitRangeEqualsWholeRangeBitForBit() throws {
        let fixture = try ElementwiseFixture.load()
        let n = fixture.count, k = 7
        for c in Self.configurations {
            let whole = makeElementwiseOptimizer(c.kind, hyper: c.hyper, count: n)
            let left = makeElementwiseOptimizer(c.kind, hyper: c.hyper, count: k)
            let right = makeElementwiseOptimizer(c.kind, hyper: c.hyper, count: n - k)
            let wholeSegs = fixture.segments(owned: 0..<n, weightDecay: 0.1)
            let leftSegs = fixture.segments(owned: 0..<k, weightDecay: 0.1)
            let rightSegs = fixture.segments(owned: k..<n, weightDecay: 0.1)
            XCTAssertEqual(rightSegs.count, 2, "the right half must straddle weight and bias")
            var p = fixture.initial
            var pl = Array(fixture.initial[0..<k]), pr = Array(fixture.initial[k..<n])
            for (t, g) in fixture.grads.enumerated() {
                let lr: Float = 0.02 * (1 + Float(t % 5))  // a changing schedule
                step(whole, params: &p, grads: g, segments: wholeSegs, lr: lr)
                step(left, params: &pl, grads: Array(g[0..<k]), segments: leftSegs, lr: lr)
                step(right, params: &pr, grads: Array(g[k..<n]), segments: rightSegs, lr: lr)
            }
            XCTAssertEqual((pl + pr).map(\.bitPattern), p.map(\.bitPattern), "\(label(c)): parameters differ")
            XCTAssertNotEqual(p, fixture.initial, "\(label(c)): nothing moved")
            XCTAssertEqual(whole.stateNames, left.stateNames)
            for (s, (sl, sr)) in zip(whole.state, zip(left.state, right.state)) {
                let joined = (0..<k).map { sl[$0] } + (0..<(n - k)).map { sr[$0] }
                XCTAssertEqual(joined.map(\.bitPattern), (0..<n).map { s[$0].bitPattern }, "\(label(c)): state differs")
            }
        }
    }

    // MARK: - NAdam

    func testNAdamMomentumScheduleOracles() {
        let nadam = NAdam.make(count: 1)
        XCTAssertEqual(nadam.mu(1), 0.4500735, accuracy: 1e-7)
        XCTAssertEqual(nadam.mu(2), 0.4501469, accuracy: 1e-7)
        let c1 = nadam.coefficients(step: 1, previousProduct: 1)
        XCTAssertEqual(c1.grad, 1.0, "at t = 1 the coefficient on g/d is exactly 1")
        XCTAssertEqual(c1.momentum, 0.5645178, accuracy: 1e-7)
    }

    /// The first NAdam step from a zero state: m = (1−β₁)g and d = |g| + ε, so θ moves by γ(1 + 0.1·0.5645178)
    /// against the gradient's sign; this checks the class, not only its scalar helpers.
    func testNAdamFirstStep() {
        let nadam = NAdam.make(count: 2)
        var params: [Float] = [1, -2]
        let segs = [ParamSegment(range: 0..<2, tensor: TensorEntry.test(count: 2), tensorIndex: 0, weightDecay: 0)]
        step(nadam, params: &params, grads: [0.5, -3], segments: segs, lr: 0.01)
        let move = 0.01 * (1 + 0.1 * 0.5645178)
        XCTAssertEqual(Double(params[0]), 1 - move, accuracy: 1e-7)
        XCTAssertEqual(Double(params[1]), -2 + move, accuracy: 1e-7)
        XCTAssertEqual(nadam.muProduct, 0.4500735, accuracy: 1e-7)
    }

    /// Π_t is not checkpointed: an instance given the step count and state buffers of another continues identically.
    func testNAdamResumesMuProductFromStepCount() throws {
        let fixture = try ElementwiseFixture.load()
        let n = fixture.count, segs = fixture.segments(owned: 0..<n, weightDecay: 0.1)
        let original = NAdam.make(count: n), resumed = NAdam.make(count: n)
        var p = fixture.initial
        for g in fixture.grads.prefix(10) { step(original, params: &p, grads: g, segments: segs, lr: 0.01) }
        resumed.stepCount = original.stepCount
        for (dst, src) in zip(resumed.state, original.state) { dst.buffer.update(from: src.buffer) }
        var q = p
        for g in fixture.grads.dropFirst(10) {
            step(original, params: &p, grads: g, segments: segs, lr: 0.01)
            step(resumed, params: &q, grads: g, segments: segs, lr: 0.01)
        }
        XCTAssertEqual(q.map(\.bitPattern), p.map(\.bitPattern))
        XCTAssertEqual(resumed.muProduct, original.muProduct, accuracy: 1e-15)
    }

    // MARK: - RAdam

    func testRAdamRectificationOracles() {
        let radam = RAdam.make(count: 1)
        for t in 1...5 { XCTAssertNil(radam.rectification(step: t).r, "step \(t) must not be rectified (ρ_t ≤ 5)") }
        XCTAssertGreaterThan(radam.rectification(step: 6).rho, 5)
        XCTAssertLessThanOrEqual(radam.rectification(step: 5).rho, 5)
        XCTAssertEqual(try XCTUnwrap(radam.rectification(step: 6).r), 0.0258211, accuracy: 1e-7)
        XCTAssertEqual(try XCTUnwrap(radam.rectification(step: 7).r), 0.0327388, accuracy: 1e-7)
        XCTAssertEqual(try XCTUnwrap(radam.rectification(step: 8).r), 0.0387383, accuracy: 1e-7)
        // ρ_t → ρ∞ = 1999 as t grows.
        XCTAssertEqual(radam.rectification(step: 1_000_000).rho, 1999, accuracy: 1e-6)
    }

    /// With a constant gradient g = 1, m/bc₁ = 1 and v/bc₂ = 1: steps 1–5 move θ by exactly γ (SGD with momentum),
    /// step 6 by γ·r₆ ≈ 0.0258211γ.
    func testRAdamBoundaryBetweenUnrectifiedAndRectifiedSteps() {
        let radam = RAdam.make(count: 1)
        let segs = [ParamSegment(range: 0..<1, tensor: TensorEntry.test(count: 1), tensorIndex: 0, weightDecay: 0)]
        var params: [Float] = [1]
        var moves: [Double] = []
        for _ in 1...7 {
            let before = params[0]
            step(radam, params: &params, grads: [1], segments: segs, lr: 0.1)
            moves.append(Double(before - params[0]))
        }
        for t in 0..<5 { XCTAssertEqual(moves[t], 0.1, accuracy: 1e-6, "step \(t + 1) is unrectified") }
        XCTAssertEqual(moves[5], 0.1 * 0.0258211, accuracy: 1e-7, "step 6 is the first rectified step")
        XCTAssertEqual(moves[6], 0.1 * 0.0327388, accuracy: 1e-7)
    }

    // MARK: - Rprop

    /// Step sizes grow by η₊ while the sign holds, shrink by η₋ on a flip (that step does not move θ and stores 0 as
    /// the previous gradient), restart growth after the flip, and stay within [s_min, s_max].
    func testRpropSignFlips() {
        let rprop = Rprop.make(count: 1, ["eta_minus": 0.5, "eta_plus": 1.2, "step_size_min": 0.02, "step_size_max": 0.13])
        let segs = [ParamSegment(range: 0..<1, tensor: TensorEntry.test(count: 1), tensorIndex: 0, weightDecay: 0)]
        var params: [Float] = [0]
        var trace: [(p: Float, s: Float, prev: Float)] = []
        for g: Float in [1, 1, 1, -1, -1, -1, 1, 1] {
            step(rprop, params: &params, grads: [g], segments: segs, lr: 0.1)
            trace.append((params[0], rprop.state[1][0], rprop.state[0][0]))
        }
        // step 1: no previous gradient → s = lr = 0.1.  step 2: same sign → 0.12.  step 3: 0.144 clamped to 0.13.
        XCTAssertEqual(trace[0].s, 0.1, accuracy: 1e-7)
        XCTAssertEqual(trace[1].s, 0.12, accuracy: 1e-7)
        XCTAssertEqual(trace[2].s, 0.13, accuracy: 1e-7, "s_max bound")
        XCTAssertEqual(trace[2].p, -0.35, accuracy: 1e-6)
        // step 4: flip → s halves, θ does not move, prev = 0.
        XCTAssertEqual(trace[3].s, 0.065, accuracy: 1e-7)
        XCTAssertEqual(trace[3].p, trace[2].p)
        XCTAssertEqual(trace[3].prev, 0)
        // step 5: previous is 0 → s unchanged, θ moves by s.  step 6: same sign → s·1.2.
        XCTAssertEqual(trace[4].s, 0.065, accuracy: 1e-7)
        XCTAssertEqual(trace[4].p, -0.35 + 0.065, accuracy: 1e-6)
        XCTAssertEqual(trace[5].s, 0.078, accuracy: 1e-7)
        // step 7: flip → 0.039, θ still.  step 8: previous 0 → unchanged 0.039, θ moves up.
        XCTAssertEqual(trace[6].s, 0.039, accuracy: 1e-7)
        XCTAssertEqual(trace[6].p, trace[5].p)
        XCTAssertEqual(trace[7].s, 0.039, accuracy: 1e-7)
        XCTAssertEqual(trace[7].p, trace[5].p - 0.039, accuracy: 1e-6)

        // Repeated flips never take s below s_min.
        for t in 0..<20 {
            step(rprop, params: &params, grads: [t % 2 == 0 ? -1 : 1], segments: segs, lr: 0.1)
            XCTAssertGreaterThanOrEqual(rprop.state[1][0], 0.02)
        }
        XCTAssertEqual(rprop.state[1][0], 0.02, accuracy: 1e-9)
    }

    /// The learning rate only seeds the step sizes on the first update (torch semantics).
    func testRpropIgnoresLaterLearningRates() {
        let a = Rprop.make(count: 1), b = Rprop.make(count: 1)
        let segs = [ParamSegment(range: 0..<1, tensor: TensorEntry.test(count: 1), tensorIndex: 0, weightDecay: 0)]
        var pa: [Float] = [0], pb: [Float] = [0]
        step(a, params: &pa, grads: [1], segments: segs, lr: 0.1)
        step(b, params: &pb, grads: [1], segments: segs, lr: 0.1)
        step(a, params: &pa, grads: [1], segments: segs, lr: 0.1)
        step(b, params: &pb, grads: [1], segments: segs, lr: 5)
        XCTAssertEqual(pa, pb)
        XCTAssertEqual(pa[0], -0.22, accuracy: 1e-6)
    }

    // MARK: - Construction

    func testAdagradInitialAccumulatorFillsState() {
        let opt = Adagrad.make(count: 5, ["initial_accumulator": 0.25])
        XCTAssertEqual((0..<5).map { opt.state[0][$0] }, [Float](repeating: 0.25, count: 5))
    }

    func testStateNamesMatchStateBuffers() {
        for c in Self.configurations {
            let opt = makeElementwiseOptimizer(c.kind, hyper: c.hyper, count: 3)
            XCTAssertEqual(opt.stateNames.count, opt.state.count, label(c))
            XCTAssertEqual(Set(opt.stateNames).count, opt.stateNames.count, "\(label(c)): duplicate state names")
            XCTAssertTrue(opt.state.allSatisfy { $0.count == 3 }, label(c))
        }
        XCTAssertEqual(RMSprop.make(count: 1, ["momentum": 0.9, "centered": true]).stateNames,
                       ["square_avg", "momentum_buffer", "grad_avg"])
        XCTAssertEqual(Adam.make(count: 1, ["amsgrad": true]).stateNames, ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"])
        XCTAssertEqual(SignSGD.make(count: 1).stateNames, [])
    }
}

extension TensorEntry {
    /// A 1-D entry of `count` elements at offset 0, for tests that build segments by hand.
    static func test(count: Int) -> TensorEntry {
        var table = ParameterTable()
        return table.add("t", shape: [count], role: .matrix)
    }
}
