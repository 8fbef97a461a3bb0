import GradientFree
import SwiftMPI

/// The population methods' one collective per step (GradientFree's `PopulationExchange`) over a communicator: an
/// all-reduce (sum) of the loss vector. It lives here so that Distributed stays the only module that communicates
/// during a training step. It counts what it sends, so runs can report the bytes a generation moves.
public final class CommunicatorPopulationExchange: PopulationExchange {
    public let comm: Communicator
    /// Payload bytes this rank contributed to the exchange so far (8 per loss; MPI's own framing not counted).
    public private(set) var bytesSent = 0
    /// Collectives issued so far.
    public private(set) var collectives = 0

    public init(comm: Communicator) { self.comm = comm }

    public var rank: Int { comm.rank }
    public var size: Int { comm.size }

    /// The largest of every rank's `value` (a signal on any rank stops all of them after the same step).
    public func maxOverRanks(_ value: Int32) throws -> Int32 { try comm.allReduce(value, op: .max) }

    /// Every rank waits for every other (before an orderly stop, so rank 0's checkpoint is complete first).
    public func synchronize() throws { try comm.barrier() }

    public func sumOverRanks(_ values: UnsafeMutableBufferPointer<Double>) throws {
        try comm.allReduce(values, op: .sum)
        bytesSent += values.count * MemoryLayout<Double>.stride
        collectives += 1
    }
}
