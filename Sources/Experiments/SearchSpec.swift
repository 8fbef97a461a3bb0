import Foundation
import Training
import Yams

// MARK: - Search file

/// A search file (docs/search.md): a base configuration, a space over configuration keys, an objective at a budget,
/// a sampler, a pruner and a trial budget. Everything is checked here, before MPI starts.
public struct SearchSpec: Sendable {
    public var name = "search"
    public var text = ""
    public var base = ResolvedConfig(name: "search")
    public var space: [SearchParameter] = []
    /// eval_accuracy or eval_loss.
    public var metric = "eval_accuracy"
    public var maximize = true
    /// The budget per trial in training examples, or in epochs (converted with the data set's size).
    public var budgetExamples: Int?
    public var budgetEpochs: Double?
    public var sampler = SamplerKind.tpe
    public var seed: UInt64 = 0
    public var tpe = TPESettings()
    /// Successive halving (ASHA): nil for no pruning.
    public var pruner: SuccessiveHalving?
    public var trials = 20
    public var maxRankBatch = 512

    static let topLevelKeys = ["name", "base", "space", "objective", "sampler", "pruner", "trials", "max_rank_batch"]

    public static func load(path: String) throws -> SearchSpec {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigError("search file \(path) cannot be read: check the path (configs/searches/ has examples)")
        }
        return try SearchSpec(yaml: text, source: path)
    }

    public init(yaml text: String, source: String) throws {
        self.text = text
        let document: Any?
        do { document = try Yams.load(yaml: text) } catch { throw ConfigError("\(source): not valid YAML: \(error)") }
        guard let top = document as? [String: Any] else {
            throw ConfigError("\(source): the top level must be a mapping (base:, space:, objective:, …; see docs/search.md)")
        }
        for key in top.keys where !Self.topLevelKeys.contains(key) {
            throw ConfigError("\(source): unknown search key '\(key)'; known keys: \(Self.topLevelKeys.joined(separator: ", "))")
        }
        func number(_ v: Any?, _ what: String) throws -> Double {
            if let d = v as? Double { return d }
            if let i = v as? Int { return Double(i) }
            throw ConfigError("\(source): \(what) must be a number, got '\(v.map { "\($0)" } ?? "nothing")'")
        }
        if let n = top["name"] as? String { name = n }
        base.name = name
        if let b = top["base"] as? [String: Any] {
            for (key, value) in Self.flatten(b, prefix: "") { try base.set(key, raw: value, source: "\(source): base") }
        } else if top["base"] != nil {
            throw ConfigError("\(source): base must be a mapping of configuration keys (model:, train:, optimizer:, …)")
        }

        // Space: one entry per configuration key, each {uniform|log_uniform|int: [low, high]} or {categorical: [...]}.
        guard let s = top["space"] as? [String: Any], !s.isEmpty else {
            throw ConfigError("\(source): space must map at least one configuration key to a distribution, e.g. " +
                              "'optimizer.lr: {log_uniform: [1e-4, 1e-1]}'")
        }
        for key in s.keys.sorted() {
            guard let entry = s[key] as? [String: Any], entry.count == 1, let (kind, raw) = entry.first else {
                throw ConfigError("\(source): space.\(key) must be one of {uniform: [low, high]}, {log_uniform: [low, high]}, " +
                                  "{int: [low, high]}, {categorical: [a, b, …]}")
            }
            let distribution: SearchDistribution
            if kind == "categorical" {
                guard let list = raw as? [Any], !list.isEmpty else { throw ConfigError("\(source): space.\(key).categorical must be a non-empty list") }
                distribution = .categorical(list.map { "\($0)" })
            } else {
                guard let pair = raw as? [Any], pair.count == 2 else {
                    throw ConfigError("\(source): space.\(key).\(kind) must be [low, high]")
                }
                let low = try number(pair[0], "space.\(key) low"), high = try number(pair[1], "space.\(key) high")
                guard low < high else { throw ConfigError("\(source): space.\(key): low \(low) must be below high \(high)") }
                switch kind {
                case "uniform": distribution = .uniform(low: low, high: high)
                case "log_uniform":
                    guard low > 0 else {
                        throw ConfigError("\(source): space.\(key).log_uniform [\(low), \(high)] includes values ≤ 0, which have no " +
                                          "logarithm: use a positive low (e.g. 1e-6) or a uniform distribution")
                    }
                    distribution = .logUniform(low: low, high: high)
                case "int":
                    guard low == low.rounded(), high == high.rounded() else { throw ConfigError("\(source): space.\(key).int bounds must be whole numbers") }
                    distribution = .int(low: Int(low), high: Int(high))
                default:
                    throw ConfigError("\(source): space.\(key): unknown distribution '\(kind)'; use uniform, log_uniform, int or categorical")
                }
            }
            // The key must be a configuration key taking this kind of value: set the low end to find out.
            var probe = base
            let sample: Any
            switch distribution {
            case let .uniform(l, _), let .logUniform(l, _): sample = l
            case let .int(l, _): sample = l
            case let .categorical(c): sample = c[0]
            }
            do { try probe.set(key, raw: sample, source: "\(source): space") } catch {
                throw ConfigError("\(source): space.\(key): \(error)")
            }
            space.append(SearchParameter(name: key, distribution: distribution))
        }

        // Objective and budget.
        guard let o = top["objective"] as? [String: Any] else {
            throw ConfigError("\(source): objective is required, e.g. {metric: eval_accuracy, direction: maximize, epochs: 1}")
        }
        metric = o["metric"] as? String ?? metric
        guard ["eval_accuracy", "eval_loss"].contains(metric) else {
            throw ConfigError("\(source): objective.metric '\(metric)' must be eval_accuracy or eval_loss")
        }
        let direction = o["direction"] as? String ?? (metric == "eval_loss" ? "minimize" : "maximize")
        guard ["maximize", "minimize"].contains(direction) else {
            throw ConfigError("\(source): objective.direction '\(direction)' must be maximize or minimize")
        }
        maximize = direction == "maximize"
        if let e = o["examples"] { budgetExamples = Int(try number(e, "objective.examples")) }
        if let e = o["epochs"] { budgetEpochs = try number(e, "objective.epochs") }
        guard (budgetExamples == nil) != (budgetEpochs == nil) else {
            throw ConfigError("\(source): objective needs exactly one budget per trial: examples: N or epochs: X")
        }
        guard (budgetExamples ?? 1) > 0, (budgetEpochs ?? 1) > 0 else { throw ConfigError("\(source): objective's budget must be positive") }

        if let sm = top["sampler"] as? [String: Any] {
            let kind = sm["kind"] as? String ?? "tpe"
            guard let k = SamplerKind(rawValue: kind) else { throw ConfigError("\(source): sampler.kind '\(kind)' must be random or tpe") }
            sampler = k
            if let v = sm["seed"] { seed = UInt64(try number(v, "sampler.seed")) }
            if let v = sm["startup_trials"] { tpe.startupTrials = Int(try number(v, "sampler.startup_trials")) }
            if let v = sm["candidates"] { tpe.candidates = max(1, Int(try number(v, "sampler.candidates"))) }
        }
        if let p = top["pruner"] as? [String: Any] {
            let kind = p["kind"] as? String ?? "none"
            switch kind {
            case "none": pruner = nil
            case "successive_halving", "asha":
                let eta = Int(try number(p["reduction_factor"] ?? 3, "pruner.reduction_factor"))
                guard eta >= 2 else { throw ConfigError("\(source): pruner.reduction_factor must be ≥ 2") }
                var minExamples: Int?, minEpochs: Double?
                if let v = p["min_examples"] { minExamples = Int(try number(v, "pruner.min_examples")) }
                if let v = p["min_epochs"] { minEpochs = try number(v, "pruner.min_epochs") }
                guard (minExamples == nil) != (minEpochs == nil) else {
                    throw ConfigError("\(source): pruner needs its minimum resource as min_examples: N or min_epochs: X (the budget's unit)")
                }
                guard (minExamples != nil) == (budgetExamples != nil) else {
                    throw ConfigError("\(source): pruner's minimum resource and objective's budget must use the same unit (examples or epochs)")
                }
                let minimum = minExamples.map(Double.init) ?? minEpochs!, budget = budgetExamples.map(Double.init) ?? budgetEpochs!
                guard minimum > 0, minimum < budget else {
                    throw ConfigError("\(source): the budget \(budget) is not above the pruner's minimum resource \(minimum): " +
                                      "lower pruner.min_\(minExamples != nil ? "examples" : "epochs") or raise the objective's budget")
                }
                pruner = SuccessiveHalving(minResource: minimum, reductionFactor: eta, maxResource: budget)
            default:
                throw ConfigError("\(source): pruner.kind '\(kind)' must be none or successive_halving")
            }
        }
        if let t = top["trials"] { trials = Int(try number(t, "trials")) }
        guard trials >= 1 else { throw ConfigError("\(source): trials must be ≥ 1") }
        if let m = top["max_rank_batch"] { maxRankBatch = Int(try number(m, "max_rank_batch")) }
    }

    static func flatten(_ mapping: [String: Any], prefix: String) -> [(String, Any)] {
        mapping.keys.sorted().flatMap { key -> [(String, Any)] in
            let path = prefix.isEmpty ? key : "\(prefix).\(key)"
            if let nested = mapping[key] as? [String: Any] { return flatten(nested, prefix: path) }
            return [(path, mapping[key]!)]
        }
    }
}

// MARK: - Successive halving

/// Asynchronous successive halving (Li et al. 2020) as Optuna's SuccessiveHalvingPruner decides it: rung i at
/// resource r·ηⁱ (below the budget); a trial reaching a rung continues only if its score is among the best
/// ⌊n/η⌋ of the n scores recorded at that rung so far (itself included) — or the best, while n < η.
public struct SuccessiveHalving: Equatable, Sendable {
    public var minResource: Double
    public var reductionFactor: Int
    public var maxResource: Double

    public init(minResource: Double, reductionFactor: Int, maxResource: Double) {
        self.minResource = minResource
        self.reductionFactor = reductionFactor
        self.maxResource = maxResource
    }

    /// Rung resources r·ηⁱ < maxResource.
    public var rungs: [Double] {
        var out: [Double] = []
        var r = minResource
        // (1 − 1e-3): a minimum written as 0.111111 of a budget of 1 gives rungs 1/9, 1/3, not a third at 0.999999.
        while r < maxResource * (1 - 1e-3) { out.append(r); r *= Double(reductionFactor) }
        return out
    }

    /// Whether `score` (lower is better) continues, against `competing` (every score recorded at this rung,
    /// this one included).
    public func promotes(_ score: Double, competing: [Double]) -> Bool {
        let sorted = competing.map { $0.isNaN ? Double.infinity : $0 }.sorted()
        let index = max(sorted.count / reductionFactor - 1, 0)
        return (score.isNaN ? .infinity : score) <= sorted[index]
    }
}
