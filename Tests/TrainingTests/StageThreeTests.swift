import Datasets
import Distributed
import Models
import SwiftMPI
import Tensors
import TestSupport
import Training
import XCTest

/// ZeRO stage 3's own settings and limits (its equivalence with stage 0 is in ShardingTests and the mpi checks).
final class StageThreeTests: XCTestCase {
    private func config(_ overrides: [String], world: Int) throws -> TrainConfig {
        try StageEquivalence.config(stage: 3, world: world, overrides: StageEquivalence.families[1].overrides + overrides)
    }

    private func train(_ overrides: [String], world: Int) throws -> [(params: [Float], summary: TrainSummary, gatherBytes: Int,
                                                                        largestLayer: Int)] {
        let data = StageEquivalence.data(), config = try config(overrides, world: world)
        return try SimulatedWorld.run(size: world) { comm in
            let trainer = try Trainer(config: config, comm: comm, train: data.train, test: data.test)
            let summary = try trainer.run()
            return (try trainer.engine.masterParameters().array, summary, trainer.engine.gatherBufferBytes,
                    trainer.engine.largestLayerElements)
        }
    }

    /// Prefetch depth and resharding change when a layer is gathered, never what arrives: the same owners' bits, so
    /// the parameters after k steps are bit-identical. Keeping layers from forward to backward gathers each layer
    /// once per micro-batch instead of twice (the MLP's layer 0 is not read in backward, so: fewer bytes, not half).
    /// The working buffers stay within (depth + 2) × the largest layer: the layer computing, the prefetched ones,
    /// and the last layer, which the model keeps from forward into backward.
    func testPrefetchAndReshardingChangeTimingNotResults() throws {
        let world = 3
        let reference = try train(["zero.prefetch=1"], world: world)
        for (overrides, depth) in [(["zero.prefetch=0"], 0), (["zero.prefetch=3"], 3),
                                   (["zero.prefetch=1", "zero.reshard_after_forward=false"], 1)] {
            let runs = try train(overrides, world: world)
            XCTAssertEqual(runs[0].params, reference[0].params, "\(overrides) changed the parameters")
            for r in runs where overrides.count == 1 {
                XCTAssertLessThanOrEqual(r.gatherBytes, (depth + 2) * r.largestLayer * 4, "\(overrides): working buffers")
                XCTAssertGreaterThan(r.gatherBytes, 0)
            }
        }
        let kept = try train(["zero.reshard_after_forward=false"], world: world)
        XCTAssertLessThan(kept[0].summary.parameterBytesReceivedPerStep, reference[0].summary.parameterBytesReceivedPerStep,
                          "keeping layers to backward gathers less")
        XCTAssertGreaterThan(kept[0].summary.parameterBytesReceivedPerStep, 0)
    }

    /// `train.memory_limit_mb` between stage 3's and stage 2's per-rank figure: stage 2 is refused at start-up with a
    /// message naming the limit, the figure and the way out; stage 3 trains. Six equal hidden layers, so the saved
    /// parameters (3/4 of them on 4 ranks) outweigh stage 3's working buffers (three layers' worth).
    func testMemoryLimitRefusesStageTwoAndFitsStageThree() throws {
        let world = 4, data = StageEquivalence.data()
        let deep = StageEquivalence.families[1].overrides + ["model.hidden=[64, 64, 64, 64, 64, 64]"]
        func predicted(stage: Int) throws -> Int {
            let c = try StageEquivalence.config(stage: stage, world: world, overrides: deep)
            return try SimulatedWorld.run(size: world) { comm in
                try Trainer(config: c, comm: comm, train: data.train, test: data.test).engine.predictedTrainingBytes
            }.max()!
        }
        let two = try predicted(stage: 2), three = try predicted(stage: 3)
        XCTAssertLessThan(three, two)
        let limitMB = Double(two + three) / 2 / 1_048_576
        let limit = "train.memory_limit_mb=\(limitMB)"
        let refused = try StageEquivalence.config(stage: 2, world: world, overrides: deep + [limit])
        let errors = try SimulatedWorld.run(size: world) { comm -> String in
            do { _ = try Trainer(config: refused, comm: comm, train: data.train, test: data.test); return "" } catch { return "\(error)" }
        }
        for e in errors {
            XCTAssertTrue(e.contains("train.memory_limit_mb") && e.contains("zero.stage 2") && e.contains("up to 3"), e)
        }
        let fits = try StageEquivalence.config(stage: 3, world: world, overrides: deep + [limit])
        let summaries = try SimulatedWorld.run(size: world) { comm in
            try Trainer(config: fits, comm: comm, train: data.train, test: data.test).run()
        }
        XCTAssertTrue(summaries[0].finalTrainLoss.isFinite)
    }

    /// Stage 3 needs the model's layers; a model that lists none (the default: one unit of every tensor) is refused
    /// by the plan, before any rank communicates.
    func testStageThreeRefusesAModelWithoutLayers() throws {
        let data = StageEquivalence.data(), config = try config([], world: 1)
        let task = WholeModelTask(config.imageTask(train: data.train, test: data.test))
        XCTAssertThrowsError(try TrainingPlan(config: config, task: task)) { error in
            XCTAssertTrue("\(error)".contains("zero.stage = 3") && "\(error)".contains("zero.stage=2"), "\(error)")
        }
        XCTAssertNoThrow(try TrainingPlan(config: try StageEquivalence.config(stage: 2, world: 1, overrides: []), task: task))
    }

    func testBadGatherSettingsNameTheKey() {
        var c = ResolvedConfig()
        for assignment in ["zero.prefetch=-1", "zero.stage=4", "zero.reshard_after_forward=sometimes", "train.memory_limit_mb=-5"] {
            XCTAssertThrowsError(try c.override(assignment)) { error in
                XCTAssertTrue("\(error)".contains(String(assignment.split(separator: "=")[0])), "\(assignment): \(error)")
            }
        }
    }
}

/// An MLP behind the default `Model` layering (one unit of every tensor), as a model written against the flat
/// buffer alone would be.
private final class WholeModel: Model {
    let inner: MLP
    init(_ inner: MLP) { self.inner = inner }
    var table: ParameterTable { inner.table }
    func adopt(layout: ParameterTable) { inner.adopt(layout: layout) }
    var predictionsPerRow: Int { inner.predictionsPerRow }
    var precision: GEMMPrecision {
        get { inner.precision }
        set { inner.precision = newValue }
    }
    func initializeParameters(_ params: UnsafeMutableBufferPointer<Float>, seed: UInt64) { inner.initializeParameters(params, seed: seed) }
    func forward(params: UnsafePointer<Float>, batch: ModelBatch) -> BatchResult { inner.forward(params: params, batch: batch) }
    func forwardBackward(params: UnsafePointer<Float>, sink: GradientSink, batch: ModelBatch, lossScale: Float) -> BatchResult {
        inner.forwardBackward(params: params, sink: sink, batch: batch, lossScale: lossScale)
    }
}

private final class WholeModelTask: TrainingTask {
    let inner: ImageClassificationTask
    let model: Model
    init(_ inner: ImageClassificationTask) {
        self.inner = inner
        model = WholeModel(inner.mlp)
    }
    var modelDescription: String { "whole " + inner.modelDescription }
    var rowsPerEpoch: Int { inner.rowsPerEpoch }
    func trainBatch(step: Int, firstRow: Int, rows: Int, globalBatch: Int) -> ModelBatch {
        inner.trainBatch(step: step, firstRow: firstRow, rows: rows, globalBatch: globalBatch)
    }
    func evaluate(params: ParameterSource, rank: Int, world: Int) -> BatchResult { inner.evaluate(params: params, rank: rank, world: world) }
    func evaluationMetrics(_ result: BatchResult) -> [(String, Double)] { [] }
}
