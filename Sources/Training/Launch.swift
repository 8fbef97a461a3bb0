import Foundation
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
