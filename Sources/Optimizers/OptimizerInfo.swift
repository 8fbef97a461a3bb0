import Tensors

/// How an optimizer's work can be divided between ranks (see docs/distributed.md).
public enum ShardingClass: String, Sendable, Codable {
    /// Element-wise rules (SGD, Adam family, Lion, …): any contiguous slice can be updated on its own.
    case element
    /// Per-tensor trust ratios (LARS, LAMB): slices, plus one all-reduce of per-tensor partial norms.
    case tensorNorm = "tensor-norm"
    /// Whole-matrix rules (Muon, Shampoo): each matrix must be owned entirely by one rank.
    case matrix
}

/// What an optimizer's `build` receives: the name it was selected by (one class may answer to several, e.g.
/// adam/adamw), the owned element count, the segments it will be given, and its hyperparameters.
public struct OptimizerRequest: Sendable {
    public var name: String
    public var count: Int
    public var segments: [ParamSegment]
    public var values: HyperValues
}

/// Everything swift-train knows about an optimizer, declared beside the optimizer in its own file: the names it
/// answers to, how the sharded engine may divide its work, whether the batch-size sweep treats it as Adam-like
/// (β₂ scaled with √κ), whether its update is memory-bound (the optimizer benchmark times it against copy
/// bandwidth; GEMM-bound ones against sgemm), its hyperparameter keys, and how it is built from them.
/// Configuration, docs/configuration.md, the sweep, the bench and the checks read this; none of them names an
/// optimizer.
public struct OptimizerInfo: Sendable {
    public var names: [String]
    public var sharding: ShardingClass
    public var adamLike: Bool
    public var bandwidthBound: Bool
    /// The paper or reference implementation it follows.
    public var reference: String
    /// Its hyperparameters (besides the learning rate and weight decay every optimizer takes from its segments).
    public var keys: [HyperKey]
    /// Builds it (hyperparameters already checked against `keys` and `check`).
    public var build: @Sendable (OptimizerRequest) -> Optimizer
    /// A problem with a combination of values the ranges cannot express (e.g. Nesterov without momentum).
    public var check: @Sendable (_ name: String, HyperValues) -> String?
    /// A problem with updating `tensor` (e.g. Muon on a bias), or nil.
    public var tensorCheck: @Sendable (TensorEntry) -> String?

    public init(names: [String], sharding: ShardingClass = .element, adamLike: Bool = false, bandwidthBound: Bool = true,
                reference: String, keys: [HyperKey],
                check: @escaping @Sendable (_ name: String, HyperValues) -> String? = { _, _ in nil },
                tensorCheck: @escaping @Sendable (TensorEntry) -> String? = { _ in nil },
                build: @escaping @Sendable (OptimizerRequest) -> Optimizer) {
        self.names = names
        self.sharding = sharding
        self.adamLike = adamLike
        self.bandwidthBound = bandwidthBound
        self.reference = reference
        self.keys = keys
        self.check = check
        self.tensorCheck = tensorCheck
        self.build = build
    }

    /// This optimizer's hyperparameters under `settings`, which may hold keys of other optimizers (one
    /// configuration serves every group): only its own keys are kept, the rest of its keys at their defaults.
    public func values(_ settings: [String: HyperValue]) -> HyperValues {
        HyperValues(keys: keys, settings: settings.filter { key, _ in keys.contains { $0.name == key } })
    }

    /// Every problem with `settings` for optimizer `name`: values out of this optimizer's ranges, then `check`.
    public func problems(_ name: String, settings: [String: HyperValue]) -> [String] {
        problems(name, values(settings))
    }

    private func problems(_ name: String, _ values: HyperValues) -> [String] {
        let ranges = values.rangeProblems(optimizer: name)
        return ranges.isEmpty ? check(name, values).map { [$0] } ?? [] : ranges
    }

    /// Builds optimizer `name` over `count` elements from `settings` (read as `values` reads them). Invalid values
    /// are a programming error here: configuration validates them first (`problems`), with messages naming the key.
    public func make(_ name: String, count: Int, segments: [ParamSegment] = [],
                     settings: [String: HyperValue] = [:]) -> Optimizer {
        let values = values(settings)
        let problems = problems(name, values)
        precondition(problems.isEmpty, problems.joined(separator: "; "))
        return build(OptimizerRequest(name: name, count: count, segments: segments, values: values))
    }
}

/// Every mini-batch optimizer's `info`, in the order configuration lists them. Adding an optimizer: its file, and
/// its `info` here.
public enum OptimizerInfos {
    public static let all: [OptimizerInfo] = [
        Adam.info, SGD.info, Adagrad.info, Adadelta.info, RMSprop.info, AdaMax.info, NAdam.info, RAdam.info, Lion.info,
        SignSGD.info, Rprop.info, Muon.info, Shampoo.info, LARS.info, LAMB.info, AdEMAMix.info,
    ]
    public static var names: [String] { all.flatMap(\.names) }
    public static func info(_ name: String) -> OptimizerInfo? { all.first { $0.names.contains(name) } }

    /// Builds optimizer `name` (see `OptimizerInfo.make`).
    public static func make(_ name: String, count: Int, segments: [ParamSegment] = [],
                            settings: [String: HyperValue] = [:]) -> Optimizer {
        guard let info = info(name) else { preconditionFailure("no optimizer is called \(name); known: \(names)") }
        return info.make(name, count: count, segments: segments, settings: settings)
    }
}

/// What every optimizer holds: the name it logs and checkpoints under, the owned element count, the step count,
/// and its state buffers — by default one per name in `stateNames`, each one value per owned element, allocated
/// once here and zeroed.
public class OptimizerBase {
    public let name: String
    public let count: Int
    public var stepCount = 0
    public let stateNames: [String]
    public let state: [FloatBuffer]

    /// Element-aligned state: one zeroed buffer of `count` values per name.
    public init(name: String, count: Int, stateNames: [String]) {
        self.name = name
        self.count = count
        self.stateNames = stateNames
        state = stateNames.map { _ in FloatBuffer(count: count) }
    }

    /// State of other shapes (Shampoo's per-tensor matrices), allocated by the optimizer.
    public init(name: String, count: Int, stateNames: [String], state: [FloatBuffer]) {
        self.name = name
        self.count = count
        self.stateNames = stateNames
        self.state = state
    }
}
