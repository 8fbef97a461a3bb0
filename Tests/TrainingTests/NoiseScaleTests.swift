import Datasets
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

    /// In training: on 2 simulated ranks (small batch = per-rank batch) and on 1 rank with 4 accumulation
    /// micro-batches (small batch = micro-batch), at stages 0 and 2, a finite positive noise scale is measured.
    func testMeasuredInTrainingForRanksAndMicroBatches() throws {
        let train = ImageDataset.synthetic(count: 512, featureCount: 10, classes: 4, seed: 5)
        for (world, accum) in [(2, 1), (1, 4)] {
            for stage in [0, 2] {
                var c = ResolvedConfig(name: "noise")
                for s in ["model.hidden=[16]", "train.steps=30", "train.global_batch=64", "train.grad_accum=\(accum)",
                          "zero.stage=\(stage)", "train.log_every=10", "train.noise_scale_ema=0.8"] { try c.override(s) }
                let config = try TrainConfig(c, worldSize: world)
                let values = try SimulatedWorld.run(size: world) { comm -> Double? in
                    let t = try Trainer(config: config, comm: comm, train: train, test: train)
                    _ = try t.run()
                    return t.noiseScale.value
                }
                let b = try XCTUnwrap(values[0], "world \(world) accum \(accum) stage \(stage): no noise scale")
                XCTAssertTrue(b.isFinite && b > 0, "noise scale \(b)")
            }
        }
    }
}
