import Foundation
import Models
import Distributed
import Optimizers
import Training
import XCTest

/// The repository root, found from this file's path (tests run from anywhere).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

final class ConfigTests: XCTestCase {
    private func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    func testShippedDefaultConfigEqualsBuiltInDefaults() throws {
        let file = try ResolvedConfig.load(path: "\(repositoryRoot)/configs/fashion-mlp.yaml")
        XCTAssertEqual(file.values, ResolvedConfig().values,
                       "configs/fashion-mlp.yaml and the built-in defaults (ConfigSchema) have drifted apart")
    }

    func testEveryShippedConfigLoadsAndValidates() throws {
        let dir = "\(repositoryRoot)/configs"
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }
        XCTAssertFalse(files.isEmpty)
        for f in files {
            let c = try ResolvedConfig.load(path: "\(dir)/\(f)")
            for world in [1, 2, 4] { XCTAssertNoThrow(try TrainConfig(c, worldSize: world), "\(f) on \(world) ranks") }
        }
    }

    func testConfigurationDocIsGeneratedFromTheSchema() throws {
        let doc = try String(contentsOfFile: "\(repositoryRoot)/docs/configuration.md", encoding: .utf8)
        XCTAssertEqual(doc, ConfigSchema.markdown(), "regenerate with: swift-train config --markdown > docs/configuration.md")
        for key in ConfigSchema.keys { XCTAssertTrue(doc.contains("`\(key.path)`"), key.path) }
        let keysDoc = try String(contentsOfFile: "\(repositoryRoot)/docs/optimizer-keys.md", encoding: .utf8)
        XCTAssertEqual(keysDoc, OptimizerCatalog.markdown(), "regenerate with: swift-train config --optimizer-keys > docs/optimizer-keys.md")
    }

    /// Each optimizer checks the values it receives against its own declared ranges: one shared key (β₁, whose
    /// hull admits Lion's 1) is accepted for Lion and rejected for AdamW, naming the key and the optimizer; a key
    /// left unset reaches each optimizer as its own default; `~` unsets, and the legacy −1 still means unset.
    func testOptimizerKeysAreCheckedPerOptimizer() throws {
        var c = ResolvedConfig()
        try c.override("optimizer.beta1=1.0")
        XCTAssertThrowsError(try TrainConfig(c, worldSize: 1)) { error in
            XCTAssertTrue("\(error)".contains("optimizer.beta1") && "\(error)".contains("adamw"), "\(error)")
        }
        try c.override("optimizer.name=lion")
        XCTAssertNoThrow(try TrainConfig(c, worldSize: 1))
        XCTAssertNil(c.value("optimizer.beta2"))
        XCTAssertEqual(OptimizerCatalog.values("lion", config: c).value("beta2"), .number(0.99))
        XCTAssertEqual(OptimizerCatalog.values("adamw", config: c).value("beta2"), .number(0.999))
        try c.override("optimizer.beta2=0.95")
        XCTAssertEqual(OptimizerCatalog.values("adamw", config: c).value("beta2"), .number(0.95))
        try c.override("optimizer.beta2=~")
        XCTAssertNil(c.value("optimizer.beta2"))
        try c.override("optimizer.eps=-1")
        XCTAssertNil(c.value("optimizer.eps"))
        // The YAML form writes unset keys as comments and loads back to the same configuration.
        var reloaded = ResolvedConfig()
        try reloaded.merge(yaml: c.yaml(), source: "round trip")
        XCTAssertEqual(reloaded.values, c.values)
    }

    func testUnknownKeyIsNamedWithASuggestion() {
        var c = ResolvedConfig()
        let m = message { try c.override("optimizer.learning_rate=0.1") }
        XCTAssertTrue(m.contains("'optimizer.learning_rate'") && m.contains("unknown"), m)
        let m2 = message { try c.override("optimizer.lrr=0.1") }
        XCTAssertTrue(m2.contains("did you mean 'optimizer.lr'"), m2)
        let m3 = message { try c.merge(yaml: "train:\n  batch_size: 64\n", source: "x.yaml") }
        XCTAssertTrue(m3.contains("x.yaml") && m3.contains("'train.batch_size'"), m3)
    }

    func testInvalidValuesNameTheKey() {
        var c = ResolvedConfig()
        for (assignment, needle) in [("optimizer.lr=-1", "optimizer.lr"), ("optimizer.name=adamax9", "optimizer.name"),
                                     ("train.global_batch=12.5", "train.global_batch"), ("model.hidden=[64, x]", "model.hidden"),
                                     ("optimizer.nesterov=maybe", "optimizer.nesterov"), ("schedule.min_lr_ratio=2", "schedule.min_lr_ratio"),
                                     ("optimizer.lr", "section.key=value")] {
            let m = message { try c.override(assignment) }
            XCTAssertTrue(m.contains(needle), "\(assignment): \(m)")
        }
    }

    func testOverridesParseAsYAML() throws {
        var c = ResolvedConfig()
        try c.override("optimizer.lr=0.01")
        try c.override("model.hidden=[512, 256]")
        try c.override("optimizer.nesterov=true")
        try c.override("optimizer.eps=1e-6")
        let t = try TrainConfig(c, worldSize: 1)
        XCTAssertEqual(t.lr, 0.01)
        XCTAssertEqual(t.hidden, [512, 256])
        XCTAssertTrue(t.resolved.bool("optimizer.nesterov"))
        XCTAssertEqual(t.resolved.double("optimizer.eps"), 1e-6)
        let adam = OptimizerCatalog.make("adamw", count: 1, config: t.resolved) as! Adam
        XCTAssertEqual(adam.hyper.eps, 1e-6, "an explicit ε reaches the optimizer")
    }

    func testResolvedYAMLRoundTrips() throws {
        var c = ResolvedConfig()
        try c.override("optimizer.eps=1e-08")
        try c.override("output.dir=runs/a b:c")
        var again = ResolvedConfig()
        try again.merge(yaml: c.yaml(header: "comment"), source: "round-trip")
        XCTAssertEqual(again.values, c.values)
    }

    /// Any global batch on any world size (BatchSplit shares), as long as every micro-batch gets a row.
    func testAnyBatchOnAnyWorldSizeButEveryMicroBatchNeedsARow() throws {
        var c = ResolvedConfig()
        try c.override("train.global_batch=100")
        XCTAssertEqual(try TrainConfig(c, worldSize: 3).perRankBatch, 34, "100 on 3 ranks: 34, 33, 33")
        try c.override("train.grad_accum=3")
        XCTAssertEqual(try TrainConfig(c, worldSize: 4).microBatch, 9, "25 rows per rank in 3 micro-batches: 9, 8, 8")
        try c.override("train.global_batch=5")
        let m = message { _ = try TrainConfig(c, worldSize: 2) }
        XCTAssertTrue(m.contains("train.global_batch = 5") && m.contains("train.grad_accum 3") && m.contains("≥ 6"), m)
    }

    func testNesterovNeedsMomentum() {
        var c = ResolvedConfig()
        try? c.override("optimizer.name=sgd")
        try? c.override("optimizer.nesterov=true")
        try? c.override("optimizer.momentum=0")
        XCTAssertTrue(message { _ = try TrainConfig(c, worldSize: 1) }.contains("optimizer.nesterov"))
    }

    func testAutoHyperparametersKeepEachOptimizersOwnDefault() throws {
        let c = ResolvedConfig()
        XCTAssertEqual((OptimizerCatalog.make("adagrad", count: 1, config: c) as! Adagrad).hyper.eps, 1e-10)
        XCTAssertEqual((OptimizerCatalog.make("adamw", count: 1, config: c) as! Adam).hyper.eps, 1e-8)
        XCTAssertEqual((OptimizerCatalog.make("lion", count: 1, config: c) as! Lion).hyper.beta2, 0.99)
        XCTAssertEqual((OptimizerCatalog.make("sgd", count: 1, config: c) as! SGD).hyper.momentum, 0)
        for name in OptimizerCatalog.names {
            let o = OptimizerCatalog.make(name, count: 8, config: c)
            XCTAssertEqual(o.count, 8, name)
            XCTAssertEqual(o.state.count, o.stateNames.count, name)
        }
    }

    func testMuonOnANonMatrixIsAConfigurationErrorNamingTheParameter() throws {
        let table = MLP(widths: [8, 6, 3], activation: .relu).table
        var c = ResolvedConfig()
        try c.override("groups.bias.optimizer=muon")
        let m = message { _ = try TrainConfig(c, worldSize: 1).groupSpecs(for: table) }
        XCTAssertTrue(m.contains("groups.bias.optimizer = muon") && m.contains("'layer0.bias'"), m)
        var all = ResolvedConfig()
        try all.override("optimizer.name=muon")
        XCTAssertTrue(message { _ = try TrainConfig(all, worldSize: 1).groupSpecs(for: table) }.contains("optimizer.name = muon"))
        // The intended routing: Muon for hidden matrices, AdamW for the rest — two groups, matrices whole.
        var good = ResolvedConfig()
        try good.override("groups.matrix.optimizer=muon")
        let specs = try TrainConfig(good, worldSize: 1).groupSpecs(for: table)
        XCTAssertEqual(specs.map(\.name), ["muon", "adamw"])
        XCTAssertEqual(specs[0].tensorNames, ["layer0.weight"])
        XCTAssertEqual(specs[0].sharding, .matrix)
    }

    func testStepsDerivedFromEpochs() throws {
        var c = ResolvedConfig()
        try c.override("train.epochs=2")
        XCTAssertEqual(try TrainConfig(c, worldSize: 1).totalSteps(datasetSize: 60_000), 2 * (60_000 / 256))
        try c.override("train.steps=7")
        XCTAssertEqual(try TrainConfig(c, worldSize: 1).totalSteps(datasetSize: 60_000), 7)
        try c.override("train.global_batch=100000")
        XCTAssertThrowsError(try TrainConfig(c, worldSize: 1).totalSteps(datasetSize: 60_000))
    }
}

final class ScheduleTests: XCTestCase {
    func testWarmupCosineValues() {
        let s = LRSchedule.warmupCosine(warmup: 10, total: 110, minRatio: 0.1)
        XCTAssertEqual(s.lr(base: 1, step: 1), 0.1, accuracy: 1e-12)
        XCTAssertEqual(s.lr(base: 1, step: 5), 0.5, accuracy: 1e-12)
        XCTAssertEqual(s.lr(base: 1, step: 10), 1.0, accuracy: 1e-12)
        // Halfway through the decay: min + (1 − min)·½ = 0.55.
        XCTAssertEqual(s.lr(base: 1, step: 60), 0.55, accuracy: 1e-12)
        XCTAssertEqual(s.lr(base: 1, step: 110), 0.1, accuracy: 1e-12)
        XCTAssertEqual(s.lr(base: 1, step: 500), 0.1, accuracy: 1e-12, "held at the floor after the end")
        // Monotone non-increasing after warmup.
        let values = (10...110).map { s.lr(base: 2, step: $0) }
        XCTAssertTrue(zip(values, values.dropFirst()).allSatisfy { $0 >= $1 })
    }

    func testStepSchedule() {
        let s = LRSchedule.step(warmup: 2, every: 3, gamma: 0.5)
        XCTAssertEqual((1...10).map { s.lr(base: 1, step: $0) }, [0.5, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25])
    }

    func testWarmupStableDecaySchedule() {
        let s = LRSchedule.warmupStableDecay(warmup: 4, decay: 10, total: 100, minRatio: 0.1)
        XCTAssertEqual(s.lr(base: 2, step: 2), 1, accuracy: 1e-12)
        XCTAssertEqual(s.lr(base: 2, step: 50), 2, accuracy: 1e-12, "stable phase")
        XCTAssertEqual(s.lr(base: 2, step: 90), 2, accuracy: 1e-12, "decay starts after step 90")
        XCTAssertEqual(s.lr(base: 2, step: 95), 2 * (1 - 0.9 * 0.5), accuracy: 1e-12)
        XCTAssertEqual(s.lr(base: 2, step: 100), 0.2, accuracy: 1e-12)
    }

    func testScheduleKeysBuildTheRightSchedule() throws {
        var c = ResolvedConfig()
        try c.override("schedule.kind=wsd")
        try c.override("schedule.decay_fraction=0.25")
        XCTAssertEqual(try TrainConfig(c, worldSize: 1).schedule(totalSteps: 200),
                       .warmupStableDecay(warmup: 100, decay: 50, total: 200, minRatio: 0))
        try c.override("schedule.kind=step")
        XCTAssertEqual(try TrainConfig(c, worldSize: 1).schedule(totalSteps: 200), .step(warmup: 100, every: 1000, gamma: 0.1))
    }

    func testConstantAndNoWarmup() {
        XCTAssertEqual(LRSchedule.constant.lr(base: 0.3, step: 1000), 0.3)
        let s = LRSchedule.warmupCosine(warmup: 0, total: 100, minRatio: 0)
        XCTAssertEqual(s.lr(base: 1, step: 0), 1, accuracy: 1e-12)
        XCTAssertEqual(s.lr(base: 1, step: 50), 0.5, accuracy: 1e-12)
        XCTAssertEqual(s.lr(base: 1, step: 100), 0, accuracy: 1e-12)
    }
}

/// The confusing messages the reliability probe met (issue 15, item 6), each now naming the key or file and the fix.
final class ConfigMessageTests: XCTestCase {
    private func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    func testAValueForASectionNamesTheKeyItFits() {
        var c = ResolvedConfig()
        let set = message { try c.override("optimizer=adamw") }
        XCTAssertTrue(set.contains("'optimizer' is a section, not a key") && set.contains("--set optimizer.name=adamw"), set)
        XCTAssertFalse(set.contains("optimizer.lr"), set)
        let yaml = message { try c.merge(yaml: "train: 5\n", source: "x.yaml") }
        XCTAssertTrue(yaml.hasPrefix("x.yaml: 'train' is a section, not a key") && !yaml.contains("unknown"), yaml)
    }

    func testAConfigFileThatIsNotUTF8IsNamedAsSuch() throws {
        let path = NSTemporaryDirectory() + "latin1-\(UUID().uuidString).yaml"
        try Data("train:\n  steps: 5 # caf\u{E9}\n".data(using: .isoLatin1)!).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let m = message { _ = try ResolvedConfig.load(path: path) }
        XCTAssertTrue(m.contains("is not UTF-8 text") && !m.contains("check the path"), m)
        let missing = message { _ = try ResolvedConfig.load(path: path + ".missing") }
        XCTAssertTrue(missing.contains("does not exist: check the path"), missing)
    }

    /// H: only −1 (a legacy spelling) or `~` unsets an optimizer key; any other negative value is a range error,
    /// never silently the default.
    func testNegativeValuesOtherThanMinusOneAreRangeErrors() throws {
        for assignment in ["optimizer.momentum=-0.1", "optimizer.eps=-0.5", "optimizer.beta2=-0.5",
                           "groups.bias.weight_decay=-0.5", "groups.matrix.weight_decay=-1.5"] {
            var c = ResolvedConfig()
            let m = message { try c.override(assignment) }
            let key = String(assignment.split(separator: "=")[0])
            XCTAssertTrue(m.contains("'\(key)'") && m.contains("out of range"), "\(assignment): \(m)")
        }
        var legacy = ResolvedConfig()
        try legacy.override("groups.bias.weight_decay=-1")
        XCTAssertNil(legacy.value("groups.bias.weight_decay"))
    }

    /// I: Rprop's step-size bounds must be ordered.
    func testRpropStepSizeBoundsMustBeOrdered() throws {
        let c = try ResolvedConfig(overrides: ["optimizer.name=rprop", "optimizer.step_size_min=1", "optimizer.step_size_max=0.5"])
        let m = message { _ = try TrainConfig(c, worldSize: 1) }
        XCTAssertTrue(m.contains("optimizer.step_size_min = 1.0 exceeds optimizer.step_size_max = 0.5"), m)
    }

    /// F: Shampoo without damping has no inverse root of its (initially zero) statistics.
    func testShampooDampingMustBePositive() throws {
        var c = try ResolvedConfig(overrides: ["optimizer.name=shampoo"])
        let m = message { try c.override("optimizer.damping=0") }
        XCTAssertTrue(m.contains("'optimizer.damping'") && m.contains("out of range"), m)
        XCTAssertNoThrow(try c.override("optimizer.damping=1e-6"))
    }

    /// L: a step count that would not fit in memory is a range error, not an abort.
    func testHugeStepCountsAreRangeErrors() throws {
        var c = ResolvedConfig()
        let m = message { try c.override("train.steps=10000000000") }
        XCTAssertTrue(m.contains("'train.steps'") && m.contains("out of range"), m)
        let epochs = try ResolvedConfig(overrides: ["train.epochs=1000000", "train.global_batch=1"])
        let e = message { _ = try TrainConfig(epochs, worldSize: 1).totalSteps(datasetSize: 60_000) }
        XCTAssertTrue(e.contains("train.epochs") && e.contains("more than 100000000"), e)
    }

    /// C: a vocabulary smaller than the corpus' token ids would index past the embedding.
    func testAVocabularyBelowTheCorpusTokensIsAnError() throws {
        let path = NSTemporaryDirectory() + "corpus-\(UUID().uuidString).txt"
        try String(repeating: "the quick brown fox jumps over the lazy dog. ", count: 40).write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        for vocabulary in [10, 128] {
            let c = try ResolvedConfig(overrides: ["model.kind=gpt", "data.dataset=text", "data.path=\(path)", "data.vocabulary=\(vocabulary)",
                                                   "model.context=16", "model.width=16", "model.layers=1", "model.heads=2",
                                                   "train.global_batch=4", "train.steps=1"])
            let m = message { _ = try TrainConfig(c, worldSize: 1).makeTask() }
            XCTAssertTrue(m.contains("data.vocabulary = \(vocabulary) is below the 256 token ids") && m.contains("data.vocabulary=256"), m)
        }
    }
}
