// Batch-size sweeps: a grid of training configurations run one after another inside one MPI job, each point to a
// target (eval accuracy or train loss) within a budget, with steps/examples/seconds to the target collected in
// results.csv. docs/batch-size.md documents the sweep file; Report.swift turns the results into a report.
//
// Phases: (1) SweepSpec parses the sweep file; (2) SweepPlan expands the grid and derives and validates every point's
// configuration for the world size — before MPI starts, so a bad point stops every rank before any communicates;
// (3) SweepRunner runs the points in plan order on every rank, rank 0 writing through SweepDirectory.

import Data
import Foundation
import Models
import SwiftMPI
import Tensors
import Yams

/// How the peak learning rate follows the global batch B from the reference batch B_ref (κ = B/B_ref):
/// `linear` γ·κ (Goyal et al. 2017), `sqrt` γ·√κ (Krizhevsky 2014; Malladi et al. 2022 for Adam), `none` γ.
public enum LRScaling: String, CaseIterable, Sendable {
    case none, linear, sqrt

    public func factor(batch: Int, reference: Int) -> Double {
        let kappa = Double(batch) / Double(reference)
        switch self {
        case .none: return 1
        case .linear: return kappa
        case .sqrt: return kappa.squareRoot()
        }
    }
}

/// What a sweep point trains towards. Checked at every evaluation (`train.eval_every`); training ends there.
public enum SweepTarget: Sendable, Equatable, CustomStringConvertible {
    /// Reached when the held-out accuracy is ≥ the threshold.
    case evalAccuracy(Double)
    /// Reached when the mean training loss of the last logged window is ≤ the threshold.
    case trainLoss(Double)

    public func isReached(eval: BatchResult, trainLoss: Double) -> Bool {
        switch self {
        case .evalAccuracy(let t): return eval.accuracy >= t
        case .trainLoss(let l): return trainLoss <= l
        }
    }

    public var metric: String {
        switch self {
        case .evalAccuracy: return "eval_accuracy"
        case .trainLoss: return "train_loss"
        }
    }

    public var threshold: Double {
        switch self {
        case .evalAccuracy(let t), .trainLoss(let t): return t
        }
    }

    /// "eval_accuracy>=0.85" or "train_loss<=0.3" (the form in results.csv).
    public var description: String {
        switch self {
        case .evalAccuracy(let t): return "eval_accuracy>=\(t)"
        case .trainLoss(let l): return "train_loss<=\(l)"
        }
    }
}

/// A named bundle of settings (e.g. "muon+adamw": optimizer.name adamw, groups.matrix.optimizer muon, …) that
/// forms one grid axis, `variant`.
public struct SweepVariant: Sendable {
    public var name: String
    /// Configuration keys and their values, in file order.
    public var settings: [(key: String, value: ConfigValue)]
    /// Per-global-batch `key=value` overrides for this variant only (applied after the sweep-level ones).
    public var overrides: [Int: [String]]
    /// Overrides the sweep's `lr_scaling` for this variant.
    public var lrScaling: LRScaling?
}

/// One grid axis: a configuration key, or `variant` / `lr_factor`, with its values in file order.
public struct SweepAxis: Sendable {
    public static let variant = "variant"
    public static let lrFactor = "lr_factor"

    public var key: String
    /// For configuration keys, the converted values; for `variant`, `.string(name)`; for `lr_factor`, `.double`.
    public var values: [ConfigValue]
}

/// A parsed sweep file (configs/sweeps/*.yaml; every key is documented in docs/batch-size.md).
public struct SweepSpec: Sendable {
    public var name: String
    public var source: String
    /// The sweep file's text (copied to <sweep dir>/sweep.yaml).
    public var text: String
    public var base: ResolvedConfig
    public var variants: [SweepVariant] = []
    /// Grid axes; the first varies slowest. A `variant` axis is first unless `grid` places it.
    public var axes: [SweepAxis] = []
    public var lrScaling: LRScaling = .none
    /// B_ref of the scaling rules: the batch the configured learning rates are meant for.
    public var referenceBatch: Int
    /// With `sqrt`: also (1−β₁)·κ, (1−β₂)·κ, ε/√κ for the Adam family (Malladi et al. 2022).
    public var scaleAdamBetas = false
    public var warmupEpochs: Double?
    /// Per-rank examples per micro-batch above which gradient accumulation is used.
    public var maxRankBatch = 512
    /// Per-global-batch `key=value` overrides, applied after the grid (a tuned learning rate per batch, …).
    public var overrides: [Int: [String]] = [:]
    public var target: SweepTarget?
    public var evalEveryExamples: Int?
    public var logEveryExamples: Int?
    public var maxEpochs: Double?
    /// Keep the configured checkpoint keys (default: no checkpoints for sweep points).
    public var checkpoints = false
    /// Write each point's model.safetensors (default: no).
    public var saveModels = false

    public static let topLevelKeys = ["name", "base", "variants", "grid", "lr_scaling", "reference_batch",
                                      "scale_adam_betas", "warmup_epochs", "max_rank_batch", "overrides", "target",
                                      "checkpoints", "save_models"]
    public static let targetKeys = ["eval_accuracy", "train_loss", "eval_every_examples", "log_every_examples",
                                    "max_epochs"]

    public static func load(path: String) throws -> SweepSpec {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError("sweep file \(path) cannot be read: check the path (configs/sweeps/ has the shipped sweeps)")
        }
        let url = URL(fileURLWithPath: path)
        return try SweepSpec(yaml: text, source: path, name: url.deletingPathExtension().lastPathComponent,
                             directory: url.deletingLastPathComponent().path)
    }

    /// - Parameters:
    ///   - name: default sweep name (the file's stem) when the file has no `name:`.
    ///   - directory: the sweep file's folder; a relative `base:` path is looked up in the current directory first,
    ///     then there.
    public init(yaml text: String, source: String, name: String = "sweep", directory: String = ".") throws {
        self.text = text
        self.source = source
        self.name = name
        base = ResolvedConfig(name: name)
        referenceBatch = base.int("train.global_batch")

        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else { throw ConfigError("\(source): the sweep file is empty") }
            root = node
        } catch let error as ConfigError { throw error } catch {
            throw ConfigError("\(source): not valid YAML: \(error)")
        }
        guard let top = root.mapping else {
            throw ConfigError("\(source): the top level must be a mapping (base:, grid:, target:, …; see docs/batch-size.md)")
        }
        var fields: [String: Node] = [:]
        for (k, v) in top {
            let key = k.string ?? ""
            guard Self.topLevelKeys.contains(key) else {
                throw ConfigError("\(source): unknown sweep key '\(key)'; known keys: \(Self.topLevelKeys.joined(separator: ", ")) " +
                                  "(training configuration keys go under base:, variants: or grid:)")
            }
            fields[key] = v
        }
        func scalar<T>(_ key: String, _ convert: (Node) -> T?, _ what: String) throws -> T? {
            guard let node = fields[key] else { return nil }
            guard let v = convert(node) else { throw ConfigError("\(source): \(key) must be \(what), got '\(node.string ?? "a collection")'") }
            return v
        }

        if let n = try scalar("name", { $0.string }, "a string") { self.name = n; base.name = n }

        // Base configuration: a path to a training config, or inline keys.
        if let b = fields["base"] {
            if let path = b.string, b.scalar != nil {
                let candidates = path.hasPrefix("/") ? [path] : [path, "\(directory)/\(path)"]
                guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
                    throw ConfigError("\(source): base: \(path) not found (looked in \(candidates.joined(separator: " and "))); " +
                                      "give a path relative to the current directory or to the sweep file")
                }
                base = try ResolvedConfig.load(path: found)
                base.name = self.name
            } else if let mapping = b.mapping {
                for (key, value) in flatten(mapping, prefix: "") {
                    try base.set(key, raw: value.any, source: "\(source): base")
                }
            } else {
                throw ConfigError("\(source): base must be a path to a training config or a mapping of configuration keys")
            }
        }

        if let s = try scalar("lr_scaling", { $0.string }, "none, linear or sqrt") {
            guard let rule = LRScaling(rawValue: s) else { throw ConfigError("\(source): lr_scaling '\(s)' must be none, linear or sqrt") }
            lrScaling = rule
        }
        referenceBatch = try scalar("reference_batch", { $0.int }, "a positive integer") ?? base.int("train.global_batch")
        guard referenceBatch > 0 else { throw ConfigError("\(source): reference_batch must be a positive integer") }
        scaleAdamBetas = try scalar("scale_adam_betas", { $0.bool }, "true or false") ?? false
        warmupEpochs = try scalar("warmup_epochs", { $0.float }, "a number of epochs ≥ 0")
        if let w = warmupEpochs, !(w >= 0 && w.isFinite) { throw ConfigError("\(source): warmup_epochs must be ≥ 0") }
        maxRankBatch = try scalar("max_rank_batch", { $0.int }, "a positive integer") ?? 512
        guard maxRankBatch > 0 else { throw ConfigError("\(source): max_rank_batch must be a positive integer") }
        checkpoints = try scalar("checkpoints", { $0.bool }, "true or false") ?? false
        saveModels = try scalar("save_models", { $0.bool }, "true or false") ?? false
        if let o = fields["overrides"] { overrides = try Self.parseOverrides(o, at: "overrides", source: source) }

        if let t = fields["target"] { try parseTarget(t) }
        if let v = fields["variants"] { try parseVariants(v) }
        if let g = fields["grid"] { try parseGrid(g) }
        if !variants.isEmpty && !axes.contains(where: { $0.key == SweepAxis.variant }) {
            axes.insert(SweepAxis(key: SweepAxis.variant, values: variants.map { .string($0.name) }), at: 0)
        }
        if lrScaling == LRScaling.none && variants.allSatisfy({ ($0.lrScaling ?? LRScaling.none) == LRScaling.none }) && fields["reference_batch"] != nil {
            // Harmless, but probably a mistake worth naming.
            throw ConfigError("\(source): reference_batch is set but lr_scaling is none: set lr_scaling: linear or sqrt, or remove reference_batch")
        }
        try checkDerivedKeys()
        let batches = Set(pointBatches())
        for b in overrides.keys where !batches.contains(b) {
            throw ConfigError("\(source): overrides.\(b): no point of the grid has train.global_batch \(b) " +
                              "(batches: \(batches.sorted().map(String.init).joined(separator: ", "))); fix the batch or remove the entry")
        }
    }

    /// Keys the sweep derives per point; variants and grid axes may not set them (per-batch overrides may).
    public var derivedKeys: [String] {
        var keys: [String] = []
        if warmupEpochs != nil { keys.append("schedule.warmup_steps") }
        if target != nil && evalEveryExamples != nil { keys += ["train.eval_every", "train.log_every"] }
        if maxEpochs != nil { keys += ["train.epochs", "train.steps"] }
        return keys
    }

    private func checkDerivedKeys() throws {
        let derived = Set(derivedKeys)
        for axis in axes where derived.contains(axis.key) {
            throw ConfigError("\(source): grid.\(axis.key) conflicts with a sweep setting that derives it per batch size " +
                              "(warmup_epochs, target.eval_every_examples or target.max_epochs): remove one of the two")
        }
        for variant in variants {
            for (key, _) in variant.settings where derived.contains(key) {
                throw ConfigError("\(source): variants.\(variant.name).\(key) conflicts with a sweep setting that derives it " +
                                  "per batch size (warmup_epochs, target.eval_every_examples or target.max_epochs): remove one of the two")
            }
        }
    }

    /// Every global batch a point can have (grid values, or the base's).
    private func pointBatches() -> [Int] {
        var batches: Set<Int> = []
        if let axis = axes.first(where: { $0.key == "train.global_batch" }) {
            for v in axis.values { if case .int(let b) = v { batches.insert(b) } }
        } else {
            batches.insert(base.int("train.global_batch"))
            for variant in variants {
                for (k, v) in variant.settings where k == "train.global_batch" { if case .int(let b) = v { batches.insert(b) } }
            }
        }
        return batches.sorted()
    }

    private mutating func parseTarget(_ node: Node) throws {
        guard let mapping = node.mapping else {
            throw ConfigError("\(source): target must be a mapping, e.g. {eval_accuracy: 0.85, eval_every_examples: 10000, max_epochs: 20}")
        }
        for (k, v) in mapping {
            let key = k.string ?? ""
            guard Self.targetKeys.contains(key) else {
                throw ConfigError("\(source): unknown key target.\(key); known: \(Self.targetKeys.joined(separator: ", "))")
            }
            func number() throws -> Double {
                guard let d = v.float, d.isFinite else { throw ConfigError("\(source): target.\(key) must be a number") }
                return d
            }
            switch key {
            case "eval_accuracy", "train_loss":
                guard target == nil else { throw ConfigError("\(source): target: give eval_accuracy or train_loss, not both") }
                let t = try number()
                if key == "eval_accuracy" {
                    guard t > 0 && t <= 1 else { throw ConfigError("\(source): target.eval_accuracy must be in (0, 1]") }
                    target = .evalAccuracy(t)
                } else {
                    guard t > 0 else { throw ConfigError("\(source): target.train_loss must be > 0") }
                    target = .trainLoss(t)
                }
            case "eval_every_examples", "log_every_examples":
                guard let n = v.int, n > 0 else { throw ConfigError("\(source): target.\(key) must be a positive integer") }
                if key == "eval_every_examples" { evalEveryExamples = n } else { logEveryExamples = n }
            default:  // max_epochs
                let e = try number()
                guard e > 0 else { throw ConfigError("\(source): target.max_epochs must be > 0") }
                maxEpochs = e
            }
        }
        guard target != nil else {
            throw ConfigError("\(source): target needs eval_accuracy: T or train_loss: L")
        }
        guard evalEveryExamples != nil else {
            throw ConfigError("\(source): target needs eval_every_examples (how often, in training examples, to check the target)")
        }
    }

    private mutating func parseVariants(_ node: Node) throws {
        guard let mapping = node.mapping else {
            throw ConfigError("\(source): variants must be a mapping of names to settings, e.g. variants: {sgd: {optimizer.name: sgd}}")
        }
        for (k, v) in mapping {
            guard let name = k.string, !name.isEmpty else { throw ConfigError("\(source): variants: a variant name must be a string") }
            guard let body = v.mapping else {
                throw ConfigError("\(source): variants.\(name) must be a mapping of configuration keys (nested or dotted)")
            }
            var variant = SweepVariant(name: name, settings: [], overrides: [:], lrScaling: nil)
            var scratch = base
            for (key, value) in flatten(body, prefix: "", reserved: ["overrides", "lr_scaling"]) {
                if key == "overrides" {
                    variant.overrides = try Self.parseOverrides(value, at: "variants.\(name).overrides", source: source)
                } else if key == "lr_scaling" {
                    guard let rule = value.string.flatMap(LRScaling.init(rawValue:)) else {
                        throw ConfigError("\(source): variants.\(name).lr_scaling must be none, linear or sqrt")
                    }
                    variant.lrScaling = rule
                } else {
                    try scratch.set(key, raw: value.any, source: "\(source): variants.\(name)")
                    variant.settings.append((key, scratch.values[key]!))
                }
            }
            guard !variants.contains(where: { $0.name == name }) else { throw ConfigError("\(source): variant '\(name)' is defined twice") }
            variants.append(variant)
        }
    }

    private mutating func parseGrid(_ node: Node) throws {
        guard let mapping = node.mapping else {
            throw ConfigError("\(source): grid must be a mapping of keys to lists of values, e.g. grid: {train.global_batch: [64, 256]}")
        }
        for (key, value) in flatten(mapping, prefix: "") {
            let items: [Node] = value.sequence.map { Array($0) } ?? [value]
            guard !items.isEmpty else { throw ConfigError("\(source): grid.\(key) is an empty list: give at least one value") }
            var values: [ConfigValue] = []
            for (i, item) in items.enumerated() {
                let at = "\(source): grid.\(key)[\(i)]"
                switch key {
                case SweepAxis.variant:
                    guard let name = item.string, variants.contains(where: { $0.name == name }) else {
                        throw ConfigError("\(at): '\(item.string ?? "?")' is not a variant defined under variants: " +
                                          "(\(variants.map(\.name).joined(separator: ", ")))")
                    }
                    values.append(.string(name))
                case SweepAxis.lrFactor:
                    guard let f = item.float, f > 0, f.isFinite else { throw ConfigError("\(at): an lr_factor must be a positive number") }
                    values.append(.double(f))
                default:
                    var scratch = base
                    try scratch.set(key, raw: item.any, source: at)
                    values.append(scratch.values[key]!)
                }
            }
            for (i, v) in values.enumerated() where values[..<i].contains(v) {
                throw ConfigError("\(source): grid.\(key) lists \(v) twice: each value must appear once")
            }
            guard !axes.contains(where: { $0.key == key }) else { throw ConfigError("\(source): grid.\(key) is given twice") }
            axes.append(SweepAxis(key: key, values: values))
        }
    }

    static func parseOverrides(_ node: Node, at path: String, source: String) throws -> [Int: [String]] {
        guard let mapping = node.mapping else {
            throw ConfigError("\(source): \(path) must map a global batch to a list of key=value, e.g. {4096: [optimizer.lr=0.4]}")
        }
        var out: [Int: [String]] = [:]
        for (k, v) in mapping {
            guard let batch = k.int, batch > 0 else {
                throw ConfigError("\(source): \(path): '\(k.string ?? "?")' is not a global batch size (a positive integer)")
            }
            let items: [Node] = v.sequence.map { Array($0) } ?? [v]
            var assignments: [String] = []
            for item in items {
                guard let s = item.string, s.contains("=") else {
                    throw ConfigError("\(source): \(path).\(batch): '\(item.string ?? "?")' must be key=value, e.g. optimizer.lr=0.4")
                }
                var scratch = ResolvedConfig()
                try scratch.override(s)  // checks the key and value now, naming them
                guard !s.hasPrefix("train.global_batch") else {
                    throw ConfigError("\(source): \(path).\(batch): an override cannot change train.global_batch")
                }
                assignments.append(s)
            }
            out[batch] = assignments
        }
        return out
    }
}

/// Flattens nested mappings to dotted keys in file order (`optimizer: {lr: 1}` and `optimizer.lr: 1` are the same).
/// Keys in `reserved` are kept whole at the top level.
private func flatten(_ mapping: Node.Mapping, prefix: String, reserved: Set<String> = []) -> [(String, Node)] {
    var out: [(String, Node)] = []
    for (k, v) in mapping {
        let key = k.string ?? ""
        let path = prefix.isEmpty ? key : "\(prefix).\(key)"
        if prefix.isEmpty && reserved.contains(key) { out.append((key, v)); continue }
        if let nested = v.mapping { out += flatten(nested, prefix: path) } else { out.append((path, v)) }
    }
    return out
}

// MARK: - Plan

/// Builds the training task of a point (data and model). The CLI's caches the loaded dataset between points;
/// tests build synthetic ones.
public typealias SweepTaskFactory = @Sendable (TrainConfig) throws -> TrainingTask

/// One point of the grid with its fully derived, validated configuration.
public struct SweepPoint: Sendable {
    /// Position in plan order (0-based).
    public var index: Int
    /// Directory name under points/, from the grid values (e.g. "sgd_b256_lrx0.5").
    public var name: String
    /// The point's grid values in axis order, as written in results.csv.
    public var values: [(key: String, value: String)]
    public var config: TrainConfig
    public var variant: String?
    /// The variant name, or the optimizer(s) (e.g. "muon(matrix)+adamw").
    public var optimizerLabel: String
    public var lrFactor: Double
    public var globalBatch: Int { config.globalBatch }
    public var lr: Double { config.lr }
    /// Non-zero per-role learning rates, e.g. "matrix=0.02".
    public var groupLRs: String
    public var totalSteps: Int

    /// "variant=sgd train.global_batch=256 lr_factor=0.5" (for messages).
    public var label: String { values.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
}

/// The expanded, validated sweep for one world size.
public struct SweepPlan: Sendable {
    public let spec: SweepSpec
    public let worldSize: Int
    public let points: [SweepPoint]

    /// Expands the grid (first axis slowest) and derives each point's configuration:
    ///  1. base, then the variant's keys, then the grid's configuration keys;
    ///  2. per-batch overrides (sweep-level, then the variant's);
    ///  3. learning rates (optimizer.lr and every non-zero groups.<role>.lr): ×rule(B/B_ref) unless an override set
    ///     that key for this batch, then ×lr_factor; with `scale_adam_betas`, β₁, β₂, ε of the Adam family;
    ///  4. schedule.warmup_steps from warmup_epochs, train.eval_every/log_every from the target's example intervals,
    ///     train.epochs from max_epochs (each unless an override set it), train.grad_accum from max_rank_batch (unless
    ///     the variant, grid or an override set it), checkpoints and model saving off (unless the sweep enables them);
    ///  5. TrainConfig for `worldSize`, the task (`taskFactory`), total steps and optimizer groups.
    /// Every error names the point and what to change.
    public init(spec: SweepSpec, worldSize: Int, taskFactory: SweepTaskFactory) throws {
        self.spec = spec
        self.worldSize = worldSize
        var points: [SweepPoint] = []
        let combos = spec.axes.reduce([[ConfigValue]]([[]])) { partial, axis in
            partial.flatMap { prefix in axis.values.map { prefix + [$0] } }
        }
        var names: [String: Int] = [:]
        for (index, combo) in combos.enumerated() {
            let values = zip(spec.axes, combo).map { (key: $0.key, value: $1.description) }
            let name = Self.pointName(axes: spec.axes, combo: combo)
            let label = values.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            do {
                var point = try Self.derive(spec: spec, combo: combo, worldSize: worldSize, taskFactory: taskFactory)
                point.index = index
                point.name = name
                point.values = values
                points.append(point)
            } catch {
                throw ConfigError("sweep point \(index + 1) '\(name)' (\(label)): \(error)")
            }
            if let other = names[name] {
                throw ConfigError("sweep points \(other + 1) and \(index + 1) both get the directory name '\(name)': " +
                                  "make the grid values distinguishable (they differ only in characters dropped from names)")
            }
            names[name] = index
        }
        self.points = points
    }

    static func pointName(axes: [SweepAxis], combo: [ConfigValue]) -> String {
        let leaves = axes.map { $0.key.split(separator: ".").last.map(String.init) ?? $0.key }
        var parts: [String] = []
        for (i, (axis, value)) in zip(axes, combo).enumerated() {
            var text: String
            switch value {
            case .string(let s): text = s
            case .double(let d): text = d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : "\(d)"
            default: text = value.description
            }
            text = sanitize(text)
            switch axis.key {
            case SweepAxis.variant, "optimizer.name": parts.append(text)
            case "train.global_batch": parts.append("b" + text)
            case SweepAxis.lrFactor: parts.append("lrx" + text)
            case "optimizer.lr": parts.append("lr" + text)
            case "train.seed": parts.append("seed" + text)
            default:
                // The leaf name, or the whole path when two axes share a leaf.
                let leaf = leaves.filter({ $0 == leaves[i] }).count > 1 ? axis.key.replacingOccurrences(of: ".", with: "-") : leaves[i]
                parts.append("\(leaf)-\(text)")
            }
        }
        return parts.isEmpty ? "point" : parts.joined(separator: "_")
    }

    private static func sanitize(_ s: String) -> String {
        var out = ""
        for ch in s {
            if ch.isASCII && (ch.isLetter || ch.isNumber || ch == "." || ch == "+" || ch == "-") { out.append(ch) }
            else if !out.hasSuffix("-") { out.append("-") }
        }
        let trimmed = out.trimmingCharacters(in: CharacterSet(charactersIn: "-"))
        return trimmed.isEmpty ? "x" : trimmed
    }

    static let lrKeys = ["optimizer.lr"] + TensorRole.allCases.map { "groups.\($0.rawValue).lr" }
    static let adamFamily: Set<String> = ["adam", "adamw", "nadam", "radam", "adamax", "lamb"]

    private static func derive(spec: SweepSpec, combo: [ConfigValue], worldSize: Int,
                               taskFactory: SweepTaskFactory) throws -> SweepPoint {
        // Phase 1: base, variant, grid.
        var c = spec.base
        var variant: SweepVariant?
        var explicit: Set<String> = []
        var lrFactor = 1.0
        for (axis, value) in zip(spec.axes, combo) where axis.key == SweepAxis.variant {
            if case .string(let name) = value { variant = spec.variants.first { $0.name == name } }
        }
        for (key, value) in variant?.settings ?? [] {
            try c.set(key, raw: value.raw, source: "variants.\(variant!.name)")
            explicit.insert(key)
        }
        for (axis, value) in zip(spec.axes, combo) where axis.key != SweepAxis.variant {
            if axis.key == SweepAxis.lrFactor {
                if case .double(let f) = value { lrFactor = f }
            } else {
                try c.set(axis.key, raw: value.raw, source: "grid.\(axis.key)")
                explicit.insert(axis.key)
            }
        }
        let batch = c.int("train.global_batch")

        // Phase 2: per-batch overrides (the last word on the keys they set).
        var pinned: Set<String> = []
        for (origin, assignments) in [("overrides.\(batch)", spec.overrides[batch] ?? []),
                                      ("variants.\(variant?.name ?? "").overrides.\(batch)", variant?.overrides[batch] ?? [])] {
            for assignment in assignments {
                do { try c.override(assignment) } catch { throw ConfigError("\(origin): \(error)") }
                pinned.insert(String(assignment[..<assignment.firstIndex(of: "=")!]).trimmingCharacters(in: .whitespaces))
            }
        }

        // Phase 3: learning rates and (optionally) Adam's β and ε.
        let rule = variant?.lrScaling ?? spec.lrScaling
        let factor = rule.factor(batch: batch, reference: spec.referenceBatch)
        for key in lrKeys where c.double(key) > 0 {
            let scaled = (pinned.contains(key) ? c.double(key) : c.double(key) * factor) * lrFactor
            try c.set(key, raw: scaled, source: "lr_scaling")
        }
        if spec.scaleAdamBetas && rule == .sqrt && adamFamily.contains(c.string("optimizer.name")) {
            let kappa = Double(batch) / Double(spec.referenceBatch)
            let name = c.string("optimizer.name")
            let beta2 = c.double("optimizer.beta2") < 0 ? 0.999 : c.double("optimizer.beta2")
            let eps = c.double("optimizer.eps") < 0 ? (name == "lamb" ? 1e-6 : 1e-8) : c.double("optimizer.eps")
            for (key, beta) in [("optimizer.beta1", c.double("optimizer.beta1")), ("optimizer.beta2", beta2)] where !pinned.contains(key) {
                let scaled = 1 - (1 - beta) * kappa
                guard scaled >= 0 && scaled < 1 else {
                    throw ConfigError("scale_adam_betas: \(key) = \(beta) at batch \(batch) (κ = \(kappa)) becomes \(scaled), outside [0, 1): " +
                                      "use a reference_batch closer to this batch, set \(key) for it in overrides, or turn scale_adam_betas off")
                }
                try c.set(key, raw: scaled, source: "scale_adam_betas")
            }
            if !pinned.contains("optimizer.eps") { try c.set("optimizer.eps", raw: eps / kappa.squareRoot(), source: "scale_adam_betas") }
        }

        // Phase 4: intervals and budget in examples/epochs → steps for this batch; accumulation; outputs.
        if let examples = spec.evalEveryExamples, spec.target != nil {
            let evalEvery = max(1, Int((Double(examples) / Double(batch)).rounded()))
            if !pinned.contains("train.eval_every") { try c.set("train.eval_every", raw: evalEvery, source: "target.eval_every_examples") }
            if !pinned.contains("train.log_every") {
                // A divisor of eval_every, so the training loss checked at an evaluation is the window ending there.
                let wanted = max(1, Int((Double(spec.logEveryExamples ?? max(1, examples / 4)) / Double(batch)).rounded()))
                let every = c.int("train.eval_every")
                let logEvery = (1...max(1, min(wanted, every))).last { every % $0 == 0 } ?? 1
                try c.set("train.log_every", raw: logEvery, source: "target.log_every_examples")
            }
        }
        if let epochs = spec.maxEpochs {
            if !pinned.contains("train.epochs") { try c.set("train.epochs", raw: epochs, source: "target.max_epochs") }
            if !pinned.contains("train.steps") { try c.set("train.steps", raw: 0, source: "target.max_epochs") }
        }
        if !explicit.contains("train.grad_accum") && !pinned.contains("train.grad_accum") {
            try c.set("train.grad_accum", raw: gradAccum(globalBatch: batch, worldSize: worldSize, maxRankBatch: spec.maxRankBatch),
                      source: "max_rank_batch")
        }
        if !spec.checkpoints {
            try c.set("checkpoint.every", raw: 0, source: "sweep")
            try c.set("checkpoint.final", raw: false, source: "sweep")
        }
        if !spec.saveModels { try c.set("output.save_model", raw: false, source: "sweep") }

        // Phase 5: validate for the world size; build the task once for the data set size and the model's tensors.
        var config = try TrainConfig(c, worldSize: worldSize)
        let task = try taskFactory(config)
        if let w = spec.warmupEpochs, !pinned.contains("schedule.warmup_steps") {
            let stepsPerEpoch = Double(task.rowsPerEpoch / max(1, batch))
            let warmup = w > 0 ? max(1, Int((w * stepsPerEpoch).rounded())) : 0
            try c.set("schedule.warmup_steps", raw: warmup, source: "warmup_epochs")
            config = try TrainConfig(c, worldSize: worldSize)
        }
        let totalSteps = try config.totalSteps(datasetSize: task.rowsPerEpoch)
        _ = try config.groupSpecs(for: task.model.table)

        let routed = TensorRole.allCases.compactMap { role -> String? in
            let o = c.string("groups.\(role.rawValue).optimizer")
            return o.isEmpty ? nil : "\(o)(\(role.rawValue))"
        }
        let optimizerLabel = variant?.name ?? (routed + [c.string("optimizer.name")]).joined(separator: "+")
        let groupLRs = TensorRole.allCases.compactMap { role -> String? in
            let v = c.double("groups.\(role.rawValue).lr")
            return v > 0 ? "\(role.rawValue)=\(v)" : nil
        }.joined(separator: " ")
        return SweepPoint(index: 0, name: "", values: [], config: config, variant: variant?.name,
                          optimizerLabel: optimizerLabel, lrFactor: lrFactor, groupLRs: groupLRs, totalSteps: totalSteps)
    }

    /// The smallest accumulation count a dividing the per-rank batch with per-rank batch / a ≤ `maxRankBatch`.
    /// (Returns 1 when the global batch does not divide by the world size; TrainConfig names that error.)
    public static func gradAccum(globalBatch: Int, worldSize: Int, maxRankBatch: Int) -> Int {
        guard globalBatch % worldSize == 0 else { return 1 }
        let perRank = globalBatch / worldSize
        return (1...max(1, perRank)).first { perRank % $0 == 0 && perRank / $0 <= maxRankBatch } ?? perRank
    }
}

extension ConfigValue {
    /// The value in the form `ResolvedConfig.set(_:raw:source:)` accepts.
    var raw: Any {
        switch self {
        case .int(let v): return v
        case .double(let v): return v
        case .string(let v): return v
        case .bool(let v): return v
        case .intList(let v): return v as [Any]
        }
    }
}

// MARK: - Results

/// One row of results.csv: a finished point.
public struct SweepRow: Sendable, Equatable {
    public var point: String
    /// Grid values in axis order.
    public var values: [String]
    public var globalBatch: Int
    public var optimizer: String
    public var lr: Double
    public var groupLRs: String
    public var seed: Int
    public var gradAccum: Int
    public var target: String
    /// "reached", "budget" (ran out of steps) or "diverged".
    public var status: String
    public var stepsToTarget: Int?
    public var examplesToTarget: Int?
    public var secondsToTarget: Double?
    public var steps: Int
    public var evalAccuracy: Double
    public var evalLoss: Double
    public var finalTrainLoss: Double
    public var noiseScale: Double?
    public var reached: Bool { stepsToTarget != nil }

    /// The fixed columns after the grid keys.
    public static let columns = ["global_batch", "optimizer", "lr", "group_lrs", "seed", "grad_accum", "target", "reached",
                                 "steps_to_target", "examples_to_target", "seconds_to_target", "steps", "final_eval_accuracy",
                                 "final_eval_loss", "final_train_loss", "noise_scale", "status"]

    public static func header(keys: [String]) -> [String] { ["point"] + keys + columns }

    public var fields: [String] {
        func d(_ v: Double?) -> String { v.map { $0.isFinite ? "\($0)" : "" } ?? "" }
        return [point] + values + [String(globalBatch), optimizer, "\(lr)", groupLRs, String(seed), String(gradAccum), target,
                                   reached ? "true" : "false", stepsToTarget.map(String.init) ?? "",
                                   examplesToTarget.map(String.init) ?? "", d(secondsToTarget), String(steps),
                                   d(evalAccuracy), d(evalLoss), d(finalTrainLoss), d(noiseScale), status]
    }

    /// Rebuilds a row from a point's summary.json (as written by `SweepRunner`) and its metrics.jsonl.
    public init(point: SweepPoint, summary: [String: Any], metrics: MetricsTail) {
        func num(_ k: String) -> Double? { (summary[k] as? NSNumber)?.doubleValue }
        func int(_ k: String) -> Int? { (summary[k] as? NSNumber)?.intValue }
        self.point = point.name
        values = point.values.map(\.value)
        globalBatch = int("global_batch") ?? point.globalBatch
        optimizer = point.optimizerLabel
        lr = point.lr
        groupLRs = point.groupLRs
        seed = Int(point.config.seed)
        gradAccum = int("grad_accum") ?? point.config.gradAccum
        target = summary["sweep_target"] as? String ?? ""
        status = summary["sweep_status"] as? String ?? "budget"
        stepsToTarget = int("steps_to_target")
        examplesToTarget = int("examples_to_target")
        secondsToTarget = num("seconds_to_target")
        steps = int("steps") ?? 0
        evalAccuracy = num("eval_accuracy") ?? metrics.evalAccuracy ?? .nan
        evalLoss = num("eval_loss") ?? metrics.evalLoss ?? .nan
        finalTrainLoss = num("final_train_loss") ?? metrics.trainLoss ?? .nan
        noiseScale = metrics.noiseScale
    }

    public static func == (a: SweepRow, b: SweepRow) -> Bool { a.fields == b.fields }
}

/// The last values of interest in a metrics.jsonl file.
public struct MetricsTail: Sendable {
    public var trainLoss: Double?
    public var evalAccuracy: Double?
    public var evalLoss: Double?
    public var noiseScale: Double?
    public var lastStep = 0

    public init() {}

    public init(path: String) {
        for line in MetricsTail.lines(path: path) {
            if let s = (line["step"] as? NSNumber)?.intValue { lastStep = max(lastStep, s) }
            if let v = (line["loss"] as? NSNumber)?.doubleValue { trainLoss = v }
            if let v = (line["eval_accuracy"] as? NSNumber)?.doubleValue { evalAccuracy = v }
            if let v = (line["eval_loss"] as? NSNumber)?.doubleValue { evalLoss = v }
            if let v = (line["noise_scale"] as? NSNumber)?.doubleValue, v.isFinite { noiseScale = v }
        }
    }

    /// Every parseable JSON object line of a metrics.jsonl file (unreadable lines, e.g. a torn last one, skipped).
    public static func lines(path: String) -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let data = line.data(using: .utf8) else { return nil }
            return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        }
    }
}

/// RFC 4180 CSV: fields with a comma, quote or newline are quoted, quotes doubled.
public enum CSV {
    public static func line(_ fields: [String]) -> String {
        fields.map { f in
            f.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + f.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : f
        }.joined(separator: ",")
    }

    /// Rows of fields (the header is the first row).
    public static func parse(_ text: String) -> [[String]] {
        var rows: [[String]] = [], row: [String] = [], field = "", quoted = false, pendingQuote = false
        for ch in text {
            if quoted {
                if pendingQuote {
                    pendingQuote = false
                    if ch == "\"" { field.append("\""); continue }
                    quoted = false  // the closing quote; fall through to handle ch outside quotes
                } else if ch == "\"" { pendingQuote = true; continue } else { field.append(ch); continue }
            }
            switch ch {
            case "\"" where field.isEmpty: quoted = true
            case ",": row.append(field); field = ""
            case "\n", "\r\n":
                row.append(field); field = ""
                rows.append(row); row = []
            case "\r": break
            default: field.append(ch)
            }
        }
        if pendingQuote { quoted = false }
        if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
        return rows
    }
}

// MARK: - Directory

/// A sweep's directory (rank 0): sweep.yaml, points/<name>/ run directories, results.csv.
///
/// Resuming: a point whose directory has summary.json is finished and skipped; its config.yaml must equal the
/// point's current configuration (else the sweep file changed under it: an error names the point). A point directory
/// without summary.json was interrupted and is run again from the start.
public final class SweepDirectory: Sendable {
    public let path: String
    public let plan: SweepPlan
    /// Indices of points already finished.
    public let finished: Set<Int>

    public init(path: String, plan: SweepPlan) throws {
        self.path = path
        self.plan = plan
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: "\(path)/points", withIntermediateDirectories: true) } catch {
            throw ConfigError("cannot create sweep directory \(path): \(error.localizedDescription)")
        }
        var finished: Set<Int> = []
        for point in plan.points where fm.fileExists(atPath: "\(path)/points/\(point.name)/summary.json") {
            let stored = (try? String(contentsOfFile: "\(path)/points/\(point.name)/config.yaml", encoding: .utf8)) ?? ""
            guard stored == Self.configText(point) else {
                throw ConfigError("\(path)/points/\(point.name) was run with a different configuration than the sweep now gives point " +
                                  "'\(point.name)' (compare its config.yaml with `swift-train sweep --dry-run`): use another --out, " +
                                  "or delete that point's directory to run it again")
            }
            finished.insert(point.index)
        }
        self.finished = finished
        try writeAtomically(Data(plan.spec.text.utf8), to: "\(path)/sweep.yaml")
    }

    public func pointPath(_ point: SweepPoint) -> String { "\(path)/points/\(point.name)" }

    static func configText(_ point: SweepPoint) -> String {
        point.config.resolved.yaml(header: "sweep point '\(point.name)': \(point.label)\nrerun alone with swift-train --config <this file>")
    }

    /// A fresh run directory for `point` (an interrupted attempt's directory is removed first).
    public func startPoint(_ point: SweepPoint) throws -> RunDirectory {
        let p = pointPath(point)
        if FileManager.default.fileExists(atPath: p) { try FileManager.default.removeItem(atPath: p) }
        let run = try RunDirectory(path: p)
        try run.write("config.yaml", text: Self.configText(point))
        return run
    }

    /// The row of a finished point, from its summary.json and metrics.jsonl.
    public func row(for point: SweepPoint) throws -> SweepRow {
        let p = pointPath(point)
        guard let data = FileManager.default.contents(atPath: "\(p)/summary.json"),
              let summary = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ConfigError("\(p)/summary.json cannot be read: delete \(p) to run the point again")
        }
        return SweepRow(point: point, summary: summary, metrics: MetricsTail(path: "\(p)/metrics.jsonl"))
    }

    /// Rewrites results.csv with `rows` (atomically: readers never see a torn file).
    public func writeResults(_ rows: [SweepRow]) throws {
        let keys = plan.spec.axes.map(\.key)
        let text = ([SweepRow.header(keys: keys)] + rows.map(\.fields)).map(CSV.line).joined(separator: "\n") + "\n"
        try writeAtomically(Data(text.utf8), to: "\(path)/results.csv")
    }
}

// MARK: - Runner

/// Runs a plan's points in order on every rank of `comm` (the same order everywhere, so collectives match).
public final class SweepRunner {
    public let plan: SweepPlan
    public let comm: Communicator
    public let taskFactory: SweepTaskFactory
    /// Rank 0's sweep directory (nil elsewhere, and in tests that write nothing).
    public let directory: SweepDirectory?
    public let console: Console?
    /// Pass the console to each point's Trainer (per-step lines) instead of one line per point.
    public var verbose = false
    public var mpiLibrary = ""
    /// The sweep directory's path on every rank (only needed when the sweep enables checkpoints).
    public var sweepPath: String?

    public init(plan: SweepPlan, comm: Communicator, taskFactory: @escaping SweepTaskFactory,
                directory: SweepDirectory? = nil, console: Console? = nil) {
        precondition(comm.size == plan.worldSize, "plan validated for \(plan.worldSize) ranks, world has \(comm.size)")
        self.plan = plan
        self.comm = comm
        self.taskFactory = taskFactory
        self.directory = directory
        self.console = console
    }

    /// Runs every unfinished point; returns all rows in plan order (complete on rank 0; other ranks have no rows
    /// for points finished in an earlier run). Rethrows a stop by signal; a diverged point is recorded and the
    /// sweep continues.
    public func run() throws -> [SweepRow] {
        // Rank 0 read the directory: every rank takes its list of finished points.
        var done = [Int32](repeating: 0, count: plan.points.count)
        for i in directory?.finished ?? [] { done[i] = 1 }
        if !done.isEmpty { try done.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: 0) } }

        var rows: [SweepRow] = []
        let total = plan.points.count
        let width = String(total).count
        for point in plan.points {
            let position = String(format: "[%\(width)d/%d]", point.index + 1, total)
            if done[point.index] != 0 {
                if let directory {
                    let row = try directory.row(for: point)
                    rows.append(row)
                    console?.line("\(position) \(point.label): finished earlier — \(Self.describe(row))")
                }
                continue
            }
            let row = try runPoint(point)
            rows.append(row)
            try directory?.writeResults(rows)
            console?.line("\(position) \(point.label): \(Self.describe(row))")
        }
        try directory?.writeResults(rows)
        return rows
    }

    private func runPoint(_ point: SweepPoint) throws -> SweepRow {
        let config = point.config
        let task = try taskFactory(config)
        let output = try directory?.startPoint(point)
        if verbose { console?.line("── \(point.name) (\(point.label)): \(point.totalSteps) steps max") }
        let trainer = try Trainer(config: config, comm: comm, task: task, output: output, console: verbose ? console : nil)
        if plan.spec.checkpoints, let sweepPath {
            // Checkpoint.save is collective: every rank needs the path.
            trainer.checkpointRoot = "\(sweepPath)/points/\(point.name)"
        }
        let target = plan.spec.target
        var reached: (step: Int, seconds: Double)?
        let start = Date()
        trainer.afterEvaluation = { step, eval, trainLoss in
            guard let target, reached == nil, target.isReached(eval: eval, trainLoss: trainLoss) else { return false }
            reached = (step, Date().timeIntervalSince(start))
            return true
        }

        var o: JSONObject
        var status: String
        do {
            let summary = try trainer.run()
            o = summary.json(config: config, mpiLibrary: mpiLibrary)
            status = reached == nil ? "budget" : "reached"
        } catch TrainingStopped.diverged(let step, _) {
            o = JSONObject()
            o.add("global_batch", config.globalBatch)
            o.add("grad_accum", config.gradAccum)
            o.add("steps", step)
            o.add("optimizer", config.optimizerName)
            status = "diverged"
        }
        o.add("sweep_point", point.name)
        o.add("sweep_status", status)
        o.add("sweep_target", target?.description ?? "")
        o.add("sweep_optimizer", point.optimizerLabel)
        o.add("lr", config.lr)
        o.add("reached", reached != nil)
        if let reached {
            o.add("steps_to_target", reached.step)
            o.add("examples_to_target", reached.step * config.globalBatch)
            o.add("seconds_to_target", reached.seconds)
        } else {
            for k in ["steps_to_target", "examples_to_target", "seconds_to_target"] { o.add(k, raw: "null") }
        }
        try output?.write("summary.json", text: o.pretty)
        if let directory { return try directory.row(for: point) }
        let summary = (try? JSONSerialization.jsonObject(with: Data(o.pretty.utf8))) as? [String: Any] ?? [:]
        return SweepRow(point: point, summary: summary, metrics: MetricsTail())
    }

    /// "4.2 s" below a minute, else formatDuration's "3m05s".
    static func seconds(_ s: Double?) -> String {
        guard let s, s.isFinite else { return "?" }
        return s < 60 ? String(format: "%.1f s", s) : formatDuration(s)
    }

    static func describe(_ row: SweepRow) -> String {
        let accuracy = row.evalAccuracy.isFinite ? String(format: "eval accuracy %.4f", row.evalAccuracy) : "no evaluation"
        switch row.status {
        case "reached":
            return "reached \(row.target) at step \(row.stepsToTarget!) (\(row.examplesToTarget!) examples, " +
                "\(seconds(row.secondsToTarget))) · \(accuracy)"
        case "diverged":
            return "diverged at step \(row.steps) (non-finite gradients) · not reached"
        default:
            return row.target.isEmpty ? "\(row.steps) steps · \(accuracy)" : "not reached in \(row.steps) steps (budget) · \(accuracy)"
        }
    }
}

// MARK: - Task factory

/// The CLI's task factory: Fashion-MNIST is loaded once per data directory and shared by every point (each point
/// gets its own model, sampler and buffers); other tasks are built by `TrainConfig.makeTask()`.
public final class CachedTaskFactory: @unchecked Sendable {
    private let lock = NSLock()
    private var images: [String: (train: ImageDataset, test: ImageDataset)] = [:]

    public init() {}

    public func make(_ config: TrainConfig) throws -> TrainingTask {
        guard config.modelKind == "mlp" else { return try config.makeTask() }
        lock.lock()
        defer { lock.unlock() }
        let data: (train: ImageDataset, test: ImageDataset)
        if let cached = images[config.dataDirectory] { data = cached } else {
            data = try FashionMNIST.load(directory: config.dataDirectory)
            images[config.dataDirectory] = data
        }
        // Checked here because the task's sampler requires it (TrainConfig.totalSteps words the same error).
        guard config.globalBatch <= data.train.count else {
            throw ConfigError("train.global_batch = \(config.globalBatch) exceeds the \(data.train.count) training examples")
        }
        return ImageClassificationTask(train: data.train, test: data.test, hidden: config.hidden, activation: config.activation,
                                       globalBatch: config.globalBatch, microBatch: config.microBatch, seed: config.seed)
    }

    public var factory: SweepTaskFactory { { [self] in try self.make($0) } }
}
