import SwiftMPI
import Tensors

/// Step 5 of the engine at ZeRO stages 1–2: every rank's copy of the weights other ranks updated.
///
/// fp32: one in-place all-gather of each group's owned ranges.
/// bf16 working precision (`train.precision: bf16`): each owner *packs* what it owns — tensors read only as matrix-
/// product operands (roles `matrix` and `head`: the models round them to bf16 at every GEMM anyway) as bf16, 2
/// bytes an element; every other tensor (embeddings, norms, biases, read element-wise in fp32) as its 4 fp32 bytes —
/// and the packed bytes are all-gathered (one byte all-gather per group, counts known to every rank from the shard
/// plan), then unpacked into `params` outside this rank's own ranges. A rank therefore holds the fp32 masters of
/// what it owns and, elsewhere, bf16(master) for matrices and the exact masters for the rest: every GEMM sees
/// bf16(master) on every rank and every element-wise op the fp32 master, so all ranks (and stage 0, whose `params`
/// are the masters throughout) compute the same step. For the byte GPT the gather moves 2.0 bytes a parameter
/// instead of 4 (its matrices are 99.7 % of the parameters).
final class WeightGather {
    /// One run of consecutive elements inside a rank's owned range, packed one way.
    private struct Run {
        let range: Range<Int>
        let bf16: Bool
        var bytes: Int { range.count * (bf16 ? 2 : 4) }
    }
    private struct GroupPacking {
        /// Per rank: its owned range as runs, in order.
        let runs: [[Run]]
        /// Per rank: packed bytes (the all-gather's counts).
        let byteCounts: [Int]
        /// Offset of the group's packed region in `packed`.
        let offset: Int
    }

    private let comm: Communicator
    private let plan: ShardPlan
    private let bf16: Bool
    private let packing: [GroupPacking]
    private let packed: UnsafeMutableBufferPointer<UInt8>?

    /// Whether a tensor of `role` travels as bf16 in bf16 working precision: the models read matrices and heads only
    /// as GEMM operands (the Model protocol's contract), so bf16 is all any rank uses of them.
    static func travelsAsBF16(_ role: TensorRole) -> Bool { role == .matrix || role == .head }

    init(comm: Communicator, plan: ShardPlan, workingPrecision: GEMMPrecision) {
        self.comm = comm
        self.plan = plan
        bf16 = workingPrecision == .bf16
        guard bf16 else {
            packing = []
            packed = nil
            return
        }
        var groups: [GroupPacking] = [], offset = 0
        for group in plan.groups {
            let runs = (0..<comm.size).map { rank in
                plan.table.entries(overlapping: group.owned(rank)).map { entry, overlap in
                    Run(range: overlap, bf16: Self.travelsAsBF16(entry.role))
                }
            }
            let byteCounts = runs.map { $0.reduce(0) { $0 + $1.bytes } }
            groups.append(GroupPacking(runs: runs, byteCounts: byteCounts, offset: offset))
            offset += byteCounts.reduce(0, +)
        }
        packing = groups
        let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(offset, 1))
        buffer.initialize(repeating: 0)
        packed = buffer
    }

    deinit { packed?.deallocate() }

    /// Bytes of the packed gather buffer (bf16 working precision only).
    var byteCount: Int { packed?.count ?? 0 }

    /// Bytes this rank's copy of the weights receives per publish, summed over groups.
    var bytesReceived: Int {
        bf16 ? packing.reduce(0) { $0 + $1.byteCounts.reduce(0, +) - $1.byteCounts[comm.rank] }
             : plan.groups.reduce(0) { $0 + 4 * ($1.range.count - $1.owned(comm.rank).count) }
    }

    /// All-gathers every group's owned ranges into `params` (every rank calls it at the same point).
    func publish(_ params: FloatBuffer) throws {
        guard bf16, let packed else {
            // Every group's all-gather in flight at once, then wait.
            let requests = try plan.groups.map { try comm.iAllGatherInPlace(params.slice($0.range), counts: $0.counts) }
            for r in requests { try r.wait() }
            return
        }
        let me = comm.rank
        for g in packing.indices {
            let p = packing[g]
            transfer(p.runs[me], params, packed.baseAddress! + p.offset + p.byteCounts[..<me].reduce(0, +), pack: true)
        }
        let requests = try packing.map {
            try comm.iAllGatherInPlace(UnsafeMutableBufferPointer(rebasing: packed[$0.offset..<($0.offset + $0.byteCounts.reduce(0, +))]),
                                       counts: $0.byteCounts)
        }
        for r in requests { try r.wait() }
        for p in packing {
            var at = p.offset
            for rank in 0..<comm.size {
                if rank != me { transfer(p.runs[rank], params, packed.baseAddress! + at, pack: false) }
                at += p.byteCounts[rank]
            }
        }
    }

    /// Packs `runs` of `params` into `bytes` (pack) or unpacks them back (bf16 widened exactly, fp32 copied).
    private func transfer(_ runs: [Run], _ params: FloatBuffer, _ bytes: UnsafeMutablePointer<UInt8>, pack: Bool) {
        var at = UnsafeMutableRawPointer(bytes)
        for run in runs {
            let values = params.pointer + run.range.lowerBound, n = run.range.count
            if run.bf16 {
                let halves = at.bindMemory(to: UInt16.self, capacity: n)
                if pack { BF16.round(values, into: halves, count: n) } else { BF16.widen(halves, into: values, count: n) }
            } else if pack {
                at.copyMemory(from: values, byteCount: 4 * n)
            } else {
                UnsafeMutableRawPointer(values).copyMemory(from: at, byteCount: 4 * n)
            }
            at += run.bytes
        }
    }
}
