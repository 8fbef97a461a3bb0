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

/// Writes `data` to `path` atomically: a temporary file in the same folder, fsync, then rename over the target,
/// so a crash leaves either the old file or the new one, never a torn one.
public func writeAtomically(_ data: Data, to path: String) throws {
    let temporary = path + ".tmp-\(getpid())"
    guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
        throw ConfigError("cannot create \(temporary): check that the run directory is writable")
    }
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
    try handle.write(contentsOf: data)
    try handle.synchronize()
    try handle.close()
    guard rename(temporary, path) == 0 else {
        let reason = String(cString: strerror(errno))
        unlink(temporary)
        throw ConfigError("cannot rename \(temporary) to \(path): \(reason)")
    }
}

/// The run directory (rank 0 only): resolved config, metrics stream, summary and final model, and optionally a
/// TensorBoard event file that receives every numeric field of every metrics line as a scalar of the same name.
public final class RunDirectory {
    public let path: String
    private let metrics: FileHandle
    /// `output.tensorboard`: nil when off.
    public let events: EventFileWriter?

    /// Creates the directory. Refuses a directory that already holds a run, so no result is ever overwritten.
    public init(path: String, tensorboard: Bool = false) throws {
        self.path = path
        let fm = FileManager.default
        for existing in ["metrics.jsonl", "summary.json"] where fm.fileExists(atPath: "\(path)/\(existing)") {
            throw ConfigError("run directory \(path) already holds a run (\(existing)); choose another --out or delete it")
        }
        do { try fm.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw ConfigError("cannot create run directory \(path): \(error.localizedDescription)")
        }
        let metricsPath = "\(path)/metrics.jsonl"
        guard fm.createFile(atPath: metricsPath, contents: nil), let handle = FileHandle(forWritingAtPath: metricsPath) else {
            throw ConfigError("cannot write \(metricsPath): check permissions")
        }
        metrics = handle
        events = tensorboard ? try EventFileWriter(directory: path) : nil
    }

    /// Continues a run in its existing directory after resuming from the checkpoint of `step`: metrics lines of
    /// later steps (written before the interruption, beyond the checkpoint) are dropped so the file reads as one run,
    /// and a new event file starts with a restart marker at `step + 1`, so TensorBoard drops those steps too.
    public init(resuming path: String, atStep step: Int, tensorboard: Bool = false) throws {
        self.path = path
        let metricsPath = "\(path)/metrics.jsonl"
        let old = (try? String(contentsOfFile: metricsPath, encoding: .utf8)) ?? ""
        let kept = old.split(separator: "\n").filter { line in
            guard let data = line.data(using: .utf8),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let s = object["step"] as? Int else { return false }
            return s <= step
        }
        try writeAtomically(Data(kept.map { $0 + "\n" }.joined().utf8), to: metricsPath)
        guard let handle = FileHandle(forWritingAtPath: metricsPath) else {
            throw ConfigError("cannot append to \(metricsPath): check permissions")
        }
        handle.seekToEndOfFile()
        metrics = handle
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

    /// Appends one line to metrics.jsonl and, with TensorBoard on, one event of its numbers at its `step` (both
    /// written through, so a crash loses at most the line being written).
    public func appendMetrics(_ object: JSONObject) throws {
        try metrics.write(contentsOf: Data((object.line + "\n").utf8))
        if let events, let step = object.numbers.first(where: { $0.key == "step" }) {
            try events.writeScalars(step: Int(step.value), object.numbers.filter { $0.key != "step" }.map { ($0.key, $0.value) })
        }
    }

    public func write(_ name: String, _ data: Data) throws { try writeAtomically(data, to: "\(path)/\(name)") }
    public func write(_ name: String, text: String) throws { try write(name, Data(text.utf8)) }

    deinit { try? metrics.close() }
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
