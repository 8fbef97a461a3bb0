import ArgumentParser
import Experiments
import Foundation
import Training

/// `swift-train batch-report`: the issue-17 plots of docs/batch-size.md from a branching directory, adaptive and
/// fixed runs, and a learning-rate grid; prints the tables it plotted.
struct BatchReport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch-report",
        abstract: "Plot CBS vs examples, batch schedules and losses, and the best lr vs batch (docs/batch-size.md).")

    @Option(name: .long, help: ArgumentHelp("A `swift-train branch` output directory (cbs.csv); the run is its parent's parent unless --run.", valueName: "dir"))
    var branches: String?

    @Option(name: .customLong("run"), help: ArgumentHelp("The branched run's directory (metrics.jsonl with noise_scale).", valueName: "dir"))
    var runDirectory: String?

    @Option(name: .long, help: ArgumentHelp("A fitted B_crit to draw on the CBS plot.", valueName: "B"))
    var bcrit: Double?

    @Option(name: .long, help: ArgumentHelp("Runs to compare: label=dir:batch,… (batch: the base global batch).", valueName: "list"))
    var runs: String?

    @Option(name: .long, help: ArgumentHelp("A folder of lr-grid runs named <optimizer>-b<batch>-lr<lr> (summary.json each).", valueName: "dir"))
    var lrGrid: String?

    @Option(name: .long, help: ArgumentHelp("B_noise to mark on the lr plot.", valueName: "B"))
    var bnoise: Double?

    @Option(name: .long, help: ArgumentHelp("Output folder for the SVGs.", valueName: "dir"))
    var out: String

    mutating func run() throws {
        try createFolders(out, what: "plot folder")
        if let branches {
            let runPath = runDirectory ?? URL(fileURLWithPath: branches).deletingLastPathComponent().path
            let text = try String(contentsOfFile: "\(branches)/cbs.csv", encoding: .utf8)
            var rows: [CriticalBatchRow] = []
            for line in text.split(separator: "\n").dropFirst() {
                let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                guard f.count == 5, let step = Int(f[0]), let examples = Int(f[1]) else { continue }
                rows.append(CriticalBatchRow(step: step, examples: examples, cbs: Int(f[2]), referenceLoss: Double(f[3]) ?? .nan,
                                             noiseScale: Double(f[4])))
            }
            var saved = ResolvedConfig(name: "run")
            try saved.merge(yaml: try String(contentsOfFile: "\(runPath)/config.yaml", encoding: .utf8), source: "\(runPath)/config.yaml")
            try BatchPlots.criticalBatchPlot(cbs: rows, runMetrics: "\(runPath)/metrics.jsonl", runBatch: saved.int("train.global_batch"),
                                             criticalBatch: bcrit).write(to: "\(out)/cbs.svg")
            print("| step | examples | CBS | B_simple |\n|---:|---:|---:|---:|")
            for r in rows { print("| \(r.step) | \(r.examples) | \(r.cbs.map(String.init) ?? "—") | \(r.noiseScale.map { String(format: "%.0f", $0) } ?? "—") |") }
        }
        if let runs {
            let parsed = try runs.split(separator: ",").map { item -> (label: String, path: String, batch: Int) in
                // The last "=" ends the label, which may hold one itself ("adaptive (k=1)=runs/adaptive:64").
                guard let equals = item.lastIndex(of: "="), let colon = item.lastIndex(of: ":"), equals < colon,
                      let b = Int(item[item.index(after: colon)...]) else {
                    throw ConfigError("--runs '\(item)': give label=dir:batch")
                }
                let path = String(item[item.index(after: equals)..<colon])
                guard FileManager.default.fileExists(atPath: "\(path)/metrics.jsonl") else {
                    throw ConfigError("--runs '\(item)': no \(path)/metrics.jsonl (give label=dir:batch with a run directory)")
                }
                return (String(item[..<equals]), path, b)
            }
            let plots = BatchPlots.schedulePlots(runs: parsed)
            try plots.batch.write(to: "\(out)/schedule-batch.svg")
            try plots.lossSteps.write(to: "\(out)/schedule-loss-steps.svg")
            try plots.lossExamples.write(to: "\(out)/schedule-loss-examples.svg")
        }
        if let lrGrid {
            let (markdown, best) = BatchPlots.learningRateTables(try BatchPlots.learningRateGrid(lrGrid))
            print(markdown, terminator: "")
            try BatchPlots.learningRatePlot(best: best, noiseScale: bnoise).write(to: "\(out)/lr-vs-batch.svg")
        }
    }
}
