import Foundation
import Tensors
import Plots
import Training

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

    public static let lrKeys = ["optimizer.lr"] + TensorRole.allCases.map { "groups.\($0.rawValue).lr" }
    /// Adam-like optimizers (declared in each optimizer's `info`).
    static let adamFamily = Set(OptimizerCatalog.names.filter { OptimizerCatalog.info($0).adamLike })

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
            // The values this optimizer would use: the user's, else its own declared defaults.
            let values = OptimizerCatalog.values(name, config: c)
            let eps = values.double("eps")
            for (key, beta) in [("optimizer.beta1", values.double("beta1")), ("optimizer.beta2", values.double("beta2"))] where !pinned.contains(key) {
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
        let totalSteps = try TrainingPlan(config: config, task: task).totalSteps  // the train command's validation

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

    /// The accumulation count that keeps every micro-batch ≤ `maxRankBatch` rows: the smallest a dividing the
    /// per-rank batch evenly when the global batch divides by the world size (equal micro-batches), else the
    /// smallest a with ⌈⌈B/N⌉ / a⌉ ≤ `maxRankBatch` (BatchSplit's uneven shares).
    public static func gradAccum(globalBatch: Int, worldSize: Int, maxRankBatch: Int) -> Int {
        let perRank = (globalBatch + worldSize - 1) / worldSize, limit = max(1, maxRankBatch)
        if globalBatch % worldSize == 0,
           let even = (1...max(1, perRank)).first(where: { perRank % $0 == 0 && perRank / $0 <= limit }) {
            return even
        }
        return max(1, (perRank + limit - 1) / limit)
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
