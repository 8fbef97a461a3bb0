#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Models
import Tensors
import TestSupport
import XCTest

/// A tiny GPT with parameters spread wider than the 0.02 initialisation, so every path (attention softmax,
/// LayerNorm gains, GELU curvature) carries gradients well above rounding noise.
private func tinyGPT(tied: Bool, seed: UInt64 = 7) -> (GPT, FloatBuffer) {
    let model = GPT(GPTConfig(vocabulary: 11, context: 5, layers: 2, heads: 2, width: 8, tiedHead: tied))
    let params = FloatBuffer(count: model.table.count)
    model.initializeParameters(params.buffer, seed: seed)
    var rng = SplitMix64(seed: seed, stream: 99)
    for e in model.table.entries {
        let spread: Double = e.role == .norm ? 0.2 : e.role == .bias ? 0.1 : 0.3
        for i in e.range { params[i] += Float(rng.normal() * spread) }
    }
    return (model, params)
}

private func randomTokens(_ n: Int, vocabulary: Int, seed: UInt64) -> [Int32] {
    var rng = SplitMix64(seed: seed)
    return (0..<n).map { _ in Int32(rng.next() % UInt64(vocabulary)) }
}

private func withBatch<R>(_ tokens: [Int32], _ targets: [Int32], rows: Int, _ body: (ModelBatch) -> R) -> R {
    tokens.withUnsafeBufferPointer { t in targets.withUnsafeBufferPointer { y in
        body(ModelBatch(tokens: t.baseAddress!, targets: y.baseAddress!, rows: rows))
    } }
}

/// Every parameter gradient of a tiny GPT against central finite differences of the mean loss.
final class GPTGradientTests: XCTestCase {
    /// The loss is float32 arithmetic summed in double. With h = 1e-2 and a loss ≈ 2.5, rounding noise in the
    /// difference quotient is ≈ 1e-6 / 2e-2 = 5e-5 and the truncation error h²/6·|f'''| ≈ 2e-5·|f'''|. The check
    /// uses |analytic − numeric| ≤ 5e-4 + 2e-2·|numeric|; gradients here are O(1e-2 … 1), and a wrong index,
    /// transpose, missing term or mask leak is larger. Every element of every tensor is checked, and every tensor
    /// must carry a gradient above 1e-3 somewhere (so no check passes vacuously).
    private func check(tied: Bool) {
        let (model, params) = tinyGPT(tied: tied)
        let B = 2, T = model.config.context, N = B * T
        let tokens = randomTokens(N, vocabulary: 11, seed: 21), targets = randomTokens(N, vocabulary: 11, seed: 22)
        func loss() -> Double {
            withBatch(tokens, targets, rows: B) { model.forward(params: params.pointer, batch: $0).lossSum } / Double(N)
        }
        let grads = FloatBuffer(count: model.table.count)
        let result = withBatch(tokens, targets, rows: B) {
            model.forwardBackward(params: params.pointer, grads: grads.pointer, batch: $0, lossScale: 1 / Float(N))
        }
        XCTAssertEqual(result.predictions, N)
        XCTAssertEqual(result.meanLoss, loss(), accuracy: 1e-12, "forwardBackward and forward agree on the loss")
        let differences = FiniteDifferenceCheck(absolute: 5e-4, relative: 2e-2).run(table: model.table, params: params, grads: grads, loss: loss)
        XCTAssertEqual(differences.mismatches.map(\.description), [], tied ? "tied" : "untied")
        for (name, largest) in differences.largestGradient { XCTAssertGreaterThan(largest, 1e-3, "\(name) has no gradient to check") }
        let checked = differences.checked
        XCTAssertEqual(checked, model.table.count)
    }

    func testTiedHeadGradientsMatchFiniteDifferences() { check(tied: true) }
    func testUntiedHeadGradientsMatchFiniteDifferences() { check(tied: false) }

    func testGradientsAccumulateAcrossCalls() {
        let (model, params) = tinyGPT(tied: true)
        let tokens = randomTokens(10, vocabulary: 11, seed: 1), targets = randomTokens(10, vocabulary: 11, seed: 2)
        let once = FloatBuffer(count: model.table.count), twice = FloatBuffer(count: model.table.count)
        withBatch(tokens, targets, rows: 2) { batch in
            _ = model.forwardBackward(params: params.pointer, grads: once.pointer, batch: batch, lossScale: 0.1)
            _ = model.forwardBackward(params: params.pointer, grads: twice.pointer, batch: batch, lossScale: 0.1)
            _ = model.forwardBackward(params: params.pointer, grads: twice.pointer, batch: batch, lossScale: 0.1)
        }
        for i in 0..<once.count { XCTAssertEqual(twice[i], 2 * once[i], accuracy: 1e-6 + 1e-5 * abs(once[i])) }
    }

    /// A smaller batch after a larger one reuses the workspace and gives the same result as a fresh model.
    func testWorkspaceReuseAcrossBatchSizes() {
        let (model, params) = tinyGPT(tied: false)
        let (fresh, _) = tinyGPT(tied: false)
        let big = randomTokens(20, vocabulary: 11, seed: 3), small = randomTokens(10, vocabulary: 11, seed: 4)
        _ = withBatch(big, big, rows: 4) { model.forward(params: params.pointer, batch: $0) }
        let reused = FloatBuffer(count: model.table.count), clean = FloatBuffer(count: model.table.count)
        let a = withBatch(small, small, rows: 2) {
            model.forwardBackward(params: params.pointer, grads: reused.pointer, batch: $0, lossScale: 1)
        }
        let b = withBatch(small, small, rows: 2) {
            fresh.forwardBackward(params: params.pointer, grads: clean.pointer, batch: $0, lossScale: 1)
        }
        XCTAssertEqual(a, b)
        XCTAssertEqual(reused.array, clean.array)
    }
}

final class GPTStructureTests: XCTestCase {
    func testParameterTableNamesShapesAndRoles() {
        let config = GPTConfig(vocabulary: 256, context: 128, layers: 4, heads: 4, width: 256, tiedHead: true)
        let model = GPT(config)
        let t = model.table
        XCTAssertEqual(t.entries.first?.name, "wte.weight")
        XCTAssertEqual(t["wte.weight"]?.shape, [256, 256])
        XCTAssertEqual(t["wte.weight"]?.role, .embedding)
        XCTAssertEqual(t["wpe.weight"]?.shape, [128, 256])
        XCTAssertEqual(t["wpe.weight"]?.role, .embedding)
        XCTAssertEqual(t["h.3.ln_1.weight"]?.role, .norm)
        XCTAssertEqual(t["h.3.ln_1.bias"]?.role, .norm)
        XCTAssertEqual(t["h.0.attn.c_attn.weight"]?.shape, [768, 256])
        XCTAssertEqual(t["h.0.attn.c_attn.weight"]?.role, .matrix)
        XCTAssertEqual(t["h.0.attn.c_attn.bias"]?.role, .bias)
        XCTAssertEqual(t["h.0.attn.c_proj.weight"]?.shape, [256, 256])
        XCTAssertEqual(t["h.0.mlp.c_fc.weight"]?.shape, [1024, 256])
        XCTAssertEqual(t["h.0.mlp.c_fc.bias"]?.shape, [1024])
        XCTAssertEqual(t["h.0.mlp.c_proj.weight"]?.shape, [256, 1024])
        XCTAssertEqual(t["ln_f.bias"]?.role, .norm)
        XCTAssertNil(t["lm_head.weight"])
        XCTAssertNil(t["h.4.ln_1.weight"])
        // V·C + Tmax·C + L·(12C² + 13C) + 2C
        XCTAssertEqual(t.count, 256 * 256 + 128 * 256 + 4 * (12 * 256 * 256 + 13 * 256) + 2 * 256)
        XCTAssertEqual(model.predictionsPerRow, 128)

        var untied = config
        untied.tiedHead = false
        let u = GPT(untied).table
        XCTAssertEqual(u["lm_head.weight"]?.shape, [256, 256])
        XCTAssertEqual(u["lm_head.weight"]?.role, .head)
        XCTAssertEqual(u.count, t.count + 256 * 256)
        XCTAssertEqual(t.entries.filter { $0.role == .matrix }.count, 16)
    }

    func testConfigValidation() {
        XCTAssertNil(GPTConfig().invalidReason)
        XCTAssertNotNil(GPTConfig(heads: 3).invalidReason)
        XCTAssertNotNil(GPTConfig(layers: 0).invalidReason)
    }

    /// GPT-2 initialisation statistics, and values that depend on (seed, name) only, not on the layout.
    func testInitialisationIsLayoutIndependentAndGPT2Like() {
        let model = GPT(GPTConfig(vocabulary: 64, context: 32, layers: 3, heads: 2, width: 48, tiedHead: false))
        let a = FloatBuffer(count: model.table.count)
        model.initializeParameters(a.buffer, seed: 5)
        let original = model.table
        model.adopt(layout: original.reordered(original.entries.map(\.name).reversed()))
        let b = FloatBuffer(count: model.table.count)
        model.initializeParameters(b.buffer, seed: 5)
        for e in original.entries {
            let f = model.table[e.name]!
            XCTAssertEqual(Array(a.buffer[e.range]), Array(b.buffer[f.range]), e.name)
        }
        func std(_ name: String) -> Double {
            let values = a.buffer[original[name]!.range].map(Double.init)
            return (values.map { $0 * $0 }.reduce(0, +) / Double(values.count)).squareRoot()
        }
        XCTAssertEqual(std("h.1.attn.c_attn.weight"), 0.02, accuracy: 0.001)
        XCTAssertEqual(std("wte.weight"), 0.02, accuracy: 0.001)
        XCTAssertEqual(std("h.1.mlp.c_proj.weight"), 0.02 / 6.0.squareRoot(), accuracy: 0.0008)
        XCTAssertEqual(std("h.1.attn.c_proj.weight"), 0.02 / 6.0.squareRoot(), accuracy: 0.0008)
        XCTAssertTrue(a.buffer[original["h.2.ln_2.weight"]!.range].allSatisfy { $0 == 1 })
        XCTAssertTrue(a.buffer[original["h.2.ln_2.bias"]!.range].allSatisfy { $0 == 0 })
        XCTAssertTrue(a.buffer[original["h.0.mlp.c_fc.bias"]!.range].allSatisfy { $0 == 0 })
        let c = FloatBuffer(count: model.table.count)
        model.initializeParameters(c.buffer, seed: 6)
        XCTAssertNotEqual(b.array, c.array)
    }

    /// Another layout of the same tensors gives the same loss and the same gradient per tensor.
    func testAdoptedLayoutGivesTheSameGradients() {
        let (model, params) = tinyGPT(tied: true)
        let tokens = randomTokens(10, vocabulary: 11, seed: 8), targets = randomTokens(10, vocabulary: 11, seed: 9)
        let original = model.table
        let grads = FloatBuffer(count: original.count)
        let r1 = withBatch(tokens, targets, rows: 2) {
            model.forwardBackward(params: params.pointer, grads: grads.pointer, batch: $0, lossScale: 0.1)
        }
        var rng = SplitMix64(seed: 77)
        let layout = original.reordered(original.entries.map(\.name).shuffled(using: &rng))
        let moved = FloatBuffer(count: layout.count)
        for e in original.entries {
            (moved.pointer + layout[e.name]!.offset).update(from: params.pointer + e.offset, count: e.count)
        }
        model.adopt(layout: layout)
        let movedGrads = FloatBuffer(count: layout.count)
        let r2 = withBatch(tokens, targets, rows: 2) {
            model.forwardBackward(params: moved.pointer, grads: movedGrads.pointer, batch: $0, lossScale: 0.1)
        }
        XCTAssertEqual(r1, r2)
        for e in original.entries {
            XCTAssertEqual(Array(grads.buffer[e.range]), Array(movedGrads.buffer[layout[e.name]!.range]), e.name)
        }
    }

    /// Changing token t changes no logits before position t (the causal mask), and does change position t's.
    func testCausalMasking() {
        let (model, params) = tinyGPT(tied: false)
        let tokens = randomTokens(10, vocabulary: 11, seed: 10)
        let T = 5, V = 11
        let before = Array(tokens.withUnsafeBufferPointer { model.logits(params: params.pointer, tokens: $0.baseAddress!, rows: 2, time: T) })
        for changed in [4, 2] {
            var edited = tokens
            edited[5 + changed] = (edited[5 + changed] + 3) % 11
            let after = Array(edited.withUnsafeBufferPointer { model.logits(params: params.pointer, tokens: $0.baseAddress!, rows: 2, time: T) })
            for t in 0..<T {
                let a = Array(before[((5 + t) * V)..<((6 + t) * V)]), b = Array(after[((5 + t) * V)..<((6 + t) * V)])
                if t < changed {
                    XCTAssertEqual(a, b, "position \(t) sees token \(changed)")
                } else if t == changed {
                    XCTAssertNotEqual(a, b, "position \(t) ignores its own token")
                }
            }
            // The other sequence is untouched.
            XCTAssertEqual(Array(before[0..<(T * V)]), Array(after[0..<(T * V)]))
        }
    }

    /// With GPT-2's 0.02 initialisation the logits are nearly uniform: loss ≈ ln V.
    func testInitialLossIsNearLogVocabulary() {
        let model = GPT(GPTConfig(vocabulary: 256, context: 16, layers: 2, heads: 2, width: 32, tiedHead: true))
        let params = FloatBuffer(count: model.table.count)
        model.initializeParameters(params.buffer, seed: 1)
        let tokens = randomTokens(64, vocabulary: 256, seed: 2), targets = randomTokens(64, vocabulary: 256, seed: 3)
        let result = withBatch(tokens, targets, rows: 4) { model.forward(params: params.pointer, batch: $0) }
        XCTAssertEqual(result.predictions, 64)
        XCTAssertEqual(result.meanLoss, log(256.0), accuracy: 0.05)
    }
}

final class GPTBlockGradientTests: XCTestCase {
    private func check(tied: Bool) {
        let (model, params) = tinyGPT(tied: tied)
        let tokens = randomTokens(15, vocabulary: 11, seed: 31), targets = randomTokens(15, vocabulary: 11, seed: 32)
        let whole = FloatBuffer(count: model.table.count), blocked = FloatBuffer(count: model.table.count)
        let sink = BlockSink(base: blocked.pointer, table: model.table)
        withBatch(tokens, targets, rows: 3) { batch in
            _ = model.forwardBackward(params: params.pointer, grads: whole.pointer, batch: batch, lossScale: 1 / 15)
            _ = model.forwardBackward(params: params.pointer, sink: sink, batch: batch, lossScale: 1 / 15)
        }
        for i in 0..<whole.count { XCTAssertEqual(blocked[i], whole[i], accuracy: 1e-6) }
        for (i, e) in model.table.entries.enumerated() {
            XCTAssertEqual(sink.finishedBlocks[i], (e.blockRows + 1) / 2, "\(e.name): every block reported once")
        }
        for s in sink.snapshots {
            let e = model.table.entries[s.tensor]
            let final = Array(blocked.buffer[(e.offset + s.rows.lowerBound * e.blockCols)...].prefix(s.values.count))
            XCTAssertEqual(s.values, final, "\(e.name) rows \(s.rows) changed after it was reported finished")
        }
    }

    func testRowBlockedBackwardEqualsWholeTensorBackwardTied() { check(tied: true) }
    func testRowBlockedBackwardEqualsWholeTensorBackwardUntied() { check(tied: false) }
}

final class SamplingTests: XCTestCase {
    private func model() -> (GPT, FloatBuffer) { tinyGPT(tied: true, seed: 3) }

    func testGreedyIsDeterministicAndEqualsTopKOne() {
        let (m, p) = model()
        let a = generate(model: m, params: p.pointer, prompt: [1, 2, 3], count: 12, temperature: 0, topK: 0, seed: 1)
        let b = generate(model: m, params: p.pointer, prompt: [1, 2, 3], count: 12, temperature: 0, topK: 0, seed: 2)
        let c = generate(model: m, params: p.pointer, prompt: [1, 2, 3], count: 12, temperature: 1, topK: 1, seed: 3)
        XCTAssertEqual(a.count, 12)
        XCTAssertEqual(a, b)
        XCTAssertEqual(a, c)
        // The first greedy token is the arg-max of the last position's logits.
        let prompt: [Int32] = [1, 2, 3]
        let logits = Array(prompt.withUnsafeBufferPointer { m.logits(params: p.pointer, tokens: $0.baseAddress!, rows: 1, time: 3) })
        let last = logits[(2 * 11)...]
        XCTAssertEqual(Int(a[0]), last.indices.max { last[$0] < last[$1] }! - 2 * 11)
    }

    func testSameSeedSameSampleAndContextIsCropped() {
        let (m, p) = model()
        // 20 tokens from a 2-token prompt: the running sequence exceeds the context of 5 and is cropped.
        let a = generate(model: m, params: p.pointer, prompt: [4, 5], count: 20, temperature: 1, topK: 5, seed: 9)
        let b = generate(model: m, params: p.pointer, prompt: [4, 5], count: 20, temperature: 1, topK: 5, seed: 9)
        let c = generate(model: m, params: p.pointer, prompt: [4, 5], count: 20, temperature: 1, topK: 5, seed: 10)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertTrue(a.allSatisfy { $0 >= 0 && $0 < 11 })
    }

    /// With top-k the samples stay inside the k most likely tokens.
    func testTopKRestrictsTheCandidates() {
        let (m, p) = model()
        let prompt: [Int32] = [7]
        let logits = Array(prompt.withUnsafeBufferPointer { m.logits(params: p.pointer, tokens: $0.baseAddress!, rows: 1, time: 1) })
        let top3 = Set((0..<11).sorted { logits[$0] > logits[$1] }.prefix(3).map(Int32.init))
        for seed in 0..<30 {
            let t = generate(model: m, params: p.pointer, prompt: prompt, count: 1, temperature: 2, topK: 3, seed: UInt64(seed))
            XCTAssertTrue(top3.contains(t[0]))
        }
    }
}

