import Datasets
import Distributed
import Optimizers
import SwiftMPI
import Tensors
import TestSupport
import Training
import XCTest

/// The shard plan and the equivalence of ZeRO stages, on simulated ranks (the same is checked under mpirun by
/// swift-train-mpi-checks).
final class ShardingTests: XCTestCase {
    /// TestSupport.StageEquivalence (families, configuration, tolerance 1e-5 relative: float rounding) on 1–4
    /// simulated ranks; every rank must also end with the same parameters, bit for bit.
    func testStagesAgreeOnSimulatedRanks() throws {
        let data = StageEquivalence.data()
        for (family, overrides) in StageEquivalence.allFamilies {
            for world in 1...4 {
                var results: [[Float]] = []
                for stage in 0...2 {
                    let params = try SimulatedWorld.run(size: world) { comm in
                        try StageEquivalence.train(stage: stage, overrides: overrides, comm: comm, data: data).params
                    }
                    for r in 1..<world { XCTAssertEqual(params[r], params[0], "\(family) stage \(stage): rank \(r) differs") }
                    results.append(params[0])
                }
                for stage in 1...2 {
                    let worst = StageEquivalence.worstRelativeDifference(results[stage], results[0])
                    XCTAssertLessThanOrEqual(worst, StageEquivalence.tolerance, "\(family) stage \(stage) vs 0 on \(world) ranks")
                }
            }
        }
    }

    func testShardedStateShrinksWithRanks() throws {
        let train = ImageDataset.synthetic(count: 240, featureCount: 10, classes: 3, seed: 9)
        var stateByWorld: [Int: [Int]] = [:]
        var gradByWorld: [Int: [Int]] = [:]
        for world in [1, 2, 4] {
            var c = ResolvedConfig(name: "mem")
            for s in ["model.hidden=[64]", "train.steps=1", "train.global_batch=\(8 * world)", "zero.stage=2",
                      "zero.bucket_mb=0.001"] { try c.override(s) }
            let config = try TrainConfig(c, worldSize: world)
            let summaries = try SimulatedWorld.run(size: world) { comm in
                try Trainer(config: config, comm: comm, train: train, test: train).run()
            }
            stateByWorld[world] = summaries[0].optimizerStateBytesPerRank
            gradByWorld[world] = summaries[0].gradientBytesPerRank
        }
        let total = stateByWorld[1]![0]
        for world in [2, 4] {
            for bytes in stateByWorld[world]! {
                // Each rank holds total/N, up to the alignment of slice boundaries (16 floats × 2 moments).
                XCTAssertEqual(Double(bytes), Double(total) / Double(world), accuracy: Double(2 * 4 * 2 * ShardPlan.alignment))
            }
            XCTAssertLessThan(gradByWorld[world]!.max()!, gradByWorld[1]![0], "stage 2 gradient memory falls with ranks")
        }
    }
}

/// The GPT language model under every ZeRO stage (configs/gpt-muon.yaml and gpt-adamw.yaml routes, in fp32 and bf16),
/// on simulated ranks: stages 1 and 2 equal stage 0, within the same float tolerance as the MLP families.
final class GPTShardingTests: XCTestCase {
    func testGPTStagesAgreeForMuonAndAdamW() throws {
        var rng = SplitMix64(seed: 3)
        let tokens = (0..<4000).map { _ in UInt16(rng.next() % 16) }
        let corpus = try TextCorpus(tokens: tokens, vocabulary: 16, validationFraction: 0.1, source: "synthetic")
        let muon = ["groups.matrix.optimizer=muon", "groups.matrix.lr=0.02"], bf16 = ["train.precision=bf16", "train.force_bf16=true"]
        for (name, overrides) in [("adamw", [String]()), ("muon+adamw", muon), ("adamw bf16", bf16), ("muon+adamw bf16", muon + bf16)] {
            for world in [2, 3] {
                var results: [[Float]] = []
                for stage in 0...2 {
                    var c = ResolvedConfig(name: "gpt")
                    for s in ["model.kind=gpt", "data.dataset=text", "model.layers=1", "model.heads=2", "model.width=16",
                              "model.context=8", "data.vocabulary=16", "train.steps=6", "train.global_batch=\(2 * world)",
                              "train.log_every=3", "train.eval_sequences=4", "optimizer.lr=0.01", "zero.stage=\(stage)",
                              "zero.bucket_mb=0.001"] + overrides { try c.override(s) }
                    let config = try TrainConfig(c, worldSize: world)
                    let params = try SimulatedWorld.run(size: world) { comm -> [Float] in
                        let task = LanguageModelTask(corpus: corpus, config: config.gpt, microBatch: config.microBatch,
                                                     seed: config.seed, evalSequences: config.evalSequences)
                        let t = try Trainer(config: config, comm: comm, task: task)
                        let summary = try t.run()
                        XCTAssertTrue(summary.evalLoss.isFinite)
                        XCTAssertNil(summary.evalExtras["eval_bits_per_byte"], "bits per byte are reported for byte vocabularies only")
                        return try t.engine.masterParameters().array
                    }
                    results.append(params[0])
                }
                for stage in 1...2 {
                    let worst = zip(results[stage], results[0]).map { abs($0 - $1) / max(1, abs($1)) }.max()!
                    XCTAssertLessThanOrEqual(worst, 1e-5, "\(name) stage \(stage) vs 0 on \(world) ranks")
                }
            }
        }
    }
}
