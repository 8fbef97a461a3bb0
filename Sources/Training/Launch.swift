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

    /// The one collective that decides whether the job's input is good, called by every rank after its own
    /// validation and before any other collective or any write. Each rank contributes its validation error (or
    /// none). If any rank has one, rank 0 prints every rank's message (identical messages once, with their ranks)
    /// and every rank throws `InputRejected`, so all stop together with status 2.
    ///
    /// Why agree at all: an input can be bad on one rank only (a relative path resolving against another working
    /// directory, a file only some nodes have). A rank that exited alone would print nothing useful and leave the
    /// others waiting in their first collective forever when mpirun does not abort the job.
    public static func agreeOnInput(_ error: Error?, comm: Communicator) throws {
        // Lengths first (one all-reduce), then the messages side by side: each rank fills only its own slice, so
        // the sum of the byte buffers is their concatenation.
        let mine = error.map { Array("\($0)".utf8) }.map { $0.isEmpty ? Array("(no message)".utf8) : $0 } ?? []
        var lengths = [Int64](repeating: 0, count: comm.size)
        lengths[comm.rank] = Int64(mine.count)
        try comm.allReduce(&lengths, op: .sum)
        guard lengths.contains(where: { $0 > 0 }) else { return }
        let starts = lengths.indices.map { Int(lengths[..<$0].reduce(0, +)) }
        var bytes = [UInt8](repeating: 0, count: Int(lengths.reduce(0, +)))
        bytes.replaceSubrange(starts[comm.rank]..<(starts[comm.rank] + mine.count), with: mine)
        try comm.allReduce(&bytes, op: .sum)
        var messages: [Int: String] = [:]
        for rank in lengths.indices where lengths[rank] > 0 {
            messages[rank] = String(decoding: bytes[starts[rank]..<(starts[rank] + Int(lengths[rank]))], as: UTF8.self)
        }
        let rejected = InputRejected(messages: messages, worldSize: comm.size)
        if comm.rank == 0 { printError(rejected.report) }
        throw rejected
    }

    public static var libraryVersion: String { MPIRuntime.libraryVersion }
    /// Starts this rank's watchdog (`train.hang_timeout_s`; SwiftMPI's `Watchdog`) before MPI starts, so a rank that
    /// never arrives ends the job too. `timeout` is the validated configuration's, or the default when the input
    /// was bad (the ranks are then about to agree on stopping).
    public static func startWatchdog(timeout: Double?, launch: LaunchEnvironment) {
        Watchdog.start(timeout: timeout ?? TrainConfig.defaultHangTimeout, rank: launch.rank, size: launch.worldSize)
    }

    /// Once the run directory is known: the ranks' heartbeats go to `<run>/.watchdog`, where every rank can read
    /// the others' (across nodes only on a shared filesystem), so a timeout names the rank that stopped.
    public static func publishHeartbeats(runDirectory: String) {
        guard !runDirectory.isEmpty else { return }
        Watchdog.publishHeartbeats(in: runDirectory + "/.watchdog")
    }

    public static func finalize() {
        Watchdog.stop()
        MPIRuntime.finalize()
    }
    public static func abort(code: Int32) -> Never { MPIRuntime.abort(code: code) }
}

/// The exit status of every input error (configuration, data, checkpoint, command-line flags), in every command.
public let inputErrorStatus: Int32 = 2

/// Input was rejected on at least one rank (`MPISession.agreeOnInput`); rank 0 has printed `report`.
public struct InputRejected: Error, CustomStringConvertible {
    /// Each failing rank's message, by rank.
    public let messages: [Int: String]
    public let worldSize: Int

    /// One `error:` line per distinct message; it names its ranks unless every rank of the world gave it.
    public var report: String {
        var ranksByMessage: [(message: String, ranks: [Int])] = []
        for rank in messages.keys.sorted() {
            if let i = ranksByMessage.firstIndex(where: { $0.message == messages[rank] }) { ranksByMessage[i].ranks.append(rank) }
            else { ranksByMessage.append((messages[rank]!, [rank])) }
        }
        return ranksByMessage.map { entry in
            if entry.ranks.count == worldSize { return "error: \(entry.message)" }
            let who = (entry.ranks.count == 1 ? "rank " : "ranks ") + entry.ranks.map(String.init).joined(separator: ", ")
            return "error (\(who) of \(worldSize)): \(entry.message)"
        }.joined(separator: "\n")
    }

    public var description: String { report }
}
