// `swift-train report`: a markdown report with SVG plots from one or more sweep directories (results.csv and
// points/*/metrics.jsonl): steps to target against global batch, the S_min/B_crit fit, the best learning rate per
// batch, loss curves and the gradient noise scale. docs/batch-size.md explains the quantities.

import Foundation
import Plots
import Training

/// One finished sweep point as read back: its results.csv row (the `SweepRow` the runner wrote; its fields read
/// through, e.g. `entry.globalBatch`) and where it came from.
@dynamicMemberLookup
public struct SweepEntry: Sendable {
    /// "<point>" or, with several sweep directories, "<directory name>/<point>".
    public var id: String
    public var pointDirectory: String
    /// Grid values by key.
    public var keys: [String: String]
    public var row: SweepRow

    public subscript<T>(dynamicMember path: KeyPath<SweepRow, T>) -> T { row[keyPath: path] }

    /// The learning-rate setting, for grouping seeds: "0.05" or "0.05 (matrix=0.02)".
    public var lrSetting: String { row.groupLRs.isEmpty ? fmt(row.lr) : "\(fmt(row.lr)) (\(row.groupLRs))" }
}

/// Reading sweep directories.
public enum SweepResults {
    /// Every row of `<dir>/results.csv` for each directory, in file order.
    public static func load(directories: [String]) throws -> [SweepEntry] {
        var entries: [SweepEntry] = []
        for dir in directories {
            let path = "\(dir)/results.csv"
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigError("\(path) cannot be read: give a sweep directory written by `swift-train sweep`")
            }
            let rows = CSV.parse(text)
            guard let header = rows.first, header.first == "point" else {
                throw ConfigError("\(path) has no header row starting with 'point': not a sweep results file")
            }
            let index = Dictionary(header.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
            for required in ["global_batch", "optimizer", "steps_to_target", "status"] where index[required] == nil {
                throw ConfigError("\(path) lacks the column \(required): written by an older swift-train? Rerun the sweep to rebuild it")
            }
            let fixed = Set(["point"] + SweepRow.columns)
            let keyColumns = header.filter { !fixed.contains($0) }
            let prefix = directories.count > 1 ? URL(fileURLWithPath: dir).lastPathComponent + "/" : ""
            for (n, row) in rows.dropFirst().enumerated() where row.count > 1 {
                guard row.count == header.count else {
                    throw ConfigError("\(path) line \(n + 2) has \(row.count) fields, the header \(header.count)")
                }
                func s(_ k: String) -> String { index[k].map { row[$0] } ?? "" }
                let point = s("point")
                let pointDirectory = "\(dir)/points/\(point)"
                var parsed = SweepRow(point: point, values: keyColumns.map(s), field: s)
                // Rows written before the noise scale had a column: the last value of the point's metrics.
                if parsed.noiseScale == nil { parsed.noiseScale = MetricsTail(path: "\(pointDirectory)/metrics.jsonl").noiseScale }
                entries.append(SweepEntry(id: prefix + point, pointDirectory: pointDirectory,
                                          keys: Dictionary(keyColumns.map { ($0, s($0)) }, uniquingKeysWith: { a, _ in a }),
                                          row: parsed))
            }
        }
        return entries
    }

    /// (examples seen, value) for every metrics line of a point that has `field` (e.g. "loss", "noise_scale").
    public static func curve(_ entry: SweepEntry, field: String) -> [(x: Double, y: Double)] {
        MetricsTail.lines(path: "\(entry.pointDirectory)/metrics.jsonl").compactMap { line in
            guard let step = (line["step"] as? NSNumber)?.doubleValue, let v = (line[field] as? NSNumber)?.doubleValue else { return nil }
            return (step * Double(entry.globalBatch), v)
        }
    }
}

/// S = S_min·(1 + B_crit/B) fitted to steps-to-target S against global batch B (McCandlish et al. 2018).
public struct CriticalBatchFit: Sendable {
    public var sMin: Double
    public var bCrit: Double
    /// Points fitted (distinct batch sizes).
    public var count: Int
    /// Root-mean-square of (fitted − measured)/measured.
    public var rmsRelativeError: Double

    public func steps(batch: Double) -> Double { sMin * (1 + bCrit / batch) }

    /// How residuals are weighted: `relative` minimises Σ((S_i − Ŝ_i)/S_i)² (every point counts alike on a log-log
    /// plot); `absolute` is ordinary least squares Σ(S_i − Ŝ_i)², dominated by the small batches' large step counts.
    public enum Weighting: String, CaseIterable, Sendable { case relative, absolute }

    /// Least squares in x = 1/B, where the model is linear: S = a + b·x with a = S_min, b = S_min·B_crit.
    /// Returns nil with fewer than 2 distinct batch sizes, or when the fitted a ≤ 0 or b ≤ 0 (no plateau or no
    /// 1/B dependence visible in the data: `fit(...)` callers report that instead of a meaningless number).
    public static func fit(_ points: [(batch: Double, steps: Double)], weighting: Weighting = .relative) -> CriticalBatchFit? {
        let usable = points.filter { $0.batch > 0 && $0.steps > 0 && $0.steps.isFinite }
        guard Set(usable.map(\.batch)).count >= 2 else { return nil }
        // Weighted normal equations for (a, b).
        var sw = 0.0, sx = 0.0, sxx = 0.0, sy = 0.0, sxy = 0.0
        for p in usable {
            let w = weighting == .relative ? 1 / (p.steps * p.steps) : 1
            let x = 1 / p.batch
            sw += w; sx += w * x; sxx += w * x * x; sy += w * p.steps; sxy += w * x * p.steps
        }
        let det = sw * sxx - sx * sx
        guard det > 0 else { return nil }
        let a = (sy * sxx - sx * sxy) / det
        let b = (sw * sxy - sx * sy) / det
        guard a > 0, b > 0 else { return nil }
        var fit = CriticalBatchFit(sMin: a, bCrit: b / a, count: usable.count, rmsRelativeError: 0)
        fit.rmsRelativeError = (usable.map { pow((fit.steps(batch: $0.batch) - $0.steps) / $0.steps, 2) }
            .reduce(0, +) / Double(usable.count)).squareRoot()
        return fit
    }
}

/// The markdown report and its plots.
public enum SweepReport {
    /// One cell of the analysis: an (optimizer, batch, learning-rate setting) with its seeds.
    public struct Cell: Sendable {
        public var optimizer: String
        public var batch: Int
        public var lrSetting: String
        public var lr: Double
        public var entries: [SweepEntry]
        /// Reached only if every seed reached the target.
        public var reached: Bool { entries.allSatisfy(\.reached) }
        /// Mean over seeds of steps (examples, seconds) to the target; nil unless reached.
        public var steps: Double? { reached ? mean(entries.compactMap { $0.stepsToTarget.map(Double.init) }) : nil }
        public var examples: Double? { reached ? mean(entries.compactMap { $0.examplesToTarget.map(Double.init) }) : nil }
        public var seconds: Double? { reached ? mean(entries.compactMap(\.secondsToTarget)) : nil }
    }

    /// Cells grouped by optimizer (in order of first appearance), each sorted by batch then lr.
    public static func cells(_ entries: [SweepEntry]) -> [(optimizer: String, cells: [Cell])] {
        var order: [String] = []
        var byOptimizer: [String: [Cell]] = [:]
        for e in entries {
            if byOptimizer[e.optimizer] == nil { order.append(e.optimizer); byOptimizer[e.optimizer] = [] }
            if let i = byOptimizer[e.optimizer]!.firstIndex(where: { $0.batch == e.globalBatch && $0.lrSetting == e.lrSetting }) {
                byOptimizer[e.optimizer]![i].entries.append(e)
            } else {
                byOptimizer[e.optimizer]!.append(Cell(optimizer: e.optimizer, batch: e.globalBatch, lrSetting: e.lrSetting,
                                                      lr: e.lr, entries: [e]))
            }
        }
        return order.map { o in (o, byOptimizer[o]!.sorted { ($0.batch, $0.lr) < ($1.batch, $1.lr) }) }
    }

    /// Per batch: the reached cell with the fewest steps (nil where no cell reached).
    public static func best(_ cells: [Cell]) -> [(batch: Int, cell: Cell?)] {
        let batches = Array(Set(cells.map(\.batch))).sorted()
        return batches.map { b in
            (b, cells.filter { $0.batch == b && $0.reached }.min { $0.steps! < $1.steps! })
        }
    }

    /// Writes the report to `out` and its plots next to it (<stem>-*.svg); returns the markdown.
    @discardableResult
    public static func write(directories: [String], out: String, weighting: CriticalBatchFit.Weighting = .relative) throws -> String {
        let entries = try SweepResults.load(directories: directories)
        let outURL = URL(fileURLWithPath: out)
        let folder = outURL.deletingLastPathComponent().path
        let stem = outURL.deletingPathExtension().lastPathComponent
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let markdown = try render(entries: entries, sources: directories, folder: folder, stem: stem, weighting: weighting)
        try writeAtomically(Data(markdown.utf8), to: out)
        return markdown
    }

    /// The markdown; plots are written to `folder/<stem>-*.svg` and linked relatively.
    public static func render(entries: [SweepEntry], sources: [String], folder: String, stem: String,
                              weighting: CriticalBatchFit.Weighting = .relative) throws -> String {
        let groups = cells(entries)
        let targets = Array(Set(entries.map(\.target))).sorted()
        let reachedCount = entries.filter(\.reached).count
        let diverged = entries.filter { $0.status == "diverged" }.count
        var md = "# Batch-size sweep report\n\n"
        md += "Sweep directories: \(sources.map { "`\($0)`" }.joined(separator: ", ")). "
        if !entries.isEmpty && entries.allSatisfy({ $0.target.isEmpty }) {
            md += "No target: \(entries.count) points each trained their whole budget, \(diverged) diverged.\n\n"
            md += try budgetSection(groups, folder: folder, stem: stem)
            return md + (try lossCurveSection(groups, folder: folder, stem: stem))
        }
        md += "Target: \(targets.map { "`\($0)`" }.joined(separator: ", ")). "
        md += "\(entries.count) points: \(reachedCount) reached the target, \(entries.count - reachedCount - diverged) " +
            "ran out of budget, \(diverged) diverged.\n\n"
        md += "Steps to target are counted at evaluations (every `train.eval_every` steps), so they are rounded up to the " +
            "next evaluation. With several seeds, a setting counts as reaching the target only if every seed did; its " +
            "steps are the mean over seeds. The best learning rate per batch size is the one with the fewest steps.\n\n"
        if entries.isEmpty { return md + "No finished points yet.\n" }

        // Steps to target against batch size, with perfect scaling through the smallest batch's point.
        md += "## Steps to target against global batch size\n\n"
        var stepsPlot = SVGPlot(title: "Steps to target", xLabel: "global batch size B", yLabel: "steps to target S",
                                logX: true, logY: true)
        stepsPlot.legend = .outsideRight
        var fitPlot = SVGPlot(title: "S = S_min(1 + B_crit/B) fits", xLabel: "global batch size B",
                              yLabel: "steps to target S", logX: true, logY: true)
        fitPlot.legend = .outsideRight
        var fits: [(optimizer: String, fit: CriticalBatchFit?, used: [Int], excluded: [String])] = []
        for (i, group) in groups.enumerated() {
            let color = SVGPlot.palette[i % SVGPlot.palette.count]
            let best = best(group.cells)
            let measured = best.compactMap { b in b.cell.map { (x: Double(b.batch), y: $0.steps!) } }
            stepsPlot.add(group.optimizer, points: measured, color: color, markers: true)
            if let first = measured.first {
                let batches = best.map { Double($0.batch) }
                stepsPlot.add("\(group.optimizer) perfect scaling", points: batches.map { (x: $0, y: first.y * first.x / $0) },
                              color: color, dashed: true)
            }
            let excluded = best.filter { $0.cell == nil }.map { b -> String in
                let cells = group.cells.filter { $0.batch == b.batch }
                let why = cells.allSatisfy { $0.entries.allSatisfy { $0.status == "diverged" } } ? "diverged" : "not reached"
                return "B = \(b.batch) (\(why))"
            }
            let fit = CriticalBatchFit.fit(measured.map { (batch: $0.x, steps: $0.y) }, weighting: weighting)
            fits.append((group.optimizer, fit, best.compactMap { $0.cell == nil ? nil : $0.batch }, excluded))
            fitPlot.add(group.optimizer, points: measured, color: color, markers: true)
            if let fit, let lo = measured.first?.x, let hi = measured.last?.x {
                let xs = (0...40).map { lo * pow(hi / lo, Double($0) / 40) }
                fitPlot.add("\(group.optimizer) fit", points: xs.map { (x: $0, y: fit.steps(batch: $0)) }, color: color, dashed: true)
            }
        }
        try stepsPlot.write(to: "\(folder)/\(stem)-steps.svg")
        try fitPlot.write(to: "\(folder)/\(stem)-fit.svg")
        md += "![steps to target](\(stem)-steps.svg)\n\n"
        md += "Solid: best learning rate per batch size; dashed: perfect scaling S ∝ 1/B through the smallest batch's point.\n\n"
        md += "| optimizer | global batch | best lr | steps to target | examples to target | seconds to target | perfect-scaling steps |\n"
        md += "|---|---:|---|---:|---:|---:|---:|\n"
        for group in groups {
            let best = best(group.cells)
            let first = best.first { $0.cell != nil }
            for b in best {
                guard let cell = b.cell else {
                    md += "| \(group.optimizer) | \(b.batch) | — | \(unreachedText(group.cells.filter { $0.batch == b.batch })) | | | |\n"
                    continue
                }
                let ideal = first.map { Double($0.cell!.steps!) * Double($0.batch) / Double(b.batch) }
                md += "| \(group.optimizer) | \(b.batch) | \(cell.lrSetting) | \(fmt(cell.steps!)) | \(fmt(cell.examples!)) | " +
                    "\(cell.seconds.map { String(format: "%.1f", $0) } ?? "") | \(ideal.map(fmt) ?? "") |\n"
            }
        }

        // The critical-batch fit.
        md += "\n## Critical batch size: S = S_min·(1 + B_crit/B)\n\n"
        md += "Fitted per optimizer by least squares in x = 1/B (S = S_min + S_min·B_crit·x) to the best setting of each " +
            "batch size that reached the target, " +
            (weighting == .relative ? "weighting each point by 1/S² (relative residuals).\n\n"
                                    : "unweighted (absolute residuals).\n\n")
        md += "![fits](\(stem)-fit.svg)\n\n"
        md += "| optimizer | S_min (steps) | B_crit | E_min = S_min·B_crit (examples) | points fitted | rms relative error | excluded |\n"
        md += "|---|---:|---:|---:|---:|---:|---|\n"
        for f in fits {
            let excluded = f.excluded.isEmpty ? "none" : f.excluded.joined(separator: ", ")
            if let fit = f.fit {
                md += "| \(f.optimizer) | \(fmt(fit.sMin)) | \(fmt(fit.bCrit)) | \(fmt(fit.sMin * fit.bCrit)) | \(fit.count) " +
                    "(B = \(f.used.map(String.init).joined(separator: ", "))) | \(String(format: "%.3f", fit.rmsRelativeError)) | \(excluded) |\n"
            } else {
                let why = f.used.count < 2 ? "fewer than 2 batch sizes reached the target"
                    : "no fit with S_min > 0 and B_crit > 0 (no plateau or no 1/B regime in these points)"
                md += "| \(f.optimizer) | — | — | — | \(f.used.count) | — | \(excluded); \(why) |\n"
            }
        }

        // Learning rates per batch size, when the grid has several.
        if groups.contains(where: { g in Dictionary(grouping: g.cells, by: \.batch).values.contains { $0.count > 1 } }) {
            md += "\n## Learning rate per batch size\n\n"
            md += "Steps to target for each learning rate tried (lowest lr first); **bold** is the best.\n"
            for group in groups {
                md += "\n### \(group.optimizer)\n\n| global batch | learning rates: steps to target |\n|---:|---|\n"
                for (batch, cells) in Dictionary(grouping: group.cells, by: \.batch).sorted(by: { $0.key < $1.key }) {
                    let best = cells.filter(\.reached).min { $0.steps! < $1.steps! }
                    let items = cells.sorted { $0.lr < $1.lr }.map { c -> String in
                        let value = c.steps.map(fmt) ?? (c.entries.contains { $0.status == "diverged" } ? "diverged" : "not reached")
                        let text = "\(c.lrSetting): \(value)"
                        return c.lrSetting == best?.lrSetting ? "**\(text)**" : text
                    }
                    md += "| \(batch) | \(items.joined(separator: " · ")) |\n"
                }
            }
        }

        md += try lossCurveSection(groups, folder: folder, stem: stem)

        // Gradient noise scale, when the runs measured it.
        md += "\n## Gradient noise scale\n\n"
        var anyNoise = false
        for group in groups {
            var plot = SVGPlot(title: "Noise scale B_simple · \(group.optimizer)", xLabel: "training examples",
                               yLabel: "B_simple", logX: true, logY: true)
            plot.legend = .outsideRight
            for (batch, entry) in representatives(group.cells) {
                let curve = SweepResults.curve(entry, field: "noise_scale")
                if !curve.isEmpty { plot.add("B=\(batch) lr \(entry.lrSetting)", points: curve) }
            }
            guard !plot.series.isEmpty else { continue }
            anyNoise = true
            let file = "\(stem)-noise-\(fileSafe(group.optimizer)).svg"
            try plot.write(to: "\(folder)/\(file)")
            md += "![noise scale \(group.optimizer)](\(file))\n"
        }
        if anyNoise {
            md += "\nLast measured B_simple per point is in the table below; compare it with the fitted B_crit.\n"
        } else {
            md += "No `noise_scale` values in the points' metrics.jsonl: the noise scale was not measured in these runs.\n"
        }

        // Unreached points, explicitly.
        let unreached = entries.filter { !$0.reached }
        md += "\n## Points that did not reach the target\n\n"
        if unreached.isEmpty {
            md += "None: every point reached the target.\n"
        } else {
            md += "| point | optimizer | global batch | lr | outcome | steps run | final eval accuracy | final train loss |\n"
            md += "|---|---|---:|---|---|---:|---:|---:|\n"
            for e in unreached {
                md += "| \(e.id) | \(e.optimizer) | \(e.globalBatch) | \(e.lrSetting) | " +
                    "\(e.status == "diverged" ? "diverged" : "budget ran out") | \(e.steps) | \(fmt4(e.evalAccuracy)) | \(fmt4(e.finalTrainLoss)) |\n"
            }
        }

        md += "\n## All points\n\n"
        md += "| point | optimizer | global batch | lr | seed | steps to target | examples to target | seconds | steps run | final eval accuracy | final train loss | noise scale |\n"
        md += "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        for e in entries {
            md += "| \(e.id) | \(e.optimizer) | \(e.globalBatch) | \(e.lrSetting) | \(e.seed) | " +
                "\(e.stepsToTarget.map(String.init) ?? (e.status == "diverged" ? "diverged" : "not reached")) | " +
                "\(e.examplesToTarget.map(String.init) ?? "") | \(e.secondsToTarget.map { String(format: "%.1f", $0) } ?? "") | " +
                "\(e.steps) | \(fmt4(e.evalAccuracy)) | \(fmt4(e.finalTrainLoss)) | \(e.noiseScale.map(fmt) ?? "") |\n"
        }
        return md
    }

    /// Loss curves, one plot per optimizer: the best (or, if none reached, lowest-loss) setting per batch.
    static func lossCurveSection(_ groups: [(optimizer: String, cells: [Cell])], folder: String, stem: String) throws -> String {
        var md = "\n## Training loss against examples\n\n"
        md += "One curve per batch size: its best learning rate (or, where none reached the target, the setting with the " +
            "lowest final training loss), first seed.\n\n"
        for group in groups {
            var plot = SVGPlot(title: "Training loss · \(group.optimizer)", xLabel: "training examples",
                               yLabel: "training loss", logX: true, logY: true)
            plot.legend = .outsideRight
            for (batch, entry) in representatives(group.cells) {
                plot.add("B=\(batch) lr \(entry.lrSetting)", points: SweepResults.curve(entry, field: "loss"))
            }
            let file = "\(stem)-loss-\(fileSafe(group.optimizer)).svg"
            try plot.write(to: "\(folder)/\(file)")
            md += "![loss \(group.optimizer)](\(file))\n"
        }
        return md
    }

    /// A sweep without a target (every point trains its whole budget): final test accuracy against the batch, the
    /// best learning rate per batch by that accuracy — the fixed-epoch view of large-batch training (You et al. 2017).
    static func budgetSection(_ groups: [(optimizer: String, cells: [Cell])], folder: String, stem: String) throws -> String {
        var md = "## Final test accuracy against global batch size\n\n"
        md += "No target: every point trained its whole budget. Per batch size, the learning rate with the highest final " +
            "test accuracy (mean over seeds); a diverged point counts as accuracy 0.\n\n"
        var plot = SVGPlot(title: "Final test accuracy after the budget", xLabel: "global batch size B",
                           yLabel: "test accuracy", logX: true, logY: false)
        plot.legend = .outsideRight
        md += "![final accuracy](\(stem)-accuracy.svg)\n\n"
        md += "| optimizer | global batch | best lr | final test accuracy | final test loss | final training loss | steps |\n"
        md += "|---|---:|---|---:|---:|---:|---:|\n"
        for (i, group) in groups.enumerated() {
            func accuracy(_ c: Cell) -> Double { mean(c.entries.map { $0.status == "diverged" ? 0 : $0.evalAccuracy }) }
            var points: [(x: Double, y: Double)] = []
            for batch in Array(Set(group.cells.map(\.batch))).sorted() {
                guard let best = group.cells.filter({ $0.batch == batch }).max(by: { accuracy($0) < accuracy($1) }) else { continue }
                points.append((Double(batch), accuracy(best)))
                let e = best.entries
                md += "| \(group.optimizer) | \(batch) | \(best.lrSetting) | \(fmt4(accuracy(best))) | " +
                    "\(fmt4(mean(e.map(\.evalLoss)))) | \(fmt4(mean(e.map(\.finalTrainLoss)))) | \(e[0].steps) |\n"
            }
            plot.add(group.optimizer, points: points, color: SVGPlot.palette[i % SVGPlot.palette.count], markers: true)
        }
        try plot.write(to: "\(folder)/\(stem)-accuracy.svg")
        return md + "\n"
    }

    /// Per batch, one entry to draw: the best reached cell's first seed, else the lowest final training loss.
    static func representatives(_ cells: [Cell]) -> [(batch: Int, entry: SweepEntry)] {
        best(cells).compactMap { b in
            if let cell = b.cell { return (b.batch, cell.entries[0]) }
            let candidates = cells.filter { $0.batch == b.batch }.flatMap(\.entries)
            let finite = candidates.filter { $0.finalTrainLoss.isFinite }
            guard let pick = finite.min(by: { $0.finalTrainLoss < $1.finalTrainLoss }) ?? candidates.first else { return nil }
            return (b.batch, pick)
        }
    }

    static func unreachedText(_ cells: [Cell]) -> String {
        let all = cells.flatMap(\.entries)
        if all.allSatisfy({ $0.status == "diverged" }) { return "diverged (every lr)" }
        let budget = all.map(\.steps).max() ?? 0
        return "not reached (budget \(budget) steps, \(cells.count) lr\(cells.count == 1 ? "" : "s"))"
    }

    static func fileSafe(_ s: String) -> String {
        String(s.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") ? $0 : "-" })
    }
}

private func mean(_ values: [Double]) -> Double { values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count) }

/// Up to 4 significant digits, integers without a decimal point.
private func fmt(_ v: Double) -> String {
    guard v.isFinite else { return "—" }
    if v == v.rounded() && abs(v) < 1e9 { return String(Int(v)) }
    return String(format: "%.4g", v)
}

private func fmt4(_ v: Double) -> String { v.isFinite ? String(format: "%.4f", v) : "—" }
