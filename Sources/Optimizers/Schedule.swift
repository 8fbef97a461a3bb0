#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Learning-rate schedules as a function of the optimizer step t (1-based: the lr used by the t-th update).
public enum LRSchedule: Equatable, Sendable {
    /// γ_t = γ.
    case constant
    /// Linear warmup over `warmup` steps (γ·t/warmup for t ≤ warmup), then cosine decay from γ at t = warmup to
    /// γ·minRatio at t = total (Loshchilov & Hutter 2017, without restarts); held at γ·minRatio after `total`.
    case warmupCosine(warmup: Int, total: Int, minRatio: Double)
    /// Step decay (Krizhevsky et al. 2012; Goyal et al. 2017 with warmup): linear warmup, then γ·gamma^⌊(t − warmup − 1)/every⌋.
    case step(warmup: Int, every: Int, gamma: Double)
    /// Warmup–stable–decay (Hu et al. 2024, MiniCPM): linear warmup, γ held, then a linear decay to γ·minRatio over
    /// the last `decay` steps ending at t = total.
    case warmupStableDecay(warmup: Int, decay: Int, total: Int, minRatio: Double)

    public func lr(base: Double, step t: Int) -> Double {
        switch self {
        case .constant:
            return base
        case let .warmupCosine(warmup, total, minRatio):
            if warmup > 0 && t <= warmup { return base * Double(t) / Double(warmup) }
            guard total > warmup else { return base }
            let progress = min(1, Double(t - warmup) / Double(total - warmup))
            return base * (minRatio + (1 - minRatio) * 0.5 * (1 + cos(Double.pi * progress)))
        case let .step(warmup, every, gamma):
            if warmup > 0 && t <= warmup { return base * Double(t) / Double(warmup) }
            return base * pow(gamma, Double(max(0, t - warmup - 1) / max(1, every)))
        case let .warmupStableDecay(warmup, decay, total, minRatio):
            if warmup > 0 && t <= warmup { return base * Double(t) / Double(warmup) }
            let decayStart = total - decay
            guard decay > 0, t > decayStart else { return base }
            let progress = min(1, Double(t - decayStart) / Double(decay))
            return base * (1 - (1 - minRatio) * progress)
        }
    }
}
