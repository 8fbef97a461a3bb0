import CKernels
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
        try reduceScatterDirect(send, receive, counts, bf16Payload: false)
    }

    /// Reduce-scatter (sum) by direct exchange with bf16 payloads (`zero.comm_dtype: bf16`): each rank rounds the
    /// blocks it sends to their owners to bf16 (2 bytes an element instead of 4), and each owner sums in fp32 — its
    /// own block unrounded, then the peers' widened, in rank order (MPI has no bf16 sum; the owner-side addition
    /// of a direct exchange is where the fp32 accumulation happens). Same contract as `iReduceScatterSumDirect`
    /// otherwise; the result differs from it by the rounding of the peers' contributions (≤ 2⁻⁸ relative each).
    public func iReduceScatterSumDirectBF16(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                                            counts: [Int]) throws -> CollectiveRequest {
        try reduceScatterDirect(send, receive, counts, bf16Payload: true)
    }

    private func reduceScatterDirect(_ send: UnsafeBufferPointer<Float>, _ receive: UnsafeMutableBufferPointer<Float>,
                                     _ counts: [Int], bf16Payload: Bool) throws -> CollectiveRequest {
        let call = bf16Payload ? "reduce-scatter (direct, bf16)" : "reduce-scatter (direct)"
        try checkCounts(counts, call: call)
        guard send.count == counts.reduce(0, +), receive.count == counts[rank] else {
            throw CommunicationError(call: call,
                                     message: "send has \(send.count) elements (counts sum to \(counts.reduce(0, +))), receive has \(receive.count) (rank \(rank)'s count is \(counts[rank]))")
        }
        let request = DirectRequest(communicator: self, call: call)
        if bf16Payload {
            try request.startReduceScatterBF16(send: send, receive: receive, counts: counts, tag: nextTag())
        } else {
            try request.startReduceScatter(send: send, receive: receive, counts: counts, tag: nextTag())
        }
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
    /// Workspace held until the current phase completes (returned to the communicator's pool then).
    private var scratch: [ScratchBuffer] = []
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
        let slotBuffer = c.takeScratch(bytes: peers * mine * MemoryLayout<Float>.stride)
        scratch = [slotBuffer]
        let slots = slotBuffer.floats
        try postBlockExchange(receiveInto: slots, sendFrom: send.baseAddress, counts: counts, offsets: offsets, tag: tag)
        onPhaseComplete = { request in
            if mine > 0, let out = receive.baseAddress, let own {
                // own + peers in rank order. `out` may be `own` itself (in-place all-reduce), so own is read only
                // in the first pass, element by element before that element is written.
                let first = UnsafePointer(slots)
                for i in 0..<mine { out[i] = own[i] + first[i] }
                for slot in 1..<peers {
                    let b = slots + slot * mine
                    for i in 0..<mine { out[i] += b[i] }
                }
            }
            request.releaseScratch()
            request.onPhaseComplete = nil
            if let next { try next(request) }
        }
    }

    /// Posts the exchange of a bf16-payload reduce-scatter: the blocks for peers rounded to bf16 into scratch and
    /// sent from there; on completion sums own (fp32) + peers (bf16 widened) in rank order into `receive`.
    func startReduceScatterBF16(send: UnsafeBufferPointer<Float>, receive: UnsafeMutableBufferPointer<Float>,
                                counts: [Int], tag: Int32) throws {
        let c = communicator, rank = c.rank, size = c.size, mine = counts[rank]
        let offsets = displacements(of: counts)
        let own = send.baseAddress.map { $0 + offsets[rank] }
        if size == 1 {
            if mine > 0 { receive.baseAddress!.update(from: own!, count: mine) }
            return
        }
        let peers = size - 1
        let half = MemoryLayout<UInt16>.stride
        let outgoing = c.takeScratch(bytes: send.count * half), incoming = c.takeScratch(bytes: peers * mine * half)
        let widened = c.takeScratch(bytes: mine * MemoryLayout<Float>.stride)
        scratch = [outgoing, incoming, widened]
        let rounded = outgoing.halves, slots = incoming.halves, wide = widened.floats
        for peer in 0..<size where peer != rank && counts[peer] > 0 {
            swt_f32_to_bf16(rounded + offsets[peer], send.baseAddress! + offsets[peer], counts[peer])
        }
        try postBlockExchange(receiveInto: slots, sendFrom: UnsafePointer(rounded), counts: counts, offsets: offsets, tag: tag)
        onPhaseComplete = { request in
            if mine > 0, let out = receive.baseAddress, let own {
                // Widen each peer's block, then add, in rank order.
                for slot in 0..<peers {
                    swt_bf16_to_f32(wide, slots + slot * mine, mine)
                    if slot == 0 { for i in 0..<mine { out[i] = own[i] + wide[i] } } else { for i in 0..<mine { out[i] += wide[i] } }
                }
            }
            request.releaseScratch()
            request.onPhaseComplete = nil
        }
    }

    /// Posts a reduce-scatter's messages: every peer's copy of my block into `receiveInto` (one slot of
    /// counts[rank] elements per peer, in rank order with mine skipped), and each peer's block of `sendFrom` to it.
    private func postBlockExchange<T: CollectiveScalar>(receiveInto slots: UnsafeMutablePointer<T>,
                                                        sendFrom outgoing: UnsafePointer<T>?, counts: [Int],
                                                        offsets: [Int], tag: Int32) throws {
        let c = communicator, rank = c.rank, mine = counts[rank]
        handles.removeAll(keepingCapacity: true)
        for peer in 0..<c.size where peer != rank {
            if mine > 0 {
                let slot = peer < rank ? peer : peer - 1
                handles.append(try c.postReceive(slots + slot * mine, count: mine, from: peer, tag: tag, call: call))
            }
            if counts[peer] > 0 {
                handles.append(try c.postSend(outgoing! + offsets[peer], count: counts[peer], to: peer, tag: tag, call: call))
            }
        }
    }

    private func releaseScratch() {
        for buffer in scratch { communicator.returnScratch(buffer) }
        scratch.removeAll()
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
        try Watchdog.waiting("\(call) (direct)") {
            while !done { try communicator.progressDirectRequests() }
        }
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
            Watchdog.waiting("MPI_Waitall(\(call))") {
                handles.withUnsafeMutableBufferPointer { _ = MPI_Waitall(n, $0.baseAddress, swt_statuses_ignore()) }
            }
        }
        releaseScratch()
    }
}

/// Workspace for a direct collective's staged blocks (fp32 peers' blocks, or bf16 payloads), recycled through the
/// communicator's pool so a training step allocates nothing. Raw bytes, bound to the element type of each use.
final class ScratchBuffer {
    let raw: UnsafeMutableRawPointer
    /// Bytes.
    let capacity: Int
    init(bytes: Int) {
        capacity = bytes
        raw = .allocate(byteCount: max(bytes, 16), alignment: 64)
    }
    deinit { raw.deallocate() }
    /// The buffer as floats.
    var floats: UnsafeMutablePointer<Float> { raw.bindMemory(to: Float.self, capacity: max(capacity / 4, 1)) }
    /// The buffer as bf16 bit patterns.
    var halves: UnsafeMutablePointer<UInt16> { raw.bindMemory(to: UInt16.self, capacity: max(capacity / 2, 1)) }
}
