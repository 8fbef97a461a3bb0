// Batch-size sweeps: a grid of training configurations run one after another inside one MPI job, each point to a
// target (eval accuracy or train loss) within a budget, with steps/examples/seconds to the target collected in
// results.csv. docs/batch-size.md documents the sweep file; Report.swift turns the results into a report.
//
// Phases: (1) SweepSpec parses the sweep file; (2) SweepPlan expands the grid and derives and validates every point's
// configuration for the world size — before MPI starts, so a bad point stops every rank before any communicates;
// (3) SweepRunner runs the points in plan order on every rank, rank 0 writing through SweepDirectory.

import Foundation
import Models
import Training
import Yams

// `LRScaling` (the lr rules) lives in Training (BatchSchedule.swift): adaptive batch schedules use it too.

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
                    guard let value = scratch.value(key) else {
                        throw ConfigError("\(source): variants.\(name).\(key) is unset (~): a variant sets values; leave the key out instead")
                    }
                    variant.settings.append((key, value))
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
                    guard let value = scratch.value(key) else {
                        throw ConfigError("\(at): a grid value cannot be unset (~); list values to try")
                    }
                    values.append(value)
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
