import FullBatch
import XCTest

final class CoordinateDescentTests: XCTestCase {
    private let data = LogisticRegressionData.generate()

    /// Both orders reach ‖∇f‖ < 1e-8 on the theory problem and land on Newton's w*: with μ = 1 strong convexity
    /// gives ‖w − w*‖ ≤ ‖∇f‖/μ < 1e-8, so 1e-7 per coordinate leaves room only for rounding.
    func testCyclicAndRandomisedConvergeToTheNewtonMinimiser() {
        let wStar = data.newtonMinimiser().w
        for order in [CoordinateDescent.Order.cyclic, .randomised(seed: 1)] {
            let result = CoordinateDescent(order: order).minimize(LogisticCoordinateProblem(data: data),
                                                                  from: [Double](repeating: 0, count: data.features))
            XCTAssertEqual(result.stop, .converged, "\(order)")
            XCTAssertLessThan(result.gradientNorm, 1e-8)
            for k in 0..<data.features { XCTAssertEqual(result.x[k], wStar[k], accuracy: 1e-7, "\(order) w[\(k)]") }
        }
    }

    /// Exact line minimisation: after updating coordinate j, ∂f/∂wⱼ is zero to rounding (≤ 1e-12; the 1-D solver
    /// stops at |φ'| ≤ 1e-14 or when its step no longer changes t), and f never increases along the sweep.
    func testEachCoordinateStepIsExactAndNeverIncreasesTheLoss() {
        let problem = LogisticCoordinateProblem(data: data)
        var w = [Double](repeating: 0.3, count: data.features), g = w
        problem.reset(to: w)
        var previous = data.value(w)
        for step in 0..<(3 * data.features) {
            let j = (step * 7) % data.features
            _ = problem.minimiseAlong(j, x: &w)
            let value = data.valueAndGradient(w, into: &g)
            XCTAssertLessThanOrEqual(abs(g[j]), 1e-12, "coordinate \(j) not minimised exactly")
            XCTAssertLessThanOrEqual(value, previous + 1e-15, "step \(step) increased f")
            previous = value
        }
    }

    /// On a quadratic, one cyclic sweep is one Gauss–Seidel sweep for Ax = b (computed here by hand), and both
    /// orders converge to A⁻¹b (to 1e-9: ‖x − x*‖ ≤ ‖∇f‖/λ_min with ‖∇f‖ ≤ 1e-10 and λ_min(A) > 1).
    func testQuadraticIsGaussSeidel() {
        let a: [Double] = [4, 1, 0.5,
                           1, 3, -0.5,
                           0.5, -0.5, 2]
        let b: [Double] = [1, 2, 3]
        let problem = QuadraticCoordinateProblem(a: a, b: b)
        let one = CoordinateDescent(order: .cyclic, maxSweeps: 1, gradientTolerance: 0).minimize(problem, from: [0, 0, 0])
        var x = [0.0, 0, 0]
        for i in 0..<3 {
            var s = b[i]
            for k in 0..<3 where k != i { s -= a[i * 3 + k] * x[k] }
            x[i] = s / a[i * 3 + i]
        }
        XCTAssertEqual(one.x, x)
        XCTAssertEqual(one.iterations, 1)
        // x* = A⁻¹b, from the 3×3 inverse by cofactors.
        let det = a[0] * (a[4] * a[8] - a[5] * a[7]) - a[1] * (a[3] * a[8] - a[5] * a[6]) + a[2] * (a[3] * a[7] - a[4] * a[6])
        let inverse = [a[4] * a[8] - a[5] * a[7], a[2] * a[7] - a[1] * a[8], a[1] * a[5] - a[2] * a[4],
                       a[5] * a[6] - a[3] * a[8], a[0] * a[8] - a[2] * a[6], a[2] * a[3] - a[0] * a[5],
                       a[3] * a[7] - a[4] * a[6], a[1] * a[6] - a[0] * a[7], a[0] * a[4] - a[1] * a[3]].map { $0 / det }
        let xStar = (0..<3).map { i in (0..<3).reduce(0.0) { $0 + inverse[i * 3 + $1] * b[$1] } }
        for order in [CoordinateDescent.Order.cyclic, .randomised(seed: 5)] {
            let result = CoordinateDescent(order: order, gradientTolerance: 1e-10).minimize(problem, from: [0, 0, 0])
            XCTAssertEqual(result.stop, .converged)
            for i in 0..<3 { XCTAssertEqual(result.x[i], xStar[i], accuracy: 1e-9) }
        }
    }

    /// The theory page's comparison: the rows exist and converged, and cyclic coordinate descent needs fewer sweeps
    /// than GD-Armijo needs iterations on this problem (measured 8 vs 34: exact 1-D minimisation adapts to each
    /// coordinate's curvature, which a single global step size cannot).
    func testTheoryComparisonIncludesCoordinateDescent() throws {
        let result = try TheoryExperiment.run()
        XCTAssertEqual(result.fullBatchResults.map(\.stop), [.converged, .converged, .converged, .converged])
        XCTAssertEqual(result.solverSeconds.count, 4)
        XCTAssertTrue(result.solverSeconds.allSatisfy { $0 > 0 })
        XCTAssertLessThan(result.coordinateCyclic.iterations, result.gdArmijo.iterations)
        XCTAssertTrue(result.table().contains("CD randomised"))
    }
}
