import Data
import Distributed
import Optimizers
import SwiftMPI
import Tensors
import Training
import XCTest

/// The shard plan and the equivalence of ZeRO stages, on simulated ranks (the same is checked under mpirun by
/// swift-train-mpi-checks).
final class ShardingTests: XCTestCase {
    private func table() -> ParameterTable {
        var t = ParameterTable()
        t.add("l0.weight", shape: [64, 30], role: .matrix)
        t.add("l0.bias", shape: [64], role: .bias)
        t.add("l1.weight", shape: [32, 64], role: .matrix)
        t.add("l1.bias", shape: [32], role: .bias)
        t.add("l2.weight", shape: [10, 32], role: .head)
        t.add("l2.bias", shape: [10], role: .bias)
        return t
    }

    func testElementSlicesAreBalancedAlignedAndCoverEverything() {
        for world in 1...7 {
            let plan = ShardPlan(table: table(), groups: [GroupSpec(name: "adamw", sharding: .element,
                                                                    tensorNames: table().entries.map(\.name))], worldSize: world)
            let g = plan.groups[0]
            XCTAssertEqual(g.counts.reduce(0, +), table().count)
            XCTAssertLessThanOrEqual(g.counts.max()! - g.counts.min()!, 2 * ShardPlan.alignment, "world \(world): \(g.counts)")
            for r in 0..<world where g.counts[r] > 0 { XCTAssertEqual(g.owned(r).lowerBound % ShardPlan.alignment, 0) }
            XCTAssertEqual(g.owned(world - 1).upperBound, g.range.upperBound)
        }
    }

    func testMatrixGroupsOwnWholeMatricesBalancedByCost() {
        let t = table()
        let specs = [GroupSpec(name: "muon", sharding: .matrix, tensorNames: ["l0.weight", "l1.weight"]),
                     GroupSpec(name: "adamw", sharding: .element, tensorNames: ["l0.bias", "l1.bias", "l2.weight", "l2.bias"])]
        // More ranks than matrices: ranks 2 and 3 own no matrix but still own AdamW slices.
        let plan = ShardPlan(table: t, groups: specs, worldSize: 4)
        let muon = plan.groups[0]
        XCTAssertEqual(Set(muon.owners.values).count, 2, "two matrices on two different ranks")
        XCTAssertEqual(muon.counts.filter { $0 == 0 }.count, 2)
        for r in 0..<4 {
            for (entry, overlap) in plan.ownedEntries(group: 0, rank: r) {
                XCTAssertEqual(overlap, entry.range, "\(entry.name) split across ranks")
                XCTAssertEqual(muon.owners[entry.name], r)
            }
        }
        XCTAssertTrue(plan.table.sameTensors(as: t))
        XCTAssertEqual(plan.groups[1].range.upperBound, t.count)
        // Cost model: the larger matrix (64×30 → 64·30² = 57,600 vs 64·32² = 65,536) goes first to rank 0.
        XCTAssertEqual(muon.owners["l1.weight"], 0)
    }

    func testPlanIsIndependentOfCallOrderAndDeterministic() {
        let specs = [GroupSpec(name: "adamw", sharding: .element, tensorNames: table().entries.map(\.name))]
        XCTAssertEqual(ShardPlan(table: table(), groups: specs, worldSize: 3), ShardPlan(table: table(), groups: specs, worldSize: 3))
    }

    /// Stage 1 and 2 give the same parameters as stage 0 after 10 steps on 1–4 simulated ranks, with gradient
    /// accumulation. Stages differ only in who applies each element's update and in summation order of the
    /// gradient reduction (all-reduce vs reduce-scatter), so agreement is to float rounding: 1e-5 relative to
    /// max(1, |θ|), the same tolerance as the mpirun data-parallel check.
    func testStagesAgreeOnSimulatedRanks() throws {
        let train = ImageDataset.synthetic(count: 480, featureCount: 10, classes: 3, seed: 9)
        let test = ImageDataset.synthetic(count: 60, featureCount: 10, classes: 3, seed: 10)
        let families: [(String, [String])] = [
            ("adamw", ["optimizer.name=adamw"]), ("sgd", ["optimizer.name=sgd", "optimizer.momentum=0.9"]),
            ("lamb", ["optimizer.name=lamb"]), ("lars", ["optimizer.name=lars", "optimizer.lr=0.5"]),
            ("muon+adamw", ["groups.matrix.optimizer=muon", "groups.matrix.lr=0.02"]),
            ("shampoo", ["optimizer.name=shampoo", "optimizer.lr=0.003", "optimizer.graft=adam"]),
        ]
        for (optimizer, overrides) in families {
            for world in 1...4 {
                var results: [[Float]] = []
                for stage in 0...2 {
                    var c = ResolvedConfig(name: "stages")
                    for s in ["model.hidden=[12, 8]", "train.steps=10", "train.global_batch=\(24 * world)", "train.grad_accum=2",
                              "train.log_every=5", "optimizer.lr=0.01", "zero.stage=\(stage)",
                              "zero.bucket_mb=0.0002", "train.grad_clip=5"] + overrides { try c.override(s) }
                    let config = try TrainConfig(c, worldSize: world)
                    let params = try SimulatedWorld.run(size: world) { comm -> [Float] in
                        let t = try Trainer(config: config, comm: comm, train: train, test: test)
                        _ = try t.run()
                        return t.params.array
                    }
                    for r in 1..<world { XCTAssertEqual(params[r], params[0], "\(optimizer) stage \(stage): rank \(r) differs") }
                    results.append(params[0])
                }
                for stage in 1...2 {
                    let worst = zip(results[stage], results[0]).map { abs($0 - $1) / max(1, abs($1)) }.max()!
                    XCTAssertLessThanOrEqual(worst, 1e-5, "\(optimizer) stage \(stage) vs 0 on \(world) ranks")
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

/// The GPT language model under every ZeRO stage (configs/gpt-muon.yaml and gpt-adamw.yaml routes), on simulated
/// ranks: stages 1 and 2 equal stage 0, within the same float tolerance as the MLP families.
final class GPTShardingTests: XCTestCase {
    func testGPTStagesAgreeForMuonAndAdamW() throws {
        var rng = SplitMix64(seed: 3)
        let tokens = (0..<4000).map { _ in UInt16(rng.next() % 16) }
        let corpus = try TextCorpus(tokens: tokens, vocabulary: 16, validationFraction: 0.1, source: "synthetic")
        for (name, overrides) in [("adamw", [String]()), ("muon+adamw", ["groups.matrix.optimizer=muon", "groups.matrix.lr=0.02"])] {
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
                        return t.params.array
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
