import Foundation
import TensorBoard
import Tensors

/// A JSON object with keys in insertion order (readable metrics lines) and numbers formatted losslessly.
public struct JSONObject {
    private var fields: [(String, String)] = []
    /// The numeric fields, in order (what the TensorBoard event file receives of a metrics line).
    public private(set) var numbers: [(key: String, value: Double)] = []
    public init() {}

    public mutating func add(_ key: String, _ value: Int) {
        fields.append((key, String(value)))
        numbers.append((key, Double(value)))
    }
    public mutating func add(_ key: String, _ value: Double) {
        fields.append((key, value.isFinite ? "\(value)" : "null"))
        numbers.append((key, value))
    }
    public mutating func add(_ key: String, _ value: String) { fields.append((key, Self.quote(value))) }
    public mutating func add(_ key: String, _ value: Bool) { fields.append((key, value ? "true" : "false")) }
    public mutating func add(_ key: String, _ values: [Int]) {
        fields.append((key, "[" + values.map(String.init).joined(separator: ",") + "]"))
    }
    public mutating func add(_ key: String, raw json: String) { fields.append((key, json)) }

    public var line: String { "{" + fields.map { "\(Self.quote($0.0)):\($0.1)" }.joined(separator: ",") + "}" }
    public var pretty: String { "{\n" + fields.map { "  \(Self.quote($0.0)): \($0.1)" }.joined(separator: ",\n") + "\n}\n" }

    static func quote(_ s: String) -> String { SafeTensors.jsonString(s) }

}

/// A file-system failure as a message that names the file, the operating system's reason and what to do, instead
/// of Foundation's NSCocoaErrorDomain text (which names neither the file nor the cause).
public func fileFailure(_ action: String, _ path: String, errno code: Int32 = errno) -> ConfigError {
    let reason = String(cString: strerror(code))
    let fix: String
    switch code {
    case ENOSPC, EDQUOT: fix = "free space on that file system or choose another --out"
    case EACCES, EPERM, EROFS: fix = "check the permissions of the folder, or choose another --out"
    case ENOENT, ENOTDIR: fix = "check that the folders in the path exist"
    default: fix = "check the path"
    }
    return ConfigError("cannot \(action) \(path): \(reason); \(fix)")
}

/// Creates `path` and any missing parent folders (mkdir -p) with POSIX calls, so a failure names the folder and the
/// operating system's reason (Foundation's createDirectory often reports neither). `what` names it in the message.
public func createFolders(_ path: String, what: String = "") throws {
    var current = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/") where !part.isEmpty {
        current += "/" + part
        guard mkdir(current, 0o755) == 0 || errno == EEXIST else {
            let failure = fileFailure("create", current)
            throw what.isEmpty ? failure : ConfigError("\(what) \(path): \(failure.message)")
        }
    }
}

/// Writes all of `bytes` to `fd` (write may write less than asked), throwing `fileFailure` naming `path`.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw fileFailure("write", path) }
        done += n
    }
}

/// Writes `data` to `path` atomically: a temporary file in the same folder, fsync, then rename over the target,
/// so a crash leaves either the old file or the new one, never a torn one. A failure (a full disk) removes the
/// temporary file and names the file.
public func writeAtomically(_ data: Data, to path: String) throws {
    try writeAtomically(to: path) { fd in try data.withUnsafeBytes { try writeAll(fd, $0, path: path) } }
}

/// `writeAtomically` for contents that `body` writes to the open file descriptor piece by piece (with `writeAll`),
/// so nothing has to be assembled in memory first.
public func writeAtomically(to path: String, _ body: (Int32) throws -> Void) throws {
    let temporary = path + ".tmp-\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw fileFailure("create", path) }  // the file the user asked for, not the temporary
    do {
        try body(fd)
        guard fsync(fd) == 0 else { throw fileFailure("write", path) }
    } catch {
        close(fd); unlink(temporary)
        throw error
    }
    close(fd)
    guard rename(temporary, path) == 0 else {
        let failure = fileFailure("rename \(temporary) to", path)
        unlink(temporary)
        throw failure
    }
}

/// The run directory (rank 0 only): resolved config, metrics stream, summary and final model.
public final class RunDirectory {
    public let path: String
    private let metrics: Int32
    /// `output.tensorboard`: nil when off.
    public let events: EventFileWriter?
    /// Where resuming into this directory moved what the continued run replaces (nil for a new run).
    public private(set) var preserved: String?

    /// Whether `path` can hold a new run, without writing anything: it must not already hold one (a metrics.jsonl
    /// or summary.json), so no result is ever overwritten. Checked before MPI starts; `init(claiming:)` decides.
    public static func checkAvailable(_ path: String) throws {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue {
            throw ConfigError("--out \(path) is a file, not a folder: choose another --out")
        }
        for existing in ["metrics.jsonl", "summary.json"] where FileManager.default.fileExists(atPath: "\(path)/\(existing)") {
            throw ConfigError("run directory \(path) already holds a run (\(existing)); choose another --out, delete it, " +
                              "or continue it with --resume \(path)")
        }
    }

    /// Claims `path` for a new run: creates the folder, then metrics.jsonl with O_EXCL, which exactly one of two
    /// runs started with the same `--out` can do (the other gets an error and has written nothing).
    public init(claiming path: String, tensorboard: Bool = false) throws {
        try Self.checkAvailable(path)
        try createFolders(path, what: "run directory")
        let metricsPath = "\(path)/metrics.jsonl"
        let fd = open(metricsPath, O_WRONLY | O_CREAT | O_EXCL | O_APPEND, 0o644)
        guard fd >= 0 else {
            if errno == EEXIST {
                throw ConfigError("run directory \(path) was just claimed by another run (metrics.jsonl appeared); choose another --out")
            }
            throw fileFailure("create", metricsPath)
        }
        self.path = path
        metrics = fd
        events = tensorboard ? try EventFileWriter(directory: path) : nil
    }

    /// Claims the default run directory `runs/<name>-<UTC time>`, or with a `-2`, `-3`, … suffix when another run
    /// started in the same second took it.
    public static func claimDefault(name: String, date: Date = Date(), tensorboard: Bool = false) throws -> RunDirectory {
        let base = defaultPath(name: name, date: date)
        for attempt in 1...1000 {
            let candidate = attempt == 1 ? base : "\(base)-\(attempt)"
            if FileManager.default.fileExists(atPath: candidate) { continue }
            do { return try RunDirectory(claiming: candidate, tensorboard: tensorboard) } catch let error as ConfigError where error.message.contains("claimed") {
                continue
            }
        }
        throw ConfigError("cannot find a free run directory name next to \(base): choose one with --out")
    }

    /// Continues a run in its own directory after resuming from the checkpoint of `step`. Nothing it holds is
    /// lost: metrics.jsonl keeps its lines up to `step` and continues after them; the lines of later steps (written
    /// before the interruption, past the checkpoint) and the config.yaml, summary.json and model.safetensors the
    /// continued run writes again move to `previous/step-N` (`-2`, … when that exists), named by `preserved`.
    /// With TensorBoard a new event file starts with a restart marker at `step + 1`, so TensorBoard drops the
    /// later steps too.
    public init(resuming path: String, atStep step: Int, tensorboard: Bool = false) throws {
        self.path = path
        let fm = FileManager.default
        let metricsPath = "\(path)/metrics.jsonl"
        let old = fm.contents(atPath: metricsPath).map { String(decoding: $0, as: UTF8.self) } ?? ""
        var kept: [Substring] = [], later: [Substring] = []
        for line in old.split(separator: "\n") {
            let object = line.data(using: .utf8).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
            // A line that is not a step's metrics (torn by a crash) is kept aside too, never dropped.
            if let s = object?["step"] as? Int, s <= step { kept.append(line) } else { later.append(line) }
        }
        let replaced = ["config.yaml", "summary.json", "model.safetensors"].filter { fm.fileExists(atPath: "\(path)/\($0)") }
        if !later.isEmpty || !replaced.isEmpty {
            let base = String(format: "%@/previous/step-%08d", path, step)
            var folder = base, n = 1
            while fm.fileExists(atPath: folder) { n += 1; folder = "\(base)-\(n)" }
            try createFolders(folder)
            if !later.isEmpty { try writeAtomically(Data(later.map { $0 + "\n" }.joined().utf8), to: "\(folder)/metrics-after-step-\(step).jsonl") }
            for name in replaced where rename("\(path)/\(name)", "\(folder)/\(name)") != 0 {
                throw fileFailure("move \(path)/\(name) to", folder)
            }
            preserved = folder
        }
        try writeAtomically(Data(kept.map { $0 + "\n" }.joined().utf8), to: metricsPath)
        let fd = open(metricsPath, O_WRONLY | O_APPEND)
        guard fd >= 0 else { throw fileFailure("append to", metricsPath) }
        metrics = fd
        events = tensorboard ? try EventFileWriter(directory: path, restartStep: step + 1) : nil
    }

    /// Default location: runs/<name>-<UTC yyyyMMdd-HHmmss>.
    public static func defaultPath(name: String, date: Date = Date()) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        f.timeZone = TimeZone(identifier: "UTC")
        f.locale = Locale(identifier: "en_US_POSIX")
        return "runs/\(name)-\(f.string(from: date))"
    }

    /// Appends one line to metrics.jsonl (written through, so a crash loses at most the line being written).
    public func appendMetrics(_ object: JSONObject) throws {
        let line = Array((object.line + "\n").utf8)
        try line.withUnsafeBytes { try writeAll(metrics, $0, path: "\(path)/metrics.jsonl") }
        if let events, let step = object.numbers.first(where: { $0.key == "step" }) {
            try events.writeScalars(step: Int(step.value), object.numbers.filter { $0.key != "step" }.map { ($0.key, $0.value) })
        }
    }

    public func write(_ name: String, _ data: Data) throws { try writeAtomically(data, to: "\(path)/\(name)") }
    public func write(_ name: String, text: String) throws { try write(name, Data(text.utf8)) }

    deinit { close(metrics) }
}

/// Rank 0's console: a live progress line on a terminal, plain lines otherwise.
public final class Console {
    public let isTerminal: Bool
    private var liveLineShown = false
    private var lastDraw = 0.0

    public init(isTerminal: Bool = Console.stdoutIsTerminal()) { self.isTerminal = isTerminal }

    /// Whether a person is watching standard output. `SWIFT_TRAIN_PROGRESS=live|lines` decides explicitly.
    /// Under mpirun a rank's stdout is always a pseudo-terminal (Open MPI forwards output through one), so the
    /// answer is read from the launching mpirun's own stdout instead: a terminal there means a person is watching.
    public static func stdoutIsTerminal(_ env: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        switch env["SWIFT_TRAIN_PROGRESS"] {
        case "live": return true
        case "lines": return false
        default: break
        }
        guard env["OMPI_COMM_WORLD_SIZE"] != nil else { return isatty(STDOUT_FILENO) != 0 }
        #if os(Linux)
        // The rank's parent is mpirun (or orted on another node, whose stdout is not a terminal).
        let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(getppid())/fd/1")) ?? ""
        return target.hasPrefix("/dev/pts/") || target.hasPrefix("/dev/tty")
        #else
        return false
        #endif
    }

    /// A permanent line.
    public func line(_ text: String) {
        if liveLineShown { print("\r\u{1B}[K", terminator: "") ; liveLineShown = false }
        print(text)
        fflush(nil)
    }

    /// The live progress line (terminals only; redrawn at most 10 times a second unless `force`).
    public func progress(_ text: String, now: Double, force: Bool = false) {
        guard isTerminal, force || now - lastDraw >= 0.1 else { return }
        lastDraw = now
        print("\r\u{1B}[K" + text, terminator: "")
        fflush(nil)
        liveLineShown = true
    }
}

/// "1h02m", "3m05s", "42s".
public func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return String(format: "%dh%02dm", s / 3600, s % 3600 / 60) }
    if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return "\(s)s"
}

/// Peak resident set size of this process in bytes (getrusage; ru_maxrss is KiB on Linux).
/// Restarts the peak-resident-set measurement from the current resident set (Linux: `5` to /proc/self/clear_refs
/// resets the high-water mark `ru_maxrss` reads), so a peak measured afterwards is that of what follows, not of
/// start-up (loading data, or stage 3's one-time full initialisation). A no-op where unsupported.
public func resetPeakResident() {
    #if os(Linux)
    let fd = open("/proc/self/clear_refs", O_WRONLY)
    guard fd >= 0 else { return }
    _ = "5".withCString { write(fd, $0, 1) }
    close(fd)
    #endif
}

/// The peak resident set size of this process in bytes (since start, or since `resetPeakResident`).
public func peakResidentBytes() -> Int {
    var usage = rusage()
    #if os(Linux)
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Int(usage.ru_maxrss) * 1024
    #else
    getrusage(RUSAGE_SELF, &usage)
    return Int(usage.ru_maxrss)
    #endif
}

/// Writes one line to standard error (unbuffered, so it is not lost if the process is then aborted).
public func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
