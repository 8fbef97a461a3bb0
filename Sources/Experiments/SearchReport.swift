import Foundation
import Plots
import Training

// MARK: - Search report

/// `swift-train report <search dir>`: report.md with best-so-far against trials and against examples trained, the
/// ASHA rung diagram (each trial's value at each rung it reached; promoted trials continue to the right) and a
/// per-parameter importance — the spread of the objective's mean over the quartiles of each parameter's values among
/// the finished trials (a rough, assumption-free stand-in for fANOVA: a parameter whose quartiles give the same mean
/// objective did not matter within the space searched).
public enum SearchReport {
    public static func isSearch(_ directory: String) -> Bool {
        FileManager.default.fileExists(atPath: "\(directory)/search.yaml") && FileManager.default.fileExists(atPath: "\(directory)/results.json")
    }

    struct Trial {
        var trial: Int, value: Double, status: String, examples: Int, rungValues: [Double], params: [String: Any]
    }

    public static func write(directory: String, out: String) throws {
        guard let data = FileManager.default.contents(atPath: "\(directory)/results.json"),
              let o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let rawTrials = o["trials"] as? [[String: Any]], let spaceList = o["space"] as? [[String: String]] else {
            throw ConfigError("\(directory)/results.json cannot be read: is \(directory) a search directory (swift-train search --out)?")
        }
        let maximize = (o["direction"] as? String) == "maximize"
        let metric = o["metric"] as? String ?? "value"
        let rungs = (o["rungs"] as? [NSNumber])?.map(\.doubleValue) ?? []
        func num(_ v: Any?) -> Double { (v as? NSNumber)?.doubleValue ?? .nan }
        let trials = rawTrials.map { t in
            Trial(trial: (t["trial"] as? NSNumber)?.intValue ?? 0, value: num(t["value"]), status: t["status"] as? String ?? "",
                  examples: (t["examples"] as? NSNumber)?.intValue ?? 0, rungValues: (t["rung_values"] as? [Any])?.map(num) ?? [],
                  params: t["params"] as? [String: Any] ?? [:])
        }.sorted { $0.trial < $1.trial }
        guard !trials.isEmpty else { throw ConfigError("\(directory)/results.json has no trials yet") }
        let stem = (out as NSString).deletingPathExtension
        let folder = (out as NSString).deletingLastPathComponent
        let base = (stem as NSString).lastPathComponent
        func better(_ a: Double, _ b: Double) -> Bool { a.isNaN ? false : b.isNaN ? true : (maximize ? a > b : a < b) }

        // Phase 1: best so far, against trials and against examples trained.
        var best = Double.nan, examples = 0
        var byTrial: [(x: Double, y: Double)] = [], byExamples: [(x: Double, y: Double)] = []
        for t in trials {
            if t.status == "complete" && better(t.value, best) { best = t.value }
            examples += t.examples
            if best.isFinite {
                byTrial.append((Double(t.trial + 1), best))
                byExamples.append((Double(examples), best))
            }
        }
        var p1 = SVGPlot(title: "best \(metric) so far (finished trials)", xLabel: "trials", yLabel: metric)
        p1.add("best so far", points: byTrial, markers: true)
        try p1.write(to: "\(stem)-best-trials.svg")
        var p2 = SVGPlot(title: "best \(metric) so far", xLabel: "training examples (all trials, pruned included)", yLabel: metric)
        p2.add("best so far", points: byExamples, markers: true)
        try p2.write(to: "\(stem)-best-examples.svg")

        // Phase 2: rung diagram — x = rung resource (the budget last), one line per trial through its rung values.
        var p3 = SVGPlot(title: "successive halving: value at each rung (lines continue where a trial was promoted)",
                         xLabel: "resource (rungs, then the full budget)", yLabel: metric)
        p3.legend = .none
        for t in trials {
            var points: [(x: Double, y: Double)] = []
            for (i, v) in t.rungValues.enumerated() where v.isFinite { points.append((Double(i + 1), v)) }
            if t.status == "complete", t.value.isFinite { points.append((Double(rungs.count + 1), t.value)) }
            guard !points.isEmpty else { continue }
            p3.add("trial \(t.trial)", points: points, color: t.status == "complete" ? SVGPlot.palette[0] : SVGPlot.palette[1], markers: true)
        }
        try p3.write(to: "\(stem)-rungs.svg")

        // Phase 3: importance by quartiles among complete trials.
        let complete = trials.filter { $0.status == "complete" && $0.value.isFinite }
        var importance: [(name: String, spread: Double, means: [Double])] = []
        for p in spaceList {
            guard let name = p["name"] else { continue }
            let pairs = complete.compactMap { t -> (String, Double)? in t.params[name].map { ("\($0)", t.value) } }
            guard pairs.count >= 4 else { continue }
            let numeric = pairs.allSatisfy { Double($0.0) != nil }
            let sorted = numeric ? pairs.sorted { Double($0.0)! < Double($1.0)! } : pairs.sorted { $0.0 < $1.0 }
            var means: [Double] = []
            if numeric {
                for q in 0..<4 {
                    let part = sorted[(q * sorted.count / 4)..<((q + 1) * sorted.count / 4)]
                    if !part.isEmpty { means.append(part.map(\.1).reduce(0, +) / Double(part.count)) }
                }
            } else {
                for choice in Set(sorted.map(\.0)).sorted() {
                    let part = sorted.filter { $0.0 == choice }
                    means.append(part.map(\.1).reduce(0, +) / Double(part.count))
                }
            }
            importance.append((name, (means.max() ?? 0) - (means.min() ?? 0), means))
        }
        importance.sort { $0.spread > $1.spread }
        var p4 = SVGPlot(title: "importance: spread of the mean \(metric) over each parameter's quartiles", xLabel: "parameter (rank)", yLabel: "spread")
        p4.legend = .outsideRight
        p4.xRange = 0.5...(Double(max(importance.count, 1)) + 0.5)
        p4.yRange = 0...max(importance.first?.spread ?? 1, 1e-9) * 1.1
        for (i, imp) in importance.enumerated() {
            p4.add(imp.name, points: [(Double(i + 1), 0), (Double(i + 1), imp.spread)], color: SVGPlot.palette[i % SVGPlot.palette.count])
        }
        try p4.write(to: "\(stem)-importance.svg")

        // Phase 4: the markdown.
        let bestTrial = complete.max { better($1.value, $0.value) }
        var md = "# Search report: \(o["name"] as? String ?? directory)\n\n"
        md += "\(trials.count) trials (\(complete.count) complete, \(trials.filter { $0.status == "pruned" }.count) pruned, " +
            "\(trials.filter { $0.status == "diverged" }.count) diverged) · sampler \(o["sampler"] as? String ?? "?") · " +
            "\(examples) training examples in all · rungs \(rungs) (η = \(o["reduction_factor"] ?? 0))\n\n"
        if let b = bestTrial {
            md += "Best: trial \(b.trial), \(metric) \(b.value) · " + b.params.keys.sorted().map { "\($0) = \(b.params[$0]!)" }.joined(separator: ", ") + "\n\n"
        }
        md += "![best so far against trials](\(base)-best-trials.svg)\n\n![best so far against examples](\(base)-best-examples.svg)\n\n"
        md += "![rung diagram](\(base)-rungs.svg)\n\nBlue: trials that completed the budget; orange: pruned at their last rung.\n\n"
        md += "## Parameter importance\n\nMean \(metric) of the complete trials in each quartile of the parameter's values (low to high; " +
            "categories in name order), and the spread (max − min):\n\n| parameter | spread | means by quartile |\n| --- | --- | --- |\n"
        for imp in importance {
            md += "| \(imp.name) | \(String(format: "%.4f", imp.spread)) | \(imp.means.map { String(format: "%.4f", $0) }.joined(separator: " · ")) |\n"
        }
        md += "\n![importance](\(base)-importance.svg)\n"
        try createFolders(folder.isEmpty ? "." : folder)
        try writeAtomically(Data(md.utf8), to: out)
    }
}
