import Distributed
import Foundation

/// A checkpoint written by background threads while training goes on (`checkpoint.async`, docs/checkpoints.md).
///
/// Phases, on every rank (Checkpoint's four, run apart):
/// 1. At the step boundary the trainer takes the snapshot (`Checkpoint.snapshot`: collective, copies the state)
///    and hands it over; a thread writes this rank's files durably (`Checkpoint.write`; no MPI there, since the job
///    runs MPI FUNNELED: only the main thread communicates).
/// 2. At each later step boundary the trainer's per-step all-reduce carries whether this rank's files are written
///    (`isWritten`), so every rank learns at the same step that all of them are; there every rank calls `agree`
///    (`Checkpoint.agree`: collective, two small all-reduces of sizes and checksums).
/// 3. Rank 0 then writes the manifest and renames the directory into place in a thread (`Checkpoint.finish`).
///    Until then the checkpoint is a `.partial` directory that resume does not accept.
/// A second checkpoint, the end of training and every stop first `complete` the pending one, waiting as needed.
final class BackgroundCheckpoint: @unchecked Sendable {
    let snapshot: Checkpoint.Snapshot
    private let writer: BackgroundTask<Checkpoint.Written>
    private var finisher: BackgroundTask<String>?
    /// `agree` ran (on every rank at the same step).
    private(set) var isAgreed = false

    init(_ snapshot: Checkpoint.Snapshot) {
        self.snapshot = snapshot
        writer = BackgroundTask(name: "swift-train checkpoint writer") { try Checkpoint.write(snapshot) }
    }

    /// This rank's files are written (or the write failed): never waits.
    var isWritten: Bool { writer.isDone }

    /// Collective, once: waits for this rank's writer, agrees on the files, and on rank 0 starts writing the
    /// manifest and renaming the directory into place.
    func agree(engine: ShardedDataParallel) throws {
        precondition(!isAgreed, "a checkpoint is agreed once")
        isAgreed = true
        guard let files = try Checkpoint.agree(snapshot, writer.result(), engine: engine) else { return }
        let snapshot = snapshot
        finisher = BackgroundTask(name: "swift-train checkpoint finisher") { try Checkpoint.finish(snapshot, files: files) }
    }

    /// Agreed, and on rank 0 the directory renamed into place (never waits). Completing it from here on needs no
    /// collective, so a rank may do so whenever this is true.
    var isComplete: Bool { isAgreed && (finisher?.isDone ?? true) }

    /// Collective unless already agreed: the checkpoint complete on disk (rank 0 waits for its finisher). Returns its
    /// directory.
    func complete(engine: ShardedDataParallel) throws -> String {
        if !isAgreed { try agree(engine: engine) }
        if let finisher { _ = try finisher.result().get() }
        return snapshot.directory
    }
}

/// One piece of work on its own thread, its outcome kept for whoever waits for it.
final class BackgroundTask<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private let done = DispatchSemaphore(value: 0)
    private var outcome: Result<T, Error>?  // set once, by the thread, under `lock`

    init(name: String, _ work: @escaping @Sendable () throws -> T) {
        let thread = Thread { [self] in
            let result = Result { try work() }
            lock.withLock { outcome = result }
            done.signal()
        }
        thread.name = name
        thread.start()
    }

    /// The work has ended (never waits).
    var isDone: Bool { lock.withLock { outcome != nil } }

    /// Waits for the work to end; its outcome.
    func result() -> Result<T, Error> {
        if let outcome = lock.withLock({ outcome }) { return outcome }
        done.wait()
        done.signal()  // later calls return at once
        return lock.withLock { outcome! }
    }
}
