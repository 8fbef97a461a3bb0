import ArgumentParser
import Foundation
import Training

/// `swift-train plot`: one metric of several runs (from their metrics.jsonl) in one SVG.
struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot", abstract: "Plot a metric from runs' metrics.jsonl files into one SVG.")

    @Argument(help: "Run directories (each with metrics.jsonl); a label may be given as LABEL=DIR.")
    var runs: [String]

    @Option(help: "The metric (a key of metrics.jsonl lines), e.g. eval_loss, loss, noise_scale.")
    var metric = "eval_loss"

    @Option(help: "The x axis: step or epoch.")
    var x = "step"

    @Option(help: "Output SVG file.")
    var out: String

    @Option(help: "Plot title.")
    var title: String?

    @Flag(help: "Logarithmic y axis.")
    var logY = false

    func validate() throws {
        guard ["step", "epoch"].contains(x) else { throw ValidationError("--x must be step or epoch, not \(x)") }
    }

    func run() throws {
        var plot = SVGPlot(title: title ?? metric, xLabel: x, yLabel: metric, logY: logY)
        for spec in runs {
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            let (label, dir) = parts.count == 2 ? (parts[0], parts[1]) : (URL(fileURLWithPath: spec).lastPathComponent, spec)
            guard let text = try? String(contentsOfFile: "\(dir)/metrics.jsonl", encoding: .utf8) else {
                throw ValidationError("\(dir)/metrics.jsonl cannot be read: is \(dir) a run directory?")
            }
            var points: [(x: Double, y: Double)] = []
            for line in text.split(separator: "\n") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let y = (object[metric] as? NSNumber)?.doubleValue, let step = (object["step"] as? NSNumber)?.doubleValue
                else { continue }
                points.append((x == "epoch" ? (object["epoch"] as? NSNumber)?.doubleValue ?? step : step, y))
            }
            guard !points.isEmpty else { throw ValidationError("\(dir)/metrics.jsonl has no '\(metric)' values") }
            plot.add(label, points: points)
        }
        try plot.write(to: out)
        print("wrote \(out)")
    }
}
