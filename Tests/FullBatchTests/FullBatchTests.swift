import Optimizers
import SwiftMPI
import Tensors
import FullBatch
import XCTest

/// Rosenbrock f(x, y) = (1 − x)² + 100(y − x²)², minimum 0 at (1, 1): the classic hard valley for line searches.
private final class Rosenbrock: FullBatchObjective {
    var dimension: Int { 2 }
    func valueAndGradient(_ x: UnsafeBufferPointer<Double>, _ g: UnsafeMutableBufferPointer<Double>) throws -> Double {
        let a = x[0], b = x[1]
        g[0] = -2 * (1 - a) - 400 * a * (b - a * a)
        g[1] = 200 * (b - a * a)
        return (1 - a) * (1 - a) + 100 * (b - a * a) * (b - a * a)
    }
}

final class FullBatchOptimizerTests: XCTestCase {
    private let data = LogisticRegressionData.generate()

    func testLBFGSAndArmijoGDReachTightGradientNorms() throws {
        let objective = LogisticRegressionObjective(data: data)
        let lbfgs = try LBFGS(gradientTolerance: 1e-8).minimize(objective, from: [Double](repeating: 0, count: data.features))
        let gd = try GradientDescent(gradientTolerance: 1e-8).minimize(objective, from: [Double](repeating: 0, count: data.features))
        XCTAssertEqual(lbfgs.stop, .converged)
        XCTAssertEqual(gd.stop, .converged)
        XCTAssertLessThan(lbfgs.gradientNorm, 1e-8)
        XCTAssertLessThan(gd.gradientNorm, 1e-8)
        // Quasi-Newton curvature pays off: well under half the iterations of steepest descent (measured 10 vs 34).
        XCTAssertLessThan(2 * lbfgs.iterations, gd.iterations)
        let wStar = data.newtonMinimiser().w
        for k in 0..<data.features { XCTAssertEqual(lbfgs.x[k], wStar[k], accuracy: 1e-7) }
    }

    /// Every accepted L-BFGS step satisfies the strong Wolfe conditions with c₁ = 1e-4, c₂ = 0.9
    /// (Nocedal & Wright 2006, eq. 3.7): φ(α) ≤ φ(0) + c₁αφ'(0) and |φ'(α)| ≤ c₂|φ'(0)|.
    func testStrongWolfeConditionsHoldAtEveryStep() throws {
        let result = try LBFGS(gradientTolerance: 1e-10).minimize(Rosenbrock(), from: [-1.2, 1])
        let steps = result.history.compactMap(\.lineSearch)
        XCTAssertGreaterThan(steps.count, 10)
        for s in steps {
            XCTAssertTrue(s.satisfied)
            XCTAssertLessThanOrEqual(s.value, s.value0 + 1e-4 * s.step * s.slope0 + 1e-15)
            XCTAssertLessThanOrEqual(abs(s.slope), 0.9 * abs(s.slope0) + 1e-15)
        }
    }

    func testLBFGSSolvesRosenbrock() throws {
        let result = try LBFGS(gradientTolerance: 1e-9).minimize(Rosenbrock(), from: [-1.2, 1])
        XCTAssertEqual(result.stop, .converged)
        XCTAssertEqual(result.x[0], 1, accuracy: 1e-6)
        XCTAssertEqual(result.x[1], 1, accuracy: 1e-6)
        XCTAssertLessThan(result.iterations, 100)
    }

    /// The full batch spread over 3 simulated ranks (value and gradient all-reduced) gives the same L-BFGS iterates
    /// as one rank: only the summation order of the data sums differs (≈ 1e-16 relative), amplified little by the
    /// well-conditioned problem: tolerance 1e-10 per coordinate at every iterate.
    func testDistributedIteratesEqualSingleProcessIterates() throws {
        let data = self.data
        let single = try LBFGS(gradientTolerance: 1e-8).minimize(LogisticRegressionObjective(data: data),
                                                               from: [Double](repeating: 0, count: data.features))
        let distributed = try SimulatedWorld.run(size: 3) { comm -> [[Double]] in
            try LBFGS(gradientTolerance: 1e-8).minimize(LogisticRegressionObjective(data: data, comm: comm),
                                                        from: [Double](repeating: 0, count: data.features)).iterates
        }
        XCTAssertEqual(distributed[0], distributed[1], "ranks must agree bit for bit")
        XCTAssertEqual(distributed[0].count, single.iterates.count)
        for (a, b) in zip(distributed[0], single.iterates) {
            for k in 0..<a.count { XCTAssertEqual(a[k], b[k], accuracy: 1e-10) }
        }
    }
}

/// The convergence theory on ℓ2-regularised logistic regression (m = 200, n = 10, μ = 1): see docs/theory.md.
final class TheoryTests: XCTestCase {
    private static let result = try! TheoryExperiment.run()

    /// (a) Strong convexity μ and smoothness L give GD with step 1/L the linear rate f_{k+1} − f* ≤ (1 − μ/L)(f_k − f*):
    /// every measured per-step ratio (above the 1e-9 rounding floor) is at most the bound, and f − f* ≤ 1e-10 is
    /// reached no later than the bound predicts.
    func testGradientDescentConvergesLinearly() {
        let r = Self.result
        let ratios = r.gdRatios()
        XCTAssertGreaterThan(ratios.count, 5)
        XCTAssertLessThanOrEqual(ratios.max()!, r.gdRateBound)
        XCTAssertLessThanOrEqual(r.gdIterationsToTarget!, r.gdPredictedIterations)
    }

    /// (b) Constant-step SGD stalls at a noise floor: the mean gap over epochs 400–600 is still above 1e-3 (the
    /// decaying schedule gets 100× lower), not below the 200–400 window by more than 10% (measured 1.5%), and
    /// under the theoretical bound γLσ²/(2μ).
    func testConstantStepSGDStallsAtANoiseFloor() {
        let r = Self.result
        let early = TheoryResult.mean(r.sgdConstantGaps, 200..<400), late = TheoryResult.mean(r.sgdConstantGaps, 400..<601)
        XCTAssertGreaterThan(late, 1e-3)
        XCTAssertGreaterThan(late, 0.9 * early)
        XCTAssertLessThan(late, r.sgdFloorBound)
    }

    /// (c) A decaying step keeps converging: its late mean gap is below its earlier one (still decreasing) and its
    /// final gap is at least 10× below the constant-step floor (measured ≈ 190×).
    func testDecayingStepSGDKeepsConverging() {
        let r = Self.result
        let early = TheoryResult.mean(r.sgdDecayingGaps, 200..<400), late = TheoryResult.mean(r.sgdDecayingGaps, 400..<601)
        XCTAssertLessThan(late, 0.9 * early)
        XCTAssertLessThan(10 * r.sgdDecayingGaps.last!, TheoryResult.mean(r.sgdConstantGaps, 400..<601))
    }
}
