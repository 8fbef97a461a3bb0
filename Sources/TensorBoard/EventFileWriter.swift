import Foundation
import SwiftProtobuf

/// A TensorBoard event file of scalars (`events.out.tfevents.<time>.<host>.<pid>` in `directory`), as TensorBoard,
/// its `EventAccumulator` and TensorFlow's `summary_iterator` read it: TFRecord-framed `Event` messages, the first
/// carrying the file version.
///
/// Every event is one `write(2)` of a whole record, with no buffering in this process, so a crash loses at most the
/// record being written (readers stop at a torn last record). Single writer: swift-train opens it on rank 0 only.
public final class EventFileWriter {
    public let path: String
    private let handle: FileHandle

    /// The event file version TensorBoard expects in the first record.
    public static let fileVersion = "brain.Event:2"

    /// Creates a new event file in `directory` (which must exist).
    /// - Parameter restartStep: when continuing a run from a checkpoint, the first step this file will log. A
    ///   `SessionLog.START` event at that step tells readers to drop what earlier files logged from that step on
    ///   (the steps after the checkpoint that the interrupted run had already logged and that are now run again).
    public init(directory: String, restartStep: Int? = nil, now: Date = Date()) throws {
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count - 1)
        let stem = "\(directory)/events.out.tfevents.\(Int(now.timeIntervalSince1970)).\(String(cString: host)).\(getpid())"
        var candidate = stem
        var copy = 1
        while FileManager.default.fileExists(atPath: candidate) { candidate = "\(stem).\(copy)"; copy += 1 }
        path = candidate
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw TensorBoardError("cannot create the TensorBoard event file \(path): check that \(directory) is writable")
        }
        self.handle = handle
        var header = Tensorboard_Event()
        header.wallTime = now.timeIntervalSince1970
        header.fileVersion = Self.fileVersion
        try write(header)
        if let restartStep {
            var start = Tensorboard_Event()
            start.wallTime = now.timeIntervalSince1970
            start.step = Int64(restartStep)
            start.sessionLog = Tensorboard_SessionLog.with { $0.status = .start }
            try write(start)
        }
    }

    deinit { try? handle.close() }

    /// One event at `step` holding a scalar summary value per (tag, value). TensorBoard stores scalars as float32.
    public func writeScalars(step: Int, _ scalars: [(tag: String, value: Double)],
                             wallTime: Double = Date().timeIntervalSince1970) throws {
        var event = Tensorboard_Event()
        event.wallTime = wallTime
        event.step = Int64(step)
        event.summary = Tensorboard_Summary.with { summary in
            summary.value = scalars.map { scalar in
                Tensorboard_Summary.Value.with { $0.tag = scalar.tag; $0.simpleValue = Float(scalar.value) }
            }
        }
        try write(event)
    }

    private func write(_ event: Tensorboard_Event) throws {
        do {
            let payload: [UInt8] = try event.serializedBytes()
            try handle.write(contentsOf: Data(TFRecord.frame(payload)))
        } catch {
            throw TensorBoardError("cannot write to the TensorBoard event file \(path): \(error)")
        }
    }
}

/// A decoded event of an event file (what `EventFileReader` returns: for tests and tools).
public struct ScalarEvent: Equatable, Sendable {
    public var step: Int
    public var wallTime: Double
    public var tag: String
    public var value: Float

    public init(step: Int, wallTime: Double, tag: String, value: Float) {
        self.step = step
        self.wallTime = wallTime
        self.tag = tag
        self.value = value
    }
}

/// Reads back what `EventFileWriter` writes, checking the framing: for tests, and the `read` half of a round trip.
public enum EventFileReader {
    /// The file version of the first record, the scalars, and the steps of `SessionLog.START` events.
    public static func read(path: String) throws -> (fileVersion: String, scalars: [ScalarEvent], restarts: [Int]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TensorBoardError("\(path): cannot read this event file")
        }
        var version = ""
        var scalars: [ScalarEvent] = []
        var restarts: [Int] = []
        for (index, record) in try TFRecord.records(in: [UInt8](data), source: path).enumerated() {
            let event: Tensorboard_Event
            do { event = try Tensorboard_Event(serializedBytes: record) } catch {
                throw TensorBoardError("\(path): record \(index) is not an Event message: \(error)")
            }
            switch event.what {
            case .fileVersion(let v)?: version = v
            case .summary(let summary)?:
                for value in summary.value {
                    scalars.append(ScalarEvent(step: Int(event.step), wallTime: event.wallTime, tag: value.tag, value: value.simpleValue))
                }
            case .sessionLog(let log)? where log.status == .start: restarts.append(Int(event.step))
            default: break
            }
        }
        return (version, scalars, restarts)
    }
}
