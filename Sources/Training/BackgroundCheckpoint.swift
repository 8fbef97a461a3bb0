import Distributed
import Foundation

/// A checkpoint written by a background thread while training goes on (`checkpoint.async`, docs/checkpoints.md).
///
/// Phases, on every rank:
/// 1. At the step boundary the trainer takes the snapshot (`Checkpoint.snapshot`: collective, copies the state)
///    and hands it to this writer, whose thread writes this rank's files durably (`Checkpoint.write`; no MPI, since
///    the job runs MPI FUNNELED: only the main thread communicates).
/// 2. At each later step boundary the trainer's per-step all-reduce carries whether this rank's files are written
///    (`isWritten`), so every rank learns at the same step that all of them are.
/// 3. There every rank calls `commit` (`Checkpoint.commit`: collective; rank 0 writes the manifest and renames the
///    directory into place). Until then the checkpoint is a `.partial` directory that resume does not accept.
/// A second checkpoint, the end of training and every stop first commit the pending one, waiting for its writer.
final class BackgroundCheckpoint: @unchecked Sendable {
    let snapshot: Checkpoint.Snapshot
    private let lock = NSLock()
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<Checkpoint.Written, Error>?  // set once, by the writer thread, under `lock`

    init(_ snapshot: Checkpoint.Snapshot) {
        self.snapshot = snapshot
        let thread = Thread { [self] in
            let outcome = Result { try Checkpoint.write(snapshot) }
            lock.withLock { result = outcome }
            done.signal()
        }
        thread.name = "swift-train checkpoint writer"
        thread.start()
    }

    /// This rank's files are written (or the write failed): never waits.
    var isWritten: Bool { lock.withLock { result != nil } }

    /// Waits for this rank's writer, then commits the checkpoint (collective: every rank calls it at the same step).
    /// Returns its directory. Call once.
    func commit(engine: ShardedDataParallel) throws -> String {
        done.wait()
        return try Checkpoint.commit(snapshot, lock.withLock { result! }, engine: engine)
    }
}
