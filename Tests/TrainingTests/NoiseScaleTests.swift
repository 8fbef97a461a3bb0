import Datasets
import Distributed
import Optimizers
import SwiftMPI
import Tensors
import Training
import XCTest

final class NoiseScaleTests: XCTestCase {
    /// Per-example gradients g_i = G + ε_i with ε_i ~ N(0, diag(σ²)): |G|² and tr Σ = Σσ² are known. Small batches
    /// of 8, big batch of 64 (8 small batches), 3,000 steps, EMA 0.99. The estimate of B_simple = tr Σ/|G|² = 25
    /// must land within 10%: with these sizes the per-step estimates' relative standard deviation is ≈ 0.5, and
    /// the EMA over ~100 effective steps leaves ≈ 5% (2σ ≈ 10%).
    func testRecoversKnownNoiseScale() {
        let d = 50
        var rng = SplitMix64(seed: 11)
        let g = (0..<d).map { _ in rng.normal() * 0.2 }           // |G|² ≈ 2
        let sigma = (0..<d).map { _ in 0.5 + rng.normal().magnitude * 0.3 }
        let g2 = g.reduce(0) { $0 + $1 * $1 }, trace = sigma.reduce(0) { $0 + $1 * $1 }
        var estimator = GradientNoiseScale(decay: 0.99)
        for _ in 0..<3000 {
            var big = [Double](repeating: 0, count: d)
            var smallSum = 0.0
            for _ in 0..<8 {
                var small = [Double](repeating: 0, count: d)
                for _ in 0..<8 { for k in 0..<d { small[k] += (g[k] + sigma[k] * rng.normal()) / 8 } }
                smallSum += small.reduce(0) { $0 + $1 * $1 }
                for k in 0..<d { big[k] += small[k] / 8 }
            }
            estimator.update(smallSquared: smallSum / 8, smallBatch: 8, bigSquared: big.reduce(0) { $0 + $1 * $1 }, bigBatch: 64)
        }
        let truth = trace / g2
        XCTAssertEqual(estimator.value!, truth, accuracy: 0.1 * truth, "B_simple \(estimator.value!) vs \(truth)")
        XCTAssertEqual(estimator.gradientSquared! / (1 - pow(0.99, 3000)), g2, accuracy: 0.1 * g2)
    }

    func testUndefinedWhenBatchesAreEqualOrNotFinite() {
        var e = GradientNoiseScale()
        e.update(smallSquared: 1, smallBatch: 32, bigSquared: 0.5, bigBatch: 32)
        e.update(smallSquared: .nan, smallBatch: 8, bigSquared: 0.5, bigBatch: 32)
        XCTAssertNil(e.value)
    }

    /// The estimator's formulas on one exact measurement (decay 0 keeps the single step's estimates): with
    /// |G_small|² = 3 at B_small = 2 and |G_big|² = 1 at B_big = 8, McCandlish et al. (appendix A) give
    /// |G|² = (8·1 − 2·3)/(8 − 2) = 1/3 and tr Σ = (3 − 1)/(1/2 − 1/8) = 16/3, so B_simple = 16.
    func testEstimatesOfOneMeasurementAreTheUnbiasedFormulas() {
        var e = GradientNoiseScale(decay: 0)
        e.update(smallSquared: 3, smallBatch: 2, bigSquared: 1, bigBatch: 8)
        XCTAssertEqual(e.gradientSquared!, 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(e.trace!, 16.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(e.value!, 16, accuracy: 1e-12)
    }

    /// Unequal small batches (a global batch that does not divide by the world size): per-example gradients as in
    /// `testRecoversKnownNoiseScale` (d = 50, |G|² ≈ 2, tr Σ ≈ 50), a global batch of 12 split as 1 + 3 + 8, 4,000
    /// steps with EMA decay 0.999. The trainer passes the harmonic mean of the shares, 1/mean(1/b) = 2.06, as the
    /// small batch: |G|² and tr Σ must come out within 10% (their per-step estimates have relative standard
    /// deviation ≈ 1 here; the EMA over ~1,000 effective steps leaves ≈ 3%), while the arithmetic mean (4) would
    /// bias tr Σ by a factor (1/2.06 − 1/12)/(1/4 − 1/12) ≈ 2.4 — far outside the tolerance.
    func testUnequalSmallBatchesStayUnbiasedWithTheHarmonicMean() {
        let d = 50, shares = [1, 3, 8], big = shares.reduce(0, +)
        var rng = SplitMix64(seed: 12)
        let g = (0..<d).map { _ in rng.normal() * 0.2 }
        let sigma = (0..<d).map { _ in 0.5 + rng.normal().magnitude * 0.3 }
        let g2 = g.reduce(0) { $0 + $1 * $1 }, trace = sigma.reduce(0) { $0 + $1 * $1 }
        let harmonic = Double(shares.count) / shares.reduce(0) { $0 + 1 / Double($1) }
        let steps = 4000, decay = 0.999
        var estimator = GradientNoiseScale(decay: decay)
        for _ in 0..<steps {
            var total = [Double](repeating: 0, count: d)
            var smallSum = 0.0
            for b in shares {
                var sum = [Double](repeating: 0, count: d)
                for _ in 0..<b { for k in 0..<d { sum[k] += g[k] + sigma[k] * rng.normal() } }
                smallSum += sum.reduce(0) { $0 + ($1 / Double(b)) * ($1 / Double(b)) }
                for k in 0..<d { total[k] += sum[k] / Double(big) }
            }
            estimator.update(smallSquared: smallSum / Double(shares.count), smallBatch: harmonic,
                             bigSquared: total.reduce(0) { $0 + $1 * $1 }, bigBatch: Double(big))
        }
        let correction = 1 - pow(decay, Double(steps))
        XCTAssertEqual(estimator.trace! / correction, trace, accuracy: 0.1 * trace)
        XCTAssertEqual(estimator.gradientSquared! / correction, g2, accuracy: 0.1 * g2)
    }

    // MARK: - The engine's measurement against a float64 reference, on every code path

    /// Which "small batch" the engine measures (ShardedDataParallel.smallBatchNorms): each micro-batch with
    /// accumulation at stages 2–3 (per-micro-batch communication) or on one rank (stages 0/1: by difference of the
    /// accumulated gradient); otherwise the per-rank batch (one communication per step).
    private static func smallBatchIsMicroBatch(world: Int, stage: Int, accum: Int) -> Bool {
        accum > 1 && (stage >= 2 || world == 1)
    }

    private static func squaredNorm(_ v: [Double]) -> Double { v.reduce(0) { $0 + $1 * $1 } }

    private static func mean(_ vs: [[Double]]) -> [Double] {
        var m = [Double](repeating: 0, count: vs[0].count)
        for v in vs { for k in m.indices { m[k] += v[k] } }
        return m.map { $0 / Double(vs.count) }
    }

    /// The float64 reference of one step's noise-scale measurement, from each micro-batch's own mean gradient
    /// (`micro[rank][m]`; all micro-batches have the same rows, so a rank's mean is the mean of its micro means and
    /// the global mean the mean of all of them).
    private struct Reference {
        /// Per rank: Σ over its small batches of ‖mean gradient‖², and their number.
        var perRankSumSquares: [Double]
        var perRankCount: Int
        var smallRows: Int
        /// Inputs of GradientNoiseScale.update.
        var smallSquared: Double
        var bigSquared: Double
        var bigRows: Int

        init(micro: [[[Double]]], microRows: Int, stage: Int) {
            let world = micro.count, accum = micro[0].count
            let perMicro = NoiseScaleTests.smallBatchIsMicroBatch(world: world, stage: stage, accum: accum)
            let smalls: [[[Double]]] = micro.map { perMicro ? $0 : [NoiseScaleTests.mean($0)] }
            perRankSumSquares = smalls.map { $0.reduce(0) { $0 + NoiseScaleTests.squaredNorm($1) } }
            perRankCount = perMicro ? accum : 1
            smallRows = perMicro ? microRows : microRows * accum
            smallSquared = perRankSumSquares.reduce(0, +) / Double(world * perRankCount)
            bigSquared = NoiseScaleTests.squaredNorm(NoiseScaleTests.mean(micro.flatMap { $0 }))
            bigRows = microRows * accum * world
        }

        /// The unbiased single-step estimates (McCandlish et al. 2018, appendix A).
        var gradientSquared: Double {
            let bs = Double(smallRows), bb = Double(bigRows)
            return (bb * bigSquared - bs * smallSquared) / (bb - bs)
        }
        var trace: Double {
            (smallSquared - bigSquared) / (1 / Double(smallRows) - 1 / Double(bigRows))
        }
        /// Tolerances of the two estimates when each input is known to relative `eps` (worst case, no cancellation
        /// of the errors: |G|² is a difference of nearly equal terms, so a relative bound on it alone would be
        /// meaningless).
        func gradientSquaredTolerance(_ eps: Double) -> Double {
            let bs = Double(smallRows), bb = Double(bigRows)
            return eps * (bb * bigSquared + bs * smallSquared) / (bb - bs)
        }
        func traceTolerance(_ eps: Double) -> Double {
            eps * (smallSquared + bigSquared) / (1 / Double(smallRows) - 1 / Double(bigRows))
        }
    }

    /// Float32 tolerance, relative: the engine's gradients are float32 sums over a few rows, accumulated over
    /// micro-batches and ranks in float32 (rounding ≈ 6e-8 per operation; the worst error measured here is ≈ 1e-7
    /// on a norm²), while the reference means are float64; 1e-4 leaves three orders of margin and is still far
    /// below any wrong factor (a misplaced world, accumulation or rows factor is at least 2× here, and a 1% error
    /// in one path's norm is caught).
    private static let relativeTolerance = 1e-4

    /// A hand-built engine (one SGD group over w [6, 5] and b [5]; 7-element buckets, so tensors are split into
    /// row blocks and several collectives) fed known per-example gradients g_i (a mean G plus per-example noise),
    /// written as backward would: each micro-batch adds meanLossScale × Σ g_i over its rows. Every world size 1–4,
    /// stage 0–3 and accumulation 1, 2, 4: each rank's smallBatchNorms and the step's global norm equal the float64
    /// means of those g_i.
    func testEngineSmallBatchNormsEqualFloat64ReferenceOnEveryPath() throws {
        let microRows = 3
        @Sendable func table() -> ParameterTable {
            var layout = ParameterTable()
            layout.add("w", shape: [6, 5], role: .matrix)
            layout.add("b", shape: [5], role: .bias)
            return layout
        }
        let n = table().count
        // Per-example gradients g_i = G + ε_i, by global example index (rank-major, then micro-batch, then row).
        @Sendable func example(_ i: Int) -> [Float] {
            var rng = SplitMix64(seed: 1000 + UInt64(i))
            return (0..<n).map { k in Float(0.1 * Double(k % 7) - 0.3 + 0.5 * rng.normal()) }
        }
        for world in 1...4 {
            for stage in ZeroStage.allCases {
                for accum in [1, 2, 4] {
                    let perRank = microRows * accum
                    @Sendable func rows(rank: Int, micro m: Int) -> Range<Int> {
                        let first = rank * perRank + m * microRows
                        return first..<(first + microRows)
                    }
                    let micro: [[[Double]]] = (0..<world).map { r in
                        (0..<accum).map { m in
                            NoiseScaleTests.mean(rows(rank: r, micro: m).map { example($0).map(Double.init) })
                        }
                    }
                    let reference = Reference(micro: micro, microRows: microRows, stage: stage.rawValue)
                    let results = try SimulatedWorld.run(size: world) { comm -> (Double, Int, Int, Double) in
                        let plan = ShardPlan(table: table(), groups: [GroupSpec(name: "sgd", sharding: .element, tensorNames: ["w", "b"])],
                                             worldSize: comm.size)
                        let e = ShardedDataParallel(comm: comm, plan: plan, stage: stage, gradAccum: accum, clipNorm: nil,
                                                    bucketElements: 7, layers: [[0], [1]], backwardLayers: [1, 0],
                                                    makeOptimizer: { _, count, _ in OptimizerCatalog.make("sgd", count: count, config: ResolvedConfig()) },
                                                    hyperparameters: { _ in (0, 1) })
                        let scale = e.meanLossScale(globalRows: perRank * world, predictionsPerRow: 1)
                        for m in 0..<accum {
                            e.beginMicroBatch(m, rows: microRows)
                            let examples = rows(rank: comm.rank, micro: m).map(example)
                            for (t, entry) in e.plan.table.entries.enumerated().reversed() {
                                for block in e.sink.rowBlocks(t) {
                                    let g = e.sink.gradient(t, rows: block)
                                    let start = entry.offset + block.lowerBound * entry.blockCols
                                    for k in 0..<(block.count * entry.blockCols) {
                                        for x in examples { g[k] += scale * x[start + k] }
                                    }
                                    e.sink.finished(t, rows: block)
                                }
                            }
                            e.endMicroBatch()
                        }
                        let norms = e.smallBatchNorms(globalRows: perRank * world)
                        let report = try e.step(lr: 0.1)
                        return (norms.sumSquares, norms.count, norms.harmonicRows, report.gradNorm)
                    }
                    let label = "world \(world) stage \(stage.rawValue) accum \(accum)"
                    for (r, got) in results.enumerated() {
                        let want = reference.perRankSumSquares[r]
                        XCTAssertEqual(got.0, want, accuracy: Self.relativeTolerance * want, "\(label) rank \(r): Σ‖g_small‖²")
                        XCTAssertEqual(got.1, reference.perRankCount, "\(label) rank \(r): small batches")
                        XCTAssertEqual(got.2, reference.smallRows, "\(label) rank \(r): small-batch rows")
                        XCTAssertEqual(got.3 * got.3, reference.bigSquared, accuracy: Self.relativeTolerance * reference.bigSquared,
                                       "\(label) rank \(r): ‖G_big‖²")
                    }
                }
            }
        }
    }

    /// End to end through the Trainer and the MLP, one step from the initial parameters with EMA decay 0 (so the
    /// estimator holds exactly that step's unbiased estimates): the float64 reference is each micro-batch's mean
    /// gradient from the model's own forwardBackward on that micro-batch alone, into a plain zeroed buffer on one
    /// rank (loss scale 1/rows) — no engine involved. Paths: (a) 1 rank with accumulation 4 at stages 0/1 (by
    /// difference); (b) 2 and 4 ranks without accumulation at stages 0/1 (per-rank local norm); (c) stage 2 with
    /// accumulation on 1 and 2 ranks (per micro-batch); plus 2 ranks with accumulation at stages 0/1 (per-rank batch,
    /// communicated once). Each rank's smallBatchNorms must equal the reference within relative 1e-4, and the
    /// trainer's |G|² and tr Σ the unbiased formulas on the reference inputs within that input tolerance propagated.
    func testTrainerNoiseScaleInputsEqualFloat64ReferenceOnEveryPath() throws {
        let train = ImageDataset.synthetic(count: 512, featureCount: 10, classes: 4, seed: 5)
        let cases: [(world: Int, accum: Int, stages: [Int])] = [
            (1, 4, [0, 1]),        // (a) by difference
            (2, 1, [0, 1]),        // (b)
            (4, 1, [0, 1]),        // (b)
            (1, 4, [2]),           // (c)
            (2, 2, [2]),           // (c) on 2 ranks
            (2, 2, [0, 1]),        // per-rank batch with accumulation
        ]
        for (world, accum, stages) in cases {
            for stage in stages {
                var c = ResolvedConfig(name: "noise")
                for s in ["model.hidden=[16]", "train.steps=1", "train.global_batch=32", "train.grad_accum=\(accum)",
                          "zero.stage=\(stage)", "zero.bucket_mb=0.0002", "train.log_every=1",
                          "train.noise_scale_ema=0"] { try c.override(s) }
                let config = try TrainConfig(c, worldSize: world)
                let results = try SimulatedWorld.run(size: world) { comm -> ([[[Double]]], Double, Int, Int, Double?, Double?) in
                    let t = try Trainer(config: config, comm: comm, train: train, test: train)
                    // The reference, before training, on this rank's copy of the initial parameters: every rank's
                    // micro-batches, each alone through forwardBackward into a plain buffer.
                    let grads = FloatBuffer(count: t.params.count)
                    let micro: [[[Double]]] = (0..<world).map { r in
                        (0..<accum).map { m in
                            grads.zero()
                            let batch = t.task.trainBatch(step: 0, firstRow: r * config.perRankBatch + m * config.microBatch,
                                                          rows: config.microBatch, globalBatch: config.globalBatch)
                            _ = t.model.forwardBackward(params: t.params.pointer, grads: grads.pointer, batch: batch,
                                                        lossScale: 1 / Float(config.microBatch * t.model.predictionsPerRow))
                            return grads.array.map(Double.init)
                        }
                    }
                    _ = try t.run()
                    let norms = t.engine.smallBatchNorms(globalRows: config.globalBatch)
                    return (micro, norms.sumSquares, norms.count, norms.harmonicRows, t.noiseScale.gradientSquared, t.noiseScale.trace)
                }
                let reference = Reference(micro: results[0].0, microRows: config.microBatch, stage: stage)
                let label = "world \(world) stage \(stage) accum \(accum)"
                XCTAssertEqual(reference.bigRows, config.globalBatch)
                for (r, got) in results.enumerated() {
                    let want = reference.perRankSumSquares[r]
                    XCTAssertEqual(got.1, want, accuracy: Self.relativeTolerance * want, "\(label) rank \(r): Σ‖g_small‖²")
                    XCTAssertEqual(got.2, reference.perRankCount, "\(label) rank \(r): small batches")
                    XCTAssertEqual(got.3, reference.smallRows, "\(label) rank \(r): small-batch rows")
                    guard let g2 = got.4, let tr = got.5 else { XCTFail("\(label) rank \(r): no estimate"); continue }
                    XCTAssertEqual(g2, reference.gradientSquared, accuracy: reference.gradientSquaredTolerance(Self.relativeTolerance),
                                   "\(label) rank \(r): |G|²")
                    XCTAssertEqual(tr, reference.trace, accuracy: reference.traceTolerance(Self.relativeTolerance),
                                   "\(label) rank \(r): tr Σ")
                }
                // The reference itself is not degenerate: small and big batches differ, so a wrong factor shows.
                XCTAssertGreaterThan(reference.smallSquared, reference.bigSquared * (1 + 10 * Self.relativeTolerance), label)
            }
        }
    }
}

extension ShardedDataParallel.SmallBatchNorms {
    /// The harmonic mean of the small batches' rows, as an integer (the rows of each, when all are equal).
    var harmonicRows: Int { Int((Double(count) / sumInverseRows).rounded()) }
}
