import Distributed
@testable import GradientFree
import Optimizers
import SwiftMPI
import Tensors
import XCTest

/// A flat table of one tensor of D elements, and its single segment (no weight decay), as the trainer would build.
func wholeRangeSegments(_ d: Int) -> [ParamSegment] {
    var table = ParameterTable()
    table.add("x", shape: [d], role: .bias)
    return makeSegments(table: table, owned: 0..<d, weightDecay: { _ in 0 })
}

func makeES(start: [Float], population: Int, sigma: Float, seed: UInt64 = 11, optimizer: String = "adam") -> EvolutionStrategy {
    let d = start.count
    let opt: Optimizer = optimizer == "sgd" ? SGD.make(count: d) : Adam.make(count: d, name: "adam")
    return start.withUnsafeBufferPointer {
        EvolutionStrategy(initial: $0, settings: .init(population: population, sigma: sigma, seed: seed),
                          optimizer: opt, segments: wholeRangeSegments(d), noise: NoiseTable(count: 1 << 14, seed: seed))
    }
}

/// Runs `steps` steps (or until the solution's loss is below `target`) on one process; returns the solution's
/// loss and the objective evaluations spent.
func minimise(_ method: PopulationMethod, _ objective: PopulationObjective & AnyObject, steps: Int, lr: Float = 0,
              decay: Float = 1, target: Double = -.infinity, evaluationsOf: () -> Int) throws -> (loss: Double, evaluations: Int) {
    var solution = [Float](repeating: 0, count: method.dimension)
    let exchange = SingleProcessExchange()
    func solutionLoss() -> Double {
        solution.withUnsafeMutableBufferPointer { method.writeSolution(into: $0) }
        return solution.withUnsafeBufferPointer { objective.loss($0) }
    }
    var rate = lr
    for _ in 0..<steps {
        _ = try method.step(objective: objective, exchange: exchange, lr: rate)
        rate *= decay
        if solutionLoss() < target { break }
    }
    return (solutionLoss(), evaluationsOf())
}

final class EvolutionStrategyTests: XCTestCase {
    /// Sphere in 10 dimensions from x = (2, …, 2), f₀ = 40: OpenAI-ES with Adam must reach f < 1e-4 — a 4·10⁵-fold
    /// reduction, which needs the gradient estimate to point downhill every step, not just on average — within
    /// 400 generations of 20 evaluations (8,000 function evaluations).
    func testSphereMinimisedWithinBudget() throws {
        let f = SphereFunction(dimension: 10)
        let es = makeES(start: [Float](repeating: 2, count: 10), population: 20, sigma: 0.05)
        let result = try minimise(es, f, steps: 400, lr: 0.05, target: 1e-4) { f.evaluations }
        XCTAssertLessThan(result.loss, 1e-4)
        XCTAssertLessThanOrEqual(result.evaluations, 8_000 + 400)  // + one solution check per step
    }

    /// Rastrigin in 5 dimensions from x = (2.5, …), f₀ ≈ 151 (a local-minimum trap near every integer point). ES
    /// descends the Gaussian-smoothed loss, and at σ = 2 the smoothing removes the cosine ripples (their amplitude
    /// shrinks by e^{−2π²σ²}), so the mean heads for 0; Adam at learning rate 0.1 decayed by 0.985 per generation
    /// lets it settle. Target: the global basin, f < 1, within 300 generations of 50 evaluations (seeds 1–6 all
    /// reach it within 170 generations).
    func testRastriginReachesTheGlobalBasin() throws {
        let f = RastriginFunction(dimension: 5)
        let es = makeES(start: [Float](repeating: 2.5, count: 5), population: 50, sigma: 2)
        let result = try minimise(es, f, steps: 300, lr: 0.1, decay: 0.985, target: 1) { f.evaluations }
        XCTAssertLessThan(result.loss, 1, "ES stalled in a local minimum of Rastrigin")
    }

    /// The estimate for a linear loss L(x) = aᵀx must point along a (cosine > 0.9 with 200 pairs; for i.i.d.
    /// Gaussian directions the expected cosine is ≈ 0.99 in 8 dimensions, 0.9 leaves room for the ranking).
    func testGradientEstimatePointsAlongTheTrueGradient() throws {
        final class Linear: PopulationObjective {
            let a: [Float] = [1, -2, 3, 0.5, -1, 2, -0.5, 1.5]
            var dimension: Int { a.count }
            func loss(_ x: UnsafeBufferPointer<Float>) -> Double { zip(a, x).reduce(0) { $0 + Double($1.0 * $1.1) } }
        }
        let f = Linear()
        let es = makeES(start: [Float](repeating: 0, count: 8), population: 400, sigma: 0.1, optimizer: "sgd")
        _ = try es.step(objective: f, exchange: SingleProcessExchange(), lr: 0)
        let g = es.gradient.array
        let dot = zip(g, f.a).reduce(0) { $0 + $1.0 * $1.1 }
        let cosine = dot / (sqrt(g.reduce(0) { $0 + $1 * $1 }) * sqrt(f.a.reduce(0) { $0 + $1 * $1 }))
        XCTAssertGreaterThan(cosine, 0.9)
    }

    /// Centred ranks: a permutation of {k/(P−1) − 1/2}, summing to 0, the same for any increasing transform of the
    /// losses, ties broken by index.
    func testCentredRanks() {
        let losses = [3.0, -1, 7, 3, 0.5]
        var u = [Double](repeating: 0, count: 5), order = [Int](repeating: 0, count: 5)
        centredRanks(losses, into: &u, order: &order)
        XCTAssertEqual(u, [0, -0.5, 0.5, 0.25, -0.25])
        var transformed = u
        centredRanks(losses.map { exp($0) * 100 }, into: &transformed, order: &order)
        XCTAssertEqual(transformed, u)
        XCTAssertEqual(u.reduce(0, +), 0, accuracy: 1e-15)
    }

    /// The ES acceptance test of the issue: the same seed on 1, 2 and 3 simulated ranks gives bit-identical means
    /// after 15 generations (losses are combined by adding exact zeros, so no rounding differs), and each
    /// generation moves exactly P doubles per rank.
    func testSameResultOnOneAndManyRanks() throws {
        let start: [Float] = [1.5, -0.5, 2, 0.25, -1, 3]
        func run(ranks: Int) throws -> [[Float]] {
            try SimulatedWorld.run(size: ranks) { comm in
                let es = makeES(start: start, population: 12, sigma: 0.3)
                let exchange = CommunicatorPopulationExchange(comm: comm)
                let f = RastriginFunction(dimension: start.count)
                for _ in 0..<15 { _ = try es.step(objective: f, exchange: exchange, lr: 0.05) }
                XCTAssertEqual(exchange.bytesSent, 15 * 12 * 8)
                XCTAssertEqual(exchange.collectives, 15)
                XCTAssertEqual(f.evaluations, 15 * 12 / ranks, "each rank scores only its share")
                return es.mean.array
            }
        }
        let one = try run(ranks: 1)[0]
        for ranks in [2, 3] {
            for (r, mean) in try run(ranks: ranks).enumerated() {
                XCTAssertEqual(mean, one, "rank \(r) of \(ranks) differs from the 1-rank run")
            }
        }
        XCTAssertNotEqual(one, start, "the run must have moved")
    }

    /// Checkpoint round trip: 6 steps, export, import into a fresh instance, 6 more = 12 steps straight, bit for bit.
    func testResumeEqualsUninterruptedRun() throws {
        let start: [Float] = [1, 2, -1, 0.5]
        let f = SphereFunction(dimension: 4)
        let straight = makeES(start: start, population: 8, sigma: 0.1)
        for _ in 0..<12 { _ = try straight.step(objective: f, exchange: SingleProcessExchange(), lr: 0.05) }
        let first = makeES(start: start, population: 8, sigma: 0.1)
        for _ in 0..<6 { _ = try first.step(objective: f, exchange: SingleProcessExchange(), lr: 0.05) }
        let resumed = makeES(start: [0, 0, 0, 0], population: 8, sigma: 0.1)
        try resumed.importState(first.exportState())
        for _ in 0..<6 { _ = try resumed.step(objective: f, exchange: SingleProcessExchange(), lr: 0.05) }
        XCTAssertEqual(resumed.mean.array, straight.mean.array)
        XCTAssertEqual(resumed.stepCount, 12)
    }

    func testPartitionCheckNamesTheKeyAndAFix() {
        XCTAssertNil(PopulationPartition.check(members: 24, unit: 2, ranks: 4, key: "es.population"))
        let message = PopulationPartition.check(members: 20, unit: 2, ranks: 4, key: "es.population")
        XCTAssertEqual(message, "es.population = 20 does not divide over 4 ranks (10 groups of 2); use a multiple of 8, e.g. 16")
        XCTAssertEqual(PopulationPartition.check(members: 7, unit: 2, ranks: 1, key: "es.population"),
                       "es.population = 7 must be a positive multiple of 2")
        XCTAssertEqual(PopulationPartition(members: 12, ranks: 3).block(of: 2), 8..<12)
    }
}

func makeGA(start: [Float], population: Int, selection: GeneticAlgorithm.Selection = .tournament, sigma: Float,
            elites: Int = 2, seed: UInt64 = 5) -> GeneticAlgorithm {
    start.withUnsafeBufferPointer {
        GeneticAlgorithm(initial: $0, settings: .init(population: population, elites: elites, selection: selection,
                                                      tournamentSize: 3, truncation: 0.25, crossoverRate: 0.5,
                                                      mutationScale: sigma, seed: seed),
                         noise: NoiseTable(count: 1 << 14, seed: seed))
    }
}

final class GeneticAlgorithmTests: XCTestCase {
    /// Sphere in 5 dimensions from (1, …), f₀ = 5: with a fixed mutation scale σ = 0.01 the GA cannot resolve
    /// much below σ²·D = 5e-4, so the stated target is f < 1e-2 (500-fold) within 300 generations of 32.
    func testSphereMinimisedWithinBudget() throws {
        for selection in GeneticAlgorithm.Selection.allCases {
            let f = SphereFunction(dimension: 5)
            let ga = makeGA(start: [Float](repeating: 1, count: 5), population: 32, selection: selection, sigma: 0.03)
            let result = try minimise(ga, f, steps: 300, target: 1e-2) { f.evaluations }
            XCTAssertLessThan(result.loss, 1e-2, "\(selection)")
        }
    }

    /// Rastrigin in 3 dimensions from (2.5, …) (f₀ ≈ 98): mutation σ = 0.5 can hop between basins; the GA must find
    /// the global basin (f < 1; the nearest local minima have f ≈ 1, 2, …) within 400 generations of 48.
    func testRastriginReachesTheGlobalBasin() throws {
        let f = RastriginFunction(dimension: 3)
        let ga = makeGA(start: [Float](repeating: 2.5, count: 3), population: 48, sigma: 0.3, elites: 4)
        let result = try minimise(ga, f, steps: 400, target: 1) { f.evaluations }
        XCTAssertLessThan(result.loss, 1)
    }

    /// Elitism on a deterministic function: the best loss of a generation never increases.
    func testElitismNeverLosesTheBest() throws {
        let f = RastriginFunction(dimension: 4)
        let ga = makeGA(start: [Float](repeating: 2, count: 4), population: 16, sigma: 0.5)
        var best = Double.infinity
        for _ in 0..<60 {
            let r = try ga.step(objective: f, exchange: SingleProcessExchange(), lr: 0)
            XCTAssertLessThanOrEqual(r.bestLoss, best)
            best = r.bestLoss
        }
    }

    /// Uniform crossover: every child element is its parents' element at that position, and about half come from
    /// each parent (10,000 elements: 5,000 ± 5σ = ± 250).
    func testUniformCrossoverTakesEachElementFromAParent() {
        let d = 10_000
        let a = (0..<d).map { Float($0) }, b = (0..<d).map { -Float($0) - 1 }
        var child = [Float](repeating: .nan, count: d)
        var rng = SplitMix64(seed: 3)
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in child.withUnsafeMutableBufferPointer {
            GeneticAlgorithm.uniformCrossover($0, pa, pb, &rng)
        }}}
        var fromA = 0
        for k in 0..<d {
            XCTAssertTrue(child[k] == a[k] || child[k] == b[k], "element \(k) comes from neither parent")
            if child[k] == a[k] { fromA += 1 }
        }
        XCTAssertEqual(Double(fromA), 5_000, accuracy: 250)
    }

    /// Selection invariants on losses 0 < 1 < 2 < 3 (P = 4): truncation to the best quarter always picks member 0;
    /// a 3-tournament picks the worst only if all three draws are it, (1/4)³ = 1/64, and the best with probability
    /// 1 − (3/4)³ = 37/64 (checked over 64,000 draws to ± 5 binomial standard deviations).
    func testSelectionPressure() throws {
        final class ByIndex: PopulationObjective {
            var dimension: Int { 1 }
            func loss(_ x: UnsafeBufferPointer<Float>) -> Double { Double(x[0]) }
        }
        for selection in GeneticAlgorithm.Selection.allCases {
            let ga = makeGA(start: [0], population: 4, selection: selection, sigma: 0, elites: 0)
            // Members 0..3 with losses 0..3: write them, score once.
            for m in 0..<4 { ga.members.row(m)[0] = Float(m) }
            _ = try ga.step(objective: ByIndex(), exchange: SingleProcessExchange(), lr: 0)
            XCTAssertEqual(ga.losses, [0, 1, 2, 3])
            var counts = [0, 0, 0, 0], rng = SplitMix64(seed: 9)
            let n = 64_000
            for _ in 0..<n { counts[ga.selectParent(&rng)] += 1 }
            switch selection {
            case .truncation: XCTAssertEqual(counts, [n, 0, 0, 0])
            case .tournament:
                for (m, p) in [(0, 37.0 / 64), (3, 1.0 / 64)] {
                    let sd = (Double(n) * p * (1 - p)).squareRoot()
                    XCTAssertEqual(Double(counts[m]), Double(n) * p, accuracy: 5 * sd, "member \(m)")
                }
            }
        }
    }

    /// The GA on 1 vs 2 vs 4 simulated ranks: bit-identical populations (the state is replicated and the losses
    /// are combined exactly).
    func testSameResultOnOneAndManyRanks() throws {
        func run(ranks: Int) throws -> [[Float]] {
            try SimulatedWorld.run(size: ranks) { comm in
                let ga = makeGA(start: [2, -1, 0.5], population: 8, sigma: 0.2)
                let exchange = CommunicatorPopulationExchange(comm: comm)
                let f = RastriginFunction(dimension: 3)
                for _ in 0..<10 { _ = try ga.step(objective: f, exchange: exchange, lr: 0) }
                return ga.members.storage.array
            }
        }
        let one = try run(ranks: 1)[0]
        for ranks in [2, 4] { for members in try run(ranks: ranks) { XCTAssertEqual(members, one) } }
    }
}

final class SimulatedAnnealingTests: XCTestCase {
    /// The Metropolis rule itself: downhill and flat moves always; uphill iff u < e^{−Δ/T}.
    func testMetropolisAcceptanceRule() {
        XCTAssertTrue(SimulatedAnnealing.metropolisAccepts(delta: -5, temperature: 1e-9, uniform: 0.999))
        XCTAssertTrue(SimulatedAnnealing.metropolisAccepts(delta: 0, temperature: 1, uniform: 0.999))
        let p = exp(-0.7 / 0.5)  // Δ = 0.7 at T = 0.5: ≈ 0.2466
        XCTAssertTrue(SimulatedAnnealing.metropolisAccepts(delta: 0.7, temperature: 0.5, uniform: p - 1e-9))
        XCTAssertFalse(SimulatedAnnealing.metropolisAccepts(delta: 0.7, temperature: 0.5, uniform: p + 1e-9))
        // Hotter accepts more of the same uphill move.
        XCTAssertTrue(SimulatedAnnealing.metropolisAccepts(delta: 0.7, temperature: 5, uniform: 0.5))
        XCTAssertFalse(SimulatedAnnealing.metropolisAccepts(delta: 0.7, temperature: 0.05, uniform: 0.01))
    }

    /// Acceptance frequency in a running chain: on f(x) = x (D = 1, no rescore) the proposal x + sε is uphill by sε
    /// when ε > 0, so at constant T the expected acceptance rate is P(ε ≤ 0) + E[e^{−aε}; ε > 0] = 1/2 + e^{a²/2}Φ(−a)
    /// with a = s/T (ε ~ N(0, 1)). Over 20,000 steps the binomial standard deviation of the rate is 0.0033; the
    /// tolerance 0.02 is 5 of those plus the sampling error of a 65,536-value noise table.
    func testAcceptanceRateMatchesBoltzmannFactor() throws {
        final class Identity: PopulationObjective {
            var dimension: Int { 1 }
            func loss(_ x: UnsafeBufferPointer<Float>) -> Double { Double(x[0]) }
        }
        let t = 0.3, s: Float = 0.5, steps = 20_000
        let sa = [Float(0)].withUnsafeBufferPointer {
            SimulatedAnnealing(initial: $0, settings: .init(chains: 1, proposalScale: s, initialTemperature: t, cooling: 1,
                                                            rescore: false, seed: 4), noise: NoiseTable(count: 1 << 16, seed: 4))
        }
        for _ in 0..<steps { _ = try sa.step(objective: Identity(), exchange: SingleProcessExchange(), lr: 0) }
        let a = Double(s) / t
        let expected = 0.5 + exp(a * a / 2) * erfc(a / 2.0.squareRoot()) / 2
        XCTAssertEqual(Double(sa.accepted[0]) / Double(steps), expected, accuracy: 0.02)
    }

    /// Sphere in 5 dimensions from (1, …): annealing with 4 independent chains must reach f < 1e-2 within 3,000
    /// steps (a proposal scale of 0.02 limits the attainable floor to about s²D = 2e-3).
    func testSphereMinimisedWithinBudget() throws {
        let f = SphereFunction(dimension: 5)
        let sa = [Float](repeating: 1, count: 5).withUnsafeBufferPointer {
            SimulatedAnnealing(initial: $0, settings: .init(chains: 4, proposalScale: 0.05, initialTemperature: 0.1,
                                                            cooling: 0.997, rescore: false, seed: 8),
                               noise: NoiseTable(count: 1 << 14, seed: 8))
        }
        let result = try minimise(sa, f, steps: 3_000, target: 1e-2) { f.evaluations }
        XCTAssertLessThan(result.loss, 1e-2)
    }

    /// Rastrigin in 3 dimensions from (2.5, …) with parallel tempering over 8 slots (ladder 2, swaps every 5 steps):
    /// the coldest chains descend while the hot ones cross barriers, and the best chain must reach the global basin
    /// (f < 1) within 4,000 steps.
    func testRastriginWithParallelTempering() throws {
        let f = RastriginFunction(dimension: 3)
        let sa = [Float](repeating: 2.5, count: 3).withUnsafeBufferPointer {
            SimulatedAnnealing(initial: $0, settings: .init(chains: 8, proposalScale: 0.3, initialTemperature: 1,
                                                            cooling: 0.999, ladder: 2, swapEvery: 5, rescore: false, seed: 2),
                               noise: NoiseTable(count: 1 << 14, seed: 2))
        }
        let result = try minimise(sa, f, steps: 4_000, target: 1) { f.evaluations }
        XCTAssertLessThan(result.loss, 1)
        XCTAssertNotEqual(sa.chainAtSlot, Array(0..<8), "tempering swaps must have happened")
    }

    /// The tempering swap rule: a colder slot holding the worse chain always swaps; otherwise with e^{(β_c−β_h)(L_c−L_h)}.
    func testTemperingSwapRule() {
        XCTAssertTrue(SimulatedAnnealing.temperingSwapAccepts(coldBeta: 2, hotBeta: 1, coldLoss: 5, hotLoss: 1, uniform: 0.99))
        let p = exp((2.0 - 1) * (1 - 3.0))
        XCTAssertTrue(SimulatedAnnealing.temperingSwapAccepts(coldBeta: 2, hotBeta: 1, coldLoss: 1, hotLoss: 3, uniform: p * 0.99))
        XCTAssertFalse(SimulatedAnnealing.temperingSwapAccepts(coldBeta: 2, hotBeta: 1, coldLoss: 1, hotLoss: 3, uniform: p * 1.01))
    }

    func testSameResultOnOneAndManyRanks() throws {
        func run(ranks: Int) throws -> [[Float]] {
            try SimulatedWorld.run(size: ranks) { comm in
                let sa = [Float](repeating: 2, count: 4).withUnsafeBufferPointer {
                    SimulatedAnnealing(initial: $0, settings: .init(chains: 4, proposalScale: 0.3, initialTemperature: 1,
                                                                    cooling: 0.99, ladder: 1.5, swapEvery: 3, seed: 1),
                                       noise: NoiseTable(count: 4096, seed: 1))
                }
                let exchange = CommunicatorPopulationExchange(comm: comm)
                for _ in 0..<30 { _ = try sa.step(objective: RastriginFunction(dimension: 4), exchange: exchange, lr: 0) }
                return sa.states.storage.array + sa.chainAtSlot.map(Float.init)
            }
        }
        let one = try run(ranks: 1)[0]
        for ranks in [2, 4] { for s in try run(ranks: ranks) { XCTAssertEqual(s, one) } }
    }
}
