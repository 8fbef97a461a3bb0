// Typed hyperparameter declarations: each optimizer lists its keys (type, range, default, one-line doc) in its own
// file, and everything else — the configuration schema, docs/configuration.md, validation, the sweep, the tests —
// reads them from there. Nothing here knows about configuration files; Training maps these onto `optimizer.<key>`.

/// A hyperparameter value as an optimizer receives it.
public enum HyperValue: Sendable, Hashable, CustomStringConvertible, ExpressibleByFloatLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral, ExpressibleByStringLiteral {
    case number(Double)
    case integer(Int)
    case flag(Bool)
    case choice(String)

    public init(floatLiteral value: Double) { self = .number(value) }
    public init(integerLiteral value: Int) { self = .integer(value) }
    public init(booleanLiteral value: Bool) { self = .flag(value) }
    public init(stringLiteral value: String) { self = .choice(value) }

    public var description: String {
        switch self {
        case .number(let v): return "\(v)"
        case .integer(let v): return "\(v)"
        case .flag(let v): return v ? "true" : "false"
        case .choice(let v): return v
        }
    }

    /// The value as a Double where that makes sense (integers widen; a `number` key also accepts an integer literal).
    var asDouble: Double? {
        switch self {
        case .number(let v): return v
        case .integer(let v): return Double(v)
        default: return nil
        }
    }
}

extension HyperValue {
    /// `raw` (a value decoded from JSON or YAML) read as `kind`: flags also from 0/1, numbers also from integers.
    /// nil when it has the wrong type; ranges are not checked here.
    public init?(parsing raw: Any, as kind: HyperKind) {
        switch kind {
        case .number:
            guard let v = (raw as? Double) ?? (raw as? Int).map(Double.init) else { return nil }
            self = .number(v)
        case .integer:
            guard let v = (raw as? Int) ?? (raw as? Double).flatMap({ $0 == $0.rounded() ? Int($0) : nil }) else { return nil }
            self = .integer(v)
        case .flag:
            guard let v = (raw as? Bool) ?? (raw as? Double).map({ $0 != 0 }) else { return nil }
            self = .flag(v)
        case .choice:
            guard let v = raw as? String else { return nil }
            self = .choice(v)
        }
    }
}

extension OptimizerInfo {
    /// Settings for this optimizer from decoded key → value pairs (fixtures, sweep files), each read as its declared
    /// kind. A key it does not declare, or a value of the wrong type, is a programming error naming the key.
    public func settings(parsing raw: [String: Any]) -> [String: HyperValue] {
        var out: [String: HyperValue] = [:]
        for (name, value) in raw {
            guard let key = keys.first(where: { $0.name == name }) else {
                preconditionFailure("\(names[0]) declares no hyperparameter '\(name)' (it has \(keys.map(\.name)))")
            }
            guard let v = HyperValue(parsing: value, as: key.kind) else {
                preconditionFailure("\(names[0]).\(name): \(value) is not \(key.kind.rangeDescription)")
            }
            out[name] = v
        }
        return out
    }
}

/// The type and admissible values of a hyperparameter.
public enum HyperKind: Sendable, Equatable {
    case number(ClosedRange<Double>)
    case integer(ClosedRange<Int>)
    case flag
    case choice([String])

    /// Whether `value` has this type and lies in range.
    public func admits(_ value: HyperValue) -> Bool {
        switch (self, value) {
        case (.number(let r), _): return value.asDouble.map { $0.isFinite && r.contains($0) } ?? false
        case (.integer(let r), .integer(let v)): return r.contains(v)
        case (.flag, .flag): return true
        case (.choice(let allowed), .choice(let v)): return allowed.contains(v)
        default: return false
        }
    }

    /// "0…0.9999999", "one of quintic, polar_express", … for error messages.
    public var rangeDescription: String {
        switch self {
        case .number(let r): return "a number in \(r.lowerBound)…\(r.upperBound)"
        case .integer(let r): return "an integer in \(r.lowerBound)…\(r.upperBound == Int.max ? "∞" : String(r.upperBound))"
        case .flag: return "true or false"
        case .choice(let allowed): return "one of " + allowed.joined(separator: ", ")
        }
    }
}

/// One hyperparameter an optimizer declares: the key (`optimizer.<name>` in configuration), its kind, the
/// optimizer's own default, and a one-line doc.
public struct HyperKey: Sendable, Equatable {
    public let name: String
    public let kind: HyperKind
    public let defaultValue: HyperValue
    public let doc: String

    public init(_ name: String, _ kind: HyperKind, default defaultValue: HyperValue, _ doc: String) {
        precondition(kind.admits(defaultValue), "hyperparameter \(name): default \(defaultValue) is not \(kind.rangeDescription)")
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.doc = doc
    }

    // Keys several optimizers share, declared once so their meaning and range read the same everywhere.
    /// [0, 1) as a closed range: a decay of exactly 1 would never forget.
    public static let unitInterval: ClosedRange<Double> = 0...0.999_999_9

    public static func beta1(_ value: Double = 0.9, in range: ClosedRange<Double> = unitInterval) -> HyperKey {
        HyperKey("beta1", .number(range), default: .number(value), "First-moment (momentum) decay β₁.")
    }
    public static func beta2(_ value: Double = 0.999, in range: ClosedRange<Double> = unitInterval) -> HyperKey {
        HyperKey("beta2", .number(range), default: .number(value), "Second-moment decay β₂.")
    }
    public static func eps(_ value: Double, in range: ClosedRange<Double> = 0...1) -> HyperKey {
        HyperKey("eps", .number(range), default: .number(value), "ε added to the denominator of adaptive steps.")
    }
    public static func momentum(_ value: Double, in range: ClosedRange<Double> = 0...0.999_999) -> HyperKey {
        HyperKey("momentum", .number(range), default: .number(value), "Momentum μ (heavy-ball buffer b ← μb + g, or EMA where stated).")
    }
    public static let excludeBiasAndNorm = HyperKey("exclude_bias_and_norm", .flag, default: true,
                                                   "Biases and norm gains get no weight decay and trust ratio 1.")
    public static let decoupledWeightDecay = HyperKey("decoupled_weight_decay", .flag, default: false,
                                                     "Decoupled (AdamW-style) weight decay θ(1 − γλ) instead of L2 added to the gradient.")
}

/// The hyperparameters one optimizer is built with: what the user set, over the optimizer's declared defaults.
/// Reading a key the optimizer did not declare is a programming error (it catches a misspelt name at once).
public struct HyperValues: Sendable {
    public let keys: [HyperKey]
    public let settings: [String: HyperValue]

    public init(keys: [HyperKey], settings: [String: HyperValue] = [:]) {
        self.keys = keys
        self.settings = settings
    }

    public func value(_ name: String) -> HyperValue {
        guard let key = keys.first(where: { $0.name == name }) else {
            preconditionFailure("hyperparameter '\(name)' is not declared by this optimizer (declared: \(keys.map(\.name)))")
        }
        return settings[name] ?? key.defaultValue
    }

    /// Whether the user set `name` (rather than leaving the optimizer's default).
    public func isSet(_ name: String) -> Bool { settings[name] != nil }

    public func double(_ name: String) -> Double {
        guard let v = value(name).asDouble else { preconditionFailure("hyperparameter '\(name)' is not a number") }
        return v
    }
    public func float(_ name: String) -> Float { Float(double(name)) }
    public func int(_ name: String) -> Int {
        guard case .integer(let v) = value(name) else { preconditionFailure("hyperparameter '\(name)' is not an integer") }
        return v
    }
    public func bool(_ name: String) -> Bool {
        guard case .flag(let v) = value(name) else { preconditionFailure("hyperparameter '\(name)' is not a flag") }
        return v
    }
    public func string(_ name: String) -> String {
        guard case .choice(let v) = value(name) else { preconditionFailure("hyperparameter '\(name)' is not a choice") }
        return v
    }
    /// A choice key read as one of its enum cases (the declared choices are the enum's raw values).
    public func choice<T: RawRepresentable>(_ name: String, as type: T.Type = T.self) -> T where T.RawValue == String {
        guard let v = T(rawValue: string(name)) else { preconditionFailure("hyperparameter '\(name)' has no case \(string(name))") }
        return v
    }

    /// Set values outside this optimizer's declared ranges, one message each (`optimizer` names it in the message).
    public func rangeProblems(optimizer: String) -> [String] {
        keys.compactMap { key in
            guard let v = settings[key.name], !key.kind.admits(v) else { return nil }
            return "optimizer.\(key.name) = \(v) is outside what \(optimizer) accepts: \(key.kind.rangeDescription)"
        }
    }
}
