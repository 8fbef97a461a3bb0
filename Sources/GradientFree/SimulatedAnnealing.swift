// Simulated annealing (Kirkpatrick, Gelatt & Vecchi 1983) over the flat buffer: Gaussian proposals θ' = θ + sε,
// Metropolis acceptance (Metropolis et al. 1953) — accept if Δ = L(θ') − L(θ) ≤ 0, else with probability e^{−Δ/T} —
// and a geometric temperature schedule T_k = max(T_min, T₀ αᵏ) (Kirkpatrick et al.'s exponential cooling).
//
// Several chains run at once, one temperature slot each: slot i has temperature T_k · rⁱ (r = `ladder`). With r = 1
// and no swaps they are independent restarts; with r > 1 and swaps every `swapEvery` steps this is parallel
// tempering (Swendsen & Wang 1986; Geyer 1991; Earl & Deem 2005): adjacent slots exchange their chains with
// probability min(1, exp((1/Tᵢ − 1/Tⱼ)(Lᵢ − Lⱼ))), alternating even and odd pairs. Swapping *temperatures* instead of
// states means no parameter vector ever moves.
//
// Distribution: chains are replicated (every rank applies every accepted proposal, regenerated from the shared
// noise table), each rank scores the chains of its block, and one sum combines the losses. With `rescore` each
// chain's current state is scored again on the step's batch beside its proposal, so a mini-batch loss compares
// both on the same examples (2 evaluations per chain); deterministic objectives can skip it.
//
// Dimension letters: D parameters, C chains.

import Foundation
import Tensors

public final class SimulatedAnnealing: PopulationMethod {
    public struct Settings: Sendable, Equatable {
        public var chains: Int
        /// s, the proposal scale.
        public var proposalScale: Float
        public var initialTemperature: Double
        /// α per step, in (0, 1].
        public var cooling: Double
        public var minimumTemperature: Double
        /// r ≥ 1: slot i runs at T_k · rⁱ.
        public var ladder: Double
        /// Steps between tempering swaps; 0: independent chains.
        public var swapEvery: Int
        public var rescore: Bool
        public var seed: UInt64

        public init(chains: Int, proposalScale: Float, initialTemperature: Double, cooling: Double,
                    minimumTemperature: Double = 1e-8, ladder: Double = 1, swapEvery: Int = 0, rescore: Bool = true,
                    seed: UInt64) {
            precondition(chains >= 1 && proposalScale > 0 && initialTemperature > 0 && minimumTemperature > 0,
                         "SA: chains ≥ 1, s > 0, T₀ > 0, T_min > 0")
            precondition(cooling > 0 && cooling <= 1 && ladder >= 1 && swapEvery >= 0, "SA: 0 < α ≤ 1, r ≥ 1, swaps ≥ 0")
            self.chains = chains; self.proposalScale = proposalScale; self.initialTemperature = initialTemperature
            self.cooling = cooling; self.minimumTemperature = minimumTemperature; self.ladder = ladder
            self.swapEvery = swapEvery; self.rescore = rescore; self.seed = seed
        }
    }

    /// The Metropolis rule: a proposal that changes the loss by `delta` at temperature `temperature` is accepted
    /// when Δ ≤ 0, or when `uniform` (drawn from [0, 1)) is below e^{−Δ/T}.
    @inline(__always)
    public static func metropolisAccepts(delta: Double, temperature: Double, uniform: Double) -> Bool {
        delta <= 0 || uniform < exp(-delta / temperature)
    }

    /// The tempering rule for exchanging the chains of a colder slot (1/T = `coldBeta`, loss `coldLoss`) and a
    /// hotter one: accept with probability min(1, exp((β_cold − β_hot)(L_cold − L_hot))).
    @inline(__always)
    public static func temperingSwapAccepts(coldBeta: Double, hotBeta: Double, coldLoss: Double, hotLoss: Double,
                                            uniform: Double) -> Bool {
        let exponent = (coldBeta - hotBeta) * (coldLoss - hotLoss)
        return exponent >= 0 || uniform < exp(exponent)
    }

    public let settings: Settings
    public let noise: NoiseTable
    public let dimension: Int
    public var name: String { "sa" }
    /// Evaluations per step.
    public var populationSize: Int { settings.rescore ? 2 * settings.chains : settings.chains }
    public private(set) var stepCount = 0

    /// The chains' states (C rows).
    public let states: ParameterRows
    /// The loss of each chain's state (on the last step's batch) (C); +∞ before the first step.
    public private(set) var currentLoss: [Double]
    /// chainAtSlot[i]: the chain at temperature slot i (a permutation of 0..<C).
    public private(set) var chainAtSlot: [Int]
    /// Accepted proposals so far, per chain (C).
    public private(set) var accepted: [Int]
    private var offsets: [Int]    // (C)
    private var losses: [Double]  // (populationSize) [current₀, proposal₀, current₁, …] or [proposal₀, …]
    private let proposal: FloatBuffer  // (D)

    /// Every chain starts at `initial`.
    public init(initial: UnsafeBufferPointer<Float>, settings: Settings, noise: NoiseTable? = nil) {
        let d = initial.count, c = settings.chains
        self.settings = settings
        dimension = d
        self.noise = noise ?? NoiseTable(dimension: d, seed: settings.seed)
        states = ParameterRows(rows: c, copying: initial)
        currentLoss = [Double](repeating: .infinity, count: c)
        chainAtSlot = Array(0..<c)
        accepted = [Int](repeating: 0, count: c)
        offsets = [Int](repeating: 0, count: c)
        losses = [Double](repeating: 0, count: settings.rescore ? 2 * c : c)
        proposal = FloatBuffer(count: d)
    }

    /// T_k, the base temperature of step k (slot 0).
    public func temperature(step k: Int) -> Double {
        max(settings.minimumTemperature, settings.initialTemperature * pow(settings.cooling, Double(k)))
    }

    func state(_ i: Int) -> UnsafeMutableBufferPointer<Float> { states.row(i) }

    public func step(objective: PopulationObjective, exchange: PopulationExchange, lr: Float) throws -> PopulationStepResult {
        precondition(objective.dimension == dimension, "objective has D = \(objective.dimension), SA has \(dimension)")
        let d = dimension, c = settings.chains, s = settings.proposalScale, perChain = settings.rescore ? 2 : 1
        // Phase 1: this step's draws, the same on every rank.
        var rng = SplitMix64(seed: settings.seed, stream: UInt64(stepCount) &+ 0x5A)
        for i in 0..<c { offsets[i] = noise.offset(dimension: d, &rng) }

        // Phase 2: score this rank's chains (current state if rescoring, and proposal); one collective.
        let myChains = PopulationPartition(members: c, ranks: exchange.size).block(of: exchange.rank)
        try combineLosses(&losses, block: (perChain * myChains.lowerBound)..<(perChain * myChains.upperBound),
                          exchange: exchange) { slot in
            let chain = slot / perChain
            if settings.rescore && slot % 2 == 0 { return objective.loss(UnsafeBufferPointer(state(chain))) }
            perturbed(proposal.buffer, UnsafeBufferPointer(state(chain)), noise.window(offsets[chain], dimension: d), scale: s)
            return objective.loss(UnsafeBufferPointer(proposal.buffer))
        }

        // Phase 3: Metropolis acceptance per chain at its slot's temperature (every rank, every chain).
        let base = temperature(step: stepCount)
        var slotOf = [Int](repeating: 0, count: c)
        for (slot, chain) in chainAtSlot.enumerated() { slotOf[chain] = slot }
        for i in 0..<c {
            let current = settings.rescore ? losses[2 * i] : currentLoss[i]
            let candidate = losses[perChain * i + perChain - 1]
            let t = base * pow(settings.ladder, Double(slotOf[i]))
            if Self.metropolisAccepts(delta: candidate - current, temperature: t, uniform: Double(rng.nextUnitFloat())) {
                let x = state(i)
                perturbed(x, UnsafeBufferPointer(x), noise.window(offsets[i], dimension: d), scale: s)
                currentLoss[i] = candidate
                accepted[i] += 1
            } else {
                currentLoss[i] = current
            }
        }

        // Phase 4: tempering swaps between adjacent slots, even pairs then odd pairs on alternate rounds.
        if settings.swapEvery > 0 && (stepCount + 1) % settings.swapEvery == 0 && c > 1 {
            let round = (stepCount + 1) / settings.swapEvery
            for cold in stride(from: round % 2, to: c - 1, by: 2) {
                let a = chainAtSlot[cold], b = chainAtSlot[cold + 1]
                let coldT = base * pow(settings.ladder, Double(cold)), hotT = coldT * settings.ladder
                if Self.temperingSwapAccepts(coldBeta: 1 / coldT, hotBeta: 1 / hotT, coldLoss: currentLoss[a],
                                             hotLoss: currentLoss[b], uniform: Double(rng.nextUnitFloat())) {
                    chainAtSlot.swapAt(cold, cold + 1)
                }
            }
        }
        stepCount += 1
        return summarise(losses)
    }

    /// The chain with the lowest current loss (ties: the lower index); chain 0 before the first step.
    public var bestChain: Int {
        var best = 0
        for i in 1..<settings.chains where currentLoss[i] < currentLoss[best] { best = i }
        return best
    }

    public func writeSolution(into params: UnsafeMutableBufferPointer<Float>) {
        params.update(fromContentsOf: UnsafeBufferPointer(state(bestChain)))
    }

    public func exportState() -> PopulationState {
        PopulationState(stepCount: stepCount, buffers: ["states": states.storage.array],
                        scalars: ["current_loss": currentLoss, "chain_at_slot": chainAtSlot.map(Double.init),
                                  "accepted": accepted.map(Double.init)])
    }

    public func importState(_ state: PopulationState) throws {
        let c = settings.chains
        states.storage.buffer.update(fromContentsOf: try state.buffer("states", count: c * dimension, method: name))
        currentLoss = try state.scalars("current_loss", count: c, method: name)
        chainAtSlot = try state.scalars("chain_at_slot", count: c, method: name).map { Int($0) }
        accepted = try state.scalars("accepted", count: c, method: name).map { Int($0) }
        stepCount = state.stepCount
    }
}
