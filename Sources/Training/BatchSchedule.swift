import Datasets

/// How the peak learning rate follows the global batch B from the reference batch B_ref (κ = B/B_ref):
/// `linear` γ·κ (Goyal et al. 2017), `sqrt` γ·√κ (Krizhevsky 2014; Malladi et al. 2022 for Adam), `none` γ.
/// Used by sweeps (per point) and by adaptive batch schedules (per step).
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

/// `train.batch_schedule`: which global batch each optimizer step uses.
///
/// - `fixed`: `train.global_batch` throughout (the default; runs are bit-identical to before schedules existed).
/// - `steps`: `train.batch_steps` = [s₁, B₁, s₂, B₂, …]: from completed step sᵢ on, batch Bᵢ (before s₁:
///   `train.global_batch`).
/// - `noise_scale`: every `train.batch_change_every` steps, B ← max(B, clamp(round_q(k·B_simple), min, max)), with
///   B_simple the online noise scale (`train.noise_scale`), q = ranks × `train.grad_accum` (every micro-batch on
///   every rank then has the same rows), k = `train.batch_noise_k`: never decreasing (McCandlish et al. 2018:
///   B_crit ≈ B_noise grows as the loss falls).
///
/// With a schedule other than `fixed` the run is measured in examples: it ends at the first step whose examples
/// reach `train.steps × train.global_batch` (or `train.epochs` × the training set), and the lr schedule (warmup,
/// decay) is evaluated at the equivalent step at the base batch, ⌊examples / B₀⌉; the peak lr follows
/// `train.batch_lr_scaling` from B₀ = `train.global_batch`.
public struct BatchScheduleSettings: Sendable, Equatable {
    public enum Kind: String, CaseIterable, Sendable { case fixed, steps, noiseScale = "noise_scale" }
    public var kind: Kind
    /// B₀: `train.global_batch`, the batch the configured lr is for.
    public var baseBatch: Int
    /// (from step, batch), increasing in step (`steps`).
    public var steps: [(step: Int, batch: Int)]
    public var noiseMultiplier: Double
    public var minBatch: Int
    public var maxBatch: Int
    public var changeEvery: Int
    /// ranks × accumulation: `noise_scale` batches are multiples of it.
    public var quantum: Int
    public var lrScaling: LRScaling

    public static func == (a: Self, b: Self) -> Bool {
        a.kind == b.kind && a.baseBatch == b.baseBatch && a.steps.map { [$0.step, $0.batch] } == b.steps.map { [$0.step, $0.batch] }
            && a.noiseMultiplier == b.noiseMultiplier && a.minBatch == b.minBatch && a.maxBatch == b.maxBatch
            && a.changeEvery == b.changeEvery && a.quantum == b.quantum && a.lrScaling == b.lrScaling
    }

    /// The fixed schedule of batch `batch`.
    public static func fixed(_ batch: Int, quantum: Int) -> Self {
        Self(kind: .fixed, baseBatch: batch, steps: [], noiseMultiplier: 1, minBatch: batch, maxBatch: batch,
             changeEvery: 1, quantum: quantum, lrScaling: .none)
    }

    /// The largest global batch any step can use (workspaces are sized for it).
    public var largestBatch: Int {
        switch kind {
        case .fixed: return baseBatch
        case .steps: return ([baseBatch] + steps.map(\.batch)).max()!
        case .noiseScale: return Swift.max(startBatch, maxBatch)
        }
    }

    /// The batch of step 0.
    public var startBatch: Int {
        switch kind {
        case .fixed: return baseBatch
        case .steps: return steps.first { $0.step == 0 }?.batch ?? baseBatch
        case .noiseScale: return Swift.max(baseBatch, minBatch)
        }
    }

    /// Reads and checks the `train.batch_*` keys (before MPI: the message names the key and the fix).
    static func read(_ c: ResolvedConfig, worldSize: Int, gradAccum: Int, globalBatch: Int) throws -> Self {
        let kind = Kind(rawValue: c.string("train.batch_schedule"))!
        let q = worldSize * gradAccum
        var s = Self.fixed(globalBatch, quantum: q)
        s.kind = kind
        s.lrScaling = LRScaling(rawValue: c.string("train.batch_lr_scaling"))!
        s.noiseMultiplier = c.double("train.batch_noise_k")
        s.changeEvery = c.int("train.batch_change_every")
        let minKey = c.int("train.batch_min"), maxKey = c.int("train.batch_max")
        s.minBatch = minKey > 0 ? minKey : globalBatch
        s.maxBatch = maxKey
        let small = { (key: String, b: Int) -> ConfigError in
            ConfigError("\(key): batch \(b) is smaller than \(worldSize) ranks × train.grad_accum \(gradAccum) = \(q): every " +
                        "micro-batch on every rank needs at least one row — raise it to ≥ \(q) or lower train.grad_accum")
        }
        switch kind {
        case .fixed: return Self.fixed(globalBatch, quantum: q)
        case .steps:
            let list = c.intList("train.batch_steps")
            guard !list.isEmpty, list.count % 2 == 0 else {
                throw ConfigError("train.batch_steps = \(list): with train.batch_schedule steps give pairs [step, batch, step, batch, …] " +
                                  "(from that many completed steps on, that global batch), e.g. [0, 64, 200, 256]")
            }
            for i in stride(from: 0, to: list.count, by: 2) {
                let pair = (step: list[i], batch: list[i + 1])
                if let last = s.steps.last, pair.step <= last.step {
                    throw ConfigError("train.batch_steps: step \(pair.step) (pair \(i / 2 + 1)) is not after step \(last.step): list the pairs in increasing step order")
                }
                if pair.batch < q { throw small("train.batch_steps pair \(i / 2 + 1) (step \(pair.step))", pair.batch) }
                s.steps.append(pair)
            }
        case .noiseScale:
            guard c.bool("train.noise_scale") else {
                throw ConfigError("train.batch_schedule = noise_scale follows the measured noise scale: set train.noise_scale=true")
            }
            guard q > 1 else {
                throw ConfigError("train.batch_schedule = noise_scale on 1 rank with train.grad_accum 1: B_simple needs a smaller " +
                                  "batch than the global one (each rank's, or each micro-batch's) — set train.grad_accum ≥ 2 or run on ≥ 2 ranks")
            }
            if s.minBatch < q { throw small("train.batch_min", s.minBatch) }
            if s.maxBatch < s.startBatch {
                throw ConfigError("train.batch_max = \(maxKey) is below the starting batch \(s.startBatch) (train.global_batch, " +
                                  "train.batch_min): with train.batch_schedule noise_scale set train.batch_max, the largest batch " +
                                  "(workspaces are sized for it), ≥ \(s.startBatch)")
            }
        }
        return s
    }

    /// q-multiple nearest to `x` (at least q).
    func rounded(_ x: Double) -> Int {
        guard x.isFinite, x > 0 else { return quantum }
        let m = (x / Double(quantum)).rounded()
        return m >= Double(Int.max / quantum) ? Int.max / quantum * quantum : Swift.max(1, Int(m)) * quantum
    }
}

/// The batch schedule's state: everything a resumed run needs to continue with the same batches and data.
/// Recorded in checkpoints (`Checkpoint.Manifest.batchSchedule`).
public struct BatchScheduleState: Codable, Equatable, Sendable {
    /// The global batch of the last step (of the next step, before step 0).
    public var globalBatch: Int
    /// The data position after the last step: the epoch stream position (e·N + row) the examples consumed so far end
    /// at, dropped epoch tails included (`BatchSampler.batchStart`).
    public var dataPosition: Int
    /// Examples trained on so far (Σ of the steps' batches).
    public var examples: Int
    /// The step at which the batch last changed (noise_scale: changes are at least `changeEvery` apart).
    public var lastChange: Int
    /// The noise-scale estimator's averages after the last step.
    public var noise: GradientNoiseScale.State?
}

/// A batch schedule in motion: the training loop asks it for each step's global batch and data position.
public struct BatchSchedule: Sendable {
    public let settings: BatchScheduleSettings
    public let datasetSize: Int
    public private(set) var state: BatchScheduleState

    public init(_ settings: BatchScheduleSettings, datasetSize: Int, state: BatchScheduleState? = nil) {
        self.settings = settings
        self.datasetSize = datasetSize
        self.state = state ?? BatchScheduleState(globalBatch: settings.startBatch, dataPosition: 0, examples: 0, lastChange: 0, noise: nil)
    }

    /// The global batch of step `step` (0-based; completed steps before it), from the schedule and, for
    /// `noise_scale`, the noise scale measured so far. Call once per step, in order.
    public mutating func batch(forStep step: Int, noiseScale: Double?) -> Int {
        let s = settings
        var next = state.globalBatch
        switch s.kind {
        case .fixed: next = s.baseBatch
        case .steps: next = s.steps.last { $0.step <= step }?.batch ?? s.baseBatch
        case .noiseScale:
            if step - state.lastChange >= s.changeEvery, let b = noiseScale {
                let target = s.rounded(s.noiseMultiplier * b)
                next = Swift.max(state.globalBatch, Swift.min(Swift.max(target, s.minBatch), s.maxBatch, datasetSize))
            }
        }
        next = Swift.min(next, datasetSize)
        if next != state.globalBatch { state.lastChange = step }
        state.globalBatch = next
        return next
    }

    /// The state after `step` steps of a fixed batch `batch` (a checkpoint that recorded none).
    public static func fixedState(step: Int, batch: Int, datasetSize: Int) -> BatchScheduleState {
        let perEpoch = datasetSize / batch
        return BatchScheduleState(globalBatch: batch, dataPosition: (step / perEpoch) * datasetSize + (step % perEpoch) * batch,
                                  examples: step * batch, lastChange: step, noise: nil)
    }

    /// Where step's global batch of `batch` rows starts in the data stream; then records its examples consumed.
    public mutating func consume(batch: Int) -> Int {
        let start = BatchSampler.batchStart(position: state.dataPosition, batch: batch, datasetSize: datasetSize)
        state.dataPosition = start + batch
        state.examples += batch
        return start
    }

    /// The peak-lr multiplier of a step with global batch `batch` (1 for `fixed`).
    public func lrFactor(batch: Int) -> Double { settings.lrScaling.factor(batch: batch, reference: settings.baseBatch) }

    /// The step of the lr schedule (1-based) after `examples` examples: the step at the base batch with as many.
    public func scheduleStep(examples: Int) -> Int {
        Swift.max(1, Int((Double(examples) / Double(settings.baseBatch)).rounded()))
    }

    /// Records the noise-scale estimator's state for checkpoints.
    public mutating func record(noise: GradientNoiseScale.State) { state.noise = noise }
}

extension LoadedCheckpoint {
    /// `train.global_batch` of the configuration the checkpoint was written with (nil if its YAML does not parse).
    public var savedGlobalBatch: Int? {
        var saved = ResolvedConfig(name: "saved")
        guard (try? saved.merge(yaml: manifest.config, source: "\(path)/manifest.json (config)")) != nil else { return nil }
        return saved.int("train.global_batch")
    }

    /// Examples the run had trained on at this checkpoint.
    public var examplesTrained: Int {
        manifest.batchSchedule?.examples ?? manifest.step * (savedGlobalBatch ?? 0)
    }
}
