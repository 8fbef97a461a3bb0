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

/// What the rest of swift-train needs to know about an optimizer besides building it, declared beside the optimizer
/// in its own file: the configuration names it answers to, how the sharded engine may divide its work, whether the
/// batch-size sweep treats it as Adam-like (β₂ scaled with √κ), and whether its update is memory-bound (the
/// optimizer benchmark times it against copy bandwidth; GEMM-bound ones are timed against sgemm instead).
public struct OptimizerInfo: Sendable {
    public var names: [String]
    public var sharding: ShardingClass
    public var adamLike: Bool
    public var bandwidthBound: Bool
    /// The paper or reference implementation it follows.
    public var reference: String

    public init(names: [String], sharding: ShardingClass = .element, adamLike: Bool = false, bandwidthBound: Bool = true,
                reference: String) {
        self.names = names
        self.sharding = sharding
        self.adamLike = adamLike
        self.bandwidthBound = bandwidthBound
        self.reference = reference
    }
}

/// Every mini-batch optimizer's `info`, in the order configuration lists them.
public enum OptimizerInfos {
    public static let all: [OptimizerInfo] = [
        Adam.info, SGD.info, Adagrad.info, Adadelta.info, RMSprop.info, AdaMax.info, NAdam.info, RAdam.info, Lion.info,
        SignSGD.info, Rprop.info, Muon.info, Shampoo.info, LARS.info, LAMB.info,
    ]
    public static var names: [String] { all.flatMap(\.names) }
    public static func info(_ name: String) -> OptimizerInfo? { all.first { $0.names.contains(name) } }
}
