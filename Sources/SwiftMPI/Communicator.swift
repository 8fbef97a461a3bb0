import CKernels

/// Swift-typed collectives over a group of ranks.
///
/// Two implementations: `MPICommunicator` (real Open MPI, the only code that touches the MPI C API) and
/// `SimulatedWorld` (threads in one process, for unit tests of multi-rank logic under `swift test`).
///
/// Contract shared by every implementation, as in MPI itself:
/// - every rank calls every collective, in the same order, with matching counts;
/// - buffers passed to a non-blocking call must stay alive and untouched until its request completes;
/// - errors are thrown, never ignored.

/// Element types the collectives can move. `reduce` is used only by in-process implementations.
public protocol CollectiveScalar: Numeric, Comparable, Sendable {
    static var scalarKind: ScalarKind { get }
}

/// The element types, so implementations can map them to their own type handles.
public enum ScalarKind: Sendable { case float32, float64, int32, int64, uint8, uint16 }

extension Float: CollectiveScalar { public static var scalarKind: ScalarKind { .float32 } }
extension Double: CollectiveScalar { public static var scalarKind: ScalarKind { .float64 } }
extension Int32: CollectiveScalar { public static var scalarKind: ScalarKind { .int32 } }
extension Int64: CollectiveScalar { public static var scalarKind: ScalarKind { .int64 } }
extension UInt8: CollectiveScalar { public static var scalarKind: ScalarKind { .uint8 } }
/// UInt16 moves bf16 bit patterns (the bf16 weight all-gather); summing them is meaningless, so only
/// gathers and broadcasts carry it.
extension UInt16: CollectiveScalar { public static var scalarKind: ScalarKind { .uint16 } }

/// Reductions. MPI has no "average": sum, then scale by 1/world.
public enum ReduceOp: Sendable {
    case sum, max, min

    @inlinable
    public func combine<T: CollectiveScalar>(_ a: T, _ b: T) -> T {
        switch self {
        case .sum: return a + b
        case .max: return Swift.max(a, b)
        case .min: return Swift.min(a, b)
        }
    }
}

/// A pending non-blocking collective. The buffers it was started with belong to it until `wait()` returns
/// or `test()` returns true.
public protocol CollectiveRequest: AnyObject {
    /// Blocks until the operation is complete.
    func wait() throws
    /// Progresses the operation; returns true once it is complete (then `wait()` returns at once).
    func test() throws -> Bool
}

public protocol Communicator: AnyObject {
    /// This process's rank in `0..<size`.
    var rank: Int { get }
    /// Number of ranks in the group.
    var size: Int { get }

    /// In place: every rank's `buffer` becomes the element-wise reduction over ranks.
    func allReduce<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp) throws
    /// Reduces `send` (the full vector, `counts.reduce(0,+)` elements, identical layout on every rank) over ranks
    /// and leaves block `r` — `counts[r]` elements starting at `counts[..<r].sum` — on rank `r` in `receive`.
    /// `receive.count` must equal `counts[rank]`. Counts may differ per rank and may be zero.
    func reduceScatter<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>,
                                            counts: [Int], op: ReduceOp) throws
    /// Concatenates every rank's `send` (`counts[r]` elements from rank `r`) into `receive` on every rank.
    func allGather<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>,
                                        counts: [Int]) throws
    /// In place: block `rank` of `buffer` (laid out by `counts`) is this rank's contribution; afterwards every rank
    /// holds every block. This is the form the sharded optimizer uses to reassemble the flat parameter buffer.
    func allGatherInPlace<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, counts: [Int]) throws
    /// Copies `buffer` from `root` to every rank.
    func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws
    func barrier() throws

    /// Non-blocking forms of the above; the returned request owns the buffers until complete.
    func iAllReduce<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp) throws -> CollectiveRequest
    func iReduceScatter<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>,
                                             counts: [Int], op: ReduceOp) throws -> CollectiveRequest
    func iAllGatherInPlace<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, counts: [Int]) throws -> CollectiveRequest

    /// Float sums for large buffers, by direct exchange between ranks (MPICommunicator: point-to-point messages,
    /// DirectCollectives.swift; other implementations: the collectives above). Same contracts as `iReduceScatter`
    /// (op .sum), `iAllReduce` (op .sum) and `iAllGatherInPlace`.
    func iReduceScatterSumDirect(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                                 counts: [Int]) throws -> CollectiveRequest
    func iAllReduceSumDirect(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> CollectiveRequest
    /// `iReduceScatterSumDirect` with bf16 payloads summed in fp32 by each owner (MPICommunicator: see
    /// DirectCollectives.swift; other implementations round the peers' contributions the same way and reduce).
    func iReduceScatterSumDirectBF16(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                                     counts: [Int]) throws -> CollectiveRequest
    func iAllGatherInPlaceDirect(_ buffer: UnsafeMutableBufferPointer<Float>, counts: [Int]) throws -> CollectiveRequest
}

/// Errors from the communication layer; each names the call that failed.
public struct CommunicationError: Error, CustomStringConvertible {
    public let call: String
    public let message: String
    public init(call: String, message: String) { self.call = call; self.message = message }
    public var description: String { "\(call) failed: \(message)" }
}

extension Communicator {
    public func iReduceScatterSumDirect(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                                        counts: [Int]) throws -> CollectiveRequest {
        try iReduceScatter(send, into: receive, counts: counts, op: .sum)
    }
    public func iAllReduceSumDirect(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> CollectiveRequest {
        try iAllReduce(buffer, op: .sum)
    }
    /// Blocking, on a rounded copy: every element of `send` outside this rank's own block is what a peer would
    /// receive from this rank, so it is rounded to bf16; the own block stays fp32, as the owner's addend.
    public func iReduceScatterSumDirectBF16(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                                            counts: [Int]) throws -> CollectiveRequest {
        var payload = [Float](send)
        let start = counts[..<rank].reduce(0, +), own = start..<(start + counts[rank])
        payload.withUnsafeMutableBufferPointer { p in
            let halves = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: max(p.count, 1))
            defer { halves.deallocate() }
            swt_f32_to_bf16(halves.baseAddress!, p.baseAddress!, p.count)
            for i in p.indices where !own.contains(i) { p[i] = Float(bitPattern: UInt32(halves[i]) << 16) }
        }
        try payload.withUnsafeBufferPointer { try reduceScatter($0, into: receive, counts: counts, op: .sum) }
        return CompletedRequest()
    }
    public func iAllGatherInPlaceDirect(_ buffer: UnsafeMutableBufferPointer<Float>, counts: [Int]) throws -> CollectiveRequest {
        try iAllGatherInPlace(buffer, counts: counts)
    }

    /// Convenience for scalars: all-reduces one value.
    public func allReduce<T: CollectiveScalar>(_ value: T, op: ReduceOp) throws -> T {
        var v = value
        try withUnsafeMutablePointer(to: &v) { try allReduce(UnsafeMutableBufferPointer(start: $0, count: 1), op: op) }
        return v
    }

    /// Convenience for small arrays: all-reduces in place.
    public func allReduce<T: CollectiveScalar>(_ values: inout [T], op: ReduceOp) throws {
        try values.withUnsafeMutableBufferPointer { try allReduce($0, op: op) }
    }

    /// Validates a variable-count layout against this group; thrown before any rank communicates would deadlock.
    public func checkCounts(_ counts: [Int], call: String) throws {
        guard counts.count == size else {
            throw CommunicationError(call: call, message: "expected \(size) counts (one per rank), got \(counts.count)")
        }
        if let bad = counts.first(where: { $0 < 0 || $0 > Int(Int32.max) }) {
            throw CommunicationError(call: call, message: "count \(bad) is outside 0...\(Int32.max)")
        }
    }
}

/// Prefix sums of `counts`: displacements[r] = counts[0..<r].sum.
@inlinable
public func displacements(of counts: [Int]) -> [Int] {
    var result = [Int](repeating: 0, count: counts.count)
    var running = 0
    for (i, c) in counts.enumerated() { result[i] = running; running += c }
    return result
}

/// A request that was complete when it was created (used by in-process communicators).
public final class CompletedRequest: CollectiveRequest {
    public init() {}
    public func wait() throws {}
    public func test() throws -> Bool { true }
}
