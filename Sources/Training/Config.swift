import Datasets
import Distributed
import Foundation
import Models
import Optimizers
import Tensors
import Yams

/// A configuration error: names the key (or file) and what is wrong, and how to fix it.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A resolved configuration: every schema key with its value, after the file and the `--set` overrides.
public struct ResolvedConfig: Equatable, Sendable {
    public private(set) var values: [String: ConfigValue]
    /// Short name for run directories: the config file's stem, or "fashion-mlp" for the built-in defaults.
    public var name: String

    public init(name: String = "fashion-mlp") {
        values = ConfigSchema.defaults
        self.name = name
    }

    /// The defaults (or `name`'s) with `overrides` applied in order, each `key=value` as `--set` takes it.
    public init(name: String = "fashion-mlp", overrides: [String]) throws {
        self.init(name: name)
        for assignment in overrides { try override(assignment) }
    }

    /// Loads `path` over the defaults.
    public static func load(path: String) throws -> ResolvedConfig {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw ConfigError("config file \(path) does not exist: check the path (configs/ has the shipped configs)")
        }
        guard !isFolder.boolValue, let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError("config file \(path) cannot be read: \(isFolder.boolValue ? "it is a folder" : "check its permissions")")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError("config file \(path) is not UTF-8 text: save it as UTF-8 (YAML files are UTF-8)")
        }
        var config = ResolvedConfig(name: URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent)
        try config.merge(yaml: text, source: path)
        return config
    }

    /// Merges a YAML mapping (nested sections) into the values; unknown keys and bad values are errors.
    public mutating func merge(yaml text: String, source: String) throws {
        let document: Any?
        do { document = try Yams.load(yaml: text) } catch {
            throw ConfigError("\(source): not valid YAML: \(error)")
        }
        guard let document else { return }  // an empty file changes nothing
        guard let mapping = document as? [String: Any] else {
            throw ConfigError("\(source): the top level must be a mapping of sections (model:, train:, optimizer:, …)")
        }
        for (path, raw) in flatten(mapping, prefix: "").sorted(by: { $0.key < $1.key }) {
            try set(path, raw: raw, source: source)
        }
    }

    /// Applies one `key=value` override; the value is parsed as YAML.
    public mutating func override(_ assignment: String) throws {
        guard let eq = assignment.firstIndex(of: "="), eq != assignment.startIndex else {
            throw ConfigError("--set \(assignment): expected section.key=value, e.g. --set optimizer.lr=0.01")
        }
        let path = String(assignment[..<eq]).trimmingCharacters(in: .whitespaces)
        let text = String(assignment[assignment.index(after: eq)...])
        let raw: Any
        do { raw = try Yams.load(yaml: text) ?? "" } catch { raw = text }
        try set(path, raw: raw, source: "--set")
    }

    private func flatten(_ mapping: [String: Any], prefix: String) -> [String: Any] {
        var out: [String: Any] = [:]
        for (k, v) in mapping {
            let path = prefix.isEmpty ? k : "\(prefix).\(k)"
            if let nested = v as? [String: Any] { out.merge(flatten(nested, prefix: path)) { $1 } } else { out[path] = v }
        }
        return out
    }

    /// Sets one key from a raw YAML value, converting and range-checking it.
    public mutating func set(_ path: String, raw: Any, source: String) throws {
        guard let key = ConfigSchema.byPath[path] else {
            if let message = Self.sectionMisuse(path, raw: raw, source: source) { throw ConfigError(message) }
            var message = "\(source): unknown configuration key '\(path)'"
            if let hint = ConfigSchema.suggestion(for: path) { message += " (did you mean '\(hint)'?)" }
            message += "; docs/configuration.md lists every key"
            throw ConfigError(message)
        }
        // `~` (YAML null) unsets a key that has no fixed default. Configurations written before unset existed
        // spelled it −1; they still load.
        if key.defaultValue == nil, raw is NSNull || (raw as? Int) == -1 || (raw as? Double) == -1 {
            values[path] = nil
            return
        }
        values[path] = try Self.convert(raw, for: key, source: source)
    }

    /// The message for a value given to a section instead of one of its keys (`--set optimizer=adamw`, YAML
    /// `train: 5`), naming the key the value fits when exactly one choice key of the section takes it.
    static func sectionMisuse(_ path: String, raw: Any, source: String) -> String? {
        let members = ConfigSchema.keys.filter { $0.path.hasPrefix(path + ".") }
        guard !members.isEmpty else { return nil }
        var message = "\(source): '\(path)' is a section, not a key: give a value to one of its keys"
        let fitting = members.filter { key in
            if case .string(let allowed?) = key.kind, let value = raw as? String { return allowed.contains(value) }
            return false
        }
        if fitting.count == 1, let value = raw as? String {
            message += source == "--set" ? ", e.g. --set \(fitting[0].path)=\(value)"
                                         : ", e.g. \(path):\n  \(fitting[0].path.dropFirst(path.count + 1)): \(value)"
        } else {
            message += " (\(members.prefix(4).map(\.path).joined(separator: ", "))\(members.count > 4 ? ", …" : ""))"
        }
        return message + "; docs/configuration.md lists every key"
    }

    static func convert(_ raw: Any, for key: ConfigKey, source: String) throws -> ConfigValue {
        func bad(_ why: String) -> ConfigError {
            ConfigError("\(source): invalid value \(describe(raw)) for '\(key.path)': \(why) (expected \(key.kind.typeName))")
        }
        switch key.kind {
        case .int(let range):
            let v: Int
            if let i = raw as? Int { v = i } else if let d = raw as? Double, d == d.rounded(), abs(d) < 9e18 { v = Int(d) }
            else if let s = raw as? String, let i = Int(s) { v = i } else { throw bad("not an integer") }
            guard range.contains(v) else { throw bad("out of range") }
            return .int(v)
        case .double(let range):
            let v: Double
            if let d = raw as? Double { v = d } else if let i = raw as? Int { v = Double(i) }
            else if let s = raw as? String, let d = Double(s) { v = d } else { throw bad("not a number") }
            guard v.isFinite, range.contains(v) else { throw bad("out of range") }
            return .double(v)
        case .string(let allowed):
            let v: String
            if let s = raw as? String { v = s } else if raw is Int || raw is Double || raw is Bool { v = "\(raw)" }
            else { throw bad("not a string") }
            if let allowed, !allowed.contains(v) { throw bad("not one of the choices") }
            return .string(v)
        case .bool:
            if let b = raw as? Bool { return .bool(b) }
            if let s = raw as? String, ["true", "false"].contains(s.lowercased()) { return .bool(s.lowercased() == "true") }
            throw bad("not a boolean")
        case .intList(let element, let minCount):
            var items: [Any]
            if let list = raw as? [Any] { items = list } else if let i = raw as? Int { items = [i] }
            else if let s = raw as? String, s.trimmingCharacters(in: .whitespaces).isEmpty { items = [] }
            else { throw bad("not a list") }
            let ints = items.compactMap { $0 as? Int }
            guard ints.count == items.count else { throw bad("every element must be an integer") }
            guard ints.count >= minCount, ints.allSatisfy({ element.contains($0) }) else { throw bad("out of range") }
            return .intList(ints)
        }
    }

    /// The value of `path`, or nil while it is unset (keys with no fixed default).
    public func value(_ path: String) -> ConfigValue? {
        precondition(ConfigSchema.byPath[path] != nil, "\(path) is not a configuration key")
        return values[path]
    }

    // Typed accessors; the schema guarantees type, and presence for every key with a default.
    public func int(_ path: String) -> Int { if case .int(let v) = values[path] { return v }; fatalError("\(path) is not an int key") }
    public func double(_ path: String) -> Double { if case .double(let v) = values[path] { return v }; fatalError("\(path) is not a number key") }
    public func string(_ path: String) -> String { if case .string(let v) = values[path] { return v }; fatalError("\(path) is not a string key") }
    public func bool(_ path: String) -> Bool { if case .bool(let v) = values[path] { return v }; fatalError("\(path) is not a bool key") }
    public func intList(_ path: String) -> [Int] { if case .intList(let v) = values[path] { return v }; fatalError("\(path) is not a list key") }

    /// "key: old → new" for every key whose value differs from `other`, in schema order (what a resume changes).
    public func differences(from other: ResolvedConfig) -> [String] {
        ConfigSchema.keys.compactMap { key in
            let mine = values[key.path], theirs = other.values[key.path]
            guard mine != theirs else { return nil }
            return "\(key.path): \(theirs.map { "\($0)" } ?? "unset") → \(mine.map { "\($0)" } ?? "unset")"
        }
    }

    /// Nested YAML in schema order (sections in order of first appearance), loadable again with `--config`.
    public func yaml(header: String? = nil) -> String {
        var out = header.map { $0.split(separator: "\n").map { "# \($0)" }.joined(separator: "\n") + "\n" } ?? ""
        // Group paths by their prefixes so each section (and subsection) is written once.
        var sections: [String] = []
        var members: [String: [ConfigKey]] = [:]
        for key in ConfigSchema.keys {
            let section = String(key.path.split(separator: ".")[0])
            if members[section] == nil { sections.append(section) }
            members[section, default: []].append(key)
        }
        for section in sections {
            out += "\(section):\n"
            var open: String?
            for key in members[section]! {
                let parts = key.path.split(separator: ".").map(String.init)
                // An unset key is written as a comment, so the file loads back with the key still unset.
                let value = values[key.path].map { "\($0)" }
                if parts.count == 3 {
                    if open != parts[1] { out += "  \(parts[1]):\n"; open = parts[1] }
                    out += value.map { "    \(parts[2]): \($0)\n" } ?? "    # \(parts[2]): unset\n"
                } else {
                    open = nil
                    out += value.map { "  \(parts[1]): \($0)\n" } ?? "  # \(parts[1]): unset\n"
                }
            }
        }
        return out
    }
}

private func describe(_ raw: Any) -> String {
    if let s = raw as? String { return "'\(s)'" }
    return "\(raw)"
}

/// The typed training configuration, validated for a given world size. Built before MPI starts, so an error here
/// stops every rank before the first collective.
public struct TrainConfig: Sendable {
    public var resolved: ResolvedConfig
    public var worldSize: Int
    public var hidden: [Int]
    public var activation: Activation
    public var dataDirectory: String
    public var globalBatch: Int
    public var gradAccum: Int
    public var epochs: Double
    public var steps: Int
    public var seed: UInt64
    public var logEvery: Int
    public var evalEvery: Int
    public var gradClip: Double?
    public var optimizerName: String
    public var lr: Double
    public var weightDecay: Double
    public var scheduleKind: String
    public var warmupSteps: Int
    public var minLRRatio: Double
    public var outputDirectory: String
    public var saveModel: Bool
    public var zeroStage: Int
    public var bucketElements: Int
    /// `train.precision`: the precision of the model's matrix products and of the weights it reads.
    public var precision: GEMMPrecision
    /// `zero.comm_dtype`: the element type of gradient reduce-scatter messages.
    public var gradientPayload: GEMMPrecision
    /// `zero.prefetch`, `zero.reshard_after_forward`: how stage 3 gathers layers.
    public var gather: GatherSettings
    /// `train.memory_limit_mb` in bytes; nil when 0 (no limit).
    public var memoryLimitBytes: Int?
    public var maxBadSteps: Int
    public var measureNoiseScale: Bool
    public var noiseScaleDecay: Double
    public var modelKind: String
    public var gpt: GPTConfig
    public var dataset: String
    public var dataPath: String
    /// `model.depth`, `model.channels`, `model.sync_batchnorm` (ResNet).
    public var resnetDepth: Int
    public var resnetChannels: Int
    public var syncBatchNorm: Bool
    public var evalSequences: Int
    public var stopAt: Int
    /// `train.hang_timeout_s` by default: five minutes. Far above any wait a healthy run has (a step's slowest
    /// rank, rank 0 writing a checkpoint, evaluation), far below the forever of a hang.
    public static let defaultHangTimeout = 300.0
    /// `train.hang_timeout_s`: the watchdog's limit on one wait in a collective; 0: off.
    public var hangTimeout: Double
    public var checkpointEvery: Int
    public var checkpointFinal: Bool
    public var checkpointKeep: Int
    /// `checkpoint.async`: periodic checkpoints written by a background thread (BackgroundCheckpoint).
    public var checkpointAsync: Bool
    /// `train.method`: nil for gradient training, else the population method (GradientFree).
    public var population: PopulationSettings?
    /// `train.adversarial.*`: nil for clean training, else the attack each training batch is replaced by.
    public var adversarial: AttackSettings?

    /// `train.batch_schedule` and its keys: which global batch each step uses.
    public var batchSchedule: BatchScheduleSettings

    /// Which rows of each global batch every rank and micro-batch takes (any batch on any world size).
    public var split: BatchSplit { split(globalBatch: globalBatch) }
    /// The split of a step whose batch schedule chose `globalBatch`.
    public func split(globalBatch: Int) -> BatchSplit { BatchSplit(globalBatch: globalBatch, worldSize: worldSize, gradAccum: gradAccum) }
    /// Examples per rank per optimizer step: ⌈B/N⌉, the most any rank takes (all ranks when B divides evenly).
    public var perRankBatch: Int { split.largestRankBatch }
    /// Examples per micro-batch: the largest of any rank at the largest batch the schedule can choose (the
    /// workspace size).
    public var microBatch: Int {
        split(globalBatch: batchSchedule.largestBatch).largestMicroBatch
    }

    public init(_ c: ResolvedConfig, worldSize: Int) throws {
        resolved = c
        self.worldSize = worldSize
        hidden = c.intList("model.hidden")
        activation = Activation(rawValue: c.string("model.activation"))!
        dataDirectory = c.string("data.dir")
        globalBatch = c.int("train.global_batch")
        gradAccum = c.int("train.grad_accum")
        epochs = c.double("train.epochs")
        steps = c.int("train.steps")
        seed = UInt64(c.int("train.seed"))
        logEvery = c.int("train.log_every")
        evalEvery = c.int("train.eval_every")
        gradClip = c.double("train.grad_clip") > 0 ? c.double("train.grad_clip") : nil
        optimizerName = c.string("optimizer.name")
        lr = c.double("optimizer.lr")
        weightDecay = c.double("optimizer.weight_decay")
        scheduleKind = c.string("schedule.kind")
        warmupSteps = c.int("schedule.warmup_steps")
        minLRRatio = c.double("schedule.min_lr_ratio")
        outputDirectory = c.string("output.dir")
        saveModel = c.bool("output.save_model")
        maxBadSteps = c.int("train.max_bad_steps")
        measureNoiseScale = c.bool("train.noise_scale")
        noiseScaleDecay = c.double("train.noise_scale_ema")
        modelKind = c.string("model.kind")
        resnetDepth = c.int("model.depth")
        resnetChannels = c.int("model.channels")
        syncBatchNorm = c.bool("model.sync_batchnorm")
        gpt = GPTConfig(vocabulary: c.int("data.vocabulary"), context: c.int("model.context"), layers: c.int("model.layers"),
                        heads: c.int("model.heads"), width: c.int("model.width"), tiedHead: c.bool("model.tied_head"))
        dataset = c.string("data.dataset")
        dataPath = c.string("data.path")
        evalSequences = c.int("train.eval_sequences")
        stopAt = c.int("train.stop_at")
        hangTimeout = c.double("train.hang_timeout_s")
        checkpointEvery = c.int("checkpoint.every")
        checkpointFinal = c.bool("checkpoint.final")
        checkpointKeep = c.int("checkpoint.keep")
        checkpointAsync = c.bool("checkpoint.async")
        zeroStage = c.int("zero.stage")
        bucketElements = max(1, Int(c.double("zero.bucket_mb") * 1024 * 1024 / 4))
        precision = GEMMPrecision(rawValue: c.string("train.precision"))!
        gradientPayload = GEMMPrecision(rawValue: c.string("zero.comm_dtype"))!
        gather = GatherSettings(prefetchDepth: c.int("zero.prefetch"), reshardAfterForward: c.bool("zero.reshard_after_forward"))
        let limit = c.double("train.memory_limit_mb")
        memoryLimitBytes = limit > 0 ? Int(limit * 1024 * 1024) : nil

        // Any batch on any world size: ranks and micro-batches take ⌈⌉ or ⌊⌋ shares (BatchSplit); each needs a row.
        if let problem = BatchSplit.problem(globalBatch: globalBatch, worldSize: worldSize, gradAccum: gradAccum) {
            throw ConfigError(problem)
        }
        batchSchedule = try BatchScheduleSettings.read(c, worldSize: worldSize, gradAccum: gradAccum, globalBatch: globalBatch)
        // Every optimizer in use checks the values it would receive against its own declared ranges.
        var used = [optimizerName]
        for role in TensorRole.allCases where !used.contains(optimizerName(for: role)) { used.append(optimizerName(for: role)) }
        for name in used {
            if let problem = OptimizerCatalog.problems(name, config: c).first { throw ConfigError(problem) }
        }
        if (modelKind == "gpt") != (dataset == "text") {
            throw ConfigError("model.kind = \(modelKind) does not fit data.dataset = \(dataset): use model.kind gpt with data.dataset text, " +
                              "and model.kind mlp or resnet with data.dataset fashion-mnist or arrays")
        }
        if modelKind == "gpt", let problem = gpt.invalidReason {
            throw ConfigError("model: \(problem)")
        }
        if precision == .bf16, !c.bool("train.force_bf16"), let missing = CPUFeatures.bf16Unsupported() {
            throw ConfigError("train.precision = bf16: \(missing), so bf16 products would run on operands widened to " +
                              "fp32, slower than fp32 — use train.precision=fp32, or set train.force_bf16=true to run the " +
                              "bf16 numerics anyway (e.g. to test them)")
        }
        if gradientPayload == .bf16 && zeroStage == 0 {
            throw ConfigError("zero.comm_dtype = bf16 needs zero.stage 1, 2 or 3: the bf16 payload is summed in fp32 by each " +
                              "owner in the stages' reduce-scatter, and stage 0's all-reduce has no owner — set zero.stage=1 " +
                              "(same memory for the model, optimizer state sharded) or zero.comm_dtype=fp32")
        }
        population = try PopulationSettings.read(c, worldSize: worldSize, seed: seed)
        adversarial = Self.readAdversarial(c, seed: seed)
        if (population != nil || adversarial != nil) && modelKind != "mlp" {
            throw ConfigError("train.method = \(c.string("train.method")) and train.adversarial.method = \(c.string("train.adversarial.method")) " +
                              "need model.kind mlp (an image classifier); set train.method gradient and train.adversarial.method none for \(modelKind)")
        }
        if adversarial != nil && zeroStage == 3 {
            throw ConfigError("train.adversarial.method = \(c.string("train.adversarial.method")) needs zero.stage 0, 1 or 2: the attack " +
                              "reads the whole model at once, which stage 3 never holds — set zero.stage=2")
        }
        if population != nil && adversarial != nil {
            throw ConfigError("train.adversarial.method = \(c.string("train.adversarial.method")) needs train.method gradient " +
                              "(adversarial training back-propagates through the attack); set one of them back")
        }
        if population != nil && batchSchedule.kind != .fixed {
            throw ConfigError("train.batch_schedule = \(batchSchedule.kind.rawValue): population methods score whole batches of " +
                              "train.global_batch; set train.batch_schedule fixed or train.method gradient")
        }
        if population != nil && gradAccum != 1 {
            throw ConfigError("train.grad_accum = \(gradAccum): population methods score whole batches; set train.grad_accum 1")
        }
        if steps == 0 && epochs == 0 {
            throw ConfigError("train.steps and train.epochs are both 0: set one of them to say how long to train")
        }
    }

    /// The most optimizer steps a run may have: far beyond any real run, and small enough that per-step
    /// bookkeeping (step times, checkpoint step numbers) stays in memory and in range.
    public static let maxSteps = 100_000_000

    /// Total optimizer steps for a training set of `datasetSize` examples.
    public func totalSteps(datasetSize: Int) throws -> Int {
        guard globalBatch <= datasetSize else {
            throw ConfigError("train.global_batch = \(globalBatch) exceeds the \(datasetSize) training examples")
        }
        if batchSchedule.largestBatch > datasetSize {
            throw ConfigError("train.batch_\(batchSchedule.kind == .steps ? "steps" : "max"): batch \(batchSchedule.largestBatch) " +
                              "exceeds the \(datasetSize) training examples")
        }
        if steps > 0 { return steps }
        let derived = (epochs * Double(datasetSize / globalBatch)).rounded()
        guard derived <= Double(Self.maxSteps) else {
            throw ConfigError("train.epochs = \(epochs) means \(Int(derived)) steps, more than \(Self.maxSteps): lower train.epochs")
        }
        return max(1, Int(derived))
    }

    /// The optimizer that updates tensors of `role`.
    public func optimizerName(for role: TensorRole) -> String {
        let routed = resolved.string("groups.\(role.rawValue).optimizer")
        return routed.isEmpty ? optimizerName : routed
    }

    /// Weight decay and learning-rate multiplier (relative to `optimizer.lr`) of tensors of `role`.
    public func hyperparameters(for role: TensorRole) -> (weightDecay: Float, lrScale: Float) {
        // Unset: `optimizer.weight_decay` for tensors that decay, 0 for the rest.
        var wd: Double? = nil
        if case .double(let v)? = resolved.value("groups.\(role.rawValue).weight_decay") { wd = v }
        let roleLR = resolved.double("groups.\(role.rawValue).lr")
        let scale = (roleLR > 0 ? roleLR / lr : 1) * resolved.double("groups.\(role.rawValue).lr_scale")
        return (Float(wd ?? (defaultDecays(role) ? weightDecay : 0)), Float(scale))
    }

    /// Optimizer groups for a model's tensors: one per distinct optimizer, in order of first use in the table.
    /// Throws if an optimizer cannot update a tensor routed to it (e.g. Muon on a bias), naming the parameter.
    public func groupSpecs(for table: ParameterTable) throws -> [GroupSpec] {
        var specs: [GroupSpec] = []
        for entry in table.entries {
            let name = optimizerName(for: entry.role)
            let key = resolved.string("groups.\(entry.role.rawValue).optimizer").isEmpty ? "optimizer.name" : "groups.\(entry.role.rawValue).optimizer"
            if let problem = OptimizerCatalog.check(name, on: entry, key: key) { throw ConfigError(problem) }
            if let i = specs.firstIndex(where: { $0.name == name }) { specs[i].tensorNames.append(entry.name) } else {
                specs.append(GroupSpec(name: name, sharding: OptimizerCatalog.sharding(name), tensorNames: [entry.name]))
            }
        }
        return specs
    }

    /// Loads the data and builds the model for this configuration (before MPI: errors here stop every rank).
    public func makeTask() throws -> TrainingTask {
        switch modelKind {
        case "gpt":
            let corpus = try Self.naming("data.path", dataPath) {
                try TextCorpus.load(path: dataPath, vocabulary: gpt.vocabulary, validationFraction: resolved.double("data.validation_fraction"))
            }
            try corpus.check(context: gpt.context)
            // The embedding and the head have data.vocabulary rows: a token id at or above it would index past them.
            guard corpus.vocabulary <= gpt.vocabulary else {
                throw ConfigError("data.vocabulary = \(gpt.vocabulary) is below the \(corpus.vocabulary) token ids of \(dataPath) " +
                                  "(\(dataPath.hasSuffix(".bin") ? "its tokens" : "byte-level text: ids 0…255")): " +
                                  "set data.vocabulary=\(corpus.vocabulary)")
            }
            return LanguageModelTask(corpus: corpus, config: gpt, microBatch: microBatch, seed: seed, evalSequences: evalSequences)
        default:
            let (train, test) = try classificationData()
            _ = try totalSteps(datasetSize: train.count)  // a global batch larger than the data set is a config error
            if modelKind == "resnet" {
                let side = Int(Double(train.featureCount).squareRoot().rounded())
                guard side * side == train.featureCount, side >= 4 else {
                    throw ConfigError("model.kind = resnet needs square single-channel images of at least 4×4, but " +
                                      "\(dataset) has \(train.featureCount) features per example: use model.kind mlp")
                }
            }
            return imageTask(train: train, test: test)
        }
    }

    /// Runs `load`; when it fails and `path` is relative, the error says which key gave it and what it was relative
    /// to: each rank resolves it against its own working directory, which under mpirun may differ between ranks.
    static func naming<T>(_ key: String, _ path: String, _ load: () throws -> T) throws -> T {
        do { return try load() } catch let error as DataError where !path.hasPrefix("/") {
            throw ConfigError("\(key) = \(path) is relative to this rank's working directory " +
                              "\(FileManager.default.currentDirectoryPath): \(error); give an absolute path")
        }
    }

    public func schedule(totalSteps: Int) -> LRSchedule {
        switch scheduleKind {
        case "constant": return .constant
        case "step": return .step(warmup: warmupSteps, every: resolved.int("schedule.step_every"), gamma: resolved.double("schedule.gamma"))
        case "wsd":
            let decay = Int((resolved.double("schedule.decay_fraction") * Double(totalSteps)).rounded())
            return .warmupStableDecay(warmup: warmupSteps, decay: decay, total: totalSteps, minRatio: minLRRatio)
        default: return .warmupCosine(warmup: warmupSteps, total: totalSteps, minRatio: minLRRatio)
        }
    }
}
