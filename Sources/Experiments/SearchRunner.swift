import Foundation
import Models
import SwiftMPI
import Training

// MARK: - Search over training runs

// Trials run in rounds of G (one per rank group, G = world / ranks-per-trial): trial b·G + g on group g. Every rank
// runs the same sampler on the same history, so every rank knows every round's parameters without messages; the
// round's results are then all-gathered (a non-blocking all-gather waited for with sleeps, so a group that finished
// first takes no core). Within a round, earlier members count as running trials for the later ones (TPE's constant
// liar), and ASHA compares a trial at a rung only with the trials of earlier rounds (and itself): the outcome is a
// function of the seed and G alone, whatever the timing.

/// One trial's outcome as all-gathered: a fixed layout of `Double`s (see `SearchRecord.width`).
public struct SearchRecord: Equatable, Sendable {
    public var trial: Int
    /// Lower is better (a maximised metric negated); +inf for a diverged run.
    public var score: Double
    /// "complete", "pruned", "diverged".
    public var status: String
    /// Rungs passed or stopped at (0: none reached).
    public var rung: Int
    public var examples: Int
    public var steps: Int
    public var seconds: Double
    public var worldSize: Int
    /// Score at each rung (NaN where not reached).
    public var rungScores: [Double]
    public var params: [Double]

    static let statuses = ["complete", "pruned", "diverged"]

    public static func width(rungs: Int, dimensions: Int) -> Int { 8 + rungs + dimensions }

    public var encoded: [Double] {
        [Double(trial), score, Double(Self.statuses.firstIndex(of: status) ?? 0), Double(rung), Double(examples),
         Double(steps), seconds, Double(worldSize)] + rungScores + params
    }

    public init(trial: Int, score: Double, status: String, rung: Int, examples: Int, steps: Int, seconds: Double,
                worldSize: Int, rungScores: [Double], params: [Double]) {
        self.trial = trial; self.score = score; self.status = status; self.rung = rung; self.examples = examples
        self.steps = steps; self.seconds = seconds; self.worldSize = worldSize; self.rungScores = rungScores; self.params = params
    }

    public init(decoding v: ArraySlice<Double>, rungs: Int, dimensions: Int) {
        let b = v.startIndex
        self.init(trial: Int(v[b]), score: v[b + 1], status: Self.statuses[Int(v[b + 2])], rung: Int(v[b + 3]),
                  examples: Int(v[b + 4]), steps: Int(v[b + 5]), seconds: v[b + 6], worldSize: Int(v[b + 7]),
                  rungScores: Array(v[(b + 8)..<(b + 8 + rungs)]), params: Array(v[(b + 8 + rungs)..<(b + 8 + rungs + dimensions)]))
    }

    public var observation: SearchObservation {
        SearchObservation(number: trial, params: params, score: score, pruned: status == "pruned", rung: rung)
    }
}

/// A trial's configuration, derived from the base and its parameters for one group size.
public struct SearchTrialPlan {
    public var config: TrainConfig
    public var totalSteps: Int
    /// Steps at which the rungs fall (empty without a pruner).
    public var rungSteps: [Int]
}

public final class SearchRunner {
    public let spec: SearchSpec
    public let world: Communicator
    public let group: Communicator
    public let taskFactory: SweepTaskFactory
    public let sampler: SearchSampler
    /// Rank 0's search directory; the path on every leader (they write their trials' run directories).
    public var directoryPath: String?
    public var console: Console?
    public var mpiLibrary = ""

    public init(spec: SearchSpec, world: Communicator, group: Communicator, taskFactory: @escaping SweepTaskFactory) {
        self.spec = spec
        self.world = world
        self.group = group
        self.taskFactory = taskFactory
        sampler = SearchSampler(kind: spec.sampler, space: spec.space, settings: spec.tpe, seed: spec.seed)
    }

    public var rungCount: Int { spec.pruner?.rungs.count ?? 0 }

    /// The configuration of a trial with `params` for groups of `groupSize` ranks (validated as `train` would).
    public static func plan(spec: SearchSpec, params: [Double], groupSize: Int, taskFactory: SweepTaskFactory) throws -> SearchTrialPlan {
        var c = spec.base
        for (p, v) in zip(spec.space, params) {
            let raw: Any
            switch p.distribution {
            case .categorical(let choices): raw = choices[Int(v)]
            case .int: raw = Int(v.rounded())
            default: raw = v
            }
            try c.set(p.name, raw: raw, source: "space")
        }
        let batch = c.int("train.global_batch")
        try c.set("train.grad_accum", raw: SweepPlan.gradAccum(globalBatch: batch, worldSize: groupSize, maxRankBatch: spec.maxRankBatch),
                  source: "max_rank_batch")
        try c.set("train.eval_every", raw: 0, source: "search")
        try c.set("checkpoint.every", raw: 0, source: "search")
        try c.set("checkpoint.final", raw: false, source: "search")
        try c.set("output.save_model", raw: false, source: "search")
        // Budget and rungs in examples (epochs: × the training set's size), then steps at this batch.
        let task = try taskFactory(try TrainConfig(c, worldSize: groupSize))
        let perUnit = spec.budgetEpochs != nil ? Double(task.rowsPerEpoch) : 1
        let budget = (spec.budgetExamples.map(Double.init) ?? spec.budgetEpochs!) * perUnit
        let steps = max(1, Int((budget / Double(batch)).rounded()))
        try c.set("train.steps", raw: steps, source: "objective")
        try c.set("train.log_every", raw: max(1, min(c.int("train.log_every"), steps)), source: "search")
        var rungSteps: [Int] = []
        if let pruner = spec.pruner {
            let first = max(1, Int((pruner.minResource * perUnit / Double(batch)).rounded()))
            var s = first
            for _ in pruner.rungs where s < steps { rungSteps.append(s); s *= pruner.reductionFactor }
        }
        let config = try TrainConfig(c, worldSize: groupSize)
        let totalSteps = try TrainingPlan(config: config, task: try taskFactory(config)).totalSteps
        return SearchTrialPlan(config: config, totalSteps: totalSteps, rungSteps: rungSteps)
    }

    /// Runs the unfinished trials; `stored` are the records of an earlier run (rank 0 read them; every rank gets
    /// them here). Returns every record in trial order.
    public func run(stored: [SearchRecord]) throws -> [SearchRecord] {
        let k = group.size, groups = world.size / k, g = world.rank / k
        let width = SearchRecord.width(rungs: rungCount, dimensions: spec.space.count)
        let known = try shareStored(stored, width: width)
        var records: [Int: SearchRecord] = [:]
        for r in known { records[r.trial] = r }
        if !known.isEmpty { console?.line("\(known.count) trial(s) finished earlier") }

        var round = 0
        while round * groups < spec.trials {
            // Phase 1: this round's parameters, from the history before it (identical on every rank).
            let numbers = Array((round * groups)..<min((round + 1) * groups, spec.trials))
            let history = records.values.filter { $0.trial < numbers[0] }.sorted { $0.trial < $1.trial }
            var params: [[Double]] = []
            for t in numbers { params.append(sampler.suggest(trial: t, history: history.map(\.observation), running: params)) }

            // Phase 2: each group trains its trial (or contributes the stored record, or nothing).
            var buffer = [Double](repeating: .nan, count: width * world.size)
            var mine: [Double]
            var stopped = false
            if g < numbers.count, let done = records[numbers[g]] {
                mine = done.encoded
            } else if g < numbers.count {
                do {
                    mine = try runTrial(numbers[g], params: params[g], history: history).encoded
                } catch let stop as TrainingStopped {
                    guard case .signal = stop else { throw stop }
                    stopped = true
                    mine = [Double](repeating: .nan, count: width)
                    mine[0] = -2
                }
            } else {
                mine = [Double](repeating: .nan, count: width)
                mine[0] = -1
            }
            if StopRequest.isPending { stopped = true }  // a finished trial is still recorded; then all stop
            let offset = world.rank * width
            for i in 0..<width { buffer[i + offset] = mine[i] }
            // A stop anywhere is seen everywhere: one more flag per rank in the gathered block layout.
            var flags = [Int32](repeating: 0, count: world.size)
            flags[world.rank] = stopped ? 1 : 0
            try buffer.withUnsafeMutableBufferPointer { b in
                try world.iAllGatherInPlace(b, counts: [Int](repeating: width, count: world.size)).waitSleeping()
            }
            try flags.withUnsafeMutableBufferPointer { f in
                try world.iAllGatherInPlace(f, counts: [Int](repeating: 1, count: world.size)).waitSleeping()
            }

            // Phase 3: the leaders' blocks are the round's records; rank 0 writes the results.
            for j in numbers.indices {
                let block = buffer[(j * k * width)..<((j * k + 1) * width)]
                guard block[block.startIndex] >= 0 else { continue }
                let r = SearchRecord(decoding: block, rungs: rungCount, dimensions: spec.space.count)
                let isNew = records[r.trial] == nil
                records[r.trial] = r
                if isNew { console?.line(describe(r)) }
            }
            try writeResults(records.values.sorted { $0.trial < $1.trial })
            if flags.contains(where: { $0 != 0 }) { throw TrainingStopped.signal(SIGTERM, step: 0) }
            round += 1
        }
        return records.values.sorted { $0.trial < $1.trial }
    }

    /// Rank 0's stored records on every rank (a broadcast of the count, then of the records).
    private func shareStored(_ stored: [SearchRecord], width: Int) throws -> [SearchRecord] {
        var count = [Int64(stored.count)]
        try count.withUnsafeMutableBufferPointer { try world.broadcast($0, root: 0) }
        guard count[0] > 0 else { return [] }
        var flat = world.rank == 0 ? stored.flatMap(\.encoded) : [Double](repeating: 0, count: Int(count[0]) * width)
        try flat.withUnsafeMutableBufferPointer { try world.broadcast($0, root: 0) }
        return (0..<Int(count[0])).map { SearchRecord(decoding: flat[($0 * width)..<(($0 + 1) * width)], rungs: rungCount, dimensions: spec.space.count) }
    }

    private func score(_ eval: BatchResult) -> Double {
        spec.metric == "eval_loss" ? (spec.maximize ? -eval.meanLoss : eval.meanLoss) : (spec.maximize ? -eval.accuracy : eval.accuracy)
    }

    /// Trains trial `t` on this group, pruning at the rungs against `history`.
    func runTrial(_ t: Int, params: [Double], history: [SearchRecord]) throws -> SearchRecord {
        let trialPlan = try Self.plan(spec: spec, params: params, groupSize: group.size, taskFactory: taskFactory)
        let config = trialPlan.config
        let task = try taskFactory(config)
        var output: RunDirectory?
        if group.rank == 0, let directoryPath {
            let path = "\(directoryPath)/trials/\(String(format: "%04d", t))"
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            output = try RunDirectory(claiming: path)
            let header = "search '\(spec.name)' trial \(t): " +
                zip(spec.space, params).map { "\($0.name)=\($0.distribution.text($1))" }.joined(separator: " ")
            try output?.write("config.yaml", text: config.resolved.yaml(header: header))
        }
        let trainer = try Trainer(plan: TrainingPlan(config: config, task: task), comm: group, output: output, console: nil)
        let rungSteps = trialPlan.rungSteps
        var rungScores = [Double](repeating: .nan, count: rungCount)
        var rung = 0
        var pruned = false
        trainer.evaluateAt = { rungSteps.contains($0) }
        trainer.afterEvaluation = { [self] step, eval, _ in
            guard let pruner = spec.pruner, let i = rungSteps.firstIndex(of: step) else { return false }
            let s = score(eval)
            rungScores[i] = s
            rung = i + 1
            let competing = history.map { $0.rungScores[i] }.filter { !$0.isNaN } + [s]
            if !pruner.promotes(s, competing: competing) { pruned = true }
            return pruned
        }
        let start = Date()
        var status = "complete", final = Double.infinity, steps = 0
        do {
            let summary = try trainer.run()
            steps = summary.steps
            let metric = spec.metric == "eval_loss" ? summary.evalLoss : summary.evalAccuracy
            final = pruned ? rungScores[rung - 1] : (spec.maximize ? -metric : metric)
            if pruned { status = "pruned" }
            try output?.write("summary.json", text: summary.json(config: config, mpiLibrary: mpiLibrary).pretty)
        } catch TrainingStopped.diverged(let step, _, _), TrainingStopped.nonFiniteParameters(let step, _) {
            status = "diverged"
            steps = step
        }
        if !final.isFinite { final = .infinity }
        return SearchRecord(trial: t, score: final, status: status, rung: rung, examples: steps * config.globalBatch, steps: steps,
                            seconds: Date().timeIntervalSince(start), worldSize: group.size, rungScores: rungScores, params: params)
    }

    func describe(_ r: SearchRecord) -> String {
        let value = spec.maximize ? -r.score : r.score
        let settings = zip(spec.space, r.params).map { "\($0.name)=\($0.distribution.text($1))" }.joined(separator: " ")
        return String(format: "trial %3d: %@ %.4f (%@ after %d examples, rung %d) · %@", r.trial, spec.metric, value, r.status,
                      r.examples, r.rung, settings)
    }

    /// Rank 0: results.csv and results.json, each rewritten atomically.
    func writeResults(_ records: [SearchRecord]) throws {
        guard world.rank == 0, let directoryPath else { return }
        try SearchResults(spec: spec, records: records).write(to: directoryPath)
    }
}
