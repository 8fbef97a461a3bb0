import Foundation

// MARK: - Tree-structured Parzen estimator

// The TPE sampler of Bergstra et al. (2011) as Optuna 5.1 implements it by default (optuna/samplers/_tpe/, read for
// this file): multivariate (one kernel per trial over all parameters at once), n_startup_trials 10 drawn from the
// prior, γ(n) = min(⌈0.1·n⌉, 25) best trials "below", weights ramping up with age past 25 observations, a prior
// kernel of weight 1, bandwidths from the neighbours' distances clipped to [range/min(100, 1 + kernels), range]
// ("magic clip"), 24 candidates drawn from l(x) and the one maximising log l(x) − log g(x) kept, and "constant liar":
// trials still running are counted among the worse ("above") ones so parallel groups spread out.
// Dimension letters: K kernels (observations + the prior), D parameters.

public struct TPESettings: Equatable, Sendable {
    public var startupTrials = 10
    public var candidates = 24
    public var priorWeight = 1.0
    public init(startupTrials: Int = 10, candidates: Int = 24) {
        self.startupTrials = startupTrials
        self.candidates = candidates
    }

    /// Optuna's default_gamma: how many of n trials are "below" (good).
    public static func gamma(_ n: Int) -> Int { min(Int((0.1 * Double(n)).rounded(.up)), 25) }

    /// Optuna's default_weights: 1 for the 25 newest, a linear ramp from 1/n for the older ones (oldest first).
    public static func weights(_ n: Int) -> [Double] {
        guard n >= 25 else { return [Double](repeating: 1, count: n) }
        let m = n - 25
        let ramp = (0..<m).map { i in m == 1 ? 1.0 / Double(n) : 1.0 / Double(n) + (1 - 1.0 / Double(n)) * Double(i) / Double(m - 1) }
        return ramp + [Double](repeating: 1, count: 25)
    }
}

/// A mixture of K product kernels over the D parameters (Optuna's _ParzenEstimator).
public struct ParzenEstimator {
    let space: [SearchParameter]
    /// [K] normalised kernel weights; the last kernel is the prior.
    let weights: [Double]
    /// Per numerical dimension: [K] centres and bandwidths in the transformed space (log for log_uniform).
    var mus: [[Double]] = []
    var sigmas: [[Double]] = []
    /// Per categorical dimension: [K][choices] probabilities.
    var choiceProbabilities: [[[Double]]] = []

    /// `observations`: [n][D], oldest first.
    public init(observations: [[Double]], space: [SearchParameter], settings: TPESettings) {
        self.space = space
        let n = observations.count
        var w = n == 0 ? [1.0] : TPESettings.weights(n) + [settings.priorWeight]
        let total = w.reduce(0, +)
        for i in w.indices { w[i] /= total }
        weights = w
        for (d, p) in space.enumerated() {
            let column = observations.map { $0[d] }
            switch p.distribution {
            case let .categorical(choices):
                let c = choices.count
                guard n > 0 else { choiceProbabilities.append([[Double](repeating: 1 / Double(c), count: c)]); continue }
                let kernels = n + 1
                var table = [[Double]](repeating: [Double](repeating: settings.priorWeight / Double(kernels), count: c), count: kernels)
                for (k, x) in column.enumerated() { table[k][Int(x)] += 1 }
                for k in table.indices { let s = table[k].reduce(0, +); if s > 0 { table[k] = table[k].map { $0 / s } } }
                choiceProbabilities.append(table)
                mus.append([]); sigmas.append([])
                continue
            default:
                let (low, high) = Self.adaptedBounds(p.distribution)
                let centres = column.map { Self.transform(p.distribution, $0) }
                var s = Self.bandwidths(centres, low: low, high: high)
                var m = centres
                m.append(0.5 * (low + high))
                s.append(high - low)
                mus.append(m); sigmas.append(s)
                choiceProbabilities.append([])
            }
        }
    }

    /// Bounds in the transformed space; an int's are widened by half a step each side.
    static func adaptedBounds(_ d: SearchDistribution) -> (Double, Double) {
        switch d {
        case let .uniform(l, h): return (l, h)
        case let .logUniform(l, h): return (log(l), log(h))
        case let .int(l, h): return (Double(l) - 0.5, Double(h) + 0.5)
        case .categorical: return (0, 0)
        }
    }

    static func transform(_ d: SearchDistribution, _ x: Double) -> Double {
        if case .logUniform = d { return log(x) }
        return x
    }

    /// Each centre's bandwidth: the larger gap to its sorted neighbours (the bounds at the ends), except that the
    /// outermost take their inner gap (consider_endpoints off); clipped to [range/min(100, 1 + n + 1), range].
    static func bandwidths(_ mus: [Double], low: Double, high: Double) -> [Double] {
        let n = mus.count
        guard n > 0 else { return [] }
        let order = mus.indices.sorted { mus[$0] < mus[$1] }
        var sorted: [Double] = [low]
        for i in order { sorted.append(mus[i]) }
        sorted.append(high)
        var sortedSigmas = [Double](repeating: 0, count: n)
        for i in 1...n {
            let left: Double = sorted[i] - sorted[i - 1], right: Double = sorted[i + 1] - sorted[i]
            sortedSigmas[i - 1] = max(left, right)
        }
        if sorted.count >= 4 {
            sortedSigmas[0] = sorted[2] - sorted[1]
            sortedSigmas[n - 1] = sorted[n] - sorted[n - 1]
        }
        let maxSigma = high - low, minSigma = (high - low) / min(100, 1 + Double(n + 1))
        var result = [Double](repeating: 0, count: n)
        for (rank, i) in order.enumerated() { result[i] = min(max(sortedSigmas[rank], minSigma), maxSigma) }
        return result
    }

    /// `count` draws: a kernel by weight, then every parameter from that kernel.
    public func sample<G: RandomNumberGenerator>(_ rng: inout G, count: Int) -> [[Double]] {
        var draws: [[Double]] = []
        for _ in 0..<count {
            let k = Self.pick(weights, unit(&rng))
            var x = [Double](repeating: 0, count: space.count)
            for d in space.indices { x[d] = draw(dimension: d, kernel: k, &rng) }
            draws.append(x)
        }
        return draws
    }

    private func draw<G: RandomNumberGenerator>(dimension d: Int, kernel k: Int, _ rng: inout G) -> Double {
        let distribution = space[d].distribution
        if case .categorical = distribution {
            let table = choiceProbabilities[d]
            return Double(Self.pick(table[min(k, table.count - 1)], unit(&rng)))
        }
        let (low, high) = Self.adaptedBounds(distribution)
        let x = TruncatedNormal.sample(mu: mus[d][k], sigma: sigmas[d][k], low: low, high: high, u: unit(&rng))
        switch distribution {
        case .logUniform: return exp(x)
        case let .int(l, h): return min(max(x.rounded(), Double(l)), Double(h))
        default: return x
        }
    }

    /// log of the mixture density (numbers) / mass (ints, categories) at `x`.
    public func logDensity(_ x: [Double]) -> Double {
        var terms = weights.map { log($0) }
        for (d, p) in space.enumerated() {
            switch p.distribution {
            case .categorical:
                let table = choiceProbabilities[d]
                for k in terms.indices { terms[k] += log(table[min(k, table.count - 1)][Int(x[d])]) }
            case .int:
                let (low, high) = Self.adaptedBounds(p.distribution)
                for k in terms.indices {
                    let m = mus[d][k], s = sigmas[d][k]
                    terms[k] += TruncatedNormal.logMass((x[d] - 0.5 - m) / s, (x[d] + 0.5 - m) / s)
                        - TruncatedNormal.logMass((low - m) / s, (high - m) / s)
                }
            default:
                let (low, high) = Self.adaptedBounds(p.distribution)
                let t = Self.transform(p.distribution, x[d])
                for k in terms.indices {
                    let m = mus[d][k], s = sigmas[d][k], z = (t - m) / s
                    terms[k] += -0.5 * z * z - log(s * (2 * Double.pi).squareRoot())
                        - TruncatedNormal.logMass((low - m) / s, (high - m) / s)
                }
            }
        }
        let top = terms.max() ?? 0
        guard top.isFinite else { return top }
        return top + log(terms.reduce(0) { $0 + exp($1 - top) })
    }

    /// The index i with cumsum(p)[i−1] ≤ u < cumsum(p)[i] (the last one for rounding).
    static func pick(_ p: [Double], _ u: Double) -> Int {
        var acc = 0.0
        for (i, v) in p.enumerated() { acc += v; if u < acc { return i } }
        return p.count - 1
    }
}

/// The standard normal truncated to [a, b] (in units of σ around μ).
enum TruncatedNormal {
    static func cdf(_ z: Double) -> Double { 0.5 * erfc(-z / 2.0.squareRoot()) }

    /// log(Φ(b) − Φ(a)), computed in the tail where the difference is not lost to rounding.
    static func logMass(_ a: Double, _ b: Double) -> Double {
        if a >= 0 {  // upper tail: Q(a) − Q(b) with Q = 1 − Φ
            return log(max(0.5 * erfc(a / 2.0.squareRoot()) - 0.5 * erfc(b / 2.0.squareRoot()), .leastNormalMagnitude))
        }
        if b <= 0 { return log(max(cdf(b) - cdf(a), .leastNormalMagnitude)) }
        return log(max(1 - cdf(a) - 0.5 * erfc(b / 2.0.squareRoot()), .leastNormalMagnitude))
    }

    /// Inverse-CDF draw from N(μ, σ²) truncated to [low, high], `u` uniform in [0, 1).
    static func sample(mu: Double, sigma: Double, low: Double, high: Double, u: Double) -> Double {
        var a = (low - mu) / sigma, b = (high - mu) / sigma
        // In the upper tail Φ is ≈ 1 and loses digits: mirror to the lower tail.
        let mirrored = a > 0
        if mirrored { (a, b) = (-b, -a) }
        let pa = cdf(a), pb = cdf(b)
        var z = quantile(pa + u * (pb - pa))
        if !z.isFinite { z = a }
        z = min(max(z, a), b)
        if mirrored { z = -z }
        return min(max(mu + sigma * z, low), high)
    }

    /// Φ⁻¹(p): Acklam's rational approximation (relative error 1e-9) plus one Halley step on erfc.
    static func quantile(_ p: Double) -> Double {
        if p <= 0 { return -.infinity }
        if p >= 1 { return .infinity }
        let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
        let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01]
        let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
        let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
        func tail(_ q: Double) -> Double {
            var num: Double = c[0], den: Double = d[0]
            for v in c[1...] { num = num * q + v }
            for v in d[1...] { den = den * q + v }
            den = den * q + 1
            return num / den
        }
        var x: Double
        if p < 0.02425 {
            let q = (-2 * log(p)).squareRoot()
            x = tail(q)
        } else if p > 1 - 0.02425 {
            let q = (-2 * log(1 - p)).squareRoot()
            x = -tail(q)
        } else {
            let q = p - 0.5, r = q * q
            var num: Double = a[0], den: Double = b[0]
            for v in a[1...] { num = num * r + v }
            for v in b[1...] { den = den * r + v }
            den = den * r + 1
            x = num * q / den
        }
        let e = cdf(x) - p
        let u = e * (2 * Double.pi).squareRoot() * exp(x * x / 2)
        x -= u / (1 + x * u / 2)
        return x
    }
}

/// Suggests the next trial's parameters: from the prior for the first `startupTrials`, then by TPE.
public struct TPESampler {
    public let space: [SearchParameter]
    public let settings: TPESettings
    public init(space: [SearchParameter], settings: TPESettings = TPESettings()) {
        self.space = space
        self.settings = settings
    }

    /// `history`: finished and pruned trials; `running`: parameters of trials started but not finished (the
    /// constant liar puts them among the worse trials).
    public func suggest<G: RandomNumberGenerator>(history: [SearchObservation], running: [[Double]], rng: inout G) -> [Double] {
        guard history.count >= settings.startupTrials else { return space.map { $0.distribution.sample(&rng) } }
        let (below, above) = Self.split(history, below: TPESettings.gamma(history.count))
        let l = ParzenEstimator(observations: below.map(\.params), space: space, settings: settings)
        let g = ParzenEstimator(observations: above.map(\.params) + running, space: space, settings: settings)
        let candidates = l.sample(&rng, count: settings.candidates)
        var best = candidates[0], bestScore = -Double.infinity
        for x in candidates {
            let score = l.logDensity(x) - g.logDensity(x)
            if score > bestScore { best = x; bestScore = score }
        }
        return best
    }

    /// Optuna's _split_trials: the `n` best complete trials, then (if fewer) the pruned ones that got furthest and
    /// scored best there; each side oldest first.
    public static func split(_ history: [SearchObservation], below n: Int) -> (below: [SearchObservation], above: [SearchObservation]) {
        func key(_ s: Double) -> Double { s.isNaN ? .infinity : s }
        let complete = history.filter { !$0.pruned }.sorted { key($0.score) < key($1.score) || (key($0.score) == key($1.score) && $0.number < $1.number) }
        let pruned = history.filter(\.pruned).sorted {
            ($0.rung, -key($0.score)) > ($1.rung, -key($1.score)) || (($0.rung, key($0.score)) == ($1.rung, key($1.score)) && $0.number < $1.number)
        }
        let fromComplete = min(n, complete.count), fromPruned = min(n - fromComplete, pruned.count)
        let below = Array(complete[..<fromComplete]) + Array(pruned[..<fromPruned])
        let above = Array(complete[fromComplete...]) + Array(pruned[fromPruned...])
        return (below.sorted { $0.number < $1.number }, above.sorted { $0.number < $1.number })
    }
}
