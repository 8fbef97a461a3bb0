import Distributed
import Optimizers
import Tensors

enum TensorRoleNames {
    static let all = TensorRole.allCases.map(\.rawValue)
}

/// Optimizers selectable from configuration: their names, sharding classes, and construction from config keys.
public enum OptimizerCatalog {
    /// Optimizers for the training loop (mini-batch). Full-batch methods (L-BFGS, GD with line search) are in
    /// `Optimizers/LineSearch.swift` and used by the full-batch tools, not selectable here.
    public static let names = OptimizerInfos.names

    /// How the sharded engine may divide an optimizer's work (declared in the optimizer's own file).
    public static func sharding(_ name: String) -> ShardingClass { OptimizerInfos.info(name)?.sharding ?? .element }

    /// Whether the batch-size sweep treats `name` as Adam-like (β₂ scaled with √κ under the sqrt rule).
    public static func adamLike(_ name: String) -> Bool { OptimizerInfos.info(name)?.adamLike ?? false }

    /// Whether `name`'s update is memory-bound (timed against copy bandwidth by `swift-train bench`).
    public static func bandwidthBound(_ name: String) -> Bool { OptimizerInfos.info(name)?.bandwidthBound ?? true }

    /// Builds optimizer `name` over `count` elements with hyperparameters from `c` (`optimizer.*` keys). Keys whose
    /// value is −1 ("auto") keep the optimizer's own reference default (e.g. ε = 1e-10 for Adagrad, 1e-8 for Adam).
    /// `segments` are the ones the optimizer will be given (Shampoo sizes its per-tensor statistics from them).
    public static func make(_ name: String, count: Int, segments: [ParamSegment] = [], config c: ResolvedConfig) -> Optimizer {
        func f(_ key: String) -> Float { Float(c.double("optimizer.\(key)")) }
        /// nil when the key is −1 (auto).
        func auto(_ key: String) -> Float? { let v = c.double("optimizer.\(key)"); return v < 0 ? nil : Float(v) }
        func b(_ key: String) -> Bool { c.bool("optimizer.\(key)") }
        switch name {
        case "sgd":
            return SGD(count: count, hyper: .init(momentum: auto("momentum") ?? 0, dampening: f("dampening"), nesterov: b("nesterov")))
        case "adam", "adamw":
            var h = Adam.Hyper(decoupled: name == "adamw", amsgrad: b("amsgrad"))
            h.beta1 = f("beta1"); h.beta2 = auto("beta2") ?? h.beta2; h.eps = auto("eps") ?? h.eps
            return Adam(count: count, hyper: h)
        case "adagrad":
            var h = Adagrad.Hyper(lrDecay: f("lr_decay"), initialAccumulator: f("initial_accumulator"))
            h.eps = auto("eps") ?? h.eps
            return Adagrad(count: count, hyper: h)
        case "adadelta":
            var h = Adadelta.Hyper(rho: f("rho"))
            h.eps = auto("eps") ?? h.eps
            return Adadelta(count: count, hyper: h)
        case "rmsprop":
            var h = RMSprop.Hyper(alpha: f("alpha"), momentum: auto("momentum") ?? 0, centered: b("centered"))
            h.eps = auto("eps") ?? h.eps
            return RMSprop(count: count, hyper: h)
        case "adamax":
            var h = AdaMax.Hyper(beta1: f("beta1"))
            h.beta2 = auto("beta2") ?? h.beta2; h.eps = auto("eps") ?? h.eps
            return AdaMax(count: count, hyper: h)
        case "nadam":
            var h = NAdam.Hyper(beta1: f("beta1"), momentumDecay: f("momentum_decay"), decoupled: b("decoupled_weight_decay"))
            h.beta2 = auto("beta2") ?? h.beta2; h.eps = auto("eps") ?? h.eps
            return NAdam(count: count, hyper: h)
        case "radam":
            var h = RAdam.Hyper(beta1: f("beta1"), decoupled: b("decoupled_weight_decay"))
            h.beta2 = auto("beta2") ?? h.beta2; h.eps = auto("eps") ?? h.eps
            return RAdam(count: count, hyper: h)
        case "lion":
            var h = Lion.Hyper(beta1: f("beta1"))
            h.beta2 = auto("beta2") ?? h.beta2
            return Lion(count: count, hyper: h)
        case "signsgd":
            return SignSGD(count: count, hyper: .init(momentum: 0))
        case "signum":
            return SignSGD(count: count, hyper: .init(momentum: auto("momentum") ?? 0.9))
        case "rprop":
            return Rprop(count: count, hyper: .init(etaMinus: f("eta_minus"), etaPlus: f("eta_plus"),
                                                    stepSizeMin: f("step_size_min"), stepSizeMax: f("step_size_max")))
        case "muon":
            return Muon(count: count, hyper: .init(
                momentum: f("muon_momentum"), nesterov: b("muon_nesterov"), nsSteps: c.int("optimizer.ns_steps"),
                nsCoefficients: NewtonSchulzCoefficients(rawValue: c.string("optimizer.ns_coefficients"))!,
                scale: Muon.Scale(rawValue: c.string("optimizer.muon_scale"))!))
        case "shampoo":
            var h = Shampoo.Hyper(preconditionFrequency: c.int("optimizer.precondition_frequency"),
                                  damping: c.double("optimizer.damping"),
                                  graft: Shampoo.Graft(rawValue: c.string("optimizer.graft"))!)
            h.beta1 = f("beta1"); h.beta2 = auto("beta2") ?? h.beta2; h.eps = auto("eps") ?? h.eps
            return Shampoo(count: count, segments: segments, hyper: h)
        case "lars":
            return LARS(count: count, hyper: .init(momentum: auto("momentum") ?? 0.9, trustCoefficient: f("trust_coefficient"),
                                                   excludeBiasAndNorm: b("exclude_bias_and_norm")))
        case "lamb":
            var h = LAMB.Hyper(beta1: f("beta1"), biasCorrection: b("lamb_bias_correction"),
                               maxTrustRatio: c.double("optimizer.max_trust_ratio") > 0 ? f("max_trust_ratio") : nil,
                               excludeBiasAndNorm: b("exclude_bias_and_norm"))
            h.beta2 = auto("beta2") ?? h.beta2; h.eps = auto("eps") ?? h.eps
            return LAMB(count: count, hyper: h)
        default:
            preconditionFailure("optimizer \(name) is not in the catalog")
        }
    }

    /// A configuration error for optimizer `name` applied to `entry`, if it cannot update that tensor.
    public static func check(_ name: String, on entry: TensorEntry, key: String) -> String? {
        guard name == "muon", let problem = Muon.validate(tensor: entry) else { return nil }
        return "\(key) = muon: \(problem); route it to an element-wise optimizer (e.g. --set groups.\(entry.role.rawValue).optimizer=adamw)"
    }
}
