import Foundation
import SwiftMPI
import Training

// MARK: - The CBS rule

/// The critical batch size at one checkpoint from its branches (Merrill et al. 2025, arXiv 2505.23971): every
/// branch trained the same number of examples from the same state at its own batch; the CBS is the largest batch B
/// such that every branch with batch ≤ B ended with a loss within `tolerance` (relative) of the smallest batch's:
/// L(b) ≤ L(b_min)·(1 + tolerance) for all b ≤ B. Requiring every smaller batch too keeps one lucky large batch
/// from setting it. A branch that diverged (non-finite loss) is not within tolerance. nil when the smallest
/// batch's own loss is not finite (there is no reference).
public enum CriticalBatchRule {
    public static func criticalBatch(_ table: [(batch: Int, loss: Double)], tolerance: Double) -> Int? {
        let sorted = table.sorted { $0.batch < $1.batch }
        guard let reference = sorted.first?.loss, reference.isFinite else { return nil }
        let limit = reference + tolerance * abs(reference)
        var cbs = sorted[0].batch
        for row in sorted.dropFirst() {
            guard row.loss.isFinite, row.loss <= limit else { break }
            cbs = row.batch
        }
        return cbs
    }
}

// MARK: - Plan

/// `swift-train branch`: from checkpoints of one run, short runs at several batch sizes for a fixed number of
/// examples each. Every branch is derived and validated before MPI starts (a step without a checkpoint, a batch
/// smaller than the ranks, …: an error naming it).
public struct BranchPlan: Sendable {
    public struct Branch: Sendable {
        public var step: Int
        public var batch: Int
        public var name: String
        public var checkpointPath: String
        /// Examples the run had trained on at the checkpoint.
        public var examplesAtBranch: Int
        public var config: TrainConfig
        /// Steps the branch takes (⌈examples / batch⌉).
        public var steps: Int
    }

    public let runPath: String
    public let worldSize: Int
    public let examples: Int
    public let tolerance: Double
    public let branches: [Branch]
    /// The run's own global batch (the lr rule's reference unless given).
    public let referenceBatch: Int

    /// - Parameters: see `swift-train branch --help`.
    public init(runPath: String, steps: [Int], batches: [Int], examples: Int, tolerance: Double, lrScaling: LRScaling,
                referenceBatch: Int?, maxRankBatch: Int, worldSize: Int, datasetSize: (TrainConfig) throws -> Int) throws {
        guard !steps.isEmpty, !batches.isEmpty else { throw ConfigError("--steps and --batches each need at least one value") }
        guard examples > 0 else { throw ConfigError("--examples \(examples): give the examples each branch trains (> 0)") }
        guard tolerance >= 0 else { throw ConfigError("--tolerance \(tolerance) must be ≥ 0 (relative, e.g. 0.01)") }
        let root = "\(runPath)/checkpoints"
        let available = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasPrefix("step-") }.sorted()
        var branches: [Branch] = []
        var runBatch: Int?
        for step in steps.sorted() {
            let name = String(format: "step-%08d", step)
            guard available.contains(name) else {
                throw ConfigError("--steps \(step): \(runPath) has no checkpoint at step \(step) (\(root)/\(name)); it has " +
                                  (available.isEmpty ? "none" : available.map { String(Int($0.dropFirst(5)) ?? 0) }.joined(separator: ", ")))
            }
            let path = "\(root)/\(name)"
            let checkpoint = try Checkpoint.load(path)
            var base = ResolvedConfig(name: "branch")
            try base.merge(yaml: checkpoint.manifest.config, source: "\(path)/manifest.json (config)")
            let ownBatch = base.int("train.global_batch")
            runBatch = runBatch ?? ownBatch
            let reference = referenceBatch ?? ownBatch
            for batch in batches.sorted() {
                guard batch >= worldSize else {
                    throw ConfigError("--batches \(batch): smaller than the \(worldSize) ranks × train.grad_accum 1: every rank " +
                                      "needs at least one row — use batches ≥ \(worldSize), or fewer ranks")
                }
                var c = base
                let factor = lrScaling.factor(batch: batch, reference: reference)
                for key in SweepPlan.lrKeys where c.double(key) > 0 { try c.set(key, raw: c.double(key) * factor, source: "--lr-scaling") }
                let accum = SweepPlan.gradAccum(globalBatch: batch, worldSize: worldSize, maxRankBatch: maxRankBatch)
                let start = checkpoint.examplesTrained
                let steps = (examples + batch - 1) / batch
                // The trainer runs until its examples reach train.steps × batch: with ⌊(start + steps·batch)/batch⌋
                // that is after exactly `steps` steps from `start`.
                let total = (start + steps * batch) / batch
                for (key, value) in [("train.global_batch", batch as Any), ("train.grad_accum", accum), ("train.steps", total),
                                     ("train.batch_schedule", "fixed"), ("schedule.kind", "constant"), ("train.eval_every", 0),
                                     ("train.log_every", max(1, steps / 20)), ("checkpoint.every", 0), ("checkpoint.final", false),
                                     ("train.stop_at", 0), ("output.save_model", false)] {
                    try c.set(key, raw: value, source: "branch")
                }
                let config: TrainConfig
                do { config = try TrainConfig(c, worldSize: worldSize) } catch {
                    throw ConfigError("branch step \(step) batch \(batch): \(error)")
                }
                let n = try datasetSize(config)
                guard batch <= n else { throw ConfigError("--batches \(batch): exceeds the \(n) training examples") }
                branches.append(Branch(step: step, batch: batch, name: "\(name)_b\(batch)", checkpointPath: path,
                                       examplesAtBranch: start, config: config, steps: steps))
            }
        }
        self.runPath = runPath
        self.worldSize = worldSize
        self.examples = examples
        self.tolerance = tolerance
        self.branches = branches
        self.referenceBatch = referenceBatch ?? runBatch!
    }
}

// MARK: - Results

/// One finished branch (a row of results.csv), read back from its summary.json.
public struct BranchRow: Sendable {
    public var step: Int
    public var examplesAtBranch: Int
    public var batch: Int
    public var gradAccum: Int
    public var lr: Double
    public var steps: Int
    public var examples: Int
    public var finalEvalLoss: Double
    public var finalEvalAccuracy: Double
    public var finalTrainLoss: Double
    public var status: String

    public static let header = ["step", "examples_at_branch", "batch", "grad_accum", "lr", "branch_steps", "branch_examples",
                                "final_eval_loss", "final_eval_accuracy", "final_train_loss", "status"]
    public var fields: [String] {
        ["\(step)", "\(examplesAtBranch)", "\(batch)", "\(gradAccum)", "\(lr)", "\(steps)", "\(examples)", "\(finalEvalLoss)",
         "\(finalEvalAccuracy)", "\(finalTrainLoss)", status]
    }
}

/// The CBS at each checkpoint (a row of cbs.csv).
public struct CriticalBatchRow: Sendable, Equatable {
    public var step: Int
    public var examples: Int
    public var cbs: Int?
    public var referenceLoss: Double
    /// The run's last logged noise scale at or before the checkpoint's step (its metrics.jsonl), if measured.
    public var noiseScale: Double?

    public init(step: Int, examples: Int, cbs: Int?, referenceLoss: Double, noiseScale: Double?) {
        self.step = step; self.examples = examples; self.cbs = cbs; self.referenceLoss = referenceLoss; self.noiseScale = noiseScale
    }

    public static let header = ["step", "examples", "cbs", "smallest_batch_loss", "noise_scale"]
    public var fields: [String] { ["\(step)", "\(examples)", cbs.map(String.init) ?? "", "\(referenceLoss)", noiseScale.map { "\($0)" } ?? ""] }

    /// One row per checkpoint step of `rows`, by `CriticalBatchRule`.
    public static func rows(_ rows: [BranchRow], tolerance: Double, runMetrics: String?) -> [CriticalBatchRow] {
        let metrics = runMetrics.map(MetricsTail.lines(path:)) ?? []
        return Set(rows.map(\.step)).sorted().map { step in
            let mine = rows.filter { $0.step == step }
            let table = mine.map { (batch: $0.batch, loss: $0.status == "finished" ? $0.finalEvalLoss : .nan) }
            let noise = metrics.last { (($0["step"] as? NSNumber)?.intValue ?? .max) <= step && $0["noise_scale"] != nil }
            return CriticalBatchRow(step: step, examples: mine[0].examplesAtBranch,
                                    cbs: CriticalBatchRule.criticalBatch(table, tolerance: tolerance),
                                    referenceLoss: table.min { $0.batch < $1.batch }?.loss ?? .nan,
                                    noiseScale: (noise?["noise_scale"] as? NSNumber)?.doubleValue)
        }
    }
}

// MARK: - Runner

/// Runs a plan's branches one after another on every rank (sequentially: parallel rank groups are another issue's).
/// Rank 0 owns the output directory: `branches/<name>/` (config.yaml, metrics.jsonl, summary.json), results.csv and
/// cbs.csv, both rewritten atomically after each branch. Resume: branches with a summary.json are skipped.
public final class BranchRunner {
    public let plan: BranchPlan
    public let comm: Communicator
    public let out: String?
    public let console: Console?
    public let taskFactory: SweepTaskFactory
    public var mpiLibrary = ""

    public init(plan: BranchPlan, comm: Communicator, out: String?, console: Console?, taskFactory: @escaping SweepTaskFactory) {
        self.plan = plan
        self.comm = comm
        self.out = out
        self.console = console
        self.taskFactory = taskFactory
    }

    private func summaryPath(_ b: BranchPlan.Branch) -> String? { out.map { "\($0)/branches/\(b.name)/summary.json" } }

    /// Runs every unfinished branch; returns the CBS rows (rank 0; empty elsewhere).
    public func run() throws -> [CriticalBatchRow] {
        var done = plan.branches.map { b -> Int32 in summaryPath(b).map { FileManager.default.fileExists(atPath: $0) ? 1 : 0 } ?? 0 }
        try done.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: 0) }
        var rows: [BranchRow] = []
        for (i, branch) in plan.branches.enumerated() {
            let label = "[\(i + 1)/\(plan.branches.count)] step \(branch.step) batch \(branch.batch)"
            if done[i] == 0 { try runBranch(branch) } else { console?.line("\(label): finished earlier") }
            if let path = summaryPath(branch) {
                let row = try Self.row(branch, summaryPath: path)
                rows.append(row)
                try write(rows)
                if done[i] == 0 {
                    console?.line("\(label): \(row.steps) steps, \(row.examples) examples · eval loss " +
                                  String(format: "%.4f", row.finalEvalLoss) + " · \(row.status)")
                }
            }
        }
        return out == nil ? [] : CriticalBatchRow.rows(rows, tolerance: plan.tolerance, runMetrics: "\(plan.runPath)/metrics.jsonl")
    }

    private func write(_ rows: [BranchRow]) throws {
        guard let out else { return }
        let results = ([BranchRow.header] + rows.map(\.fields)).map(CSV.line).joined(separator: "\n") + "\n"
        try writeAtomically(Data(results.utf8), to: "\(out)/results.csv")
        let cbs = CriticalBatchRow.rows(rows, tolerance: plan.tolerance, runMetrics: "\(plan.runPath)/metrics.jsonl")
        let text = ([CriticalBatchRow.header] + cbs.map(\.fields)).map(CSV.line).joined(separator: "\n") + "\n"
        try writeAtomically(Data(text.utf8), to: "\(out)/cbs.csv")
    }

    private func runBranch(_ branch: BranchPlan.Branch) throws {
        let checkpoint = try Checkpoint.load(branch.checkpointPath)
        let task = try taskFactory(branch.config)
        var output: RunDirectory?
        if let out {
            let p = "\(out)/branches/\(branch.name)"
            if FileManager.default.fileExists(atPath: p) { try FileManager.default.removeItem(atPath: p) }  // an interrupted attempt
            output = try RunDirectory(claiming: p, tensorboard: false)
            try output?.write("config.yaml", text: branch.config.resolved.yaml(header: "branch \(branch.name) of \(plan.runPath)"))
        }
        let trainer = try Trainer(plan: TrainingPlan(config: branch.config, task: task), comm: comm, output: output,
                                  resume: checkpoint)
        var o: JSONObject
        var status = "finished"
        do {
            o = try trainer.run().json(config: branch.config, mpiLibrary: mpiLibrary)
        } catch TrainingStopped.diverged, TrainingStopped.nonFiniteParameters {
            o = JSONObject()
            o.add("global_batch", branch.batch)
            o.add("grad_accum", branch.config.gradAccum)
            status = "diverged"
        }
        o.add("branch_step", branch.step)
        o.add("branch_examples_at_branch", branch.examplesAtBranch)
        o.add("branch_steps", trainer.finalStep - trainer.startStep)
        o.add("branch_examples", trainer.batchSchedule.state.examples - branch.examplesAtBranch)
        o.add("branch_status", status)
        o.add("lr", branch.config.lr)
        try output?.write("summary.json", text: o.pretty)
    }

    static func row(_ branch: BranchPlan.Branch, summaryPath: String) throws -> BranchRow {
        guard let data = FileManager.default.contents(atPath: summaryPath),
              let s = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ConfigError("\(summaryPath) cannot be read: delete its folder to run the branch again")
        }
        func d(_ k: String) -> Double { (s[k] as? NSNumber)?.doubleValue ?? .nan }
        func i(_ k: String) -> Int { (s[k] as? NSNumber)?.intValue ?? 0 }
        return BranchRow(step: branch.step, examplesAtBranch: branch.examplesAtBranch, batch: branch.batch, gradAccum: i("grad_accum"),
                         lr: d("lr"), steps: i("branch_steps"), examples: i("branch_examples"), finalEvalLoss: d("eval_loss"),
                         finalEvalAccuracy: d("eval_accuracy"), finalTrainLoss: d("final_train_loss"),
                         status: (s["branch_status"] as? String) ?? "finished")
    }
}
