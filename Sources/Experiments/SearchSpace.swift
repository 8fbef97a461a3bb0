import Foundation

// MARK: - Search space

/// One dimension of a search space. Values travel as `Double`: numbers as themselves, an `int` as a whole number,
/// a categorical choice as its index.
public enum SearchDistribution: Equatable, Sendable, CustomStringConvertible {
    case uniform(low: Double, high: Double)
    case logUniform(low: Double, high: Double)
    case int(low: Int, high: Int)
    case categorical([String])

    public var description: String {
        switch self {
        case let .uniform(l, h): return "uniform [\(l), \(h)]"
        case let .logUniform(l, h): return "log_uniform [\(l), \(h)]"
        case let .int(l, h): return "int [\(l), \(h)]"
        case let .categorical(c): return "categorical [\(c.joined(separator: ", "))]"
        }
    }

    /// The value as a configuration override writes it (`key=value`).
    public func text(_ v: Double) -> String {
        switch self {
        case .uniform, .logUniform: return "\(v)"
        case .int: return "\(Int(v.rounded()))"
        case let .categorical(c): return c[Int(v)]
        }
    }

    /// A draw from the prior (Optuna's RandomSampler: uniform in the transformed space — log for log_uniform,
    /// every integer equally likely, every choice equally likely).
    func sample<G: RandomNumberGenerator>(_ rng: inout G) -> Double {
        switch self {
        case let .uniform(l, h): return l + (h - l) * unit(&rng)
        case let .logUniform(l, h): return exp(log(l) + (log(h) - log(l)) * unit(&rng))
        case let .int(l, h): return Double(Int.random(in: l...h, using: &rng))
        case let .categorical(c): return Double(Int.random(in: 0..<c.count, using: &rng))
        }
    }
}

/// A uniform draw in [0, 1) with 53 random bits.
func unit<G: RandomNumberGenerator>(_ rng: inout G) -> Double { Double(rng.next() >> 11) * 0x1p-53 }

public struct SearchParameter: Equatable, Sendable {
    /// A configuration key (`optimizer.lr`) or, for a test function, a coordinate name (`x0`).
    public var name: String
    public var distribution: SearchDistribution
    public init(name: String, distribution: SearchDistribution) {
        self.name = name
        self.distribution = distribution
    }
}

/// A finished (or pruned) trial as the samplers see it: its parameters and its score, lower is better (a
/// maximised objective is negated). `rung` is the last rung it reached, for pruned trials' ranking.
public struct SearchObservation: Equatable, Sendable {
    public var params: [Double]
    public var score: Double
    public var pruned: Bool
    public var rung: Int
    /// The trial number, for ordering (Optuna weights observations by age).
    public var number: Int
    public init(number: Int, params: [Double], score: Double, pruned: Bool = false, rung: Int = 0) {
        self.number = number
        self.params = params
        self.score = score
        self.pruned = pruned
        self.rung = rung
    }
}
