import Optimizers
import Tensors
import FullBatch
import XCTest

/// Further checks of the theory experiment, beside the three claims in FullBatchTests.swift (TheoryTests).
/// The theory check (Training/TheoryExperiment.swift; docs/theory.md): ℓ2-regularised logistic regression, m = 200,
/// n = 10, μ = 1, features N(0, 3²), data seed 2024; SGD γ = 0.003, 600 epochs, sampling seed 7.
/// Every threshold below is stated with the value measured when it was chosen (and over data seeds 1 and 2, which
/// `swift-train theory --seed` reproduces), so a change that moves a number far can be judged.
final class TheoryDetailTests: XCTestCase {
    /// One run shared by the checks (it is deterministic).
    static let result: TheoryResult = try! TheoryExperiment.run()

    func testReferenceOptimumIsAccurate() {
        let r = Self.result
        // Newton reaches rounding level (measured 1.2e-16 in 5 steps); the brief asks for ‖∇f(w*)‖ < 1e-12.
        XCTAssertLessThan(r.optimumGradientNorm, 1e-12)
        // f* is a minimum: no iterate of any method may go below it by more than rounding of f (≈ 1e-16).
        for curve in [r.gdGaps, r.sgdConstantGaps, r.sgdDecayingGaps] {
            XCTAssertGreaterThan(curve.min()!, -1e-14)
        }
    }

    /// (b), quantitatively: the constant-step floor is O(γσ²/μ), i.e. proportional to γ (Bottou, Curtis & Nocedal
    /// 2018, Thm 4.6). Tripling γ triples the late-window mean gap: measured ×3.19 (data seeds 1, 2: ×3.03, ×3.21);
    /// the test accepts ×2 to ×4.5.
    func testNoiseFloorIsProportionalToTheStep() {
        let r = Self.result
        let late = r.lateWindows.late  // epochs [400, 600]
        let lateMean = TheoryResult.mean(r.sgdConstantGaps, late)
        let tripled = TheoryExperiment.runSGD(r.data, schedule: .constant(3 * r.configuration.sgdStep),
                                              epochs: r.configuration.epochs, seed: r.configuration.sgdSeed)
        let tripledMean = TheoryResult.mean(tripled.map { $0 - r.fStar }, late)
        XCTAssertGreaterThan(tripledMean / lateMean, 2)
        XCTAssertLessThan(tripledMean / lateMean, 4.5)
    }

    func testSGDIsDeterministicFromItsSeed() {
        let r = Self.result
        let again = TheoryExperiment.runSGD(r.data, schedule: .constant(r.configuration.sgdStep), epochs: 3,
                                            seed: r.configuration.sgdSeed)
        XCTAssertEqual(Array(r.sgdConstantGaps.prefix(4)), again.map { $0 - r.fStar })
        let other = TheoryExperiment.runSGD(r.data, schedule: .constant(r.configuration.sgdStep), epochs: 3, seed: 8)
        XCTAssertNotEqual(other, again)
    }

    func testPlotHasTheThreeCurves() {
        let svg = Self.result.plot().render()
        for name in ["GD, step 1/L", "SGD, constant", "SGD, γₜ"] { XCTAssertTrue(svg.contains(name), name) }
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 5)
    }
}
