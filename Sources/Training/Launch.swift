import Foundation
import SwiftMPI
import Tensors

/// What the launcher (mpirun, srun) tells a process through its environment before MPI is initialised, so
/// configuration can be validated — and rejected — before any rank communicates.
public struct LaunchEnvironment: Sendable {
    public var rank: Int
    public var worldSize: Int
    /// Ranks on this node (for choosing BLAS threads).
    public var localSize: Int

    public static func current(_ env: [String: String] = ProcessInfo.processInfo.environment) -> LaunchEnvironment {
        func first(_ names: [String]) -> Int? { names.lazy.compactMap { env[$0].flatMap(Int.init) }.first }
        let rank = first(["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"]) ?? 0
        let size = first(["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"]) ?? 1
        let local = first(["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"]) ?? size
        return LaunchEnvironment(rank: rank, worldSize: max(size, 1), localSize: max(local, 1))
    }

    /// BLAS threads per rank: OPENBLAS_NUM_THREADS if set, else the node's cores shared evenly between its ranks
    /// (ranks × threads > cores makes OpenBLAS threads fight and run several times slower).
    public func configureBLASThreads(_ env: [String: String] = ProcessInfo.processInfo.environment) -> Int {
        if let n = env["OPENBLAS_NUM_THREADS"].flatMap(Int.init), n > 0 { BLASThreads.set(n); return n }
        let n = max(1, ProcessInfo.processInfo.activeProcessorCount / localSize)
        BLASThreads.set(n)
        return n
    }
}

/// The MPI world of a command (train, sweep): started only after the configuration was validated, so a bad flag
/// never leaves a rank waiting in a collective. Commands see MPI only through this and the Communicator it returns.
public enum MPISession {
    /// Initialises MPI and returns the world, which must have the size the launcher announced (configuration was
    /// validated for that size before MPI started); otherwise every rank stops with the same message.
    public static func start(expecting launch: LaunchEnvironment) throws -> MPICommunicator {
        try MPIRuntime.initialize()
        let comm = try MPICommunicator()
        guard comm.size == launch.worldSize else {
            printError("error: the launcher reported \(launch.worldSize) ranks but MPI has \(comm.size)")
            MPIRuntime.abort(code: 2)
        }
        return comm
    }

    /// Rank 0's string on every rank (before training: the run directory name carries rank 0's clock).
    public static func broadcast(_ text: String, comm: Communicator) throws -> String {
        var length = Int64(text.utf8.count)
        try withUnsafeMutablePointer(to: &length) { try comm.broadcast(UnsafeMutableBufferPointer(start: $0, count: 1), root: 0) }
        var bytes = comm.rank == 0 ? Array(text.utf8) : [UInt8](repeating: 0, count: Int(length))
        try bytes.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: 0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    public static var libraryVersion: String { MPIRuntime.libraryVersion }
    public static func finalize() { MPIRuntime.finalize() }
    public static func abort(code: Int32) -> Never { MPIRuntime.abort(code: code) }
}
