import Foundation
import Optimizers
import Tensors
import XCTest

/// Replays every fixture trajectory (26 configurations × 24 steps) with the Swift optimizers and compares the
/// parameters after every step.
///
/// Error measure: |swift − ref| / max(|ref|, 1e-2), maximised over elements and steps. Tolerance 1e-5: one float32
/// rounding is ≤ 6e-8 relative, and torch's kernels differ from ours only in rounding order (vectorised FMA, divide by
/// a reciprocal); over 24 steps of ~10 roundings that stays near 1e-6 of the parameter scale. The parameters are
/// O(1) (standard normal), so those roundings leave absolute errors of ~1e-7 however close a coordinate passes to
/// zero; the floor 1e-2 (1% of that scale) keeps such a coordinate from reading as a large relative error, which a
/// floor of 1e-3 did (up to 2.8e-5 for coordinates crossing |θ| ≈ 1e-3). A formula error (ε placement, bias
/// correction, decay order, a missed flag) moves parameters by far more, since every case's learning rate moves them
/// by ≥ 1e-2 (checked below) and the mutation test shows a single wrong flag giving errors above 1e-3.
final class ElementwiseTorchTests: XCTestCase {
    static let tolerance: Float = 1e-5
    static let floor: Float = 1e-2

    private var fixture: ElementwiseFixture!

    override func setUpWithError() throws {
        fixture = try ElementwiseFixture.load()
        XCTAssertEqual(fixture.initial.count, fixture.count)
        XCTAssertGreaterThanOrEqual(fixture.grads.count, 20)
    }

    /// Max relative error of `optimizer` replaying case `c`, and the largest parameter displacement of the reference.
    private func replay(_ c: ElementwiseFixture.Case, optimizer: any Optimizer) -> (error: Float, moved: Float) {
        let segments = fixture.segments(owned: 0..<fixture.count, weightDecay: c.weightDecay)
        var params = fixture.initial
        var worst: Float = 0, moved: Float = 0
        XCTAssertEqual(c.params.count, fixture.grads.count, c.name)
        for (t, (grads, reference)) in zip(fixture.grads, c.params).enumerated() {
            step(optimizer, params: &params, grads: grads, segments: segments, lr: c.lr)
            for i in 0..<fixture.count {
                let err = abs(params[i] - reference[i]) / max(abs(reference[i]), Self.floor)
                XCTAssertFalse(params[i].isNaN, "\(c.name) step \(t + 1) element \(i) is NaN")
                worst = max(worst, err.isNaN ? .infinity : err)
                moved = max(moved, abs(reference[i] - fixture.initial[i]))
            }
        }
        return (worst, moved)
    }

    /// Replays every case whose optimizer is `kind`; requires at least `minimumCases` of them.
    private func check(_ kinds: String..., minimumCases: Int) {
        let cases = fixture.cases.filter { kinds.contains($0.optimizer) }
        let kind = kinds.joined(separator: "/")
        XCTAssertGreaterThanOrEqual(cases.count, minimumCases, "fixture lacks \(kind) cases; regenerate it")
        for c in cases {
            let opt = makeElementwiseOptimizer(c.optimizer, hyper: c.hyper, count: fixture.count)
            let (error, moved) = replay(c, optimizer: opt)
            print("[elementwise] \(c.name) (\(c.reference)): max relative error \(error)")
            XCTAssertLessThanOrEqual(error, Self.tolerance, "\(c.name): max relative error \(error)")
            XCTAssertGreaterThanOrEqual(moved, 1e-2, "\(c.name): the reference barely moves; the case tests nothing")
            XCTAssertEqual(opt.stepCount, fixture.grads.count)
        }
    }

    func testSGD() { check("sgd", minimumCases: 4) }
    func testAdagrad() { check("adagrad", minimumCases: 2) }
    func testAdadelta() { check("adadelta", minimumCases: 2) }
    func testRMSprop() { check("rmsprop", minimumCases: 4) }
    func testAdamAdamWAMSGrad() { check("adam", "adamw", minimumCases: 4) }
    func testAdaMax() { check("adamax", minimumCases: 1) }
    func testNAdam() { check("nadam", minimumCases: 2) }
    func testRAdam() { check("radam", minimumCases: 2) }
    func testRprop() { check("rprop", minimumCases: 2) }
    func testLion() { check("lion", minimumCases: 1) }
    func testSignSGDAndSignum() { check("signsgd", "signum", minimumCases: 2) }
    /// Against the float64 NumPy port of apple/ml-ademamix's step, with and without the α and β₃ warmups.
    func testAdEMAMix() { check("ademamix", minimumCases: 2) }

    func testEveryFixtureCaseIsCovered() {
        let known: Set = ["sgd", "adagrad", "adadelta", "rmsprop", "adam", "adamw", "adamax", "nadam", "radam", "rprop", "lion",
                          "signsgd", "signum", "ademamix"]
        for c in fixture.cases { XCTAssertTrue(known.contains(c.optimizer), "no test replays \(c.name)") }
    }

    /// The tolerance discriminates: the AdamW trajectory replayed with coupled (L2) decay, or with a slightly
    /// different β₂, fails it by orders of magnitude.
    func testToleranceRejectsWrongConfigurations() throws {
        let c = try XCTUnwrap(fixture.cases.first { $0.name == "adamw" })
        let wrongDecay = replay(c, optimizer: makeElementwiseOptimizer("adam", hyper: c.hyper, count: fixture.count))
        XCTAssertGreaterThan(wrongDecay.error, 1e-3)
        var beta2 = c.hyper
        beta2["beta2"] = 0.998
        let wrongBeta = replay(c, optimizer: makeElementwiseOptimizer("adamw", hyper: beta2, count: fixture.count))
        XCTAssertGreaterThan(wrongBeta.error, 100 * Self.tolerance)
    }
}
