import CMPI
import Foundation

/// Ends a job that stopped progressing. MPI has no timeouts: a rank that is stopped (SIGSTOP, a swapped-out or
/// frozen node) or cut off (a dead link that TCP has not yet noticed) leaves every other rank inside its collective
/// forever. Every blocking wait of this module goes through `Watchdog.waiting(_:_:)`, which records on the main
/// thread what the rank waits in and since when (one lock, no system call); a monitor thread on each rank
///
/// 1. writes a heartbeat line every `interval` seconds to `<directory>/rank-<r>` (a beat counter, the number of
///    collectives this rank has started, the step, and the call it is waiting in), and
/// 2. when its own rank has been inside one wait for longer than `timeout`, reads every rank's heartbeat twice,
///    `interval`·4 (≥ 2 s) apart, names the ranks whose beat did not advance (stopped or gone) or that started fewer
///    collectives (still computing, or stuck elsewhere), prints that with the call and step it is waiting in, and
///    calls MPI_Abort, so mpirun ends the whole job with `exitStatus`.
///
/// The heartbeat files only serve naming the culprit; the timeout itself needs none (with a directory other ranks
/// cannot see, e.g. not on a shared filesystem across nodes, the message says which ranks it could not read).
/// The comparison uses beat counters, not clocks, so nodes need no synchronised time.
public enum Watchdog {
    /// The exit status of a job the watchdog ended (mpirun returns it).
    public static let exitStatus: Int32 = 4

    private final class State: @unchecked Sendable {
        let lock = NSLock()
        var inWait = false
        var call = ""
        var since = 0.0
        var started = 0
        var step = -1
        var running = false
        var timeout = 0.0
        var rank = 0
        var size = 1
        var directory: String?
        /// Serialises heartbeat writes (the monitor's and `publishHeartbeats`'s first one share the temporary file)
        /// and guards `beats`, so the counter on file only ever increases.
        let writeLock = NSLock()
        var beats = 0
    }
    private static let state = State()

    /// Starts the monitor thread (idempotent), before MPI_Init so that a rank missing from the start is caught too.
    /// `timeout` ≤ 0 turns it off. Heartbeats start with `publishHeartbeats(in:)`.
    public static func start(timeout: Double, rank: Int, size: Int) {
        guard timeout > 0 else { return }
        let s = state
        s.lock.lock()
        defer { s.lock.unlock() }
        if s.running { return }
        s.running = true
        s.timeout = timeout
        s.rank = rank
        s.size = size
        let thread = Thread { monitor() }
        thread.name = "swift-train watchdog"
        thread.start()
    }

    /// Where ranks leave their heartbeats (the run directory's `.watchdog`, known once rank 0 has claimed it);
    /// until then a timeout names only this rank's wait.
    public static func publishHeartbeats(in directory: String) {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        state.lock.lock()
        state.directory = directory
        state.lock.unlock()
        // The first beat now, not at the monitor's next one: a rank stopped early in training still leaves a
        // heartbeat behind that names it.
        let now = snapshot()
        if now.running { heartbeat(now) }
    }

    /// Stops the monitor at its next beat and removes this rank's heartbeat file.
    public static func stop() {
        state.lock.lock()
        let wasRunning = state.running
        state.running = false
        let file = state.directory.map { "\($0)/rank-\(state.rank)" }
        state.lock.unlock()
        if wasRunning, let file { try? FileManager.default.removeItem(atPath: file) }
    }

    /// The training step this rank is in (named in the watchdog's message).
    public static func setStep(_ step: Int) {
        state.lock.lock()
        state.step = step
        state.lock.unlock()
    }

    /// Counts a collective this rank started (every rank starts the same ones in the same order, so a rank with a
    /// lower count is behind the others).
    @inline(__always) static func started() {
        state.lock.lock()
        state.started += 1
        state.lock.unlock()
    }

    /// Runs `body`, a wait that may block on other ranks, under the watchdog's eye.
    @inline(__always) static func waiting<R>(_ call: @autoclosure () -> String, _ body: () throws -> R) rethrows -> R {
        let s = state
        s.lock.lock()
        let watched = s.running && !s.inWait
        if watched {
            s.inWait = true
            s.call = call()
            s.since = monotonicSeconds()
        }
        s.lock.unlock()
        defer {
            if watched {
                s.lock.lock()
                s.inWait = false
                s.lock.unlock()
            }
        }
        return try body()
    }

    /// A blocking collective: counted, and watched while it runs.
    @inline(__always) static func collective<R>(_ call: String, _ body: () throws -> R) rethrows -> R {
        started()
        return try waiting(call, body)
    }

    static func monotonicSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    private struct Snapshot {
        var inWait: Bool, call: String, since: Double, started: Int, step: Int, running: Bool
        var timeout: Double, rank: Int, size: Int, directory: String?
    }

    private static func snapshot() -> Snapshot {
        let s = state
        s.lock.lock()
        defer { s.lock.unlock() }
        return Snapshot(inWait: s.inWait, call: s.call, since: s.since, started: s.started, step: s.step,
                        running: s.running, timeout: s.timeout, rank: s.rank, size: s.size, directory: s.directory)
    }

    /// Seconds between heartbeats: short against the timeout, so a stalled peer is told apart from a slow one.
    static func interval(timeout: Double) -> Double { min(1.0, max(0.05, timeout / 10)) }

    private static func monitor() {
        while true {
            let now = snapshot()
            guard now.running else { return }
            let pause = interval(timeout: now.timeout)
            heartbeat(now)
            if now.inWait && monotonicSeconds() - now.since > now.timeout {
                fire(now, pause: pause)
            }
            Thread.sleep(forTimeInterval: pause)
        }
    }

    private static func heartbeat(_ now: Snapshot) {
        guard let directory = now.directory else { return }
        let s = state
        s.writeLock.lock()
        defer { s.writeLock.unlock() }
        s.beats += 1
        let line = "\(s.beats) \(now.started) \(now.step) \(now.inWait ? now.call : "-")\n"
        writeHeartbeat(line, directory: directory, rank: now.rank)
    }

    /// Writes to a temporary name, then renames over the previous beat: a reader sees the old line or the new one,
    /// never none (so a rank stopped in the middle of a write still has its last beat on file).
    private static func writeHeartbeat(_ line: String, directory: String, rank: Int) {
        let path = "\(directory)/rank-\(rank)", temporary = "\(directory)/.rank-\(rank).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return }
        let bytes = Array(line.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        if written == bytes.count { rename(temporary, path) }
    }

    /// A peer's heartbeat: beat counter, collectives started, step, call ("-": not waiting).
    private struct Beat { var beat: Int, started: Int, step: Int, call: String }

    private static func readBeat(_ directory: String, _ rank: Int) -> Beat? {
        guard let text = try? String(contentsOfFile: "\(directory)/rank-\(rank)", encoding: .utf8) else { return nil }
        let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ", maxSplits: 3)
        guard parts.count == 4, let b = Int(parts[0]), let c = Int(parts[1]), let s = Int(parts[2]) else { return nil }
        return Beat(beat: b, started: c, step: s, call: String(parts[3]))
    }

    /// Names who stopped progressing, prints it and ends the job.
    private static func fire(_ me: Snapshot, pause: Double) -> Never {
        let waited = monotonicSeconds() - me.since
        let stepText = me.step >= 0 ? "at step \(me.step + 1)" : "before training"
        var lines = ["swift-train watchdog: rank \(me.rank) waited \(String(format: "%.1f", waited)) s in \(me.call) " +
                     "\(stepText) (train.hang_timeout_s = \(formatSeconds(me.timeout)))"]
        if me.directory == nil && me.size > 1 {
            lines.append("(before the run directory was claimed, so no heartbeats name the rank that is missing)")
        }
        if let directory = me.directory, me.size > 1 {
            let first = (0..<me.size).map { readBeat(directory, $0) }
            // A live rank's monitor beats every `pause` whatever its main thread does; 4 beats and at least 2 s
            // leave room for a loaded machine's scheduling delays.
            let watch = max(pause * 4, 2)
            // This rank keeps beating while it watches: another waiting rank that times out at the same moment is
            // watching too, and must not take this rank for a stopped one.
            let end = monotonicSeconds() + watch
            while monotonicSeconds() < end {
                Thread.sleep(forTimeInterval: min(pause, max(0, end - monotonicSeconds())))
                heartbeat(me)
            }
            let second = (0..<me.size).map { readBeat(directory, $0) }
            var stalled: [String] = [], behind: [String] = [], unseen: [Int] = []
            for r in 0..<me.size where r != me.rank {
                guard let a = first[r], let b = second[r] else { unseen.append(r); continue }
                let where_ = b.call == "-" ? "not in a collective" : "in \(b.call)"
                if b.beat == a.beat {
                    stalled.append("rank \(r) (no heartbeat for \(formatSeconds(watch)) s: stopped, frozen or gone; " +
                                   "last at step \(b.step + 1), \(where_))")
                } else if b.started < me.started {
                    behind.append("rank \(r) (alive at step \(b.step + 1), \(where_), has started \(b.started) " +
                                  "collectives against \(me.started) here: it is stuck outside this collective)")
                }
            }
            if !stalled.isEmpty { lines.append("stopped progressing: " + stalled.joined(separator: "; ")) }
            if !behind.isEmpty { lines.append("behind: " + behind.joined(separator: "; ")) }
            if stalled.isEmpty && behind.isEmpty && unseen.isEmpty {
                lines.append("every rank's heartbeat is alive and none is behind: the network between them is not delivering")
            }
            if !unseen.isEmpty {
                lines.append("no heartbeat readable from rank(s) \(unseen.map(String.init).joined(separator: ", ")) in \(directory) " +
                             "(gone, or the directory is not shared between nodes)")
            }
        }
        lines.append("ending the job (MPI_Abort, exit status \(exitStatus)); resume from the latest checkpoint with --resume")
        FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
        // MPI_Abort from this thread: the main thread is blocked inside MPI and will never return to call it. Open
        // MPI's abort goes through its runtime (PMIx), which tells mpirun to end every rank.
        // Before MPI_Init completed there is no MPI to abort: exiting alone makes mpirun end the job.
        if MPIRuntime.isInitialized { MPI_Abort(swt_comm_world(), exitStatus) }
        _exit(exitStatus)
    }

    private static func formatSeconds(_ s: Double) -> String {
        s == s.rounded() ? String(Int(s)) : String(format: "%.2f", s)
    }
}
