import Foundation
import Experiments
import Training
import XCTest

/// The report: the S_min/B_crit fit, unreached points listed, plots written with their series.
final class ReportTests: XCTestCase {
    func testFitRecoversKnownParametersFromExactPoints() throws {
        let sMin = 120.0, bCrit = 900.0
        let points = [64.0, 128, 256, 512, 1024, 4096, 16384].map { (batch: $0, steps: sMin * (1 + bCrit / $0)) }
        for weighting in CriticalBatchFit.Weighting.allCases {
            let fit = try XCTUnwrap(CriticalBatchFit.fit(points, weighting: weighting))
            XCTAssertEqual(fit.sMin, sMin, accuracy: 1e-6 * sMin, "\(weighting)")
            XCTAssertEqual(fit.bCrit, bCrit, accuracy: 1e-6 * bCrit, "\(weighting)")
            XCTAssertEqual(fit.count, points.count)
            XCTAssertLessThan(fit.rmsRelativeError, 1e-9)
        }
        // Perfect scaling with no plateau (S ∝ 1/B) has no positive S_min; one batch size cannot be fitted.
        XCTAssertNil(CriticalBatchFit.fit([64.0, 128, 256].map { (batch: $0, steps: 64_000 / $0 - 10) }))
        XCTAssertNil(CriticalBatchFit.fit([(batch: 64, steps: 100), (batch: 64, steps: 110)]))
    }

    func testFitWithNoiseIsClose() throws {
        // ±3 % multiplicative perturbations, alternating: the relative fit stays within ~10 %.
        let points = [64.0, 128, 256, 512, 1024, 2048].enumerated().map { i, b in
            (batch: b, steps: 50 * (1 + 500 / b) * (i % 2 == 0 ? 1.03 : 0.97))
        }
        let fit = try XCTUnwrap(CriticalBatchFit.fit(points))
        XCTAssertEqual(fit.sMin, 50, accuracy: 5)
        XCTAssertEqual(fit.bCrit, 500, accuracy: 50)
    }

    /// A sweep directory as `swift-train sweep` writes it: results.csv and metrics.jsonl per point.
    func makeSweep(_ dir: String) throws {
        let fm = FileManager.default
        var lines = [SweepRow.header(keys: ["variant", "train.global_batch"])]
        // sgd reaches at 64, 256, 1024 (S = 100·(1 + 256/B) exactly), not at 4096; adamw at 64, diverges at 256.
        let sgd: [(Int, Int?)] = [(64, 500), (256, 200), (1024, 125), (4096, nil)]
        for (b, steps) in sgd {
            lines.append(row(point: "sgd_b\(b)", variant: "sgd", batch: b, steps: steps, status: steps == nil ? "budget" : "reached"))
        }
        lines.append(row(point: "adamw_b64", variant: "adamw", batch: 64, steps: 300, status: "reached"))
        lines.append(row(point: "adamw_b256", variant: "adamw", batch: 256, steps: nil, status: "diverged"))
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try (lines.map(CSV.line).joined(separator: "\n") + "\n").write(toFile: "\(dir)/results.csv", atomically: true, encoding: .utf8)
        for l in lines.dropFirst() {
            let point = l[0], batch = Int(l[3])!
            try fm.createDirectory(atPath: "\(dir)/points/\(point)", withIntermediateDirectories: true)
            let metrics = (1...5).map { i in
                "{\"step\":\(i * 10),\"loss\":\(2.0 / Double(i)),\"noise_scale\":\(Double(batch) * Double(i))}"
            }
            try (metrics.joined(separator: "\n") + "\n").write(toFile: "\(dir)/points/\(point)/metrics.jsonl", atomically: true, encoding: .utf8)
        }
    }

    func row(point: String, variant: String, batch: Int, steps: Int?, status: String) -> [String] {
        let fields: [String: String] = [
            "global_batch": "\(batch)", "optimizer": variant, "lr": "0.1", "group_lrs": "", "seed": "0", "grad_accum": "1",
            "target": "eval_accuracy>=0.85", "reached": steps == nil ? "false" : "true",
            "steps_to_target": steps.map(String.init) ?? "", "examples_to_target": steps.map { String($0 * batch) } ?? "",
            "seconds_to_target": steps.map { String(Double($0) / 10) } ?? "", "steps": String(steps ?? 50),
            "final_eval_accuracy": steps == nil ? "0.8" : "0.86", "final_eval_loss": "0.4", "final_train_loss": "0.35",
            "noise_scale": "", "status": status, "world_size": "1"]
        return [point, variant, "\(batch)"] + SweepRow.columns.map { fields[$0]! }
    }

    func testReportListsUnreachedPointsFitsAndWritesPlots() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeSweep(dir)
        let md = try SweepReport.write(directories: [dir], out: "\(dir)/report.md")
        XCTAssertEqual(try String(contentsOfFile: "\(dir)/report.md", encoding: .utf8), md)

        // Unreached points are listed with their outcome, not dropped.
        let unreached = try XCTUnwrap(md.range(of: "## Points that did not reach the target"))
        let section = md[unreached.upperBound...]
        XCTAssertTrue(section.contains("| sgd_b4096 | sgd | 4096 | 0.1 | budget ran out | 50 |"), md)
        XCTAssertTrue(section.contains("| adamw_b256 | adamw | 256 | 0.1 | diverged |"), md)
        XCTAssertTrue(md.contains("6 points: 3 reached the target") == false)
        XCTAssertTrue(md.contains("6 points: 4 reached the target, 1 ran out of budget, 1 diverged"), md)
        XCTAssertTrue(md.contains("| sgd | 4096 | — | not reached (budget 50 steps, 1 lr) |"), md)

        // The sgd fit uses 3 points and recovers S_min = 100, B_crit = 256; adamw has one point: no fit.
        XCTAssertTrue(md.contains("| sgd | 100 | 256 | 25600 | 3 (B = 64, 256, 1024) |"), md)
        XCTAssertTrue(md.contains("B = 4096 (not reached)"), md)
        XCTAssertTrue(md.contains("B = 256 (diverged); fewer than 2 batch sizes reached the target"), md)
        // Perfect scaling from B = 64 (500 steps): 125 at 256.
        XCTAssertTrue(md.contains("| sgd | 256 | 0.1 | 200 | 51200 | 20.0 | 125 |"), md)

        // Plots exist and name their series.
        let steps = try String(contentsOfFile: "\(dir)/report-steps.svg", encoding: .utf8)
        XCTAssertTrue(steps.contains(">sgd<") && steps.contains(">adamw<") && steps.contains("sgd perfect scaling"))
        let fit = try String(contentsOfFile: "\(dir)/report-fit.svg", encoding: .utf8)
        XCTAssertTrue(fit.contains("sgd fit") && !fit.contains("adamw fit"))
        let loss = try String(contentsOfFile: "\(dir)/report-loss-sgd.svg", encoding: .utf8)
        XCTAssertTrue(loss.contains("B=64 lr 0.1") && loss.contains("B=4096 lr 0.1") && loss.contains("<polyline"))
        let noise = try String(contentsOfFile: "\(dir)/report-noise-adamw.svg", encoding: .utf8)
        XCTAssertTrue(noise.contains("B=64 lr 0.1") && noise.contains("B=256 lr 0.1"))
        for file in ["report-steps.svg", "report-fit.svg", "report-loss-sgd.svg", "report-loss-adamw.svg", "report-noise-sgd.svg"] {
            XCTAssertTrue(md.contains("(\(file))"), file)
        }
        // The noise scale column is filled from metrics.jsonl when results.csv has none.
        XCTAssertTrue(md.contains("| 0.3500 | 320 |"), md)
    }

    func testBestLearningRateTableAndSeeds() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("report-lr-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var lines = [SweepRow.header(keys: ["train.global_batch", "lr_factor", "train.seed"])]
        func add(_ b: Int, _ lr: String, _ seed: Int, _ steps: Int?) {
            var r = row(point: "b\(b)_lr\(lr)_s\(seed)", variant: "sgd", batch: b, steps: steps, status: steps == nil ? "budget" : "reached")
            r.insert("\(seed)", at: 3)
            r[4 + SweepRow.columns.firstIndex(of: "lr")!] = lr
            r[4 + SweepRow.columns.firstIndex(of: "seed")!] = "\(seed)"
            lines.append(r)
        }
        add(64, "0.05", 0, 400); add(64, "0.05", 1, 420)   // mean 410
        add(64, "0.1", 0, 300); add(64, "0.1", 1, nil)     // one seed failed: the setting does not count
        add(256, "0.1", 0, 150); add(256, "0.1", 1, 170)   // mean 160
        add(256, "0.2", 0, 120); add(256, "0.2", 1, 140)   // mean 130: best
        try (lines.map(CSV.line).joined(separator: "\n") + "\n").write(toFile: "\(dir)/results.csv", atomically: true, encoding: .utf8)
        let md = try SweepReport.write(directories: [dir], out: "\(dir)/r.md")
        XCTAssertTrue(md.contains("| 64 | **0.05: 410** · 0.1: not reached |"), md)
        XCTAssertTrue(md.contains("| 256 | 0.1: 160 · **0.2: 130** |"), md)
        XCTAssertTrue(md.contains("| sgd | 64 | 0.05 | 410 |"), md)
        XCTAssertTrue(md.contains("No `noise_scale` values"), md)
    }
    /// A sweep without a target: the best lr per batch by final test accuracy (a diverged point counts as 0), the
    /// accuracy plot, no steps-to-target sections.
    func testFixedBudgetSweepReportsFinalAccuracy() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("report-budget-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var lines = [SweepRow.header(keys: ["variant", "train.global_batch", "lr_factor"])]
        func add(_ variant: String, _ b: Int, _ lr: String, accuracy: String, status: String = "budget") {
            var r = row(point: "\(variant)_b\(b)_lr\(lr)", variant: variant, batch: b, steps: nil, status: status)
            r.insert(lr, at: 3)
            for (column, value) in [("lr", lr), ("target", ""), ("final_eval_accuracy", accuracy)] {
                r[4 + SweepRow.columns.firstIndex(of: column)!] = value
            }
            lines.append(r)
        }
        add("sgd", 512, "0.1", accuracy: "0.83"); add("sgd", 512, "0.2", accuracy: "0.85")
        add("sgd", 8192, "0.1", accuracy: "0.62"); add("sgd", 8192, "0.2", accuracy: "0.9", status: "diverged")
        add("lars", 512, "1", accuracy: "0.84"); add("lars", 8192, "1", accuracy: "0.78")
        try (lines.map(CSV.line).joined(separator: "\n") + "\n").write(toFile: "\(dir)/results.csv", atomically: true, encoding: .utf8)
        let md = try SweepReport.write(directories: [dir], out: "\(dir)/r.md")
        XCTAssertTrue(md.contains("No target: 6 points each trained their whole budget, 1 diverged."), md)
        XCTAssertTrue(md.contains("| sgd | 512 | 0.2 | 0.8500 |"), md)
        XCTAssertTrue(md.contains("| sgd | 8192 | 0.1 | 0.6200 |"), md)      // the diverged 0.2 does not win
        XCTAssertTrue(md.contains("| lars | 8192 | 1 | 0.7800 |"), md)
        XCTAssertFalse(md.contains("Steps to target"), md)
        let plot = try String(contentsOfFile: "\(dir)/r-accuracy.svg", encoding: .utf8)
        XCTAssertTrue(plot.contains(">sgd<") && plot.contains(">lars<") && plot.contains("<polyline"), plot)
    }
}
