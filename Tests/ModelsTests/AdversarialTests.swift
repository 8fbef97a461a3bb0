import Models
import Tensors
import TestSupport
import XCTest

final class InputGradientTests: XCTestCase {
    /// ∂(mean loss)/∂input of the MLP against central finite differences, through both activations. Same
    /// tolerance and reasoning as MLPGradientTests (float32 loss, h = 1e-2: noise ≈ 1e-5, truncation ≈ 1e-4).
    func testInputGradientMatchesFiniteDifferences() {
        for (activation, seed) in [(Activation.relu, UInt64(31)), (.gelu, 32)] {
            let widths = [6, 5, 4, 3], rows = 3
            let model = MLP(widths: widths, activation: activation)
            let params = FloatBuffer(count: model.table.count)
            model.initializeParameters(params.buffer, seed: seed)
            var rng = SplitMix64(seed: seed + 1)
            // The input as the "parameter" of a one-tensor table, so the shared finite-difference checker applies.
            var inputTable = ParameterTable()
            inputTable.add("input", shape: [rows, widths[0]], role: .matrix)
            let features = FloatBuffer((0..<(rows * widths[0])).map { _ in rng.uniform(-1, 1) })
            let targets: [Int32] = [0, 2, 1]
            let dFeatures = FloatBuffer(count: features.count)
            targets.withUnsafeBufferPointer { t in
                let batch = ModelBatch(features: features.pointer, targets: t.baseAddress!, rows: rows)
                _ = model.inputGradient(params: params.pointer, batch: batch, dFeatures: dFeatures.pointer, lossScale: 1 / Float(rows))
            }
            let loss = {
                targets.withUnsafeBufferPointer { t in
                    model.forward(params: params.pointer, batch: ModelBatch(features: features.pointer, targets: t.baseAddress!, rows: rows)).lossSum
                } / Double(rows)
            }
            let result = FiniteDifferenceCheck(absolute: 2e-3, relative: 2e-2).run(table: inputTable, params: features,
                                                                                    grads: dFeatures, loss: loss)
            XCTAssertEqual(result.mismatches.map(\.description), [], "\(activation)")
            XCTAssertEqual(result.checked, rows * widths[0])
            XCTAssertGreaterThan(dFeatures.array.map(abs).max()!, 1e-3, "a zero gradient would pass vacuously")
        }
    }

    /// The input gradient accumulates (+=) like every backward output, and asking for it leaves parameter
    /// gradients alone (the same loss result as forward).
    func testInputGradientAccumulates() {
        let model = MLP(widths: [4, 3, 2], activation: .relu)
        let params = FloatBuffer(count: model.table.count)
        model.initializeParameters(params.buffer, seed: 2)
        let features: [Float] = [0.1, -0.2, 0.3, 0.4, 0.5, 0.6, -0.7, 0.8], targets: [Int32] = [1, 0]
        let once = FloatBuffer(count: 8), twice = FloatBuffer(count: 8)
        features.withUnsafeBufferPointer { f in targets.withUnsafeBufferPointer { t in
            let batch = ModelBatch(features: f.baseAddress!, targets: t.baseAddress!, rows: 2)
            let r = model.inputGradient(params: params.pointer, batch: batch, dFeatures: once.pointer, lossScale: 1)
            XCTAssertEqual(r, model.forward(params: params.pointer, batch: batch))
            _ = model.inputGradient(params: params.pointer, batch: batch, dFeatures: twice.pointer, lossScale: 1)
            _ = model.inputGradient(params: params.pointer, batch: batch, dFeatures: twice.pointer, lossScale: 1)
        } }
        for k in 0..<8 { XCTAssertEqual(twice[k], 2 * once[k], accuracy: 1e-6) }
    }
}

final class AdversarialAttackTests: XCTestCase {
    /// A binary linear classifier (MLP [I, 2]): the loss increases exactly as the margin m = (w_y − w_o)ᵀx + b_y − b_o
    /// decreases, and the margin is separable, so the worst case in the ℓ∞ ball ∩ [0, 1]ᴵ is, per coordinate,
    /// x′ₖ = clamp(xₖ − ε·sign(w_y − w_o)ₖ, 0, 1). FGSM must equal it exactly; PGD (10 steps of α = ε/4, from x)
    /// must too, since it saturates every coordinate at the ball's or the box's edge. Without clipping (inputs in
    /// [0.3, 0.7], ε = 0.1) the margin drops by exactly ε‖w_y − w_o‖₁ (to 1e-5: float32 sums over 20 terms).
    func testLinearModelAgainstClosedFormWorstCase() {
        let i = 20, rows = 6
        let model = MLP(widths: [i, 2], activation: .relu)
        let params = FloatBuffer(count: model.table.count)
        model.initializeParameters(params.buffer, seed: 7)
        let w = model.table["layer0.weight"]!.offset, b = model.table["layer0.bias"]!.offset
        var rng = SplitMix64(seed: 8)
        for (low, high, eps) in [(Float(0.3), Float(0.7), Float(0.1)), (0, 1, 0.25)] {
            let x = (0..<(rows * i)).map { _ in rng.uniform(low, high) }
            let targets = (0..<rows).map { Int32($0 % 2) }
            var expected = x
            for r in 0..<rows {
                let y = Int(targets[r]), o = 1 - y
                for k in 0..<i {
                    let dw = params[w + y * i + k] - params[w + o * i + k]
                    expected[r * i + k] = min(1, max(0, x[r * i + k] - eps * (dw > 0 ? 1 : (dw < 0 ? -1 : 0))))
                }
            }
            for settings in [AttackSettings(method: .fgsm, epsilon: eps),
                             AttackSettings(method: .pgd, epsilon: eps, stepSize: eps / 4, steps: 10)] {
                var adversarial = [Float](repeating: .nan, count: rows * i)
                x.withUnsafeBufferPointer { xp in targets.withUnsafeBufferPointer { t in
                    AdversarialAttack(model: model, space: .identity).perturb(
                        params: params.pointer, batch: ModelBatch(features: xp.baseAddress!, targets: t.baseAddress!, rows: rows),
                        settings: settings, into: &adversarial)
                } }
                XCTAssertEqual(adversarial, expected, "\(settings.method) ε = \(eps)")
                guard low > eps else { continue }
                for r in 0..<rows {
                    let y = Int(targets[r]), o = 1 - y
                    func margin(_ v: [Float]) -> Float {
                        var m = params[b + y] - params[b + o]
                        for k in 0..<i { m += (params[w + y * i + k] - params[w + o * i + k]) * v[r * i + k] }
                        return m
                    }
                    let l1 = (0..<i).reduce(Float(0)) { $0 + abs(params[w + y * i + $1] - params[w + o * i + $1]) }
                    XCTAssertEqual(margin(adversarial), margin(x) - eps * l1, accuracy: 1e-5)
                }
            }
        }
    }

    /// PGD with a random start on a hidden-layer MLP, under a normalisation (mean 0.3, std 0.35) as Fashion-MNIST
    /// has: every adversarial pixel stays within ε of its clean pixel and inside [0, 1] (to 1e-6 relative, the
    /// round trip through (p − mean)/std in float32), and the attack raises the loss.
    func testPGDNeverLeavesTheBallOrTheBox() {
        let space = PixelSpace(mean: 0.3, std: 0.35)
        let i = 16, rows = 8
        let model = MLP(widths: [i, 12, 3], activation: .relu)
        let params = FloatBuffer(count: model.table.count)
        model.initializeParameters(params.buffer, seed: 3)
        var rng = SplitMix64(seed: 4)
        let pixels = (0..<(rows * i)).map { k in k % 5 == 0 ? Float(k % 2) : rng.uniform(0, 1) }  // some at 0 and 1
        let clean = pixels.map { ($0 - space.mean) / space.std }
        let targets = (0..<rows).map { Int32($0 % 3) }
        for eps in [Float(0.05), 0.2, 0.5] {
            let settings = AttackSettings(method: .pgd, epsilon: eps, stepSize: eps / 3, steps: 7, randomStart: true, seed: 9)
            var adversarial = [Float](repeating: .nan, count: rows * i)
            var before = 0.0, after = 0.0
            clean.withUnsafeBufferPointer { xp in targets.withUnsafeBufferPointer { t in
                let batch = ModelBatch(features: xp.baseAddress!, targets: t.baseAddress!, rows: rows)
                AdversarialAttack(model: model, space: space).perturb(params: params.pointer, batch: batch, settings: settings,
                                                                      into: &adversarial)
                before = model.forward(params: params.pointer, batch: batch).lossSum
                adversarial.withUnsafeBufferPointer {
                    after = model.forward(params: params.pointer, batch: ModelBatch(features: $0.baseAddress!, targets: t.baseAddress!, rows: rows)).lossSum
                }
            } }
            for k in 0..<(rows * i) {
                let p = space.pixel(adversarial[k])
                XCTAssertLessThanOrEqual(abs(p - pixels[k]), eps * (1 + 1e-6) + 1e-6, "left the ε-ball at \(k)")
                XCTAssertGreaterThanOrEqual(p, -1e-6, "below 0 at \(k)")
                XCTAssertLessThanOrEqual(p, 1 + 1e-6, "above 1 at \(k)")
            }
            XCTAssertGreaterThan(after, before, "ε = \(eps): PGD must increase the loss")
        }
    }

    func testSettingsProblems() {
        XCTAssertNil(AttackSettings.pgd(epsilon: 0.1, steps: 10).problem(key: "--eps"))
        XCTAssertEqual(AttackSettings(method: .fgsm, epsilon: -0.1).problem(key: "--eps"), "--eps ε = -0.1 must be in [0, 1] (pixel units)")
        XCTAssertNotNil(AttackSettings(method: .pgd, epsilon: 0.1, stepSize: 0, steps: 3).problem(key: "x"))
    }
}
