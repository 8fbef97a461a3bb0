// OpenAI-ES: Salimans, Ho, Chen, Sidor & Sutskever (2017), "Evolution Strategies as a Scalable Alternative to
// Reinforcement Learning", Algorithm 2 with the paper's three practical choices:
// - shared noise: perturbation j of generation g is the window of a seeded `NoiseTable` at an offset drawn from
//   the stream (seed, g), so every rank knows every perturbation from two integers and ranks exchange only losses;
// - antithetic (mirrored) pairs θ ± σεⱼ (§2.1), so P = 2Q evaluations per generation;
// - centred-rank fitness shaping (§2.1, Wierstra et al. 2014): losses are replaced by their ranks scaled to
//   [−0.5, 0.5], which makes the update invariant to monotone transforms of the loss and robust to outliers.
// The gradient estimate ĝ = 1/(Pσ) Σⱼ (u(L⁺ⱼ) − u(L⁻ⱼ)) εⱼ (u the shaped utility) is handed to an ordinary optimizer
// from the registry (the paper uses Adam), which applies weight decay through its segments as usual.
//
// Dimension letters: D parameters, Q antithetic pairs, P = 2Q evaluations.

import Optimizers
import Tensors

/// Centred ranks (Salimans et al. 2017): uᵢ = rankᵢ/(P − 1) − 1/2, rank 0 for the lowest loss; ties broken by
/// index so the result is deterministic. `order` is scratch (P).
public func centredRanks(_ losses: [Double], into utilities: inout [Double], order: inout [Int]) {
    let p = losses.count
    precondition(utilities.count == p && order.count == p, "centredRanks: buffers must have P = \(p) elements")
    for i in 0..<p { order[i] = i }
    order.sort { losses[$0] < losses[$1] || (losses[$0] == losses[$1] && $0 < $1) }
    let scale = p > 1 ? 1 / Double(p - 1) : 0
    for (rank, i) in order.enumerated() { utilities[i] = Double(rank) * scale - 0.5 }
}

/// Evolution strategies over the flat buffer, distributed over antithetic pairs (each rank scores Q/ranks pairs).
public final class EvolutionStrategy: PopulationMethod {
    public struct Settings: Sendable, Equatable {
        /// P, evaluations per generation (even: Q = P/2 antithetic pairs).
        public var population: Int
        /// σ, the perturbation scale.
        public var sigma: Float
        public var seed: UInt64
        public init(population: Int, sigma: Float, seed: UInt64) {
            precondition(population >= 2 && population % 2 == 0, "ES population must be even (antithetic pairs)")
            precondition(sigma > 0, "ES σ must be positive")
            self.population = population; self.sigma = sigma; self.seed = seed
        }
    }

    public let settings: Settings
    public let optimizer: Optimizer
    public let segments: [ParamSegment]
    public let noise: NoiseTable
    public var name: String { "es" }
    public var dimension: Int { mean.count }
    public var populationSize: Int { settings.population }
    public private(set) var stepCount = 0

    /// θ, the search distribution's mean (D): the parameters being trained.
    public let mean: FloatBuffer
    /// ĝ of the last generation (D).
    public let gradient: FloatBuffer
    private let candidate: FloatBuffer  // (D)
    private var offsets: [Int]          // (Q) noise windows of this generation
    private var losses: [Double]        // (P) slot 2j: θ + σεⱼ, 2j + 1: θ − σεⱼ
    private var utilities: [Double]     // (P)
    private var order: [Int]            // (P)

    /// `optimizer` must be bound to all D elements; `segments` are its segments (weight decay, lr multipliers).
    public init(initial: UnsafeBufferPointer<Float>, settings: Settings, optimizer: Optimizer, segments: [ParamSegment],
                noise: NoiseTable? = nil) {
        precondition(optimizer.count == initial.count, "the ES optimizer must own all \(initial.count) parameters")
        let d = initial.count
        self.settings = settings
        self.optimizer = optimizer
        self.segments = segments
        self.noise = noise ?? NoiseTable(dimension: d, seed: settings.seed)
        mean = FloatBuffer(count: d)
        mean.buffer.update(fromContentsOf: initial)
        gradient = FloatBuffer(count: d)
        candidate = FloatBuffer(count: d)
        offsets = [Int](repeating: 0, count: settings.population / 2)
        losses = [Double](repeating: 0, count: settings.population)
        utilities = losses
        order = [Int](repeating: 0, count: settings.population)
    }

    public func step(objective: PopulationObjective, exchange: PopulationExchange, lr: Float) throws -> PopulationStepResult {
        precondition(objective.dimension == dimension, "objective has D = \(objective.dimension), ES has \(dimension)")
        let d = dimension, pairs = settings.population / 2, sigma = settings.sigma
        // Phase 1: this generation's perturbations, the same draws on every rank.
        var rng = SplitMix64(seed: settings.seed, stream: UInt64(stepCount) &+ 0xE5)
        for j in 0..<pairs { offsets[j] = noise.offset(dimension: d, &rng) }

        // Phase 2: score this rank's pairs, combine the P losses (the step's one collective).
        let myPairs = PopulationPartition(members: pairs, ranks: exchange.size).block(of: exchange.rank)
        let block = (2 * myPairs.lowerBound)..<(2 * myPairs.upperBound)
        let centre = UnsafeBufferPointer(mean.buffer)
        try combineLosses(&losses, block: block, exchange: exchange) { i in
            perturbed(candidate.buffer, centre, noise.window(offsets[i / 2], dimension: d), scale: i % 2 == 0 ? sigma : -sigma)
            return objective.loss(UnsafeBufferPointer(candidate.buffer))
        }

        // Phase 3: shaped gradient estimate, then the optimizer's update (identical on every rank).
        centredRanks(losses, into: &utilities, order: &order)
        gradient.zero()
        let g = gradient.pointer, scale = 1 / (Double(settings.population) * Double(sigma))
        for j in 0..<pairs {
            let weight = Float((utilities[2 * j] - utilities[2 * j + 1]) * scale)
            if weight == 0 { continue }
            let e = noise.values.pointer + offsets[j]
            for k in 0..<d { g[k] += weight * e[k] }
        }
        optimizer.update(params: mean.buffer, grads: UnsafeBufferPointer(gradient.buffer), segments: segments,
                         context: StepContext(lr: lr))
        stepCount += 1
        return summarise(losses)
    }

    public func writeSolution(into params: UnsafeMutableBufferPointer<Float>) {
        params.update(fromContentsOf: UnsafeBufferPointer(mean.buffer))
    }

    public func exportState() -> PopulationState {
        var buffers = ["mean": mean.array]
        for (name, buffer) in zip(optimizer.stateNames, optimizer.state) { buffers["optimizer." + name] = buffer.array }
        return PopulationState(stepCount: stepCount, buffers: buffers, scalars: ["optimizer_steps": [Double(optimizer.stepCount)]])
    }

    public func importState(_ state: PopulationState) throws {
        mean.buffer.update(fromContentsOf: try state.buffer("mean", count: dimension, method: name))
        for (name, buffer) in zip(optimizer.stateNames, optimizer.state) {
            buffer.buffer.update(fromContentsOf: try state.buffer("optimizer." + name, count: buffer.count, method: self.name))
        }
        optimizer.stepCount = Int(try state.scalars("optimizer_steps", count: 1, method: name)[0])
        stepCount = state.stepCount
    }
}
