// `swift-train attack RUN`: a trained classifier's accuracy on the test set under FGSM and PGD (Models/Adversarial.swift)
// for a list of ε, each rank attacking a contiguous share of the test set. Everything that depends on user input
// (the checkpoint, its model kind, the data, the ε list and attack settings) is validated in `AttackPlan` before MPI
// starts; the ranks then communicate once: one all-reduce of the correct-prediction counts of every (attack, ε).

import Datasets
import Foundation
import Models
import Plots
import SwiftMPI
import Tensors

/// What to attack and how, as the command line gives it.
public struct AttackRequest: Sendable {
    public var run: String
    /// ε values in pixel units.
    public var epsilons: [Float]
    public var methods: [AttackMethod]
    public var steps: Int
    /// α in pixel units; nil: 2.5ε/steps (Madry et al.).
    public var stepSize: Float?
    public var randomStart: Bool
    /// Test examples attacked (the first ones; 0: all).
    public var limit: Int
    /// Examples drawn in the image grid.
    public var images: Int
    /// Output directory; nil: <run>/attack.
    public var out: String?
    public var seed: UInt64

    public init(run: String, epsilons: [Float], methods: [AttackMethod] = AttackMethod.allCases, steps: Int = 10,
                stepSize: Float? = nil, randomStart: Bool = true, limit: Int = 0, images: Int = 8, out: String? = nil,
                seed: UInt64 = 0) {
        self.run = run; self.epsilons = epsilons; self.methods = methods; self.steps = steps; self.stepSize = stepSize
        self.randomStart = randomStart; self.limit = limit; self.images = images; self.out = out; self.seed = seed
    }

    /// From the command line's comma-separated lists (`--eps 0.05,0.1`, `--method fgsm,pgd`).
    public init(run: String, epsilonList: String, methodList: String, steps: Int, stepSize: Float?, randomStart: Bool,
                limit: Int, images: Int, out: String?, seed: UInt64) throws {
        let epsilons = try epsilonList.split(separator: ",").map { text -> Float in
            guard let v = Float(text.trimmingCharacters(in: .whitespaces)), v.isFinite else {
                throw ConfigError("--eps: '\(text)' is not a number; give ε in pixel units, e.g. --eps 0.05,0.1")
            }
            return v
        }
        let methods = try methodList.split(separator: ",").map { text -> AttackMethod in
            guard let m = AttackMethod(rawValue: text.trimmingCharacters(in: .whitespaces).lowercased()) else {
                throw ConfigError("--method: '\(text)' is not fgsm or pgd")
            }
            return m
        }
        self.init(run: run, epsilons: epsilons, methods: methods, steps: steps, stepSize: stepSize, randomStart: randomStart,
                  limit: limit, images: images, out: out, seed: seed)
        if let problem = checkSettings() { throw ConfigError(problem) }
    }

    /// What is wrong with the numbers (before any file is read), or nil.
    public func checkSettings() -> String? {
        if epsilons.isEmpty { return "--eps: give at least one ε (pixel units), e.g. --eps 0.05,0.1" }
        if methods.isEmpty { return "--method: give fgsm, pgd or both" }
        if steps < 1 { return "--steps = \(steps) must be at least 1" }
        if let stepSize, !(stepSize > 0) { return "--step-size = \(stepSize) must be positive (pixel units)" }
        if limit < 0 || images < 0 { return "--limit and --images must be ≥ 0" }
        for m in methods { for e in epsilons { if let p = settings(m, epsilon: e).problem(key: "--eps:") { return p } } }
        return nil
    }

    /// The attack of `method` at ε.
    public func settings(_ method: AttackMethod, epsilon: Float) -> AttackSettings {
        AttackSettings(method: method, epsilon: epsilon, stepSize: stepSize ?? 2.5 * epsilon / Float(steps), steps: steps,
                       randomStart: randomStart, seed: seed)
    }
}

/// A validated attack: the model and its parameters, the test data, and the attacks to run.
public struct AttackPlan {
    public let request: AttackRequest
    public let checkpointPath: String
    public let model: MLP
    public let params: FloatBuffer
    public let test: ImageDataset
    public let space: PixelSpace
    /// Every (method, ε) attack, methods outer.
    public let attacks: [AttackSettings]
    public let outputDirectory: String

    public init(_ request: AttackRequest) throws {
        if let problem = request.checkSettings() { throw ConfigError(problem) }
        attacks = request.methods.flatMap { m in request.epsilons.map { request.settings(m, epsilon: $0) } }
        self.request = request
        do { checkpointPath = try Checkpoint.resolve(request.run) } catch let error as CheckpointError {
            throw ConfigError("attack \(request.run): not a run or checkpoint directory (\(error))")
        }
        let checkpoint = try Checkpoint.load(checkpointPath)
        let config = try checkpoint.trainConfig(worldSize: 1)
        guard config.modelKind == "mlp" else {
            throw ConfigError("\(request.run) holds a \(checkpoint.manifest.model), not an image classifier: attack needs a run with model.kind mlp")
        }
        let (_, test) = try FashionMNIST.load(directory: config.dataDirectory)
        guard let normalisation = test.normalisation else { throw ConfigError("the test set carries no pixel normalisation") }
        model = MLP(widths: [test.featureCount] + config.hidden + [test.classes], activation: config.activation)
        params = try checkpoint.parameterBuffer(for: model.table, description: "MLP")
        self.test = test
        space = PixelSpace(mean: normalisation.mean, std: normalisation.std)
        outputDirectory = request.out ?? URL(fileURLWithPath: checkpointPath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("attack").path
    }

    /// A plan over a given model and test set (tests, synthetic data); `request.run` is only recorded.
    public init(request: AttackRequest, model: MLP, params: FloatBuffer, test: ImageDataset, space: PixelSpace) throws {
        if let problem = request.checkSettings() { throw ConfigError(problem) }
        self.request = request
        checkpointPath = request.run
        self.model = model; self.params = params; self.test = test; self.space = space
        attacks = request.methods.flatMap { m in request.epsilons.map { request.settings(m, epsilon: $0) } }
        outputDirectory = request.out ?? "\(request.run)/attack"
    }

    /// Examples attacked.
    public var examples: Int { request.limit > 0 ? min(request.limit, test.count) : test.count }
}

/// Accuracy under every attack, over all ranks.
public struct AttackReport: Sendable {
    public var examples: Int
    public var cleanAccuracy: Double
    public var attacks: [(settings: AttackSettings, accuracy: Double)]
    public var seconds: Double
    public var worldSize: Int

    public func table() -> String {
        func cell(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count + 1), withPad: " ", startingAt: 0) }
        var lines = ["clean accuracy \(String(format: "%.4f", cleanAccuracy)) on \(examples) test examples (\(worldSize) ranks, \(String(format: "%.1f", seconds)) s)",
                     cell("method", 8) + cell("ε (pixels)", 12) + cell("steps", 7) + cell("step size", 11) + cell("random start", 14) + "robust accuracy"]
        for (s, accuracy) in attacks {
            lines.append(cell(s.method.rawValue, 8) + cell(String(format: "%.4g", s.epsilon), 12) + cell("\(s.steps)", 7)
                         + cell(String(format: "%.4g", s.stepSize), 11) + cell(s.randomStart ? "yes" : "no", 14)
                         + String(format: "%.4f", accuracy))
        }
        return lines.joined(separator: "\n")
    }

    public func json(checkpoint: String) -> JSONObject {
        var o = JSONObject()
        o.add("checkpoint", checkpoint)
        o.add("examples", examples)
        o.add("world_size", worldSize)
        o.add("clean_accuracy", cleanAccuracy)
        o.add("seconds", seconds)
        let rows = attacks.map { a -> String in
            var r = JSONObject()
            r.add("method", a.settings.method.rawValue)
            r.add("epsilon", Double(a.settings.epsilon))
            r.add("steps", a.settings.steps)
            r.add("step_size", Double(a.settings.stepSize))
            r.add("random_start", a.settings.randomStart)
            r.add("robust_accuracy", a.accuracy)
            return r.line
        }
        o.add("attacks", raw: "[" + rows.joined(separator: ",") + "]")
        return o
    }
}

public enum AttackRunner {
    /// Rows per attacked batch (bounded memory; the result does not depend on it).
    public static let batchRows = 500

    /// Runs every attack on this rank's share of the first `plan.examples` test examples and combines the counts
    /// (one all-reduce). Every rank returns the same report.
    public static func run(_ plan: AttackPlan, comm: Communicator, progress: ((String) -> Void)? = nil) throws -> AttackReport {
        let start = DispatchTime.now().uptimeNanoseconds
        let n = plan.examples, f = plan.test.featureCount
        let mine = (n * comm.rank / comm.size)..<(n * (comm.rank + 1) / comm.size)
        let attack = AdversarialAttack(model: plan.model, space: plan.space)
        let adversarial = FloatBuffer(count: batchRows * f)
        var correct = [Double](repeating: 0, count: 1 + plan.attacks.count)  // [clean, attack₀, attack₁, …]
        try plan.test.features.withUnsafeBufferPointer { features in
            try plan.test.labels.withUnsafeBufferPointer { labels in
                var row = mine.lowerBound
                while row < mine.upperBound {
                    let rows = min(batchRows, mine.upperBound - row)
                    let batch = ModelBatch(features: features.baseAddress! + row * f, targets: labels.baseAddress! + row, rows: rows)
                    correct[0] += Double(plan.model.forward(params: plan.params.pointer, batch: batch).correct)
                    for (k, settings) in plan.attacks.enumerated() {
                        attack.perturb(params: plan.params.pointer, batch: batch, settings: settings, into: adversarial.pointer,
                                       firstRow: row)
                        let attacked = ModelBatch(features: adversarial.pointer, targets: batch.targets, rows: rows)
                        correct[1 + k] += Double(plan.model.forward(params: plan.params.pointer, batch: attacked).correct)
                    }
                    row += rows
                    progress?("rank 0: \(row - mine.lowerBound)/\(mine.count) examples attacked")
                }
            }
        }
        try comm.allReduce(&correct, op: .sum)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        return AttackReport(examples: n, cleanAccuracy: correct[0] / Double(n),
                            attacks: plan.attacks.enumerated().map { ($1, correct[1 + $0] / Double(n)) },
                            seconds: seconds, worldSize: comm.size)
    }

    /// The first `count` test examples, clean and under each attack, as an SVG grid with the predicted classes.
    public static func imageGrid(_ plan: AttackPlan, count: Int) -> SVGImageGrid {
        let f = plan.test.featureCount, side = Int(Double(f).squareRoot())
        let rows = min(count, plan.examples)
        var grid = SVGImageGrid(title: "Adversarial examples (pixel units; caption: label → prediction)", imageWidth: side, imageHeight: side)
        guard rows > 0, side * side == f else { return grid }
        let attack = AdversarialAttack(model: plan.model, space: plan.space)
        let adversarial = FloatBuffer(count: rows * f)
        plan.test.features.withUnsafeBufferPointer { features in plan.test.labels.withUnsafeBufferPointer { labels in
            let batch = ModelBatch(features: features.baseAddress!, targets: labels.baseAddress!, rows: rows)
            func cells(_ inputs: UnsafePointer<Float>) -> [SVGImageGrid.Cell] {
                _ = plan.model.forward(params: plan.params.pointer, batch: ModelBatch(features: inputs, targets: labels.baseAddress!, rows: rows))
                let predicted = plan.model.lastPredictions(rows: rows)
                return (0..<rows).map { r in
                    SVGImageGrid.Cell(pixels: (0..<f).map { plan.space.pixel(inputs[r * f + $0]) },
                                      caption: "\(labels[r]) → \(predicted[r])")
                }
            }
            grid.addRow("clean", cells(features.baseAddress!))
            for settings in plan.attacks {
                attack.perturb(params: plan.params.pointer, batch: batch, settings: settings, into: adversarial.pointer)
                grid.addRow("\(settings.method.rawValue) ε = \(settings.epsilon)", cells(UnsafePointer(adversarial.pointer)))
            }
        }}
        return grid
    }
}
