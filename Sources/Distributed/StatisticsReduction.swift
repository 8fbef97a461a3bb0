import SwiftMPI
import Tensors

/// The all-reduce that synchronised batch norm needs (`StatisticsReducer`, Tensors/BatchNorm.swift), over the
/// engine's communicator: a model imports only Tensors, and only this module communicates during a step, so the
/// trainer hands this object to the model (`model.sync_batchnorm`).
///
/// Called inside forward and backward, which cannot throw: a failed collective stops the rank with a message, as a
/// failed gradient collective does (GradientBuckets) — a peer that died mid-step leaves nothing to continue with.
public final class CommunicatorStatisticsReducer: StatisticsReducer {
    private let comm: Communicator
    /// All-reduces made (two per batch-norm layer per micro-batch: forward statistics and backward sums).
    public private(set) var calls = 0

    public init(comm: Communicator) { self.comm = comm }

    public func sumOverRanks(_ values: UnsafeMutableBufferPointer<Double>) {
        calls += 1
        do { try comm.allReduce(values, op: .sum) } catch { fatalError("batch-norm statistics all-reduce failed: \(error)") }
    }
}

extension ShardedDataParallel {
    /// A reducer over this engine's communicator for models with synchronised batch statistics.
    public func makeStatisticsReducer() -> CommunicatorStatisticsReducer { CommunicatorStatisticsReducer(comm: comm) }
}
