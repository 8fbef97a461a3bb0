// The pieces every population method shares: the objective a candidate is scored on, the exchange that combines
// one loss vector over ranks, how members are split over ranks, and the shared noise table.
//
// Distribution model (all three methods): the method's state is *replicated* — every rank holds the same parameter
// vectors and draws the same random numbers from the same seeded streams — and only the *evaluations* are split:
// rank r scores the members of its block, writes their losses into a vector with zeros elsewhere, and one sum over
// ranks gives every rank the full vector. Adding exact zeros changes no bit, so the combined vector, and therefore
// every later step, is identical for any world size. Only P numbers travel per step, never a parameter vector.
//
// Dimension letters: D parameters (the flat buffer), P population members (losses per step).

import Tensors

/// What a population method minimises: a loss of one candidate parameter vector (lower is better). For training
/// the candidate is scored on the step's mini-batch; the test functions (sphere, Rastrigin) are deterministic.
public protocol PopulationObjective: AnyObject {
    /// D, the length of every candidate.
    var dimension: Int { get }
    /// The loss of `params` (D elements).
    func loss(_ params: UnsafeBufferPointer<Float>) -> Double
}

/// Combines one vector of losses over ranks. The implementation over a real or simulated communicator lives in
/// Distributed (`CommunicatorPopulationExchange`), so the rule "only Distributed communicates during a step" holds;
/// `SingleProcessExchange` is the one-rank case.
public protocol PopulationExchange: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// In place: element-wise sum over ranks. Every rank calls it once per population step, with the same count.
    func sumOverRanks(_ values: UnsafeMutableBufferPointer<Double>) throws
}

/// One process, no communication: the sum over one rank is the vector itself.
public final class SingleProcessExchange: PopulationExchange {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func sumOverRanks(_ values: UnsafeMutableBufferPointer<Double>) throws {}
}

/// The members rank `rank` of `ranks` evaluates: the contiguous block [rank·P/ranks, (rank+1)·P/ranks).
/// Precondition: `ranks` divides `members` (validated with `PopulationPartition.check` before any communication).
public struct PopulationPartition: Sendable, Equatable {
    public let members: Int
    public let ranks: Int

    public init(members: Int, ranks: Int) {
        precondition(ranks >= 1 && members % ranks == 0, "\(members) members do not divide over \(ranks) ranks")
        self.members = members
        self.ranks = ranks
    }

    public func block(of rank: Int) -> Range<Int> {
        let per = members / ranks
        return (rank * per)..<((rank + 1) * per)
    }

    /// nil when `members` members (in units of `unit`, e.g. antithetic pairs) divide over `ranks`; otherwise the
    /// error to report before any rank communicates.
    public static func check(members: Int, unit: Int = 1, ranks: Int, key: String) -> String? {
        guard members > 0, members % unit == 0 else {
            return "\(key) = \(members) must be a positive multiple of \(unit)"
        }
        guard (members / unit) % ranks == 0 else {
            let step = unit * ranks
            let suggestion = max(step, (members / step) * step)
            return "\(key) = \(members) does not divide over \(ranks) ranks"
                + (unit > 1 ? " (\(members / unit) groups of \(unit))" : "")
                + "; use a multiple of \(step), e.g. \(suggestion)"
        }
        return nil
    }
}

/// Scores this rank's block of members and combines the full loss vector over ranks (one collective).
/// `score(i)` returns member i's loss; slots outside the block are zero before the sum.
@inline(__always)
func combineLosses(_ losses: inout [Double], block: Range<Int>, exchange: PopulationExchange,
                   score: (Int) -> Double) throws {
    for i in 0..<losses.count { losses[i] = 0 }
    for i in block { losses[i] = score(i) }
    try losses.withUnsafeMutableBufferPointer { try exchange.sumOverRanks($0) }
}

/// A table of standard-normal floats generated once from a seed, shared by every rank (Salimans et al. 2017, §2.1:
/// "a large block of shared noise"): a perturbation is a D-long window at a seeded offset, so a member is named by
/// one integer and regenerating it costs a read instead of D Gaussian draws.
public final class NoiseTable {
    public let values: FloatBuffer  // (count)
    public let seed: UInt64

    /// Tables at least this long, so windows of a small model overlap little.
    public static let minimumCount = 1 << 20

    /// `count` N(0, 1) values (Box–Muller from `SplitMix64(seed:stream:)`), rounded to Float.
    public init(count: Int, seed: UInt64) {
        precondition(count > 0, "a noise table needs at least one value")
        values = FloatBuffer(count: count)
        self.seed = seed
        var rng = SplitMix64(seed: seed, stream: 0x4E015E)
        let v = values.pointer
        for i in 0..<count { v[i] = Float(rng.normal()) }
    }

    /// The table a method over D parameters uses: max(`minimumCount`, 8·D) values.
    public convenience init(dimension: Int, seed: UInt64) {
        self.init(count: max(Self.minimumCount, 8 * dimension), seed: seed)
    }

    /// A uniformly drawn window start for a D-long perturbation.
    @inline(__always)
    public func offset(dimension: Int, _ rng: inout SplitMix64) -> Int {
        precondition(dimension <= values.count, "noise table of \(values.count) values is shorter than D = \(dimension)")
        return Int(rng.next() % UInt64(values.count - dimension + 1))
    }

    /// The window [offset, offset + D).
    @inline(__always)
    public func window(_ offset: Int, dimension: Int) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: values.pointer + offset, count: dimension)
    }
}

/// out[D] = x[D] + scale · noise[D] (a candidate from a centre and a perturbation).
@inline(__always)
func perturbed(_ out: UnsafeMutableBufferPointer<Float>, _ x: UnsafeBufferPointer<Float>, _ noise: UnsafeBufferPointer<Float>,
               scale: Float) {
    let o = out.baseAddress!, a = x.baseAddress!, e = noise.baseAddress!
    for d in 0..<out.count { o[d] = a[d] + scale * e[d] }
}

/// What one population step measured (losses of every member, combined over ranks).
public struct PopulationStepResult: Sendable, Equatable {
    public var meanLoss: Double
    public var bestLoss: Double
    /// Objective evaluations this step, over all ranks.
    public var evaluations: Int
}

func summarise(_ losses: [Double]) -> PopulationStepResult {
    PopulationStepResult(meanLoss: losses.reduce(0, +) / Double(losses.count), bestLoss: losses.min() ?? .nan,
                         evaluations: losses.count)
}

/// A population optimiser over the flat parameter buffer. State is replicated on every rank; `step` evaluates this
/// rank's members, combines the losses with one `exchange.sumOverRanks`, and updates the replicated state.
public protocol PopulationMethod: AnyObject {
    var name: String { get }
    var dimension: Int { get }
    /// Members scored per step (over all ranks); the unit the partition over ranks is checked in.
    var populationSize: Int { get }
    /// Steps taken.
    var stepCount: Int { get }
    /// One generation. `lr` is the scheduled learning rate: ES hands it to its optimizer; GA and SA ignore it.
    func step(objective: PopulationObjective, exchange: PopulationExchange, lr: Float) throws -> PopulationStepResult
    /// The parameters this method would report now (ES: the mean; GA: the best member of the last evaluated
    /// generation; SA: the chain with the lowest current loss), D elements.
    func writeSolution(into params: UnsafeMutableBufferPointer<Float>)
    /// Named state buffers and scalars for checkpoints (everything besides the seed and configuration).
    func exportState() -> PopulationState
    func importState(_ state: PopulationState) throws
}

/// A population method's checkpointable state: float buffers and double scalars by name, and the step count (all
/// random draws are functions of seed and step, so no generator state is stored).
public struct PopulationState: Sendable, Equatable {
    public var stepCount: Int
    public var buffers: [String: [Float]]
    public var scalars: [String: [Double]]
    public init(stepCount: Int, buffers: [String: [Float]], scalars: [String: [Double]] = [:]) {
        self.stepCount = stepCount
        self.buffers = buffers
        self.scalars = scalars
    }

    func buffer(_ name: String, count: Int, method: String) throws -> [Float] {
        guard let b = buffers[name], b.count == count else {
            throw PopulationStateError(message: "\(method) state '\(name)' is missing or has the wrong length (need \(count))")
        }
        return b
    }

    func scalars(_ name: String, count: Int, method: String) throws -> [Double] {
        guard let s = scalars[name], s.count == count else {
            throw PopulationStateError(message: "\(method) state '\(name)' is missing or has the wrong length (need \(count))")
        }
        return s
    }
}

public struct PopulationStateError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// R parameter vectors of D elements in one allocation (R, D) row-major: a GA population, SA chains.
public final class ParameterRows {
    public let rows: Int
    public let dimension: Int
    public let storage: FloatBuffer  // (R, D)

    /// Every row a copy of `initial` (D).
    public init(rows: Int, copying initial: UnsafeBufferPointer<Float>) {
        self.rows = rows
        dimension = initial.count
        storage = FloatBuffer(count: rows * initial.count)
        for r in 0..<rows { row(r).update(fromContentsOf: initial) }
    }

    public func row(_ r: Int) -> UnsafeMutableBufferPointer<Float> { storage.slice((r * dimension)..<((r + 1) * dimension)) }
    public func readRow(_ r: Int) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(row(r)) }
}

extension PopulationExchange {
    /// Sums a short vector over ranks (metric windows, evaluation sums): the same collective as the loss exchange.
    public func sumOverRanks(_ values: inout [Double]) throws {
        try values.withUnsafeMutableBufferPointer { try sumOverRanks($0) }
    }
}
