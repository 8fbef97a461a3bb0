import Foundation
import Training

// MARK: - Directory

/// A sweep's directory (rank 0): sweep.yaml, points/<name>/ run directories, results.csv.
///
/// Resuming: a point whose directory has summary.json is finished and skipped; its config.yaml must equal the
/// point's current configuration (else the sweep file changed under it: an error names the point). A point directory
/// without summary.json was interrupted and is run again from the start.
public final class SweepDirectory: Sendable {
    public let path: String
    public let plan: SweepPlan
    /// Indices of points already finished.
    public let finished: Set<Int>

    public init(path: String, plan: SweepPlan) throws {
        self.path = path
        self.plan = plan
        let fm = FileManager.default
        try createFolders("\(path)/points", what: "sweep directory")
        var finished: Set<Int> = []
        for point in plan.points where fm.fileExists(atPath: "\(path)/points/\(point.name)/summary.json") {
            let stored = (try? String(contentsOfFile: "\(path)/points/\(point.name)/config.yaml", encoding: .utf8)) ?? ""
            guard stored == Self.configText(point) else {
                throw ConfigError("\(path)/points/\(point.name) was run with a different configuration than the sweep now gives point " +
                                  "'\(point.name)' (compare its config.yaml with `swift-train sweep --dry-run`): use another --out, " +
                                  "or delete that point's directory to run it again")
            }
            finished.insert(point.index)
        }
        self.finished = finished
        try writeAtomically(Data(plan.spec.text.utf8), to: "\(path)/sweep.yaml")
    }

    /// Another group leader's view of the directory rank 0 created (rank groups: every leader writes its own points'
    /// run directories, so the sweep directory must be on a file system every rank sees). Reads and writes nothing.
    public init(sharedPath path: String, plan: SweepPlan) {
        self.path = path
        self.plan = plan
        finished = []
    }

    public func pointPath(_ point: SweepPoint) -> String { "\(path)/points/\(point.name)" }

    static func configText(_ point: SweepPoint) -> String {
        point.config.resolved.yaml(header: "sweep point '\(point.name)': \(point.label)\nrerun alone with swift-train --config <this file>")
    }

    /// A fresh run directory for `point` (an interrupted attempt's directory is removed first).
    public func startPoint(_ point: SweepPoint) throws -> RunDirectory {
        let p = pointPath(point)
        if FileManager.default.fileExists(atPath: p) { try FileManager.default.removeItem(atPath: p) }
        let run = try RunDirectory(claiming: p, tensorboard: point.config.resolved.bool("output.tensorboard"))
        try run.write("config.yaml", text: Self.configText(point))
        return run
    }

    /// The row of a finished point, from its summary.json and metrics.jsonl.
    public func row(for point: SweepPoint) throws -> SweepRow {
        let p = pointPath(point)
        guard let data = FileManager.default.contents(atPath: "\(p)/summary.json"),
              let summary = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ConfigError("\(p)/summary.json cannot be read: delete \(p) to run the point again")
        }
        return SweepRow(point: point, summary: summary, metrics: MetricsTail(path: "\(p)/metrics.jsonl"))
    }

    /// Rewrites results.csv with `rows` (atomically: readers never see a torn file).
    public func writeResults(_ rows: [SweepRow]) throws {
        let keys = plan.spec.axes.map(\.key)
        let text = ([SweepRow.header(keys: keys)] + rows.map(\.fields)).map(CSV.line).joined(separator: "\n") + "\n"
        try writeAtomically(Data(text.utf8), to: "\(path)/results.csv")
    }
}
