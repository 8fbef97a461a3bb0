import SwiftMPI
import Tensors

/// ZeRO stage 3's parameter source: each rank stores only the parameters it owns (its block of every optimizer
/// group, `OwnedParameters`), and a layer's full tensors exist only while the model has it acquired, in a working
/// buffer gathered from every owner just ahead of use (FSDP's unit of gathering; Rajbhandari et al. 2020, §5.3).
///
/// Gathering layer l: for each optimizer group g the layer has tensors in, every rank's contribution is its owned
/// block of g restricted to layer l's tensors (runs in flat-buffer order). Laid back to back in rank order, these
/// contributions are layer l's tensors of group g in flat-buffer order, each tensor contiguous — so one in-place
/// all-gather(v) per (layer, group) into the working buffer leaves every tensor readable where it landed, with no
/// copy-out pass. The owner packs its runs into its block first (a copy of its own share).
///
/// Prefetch (`depth`): acquiring layer l in a pass also starts the gathers of the next `depth` layers of that pass
/// (forward: l+1, l+2, …; backward: the model's `layersReadInBackward` order), so they travel while layer l
/// computes; acquire then waits only for what has not arrived (`exposedWaitSeconds`). Every rank issues the same
/// gathers in the same order: the sequence of acquire/release calls is the model's, identical everywhere.
///
/// Memory: the working buffers are a pool, allocated on first need (each the size of the layer it was made for)
/// and reused by any layer that fits; at most (depth + 1) are busy for the layer computing and the prefetched ones,
/// plus the layers a model keeps acquired across the pass (the GPT's tied embedding, the head layer held from
/// forward into backward), or all of them when `reshardAfterForward` is false (gathered once, kept to backward).
final class LayerGather: ParameterSource {
    /// One all-gather of a layer: group g's tensors of the layer.
    private struct Region {
        /// Offset of the region in the layer's working buffer.
        let start: Int
        /// Elements each rank contributes (the all-gather's counts).
        let counts: [Int]
        /// This rank's runs: (offset in its owned block of the group, length), in flat order.
        let myRuns: [(from: Int, count: Int)]
        let group: Int
        var count: Int { counts.reduce(0, +) }
    }
    private struct Layer {
        let regions: [Region]
        let size: Int
    }
    private enum State { case idle, inFlight, ready }

    private let comm: Communicator
    private let owned: OwnedParameters
    private let layers: [Layer]
    /// Per tensor (table order): its layer and its offset in that layer's working buffer.
    private let placement: [(layer: Int, offset: Int)]
    private let forwardOrder: [Int]
    private let backwardOrder: [Int]
    let depth: Int
    let reshardAfterForward: Bool
    private let largest: Int
    private var slots: [FloatBuffer] = []
    private var freeSlots: [Int] = []
    private var slotOf: [Int?]
    private var state: [State]
    private var requests: [[CollectiveRequest]]
    /// Layers whose gather is in flight.
    private var inFlight = 0

    /// Seconds acquire spent waiting for gathers that had not arrived (what prefetch did not hide).
    private(set) var exposedWaitSeconds = 0.0
    /// Layer gathers issued, and the parameter bytes this rank received in them.
    private(set) var gathersIssued = 0
    private(set) var bytesReceived = 0

    /// - Parameters:
    ///   - layers: tensor indices (table order) of each layer, in forward order; every tensor in exactly one.
    ///   - backwardOrder: the layers backward acquires, in order (prefetch follows it).
    init(comm: Communicator, plan: ShardPlan, owned: OwnedParameters, layers layerTensors: [[Int]], backwardOrder: [Int],
         depth: Int, reshardAfterForward: Bool) {
        precondition(depth >= 0, "prefetch depth must be ≥ 0 (configuration checks this)")
        self.comm = comm
        self.owned = owned
        self.depth = depth
        self.reshardAfterForward = reshardAfterForward
        var placement = [(layer: Int, offset: Int)](repeating: (-1, 0), count: plan.table.entries.count)
        var built: [Layer] = []
        for (l, members) in layerTensors.enumerated() {
            let set = Set(members)
            var regions: [Region] = []
            var start = 0
            for (g, group) in plan.groups.enumerated() {
                // The layer's tensors of this group, in flat order (the order the all-gather concatenates them in).
                let tensors = plan.table.entries.indices
                    .filter { set.contains($0) && group.range.contains(plan.table.entries[$0].offset) }
                    .sorted { plan.table.entries[$0].offset < plan.table.entries[$1].offset }
                guard !tensors.isEmpty else { continue }
                var at = start
                for t in tensors {
                    placement[t] = (l, at)
                    at += plan.table.entries[t].count
                }
                var counts: [Int] = [], mine: [(from: Int, count: Int)] = []
                for rank in 0..<comm.size {
                    let block = group.owned(rank)
                    var n = 0
                    for t in tensors {
                        let r = plan.table.entries[t].range.clamped(to: block)
                        guard !r.isEmpty else { continue }
                        if rank == comm.rank { mine.append((r.lowerBound - block.lowerBound, r.count)) }
                        n += r.count
                    }
                    counts.append(n)
                }
                regions.append(Region(start: start, counts: counts, myRuns: mine, group: g))
                start = at
            }
            built.append(Layer(regions: regions, size: start))
        }
        precondition(placement.allSatisfy { $0.layer >= 0 }, "every tensor must belong to a layer")
        self.layers = built
        self.placement = placement
        forwardOrder = Array(built.indices)
        self.backwardOrder = backwardOrder
        largest = built.map(\.size).max() ?? 0
        slotOf = Array(repeating: nil, count: built.count)
        state = Array(repeating: .idle, count: built.count)
        requests = Array(repeating: [], count: built.count)
    }

    /// Elements of the largest layer (one working slot).
    var largestLayer: Int { largest }
    /// Bytes of the working slots allocated so far (the pool's high-water mark).
    var workingBytes: Int { slots.reduce(0) { $0 + $1.byteCount } }
    var layerCount: Int { layers.count }

    // MARK: ParameterSource

    func acquire(_ layer: Int, pass: ModelPass) {
        if state[layer] == .idle { start(layer) }
        prefetch(after: layer, pass: pass)
        if state[layer] == .inFlight {
            let t0 = monotonicSeconds()
            finish(layer)
            exposedWaitSeconds += monotonicSeconds() - t0
        }
    }

    func release(_ layer: Int, pass: ModelPass) {
        // Kept gathered from forward into backward when not resharding (each layer is then gathered once a step).
        if pass == .forward && !reshardAfterForward { return }
        free(layer)
        progress()
    }

    func tensor(_ index: Int) -> UnsafePointer<Float> {
        // A model asks for a tensor just before the kernel that reads it: the one point inside a layer's compute
        // where a prefetched gather can be moved along (Open MPI progresses messages only inside MPI calls).
        if inFlight > 0 { progress() }
        let (layer, offset) = placement[index]
        precondition(state[layer] == .ready, "tensor \(index) read while its layer \(layer) is not acquired")
        return UnsafePointer(slots[slotOf[layer]!].pointer + offset)
    }

    var flatBase: UnsafePointer<Float>? { nil }

    // MARK: Gathers

    /// Keeps the gathers of the next `depth` layers of `pass` after `layer` in flight. Layers still held (a tied
    /// embedding, or everything when not resharding) need no gather and do not count against the depth.
    private func prefetch(after layer: Int, pass: ModelPass) {
        guard depth > 0 else { return }
        let order = pass == .forward ? forwardOrder : backwardOrder
        guard let at = order.firstIndex(of: layer) else { return }
        var ahead = 0
        for next in order[(at + 1)...] where state[next] != .ready {
            guard ahead < depth else { break }
            if state[next] == .idle { start(next) }
            ahead += 1
        }
    }

    private func start(_ layer: Int) {
        let slot = takeSlot(size: layers[layer].size)
        slotOf[layer] = slot
        let buffer = slots[slot].pointer
        var issued: [CollectiveRequest] = []
        for region in layers[layer].regions {
            // This rank's runs into its block of the region, then everyone's blocks arrive in place around it.
            var at = buffer + region.start + region.counts[..<comm.rank].reduce(0, +)
            let source = owned.blocks[region.group].pointer
            for run in region.myRuns {
                at.update(from: source + run.from, count: run.count)
                at += run.count
            }
            let view = UnsafeMutableBufferPointer(start: buffer + region.start, count: region.count)
            do { issued.append(try comm.iAllGatherInPlaceDirect(view, counts: region.counts)) } catch {
                fatalError("starting the parameter all-gather of layer \(layer) failed: \(error)")
            }
            bytesReceived += 4 * (region.count - region.counts[comm.rank])
        }
        requests[layer] = issued
        gathersIssued += 1
        state[layer] = .inFlight
        inFlight += 1
    }

    private func finish(_ layer: Int) {
        do { for r in requests[layer] { try r.wait() } } catch {
            fatalError("the parameter all-gather of layer \(layer) failed: \(error)")
        }
        requests[layer] = []
        state[layer] = .ready
        inFlight -= 1
    }

    /// The smallest free working buffer that holds `size` elements, or a new one of exactly that size: the pool
    /// then holds buffers of the sizes the pass needs at once (a small embedding layer does not take a block-sized one).
    private func takeSlot(size: Int) -> Int {
        let fitting = freeSlots.indices.filter { slots[freeSlots[$0]].count >= size }
        if let best = fitting.min(by: { slots[freeSlots[$0]].count < slots[freeSlots[$1]].count }) {
            return freeSlots.remove(at: best)
        }
        slots.append(FloatBuffer(count: size))
        return slots.count - 1
    }

    private func free(_ layer: Int) {
        if state[layer] == .inFlight { finish(layer) }
        guard let slot = slotOf[layer] else { return }
        slotOf[layer] = nil
        freeSlots.append(slot)
        state[layer] = .idle
    }

    /// Drives gathers in flight (Open MPI progresses point-to-point messages only inside MPI calls).
    func progress() {
        for l in layers.indices where state[l] == .inFlight {
            if (try? requests[l].allSatisfy { try $0.test() }) == true { finish(l) }
        }
    }

    /// Ends a step's use: every layer released (a gather still in flight — a prefetch nobody acquired — is waited
    /// for first, so no message of this step is outstanding when the optimizer changes the owned blocks).
    func releaseAll() {
        for l in layers.indices { free(l) }
    }
}

/// The parameters one rank owns at ZeRO stage 3: per optimizer group, its block (`GroupLayout.owned(rank)`) in one
/// allocation — what the optimizer updates and what layer gathers read from.
final class OwnedParameters {
    let blocks: [FloatBuffer]
    let ranges: [Range<Int>]

    init(ranges: [Range<Int>]) {
        self.ranges = ranges
        blocks = ranges.map { FloatBuffer(count: $0.count) }
    }

    var byteCount: Int { blocks.reduce(0) { $0 + $1.byteCount } }

    /// Copies this rank's blocks out of a full buffer in table layout.
    func take(from full: UnsafePointer<Float>) {
        for (g, r) in ranges.enumerated() { blocks[g].pointer.update(from: full + r.lowerBound, count: r.count) }
    }

    /// Writes this rank's blocks into a full buffer in table layout.
    func put(into full: UnsafeMutablePointer<Float>) {
        for (g, r) in ranges.enumerated() { (full + r.lowerBound).update(from: blocks[g].pointer, count: r.count) }
    }
}
