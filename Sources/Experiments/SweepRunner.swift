import Foundation
import Plots
import SwiftMPI
import Training

// MARK: - Runner

/// Runs a plan's points in order on every rank of `comm` (the same order everywhere, so collectives match).
public final class SweepRunner {
    public let plan: SweepPlan
    public let comm: Communicator
    public let taskFactory: SweepTaskFactory
    /// Rank 0's sweep directory (nil elsewhere, and in tests that write nothing).
    public let directory: SweepDirectory?
    public let console: Console?
    /// Pass the console to each point's Trainer (per-step lines) instead of one line per point.
    public var verbose = false
    public var mpiLibrary = ""
    /// The sweep directory's path on every rank (needed when the sweep enables checkpoints, and with rank groups).
    public var sweepPath: String?
    /// The whole job when `comm` is one of several rank groups (`--ranks-per-trial`): points are then handed out by
    /// world rank 0 (RankGroupScheduler.swift). Nil: `comm` is the whole job and trains every point in turn.
    public var world: GroupingCommunicator?

    public init(plan: SweepPlan, comm: Communicator, taskFactory: @escaping SweepTaskFactory,
                directory: SweepDirectory? = nil, console: Console? = nil) {
        precondition(comm.size == plan.worldSize, "plan validated for \(plan.worldSize) ranks, world has \(comm.size)")
        self.plan = plan
        self.comm = comm
        self.taskFactory = taskFactory
        self.directory = directory
        self.console = console
    }

    /// Runs every unfinished point; returns all rows in plan order (complete on rank 0; other ranks have no rows
    /// for points finished in an earlier run). Rethrows a stop by signal; a diverged point is recorded and the
    /// sweep continues.
    public func run() throws -> [SweepRow] {
        if let world, world.size > comm.size { return try runInGroups(world: world) }
        // Rank 0 read the directory: every rank takes its list of finished points.
        var done = [Int32](repeating: 0, count: plan.points.count)
        for i in directory?.finished ?? [] { done[i] = 1 }
        if !done.isEmpty { try done.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: 0) } }

        var rows: [SweepRow] = []
        let total = plan.points.count
        let width = String(total).count
        for point in plan.points {
            let position = String(format: "[%\(width)d/%d]", point.index + 1, total)
            if done[point.index] != 0 {
                if let directory {
                    let row = try directory.row(for: point)
                    rows.append(row)
                    console?.line("\(position) \(point.label): finished earlier — \(Self.describe(row))")
                }
                continue
            }
            let row = try runPoint(point)
            rows.append(row)
            try directory?.writeResults(rows)
            console?.line("\(position) \(point.label): \(Self.describe(row))")
        }
        try directory?.writeResults(rows)
        return rows
    }

    /// Trains one point on `comm`; `directory` is where this rank writes it (the group leader's), `betweenSteps`
    /// runs on this rank after every step.
    func runPoint(_ point: SweepPoint, directory: SweepDirectory? = nil,
                  betweenSteps: (() throws -> Void)? = nil) throws -> SweepRow {
        let directory = directory ?? self.directory
        let config = point.config
        let task = try taskFactory(config)
        let output = try directory?.startPoint(point)
        if verbose { console?.line("── \(point.name) (\(point.label)): \(point.totalSteps) steps max") }
        let trainer = try Trainer(plan: TrainingPlan(config: config, task: task), comm: comm, output: output,
                                  console: verbose ? console : nil)
        if plan.spec.checkpoints, let sweepPath {
            // Checkpoint.save is collective: every rank needs the path.
            trainer.checkpointRoot = "\(sweepPath)/points/\(point.name)"
        }
        trainer.betweenSteps = betweenSteps
        let target = plan.spec.target
        var reached: (step: Int, seconds: Double)?
        let start = Date()
        trainer.afterEvaluation = { step, eval, trainLoss in
            guard let target, reached == nil, target.isReached(eval: eval, trainLoss: trainLoss) else { return false }
            reached = (step, Date().timeIntervalSince(start))
            return true
        }

        var o: JSONObject
        var status: String
        do {
            let summary = try trainer.run()
            o = summary.json(config: config, mpiLibrary: mpiLibrary)
            status = reached == nil ? "budget" : "reached"
        } catch TrainingStopped.diverged(let step, _, _), TrainingStopped.nonFiniteParameters(let step, _) {
            o = JSONObject()
            o.add("global_batch", config.globalBatch)
            o.add("grad_accum", config.gradAccum)
            o.add("steps", step)
            o.add("optimizer", config.optimizerName)
            o.add("world_size", comm.size)
            status = "diverged"
        }
        o.add("sweep_point", point.name)
        o.add("sweep_status", status)
        o.add("sweep_target", target?.description ?? "")
        o.add("sweep_optimizer", point.optimizerLabel)
        o.add("lr", config.lr)
        o.add("reached", reached != nil)
        if let reached {
            o.add("steps_to_target", reached.step)
            o.add("examples_to_target", reached.step * config.globalBatch)
            o.add("seconds_to_target", reached.seconds)
        } else {
            for k in ["steps_to_target", "examples_to_target", "seconds_to_target"] { o.add(k, raw: "null") }
        }
        try output?.write("summary.json", text: o.pretty)
        if let directory { return try directory.row(for: point) }
        let summary = (try? JSONSerialization.jsonObject(with: Data(o.pretty.utf8))) as? [String: Any] ?? [:]
        return SweepRow(point: point, summary: summary, metrics: MetricsTail())
    }

    /// "4.2 s" below a minute, else formatDuration's "3m05s".
    static func seconds(_ s: Double?) -> String {
        guard let s, s.isFinite else { return "?" }
        return s < 60 ? String(format: "%.1f s", s) : formatDuration(s)
    }

    static func describe(_ row: SweepRow) -> String {
        let accuracy = row.evalAccuracy.isFinite ? String(format: "eval accuracy %.4f", row.evalAccuracy) : "no evaluation"
        switch row.status {
        case "reached":
            return "reached \(row.target) at step \(row.stepsToTarget!) (\(row.examplesToTarget!) examples, " +
                "\(seconds(row.secondsToTarget))) · \(accuracy)"
        case "diverged":
            return "diverged at step \(row.steps) (non-finite gradients) · not reached"
        default:
            return row.target.isEmpty ? "\(row.steps) steps · \(accuracy)" : "not reached in \(row.steps) steps (budget) · \(accuracy)"
        }
    }
}
