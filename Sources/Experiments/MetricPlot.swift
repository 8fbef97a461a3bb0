import Foundation
import Plots

/// One metric of several runs (from their metrics.jsonl) in one plot (`swift-train plot`).
public enum MetricPlot {
    public struct InputError: Error, CustomStringConvertible {
        public let description: String
    }

    /// `runs` are run directories, each optionally labelled as LABEL=DIR; `x` is `step`, `epoch` or any other key on
    /// the same metrics lines (e.g. `function_evaluations`, `elapsed_sec`); lines without it are skipped.
    public static func make(runs: [String], metric: String, x: String, title: String?, logY: Bool, logX: Bool = false) throws -> SVGPlot {
        var plot = SVGPlot(title: title ?? metric, xLabel: x, yLabel: metric, logX: logX, logY: logY)
        for spec in runs {
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            let (label, dir) = parts.count == 2 ? (parts[0], parts[1]) : (URL(fileURLWithPath: spec).lastPathComponent, spec)
            guard let text = try? String(contentsOfFile: "\(dir)/metrics.jsonl", encoding: .utf8) else {
                throw InputError(description: "\(dir)/metrics.jsonl cannot be read: is \(dir) a run directory?")
            }
            var points: [(x: Double, y: Double)] = []
            for line in text.split(separator: "\n") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let y = (object[metric] as? NSNumber)?.doubleValue, let step = (object["step"] as? NSNumber)?.doubleValue
                else { continue }
                switch x {
                case "step": points.append((step, y))
                case "epoch": points.append(((object["epoch"] as? NSNumber)?.doubleValue ?? step, y))
                default:
                    guard let value = (object[x] as? NSNumber)?.doubleValue else { continue }
                    points.append((value, y))
                }
            }
            guard !points.isEmpty else { throw InputError(description: "\(dir)/metrics.jsonl has no '\(metric)' values (with '\(x)' on the same line)") }
            plot.add(label, points: points)
        }
        return plot
    }
}
