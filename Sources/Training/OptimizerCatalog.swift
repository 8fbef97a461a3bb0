import Distributed
import Optimizers
import Tensors

enum TensorRoleNames {
    static let all = TensorRole.allCases.map(\.rawValue)
}

/// Optimizers selectable from configuration: their names, sharding classes, and construction from config keys.
public enum OptimizerCatalog {
    public static let names = ["adamw", "adam", "sgd"]

    /// How the sharded engine may divide an optimizer's work (docs/optimizers.md lists it per optimizer).
    public static func sharding(_ name: String) -> ShardingClass {
        switch name {
        default: return .element
        }
    }

    /// Builds optimizer `name` over `count` elements with hyperparameters from `c` (`optimizer.*` keys).
    public static func make(_ name: String, count: Int, config c: ResolvedConfig) -> Optimizer {
        func f(_ key: String) -> Float { Float(c.double("optimizer.\(key)")) }
        switch name {
        case "sgd":
            return SGD(count: count, hyper: .init(momentum: f("momentum"), dampening: f("dampening"),
                                                  nesterov: c.bool("optimizer.nesterov")))
        case "adam", "adamw":
            return Adam(count: count, hyper: .init(beta1: f("beta1"), beta2: f("beta2"), eps: f("eps"), decoupled: name == "adamw"))
        default:
            preconditionFailure("optimizer \(name) is not in the catalog")
        }
    }

    /// A configuration error for optimizer `name` applied to `entry`, if it cannot update that tensor.
    public static func check(_ name: String, on entry: TensorEntry, key: String) -> String? {
        guard sharding(name) == .matrix, entry.shape.count != 2 else { return nil }
        return "\(key) = \(name): parameter '\(entry.name)' has shape \(entry.shape), but \(name) updates 2-D matrices only; " +
            "route it to an element-wise optimizer (e.g. --set \(key)=adamw)"
    }
}
