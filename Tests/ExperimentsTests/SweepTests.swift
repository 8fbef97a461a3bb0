import Datasets
import Foundation
import Models
import SwiftMPI
import Experiments
import Training
import XCTest

/// Sweep files, grid expansion, derived per-point settings, validation, resume, and a tiny sweep on 2 simulated ranks.
final class SweepTests: XCTestCase {
    /// 512 training and 128 test rows labelled by the same random linear teacher.
    static let (train, test): (ImageDataset, ImageDataset) = {
        let all = ImageDataset.synthetic(count: 640, featureCount: 8, classes: 3, seed: 3)
        func rows(_ r: Range<Int>) -> ImageDataset {
            ImageDataset(features: Array(all.features[(r.lowerBound * 8)..<(r.upperBound * 8)]), labels: Array(all.labels[r]),
                         featureCount: 8, classes: 3)
        }
        return (rows(0..<512), rows(512..<640))
    }()

    /// Synthetic data, the configured MLP: what CachedTaskFactory does for Fashion-MNIST.
    static let factory: SweepTaskFactory = { config in
        guard config.globalBatch <= train.count else {
            throw ConfigError("train.global_batch = \(config.globalBatch) exceeds the \(train.count) training examples")
        }
        return ImageClassificationTask(train: train, test: test, hidden: config.hidden, activation: config.activation,
                                       globalBatch: config.globalBatch, microBatch: config.microBatch, seed: config.seed)
    }

    static let base = """
    base:
      model: {hidden: [8]}
      train: {global_batch: 64, epochs: 1, log_every: 4}
      optimizer: {name: sgd, lr: 0.1, momentum: 0.9, nesterov: true}
      schedule: {kind: wsd, decay_fraction: 0.0, warmup_steps: 0}

    """

    func plan(_ yaml: String, world: Int = 2) throws -> SweepPlan {
        try SweepPlan(spec: SweepSpec(yaml: yaml, source: "test.yaml"), worldSize: world, taskFactory: Self.factory)
    }

    func testGridExpandsInFileOrderFirstAxisSlowest() throws {
        let p = try plan(Self.base + """
        variants:
          sgd: {optimizer.name: sgd}
          adam: {optimizer: {name: adamw, lr: 0.001}}
        grid:
          train.global_batch: [64, 128]
          variant: [adam, sgd]
          train.seed: [0, 1]
        """)
        XCTAssertEqual(p.spec.axes.map(\.key), ["train.global_batch", "variant", "train.seed"])
        XCTAssertEqual(p.points.map(\.name), [
            "b64_adam_seed0", "b64_adam_seed1", "b64_sgd_seed0", "b64_sgd_seed1",
            "b128_adam_seed0", "b128_adam_seed1", "b128_sgd_seed0", "b128_sgd_seed1"])
        XCTAssertEqual(p.points.map(\.index), Array(0..<8))
        XCTAssertEqual(p.points[0].config.optimizerName, "adamw")
        XCTAssertEqual(p.points[0].config.lr, 0.001)
        XCTAssertEqual(p.points[3].config.seed, 1)
        XCTAssertEqual(p.points[3].optimizerLabel, "sgd")
        XCTAssertEqual(p.points[5].values.map(\.value), ["128", "adam", "1"])
        // Without a variant axis in the grid, variants come first.
        let q = try plan(Self.base + "variants: {a: {train.seed: 3}, b: {train.seed: 4}}\ngrid: {train.global_batch: [64, 128]}\n")
        XCTAssertEqual(q.points.map(\.name), ["a_b64", "a_b128", "b_b64", "b_b128"])
        // A base given as a path to a training config.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-base-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "model: {hidden: [6]}\noptimizer: {lr: 0.25}\n".write(toFile: "\(dir)/train.yaml", atomically: true, encoding: .utf8)
        try "base: train.yaml\ngrid: {train.global_batch: [32]}\n".write(toFile: "\(dir)/s.yaml", atomically: true, encoding: .utf8)
        let r = try SweepPlan(spec: SweepSpec.load(path: "\(dir)/s.yaml"), worldSize: 1, taskFactory: Self.factory)
        XCTAssertEqual(r.spec.name, "s")
        XCTAssertEqual(r.points[0].config.hidden, [6])
        XCTAssertEqual(r.points[0].config.lr, 0.25)
    }

    func testLearningRateScalingRules() throws {
        XCTAssertEqual(LRScaling.linear.factor(batch: 256, reference: 64), 4)
        XCTAssertEqual(LRScaling.sqrt.factor(batch: 256, reference: 64), 2)
        XCTAssertEqual(LRScaling.none.factor(batch: 256, reference: 64), 1)
        let linear = try plan(Self.base + """
        lr_scaling: linear
        reference_batch: 64
        variants:
          muon: {optimizer.name: adamw, groups.matrix.optimizer: muon, groups.matrix.lr: 0.02, optimizer.lr: 0.001}
        grid: {train.global_batch: [32, 64, 256], lr_factor: [0.5, 1]}
        """)
        let lrs = linear.points.map(\.config.lr)
        let expected = [0.0005 * 0.5, 0.0005, 0.001 * 0.5, 0.001, 0.004 * 0.5, 0.004]
        for (a, b) in zip(lrs, expected) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        // Per-role learning rates follow the same rule.
        XCTAssertEqual(linear.points[5].config.resolved.double("groups.matrix.lr"), 0.02 * 4, accuracy: 1e-12)
        XCTAssertEqual(linear.points[5].groupLRs, "matrix=0.08")
        XCTAssertEqual(linear.points[5].optimizerLabel, "muon")
        XCTAssertEqual(linear.points[5].name, "muon_b256_lrx1")

        // Square-root rule with Malladi et al.'s β and ε scaling for Adam: batch ×4 → γ×2, (1−β)×4, ε/2.
        let sqrt = try plan(Self.base + """
        variants: {adam: {optimizer: {name: adamw, lr: 0.001, beta1: 0.9, beta2: 0.99, eps: 1e-8}}}
        lr_scaling: sqrt
        reference_batch: 64
        scale_adam_betas: true
        grid: {train.global_batch: [64, 256]}
        """)
        let c = sqrt.points[1].config.resolved
        XCTAssertEqual(c.double("optimizer.lr"), 0.002, accuracy: 1e-12)
        XCTAssertEqual(c.double("optimizer.beta1"), 0.6, accuracy: 1e-12)
        XCTAssertEqual(c.double("optimizer.beta2"), 0.96, accuracy: 1e-12)
        XCTAssertEqual(c.double("optimizer.eps"), 5e-9, accuracy: 1e-20)
        XCTAssertEqual(sqrt.points[0].config.resolved.double("optimizer.beta1"), 0.9, accuracy: 1e-12)
        // Too large a κ for β₁ is an error naming the point, the key and the fixes.
        XCTAssertThrowsError(try plan(Self.base + """
        variants: {adam: {optimizer: {name: adamw, beta1: 0.9}}}
        lr_scaling: sqrt
        reference_batch: 16
        scale_adam_betas: true
        grid: {train.global_batch: [256]}
        """)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("adam_b256") && text.contains("optimizer.beta1") && text.contains("reference_batch"), text)
        }
    }

    func testWarmupEpochsAndExampleIntervalsBecomeStepsPerBatch() throws {
        // 512 training rows: 8 steps per epoch at batch 64, 4 at 128, 1 at 512.
        let p = try plan(Self.base + """
        warmup_epochs: 0.5
        target: {eval_accuracy: 0.9, eval_every_examples: 256, max_epochs: 3}
        grid: {train.global_batch: [64, 128, 512]}
        """)
        XCTAssertEqual(p.points.map(\.config.warmupSteps), [4, 2, 1])
        XCTAssertEqual(p.points.map(\.config.evalEvery), [4, 2, 1])
        XCTAssertEqual(p.points.map(\.config.logEvery), [1, 1, 1])  // 256/4 examples → a divisor of eval_every
        XCTAssertEqual(p.points.map(\.totalSteps), [24, 12, 3])
        XCTAssertEqual(p.points.map(\.config.checkpointEvery), [0, 0, 0])
        XCTAssertEqual(p.points.map(\.config.checkpointFinal), [false, false, false])
        XCTAssertEqual(p.points.map(\.config.saveModel), [false, false, false])
        let q = try plan(Self.base + """
        target: {train_loss: 0.5, eval_every_examples: 1280, log_every_examples: 320, max_epochs: 1}
        grid: {train.global_batch: [64]}
        """)
        XCTAssertEqual(q.points[0].config.evalEvery, 20)
        XCTAssertEqual(q.points[0].config.logEvery, 5)
        // A grid axis may not set a key the sweep derives.
        XCTAssertThrowsError(try plan(Self.base + "warmup_epochs: 1\ngrid: {schedule.warmup_steps: [1, 2]}\n")) {
            XCTAssertTrue("\($0)".contains("grid.schedule.warmup_steps"), "\($0)")
        }
    }

    func testPerBatchOverridesAreAppliedLastAndPinTheirKeys() throws {
        let p = try plan(Self.base + """
        lr_scaling: linear
        reference_batch: 64
        warmup_epochs: 1
        overrides:
          128: [optimizer.lr=0.3, train.grad_clip=1.0, schedule.warmup_steps=7]
        variants:
          sgd: {optimizer.name: sgd, overrides: {128: [optimizer.momentum=0.5]}}
        grid: {train.global_batch: [64, 128], lr_factor: [1, 2]}
        """)
        let at64 = p.points[0].config, at128 = p.points[2].config, at128x2 = p.points[3].config
        XCTAssertEqual(at64.lr, 0.1, accuracy: 1e-12)
        XCTAssertNil(at64.gradClip)
        XCTAssertEqual(at128.lr, 0.3, accuracy: 1e-12)        // the override, not scaled by the rule…
        XCTAssertEqual(at128x2.lr, 0.6, accuracy: 1e-12)      // …but still multiplied by lr_factor
        XCTAssertEqual(at128.gradClip, 1.0)
        XCTAssertEqual(at128.warmupSteps, 7)                  // pinned: warmup_epochs does not replace it
        XCTAssertEqual(at64.warmupSteps, 8)
        XCTAssertEqual(at128.resolved.double("optimizer.momentum"), 0.5)
        XCTAssertEqual(at64.resolved.double("optimizer.momentum"), 0.9)
        // An override for a batch size the grid does not have is an error.
        XCTAssertThrowsError(try plan(Self.base + "overrides: {100: [optimizer.lr=1]}\ngrid: {train.global_batch: [64]}\n")) {
            XCTAssertTrue("\($0)".contains("overrides.100"), "\($0)")
        }
        XCTAssertThrowsError(try plan(Self.base + "overrides: {64: [optimizer.lrr=1]}\ngrid: {train.global_batch: [64]}\n")) {
            XCTAssertTrue("\($0)".contains("optimizer.lrr"), "\($0)")
        }
    }

    func testGradientAccumulationForLargeBatches() throws {
        XCTAssertEqual(SweepPlan.gradAccum(globalBatch: 16384, worldSize: 2, maxRankBatch: 512), 16)
        XCTAssertEqual(SweepPlan.gradAccum(globalBatch: 1024, worldSize: 2, maxRankBatch: 512), 1)
        XCTAssertEqual(SweepPlan.gradAccum(globalBatch: 3000, worldSize: 2, maxRankBatch: 512), 3)  // 1500 = 3 × 500
        XCTAssertEqual(SweepPlan.gradAccum(globalBatch: 384, worldSize: 3, maxRankBatch: 100), 2)    // 128 = 2 × 64
        let p = try plan(Self.base + "max_rank_batch: 32\ngrid: {train.global_batch: [64, 256, 512]}\n")
        XCTAssertEqual(p.points.map(\.config.gradAccum), [1, 4, 8])
        XCTAssertEqual(p.points.map(\.config.microBatch), [32, 32, 32])
        // Set explicitly, it is kept (and checked by TrainConfig).
        let q = try plan(Self.base + "max_rank_batch: 32\ngrid: {train.global_batch: [256], train.grad_accum: [2]}\n")
        XCTAssertEqual(q.points[0].config.gradAccum, 2)
    }

    func testValidationErrorsNameThePointAndKey() throws {
        func message(_ yaml: String, world: Int = 2) -> String {
            do { _ = try plan(Self.base + yaml, world: world); return "no error" } catch { return "\(error)" }
        }
        let tooSmall = message("grid: {train.global_batch: [64, 3]}\n", world: 4)
        XCTAssertTrue(tooSmall.contains("sweep point 2 'b3'") && tooSmall.contains("train.global_batch = 3"), tooSmall)
        let unknown = message("grid: {optimizer.lrr: [0.1]}\n")
        XCTAssertTrue(unknown.contains("grid.optimizer.lrr") && unknown.contains("optimizer.lr"), unknown)
        let badValue = message("grid: {optimizer.name: [sgd, adamz]}\n")
        XCTAssertTrue(badValue.contains("grid.optimizer.name[1]") && badValue.contains("adamz"), badValue)
        let muonOnBias = message("variants: {bad: {groups.bias.optimizer: muon}}\ngrid: {train.global_batch: [64]}\n")
        XCTAssertTrue(muonOnBias.contains("'bad_b64'") && muonOnBias.contains("groups.bias.optimizer"), muonOnBias)
        let tooBig = message("grid: {train.global_batch: [64, 1024]}\n")
        XCTAssertTrue(tooBig.contains("'b1024'") && tooBig.contains("exceeds the 512 training examples"), tooBig)
        XCTAssertTrue(message("grids: {}\n").contains("unknown sweep key 'grids'"))
        XCTAssertTrue(message("target: {eval_accuracy: 0.9}\n").contains("eval_every_examples"))
        XCTAssertTrue(message("grid: {variant: [nope]}\n").contains("grid.variant[0]"))
    }

    /// The tiny sweep of the end-to-end test: 2 batch sizes × 2 optimizers on synthetic data.
    static let tiny = base + """
    variants:
      sgd: {optimizer: {name: sgd, lr: 0.2, momentum: 0.9, nesterov: true}}
      adamw: {optimizer: {name: adamw, lr: 0.02}}
    lr_scaling: sqrt
    reference_batch: 32
    max_rank_batch: 32
    warmup_epochs: 0.25
    target: {eval_accuracy: 0.7, eval_every_examples: 128, max_epochs: 4}
    grid: {train.global_batch: [32, 128]}
    """

    func runTiny(directory path: String?, plan: SweepPlan) throws -> [SweepRow] {
        let directory = try path.map { try SweepDirectory(path: $0, plan: plan) }
        let finished = directory?.finished.count ?? 0
        let rows = try SimulatedWorld.run(size: 2) { comm -> [SweepRow] in
            let runner = SweepRunner(plan: plan, comm: comm, taskFactory: Self.factory,
                                     directory: comm.rank == 0 ? directory : nil)
            return try runner.run()
        }
        XCTAssertEqual(rows[1].count, plan.points.count - finished)  // rank 1 has rows only for points it ran
        return rows[0]
    }

    func testTinySweepEndToEndOnTwoRanksAndResume() throws {
        let plan = try plan(Self.tiny)
        XCTAssertEqual(plan.points.map(\.name), ["sgd_b32", "sgd_b128", "adamw_b32", "adamw_b128"])
        XCTAssertEqual(plan.points.map(\.config.gradAccum), [1, 2, 1, 2])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }

        let rows = try runTiny(directory: dir, plan: plan)
        XCTAssertEqual(rows.map(\.point), plan.points.map(\.name))
        XCTAssertTrue(rows.contains { $0.reached }, "\(rows.map(\.fields))")
        for row in rows {
            XCTAssertEqual(row.target, "eval_accuracy>=0.7")
            if row.reached {
                XCTAssertEqual(row.status, "reached")
                XCTAssertEqual(row.examplesToTarget, row.stepsToTarget! * row.globalBatch)
                XCTAssertEqual(row.steps, row.stepsToTarget)  // training ended at the evaluation that reached it
                XCTAssertGreaterThanOrEqual(row.evalAccuracy, 0.7)
                XCTAssertNotNil(row.secondsToTarget)
            } else {
                XCTAssertNil(row.stepsToTarget)
                XCTAssertEqual(row.steps, plan.points.first { $0.name == row.point }!.totalSteps)
            }
        }
        for point in plan.points {
            for file in ["config.yaml", "metrics.jsonl", "summary.json"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/points/\(point.name)/\(file)"), "\(point.name)/\(file)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/points/\(point.name)/checkpoints"))
        }
        let csv = CSV.parse(try String(contentsOfFile: "\(dir)/results.csv", encoding: .utf8))
        XCTAssertEqual(csv[0], SweepRow.header(keys: ["variant", "train.global_batch"]))
        XCTAssertEqual(csv.count, 5)
        XCTAssertEqual(Array(csv[1].prefix(4)), ["sgd_b32", "sgd", "32", "32"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/sweep.yaml"))

        // Resume: every point finished, so nothing runs and the rows are rebuilt from summary.json.
        let summaryPath = "\(dir)/points/sgd_b32/summary.json"
        let before = try FileManager.default.attributesOfItem(atPath: summaryPath)[.modificationDate] as! Date
        XCTAssertEqual(try runTiny(directory: dir, plan: plan), rows)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: summaryPath)[.modificationDate] as! Date, before)

        // An interrupted point (no summary.json) runs again; the others are skipped.
        try FileManager.default.removeItem(atPath: "\(dir)/points/adamw_b32/summary.json")
        XCTAssertEqual(try SweepDirectory(path: dir, plan: plan).finished, [0, 1, 3])
        let again = try runTiny(directory: dir, plan: plan)
        XCTAssertEqual(again.map(\.point), rows.map(\.point))
        XCTAssertEqual(again[2].stepsToTarget, rows[2].stepsToTarget)  // same seed, same world size: same run
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/points/adamw_b32/summary.json"))

        // A finished point whose configuration the sweep file has since changed is an error naming it.
        let changed = try self.plan(Self.tiny.replacingOccurrences(of: "lr: 0.2", with: "lr: 0.3"))
        XCTAssertThrowsError(try SweepDirectory(path: dir, plan: changed)) {
            XCTAssertTrue("\($0)".contains("sgd_b32") && "\($0)".contains("different configuration"), "\($0)")
        }
    }

    func testADivergedPointIsRecordedAndTheSweepContinues() throws {
        let plan = try plan(Self.base + """
        variants:
          huge: {optimizer: {name: sgd, lr: 1e6, momentum: 0.9}, train.max_bad_steps: 2}
          fine: {optimizer: {name: sgd, lr: 0.1}}
        target: {eval_accuracy: 0.99, eval_every_examples: 256, max_epochs: 1}
        grid: {train.global_batch: [64]}
        """)
        let rows = try SimulatedWorld.run(size: 2) { comm in
            try SweepRunner(plan: plan, comm: comm, taskFactory: Self.factory).run()
        }[0]
        XCTAssertEqual(rows.map(\.status), ["diverged", "budget"])
        XCTAssertFalse(rows[0].reached)
        XCTAssertEqual(rows[1].steps, 8)
    }

    func testCSVRoundTripsQuotedFields() {
        let rows = [["a", "b,c", "say \"hi\""], ["", "[256, 256]", "x"]]
        let text = rows.map(CSV.line).joined(separator: "\n") + "\n"
        XCTAssertEqual(CSV.parse(text), rows)
    }

    func testShippedSweepFilesAreValid() throws {
        // The shipped sweeps parse; their points are checked fully when Fashion-MNIST is installed.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        for name in ["smoke", "fashion-batch", "fashion-batch-subset", "fashion-hpo-grid"] {
            let spec = try SweepSpec.load(path: "\(root)/configs/sweeps/\(name).yaml")
            XCTAssertEqual(spec.target != nil, name != "fashion-hpo-grid", name)  // the grid runs each point its epoch
            guard FileManager.default.fileExists(atPath: "\(spec.base.string("data.dir"))/train-images-idx3-ubyte.gz") else { continue }
            let plan = try SweepPlan(spec: spec, worldSize: 2, taskFactory: CachedTaskFactory().factory)
            XCTAssertFalse(plan.points.isEmpty)
        }
    }
}
