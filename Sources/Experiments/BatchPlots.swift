import Foundation
import Plots
import Training

/// The plots of docs/batch-size.md's issue-17 experiments (SVG, like `swift-train report`): the CBS from branching
/// against examples with the run's B_simple on the same axes; batch schedules and losses against steps and examples;
/// the best learning rate against the batch with B_noise marked.
public enum BatchPlots {
    /// (examples, value) of every metrics.jsonl line that has `key` (and, for examples, `examples` or step × batch).
    static func series(_ path: String, key: String, batch: Int?) -> [(x: Double, y: Double)] {
        MetricsTail.lines(path: path).compactMap { line in
            guard let y = (line[key] as? NSNumber)?.doubleValue, y.isFinite, let step = (line["step"] as? NSNumber)?.doubleValue else { return nil }
            if let e = (line["examples"] as? NSNumber)?.doubleValue { return (e, y) }
            return batch.map { (step * Double($0), y) }
        }
    }

    static func stepSeries(_ path: String, key: String) -> [(x: Double, y: Double)] {
        MetricsTail.lines(path: path).compactMap { line in
            guard let y = (line[key] as? NSNumber)?.doubleValue, y.isFinite, let s = (line["step"] as? NSNumber)?.doubleValue else { return nil }
            return (s, y)
        }
    }

    /// CBS (markers) and the run's B_simple (line) against examples, log-log; `criticalBatch`: a fitted B_crit.
    public static func criticalBatchPlot(cbs: [CriticalBatchRow], runMetrics: String, runBatch: Int, criticalBatch: Double?) -> SVGPlot {
        var plot = SVGPlot(title: "Critical batch size during training", xLabel: "training examples seen",
                           yLabel: "batch size", logX: true, logY: true)
        plot.add("CBS from branching", points: cbs.compactMap { r in r.cbs.map { (Double(r.examples), Double($0)) } },
                 color: SVGPlot.palette[0], markers: true)
        plot.add("B_simple (online)", points: series(runMetrics, key: "noise_scale", batch: runBatch).filter { $0.x > 0 },
                 color: SVGPlot.palette[1])
        if let b = criticalBatch, let lo = cbs.map(\.examples).min(), let hi = cbs.map(\.examples).max() {
            plot.add("B_crit fit of the sweep", points: [(Double(lo), b), (Double(hi), b)], color: SVGPlot.palette[2], dashed: true)
        }
        plot.legend = .bottomRight
        return plot
    }

    /// Per run (label, run directory, its base batch): global batch vs steps, training loss vs steps and examples.
    public static func schedulePlots(runs: [(label: String, path: String, batch: Int)]) -> (batch: SVGPlot, lossSteps: SVGPlot, lossExamples: SVGPlot) {
        var batch = SVGPlot(title: "Global batch per step", xLabel: "optimizer steps", yLabel: "global batch", logY: true)
        var steps = SVGPlot(title: "Training loss vs steps", xLabel: "optimizer steps", yLabel: "training loss", logX: true)
        var examples = SVGPlot(title: "Training loss vs examples", xLabel: "training examples", yLabel: "training loss", logX: true)
        for (i, run) in runs.enumerated() {
            let color = SVGPlot.palette[i % SVGPlot.palette.count], metrics = "\(run.path)/metrics.jsonl"
            let b = stepSeries(metrics, key: "global_batch")
            let loss = stepSeries(metrics, key: "loss")
            batch.add(run.label, points: b.isEmpty ? loss.map { ($0.x, Double(run.batch)) } : b, color: color)
            steps.add(run.label, points: loss, color: color)
            examples.add(run.label, points: series(metrics, key: "loss", batch: run.batch), color: color)
        }
        batch.legend = .bottomRight
        return (batch, steps, examples)
    }

    /// An lr grid read back from a folder of runs named `<optimizer>-b<batch>-lr<lr>`: the final evaluation loss of
    /// each (summary.json's eval_loss; +∞ where it is not finite, i.e. diverged). A run without summary.json is
    /// unfinished (running, or killed) and left out rather than counted as diverged.
    public static func learningRateGrid(_ folder: String) throws -> [String: [Int: [(lr: Double, loss: Double)]]] {
        var table: [String: [Int: [(lr: Double, loss: Double)]]] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder).sorted() {
            let parts = name.split(separator: "-")
            guard parts.count == 3, parts[1].first == "b", let b = Int(parts[1].dropFirst()),
                  parts[2].hasPrefix("lr"), let lr = Double(parts[2].dropFirst(2)) else { continue }
            guard let summary = FileManager.default.contents(atPath: "\(folder)/\(name)/summary.json")
                .flatMap({ try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }) else { continue }
            let loss = (summary["eval_loss"] as? NSNumber)?.doubleValue ?? .nan
            table[String(parts[0]), default: [:]][b, default: []].append((lr, loss.isFinite ? loss : .infinity))
        }
        return table
    }

    /// Per optimizer (alphabetical): a markdown table of loss per batch × lr (every lr any batch tried as a column,
    /// "—" where a batch lacks it, the best per batch in bold), and the best lr per batch for `learningRatePlot`.
    public static func learningRateTables(_ table: [String: [Int: [(lr: Double, loss: Double)]]])
        -> (markdown: String, best: [(optimizer: String, points: [(batch: Int, lr: Double)])]) {
        var md = ""
        var best: [(optimizer: String, points: [(batch: Int, lr: Double)])] = []
        for (opt, byBatch) in table.sorted(by: { $0.key < $1.key }) {
            let lrs = Array(Set(byBatch.values.flatMap { $0.map(\.lr) })).sorted()
            md += "\n\(opt): final evaluation loss (summary.json eval_loss) per lr (best in bold)\n\n| B | " +
                lrs.map { "lr \($0)" }.joined(separator: " | ") + " |\n"
            md += "|---:|" + String(repeating: "---:|", count: lrs.count) + "\n"
            var points: [(batch: Int, lr: Double)] = []
            for (b, grid) in byBatch.sorted(by: { $0.key < $1.key }) {
                let winner = grid.min { $0.loss < $1.loss }!
                if winner.loss.isFinite { points.append((b, winner.lr)) }
                let cells = lrs.map { lr -> String in
                    guard let run = grid.first(where: { $0.lr == lr }) else { return "—" }
                    guard run.loss.isFinite else { return "diverged" }
                    return run.lr == winner.lr ? String(format: "**%.4f**", run.loss) : String(format: "%.4f", run.loss)
                }
                md += "| \(b) | " + cells.joined(separator: " | ") + " |\n"
            }
            best.append((opt, points))
        }
        return (md, best)
    }

    /// Best lr per batch for each optimizer (log-log), with a vertical line at B_noise.
    public static func learningRatePlot(best: [(optimizer: String, points: [(batch: Int, lr: Double)])], noiseScale: Double?) -> SVGPlot {
        var plot = SVGPlot(title: "Best learning rate vs batch size", xLabel: "global batch size B", yLabel: "best lr (grid)",
                           logX: true, logY: true)
        var lrs: [Double] = []
        for (i, o) in best.enumerated() {
            plot.add(o.optimizer, points: o.points.map { (Double($0.batch), $0.lr) }, color: SVGPlot.palette[i % SVGPlot.palette.count], markers: true)
            lrs += o.points.map(\.lr)
        }
        if let b = noiseScale, let lo = lrs.min(), let hi = lrs.max() {
            plot.add("B_noise", points: [(b, lo), (b, hi)], color: SVGPlot.palette[6], dashed: true)
        }
        plot.legend = .topLeft
        return plot
    }
}
