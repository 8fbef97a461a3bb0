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
                for stage in 0...3 {
                    let params = try SimulatedWorld.run(size: world) { comm in
                        try StageEquivalence.train(stage: stage, overrides: overrides, comm: comm, data: data).params
                    }
                    for r in 1..<world { XCTAssertEqual(params[r], params[0], "\(family) stage \(stage): rank \(r) differs") }
                    results.append(params[0])
                }
                for stage in 1...3 {
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
/// on simulated ranks: stages 1, 2 and 3 equal stage 0, within the same float tolerance as the MLP families.
final class GPTShardingTests: XCTestCase {
    func testGPTStagesAgreeForMuonAndAdamW() throws {
        let corpus = try StageEquivalence.gptCorpus()
        for (name, overrides) in StageEquivalence.gptFamilies {
            for world in [2, 3] {
                var results: [[Float]] = []
                for stage in 0...3 {
                    let runs = try SimulatedWorld.run(size: world) { comm in
                        try StageEquivalence.trainGPT(stage: stage, overrides: overrides, comm: comm, corpus: corpus)
                    }
                    XCTAssertTrue(runs[0].summary.evalLoss.isFinite)
                    XCTAssertNil(runs[0].summary.evalExtras["eval_bits_per_byte"], "bits per byte are reported for byte vocabularies only")
                    for r in 1..<world { XCTAssertEqual(runs[r].params, runs[0].params, "\(name) stage \(stage): rank \(r) differs") }
                    results.append(runs[0].params)
                }
                for stage in 1...3 {
                    let worst = StageEquivalence.worstRelativeDifference(results[stage], results[0])
                    XCTAssertLessThanOrEqual(worst, StageEquivalence.tolerance, "\(name) stage \(stage) vs 0 on \(world) ranks")
                }
            }
        }
    }
}
