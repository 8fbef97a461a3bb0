import Datasets
import Distributed
import Foundation
import Models
import Optimizers
import SwiftMPI
import Tensors

/// The result of a training run (also written to summary.json by rank 0).
public struct TrainSummary: Sendable {
    public var worldSize: Int
    public var globalBatch: Int
    public var perRankBatch: Int
    public var gradAccum: Int
    public var steps: Int
    public var epochs: Double
    public var finalTrainLoss: Double
    public var evalLoss: Double
    public var evalAccuracy: Double
    /// Task-specific evaluation metrics (e.g. eval_bits_per_byte for language models).
    public var evalExtras: [String: Double] = [:]
    public var samplesPerSecond: Double
    /// Global batch / median step time: robust to warm-up and noise (what benchmarks compare).
    public var medianStepSamplesPerSecond: Double
    public var medianStepSeconds: Double
    public var trainSeconds: Double
    public var wallSeconds: Double
    public var paramCount: Int
    public var skippedSteps: Int
    public var zeroStage: Int
    /// `train.precision`.
    public var precision: String
    /// Parameter bytes each rank holds (the weights, plus the packed gather buffer in bf16 at stages 1–2).
    public var parameterBytesPerRank: [Int]
    public var optimizerStateBytesPerRank: [Int]
    public var gradientBytesPerRank: [Int]
    /// Stage 3: bytes of the layer working buffers each rank allocated (0 at other stages).
    public var gatherBufferBytesPerRank: [Int] = []
    /// Peak resident set per rank while training: measured from the start of `run()` (after start-up) up to just
    /// before the final gather of the weights for export.
    public var peakRSSBytesPerRank: [Int]
    /// Stage 3: seconds per step rank 0 waited for layer gathers (what prefetch did not hide).
    public var exposedGatherSecondsPerStep: Double = 0
    /// Parameter bytes rank 0 received per step (stages 1–2: the weight all-gather; stage 3: the layer gathers).
    public var parameterBytesReceivedPerStep: Double = 0
    /// Mean seconds per step each rank spent in its optimizer update.
    public var optimizerSecondsPerStepPerRank: [Double]
    /// Seconds rank 0 spent blocked on gradient collectives (communication overlap did not hide).
    public var communicationWaitSeconds: Double
    /// Gradient payload bytes rank 0 sent per step (`zero.comm_dtype` halves it at stages 1–2).
    public var gradientBytesSentPerStep: Double
    /// Seconds rank 0's training loop was held up by checkpoints: writing them (synchronous), or taking the snapshot
    /// and completing them (`checkpoint.async`, which writes in a thread meanwhile). Not part of `trainSeconds`.
    public var checkpointSeconds: Double = 0
    /// Seconds from the first step of this run to the end of its last step's checkpoint: steps, logging,
    /// evaluations and checkpoints (what a checkpoint's overhead is measured against).
    public var loopSeconds: Double = 0

    public func json(config: TrainConfig, mpiLibrary: String) -> JSONObject {
        var o = JSONObject()
        o.add("world_size", worldSize)
        o.add("global_batch", globalBatch)
        o.add("per_rank_batch", perRankBatch)
        o.add("grad_accum", gradAccum)
        o.add("steps", steps)
        o.add("epochs", epochs)
        o.add("final_train_loss", finalTrainLoss)
        o.add("eval_loss", evalLoss)
        o.add("eval_accuracy", evalAccuracy)
        for (k, v) in evalExtras.sorted(by: { $0.key < $1.key }) { o.add(k, v) }
        o.add("samples_per_sec", samplesPerSecond)
        o.add("median_step_samples_per_sec", medianStepSamplesPerSecond)
        o.add("median_step_ms", medianStepSeconds * 1000)
        o.add("train_seconds", trainSeconds)
        o.add("wall_seconds", wallSeconds)
        o.add("param_count", paramCount)
        o.add("skipped_steps", skippedSteps)
        o.add("optimizer", config.optimizerName)
        o.add("zero_stage", zeroStage)
        o.add("precision", precision)
        o.add("parameter_bytes_per_rank", parameterBytesPerRank)
        o.add("optimizer_state_bytes_per_rank", optimizerStateBytesPerRank)
        o.add("gradient_bytes_per_rank", gradientBytesPerRank)
        o.add("gather_buffer_bytes_per_rank", gatherBufferBytesPerRank)
        o.add("peak_rss_bytes_per_rank", peakRSSBytesPerRank)
        o.add("exposed_gather_seconds_per_step", exposedGatherSecondsPerStep)
        o.add("parameter_bytes_received_per_step", parameterBytesReceivedPerStep)
        o.add("optimizer_seconds_per_step_per_rank", raw: "[" + optimizerSecondsPerStepPerRank.map { "\($0)" }.joined(separator: ",") + "]")
        o.add("communication_wait_seconds", communicationWaitSeconds)
        o.add("gradient_bytes_sent_per_step", gradientBytesSentPerStep)
        o.add("checkpoint_seconds", checkpointSeconds)
        o.add("loop_seconds", loopSeconds)
        o.add("mpi_library", mpiLibrary)
        return o
    }
}

/// Data-parallel training of a classifier on an image dataset.
///
/// Per step, on every rank: take this rank's disjoint slice of the global batch (split into `grad_accum`
/// micro-batches), accumulate the gradient of the mean loss over the per-rank batch, then let the data-parallel
/// engine average gradients across ranks and apply the update. Every rank executes the same sequence of
/// collectives: logging and evaluation steps are functions of the step index alone.
public final class Trainer {
    public let config: TrainConfig
    public let comm: Communicator
    public let task: TrainingTask
    public var model: Model { task.model }
    public let engine: ShardedDataParallel
    /// The full parameters (shard-plan layout) at stages 0–2, identical on every rank after each step; stage 3 keeps
    /// no full copy (`engine.masterParameters()` gathers one).
    public var params: FloatBuffer {
        guard let params = engine.params else { preconditionFailure("ZeRO stage 3 holds no full parameters: use engine.masterParameters()") }
        return params
    }
    public let totalSteps: Int
    /// First step to run: 0, or the step a resumed checkpoint was taken after.
    public private(set) var startStep = 0
    /// Run directory path on every rank (checkpoints are written there); nil disables checkpoints.
    public var checkpointRoot: String?
    /// Called on every rank after each evaluation with (step, the all-reduced result, mean training loss of the last
    /// logged window); returning true ends training after this step (e.g. a sweep's target was reached). Must return
    /// the same on every rank (it sees the same numbers everywhere).
    public var afterEvaluation: ((_ step: Int, _ eval: BatchResult, _ trainLoss: Double) -> Bool)?
    /// Called on this rank after every step; must not communicate on `comm` (other ranks do not call it). The sweep's
    /// rank-group coordinator (rank 0) answers the other groups' requests for points here.
    public var betweenSteps: (() throws -> Void)?
    /// Extra evaluation steps besides every `train.eval_every` (the search's ASHA rungs: steps m·ηⁱ, which no single
    /// interval hits without evaluating in between). Same answer on every rank.
    public var evaluateAt: ((_ step: Int) -> Bool)?
    /// The step training actually ended at (less than `totalSteps` if `afterEvaluation` ended it).
    public private(set) var finalStep = 0
    private var skippedSteps = 0
    /// The fp32 master weights at the end of `run()`, for export.
    private var exportParameters: FloatBuffer?
    /// The online gradient noise scale (logged as `noise_scale`).
    public private(set) var noiseScale: GradientNoiseScale
    private var consecutiveBadSteps = 0
    private let schedule: LRSchedule
    /// Each step's global batch and data position (`train.batch_schedule`; fixed by default).
    public private(set) var batchSchedule: BatchSchedule
    /// Rank 0's run directory and console: settable after construction, because the command claims the directory
    /// only once every rank has built its trainer (restoring a checkpoint can still reject the input).
    public var output: RunDirectory?
    public var console: Console?
    /// The newest checkpoint of this run so far (the resumed one until this run writes one): named when training
    /// stops because it blew up, as the place to continue from.
    public private(set) var lastCheckpoint: String?
    /// `checkpoint.async`: the periodic checkpoint being written in the background, until it is committed.
    private var pendingCheckpoint: BackgroundCheckpoint?
    /// Seconds this rank's loop spent in checkpoint calls (summary's `checkpoint_seconds`).
    private var checkpointSeconds = 0.0

    /// - Parameters:
    ///   - output: rank 0's run directory (nil on other ranks, and in tests that write nothing).
    ///   - console: rank 0's console (nil elsewhere).
    ///   - resume: a verified checkpoint to continue from (any world size and ZeRO stage).
    public init(plan: TrainingPlan, comm: Communicator, output: RunDirectory? = nil, console: Console? = nil,
                resume: LoadedCheckpoint? = nil) throws {
        let config = plan.config
        precondition(comm.size == config.worldSize, "config validated for \(config.worldSize) ranks, world has \(comm.size)")
        self.config = config
        self.comm = comm
        self.task = plan.task
        self.output = output
        self.console = console
        totalSteps = plan.totalSteps
        let model = plan.task.model
        // Shard plan first (identical on every rank), then the model adopts its layout.
        let shardPlan = ShardPlan(table: model.table, groups: plan.groups, worldSize: comm.size)
        model.adopt(layout: shardPlan.table)
        let resolved = config.resolved
        engine = ShardedDataParallel(
            comm: comm, plan: shardPlan, stage: ZeroStage(rawValue: config.zeroStage)!, gradAccum: config.gradAccum,
            clipNorm: config.gradClip, bucketElements: config.bucketElements, workingPrecision: config.precision,
            gradientPayload: config.gradientPayload,
            layers: model.layers.map { $0.map { name in shardPlan.table.entries.firstIndex { $0.name == name }! } },
            backwardLayers: model.layersReadInBackward, gather: config.gather,
            makeOptimizer: { group, count, segments in
                OptimizerCatalog.make(group.name, count: count, segments: segments, config: resolved) },
            hyperparameters: { config.hyperparameters(for: $0.role) })
        // Every rank initialises from the same seed, so parameters start identical without a broadcast.
        if let limit = config.memoryLimitBytes { try Self.checkMemory(engine, limit: limit, stage: config.zeroStage) }
        engine.initializeParameters { model.initializeParameters($0, seed: config.seed) }
        model.precision = config.precision
        // Synchronised batch norm: the model's statistics all-reduce is the engine's (only Distributed communicates).
        if let statistics = model as? BatchStatisticsModel {
            statistics.statisticsReducer = config.syncBatchNorm ? engine.makeStatisticsReducer() : nil
        }
        schedule = config.schedule(totalSteps: totalSteps)
        noiseScale = GradientNoiseScale(decay: config.noiseScaleDecay)
        engine.measuresNoiseScale = config.measureNoiseScale
        batchSchedule = BatchSchedule(config.batchSchedule, datasetSize: plan.task.rowsPerEpoch)
        if let resume {
            try resume.checkModel(model.table, description: plan.task.modelDescription)
            try resume.restore(into: engine)
            startStep = resume.manifest.step
            skippedSteps = resume.manifest.skippedSteps
            consecutiveBadSteps = resume.manifest.consecutiveBadSteps
            lastCheckpoint = resume.path
            // The schedule's state as saved; a checkpoint without one was written by a fixed-batch run (or before
            // schedules existed): its data position is that of step `startStep` at the batch it was written with
            // (which a branch to another batch, `swift-train branch`, changes).
            let state = resume.manifest.batchSchedule
                ?? BatchSchedule.fixedState(step: startStep, batch: resume.savedGlobalBatch ?? config.globalBatch,
                                            datasetSize: plan.task.rowsPerEpoch)
            batchSchedule = BatchSchedule(config.batchSchedule, datasetSize: plan.task.rowsPerEpoch, state: state)
            if let noise = state.noise { noiseScale.state = noise }
        }
    }

    /// Validates `config` for `task` (a `TrainingPlan`) and builds the trainer: for tests and the checks, which
    /// already hold a task.
    public convenience init(config: TrainConfig, comm: Communicator, task: TrainingTask, output: RunDirectory? = nil,
                            console: Console? = nil, resume: LoadedCheckpoint? = nil) throws {
        try self.init(plan: TrainingPlan(config: config, task: task), comm: comm, output: output, console: console, resume: resume)
    }

    /// Image classification on `train`/`test` with the configured MLP.
    public convenience init(config: TrainConfig, comm: Communicator, train: ImageDataset, test: ImageDataset,
                            output: RunDirectory? = nil, console: Console? = nil, resume: LoadedCheckpoint? = nil) throws {
        try self.init(config: config, comm: comm, task: config.imageTask(train: train, test: test), output: output,
                      console: console, resume: resume)
    }

    /// `train.memory_limit_mb`: this rank's persistent training memory (parameters, gradients, optimizer state —
    /// allocated by the engine just now — and the communication buffers it will allocate on first use) against the
    /// limit, before any collective. An input error: every rank reports and stops together (`agreeOnInput`).
    static func checkMemory(_ engine: ShardedDataParallel, limit: Int, stage: Int) throws {
        let bytes = engine.predictedTrainingBytes
        guard bytes > limit else { return }
        let mib = { (b: Int) in String(format: "%.3g MiB", Double(b) / 1_048_576) }
        throw ConfigError("train.memory_limit_mb = \(mib(limit)): at zero.stage \(stage) rank \(engine.rank) needs \(mib(bytes)) " +
                          "for parameters \(mib(engine.parameterBytes)), gradients \(mib(engine.predictedGradientBytes)), optimizer " +
                          "state \(mib(engine.optimizerStateBytes)) and gather buffers \(mib(engine.predictedGatherBytes)) — " +
                          (stage < 3 ? "a higher zero.stage (up to 3) or more ranks shard more of it" : "more ranks shard more of it") +
                          ", or raise the limit")
    }

    /// Recorded in checkpoints to explain a model mismatch.
    public var modelDescription: String { task.modelDescription }

    /// Runs training to the end and returns the summary (identical on every rank).
    public func run() throws -> TrainSummary {
        resetPeakResident()
        let start = Date()
        var trainSeconds = 0.0
        var windowLoss = 0.0, windowPredictions = 0, windowSamples = 0, windowSeconds = 0.0
        var lastLoss = Double.nan
        var stepTimes: [Double] = []
        stepTimes.reserveCapacity(min(max(totalSteps - startStep, 0), 1 << 20))  // a schedule's steps may differ
        var last: (loss: Double, accuracy: Double) = (.nan, .nan)
        var lastEval: BatchResult?
        // The run's length in examples: with a fixed batch B exactly `totalSteps` steps; with a batch schedule,
        // until the step at which the examples reach as many.
        let totalExamples = totalSteps * config.globalBatch
        let startExamples = batchSchedule.state.examples

        finalStep = totalSteps
        // The command checked that the run stands before its end (`checkResumable`); an empty range is not a loop.
        precondition(startExamples < totalExamples, "resumed at step \(startStep) (\(startExamples) examples) of a \(totalExamples)-example run")
        var step = startStep
        let loopStart = Date()
        while true {
            let stepStart = Date()
            Watchdog.setStep(step)
            // Phase 1: the step's batch (the noise scale measured up to the last step), its split and data position.
            let globalBatch = batchSchedule.batch(forStep: step, noiseScale: noiseScale.value)
            let split = config.split(globalBatch: globalBatch)
            let examplesBefore = batchSchedule.state.examples
            let batchStart = batchSchedule.consume(batch: globalBatch)
            let isLast = batchSchedule.state.examples >= totalExamples
            // The lr schedule in examples (= step + 1 for a fixed batch) and the peak lr for this batch.
            let lr = schedule.lr(base: config.lr * batchSchedule.lrFactor(batch: globalBatch),
                                 step: batchSchedule.scheduleStep(examples: batchSchedule.state.examples))
            var local = BatchResult()
            for m in 0..<config.gradAccum {
                let rows = split.microBatch(rank: comm.rank, index: m)
                engine.beginMicroBatch(m, rows: rows.count)
                var batch = task.trainBatch(step: step, batchStart: batchStart, firstRow: rows.firstRow, rows: rows.count,
                                            globalBatch: globalBatch)
                if let adversarial = config.adversarial, let images = task as? ImageClassificationTask, let params = engine.params {
                    // Madry et al.: the loss is minimised on the worst case in the ε-ball of the current parameters
                    // (configuration keeps adversarial training off stage 3, which has no full parameters to attack).
                    batch = images.adversarialBatch(batch, params: params.pointer, settings: adversarial,
                                                    firstRow: examplesBefore + rows.firstRow)
                }
                // This rank's share of the gradient of the global mean loss; the engine sums the shares.
                local += model.forwardBackward(params: engine.parameters, sink: engine.sink, batch: batch,
                                               lossScale: engine.meanLossScale(globalRows: globalBatch,
                                                                               predictionsPerRow: model.predictionsPerRow))
                engine.endMicroBatch()
            }
            let report = try engine.step(lr: Float(lr))
            if report.skipped {
                skippedSteps += 1
                consecutiveBadSteps += 1
                console?.line("step \(step + 1): non-finite gradient on some rank — step skipped on every rank (\(consecutiveBadSteps) in a row)")
                try stopIfParametersNonFinite(after: step + 1)  // non-finite weights give non-finite gradients
                if config.maxBadSteps > 0 && consecutiveBadSteps >= config.maxBadSteps {
                    try stop(.diverged(step: step + 1, count: consecutiveBadSteps, lastCheckpoint: lastCheckpoint))
                }
            } else {
                consecutiveBadSteps = 0
                if config.measureNoiseScale {
                    try measureNoiseScale(bigSquared: report.gradNorm * report.gradNorm, globalBatch: globalBatch)
                }
            }
            let seconds = Date().timeIntervalSince(stepStart)
            stepTimes.append(seconds)
            trainSeconds += seconds
            windowSeconds += seconds
            windowLoss += local.lossSum
            windowPredictions += local.predictions
            windowSamples += globalBatch

            let done = step + 1
            if isLast { finalStep = done }
            let periodic = config.checkpointEvery > 0 && done % config.checkpointEvery == 0
            if done % config.logEvery == 0 || isLast || periodic { try stopIfParametersNonFinite(after: done) }
            if done % config.logEvery == 0 || isLast {
                var sums = [windowLoss, Double(windowPredictions)]
                try engine.sumOverRanks(&sums)
                lastLoss = sums[0] / sums[1]
                let rate = Double(windowSamples) / max(windowSeconds, 1e-9)
                try logStep(done, loss: lastLoss, lr: lr, gradNorm: report.gradNorm, samplesPerSecond: rate,
                            elapsed: Date().timeIntervalSince(start), trainSeconds: trainSeconds, globalBatch: globalBatch)
                windowLoss = 0; windowPredictions = 0; windowSamples = 0; windowSeconds = 0
            }
            if isLast || (config.evalEvery > 0 && done % config.evalEvery == 0) || evaluateAt?(done) == true {
                let result = try evaluate()
                last = (result.meanLoss, result.accuracy)
                lastEval = result
                try logEval(done, result, elapsed: Date().timeIntervalSince(start))
                if let afterEvaluation, afterEvaluation(done, result, lastLoss) {
                    finalStep = done
                    break
                }
            }
            // Local work between steps (the rank-group scheduler answers other groups here); no collective.
            try betweenSteps?()
            // A signal on any rank stops every rank here, after the same step (one tiny all-reduce per step). While a
            // checkpoint is written in the background, the same all-reduce says whether every rank's files are on
            // disk; the first step where they are, every rank agrees on them and rank 0 finishes it in a thread.
            let signalled: Int32
            if let pending = pendingCheckpoint, !pending.isAgreed {
                var flags: [Int32] = [Int32(StopRequest.pending), pending.isWritten ? 0 : 1]
                try engine.maxOverRanks(&flags)
                signalled = flags[0]
                if flags[1] == 0 { try pending.agree(engine: engine) }
            } else {
                signalled = try engine.maxOverRanks(Int32(StopRequest.pending))
            }
            // Once complete, a background checkpoint is reported and released (local: no collective after agreeing).
            if let pending = pendingCheckpoint, pending.isComplete { try commitPendingCheckpoint() }
            let pause = config.stopAt > startStep && done == config.stopAt
            // No periodic checkpoint inside a streak of skipped steps: rotation would otherwise replace the last
            // checkpoint before the streak (the one to resume from) with states that are about to blow up.
            let periodicSave = periodic && consecutiveBadSteps == 0
            let stopping = signalled != 0 || pause || (isLast && config.checkpointFinal)
            if stopping || periodicSave {
                // Only periodic checkpoints go to the background: the ones training stops at must be complete first.
                try saveCheckpoint(after: done, inBackground: config.checkpointAsync && !stopping)
            }
            if signalled != 0 { try stop(.signal(signalled, step: done)) }
            if pause { try stop(.paused(step: done)) }
            if isLast { break }
            step += 1
        }

        try commitPendingCheckpoint()
        let loopSeconds = Date().timeIntervalSince(loopStart)
        // Training's peak memory, before the export gather materialises the whole model (at stage 3).
        let trainingPeakRSS = peakResidentBytes()
        // The fp32 master weights to export (in bf16 at stages 1–2, and at stage 3, gathered from their owners: a
        // collective).
        exportParameters = try engine.masterParameters()
        // Memory and update time per rank, gathered so rank 0 can report every rank.
        let parameterBytes = try engine.gatherPerRank(Int64(engine.parameterBytes)).map { Int($0) }
        let stateBytes = try engine.gatherPerRank(Int64(engine.optimizerStateBytes)).map { Int($0) }
        let gradientBytes = try engine.gatherPerRank(Int64(engine.gradientBytes)).map { Int($0) }
        let peakRSS = try engine.gatherPerRank(Int64(trainingPeakRSS)).map { Int($0) }
        let gatherBytes = try engine.gatherPerRank(Int64(engine.gatherBufferBytes)).map { Int($0) }
        let updateTimes = try engine.gatherPerRank(engine.updateSeconds / Double(max(totalSteps, 1)))
        stepTimes.sort()
        let medianStep = stepTimes.isEmpty ? .nan : stepTimes[stepTimes.count / 2]
        var summary = TrainSummary(
            worldSize: comm.size, globalBatch: config.globalBatch, perRankBatch: config.perRankBatch,
            gradAccum: config.gradAccum, steps: finalStep,
            epochs: Double(batchSchedule.state.examples) / Double(task.rowsPerEpoch),
            finalTrainLoss: lastLoss, evalLoss: last.loss, evalAccuracy: last.accuracy,
            samplesPerSecond: Double(batchSchedule.state.examples - startExamples) / max(trainSeconds, 1e-9),
            medianStepSamplesPerSecond: Double(config.globalBatch) / medianStep, medianStepSeconds: medianStep,
            trainSeconds: trainSeconds, wallSeconds: Date().timeIntervalSince(start), paramCount: model.table.count,
            skippedSteps: skippedSteps, zeroStage: config.zeroStage, precision: config.precision.rawValue,
            parameterBytesPerRank: parameterBytes, optimizerStateBytesPerRank: stateBytes,
            gradientBytesPerRank: gradientBytes, peakRSSBytesPerRank: peakRSS, optimizerSecondsPerStepPerRank: updateTimes,
            communicationWaitSeconds: engine.communicationWaitSeconds,
            gradientBytesSentPerStep: Double(engine.gradientBytesSent) / Double(max(finalStep - startStep, 1)))
        let ranSteps = Double(max(finalStep - startStep, 1))
        summary.gatherBufferBytesPerRank = gatherBytes
        summary.checkpointSeconds = checkpointSeconds
        summary.loopSeconds = loopSeconds
        summary.exposedGatherSecondsPerStep = engine.exposedGatherSeconds / ranSteps
        summary.parameterBytesReceivedPerStep = engine.stage == .parameters
            ? Double(engine.layerGatherBytesReceived) / ranSteps : Double(engine.weightBytesReceivedPerStep)
        if let lastEval { summary.evalExtras = Dictionary(uniqueKeysWithValues: task.evaluationMetrics(lastEval)) }
        return summary
    }

    /// Feeds the noise-scale estimator: the small-batch norms are averaged over ranks (one all-reduce of two
    /// doubles); the big batch is the global batch, whose averaged gradient norm the step already measured.
    private func measureNoiseScale(bigSquared: Double, globalBatch: Int) throws {
        let local = engine.smallBatchNorms(globalRows: globalBatch)
        var sums = [local.sumSquares, Double(local.count), local.sumInverseRows]
        try engine.sumOverRanks(&sums)
        guard sums[1] > 0 else { return }
        // Small batches of unequal sizes b_i: E[mean ‖g_i‖²] = |G|² + tr Σ · mean(1/b_i), so the harmonic mean of
        // the b_i is the small batch size that keeps the estimators unbiased.
        noiseScale.update(smallSquared: sums[0] / sums[1], smallBatch: sums[1] / sums[2], bigSquared: bigSquared,
                          bigBatch: Double(globalBatch))
    }

    /// Ends training early on every rank: rank 0 reports why, then all ranks meet once more before any exits, so
    /// mpirun does not tear the job down while the message is still on its way.
    private func stop(_ reason: @autoclosure () -> TrainingStopped) throws -> Never {
        // A checkpoint still being written is completed first, so the reason names it as the last checkpoint.
        try commitPendingCheckpoint()
        let reason = reason()
        // On stdout (the console) as well as stderr: after SIGINT, mpirun keeps forwarding stdout only.
        if comm.rank == 0 {
            if let console { console.line("swift-train: \(reason)") } else { printError("swift-train: \(reason)") }
        }
        try engine.synchronize()
        throw reason
    }

    /// Stops every rank if an update left non-finite parameters (a NaN weight would otherwise be checkpointed and
    /// the stop blamed on gradients). One pass over the buffer, only at log and checkpoint steps and skipped steps
    /// (steps every rank takes alike), and one 4-byte all-reduce so that all agree: ranks need not hold the same
    /// bits (with bf16 at stages 1–2 a rank holds rounded copies of the tensors it does not own).
    private func stopIfParametersNonFinite(after step: Int) throws {
        let local: Int32 = engine.localParametersAreFinite ? 0 : 1
        guard try engine.maxOverRanks(local) != 0 else { return }
        try stop(.nonFiniteParameters(step: step, lastCheckpoint: lastCheckpoint))
    }

    /// Writes a checkpoint after `step` completed steps (collective; no-op without a run directory). In the
    /// background, the state is copied now and written by a thread; it is complete at a later step boundary
    /// (`commitPendingCheckpoint`). A pending checkpoint is always committed before the next one starts.
    public func saveCheckpoint(after step: Int, inBackground: Bool = false) throws {
        guard let root = checkpointRoot else { return }
        try commitPendingCheckpoint()
        let began = Date()
        defer { checkpointSeconds += Date().timeIntervalSince(began) }
        var run = Checkpoint.RunState(step: step, model: task.modelDescription, table: model.table, dataSeed: config.seed,
                                      skippedSteps: skippedSteps, consecutiveBadSteps: consecutiveBadSteps,
                                      config: config.resolved.yaml())
        // A fixed batch's state is a function of the step (checkpoints stay as they were); a schedule's is not.
        if config.batchSchedule.kind != .fixed {
            var schedule = batchSchedule
            schedule.record(noise: noiseScale.state)
            run.batchSchedule = schedule.state
        }
        if inBackground {
            pendingCheckpoint = BackgroundCheckpoint(
                try Checkpoint.snapshot(engine, run: run, runDirectory: root, keep: config.checkpointKeep))
            return
        }
        let path = try Checkpoint.save(engine, run: run, runDirectory: root, keep: config.checkpointKeep)
        lastCheckpoint = path
        console?.line("checkpoint: \(path)")
    }

    /// Completes the checkpoint being written in the background, if any, waiting as needed (collective: every rank
    /// has the same pending checkpoint in the same phase, since they all started and agreed on it at the same step).
    private func commitPendingCheckpoint() throws {
        guard let pending = pendingCheckpoint else { return }
        pendingCheckpoint = nil
        let began = Date()
        defer { checkpointSeconds += Date().timeIntervalSince(began) }
        let path = try pending.complete(engine: engine)
        lastCheckpoint = path
        console?.line("checkpoint: \(path) (written in the background)")
    }

    /// Held-out loss and accuracy: each rank evaluates its share, then one all-reduce of the sums.
    public func evaluate() throws -> BatchResult {
        try task.evaluateOverRanks(params: engine.parameters, rank: comm.rank, world: comm.size) { try engine.sumOverRanks(&$0) }
    }

    private func logStep(_ step: Int, loss: Double, lr: Double, gradNorm: Double, samplesPerSecond: Double,
                         elapsed: Double, trainSeconds: Double, globalBatch: Int) throws {
        guard comm.rank == 0 else { return }
        var o = JSONObject()
        o.add("step", step)
        o.add("epoch", Double(batchSchedule.state.examples) / Double(task.rowsPerEpoch))
        if config.batchSchedule.kind != .fixed {
            o.add("global_batch", globalBatch)
            o.add("examples", batchSchedule.state.examples)
        }
        o.add("loss", loss)
        o.add("lr", lr)
        o.add("grad_norm", gradNorm)
        if let b = noiseScale.value { o.add("noise_scale", b) }
        o.add("samples_per_sec", samplesPerSecond)
        o.add("elapsed_sec", elapsed)
        try output?.appendMetrics(o)
        let eta = trainSeconds / Double(max(step - startStep, 1)) * Double(totalSteps - step)
        let text = String(format: "step %\(String(totalSteps).count)d/%d  loss %.4f  lr %.2e  %.0f samples/s  ETA %@",
                          step, totalSteps, loss, lr, samplesPerSecond, formatDuration(eta))
        if let console {
            if console.isTerminal { console.progress(text, now: elapsed, force: step == totalSteps) } else { console.line(text) }
        }
    }

    private func logEval(_ step: Int, _ r: BatchResult, elapsed: Double) throws {
        guard comm.rank == 0 else { return }
        var o = JSONObject()
        o.add("step", step)
        o.add("eval_loss", r.meanLoss)
        o.add("eval_accuracy", r.accuracy)
        // One loss-and-gradient evaluation of the global batch per step: the x axis gradient-free runs are compared on.
        o.add("function_evaluations", step)
        o.add("elapsed_sec", elapsed)
        var extras = ""
        for (k, v) in task.evaluationMetrics(r) { o.add(k, v); extras += String(format: "  %@ %.4f", k, v) }
        try output?.appendMetrics(o)
        console?.line(String(format: "eval @ step %d: loss %.4f  accuracy %.4f", step, r.meanLoss, r.accuracy) + extras)
    }
}

extension Trainer {
    /// The parameters as safetensors bytes (names and shapes from the parameter table): the fp32 master weights
    /// after `run()` (in bf16 working precision, not the bf16 copy the model read; at stage 3 gathered from the
    /// owners), else the current parameters (stages 0–2).
    public func modelSafeTensors() -> Foundation.Data {
        guard let parameters = exportParameters ?? engine.params else {
            preconditionFailure("at ZeRO stage 3 the model is exported after run(), which gathers it")
        }
        return SafeTensors.encode(model.table.safeTensors(from: UnsafeBufferPointer(parameters.buffer)),
                           metadata: ["format": "swift-train", "model": task.modelDescription, "config": config.resolved.yaml()])
    }
}

/// Why training ended early (the CLI turns these into a message and a non-zero exit status).
public enum TrainingStopped: Error, CustomStringConvertible {
    case signal(Int32, step: Int)
    case diverged(step: Int, count: Int, lastCheckpoint: String?)
    /// An update left non-finite parameters (found at a log or checkpoint step, or when a step was skipped).
    case nonFiniteParameters(step: Int, lastCheckpoint: String?)
    /// `train.stop_at` reached: a checkpoint was written; not an error.
    case paused(step: Int)

    public var description: String {
        switch self {
        case let .signal(sig, step):
            return "stopped by \(sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal \(sig)") after step \(step); " +
                "a checkpoint was written — continue with --resume"
        case let .paused(step):
            return "paused after step \(step) (train.stop_at); a checkpoint was written — continue with --resume"
        case let .diverged(step, count, lastCheckpoint):
            return "\(count) consecutive steps had a non-finite gradient (last: step \(step)); training stopped. " +
                "Lower optimizer.lr or enable train.grad_clip; " + Self.resumeAdvice(lastCheckpoint)
        case let .nonFiniteParameters(step, lastCheckpoint):
            return "after step \(step) the parameters are non-finite (NaN or ∞): an update blew up; training stopped and " +
                "no checkpoint of that state was written. Check the optimizer settings (a small optimizer.eps or " +
                "optimizer.damping, a large optimizer.lr); " + Self.resumeAdvice(lastCheckpoint)
        }
    }

    private static func resumeAdvice(_ lastCheckpoint: String?) -> String {
        lastCheckpoint.map { "the last checkpoint before it is \($0): continue from it with --resume \($0) and other settings" }
            ?? "no checkpoint was written before it: start again with other settings"
    }

    public var exitCode: Int32 {
        switch self {
        case let .signal(sig, _): return 128 + sig
        case .diverged, .nonFiniteParameters: return 3
        case .paused: return 0
        }
    }
}

/// SIGINT/SIGTERM set a flag; the training loop checks it once per step (all ranks agree through an all-reduce),
/// checkpoints and stops. A second signal while that is in progress is left to the default action.
public enum StopRequest {
    nonisolated(unsafe) static var pending: sig_atomic_t = 0
    /// Whether SIGINT/SIGTERM arrived (the sweep's rank-group coordinator stops handing out points).
    public static var isPending: Bool { pending != 0 }

    public static func install() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { received in
                StopRequest.pending = received
                signal(received, SIG_DFL)
            }
        }
    }
}
