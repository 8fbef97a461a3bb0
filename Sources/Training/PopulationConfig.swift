// Configuration of the gradient-free training methods (`train.method`: es, ga, sa; GradientFree) and of
// adversarial training (`train.adversarial.*`, Models/Adversarial.swift). The keys live here and are listed in
// `ConfigSchema.keys`; `TrainConfig` reads them into `PopulationSettings` / `AttackSettings` and checks what ranges
// cannot express (a population that does not divide over the ranks) before MPI starts.

import GradientFree
import Models

extension ConfigSchema {
    static let methodKeys: [ConfigKey] = [
        ConfigKey(path: "train.method", kind: .string(allowed: ["gradient", "es", "ga", "sa"]), defaultValue: .string("gradient"),
                  doc: "gradient: back-propagation with `optimizer.name`; es: OpenAI evolution strategies (Salimans et al. 2017; the estimate goes to `optimizer.name`); ga: genetic algorithm (Such et al. 2017); sa: simulated annealing / parallel tempering. Population methods score members on the whole global batch, split over the ranks (docs/gradient-free.md)."),
        ConfigKey(path: "es.population", kind: .int(2...1_000_000), defaultValue: .int(50),
                  doc: "ES: evaluations per generation P (even: P/2 antithetic pairs; the pairs must divide over the ranks)."),
        ConfigKey(path: "es.sigma", kind: .double(1e-8...1e3), defaultValue: .double(0.02),
                  doc: "ES: perturbation scale σ."),
        ConfigKey(path: "ga.population", kind: .int(2...1_000_000), defaultValue: .int(32),
                  doc: "GA: members per generation (must divide over the ranks)."),
        ConfigKey(path: "ga.elites", kind: .int(0...1_000_000), defaultValue: .int(2),
                  doc: "GA: best members copied unchanged into the next generation (fewer than ga.population)."),
        ConfigKey(path: "ga.selection", kind: .string(allowed: ["tournament", "truncation"]), defaultValue: .string("tournament"),
                  doc: "GA: parent selection."),
        ConfigKey(path: "ga.tournament", kind: .int(1...1_000_000), defaultValue: .int(3),
                  doc: "GA: tournament size k."),
        ConfigKey(path: "ga.truncation", kind: .double(1e-6...1), defaultValue: .double(0.25),
                  doc: "GA: fraction of the best members truncation selection draws parents from."),
        ConfigKey(path: "ga.crossover", kind: .double(0...1), defaultValue: .double(0.5),
                  doc: "GA: probability that a child is a uniform crossover of two parents."),
        ConfigKey(path: "ga.mutation", kind: .double(0...1e3), defaultValue: .double(0.01),
                  doc: "GA: σ of the Gaussian mutation of every child."),
        ConfigKey(path: "sa.chains", kind: .int(1...1_000_000), defaultValue: .int(4),
                  doc: "SA: chains (temperature slots; must divide over the ranks)."),
        ConfigKey(path: "sa.proposal", kind: .double(1e-8...1e3), defaultValue: .double(0.003),
                  doc: "SA: proposal scale s (θ' = θ + sε)."),
        ConfigKey(path: "sa.temperature", kind: .double(1e-12...1e6), defaultValue: .double(0.01),
                  doc: "SA: initial temperature T₀ of the coldest slot (in units of the mean loss)."),
        ConfigKey(path: "sa.cooling", kind: .double(1e-6...1), defaultValue: .double(0.999),
                  doc: "SA: geometric cooling α per step, T_k = max(T_min, T₀αᵏ)."),
        ConfigKey(path: "sa.min_temperature", kind: .double(1e-12...1e6), defaultValue: .double(1e-6),
                  doc: "SA: temperature floor T_min."),
        ConfigKey(path: "sa.ladder", kind: .double(1...1e6), defaultValue: .double(1),
                  doc: "SA: slot i runs at T_k·ladderⁱ; 1 with sa.swap_every 0: independent chains; > 1: parallel tempering."),
        ConfigKey(path: "sa.swap_every", kind: .int(0...Int.max), defaultValue: .int(0),
                  doc: "SA: steps between parallel-tempering swaps of adjacent slots; 0: none."),
        ConfigKey(path: "train.adversarial.method", kind: .string(allowed: ["none", "fgsm", "pgd"]), defaultValue: .string("none"),
                  doc: "Adversarial training (Madry et al. 2018): train on FGSM/PGD examples of each batch, made with the current parameters; none: clean training. Image classifiers with train.method gradient only."),
        ConfigKey(path: "train.adversarial.eps", kind: .double(0...1), defaultValue: .double(0.1),
                  doc: "Adversarial training: ℓ∞ radius ε in pixel units ([0, 1] images)."),
        ConfigKey(path: "train.adversarial.steps", kind: .int(1...1000), defaultValue: .int(7),
                  doc: "Adversarial training: PGD steps per batch."),
        ConfigKey(path: "train.adversarial.step_size", kind: .double(0...1), defaultValue: .double(0),
                  doc: "Adversarial training: PGD step α in pixel units; 0: 2.5·ε/steps."),
        ConfigKey(path: "train.adversarial.random_start", kind: .bool, defaultValue: .bool(true),
                  doc: "Adversarial training: start PGD at a uniform point of the ε-ball."),
    ]
}

/// The population method a run trains with, as configuration built it (validated for the world size).
public enum PopulationSettings: Sendable, Equatable {
    case es(EvolutionStrategy.Settings)
    case ga(GeneticAlgorithm.Settings)
    case sa(SimulatedAnnealing.Settings)

    /// Reads `train.method` and its section; nil for gradient training. Throws a `ConfigError` naming the key when
    /// the population does not divide over `worldSize` ranks or the GA keeps as many elites as members.
    static func read(_ c: ResolvedConfig, worldSize: Int, seed: UInt64) throws -> PopulationSettings? {
        func check(_ problem: String?) throws { if let problem { throw ConfigError(problem) } }
        switch c.string("train.method") {
        case "es":
            let p = c.int("es.population")
            try check(PopulationPartition.check(members: p, unit: 2, ranks: worldSize, key: "es.population"))
            return .es(.init(population: p, sigma: Float(c.double("es.sigma")), seed: seed))
        case "ga":
            let p = c.int("ga.population"), elites = c.int("ga.elites")
            try check(PopulationPartition.check(members: p, ranks: worldSize, key: "ga.population"))
            if elites >= p { throw ConfigError("ga.elites = \(elites) must be less than ga.population = \(p)") }
            return .ga(.init(population: p, elites: elites, selection: GeneticAlgorithm.Selection(rawValue: c.string("ga.selection"))!,
                             tournamentSize: c.int("ga.tournament"), truncation: c.double("ga.truncation"),
                             crossoverRate: c.double("ga.crossover"), mutationScale: Float(c.double("ga.mutation")), seed: seed))
        case "sa":
            let chains = c.int("sa.chains")
            try check(PopulationPartition.check(members: chains, ranks: worldSize, key: "sa.chains"))
            return .sa(.init(chains: chains, proposalScale: Float(c.double("sa.proposal")),
                             initialTemperature: c.double("sa.temperature"), cooling: c.double("sa.cooling"),
                             minimumTemperature: c.double("sa.min_temperature"), ladder: c.double("sa.ladder"),
                             swapEvery: c.int("sa.swap_every"), rescore: true, seed: seed))
        default:
            return nil
        }
    }
}

extension TrainConfig {
    /// `train.adversarial.*` as attack settings; nil for clean training.
    static func readAdversarial(_ c: ResolvedConfig, seed: UInt64) -> AttackSettings? {
        guard let method = AttackMethod(rawValue: c.string("train.adversarial.method")) else { return nil }
        let eps = Float(c.double("train.adversarial.eps")), steps = c.int("train.adversarial.steps")
        let alpha = Float(c.double("train.adversarial.step_size"))
        return AttackSettings(method: method, epsilon: eps, stepSize: alpha > 0 ? alpha : 2.5 * eps / Float(steps), steps: steps,
                              randomStart: c.bool("train.adversarial.random_start"), seed: seed ^ 0xAD7E)
    }
}
