import Optimizers
import SwiftMPI
import Tensors
import FullBatch
import XCTest

/// Rosenbrock's function f(x, y) = (1 − x)² + 100(y − x²)², minimum 0 at (1, 1) (N&W 2006, eq. 2.22).
private final class RosenbrockFunction: FullBatchObjective {
    var dimension: Int { 2 }
    func valueAndGradient(_ x: UnsafeBufferPointer<Double>, _ g: UnsafeMutableBufferPointer<Double>) throws -> Double {
        let a = 1 - x[0], b = x[1] - x[0] * x[0]
        g[0] = -2 * a - 400 * x[0] * b
        g[1] = 200 * b
        return a * a + 100 * b * b
    }
}

/// Evaluates an objective on arrays (tests only).
private func evaluate(_ f: any FullBatchObjective, _ x: [Double]) throws -> (value: Double, gradient: [Double]) {
    var g = [Double](repeating: 0, count: x.count)
    let v = try x.withUnsafeBufferPointer { xp in try g.withUnsafeMutableBufferPointer { try f.valueAndGradient(xp, $0) } }
    return (v, g)
}

private func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

/// Detailed checks of the full-batch optimizers, beside the headline ones in FullBatchTests.swift.
final class FullBatchOptimizerDetailTests: XCTestCase {
    let data = LogisticRegressionData.generate(samples: 200, features: 10, mu: 1, seed: 2024, featureScale: 3)
    var zero: [Double] { [Double](repeating: 0, count: data.features) }

    /// The analytic gradient matches central differences (step 1e-6; error O(h²) ≈ 1e-11, tolerance 1e-7).
    func testLogisticGradientMatchesFiniteDifferences() throws {
        let objective = LogisticRegressionObjective(data: data)
        var rng = SplitMix64(seed: 3)
        let w = (0..<data.features).map { _ in 0.3 * rng.normal() }
        let (_, g) = try evaluate(objective, w)
        for j in 0..<data.features {
            var plus = w, minus = w
            plus[j] += 1e-6; minus[j] -= 1e-6
            let numeric = (try evaluate(objective, plus).value - evaluate(objective, minus).value) / 2e-6
            XCTAssertEqual(g[j], numeric, accuracy: 1e-7, "component \(j)")
        }
        XCTAssertEqual(try evaluate(objective, w).value, data.value(w), accuracy: 0)
    }

    /// Every accepted Armijo step decreased f by at least c₁·α·‖g‖² (checked from the history), and GD-Armijo ends at
    /// Newton's w*: ‖w − w*‖ ≤ ‖∇f‖/μ < 1e-8 by strong convexity.
    func testArmijoDecreaseAtEveryGDStep() throws {
        let gd = try GradientDescent(stepRule: .armijo(ArmijoBacktracking()), gradientTolerance: 1e-8)
            .minimize(LogisticRegressionObjective(data: data), from: zero)
        XCTAssertEqual(gd.stop, .converged)
        XCTAssertEqual(gd.history.map(\.iteration), Array(0...gd.iterations))
        for (before, after) in zip(gd.history, gd.history.dropFirst()) {
            let step = try XCTUnwrap(after.lineSearch)
            XCTAssertLessThanOrEqual(after.value, before.value - 1e-4 * step.step * before.gradientNorm * before.gradientNorm)
        }
        let wStar = data.newtonMinimiser().w
        XCTAssertLessThan(zip(gd.x, wStar).map { abs($0 - $1) }.max()!, 1e-8)
    }

    /// Strong Wolfe at every accepted L-BFGS step, checked from the recorded iterates with fresh evaluations (not the
    /// line search's own report): with p_k = (x_{k+1} − x_k)/α_k, φ(α) ≤ φ(0) + c₁αφ'(0) and |φ'(α)| ≤ c₂|φ'(0)|.
    func testStrongWolfeHoldsAtEveryLBFGSStep() throws {
        for (name, objective, start): (String, any FullBatchObjective, [Double]) in [
            ("logistic", LogisticRegressionObjective(data: data), zero),
            ("rosenbrock", RosenbrockFunction(), [-1.2, 1]),
        ] {
            let result = try LBFGS(gradientTolerance: 1e-8, recordIterates: true).minimize(objective, from: start)
            XCTAssertEqual(result.stop, .converged, name)
            XCTAssertEqual(result.iterates.count, result.history.count)
            for k in 0..<(result.iterates.count - 1) {
                let step = try XCTUnwrap(result.history[k + 1].lineSearch)
                XCTAssertTrue(step.satisfied, "\(name) step \(k)")
                let alpha = step.step
                let p = zip(result.iterates[k + 1], result.iterates[k]).map { ($0 - $1) / alpha }
                let (f0, g0) = try evaluate(objective, result.iterates[k])
                let (f1, g1) = try evaluate(objective, result.iterates[k + 1])
                let slope0 = dot(g0, p), slope1 = dot(g1, p)
                XCTAssertLessThan(slope0, 0, "\(name) step \(k): not a descent direction")
                // Slack: x_{k+1} − x_k recovers p to ~1e-16 relative, so slopes carry ~1e-15 relative error.
                XCTAssertLessThanOrEqual(f1, f0 + 1e-4 * alpha * slope0 + 1e-15 * abs(f0), "\(name) step \(k): sufficient decrease")
                XCTAssertLessThanOrEqual(abs(slope1), 0.9 * abs(slope0) * (1 + 1e-9) + 1e-15, "\(name) step \(k): curvature")
            }
        }
    }

    /// The Rosenbrock valley is badly conditioned: GD-Armijo does not reach ‖∇f‖ < 1e-10 in the 200 iterations in
    /// which L-BFGS does (FullBatchTests.testLBFGSSolvesRosenbrock), evidence that the curvature pairs matter.
    func testGDArmijoIsSlowOnRosenbrock() throws {
        let lbfgs = try LBFGS(maxIterations: 200, gradientTolerance: 1e-10).minimize(RosenbrockFunction(), from: [-1.2, 1])
        let gd = try GradientDescent(maxIterations: 200, gradientTolerance: 1e-10).minimize(RosenbrockFunction(), from: [-1.2, 1])
        XCTAssertEqual(lbfgs.stop, .converged)
        XCTAssertEqual(gd.stop, .maxIterations)
        XCTAssertTrue(zip(lbfgs.history, lbfgs.history.dropFirst()).allSatisfy { $1.value < $0.value })
    }

    /// f(x) = ½x₀² + 2x₁² from (3, 4): g₀ = (3, 16), so the first search runs along −g₀ with φ'(0) = −‖g₀‖² = −265
    /// (first trial step min(1, 1/‖g₀‖₁) = 1/19, as torch); on a 2-D quadratic L-BFGS then needs only a handful of
    /// iterations to reach ‖∇f‖ < 1e-12.
    func testLBFGSOnAQuadratic() throws {
        final class Quadratic: FullBatchObjective {
            var dimension: Int { 2 }
            func valueAndGradient(_ x: UnsafeBufferPointer<Double>, _ g: UnsafeMutableBufferPointer<Double>) throws -> Double {
                g[0] = x[0]; g[1] = 4 * x[1]
                return 0.5 * x[0] * x[0] + 2 * x[1] * x[1]
            }
        }
        let result = try LBFGS(gradientTolerance: 1e-12, recordIterates: true).minimize(Quadratic(), from: [3, 4])
        XCTAssertEqual(result.stop, .converged)
        // Inexact (c₂ = 0.9) steps and H₀ rescaled every iteration cost finite termination; measured 8 iterations.
        XCTAssertLessThanOrEqual(result.iterations, 12)
        let first = try XCTUnwrap(result.history[1].lineSearch)
        XCTAssertTrue(first.satisfied)
        XCTAssertEqual(first.slope0, -(9 + 256), accuracy: 1e-12)  // −‖g₀‖² along −g₀
    }

    /// Armijo backtracking halves from the initial step until sufficient decrease: on f = 50x² from x = 1 along
    /// d = −∇f = −100, φ(α) = 50(1 − 100α)² and the test is φ(α) ≤ 50 − α. α = 1, …, 1/32 give φ ≥ 225; α = 1/64 gives
    /// 50·0.5625² ≈ 15.8, the first accepted, after 7 evaluations.
    func testArmijoBacktrackingHalvesUntilDecrease() throws {
        final class Steep: FullBatchObjective {
            var dimension: Int { 1 }
            func valueAndGradient(_ x: UnsafeBufferPointer<Double>, _ g: UnsafeMutableBufferPointer<Double>) throws -> Double {
                g[0] = 100 * x[0]
                return 50 * x[0] * x[0]
            }
        }
        var xTrial = [0.0], gTrial = [0.0]
        let x = [1.0], d = [-100.0]
        let step = try x.withUnsafeBufferPointer { xp in try d.withUnsafeBufferPointer { dp in
            try xTrial.withUnsafeMutableBufferPointer { xt in try gTrial.withUnsafeMutableBufferPointer { gt in
                try ArmijoBacktracking().search(Steep(), x: xp.baseAddress!, value0: 50, slope0: -10_000,
                                                direction: dp.baseAddress!, xTrial: xt, gTrial: gt)
            }}
        }}
        XCTAssertTrue(step.satisfied)
        XCTAssertEqual(step.step, 1.0 / 64)
        XCTAssertEqual(step.evaluations, 7)
        XCTAssertEqual(step.value, 50 * 0.5625 * 0.5625)
        XCTAssertEqual(xTrial[0], -0.5625)  // the accepted point and its gradient are left in the trial buffers
        XCTAssertEqual(gTrial[0], -56.25)
    }

    /// Data-parallel L-BFGS on world sizes that do not divide m = 200 (2 divides; 7 gives blocks of 28 and 29):
    /// the same iterates as 1 rank, bit-identical on every rank, and the blocks partition the samples. The two differ only in the order of the data sums (≈ 1e-16
    /// relative per evaluation); over the ~10 iterations that stays below 1e-12 per iterate (tolerance).
    func testDistributedLBFGSOnUnevenWorldSizes() throws {
        let data = self.data, zero = self.zero
        let single = try LBFGS(gradientTolerance: 1e-10, recordIterates: true)
            .minimize(LogisticRegressionObjective(data: data), from: zero)
        for size in [2, 7] {
            let results = try SimulatedWorld.run(size: size) { comm -> ([[Double]], Range<Int>, Int) in
                let objective = LogisticRegressionObjective(data: data, comm: comm)
                let r = try LBFGS(gradientTolerance: 1e-10, recordIterates: true).minimize(objective, from: zero)
                return (r.iterates, objective.rows, objective.evaluations)
            }
            // The blocks partition the samples.
            XCTAssertEqual(results.map(\.1.count).reduce(0, +), data.samples)
            XCTAssertEqual(results.first!.1.lowerBound, 0)
            XCTAssertTrue(zip(results, results.dropFirst()).allSatisfy { $0.1.upperBound == $1.1.lowerBound })
            for r in results {
                XCTAssertEqual(r.0, results[0].0, "ranks disagree (must be bit-identical)")
                XCTAssertEqual(r.2, results[0].2)
            }
            let distributed = results[0].0
            XCTAssertEqual(distributed.count, single.iterates.count, "\(size) ranks: different iteration count")
            for (a, b) in zip(distributed, single.iterates) {
                XCTAssertLessThan(zip(a, b).map { abs($0 - $1) }.max()!, 1e-12, "\(size) ranks")
            }
        }
    }

    /// GD-Armijo distributed the same way, over 3 ranks: bit-identical across ranks; against 1 rank, the backtracking
    /// decisions of the last iterations compare values equal to a few ulps and may go either way (measured 6e-10
    /// apart), so the tolerance is the radius both stopping points share: ‖w − w*‖ ≤ ‖∇f‖/μ < 1e-8 each, 2e-8 apart.
    func testDistributedGDArmijoMatchesOneRank() throws {
        let data = self.data, zero = self.zero
        let single = try GradientDescent(gradientTolerance: 1e-8).minimize(LogisticRegressionObjective(data: data), from: zero)
        let results = try SimulatedWorld.run(size: 3) { comm -> [Double] in
            try GradientDescent(gradientTolerance: 1e-8).minimize(LogisticRegressionObjective(data: data, comm: comm), from: zero).x
        }
        XCTAssertEqual(results[1], results[0])
        XCTAssertEqual(results[2], results[0])
        XCTAssertLessThan(zip(results[0], single.x).map { abs($0 - $1) }.max()!, 2e-8)
    }

    /// A sharded-parameter objective exercises the reduction hook: each of 2 ranks owns half of a separable
    /// quadratic's coordinates (f = Σ cᵢxᵢ²/2), so every dot product must be all-reduced. L-BFGS must match the
    /// unsharded run on the concatenated coordinates.
    func testReductionHookForShardedParameters() throws {
        let c: [Double] = [1, 2, 3, 4, 5, 6], start: [Double] = [1, -1, 2, -2, 3, -3]
        final class Shard: FullBatchObjective {
            let c: [Double]; let comm: Communicator?
            init(_ c: [Double], comm: Communicator?) { self.c = c; self.comm = comm }
            var dimension: Int { c.count }
            func valueAndGradient(_ x: UnsafeBufferPointer<Double>, _ g: UnsafeMutableBufferPointer<Double>) throws -> Double {
                var v = 0.0
                for i in 0..<c.count { g[i] = c[i] * x[i]; v += 0.5 * c[i] * x[i] * x[i] }
                return try comm?.allReduce(v, op: .sum) ?? v
            }
            func reduceParameterSums(_ partials: UnsafeMutableBufferPointer<Double>) throws {
                try comm?.allReduce(partials, op: .sum)
            }
        }
        let whole = try LBFGS(gradientTolerance: 1e-12).minimize(Shard(c, comm: nil), from: start)
        let halves = try SimulatedWorld.run(size: 2) { comm -> [Double] in
            let mine = comm.rank == 0 ? 0..<3 : 3..<6
            return try LBFGS(gradientTolerance: 1e-12).minimize(Shard(Array(c[mine]), comm: comm), from: Array(start[mine])).x
        }
        XCTAssertEqual(whole.stop, .converged)
        let joined = halves[0] + halves[1]
        XCTAssertLessThan(zip(joined, whole.x).map { abs($0 - $1) }.max()!, 1e-14)
        // Without the hook each rank sees only its half of every dot product, so the ranks' line searches disagree and
        // their collectives stop matching (tried: the run then blocks instead of returning). The result is the minimiser 0.
        XCTAssertLessThan(whole.x.map(abs).max()!, 1e-12)
    }
}
