// A real-valued genetic algorithm over the flat buffer: Holland (1975) / Goldberg (1989) with the choices of
// Such et al. (2017), "Deep Neuroevolution: Genetic Algorithms Are a Competitive Alternative for Training Deep
// Neural Networks for Reinforcement Learning": Gaussian mutation θ' = θ + σε and elitism (the best E members are
// copied unchanged and re-scored, so noise in a mini-batch loss cannot keep a lucky member forever). Unlike Such et
// al. it also has uniform crossover (Syswerda 1989): each element from either parent with probability 1/2.
//
// Distribution: the population is replicated (every rank holds all P members and makes the same selection,
// crossover and mutation draws from the stream (seed, generation)); each rank scores its P/ranks members and the P
// losses are combined with one sum, so a generation moves P numbers between ranks.
//
// Dimension letters: D parameters, P members, E elites.

import Tensors

public final class GeneticAlgorithm: PopulationMethod {
    public enum Selection: String, Sendable, CaseIterable {
        /// The best of k members drawn uniformly with replacement (Goldberg & Deb 1991).
        case tournament
        /// Uniform over the best ⌈fraction · P⌉ members (Mühlenbein & Schlierkamp-Voosen 1993; Such et al. 2017).
        case truncation
    }

    public struct Settings: Sendable, Equatable {
        public var population: Int
        public var elites: Int
        public var selection: Selection
        /// k for tournament selection.
        public var tournamentSize: Int
        /// The fraction of members truncation selection draws parents from.
        public var truncation: Double
        /// Probability that a child is a uniform crossover of two parents rather than a copy of one.
        public var crossoverRate: Double
        /// σ of the Gaussian mutation added to every child (not to elites), and of the initial spread.
        public var mutationScale: Float
        public var seed: UInt64

        public init(population: Int, elites: Int = 1, selection: Selection = .tournament, tournamentSize: Int = 3,
                    truncation: Double = 0.5, crossoverRate: Double = 0.5, mutationScale: Float, seed: UInt64) {
            precondition(population >= 2 && elites >= 0 && elites < population, "GA: need 0 ≤ elites < population, population ≥ 2")
            precondition(tournamentSize >= 1 && truncation > 0 && truncation <= 1, "GA: tournament ≥ 1, 0 < truncation ≤ 1")
            precondition(crossoverRate >= 0 && crossoverRate <= 1 && mutationScale >= 0, "GA: rates out of range")
            self.population = population; self.elites = elites; self.selection = selection
            self.tournamentSize = tournamentSize; self.truncation = truncation; self.crossoverRate = crossoverRate
            self.mutationScale = mutationScale; self.seed = seed
        }
    }

    public let settings: Settings
    public let noise: NoiseTable
    public let dimension: Int
    public var name: String { "ga" }
    public var populationSize: Int { settings.population }
    public private(set) var stepCount = 0

    /// The members (P rows); after a step, rows 0..<E are the elites in rank order (row 0 the best).
    public private(set) var members: ParameterRows
    private var next: ParameterRows     // (P rows) the generation being built
    private(set) var losses: [Double]   // (P) of the last scored generation, in its row order
    private var order: [Int]            // (P) rows by ascending loss
    /// Best row of the last scored generation (in `members` after the step: row 0 when E ≥ 1).
    private var bestRow = 0

    /// Member 0 is `initial`; the others are `initial` + σε (one mutation each), so generation 0 explores around it.
    public init(initial: UnsafeBufferPointer<Float>, settings: Settings, noise: NoiseTable? = nil) {
        let d = initial.count, p = settings.population
        self.settings = settings
        dimension = d
        self.noise = noise ?? NoiseTable(dimension: d, seed: settings.seed)
        members = ParameterRows(rows: p, copying: initial)
        next = ParameterRows(rows: p, copying: initial)
        losses = [Double](repeating: 0, count: p)
        order = [Int](repeating: 0, count: p)
        var rng = SplitMix64(seed: settings.seed, stream: 0x6A_1417)
        for m in 1..<p {
            perturbed(members.row(m), initial, self.noise.window(self.noise.offset(dimension: d, &rng), dimension: d),
                      scale: settings.mutationScale)
        }
    }

    /// Row `m` of `members` (D).
    public func member(_ m: Int) -> UnsafeBufferPointer<Float> { members.readRow(m) }

    /// One parent index drawn by the configured selection from rows sorted by loss (`order`).
    func selectParent(_ rng: inout SplitMix64) -> Int {
        let p = settings.population
        switch settings.selection {
        case .tournament:
            var best = Int(rng.next() % UInt64(p))
            for _ in 1..<max(settings.tournamentSize, 1) {
                let c = Int(rng.next() % UInt64(p))
                if losses[c] < losses[best] || (losses[c] == losses[best] && c < best) { best = c }
            }
            return best
        case .truncation:
            let pool = max(1, Int((settings.truncation * Double(p)).rounded(.up)))
            return order[Int(rng.next() % UInt64(pool))]
        }
    }

    /// child[D] = element-wise choice between a and b, one random bit per element (64 elements per draw).
    static func uniformCrossover(_ child: UnsafeMutableBufferPointer<Float>, _ a: UnsafeBufferPointer<Float>,
                                 _ b: UnsafeBufferPointer<Float>, _ rng: inout SplitMix64) {
        let c = child.baseAddress!, pa = a.baseAddress!, pb = b.baseAddress!, d = child.count
        var k = 0
        while k < d {
            var bits = rng.next()
            let end = min(d, k + 64)
            while k < end { c[k] = bits & 1 == 0 ? pa[k] : pb[k]; bits >>= 1; k += 1 }
        }
    }

    public func step(objective: PopulationObjective, exchange: PopulationExchange, lr: Float) throws -> PopulationStepResult {
        precondition(objective.dimension == dimension, "objective has D = \(objective.dimension), GA has \(dimension)")
        let d = dimension, p = settings.population
        // Phase 1: score this rank's members; combine the P losses (the one collective).
        let block = PopulationPartition(members: p, ranks: exchange.size).block(of: exchange.rank)
        try combineLosses(&losses, block: block, exchange: exchange) { m in objective.loss(member(m)) }
        let result = summarise(losses)
        for i in 0..<p { order[i] = i }
        order.sort { losses[$0] < losses[$1] || (losses[$0] == losses[$1] && $0 < $1) }
        bestRow = order[0]

        // Phase 2: the next generation, the same draws on every rank: elites, then children.
        var rng = SplitMix64(seed: settings.seed, stream: UInt64(stepCount) &+ 0x6A)
        for m in 0..<p {
            let child = next.row(m)
            if m < settings.elites { child.update(fromContentsOf: member(order[m])); continue }
            let first = selectParent(&rng)
            if Double(rng.nextUnitFloat()) < settings.crossoverRate {
                let second = selectParent(&rng)
                Self.uniformCrossover(child, member(first), member(second), &rng)
            } else {
                child.update(fromContentsOf: member(first))
            }
            // Mutation in place: child += σε.
            perturbed(child, UnsafeBufferPointer(child), noise.window(noise.offset(dimension: d, &rng), dimension: d),
                      scale: settings.mutationScale)
        }
        swap(&members, &next)
        // With elites the best scored member is row 0 of the new generation; without, keep it in `next`'s row.
        stepCount += 1
        return result
    }

    /// The best member of the last scored generation (before the first step: member 0, the initial point).
    public func writeSolution(into params: UnsafeMutableBufferPointer<Float>) {
        if stepCount == 0 || settings.elites > 0 { params.update(fromContentsOf: member(0)); return }
        // No elites: the scored generation is the previous buffer.
        params.update(fromContentsOf: next.readRow(bestRow))
    }

    public func exportState() -> PopulationState {
        PopulationState(stepCount: stepCount, buffers: ["members": members.storage.array, "previous": next.storage.array],
                        scalars: ["losses": losses, "best_row": [Double(bestRow)]])
    }

    public func importState(_ state: PopulationState) throws {
        let n = settings.population * dimension
        members.storage.buffer.update(fromContentsOf: try state.buffer("members", count: n, method: name))
        next.storage.buffer.update(fromContentsOf: try state.buffer("previous", count: n, method: name))
        losses = try state.scalars("losses", count: settings.population, method: name)
        bestRow = Int(try state.scalars("best_row", count: 1, method: name)[0])
        stepCount = state.stepCount
    }
}
