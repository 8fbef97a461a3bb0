// Training with a population method (`train.method`: es, ga, sa) instead of back-propagation. Per step every rank
// takes the *whole* global batch (the same examples on every rank), scores its members of the population on it, and
// the losses are combined with one all-reduce (Distributed.CommunicatorPopulationExchange); the method's state is
// replicated, so no parameter vector ever moves between ranks. Logging and evaluation follow the gradient trainer:
// functions of the step index alone, so every rank issues the same collectives in the same order.

import Datasets
import Distributed
import Foundation
import GradientFree
import Models
import Optimizers
import SwiftMPI
import Tensors

/// The loss of a candidate parameter vector on the current batch: mean cross-entropy over its rows.
final class BatchLossObjective: PopulationObjective {
    let model: Model
    var batch: ModelBatch?
    init(model: Model) { self.model = model }
    var dimension: Int { model.table.count }
    func loss(_ params: UnsafeBufferPointer<Float>) -> Double {
        let result = model.forward(params: params.baseAddress!, batch: batch!)
        return result.lossSum / Double(result.predictions)
    }
}

public final class PopulationTrainer {
    public let config: TrainConfig
    public let task: TrainingTask
    public let method: PopulationMethod
    public let exchange: CommunicatorPopulationExchange
    public let totalSteps: Int
    /// The method's current solution (D), written before each evaluation and at the end.
    public let params: FloatBuffer
    private let schedule: LRSchedule
    /// Rank 0's run directory and console (set once the directory is claimed, after every rank agreed on the input).
    public var output: RunDirectory?
    public var console: Console?
    /// First step to run: 0, or the step a resumed checkpoint was taken after.
    public private(set) var startStep = 0
    /// Run directory path (rank 0 writes checkpoints there); nil disables checkpoints.
    public var checkpointRoot: String?

    /// - resume: a population checkpoint (`PopulationCheckpoint.load`) to continue from; its method must be this run's.
    public init(plan: TrainingPlan, comm: Communicator, output: RunDirectory? = nil, console: Console? = nil,
                resume: LoadedPopulationCheckpoint? = nil) throws {
        guard let settings = plan.config.population else { preconditionFailure("PopulationTrainer needs train.method es, ga or sa") }
        config = plan.config
        task = plan.task
        totalSteps = plan.totalSteps
        self.output = output
        self.console = console
        exchange = CommunicatorPopulationExchange(comm: comm)
        let model = task.model, d = model.table.count
        params = FloatBuffer(count: d)
        model.initializeParameters(params.buffer, seed: config.seed)  // the same start on every rank
        model.precision = config.precision  // bf16 evaluations round the GEMM operands, as in gradient training
        let start = UnsafeBufferPointer(params.buffer)
        switch settings {
        case .es(let s):
            // One optimizer over the whole buffer, with the configured weight decay per tensor role.
            let config = plan.config
            let segments = makeSegments(table: model.table, owned: 0..<d,
                                        weightDecay: { config.hyperparameters(for: $0).weightDecay },
                                        lrScale: { config.hyperparameters(for: $0).lrScale })
            let optimizer = OptimizerCatalog.make(config.optimizerName, count: d, segments: segments, config: config.resolved)
            method = EvolutionStrategy(initial: start, settings: s, optimizer: optimizer, segments: segments)
        case .ga(let s): method = GeneticAlgorithm(initial: start, settings: s)
        case .sa(let s): method = SimulatedAnnealing(initial: start, settings: s)
        }
        schedule = config.schedule(totalSteps: totalSteps)
        if let resume {
            guard resume.manifest.method == method.name else {
                throw CheckpointError("the checkpoint was written by train.method \(resume.manifest.method), this run is \(method.name)")
            }
            try method.importState(resume.state)
            startStep = resume.manifest.step
        }
    }

    public var comm: Communicator { exchange.comm }

    public func run() throws -> TrainSummary {
        let start = Date()
        let objective = BatchLossObjective(model: task.model)
        var trainSeconds = 0.0, windowLoss = 0.0, windowSteps = 0, windowSeconds = 0.0, windowEvaluations = 0
        // Every step scores exactly populationSize candidates, so a resumed run counts from where the first left off.
        var evaluations = startStep * method.populationSize, lastLoss = Double.nan
        var last: (loss: Double, accuracy: Double) = (.nan, .nan)
        var stepTimes: [Double] = [], stepBytes = 0
        for step in startStep..<totalSteps {
            let stepStart = Date()
            objective.batch = task.trainBatch(step: step, firstRow: 0, rows: config.globalBatch, globalBatch: config.globalBatch)
            let lr = schedule.lr(base: config.lr, step: step + 1)
            let bytesBefore = exchange.bytesSent
            let result = try method.step(objective: objective, exchange: exchange, lr: Float(lr))
            stepBytes += exchange.bytesSent - bytesBefore
            let seconds = Date().timeIntervalSince(stepStart)
            stepTimes.append(seconds)
            trainSeconds += seconds; windowSeconds += seconds
            windowLoss += result.meanLoss; windowSteps += 1
            evaluations += result.evaluations; windowEvaluations += result.evaluations

            let done = step + 1
            if done % config.logEvery == 0 || done == totalSteps {
                // Every rank holds the same losses: the window mean needs no collective.
                lastLoss = windowLoss / Double(windowSteps)
                try log(done, loss: lastLoss, best: result.bestLoss, lr: lr, evaluations: evaluations,
                        evaluationsPerSecond: Double(windowEvaluations) / max(windowSeconds, 1e-9),
                        elapsed: Date().timeIntervalSince(start))
                windowLoss = 0; windowSteps = 0; windowSeconds = 0; windowEvaluations = 0
            }
            if done == totalSteps || (config.evalEvery > 0 && done % config.evalEvery == 0) {
                let r = try evaluate()
                last = (r.meanLoss, r.accuracy)
                if comm.rank == 0 {
                    var o = JSONObject()
                    o.add("step", done); o.add("eval_loss", r.meanLoss); o.add("eval_accuracy", r.accuracy)
                    o.add("function_evaluations", evaluations); o.add("elapsed_sec", Date().timeIntervalSince(start))
                    try output?.appendMetrics(o)
                    console?.line(String(format: "eval @ step %d: loss %.4f  accuracy %.4f  (%d function evaluations)", done,
                                         r.meanLoss, r.accuracy, evaluations))
                }
            }
            // A signal on any rank stops every rank after this step (one tiny all-reduce per step, as in Trainer).
            let signalled = try exchange.maxOverRanks(Int32(StopRequest.pending))
            let pause = config.stopAt > startStep && done == config.stopAt
            let periodic = config.checkpointEvery > 0 && done % config.checkpointEvery == 0
            // The state is replicated: rank 0 writes it alone, with no collective.
            if let root = checkpointRoot, comm.rank == 0,
               signalled != 0 || pause || periodic || (done == totalSteps && config.checkpointFinal) {
                let path = try PopulationCheckpoint.save(method, step: done, config: config.resolved.yaml(), runDirectory: root)
                console?.line("checkpoint: \(path)")
            }
            if signalled != 0 || pause {
                let reason: TrainingStopped = signalled != 0 ? .signal(signalled, step: done) : .paused(step: done)
                if comm.rank == 0 { console?.line("swift-train: \(reason)") }
                try exchange.synchronize()  // rank 0's checkpoint is complete before any rank exits
                throw reason
            }
        }
        stepTimes.sort()
        let median = stepTimes.isEmpty ? .nan : stepTimes[stepTimes.count / 2]
        var summary = TrainSummary(
            worldSize: comm.size, globalBatch: config.globalBatch, perRankBatch: config.globalBatch, gradAccum: 1,
            steps: totalSteps, epochs: Double(totalSteps * config.globalBatch) / Double(task.rowsPerEpoch),
            finalTrainLoss: lastLoss, evalLoss: last.loss, evalAccuracy: last.accuracy,
            samplesPerSecond: Double((totalSteps - startStep) * config.globalBatch) / max(trainSeconds, 1e-9),
            medianStepSamplesPerSecond: Double(config.globalBatch) / median, medianStepSeconds: median,
            trainSeconds: trainSeconds, wallSeconds: Date().timeIntervalSince(start), paramCount: task.model.table.count,
            skippedSteps: 0, zeroStage: 0, precision: config.precision.rawValue,
            parameterBytesPerRank: [params.byteCount], optimizerStateBytesPerRank: [], gradientBytesPerRank: [],
            peakRSSBytesPerRank: [peakResidentBytes()], optimizerSecondsPerStepPerRank: [], communicationWaitSeconds: 0,
            gradientBytesSentPerStep: 0)
        summary.evalExtras = ["function_evaluations": Double(evaluations),
                              "function_evaluations_per_sec": Double(evaluations - startStep * method.populationSize) / max(trainSeconds, 1e-9),
                              "exchange_bytes_per_step_per_rank": Double(stepBytes) / Double(max(totalSteps - startStep, 1))]
        return summary
    }

    /// Test loss and accuracy of the current solution: each rank its share, one sum over ranks.
    public func evaluate() throws -> BatchResult {
        method.writeSolution(into: params.buffer)
        return try task.evaluateOverRanks(params: FlatParameters(base: params.pointer, table: task.model.table), rank: comm.rank, world: comm.size) { try exchange.sumOverRanks(&$0) }
    }

    /// The current solution as safetensors bytes.
    public func modelSafeTensors() -> Foundation.Data {
        method.writeSolution(into: params.buffer)
        return SafeTensors.encode(task.model.table.safeTensors(from: UnsafeBufferPointer(params.buffer)),
                                  metadata: ["format": "swift-train", "model": task.modelDescription, "config": config.resolved.yaml()])
    }

    private func log(_ step: Int, loss: Double, best: Double, lr: Double, evaluations: Int, evaluationsPerSecond: Double,
                     elapsed: Double) throws {
        guard comm.rank == 0 else { return }
        var o = JSONObject()
        o.add("step", step)
        o.add("epoch", Double(step * config.globalBatch) / Double(task.rowsPerEpoch))
        o.add("loss", loss)
        o.add("best_member_loss", best)
        o.add("lr", lr)
        o.add("function_evaluations", evaluations)
        o.add("function_evaluations_per_sec", evaluationsPerSecond)
        o.add("elapsed_sec", elapsed)
        try output?.appendMetrics(o)
        console?.line(String(format: "step %d/%d  population mean loss %.4f  best %.4f  %.0f evaluations/s", step, totalSteps,
                             loss, best, evaluationsPerSecond))
    }
}
