// Standard test functions for global optimisers, as `PopulationObjective`s, with their known minima (both 0 at
// x = 0). Each counts its evaluations so tests can hold a method to a budget.
// Dimension letters: D the number of variables.

import Foundation

/// The sphere f(x) = Σ xᵢ²: convex, unimodal; any sound method should reach its minimum.
public final class SphereFunction: PopulationObjective {
    public let dimension: Int
    public private(set) var evaluations = 0
    public init(dimension: Int) { self.dimension = dimension }
    public func loss(_ x: UnsafeBufferPointer<Float>) -> Double {
        evaluations += 1
        var s = 0.0
        for v in x { s += Double(v) * Double(v) }
        return s
    }
}

/// Rastrigin (1974; Mühlenbein et al. 1991): f(x) = 10D + Σ (xᵢ² − 10 cos 2πxᵢ), highly multimodal — a local
/// minimum near every integer point, the global one at 0 — so a local descent from |x| ≈ 3 stalls at f ≈ 10·k.
public final class RastriginFunction: PopulationObjective {
    public let dimension: Int
    public private(set) var evaluations = 0
    public init(dimension: Int) { self.dimension = dimension }
    public func loss(_ x: UnsafeBufferPointer<Float>) -> Double {
        evaluations += 1
        var s = 10 * Double(dimension)
        for v in x { let t = Double(v); s += t * t - 10 * cos(2 * Double.pi * t) }
        return s
    }
}
