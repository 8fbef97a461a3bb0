import Distributed
import Optimizers
import Tensors

enum TensorRoleNames {
    static let all = TensorRole.allCases.map(\.rawValue)
}

/// The optimizers' registry (`OptimizerInfos`, declared in each optimizer's own file) as configuration sees it:
/// `optimizer.<key>` for every hyperparameter key, validation of the values each selected optimizer receives, and
/// construction. Nothing here names an optimizer.
public enum OptimizerCatalog {
    /// Optimizers for the training loop (mini-batch). Full-batch methods (L-BFGS, GD with line search) live in
    /// FullBatch and are used by the full-batch tools, not selectable here.
    public static let names = OptimizerInfos.names

    public static func info(_ name: String) -> OptimizerInfo {
        guard let info = OptimizerInfos.info(name) else { preconditionFailure("optimizer \(name) is not in the registry") }
        return info
    }

    /// How the sharded engine may divide an optimizer's work.
    public static func sharding(_ name: String) -> ShardingClass { info(name).sharding }

    /// One `optimizer.<key>` per hyperparameter name, in order of first declaration. Optimizers sharing a name
    /// share the key (its range is the hull of theirs; each optimizer's own range is checked by `problems`). Its
    /// default is theirs when they agree, and unset when they do not, so each keeps its own until the user sets it.
    public static let configKeys: [ConfigKey] = {
        var order: [String] = []
        var declarations: [String: [(optimizer: String, key: HyperKey)]] = [:]
        for info in OptimizerInfos.all {
            for key in info.keys {
                if declarations[key.name] == nil { order.append(key.name) }
                declarations[key.name, default: []].append((info.names.joined(separator: "/"), key))
            }
        }
        return order.map { name in
            let uses = declarations[name]!
            let agreed = Set(uses.map(\.key.defaultValue)).count == 1
            let users = uses.map { agreed ? "`\($0.optimizer)`" : "`\($0.optimizer)` \($0.key.defaultValue)" }
            let doc = uses[0].key.doc + (agreed ? " Used by " : " Unset: each optimizer's default — ") + users.joined(separator: ", ") + "."
            return ConfigKey(path: "optimizer.\(name)", kind: ConfigKind(merging: uses.map(\.key.kind)),
                             defaultValue: agreed ? ConfigValue(uses[0].key.defaultValue) : nil, doc: doc)
        }
    }()

    /// The `optimizer.<key>` values set in `c`, as hyperparameters.
    public static func settings(_ c: ResolvedConfig) -> [String: HyperValue] {
        var out: [String: HyperValue] = [:]
        for key in configKeys {
            if let value = c.value(key.path) { out[String(key.path.dropFirst("optimizer.".count))] = value.hyperValue }
        }
        return out
    }

    /// Problems with the values optimizer `name` would receive from `c` (out of its range, or inconsistent).
    public static func problems(_ name: String, config c: ResolvedConfig) -> [String] {
        info(name).problems(name, settings: settings(c))
    }

    /// The hyperparameters optimizer `name` would use under `c` (the user's values, else its own defaults).
    public static func values(_ name: String, config c: ResolvedConfig) -> HyperValues {
        info(name).values(settings(c))
    }

    /// Builds optimizer `name` over `count` elements with hyperparameters from `c`. `segments` are the ones the
    /// optimizer will be given (Shampoo sizes its per-tensor statistics from them).
    public static func make(_ name: String, count: Int, segments: [ParamSegment] = [], config c: ResolvedConfig) -> Optimizer {
        info(name).make(name, count: count, segments: segments, settings: settings(c))
    }

    /// A configuration error for optimizer `name` applied to `entry`, if it cannot update that tensor.
    public static func check(_ name: String, on entry: TensorEntry, key: String) -> String? {
        guard let problem = info(name).tensorCheck(entry) else { return nil }
        return "\(key) = \(name): \(problem); route it to an element-wise optimizer (e.g. --set groups.\(entry.role.rawValue).optimizer=adamw)"
    }
}

extension ConfigKind {
    /// The kind of a key several optimizers declare: the hull of their ranges, the union of their choices.
    init(merging kinds: [HyperKind]) {
        switch kinds[0] {
        case .number:
            let ranges = kinds.compactMap { if case .number(let r) = $0 { return r } else { return nil } }
            precondition(ranges.count == kinds.count, "optimizers declare one hyperparameter with different types")
            self = .double(ranges.map(\.lowerBound).min()!...ranges.map(\.upperBound).max()!)
        case .integer:
            let ranges = kinds.compactMap { if case .integer(let r) = $0 { return r } else { return nil } }
            precondition(ranges.count == kinds.count, "optimizers declare one hyperparameter with different types")
            self = .int(ranges.map(\.lowerBound).min()!...ranges.map(\.upperBound).max()!)
        case .flag:
            self = .bool
        case .choice:
            var all: [String] = []
            for case .choice(let allowed) in kinds { for a in allowed where !all.contains(a) { all.append(a) } }
            self = .string(allowed: all)
        }
    }
}

extension ConfigValue {
    init(_ value: HyperValue) {
        switch value {
        case .number(let v): self = .double(v)
        case .integer(let v): self = .int(v)
        case .flag(let v): self = .bool(v)
        case .choice(let v): self = .string(v)
        }
    }

    var hyperValue: HyperValue {
        switch self {
        case .double(let v): return .number(v)
        case .int(let v): return .integer(v)
        case .bool(let v): return .flag(v)
        case .string(let v): return .choice(v)
        case .intList: preconditionFailure("no hyperparameter is a list")
        }
    }
}

extension OptimizerCatalog {
    /// docs/optimizer-keys.md: each optimizer's own keys, defaults and ranges, from the registry (a test keeps the
    /// file current), so the per-optimizer documentation cannot drift from the code either.
    public static func markdown() -> String {
        var out = """
        # Optimizer keys

        Each optimizer's hyperparameters as its source file declares them (`static let info` in
        `Sources/Optimizers/<Name>.swift`), generated by `swift-train config --optimizer-keys` (a test checks this file
        is current). Set them as `optimizer.<key>`; every optimizer also takes `optimizer.lr` and
        `optimizer.weight_decay`. A value outside the range of an optimizer in use is a configuration error.

        """
        for info in OptimizerInfos.all {
            out += "\n## \(info.names.map { "`\($0)`" }.joined(separator: ", "))\n\n"
            out += "\(info.reference). Sharding: \(info.sharding.rawValue).\n\n"
            guard !info.keys.isEmpty else { out += "No keys of its own.\n"; continue }
            out += "| key | range | default | meaning |\n|---|---|---|---|\n"
            for key in info.keys {
                out += "| `optimizer.\(key.name)` | \(key.kind.rangeDescription) | `\(key.defaultValue)` | \(key.doc) |\n"
            }
        }
        return out
    }
}
