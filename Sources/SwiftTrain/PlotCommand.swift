import ArgumentParser
import Foundation
import Experiments

/// `swift-train plot`: one metric of several runs (from their metrics.jsonl) in one SVG.
struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot", abstract: "Plot a metric from runs' metrics.jsonl files into one SVG.")

    @Argument(help: "Run directories (each with metrics.jsonl); a label may be given as LABEL=DIR.")
    var runs: [String]

    @Option(help: "The metric (a key of metrics.jsonl lines), e.g. eval_loss, loss, noise_scale.")
    var metric = "eval_loss"

    @Option(help: "The x axis: step, epoch, or another key of the same lines (function_evaluations, elapsed_sec).")
    var x = "step"

    @Option(help: "Output SVG file.")
    var out: String

    @Option(help: "Plot title.")
    var title: String?

    @Flag(help: "Logarithmic y axis.")
    var logY = false

    @Flag(help: "Logarithmic x axis.")
    var logX = false

    func validate() throws {
        guard !x.isEmpty else { throw ValidationError("--x must name a metrics key, e.g. step, epoch or function_evaluations") }
    }

    func run() throws {
        do { try MetricPlot.make(runs: runs, metric: metric, x: x, title: title, logY: logY, logX: logX).write(to: out) }
        catch let error as MetricPlot.InputError { throw ValidationError(error.description) }
        print("wrote \(out)")
    }
}
