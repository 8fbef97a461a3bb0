import CMPI

// Non-blocking Float-sum collectives built from point-to-point messages ("direct" / pairwise exchange: every rank
// sends each peer the block that peer owns, all messages posted at once), for the gradient buckets of the engine.
//
// Why not the MPI collective: Open MPI's non-blocking collectives (coll/libnbc) route a reduce-scatter through a
// reduction onto one rank followed by a scatter, and an in-place all-reduce (by default) through reduce + broadcast.
// On one node with few ranks each bucket then crosses shared memory several times and the reduction is serialised
// on one rank. Direct exchange moves each element once per phase and spreads the additions over the owners.
// Measured on 2 ranks (`swift-train bench-comm`, docs/benchmarks.md): see the "direct" rows there.
//
// Messages are matched by (source, tag): each call takes a fresh tag from a counter that advances identically on
// every rank (collectives are called in the same order everywhere), so a second phase posted late on one rank can
// never match an earlier call's message. Every rank reduces the elements it owns in a fixed order, so the result
// does not depend on arrival order; an all-reduce then sends the owner's sums to everyone, so all ranks
// hold bit-identical values. Each owner adds its own block first, then its peers' in rank order: a fixed order, so
// runs are reproducible (with two ranks, a + b = b + a: the same bits as MPI's reduction).

extension MPICommunicator {
    /// Reduce-scatter (sum) by direct exchange: same contract as `iReduceScatter(op: .sum)`.
    public func iReduceScatterSumDirect(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                                        counts: [Int]) throws -> CollectiveRequest {
        try checkCounts(counts, call: "reduce-scatter (direct)")
        guard send.count == counts.reduce(0, +), receive.count == counts[rank] else {
            throw CommunicationError(call: "reduce-scatter (direct)",
                                     message: "send has \(send.count) elements (counts sum to \(counts.reduce(0, +))), receive has \(receive.count) (rank \(rank)'s count is \(counts[rank]))")
        }
        let request = DirectRequest(communicator: self, call: "reduce-scatter (direct)")
        try request.startReduceScatter(send: send, receive: receive, counts: counts, tag: nextTag())
        register(request)
        return request
    }

    /// All-reduce (sum) in place by direct exchange: a reduce-scatter over an even split, then an all-gather of
    /// the owners' sums. Same contract as `iAllReduce(op: .sum)`.
    public func iAllReduceSumDirect(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> CollectiveRequest {
        let counts = evenSplit(buffer.count, parts: size)
        let request = DirectRequest(communicator: self, call: "all-reduce (direct)")
        let mine = UnsafeMutableBufferPointer(rebasing: buffer[displacements(of: counts)[rank]...].prefix(counts[rank]))
        let reduceTag = nextTag(), gatherTag = nextTag()
        try request.startReduceScatter(send: UnsafeBufferPointer(buffer), receive: mine, counts: counts, tag: reduceTag,
                                       then: { try $0.startAllGather(buffer, counts: counts, tag: gatherTag) })
        register(request)
        return request
    }

    /// All-gather in place by direct exchange: same contract as `iAllGatherInPlace`.
    public func iAllGatherInPlaceDirect(_ buffer: UnsafeMutableBufferPointer<Float>, counts: [Int]) throws -> CollectiveRequest {
        try checkCounts(counts, call: "all-gather (direct)")
        guard buffer.count == counts.reduce(0, +) else {
            throw CommunicationError(call: "all-gather (direct)",
                                     message: "buffer has \(buffer.count) elements, counts sum to \(counts.reduce(0, +))")
        }
        let request = DirectRequest(communicator: self, call: "all-gather (direct)")
        try request.startAllGather(buffer, counts: counts, tag: nextTag())
        register(request)
        return request
    }
}

/// `n` split into `parts` nearly equal blocks (the first `n % parts` one larger).
func evenSplit(_ n: Int, parts: Int) -> [Int] {
    (0..<parts).map { n / parts + ($0 < n % parts ? 1 : 0) }
}

/// One direct collective in flight: the MPI requests of its current phase, and what to do when they complete.
final class DirectRequest: CollectiveRequest {
    private unowned let communicator: MPICommunicator
    private let call: String
    private var handles: [MPI_Request?] = []
    /// Runs when every request of the phase is complete; may start the next phase.
    private var onPhaseComplete: ((DirectRequest) throws -> Void)?
    private var scratch: ScratchBuffer?
    private var done = false

    init(communicator: MPICommunicator, call: String) {
        self.communicator = communicator
        self.call = call
    }

    /// Posts the exchange of a reduce-scatter; on completion sums this rank's block in rank order into `receive`,
    /// then runs `then` (the next phase), if any.
    func startReduceScatter(send: UnsafeBufferPointer<Float>, receive: UnsafeMutableBufferPointer<Float>, counts: [Int],
                            tag: Int32, then next: ((DirectRequest) throws -> Void)? = nil) throws {
        let c = communicator, rank = c.rank, size = c.size, mine = counts[rank]
        let offsets = displacements(of: counts)
        let own = send.baseAddress.map { $0 + offsets[rank] }
        if size == 1 {
            // One rank: the "sum" is the block itself (the same memory in an in-place all-reduce).
            if mine > 0 { receive.baseAddress!.update(from: own!, count: mine) }
            if let next { try next(self) }
            return
        }
        // Peers' copies of my block land in scratch slots, in rank order with my own slot skipped.
        let peers = size - 1
        let slots = c.takeScratch(count: peers * mine)
        scratch = slots
        handles.removeAll(keepingCapacity: true)
        for peer in 0..<size where peer != rank {
            if mine > 0 {
                let slot = peer < rank ? peer : peer - 1
                handles.append(try c.postReceive(slots.pointer + slot * mine, count: mine, from: peer, tag: tag, call: call))
            }
            if counts[peer] > 0 {
                handles.append(try c.postSend(send.baseAddress! + offsets[peer], count: counts[peer], to: peer, tag: tag,
                                              call: call))
            }
        }
        onPhaseComplete = { request in
            if mine > 0, let out = receive.baseAddress, let own {
                // own + peers in rank order. `out` may be `own` itself (in-place all-reduce), so own is read only
                // in the first pass, element by element before that element is written.
                let first = UnsafePointer(slots.pointer)
                for i in 0..<mine { out[i] = own[i] + first[i] }
                for slot in 1..<peers {
                    let b = slots.pointer + slot * mine
                    for i in 0..<mine { out[i] += b[i] }
                }
            }
            c.returnScratch(slots)
            request.scratch = nil
            request.onPhaseComplete = nil
            if let next { try next(request) }
        }
    }

    /// Posts an in-place all-gather: my block to every peer, every peer's block into its place.
    func startAllGather(_ buffer: UnsafeMutableBufferPointer<Float>, counts: [Int], tag: Int32) throws {
        let c = communicator, rank = c.rank
        let offsets = displacements(of: counts)
        handles.removeAll(keepingCapacity: true)
        for peer in 0..<c.size where peer != rank {
            if counts[peer] > 0 {
                handles.append(try c.postReceive(buffer.baseAddress! + offsets[peer], count: counts[peer], from: peer,
                                                 tag: tag, call: call))
            }
            if counts[rank] > 0 {
                handles.append(try c.postSend(buffer.baseAddress! + offsets[rank], count: counts[rank], to: peer, tag: tag,
                                              call: call))
            }
        }
        onPhaseComplete = { request in request.onPhaseComplete = nil }
    }

    var isComplete: Bool { done }

    /// Progresses every direct collective in flight, not only this one: a later phase is posted by whichever call
    /// happens to run, so ranks may complete their requests in different orders without waiting on each other
    /// (as MPI's own non-blocking collectives allow).
    func test() throws -> Bool {
        if !done { try communicator.progressDirectRequests() }
        return done
    }

    func wait() throws {
        while !done { try communicator.progressDirectRequests() }
    }

    /// Tests the current phase's messages and, when they are all complete, runs the phase's completion (which may
    /// post the next phase). Called by the communicator's progress loop.
    func advance() throws {
        while !done {
            if !handles.isEmpty {
                var flag: Int32 = 0
                let n = Int32(handles.count)
                try handles.withUnsafeMutableBufferPointer {
                    try MPIRuntime.check(MPI_Testall(n, $0.baseAddress, &flag, swt_statuses_ignore()), "MPI_Testall(\(call))")
                }
                if flag == 0 { return }
                handles.removeAll(keepingCapacity: true)
            }
            try finishPhase()
        }
    }

    /// All requests of the phase are complete: run its completion (which may post the next phase's requests).
    private func finishPhase() throws {
        if let complete = onPhaseComplete { try complete(self) }
        if handles.isEmpty && onPhaseComplete == nil { done = true }
    }

    deinit {
        // Dropped before completion: MPI may still write into the buffers; finish the messages first.
        if !handles.isEmpty {
            let n = Int32(handles.count)
            handles.withUnsafeMutableBufferPointer { _ = MPI_Waitall(n, $0.baseAddress, swt_statuses_ignore()) }
        }
        if let scratch { communicator.returnScratch(scratch) }
    }
}

/// Float workspace for the peers' blocks of a direct reduce-scatter, recycled through the communicator's pool so a
/// training step allocates nothing.
final class ScratchBuffer {
    let pointer: UnsafeMutablePointer<Float>
    let capacity: Int
    init(capacity: Int) {
        self.capacity = capacity
        pointer = .allocate(capacity: max(capacity, 1))
    }
    deinit { pointer.deallocate() }
}
