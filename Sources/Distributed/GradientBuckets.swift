import SwiftMPI
import Tensors

/// A contiguous run of the flat buffer — whole tensors, or row blocks of a tensor larger than the bucket size — of
/// one group, communicated as one unit as soon as backward has finished all its pieces. Buckets never cross a group
/// boundary, so every rank's share of a bucket is contiguous and in rank order.
struct Bucket {
    let group: Int
    let range: Range<Int>
    let pieceCount: Int
}

/// One row block of one tensor: the unit backward produces and reports.
struct Piece {
    let rows: Range<Int>
    let bucket: Int
}

/// The gradient sink of the distributed engine: collects gradients bucket by bucket and starts a non-blocking
/// collective for each bucket the moment its last tensor is final, then progresses it while backward continues.
///
/// - Stage 0: gradients in one full buffer; each bucket is all-reduced in place.
/// - Stage 1: full buffer; each bucket is reduce-scattered straight into the owners' gradient shards.
/// - Stage 2: no full buffer: a small pool of bucket-sized staging buffers is zeroed on first use, reduce-scattered
///   into the shards, and recycled, so gradient memory is the shards plus the pool.
/// With gradient accumulation, stages 0 and 1 accumulate locally and communicate after the last micro-batch only;
/// stage 2 has no full buffer to accumulate in, so it reduce-scatters every micro-batch and adds into the shards.
final class BucketedGradientSink: GradientSink {
    enum Mode { case allReduce, reduceScatter, reduceScatterPooled }

    private let comm: Communicator
    private let plan: ShardPlan
    private let mode: Mode
    private let fullGrads: FloatBuffer?
    private let shards: [FloatBuffer]
    let buckets: [Bucket]
    /// Per tensor: its row blocks in the order backward should produce them, each with its bucket.
    private let pieces: [[Piece]]
    private var remaining: [Int]
    /// Whether finished buckets are communicated in this micro-batch (the last one, or every one at stage 2).
    var communicate = true
    /// Whether received blocks are added into the shards (stage 2 with accumulation) rather than stored.
    var accumulateIntoShards = false
    /// Reduce-scatter payloads in bf16, summed in fp32 by the owner (`zero.comm_dtype: bf16`).
    var bf16Payload = false
    /// Gradient bytes this rank has sent to other ranks (payload only, as the collectives' element counts give it).
    private(set) var payloadBytesSent = 0

    // Stage-2 staging pool: a slot holds one bucket's gradient while it is filled and while it is in flight.
    private final class Slot {
        let staging: FloatBuffer
        /// Receive scratch, only when received blocks must be added into the shards (accumulation at stage 2).
        let receive: FloatBuffer?
        init(capacity: Int, needsReceive: Bool) {
            staging = FloatBuffer(count: capacity)
            receive = needsReceive ? FloatBuffer(count: capacity) : nil
        }
        var byteCount: Int { staging.byteCount + (receive?.byteCount ?? 0) }
    }
    private var free: [Slot] = []
    private var pool: [Slot] = []
    private var slotOf: [Int: Slot] = [:]
    private let slotCapacity: Int

    private struct Pending {
        let request: CollectiveRequest
        let bucket: Int
        let slot: Slot?
        /// Where this rank's block lands in its shard, when it must be added after completion.
        let addTarget: UnsafeMutablePointer<Float>?
        let addCount: Int
        /// The reduced values this rank keeps once the collective completes (measured there for Σg²).
        let reduced: UnsafeMutableBufferPointer<Float>?
    }
    private var pending: [Pending] = []
    /// Seconds spent blocked waiting for communication (what overlap did not hide).
    private(set) var waitSeconds = 0.0
    private(set) var collectivesStarted = 0
    /// Σg² of this rank's local (not yet reduced) gradient in the buckets communicated since the last reset: the
    /// "small batch" gradient norm of the gradient noise scale (McCandlish et al. 2018).
    var localSquares = 0.0
    var measuresLocalSquares = true
    /// Σg² of the reduced gradient this rank keeps (the whole buffer at stage 0, its shards at stages 1/2), summed as
    /// each bucket's collective completes — while the bucket is still in cache, instead of one more pass over the
    /// gradient in the step. Final only when every owned element arrives in one collective: not when stage 2 adds
    /// micro-batches into the shards (`accumulateIntoShards`).
    var reducedSquares = 0.0
    var reducedSquaresAreFinal: Bool { !accumulateIntoShards }

    init(comm: Communicator, plan: ShardPlan, mode: Mode, fullGrads: FloatBuffer?, shards: [FloatBuffer],
         bucketElements: Int) {
        self.comm = comm
        self.plan = plan
        self.mode = mode
        self.fullGrads = fullGrads
        self.shards = shards
        // Walk each group's tensors last to first (backward order), splitting a tensor larger than the bucket into
        // row blocks (last rows first), and close a bucket when it reaches the size.
        var buckets: [Bucket] = []
        var pieces = [[Piece]](repeating: [], count: plan.table.entries.count)
        for (g, group) in plan.groups.enumerated() {
            let members = plan.table.entries.indices.filter { group.range.contains(plan.table.entries[$0].offset) }
            var current: [(tensor: Int, rows: Range<Int>)] = []
            var size = 0
            func close() {
                guard !current.isEmpty else { return }
                let ranges = current.map { c -> Range<Int> in
                    let e = plan.table.entries[c.tensor]
                    return (e.offset + c.rows.lowerBound * e.blockCols)..<(e.offset + c.rows.upperBound * e.blockCols)
                }
                let lo = ranges.map(\.lowerBound).min()!, hi = ranges.map(\.upperBound).max()!
                precondition(hi - lo == ranges.reduce(0) { $0 + $1.count }, "bucket pieces must be contiguous")
                for c in current { pieces[c.tensor].append(Piece(rows: c.rows, bucket: buckets.count)) }
                buckets.append(Bucket(group: g, range: lo..<hi, pieceCount: current.count))
                current = []
                size = 0
            }
            for t in members.sorted(by: { plan.table.entries[$0].offset > plan.table.entries[$1].offset }) {
                let e = plan.table.entries[t]
                let rowsPerBlock = max(1, bucketElements / e.blockCols)
                var upper = e.blockRows
                while upper > 0 {
                    // Fill the open bucket first, then whole blocks.
                    let room = max(1, (bucketElements - size) / e.blockCols)
                    let take = min(upper, size > 0 ? room : rowsPerBlock)
                    current.append((t, (upper - take)..<upper))
                    size += take * e.blockCols
                    upper -= take
                    if size >= bucketElements { close() }
                }
            }
            close()
        }
        self.buckets = buckets
        self.pieces = pieces
        remaining = buckets.map(\.pieceCount)
        slotCapacity = buckets.map(\.range.count).max() ?? 0
    }

    /// Bytes of gradient memory held by this sink (full buffer, shards and staging pool).
    var gradientBytes: Int {
        (fullGrads?.byteCount ?? 0) + shards.reduce(0) { $0 + $1.byteCount } + pool.reduce(0) { $0 + $1.byteCount }
    }

    /// `gradientBytes` once the staging pool has grown to its limit (stages 2–3 allocate it on first use).
    var predictedGradientBytes: Int {
        guard mode == .reduceScatterPooled else { return gradientBytes }
        let slots = max(pool.count, Self.poolLimit)
        return (fullGrads?.byteCount ?? 0) + shards.reduce(0) { $0 + $1.byteCount } + slots * slotCapacity * 4 * (accumulateIntoShards ? 2 : 1)
    }

    func rowBlocks(_ tensorIndex: Int) -> [Range<Int>] { pieces[tensorIndex].map(\.rows) }

    private func bucket(of tensorIndex: Int, rows: Range<Int>) -> Int {
        guard let piece = pieces[tensorIndex].first(where: { $0.rows == rows }) else {
            preconditionFailure("tensor \(plan.table.entries[tensorIndex].name): rows \(rows) are not one of its blocks")
        }
        return piece.bucket
    }

    func gradient(_ tensorIndex: Int, rows: Range<Int>) -> UnsafeMutablePointer<Float> {
        let entry = plan.table.entries[tensorIndex]
        let offset = entry.offset + rows.lowerBound * entry.blockCols
        switch mode {
        case .allReduce, .reduceScatter:
            return fullGrads!.pointer + offset
        case .reduceScatterPooled:
            let b = bucket(of: tensorIndex, rows: rows)
            let slot = slotOf[b] ?? acquire(for: b)
            return slot.staging.pointer + (offset - buckets[b].range.lowerBound)
        }
    }

    func finished(_ tensorIndex: Int, rows: Range<Int>) {
        let b = bucket(of: tensorIndex, rows: rows)
        remaining[b] -= 1
        precondition(remaining[b] >= 0, "tensor \(plan.table.entries[tensorIndex].name) finished twice in one backward")
        if remaining[b] == 0 && communicate {
            do { try start(b) } catch { fatalError("starting the gradient collective for bucket \(b) failed: \(error)") }
        }
        progress()
    }

    /// Staging slots kept before recycling: two, so one bucket fills while the previous one is in flight.
    static let poolLimit = 2

    private func acquire(for b: Int) -> Slot {
        // Past the limit, wait for the oldest in-flight bucket and recycle its slot (the pool may still grow if
        // nothing is in flight, e.g. when several buckets are being filled at once).
        if free.isEmpty, pool.count >= Self.poolLimit, !pending.isEmpty { complete(0) }
        let slot: Slot
        if let s = free.popLast() { slot = s } else {
            slot = Slot(capacity: slotCapacity, needsReceive: accumulateIntoShards)
            pool.append(slot)
        }
        slot.staging.pointer.update(repeating: 0, count: buckets[b].range.count)
        slotOf[b] = slot
        return slot
    }

    /// Starts bucket b's collective; called in the same bucket order on every rank (backward order is deterministic).
    private func start(_ b: Int) throws {
        let bucket = buckets[b]
        let group = plan.groups[bucket.group]
        collectivesStarted += 1
        // Measured before the collective starts: an in-place all-reduce overwrites the local values.
        if measuresLocalSquares {
            let local: UnsafeBufferPointer<Float> = mode == .reduceScatterPooled
                ? UnsafeBufferPointer(start: slotOf[b]!.staging.pointer, count: bucket.range.count)
                : UnsafeBufferPointer(fullGrads!.slice(bucket.range))
            localSquares += sumOfSquares(local)
        }
        switch mode {
        case .allReduce:
            let view = fullGrads!.slice(bucket.range)
            // A ring/Rabenseifner all-reduce sends about 2·(N−1)/N of the bucket per rank.
            payloadBytesSent += 2 * (comm.size - 1) * view.count * 4 / comm.size
            // Open MPI's non-blocking all-reduce (Rabenseifner, MPIRuntime.collectiveTuning) measured 4% faster end to end
            // at stage 0 than the direct two-phase exchange, whose second phase waits for the next progress call.
            pending.append(Pending(request: try comm.iAllReduce(view, op: .sum), bucket: b, slot: nil, addTarget: nil,
                                   addCount: 0, reduced: view))
        case .reduceScatter, .reduceScatterPooled:
            // Direct exchange (DirectCollectives.swift): libnbc's reduce-scatter reduces onto one rank, then scatters.
            // Each rank's share of the bucket is the overlap with its block of the group.
            let counts = (0..<comm.size).map { r -> Int in
                let own = group.owned(r)
                return max(0, min(own.upperBound, bucket.range.upperBound) - max(own.lowerBound, bucket.range.lowerBound))
            }
            let own = group.owned(comm.rank)
            let shardOffset = max(0, bucket.range.lowerBound - own.lowerBound)
            let target = shards[bucket.group].pointer + shardOffset
            let send: UnsafeBufferPointer<Float>
            let slot = slotOf[b]
            if mode == .reduceScatter {
                send = UnsafeBufferPointer(fullGrads!.slice(bucket.range))
            } else {
                send = UnsafeBufferPointer(start: slot!.staging.pointer, count: bucket.range.count)
            }
            let mine = counts[comm.rank]
            payloadBytesSent += (send.count - mine) * (bf16Payload ? 2 : 4)
            let reduceScatter = bf16Payload ? comm.iReduceScatterSumDirectBF16 : comm.iReduceScatterSumDirect
            if accumulateIntoShards {
                let receive = UnsafeMutableBufferPointer(start: slot!.receive!.pointer, count: mine)
                pending.append(Pending(request: try reduceScatter(send, receive, counts),
                                       bucket: b, slot: slot, addTarget: target, addCount: mine, reduced: nil))
            } else {
                let receive = UnsafeMutableBufferPointer(start: target, count: mine)
                pending.append(Pending(request: try reduceScatter(send, receive, counts),
                                       bucket: b, slot: slot, addTarget: nil, addCount: 0, reduced: receive))
            }
            if mode == .reduceScatterPooled { slotOf[b] = nil }
        }
    }

    /// Drives in-flight collectives (Open MPI progresses non-blocking collectives only inside MPI calls).
    func progress() {
        guard let first = pending.first else { return }
        if (try? first.request.test()) == true { complete(0) }
    }

    private func complete(_ i: Int) {
        let p = pending.remove(at: i)
        let t0 = monotonicSeconds()
        do { try p.request.wait() } catch { fatalError("gradient collective failed: \(error)") }
        waitSeconds += monotonicSeconds() - t0
        if let target = p.addTarget, let slot = p.slot {
            let src = slot.receive!.pointer
            for k in 0..<p.addCount { target[k] += src[k] }
        }
        if let reduced = p.reduced { reducedSquares += sumOfSquares(UnsafeBufferPointer(reduced)) }
        if let slot = p.slot { free.append(slot) }
    }

    /// Ends a micro-batch: waits for every started collective and checks that every tensor reported in.
    func endMicroBatch() {
        while !pending.isEmpty { complete(0) }
        precondition(remaining.allSatisfy { $0 == 0 }, "backward did not finish every tensor")
        remaining = buckets.map(\.pieceCount)
        slotOf.removeAll(keepingCapacity: true)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Seconds from a monotonic clock.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
