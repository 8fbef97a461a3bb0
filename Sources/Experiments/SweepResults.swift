import Foundation
import Plots
import Training

// MARK: - Results

/// One row of results.csv: a finished point.
public struct SweepRow: Sendable, Equatable {
    public var point: String
    /// Grid values in axis order.
    public var values: [String]
    public var globalBatch: Int
    public var optimizer: String
    public var lr: Double
    public var groupLRs: String
    public var seed: Int
    public var gradAccum: Int
    public var target: String
    /// "reached", "budget" (ran out of steps) or "diverged".
    public var status: String
    public var stepsToTarget: Int?
    public var examplesToTarget: Int?
    public var secondsToTarget: Double?
    public var steps: Int
    public var evalAccuracy: Double
    public var evalLoss: Double
    public var finalTrainLoss: Double
    public var noiseScale: Double?
    /// Ranks that trained the point (its rank group's size; 0 when unknown, as in results.csv from before groups).
    public var worldSize = 0
    public var reached: Bool { stepsToTarget != nil }

    /// The fixed columns after the grid keys.
    public static let columns = ["global_batch", "optimizer", "lr", "group_lrs", "seed", "grad_accum", "target", "reached",
                                 "steps_to_target", "examples_to_target", "seconds_to_target", "steps", "final_eval_accuracy",
                                 "final_eval_loss", "final_train_loss", "noise_scale", "status", "world_size"]

    public static func header(keys: [String]) -> [String] { ["point"] + keys + columns }

    public var fields: [String] {
        func d(_ v: Double?) -> String { v.map { $0.isFinite ? "\($0)" : "" } ?? "" }
        return [point] + values + [String(globalBatch), optimizer, "\(lr)", groupLRs, String(seed), String(gradAccum), target,
                                   reached ? "true" : "false", stepsToTarget.map(String.init) ?? "",
                                   examplesToTarget.map(String.init) ?? "", d(secondsToTarget), String(steps),
                                   d(evalAccuracy), d(evalLoss), d(finalTrainLoss), d(noiseScale), status,
                                   worldSize > 0 ? String(worldSize) : ""]
    }

    /// Reads a row back from results.csv: `field(column)` is the text of a fixed column ("" when the file lacks it).
    public init(point: String, values: [String], field: (String) -> String) {
        func d(_ k: String) -> Double? { Double(field(k)) }
        func i(_ k: String) -> Int? { Int(field(k)) }
        self.point = point
        self.values = values
        globalBatch = i("global_batch") ?? 0
        optimizer = field("optimizer")
        lr = d("lr") ?? .nan
        groupLRs = field("group_lrs")
        seed = i("seed") ?? 0
        gradAccum = i("grad_accum") ?? 1
        target = field("target")
        status = field("status")
        stepsToTarget = i("steps_to_target")
        examplesToTarget = i("examples_to_target")
        secondsToTarget = d("seconds_to_target")
        steps = i("steps") ?? 0
        evalAccuracy = d("final_eval_accuracy") ?? .nan
        evalLoss = d("final_eval_loss") ?? .nan
        finalTrainLoss = d("final_train_loss") ?? .nan
        noiseScale = d("noise_scale")
        worldSize = i("world_size") ?? 0
    }

    /// Rebuilds a row from a point's summary.json (as written by `SweepRunner`) and its metrics.jsonl.
    public init(point: SweepPoint, summary: [String: Any], metrics: MetricsTail) {
        func num(_ k: String) -> Double? { (summary[k] as? NSNumber)?.doubleValue }
        func int(_ k: String) -> Int? { (summary[k] as? NSNumber)?.intValue }
        self.point = point.name
        values = point.values.map(\.value)
        globalBatch = int("global_batch") ?? point.globalBatch
        optimizer = point.optimizerLabel
        lr = point.lr
        groupLRs = point.groupLRs
        seed = Int(point.config.seed)
        gradAccum = int("grad_accum") ?? point.config.gradAccum
        target = summary["sweep_target"] as? String ?? ""
        status = summary["sweep_status"] as? String ?? "budget"
        stepsToTarget = int("steps_to_target")
        examplesToTarget = int("examples_to_target")
        secondsToTarget = num("seconds_to_target")
        steps = int("steps") ?? 0
        evalAccuracy = num("eval_accuracy") ?? metrics.evalAccuracy ?? .nan
        evalLoss = num("eval_loss") ?? metrics.evalLoss ?? .nan
        finalTrainLoss = num("final_train_loss") ?? metrics.trainLoss ?? .nan
        noiseScale = metrics.noiseScale
        worldSize = int("world_size") ?? 0
    }

    public static func == (a: SweepRow, b: SweepRow) -> Bool { a.fields == b.fields }
}

/// The last values of interest in a metrics.jsonl file.
public struct MetricsTail: Sendable {
    public var trainLoss: Double?
    public var evalAccuracy: Double?
    public var evalLoss: Double?
    public var noiseScale: Double?
    public var lastStep = 0

    public init() {}

    public init(path: String) {
        for line in MetricsTail.lines(path: path) {
            if let s = (line["step"] as? NSNumber)?.intValue { lastStep = max(lastStep, s) }
            if let v = (line["loss"] as? NSNumber)?.doubleValue { trainLoss = v }
            if let v = (line["eval_accuracy"] as? NSNumber)?.doubleValue { evalAccuracy = v }
            if let v = (line["eval_loss"] as? NSNumber)?.doubleValue { evalLoss = v }
            if let v = (line["noise_scale"] as? NSNumber)?.doubleValue, v.isFinite { noiseScale = v }
        }
    }

    /// Every parseable JSON object line of a metrics.jsonl file (unreadable lines, e.g. a torn last one, skipped).
    public static func lines(path: String) -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let data = line.data(using: .utf8) else { return nil }
            return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        }
    }
}

/// RFC 4180 CSV: fields with a comma, quote or newline are quoted, quotes doubled.
public enum CSV {
    public static func line(_ fields: [String]) -> String {
        fields.map { f in
            f.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + f.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : f
        }.joined(separator: ",")
    }

    /// Rows of fields (the header is the first row).
    public static func parse(_ text: String) -> [[String]] {
        var rows: [[String]] = [], row: [String] = [], field = "", quoted = false, pendingQuote = false
        for ch in text {
            if quoted {
                if pendingQuote {
                    pendingQuote = false
                    if ch == "\"" { field.append("\""); continue }
                    quoted = false  // the closing quote; fall through to handle ch outside quotes
                } else if ch == "\"" { pendingQuote = true; continue } else { field.append(ch); continue }
            }
            switch ch {
            case "\"" where field.isEmpty: quoted = true
            case ",": row.append(field); field = ""
            case "\n", "\r\n":
                row.append(field); field = ""
                rows.append(row); row = []
            case "\r": break
            default: field.append(ch)
            }
        }
        if pendingQuote { quoted = false }
        if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
        return rows
    }
}
