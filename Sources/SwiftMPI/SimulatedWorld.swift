import Foundation

/// N ranks as N threads of one process, for testing multi-rank logic under `swift test` without `mpirun`.
///
/// Semantics match `MPICommunicator`: collectives block until every rank has called them; reductions are
/// computed in rank order 0, 1, …, N−1 (deterministic). If a rank's body throws, the world is poisoned and every
/// other rank's next collective throws instead of waiting forever.
public final class SimulatedWorld: @unchecked Sendable {
    public let size: Int
    private let condition = NSCondition()
    private var arrived = 0
    private var generation = 0
    private var poisoned: String?
    /// Per-rank published addresses for the collective in progress (send side, receive side).
    fileprivate var sendSlots: [UnsafeRawPointer?]
    fileprivate var receiveSlots: [UnsafeMutableRawPointer?]

    private init(size: Int) {
        precondition(size >= 1, "a world needs at least one rank")
        self.size = size
        sendSlots = Array(repeating: nil, count: size)
        receiveSlots = Array(repeating: nil, count: size)
    }

    /// Runs `body` once per rank, each on its own thread, and returns each rank's result in rank order.
    /// Rethrows the first error (by rank) after all threads have finished.
    public static func run<R: Sendable>(size: Int, _ body: @escaping @Sendable (Communicator) throws -> R) throws -> [R] {
        let world = SimulatedWorld(size: size)
        let results = ResultBox<R>(count: size)
        let group = DispatchGroup()
        for rank in 0..<size {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                let comm = SimulatedCommunicator(world: world, rank: rank)
                do { results.set(rank, .success(try body(comm))) } catch {
                    world.poison("rank \(rank) failed: \(error)")
                    results.set(rank, .failure(error))
                }
            }
            thread.stackSize = 16 << 20
            thread.start()
        }
        group.wait()
        return try results.values.map { try $0!.get() }
    }

    fileprivate func poison(_ reason: String) {
        condition.lock()
        if poisoned == nil { poisoned = reason }
        condition.broadcast()
        condition.unlock()
    }

    /// Blocks until all ranks arrive (a generation-counted barrier).
    fileprivate func barrier() throws {
        condition.lock()
        defer { condition.unlock() }
        if let reason = poisoned { throw CommunicationError(call: "SimulatedWorld", message: reason) }
        let myGeneration = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation += 1
            condition.broadcast()
            return
        }
        while generation == myGeneration {
            if let reason = poisoned { throw CommunicationError(call: "SimulatedWorld", message: reason) }
            condition.wait()
        }
    }
}

private final class ResultBox<R>: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [Result<R, Error>?]
    init(count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<R, Error>) { lock.lock(); values[i] = r; lock.unlock() }
}

/// One rank's view of a `SimulatedWorld`. Every collective is: publish addresses, barrier, read peers, barrier,
/// write own result — so no rank writes a buffer another rank may still be reading.
final class SimulatedCommunicator: Communicator {
    let rank: Int
    var size: Int { world.size }
    private let world: SimulatedWorld

    init(world: SimulatedWorld, rank: Int) {
        self.world = world
        self.rank = rank
    }

    private func publish(send: UnsafeRawPointer?, receive: UnsafeMutableRawPointer?) throws {
        world.sendSlots[rank] = send
        world.receiveSlots[rank] = receive
        try world.barrier()
    }

    private func peer<T>(_ r: Int, _ type: T.Type) -> UnsafePointer<T>? {
        world.sendSlots[r]?.assumingMemoryBound(to: T.self)
    }

    func allReduce<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp) throws {
        try publish(send: UnsafeRawPointer(buffer.baseAddress), receive: nil)
        var result = Array(UnsafeBufferPointer(start: peer(0, T.self), count: buffer.count))
        for r in 1..<size {
            let p = peer(r, T.self)!
            for i in 0..<buffer.count { result[i] = op.combine(result[i], p[i]) }
        }
        try world.barrier()
        for i in 0..<buffer.count { buffer[i] = result[i] }
    }

    func reduceScatter<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>,
                                            counts: [Int], op: ReduceOp) throws {
        try checkCounts(counts, call: "reduceScatter")
        guard send.count == counts.reduce(0, +), receive.count == counts[rank] else {
            throw CommunicationError(call: "reduceScatter", message: "buffer sizes do not match counts \(counts)")
        }
        try publish(send: UnsafeRawPointer(send.baseAddress), receive: nil)
        let start = displacements(of: counts)[rank]
        var result = [T](repeating: 0, count: counts[rank])
        for r in 0..<size {
            let p = peer(r, T.self)!
            for i in 0..<counts[rank] { result[i] = r == 0 ? p[start + i] : op.combine(result[i], p[start + i]) }
        }
        try world.barrier()
        for i in 0..<result.count { receive[i] = result[i] }
    }

    func allGather<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>,
                                        counts: [Int]) throws {
        try checkCounts(counts, call: "allGather")
        guard send.count == counts[rank], receive.count == counts.reduce(0, +) else {
            throw CommunicationError(call: "allGather", message: "buffer sizes do not match counts \(counts)")
        }
        try publish(send: UnsafeRawPointer(send.baseAddress), receive: nil)
        let offsets = displacements(of: counts)
        for r in 0..<size where counts[r] > 0 {
            let p = peer(r, T.self)!
            for i in 0..<counts[r] { receive[offsets[r] + i] = p[i] }
        }
        try world.barrier()
    }

    func allGatherInPlace<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, counts: [Int]) throws {
        try checkCounts(counts, call: "allGatherInPlace")
        guard buffer.count == counts.reduce(0, +) else {
            throw CommunicationError(call: "allGatherInPlace", message: "buffer has \(buffer.count) elements, counts \(counts)")
        }
        // Each rank reads only peers' own blocks and writes only other blocks of its own buffer: no overlap.
        try publish(send: UnsafeRawPointer(buffer.baseAddress), receive: nil)
        let offsets = displacements(of: counts)
        for r in 0..<size where r != rank && counts[r] > 0 {
            let p = peer(r, T.self)!
            for i in 0..<counts[r] { buffer[offsets[r] + i] = p[offsets[r] + i] }
        }
        try world.barrier()
    }

    func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        try publish(send: UnsafeRawPointer(buffer.baseAddress), receive: nil)
        if rank != root {
            let p = peer(root, T.self)!
            for i in 0..<buffer.count { buffer[i] = p[i] }
        }
        try world.barrier()
    }

    func barrier() throws { try world.barrier() }

    // In one process the non-blocking forms complete eagerly; ordering semantics are unchanged.
    func iAllReduce<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp) throws -> CollectiveRequest {
        try allReduce(buffer, op: op)
        return CompletedRequest()
    }

    func iReduceScatter<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>,
                                             counts: [Int], op: ReduceOp) throws -> CollectiveRequest {
        try reduceScatter(send, into: receive, counts: counts, op: op)
        return CompletedRequest()
    }

    func iAllGatherInPlace<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, counts: [Int]) throws -> CollectiveRequest {
        try allGatherInPlace(buffer, counts: counts)
        return CompletedRequest()
    }
}
