import Optimizers
import SwiftMPI
import Tensors

// The engine's API for everything outside the gradient path that needs other ranks or the engine's internals:
// the loop's metric sums and stop flag, evaluation sums, memory accounting, and checkpoint state. Training and
// Checkpoint call these and never a Communicator, so every collective of a training step is issued here, in
// Distributed; the callers still decide *when* (a function of the step index alone, the same on every rank).

/// One optimizer group as a checkpoint records it.
public struct GroupState: Equatable, Sendable {
    public var layout: GroupLayout
    public var stateNames: [String]
    public var stepCount: Int
}

extension ShardedDataParallel {
    // MARK: Collectives of the loop (every rank calls each in the same order)

    /// Sums `values` over ranks, in place (loss and prediction counts, evaluation sums, per-rank figures).
    public func sumOverRanks(_ values: inout [Double]) throws { try comm.allReduce(&values, op: .sum) }
    public func sumOverRanks(_ values: inout [Int64]) throws { try comm.allReduce(&values, op: .sum) }
    /// The largest of every rank's `value` (a signal on any rank stops all of them after the same step).
    public func maxOverRanks(_ value: Int32) throws -> Int32 { try comm.allReduce(value, op: .max) }
    /// Each entry's largest value over ranks, in one all-reduce (flags that any rank may raise).
    public func maxOverRanks(_ values: inout [Int32]) throws { try comm.allReduce(&values, op: .max) }
    /// Every rank waits for every other (before a checkpoint directory is used, before exiting on a stop).
    public func synchronize() throws { try comm.barrier() }
    /// One value per rank, in rank order, on every rank (each rank contributes its own; one all-reduce).
    public func gatherPerRank(_ value: Double) throws -> [Double] {
        var values = [Double](repeating: 0, count: comm.size)
        values[comm.rank] = value
        try comm.allReduce(&values, op: .sum)
        return values
    }
    public func gatherPerRank(_ value: Int64) throws -> [Int64] {
        var values = [Int64](repeating: 0, count: comm.size)
        values[comm.rank] = value
        try comm.allReduce(&values, op: .sum)
        return values
    }

    public var rank: Int { comm.rank }
    public var worldSize: Int { comm.size }

    // MARK: Checkpoint state

    /// The optimizer state this rank writes to a checkpoint: what it owns at stages 1–2; at stage 0 the state is
    /// replicated, so rank 0 alone writes it (other ranks return nothing); stages 1–3 each rank its own.
    public func exportOptimizerState() -> [TensorState] {
        guard stage != .replicated || comm.rank == 0 else { return [] }
        var records: [TensorState] = []
        for (g, optimizer) in optimizers.enumerated() {
            if let keyed = optimizer as? TensorKeyedStateOptimizer {
                records += keyed.exportState(segments: segments[g])
            } else {
                records += optimizer.exportElementState(segments: segments[g], ownedStart: ownedRanges[g].lowerBound)
            }
        }
        return records
    }

    /// Each group's layout, state names and step count (what a checkpoint manifest records).
    public var groupStates: [GroupState] {
        plan.groups.enumerated().map { g, layout in
            GroupState(layout: layout, stateNames: optimizers[g].stateNames, stepCount: optimizers[g].stepCount)
        }
    }

    /// Restores parameters (state "param") and each group's optimizer state from `source`, which may have been
    /// written by any world size and stage; `stepCount(group)` is the saved step count of a group, or nil when the
    /// source has no such group (then this throws `missingGroup`'s error).
    public func importState(from source: StateSource, stepCount: (String) -> Int?,
                            missingGroup: (String) -> Error) throws {
        for entry in plan.table.entries {
            storeParameters(of: entry, try source.values(state: "param", tensor: entry.name, offset: 0, count: entry.count))
        }
        for (g, optimizer) in optimizers.enumerated() {
            let name = plan.groups[g].name
            guard let saved = stepCount(name) else { throw missingGroup(name) }
            if let keyed = optimizer as? TensorKeyedStateOptimizer {
                try keyed.importState(segments: segments[g], from: source)
            } else {
                try optimizer.importElementState(segments: segments[g], ownedStart: ownedRanges[g].lowerBound, from: source)
            }
            optimizer.stepCount = saved
        }
    }
}
