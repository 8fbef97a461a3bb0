import Datasets
import Tensors
import SwiftMPI
import Training

/// ZeRO stage equivalence, shared by `swift test` (simulated ranks, Tests/TrainingTests/ShardingTests.swift) and
/// swift-train-mpi-checks (real MPI): the same optimizer families, the same configuration and the same tolerance.
///
/// Stages 1, 2 and 3 after k steps give the parameters of stage 0 on the same ranks: only the reduction (all-reduce
/// vs reduce-scatter), who applies each update and (stage 3) where the model reads its weights from differ — the
/// gathered weights are the owners' bits — so the tolerance is float rounding, 1e-5 relative to max(1, |θ|). Buckets are small enough to split tensors into row blocks, with two micro-batches per step and
/// clipping on, so every path of the engine is exercised.
public enum StageEquivalence {
    /// One family per sharding class (element-wise, per-tensor norm, whole matrix), with the settings each needs.
    public static let families: [(name: String, overrides: [String])] = [
        ("sgd-momentum", ["optimizer.name=sgd", "optimizer.momentum=0.9"]),
        ("adamw", ["optimizer.name=adamw"]),
        ("lamb", ["optimizer.name=lamb", "optimizer.weight_decay=0.01"]),
        ("lars", ["optimizer.name=lars", "optimizer.lr=0.5", "optimizer.weight_decay=0.0005"]),
        ("muon+adamw", ["optimizer.name=adamw", "groups.matrix.optimizer=muon", "groups.matrix.lr=0.02"]),
        ("shampoo", ["optimizer.name=shampoo", "optimizer.lr=0.003", "optimizer.graft=adam"]),
    ]
    /// bf16 working precision (forced, so the check runs on any CPU) for one family per sharding class: every stage
    /// rounds the same fp32 masters to the same bf16 weights, so the stages still differ only by the reduction's
    /// float rounding and the fp32 tolerance applies (a master within 1e-5 of a rounding boundary could round the
    /// other way on one stage; these runs do not meet one, and if one did the check would say so).
    public static let bf16Families: [(name: String, overrides: [String])] = ["adamw", "lamb", "muon+adamw"].map { name in
        (name + " bf16", families.first { $0.name == name }!.overrides + ["train.precision=bf16", "train.force_bf16=true"])
    }
    /// Every family checked: fp32, then bf16.
    public static var allFamilies: [(name: String, overrides: [String])] { families + bf16Families }
    public static let tolerance: Float = 1e-5
    public static let steps = 12

    /// The synthetic data set of the check (24 features, 5 classes).
    public static func data() -> (train: ImageDataset, test: ImageDataset) {
        (ImageDataset.synthetic(count: 600, featureCount: 24, classes: 5, seed: 7),
         ImageDataset.synthetic(count: 50, featureCount: 24, classes: 5, seed: 8))
    }

    /// The configuration of `family` at `stage` for `world` ranks.
    public static func config(stage: Int, world: Int, overrides: [String]) throws -> TrainConfig {
        let c = try ResolvedConfig(name: "stages", overrides: [
            "model.hidden=[20, 16]", "train.steps=\(steps)", "train.global_batch=\(8 * world)", "train.grad_accum=2",
            "train.log_every=6", "optimizer.lr=0.01", "zero.stage=\(stage)", "zero.bucket_mb=0.001", "train.grad_clip=10",
        ] + overrides)
        return try TrainConfig(c, worldSize: world)
    }

    /// Trains on this rank (collective over `comm`); returns the final (fp32 master) parameters and the summary.
    public static func train(stage: Int, overrides: [String], comm: Communicator,
                             data: (train: ImageDataset, test: ImageDataset)) throws -> (params: [Float], summary: TrainSummary) {
        let trainer = try Trainer(config: try config(stage: stage, world: comm.size, overrides: overrides), comm: comm,
                                  train: data.train, test: data.test)
        let summary = try trainer.run()
        return (try trainer.engine.masterParameters().array, summary)
    }

    // MARK: The GPT

    /// GPT families (configs/gpt-muon.yaml and gpt-adamw.yaml routes, fp32 and bf16; an untied head with gradient
    /// accumulation), on a one-block GPT of width 16: its layers are the embedding, the block and the head, so
    /// stage 3 gathers three layers with prefetch.
    public static let gptFamilies: [(name: String, overrides: [String])] = {
        let muon = ["groups.matrix.optimizer=muon", "groups.matrix.lr=0.02"], bf16 = ["train.precision=bf16", "train.force_bf16=true"]
        return [("gpt adamw", []), ("gpt muon+adamw", muon), ("gpt adamw bf16", bf16), ("gpt muon+adamw bf16", muon + bf16),
                ("gpt adamw untied head, accumulation 2", ["model.tied_head=false", "train.grad_accum=2"])]
    }()

    /// The synthetic corpus of the GPT check: 4,000 tokens of a 16-symbol vocabulary.
    public static func gptCorpus() throws -> TextCorpus {
        var rng = SplitMix64(seed: 3)
        let tokens = (0..<4000).map { _ in UInt16(rng.next() % 16) }
        return try TextCorpus(tokens: tokens, vocabulary: 16, validationFraction: 0.1, source: "synthetic")
    }

    /// Trains the GPT of the check at `stage` on this rank; returns the fp32 masters and the summary.
    public static func trainGPT(stage: Int, overrides: [String], comm: Communicator, corpus: TextCorpus) throws
        -> (params: [Float], summary: TrainSummary) {
        var c = ResolvedConfig(name: "gpt")
        for s in ["model.kind=gpt", "data.dataset=text", "model.layers=1", "model.heads=2", "model.width=16",
                  "model.context=8", "data.vocabulary=16", "train.steps=6", "train.global_batch=\(2 * comm.size)",
                  "train.log_every=3", "train.eval_sequences=4", "optimizer.lr=0.01", "zero.stage=\(stage)",
                  "zero.bucket_mb=0.001"] + overrides { try c.override(s) }
        let config = try TrainConfig(c, worldSize: comm.size)
        let task = LanguageModelTask(corpus: corpus, config: config.gpt, microBatch: config.microBatch,
                                     seed: config.seed, evalSequences: config.evalSequences)
        let trainer = try Trainer(config: config, comm: comm, task: task)
        let summary = try trainer.run()
        return (try trainer.engine.masterParameters().array, summary)
    }

    /// max |a − b| / max(1, |b|): the measure `tolerance` bounds.
    public static func worstRelativeDifference(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
    }
}
