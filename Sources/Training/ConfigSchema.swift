/// A configuration value as written in YAML or on the command line.
public enum ConfigValue: Equatable, Sendable, CustomStringConvertible {
    case int(Int)
    case double(Double)
    case string(String)
    case bool(Bool)
    case intList([Int])

    /// YAML rendering (also the form accepted back by `--set`).
    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return formatDouble(v)
        case .string(let v): return v.isEmpty || v.contains(where: { ":#{}[],&*!|>'\"%@`".contains($0) }) ? "\"\(v)\"" : v
        case .bool(let v): return v ? "true" : "false"
        case .intList(let v): return "[" + v.map(String.init).joined(separator: ", ") + "]"
        }
    }
}

func formatDouble(_ v: Double) -> String {
    if v == v.rounded(), abs(v) < 1e15 { return String(format: "%.1f", v) }
    return "\(v)"
}

/// The type and admissible values of one key.
public enum ConfigKind: Sendable {
    case int(ClosedRange<Int>)
    case double(ClosedRange<Double>)
    case string(allowed: [String]?)
    case bool
    case intList(element: ClosedRange<Int>, minCount: Int)

    var typeName: String {
        switch self {
        case .int(let r): return "integer in \(r.lowerBound)…\(r.upperBound == Int.max ? "∞" : String(r.upperBound))"
        case .double(let r): return "number in \(formatDouble(r.lowerBound))…\(r.upperBound == .infinity ? "∞" : formatDouble(r.upperBound))"
        case .string(let allowed): return allowed.map { "one of " + $0.joined(separator: ", ") } ?? "string"
        case .bool: return "true or false"
        case .intList(let e, let n): return "list of ≥ \(n) integers in \(e.lowerBound)…\(e.upperBound == Int.max ? "∞" : String(e.upperBound))"
        }
    }
}

/// One documented configuration key.
public struct ConfigKey: Sendable {
    public let path: String
    public let kind: ConfigKind
    /// nil: the key is unset unless the user sets it, and whoever reads it has its own default (each optimizer's
    /// β₂, ε, momentum; each role's weight decay). `~` (YAML null) sets a key back to unset.
    public let defaultValue: ConfigValue?
    public let doc: String
}

/// Every key swift-train understands, in the order they are printed. The defaults *are* the built-in configuration
/// (`configs/fashion-mlp.yaml` spells the same values out, and a test keeps the two equal).
public enum ConfigSchema {
    public static let keys: [ConfigKey] = baseKeys + OptimizerCatalog.configKeys + scheduleAndRunKeys + groupKeys + methodKeys

    static let baseKeys: [ConfigKey] = [
        ConfigKey(path: "model.kind", kind: .string(allowed: ["mlp", "resnet", "gpt"]), defaultValue: .string("mlp"),
                  doc: "Model family. `mlp`: multilayer perceptron classifier on flattened images (with `data.dataset: fashion-mnist`); `resnet`: residual convolutional network on square single-channel images (fashion-mnist or arrays; docs/models.md); `gpt`: decoder-only transformer language model (with `data.dataset: text`)."),
        ConfigKey(path: "model.hidden", kind: .intList(element: 1...65_536, minCount: 0), defaultValue: .intList([1024, 1024]),
                  doc: "Hidden layer widths of the MLP, input to output (e.g. `[1024, 1024]` gives 784-1024-1024-10)."),
        ConfigKey(path: "model.activation", kind: .string(allowed: ["relu", "gelu"]), defaultValue: .string("relu"),
                  doc: "Activation between MLP layers: `relu`, or `gelu` (tanh approximation)."),
        ConfigKey(path: "model.depth", kind: .int(1...64), defaultValue: .int(1),
                  doc: "ResNet: residual blocks in each of the three stages (depth 1: 3 blocks, 8 convolutions with the stem)."),
        ConfigKey(path: "model.channels", kind: .int(1...1024), defaultValue: .int(16),
                  doc: "ResNet: channels of the stem and the first stage; the second and third stages have 2× and 4×."),
        ConfigKey(path: "model.sync_batchnorm", kind: .bool, defaultValue: .bool(false),
                  doc: "ResNet: batch-norm statistics over the whole global micro-batch (all ranks, two small all-reduces per batch-norm layer per micro-batch) instead of each rank's own rows."),
        ConfigKey(path: "model.layers", kind: .int(1...256), defaultValue: .int(4),
                  doc: "GPT: transformer blocks."),
        ConfigKey(path: "model.heads", kind: .int(1...256), defaultValue: .int(4),
                  doc: "GPT: attention heads (must divide `model.width`)."),
        ConfigKey(path: "model.width", kind: .int(1...65_536), defaultValue: .int(256),
                  doc: "GPT: embedding width C."),
        ConfigKey(path: "model.context", kind: .int(1...65_536), defaultValue: .int(128),
                  doc: "GPT: context length T (tokens per training sequence)."),
        ConfigKey(path: "model.tied_head", kind: .bool, defaultValue: .bool(true),
                  doc: "GPT: the output head shares the token embedding (`true`) or has its own `lm_head.weight` (`false`)."),
        ConfigKey(path: "data.dataset", kind: .string(allowed: ["fashion-mnist", "text", "arrays"]), defaultValue: .string("fashion-mnist"),
                  doc: "Dataset. `fashion-mnist`: 60,000 training and 10,000 test images, 28×28, 10 classes. `text`: a token corpus from `data.path`. `arrays`: features and labels from `.npy` files (`data.train_features` etc.; see docs/datasets.md)."),
        ConfigKey(path: "data.dir", kind: .string(allowed: nil), defaultValue: .string("/usr/share/datasets/fashion-mnist"),
                  doc: "Folder with the MNIST-format IDX files (`train-images-idx3-ubyte[.gz]` etc.); Debian's `dataset-fashion-mnist` installs them here."),
        ConfigKey(path: "data.path", kind: .string(allowed: nil), defaultValue: .string("/usr/share/games/fortunes"),
                  doc: "Text corpus: a text file or folder (byte-level, vocabulary 256; `.dat` indexes, links and binary files skipped), `.bin` files of little-endian uint16 tokens, or 1-D `.npy` token arrays (uint16, uint8, int32, int64). Default: Debian's `fortunes`."),
        ConfigKey(path: "data.vocabulary", kind: .int(2...65_536), defaultValue: .int(256),
                  doc: "Text: vocabulary size (256 for bytes; the tokenizer's size for `.bin` files)."),
        ConfigKey(path: "data.validation_fraction", kind: .double(0.001...0.9), defaultValue: .double(0.1),
                  doc: "Text: the last fraction of the corpus held out for validation."),
        ConfigKey(path: "data.train_features", kind: .string(allowed: nil), defaultValue: .string(""),
                  doc: "Arrays: `.npy` training features, shape (N, d₁, …), float32 (as stored) or uint8 (scaled to [0, 1]); C order, little-endian; memory-mapped."),
        ConfigKey(path: "data.train_labels", kind: .string(allowed: nil), defaultValue: .string(""),
                  doc: "Arrays: `.npy` training labels, shape (N,), int64, int32 or uint8 class ids from 0."),
        ConfigKey(path: "data.test_features", kind: .string(allowed: nil), defaultValue: .string(""),
                  doc: "Arrays: `.npy` test features, shape (M, d₁, …) with the training examples' shape."),
        ConfigKey(path: "data.test_labels", kind: .string(allowed: nil), defaultValue: .string(""),
                  doc: "Arrays: `.npy` test labels, shape (M,)."),
        ConfigKey(path: "data.classes", kind: .int(0...65_536), defaultValue: .int(0),
                  doc: "Arrays: number of classes; every label must be below it. 0: one more than the largest training label."),
        ConfigKey(path: "train.global_batch", kind: .int(1...1 << 24), defaultValue: .int(256),
                  doc: "Examples per optimizer step summed over all ranks, on any world size: rank r takes ⌈B/N⌉ rows if r < B mod N, else ⌊B/N⌋ (and micro-batches split each rank's rows the same way), and every gradient is scaled by 1/B, so the step is the exact mean over the global batch. Must be ≥ world size × `train.grad_accum`."),
        ConfigKey(path: "train.grad_accum", kind: .int(1...65_536), defaultValue: .int(1),
                  doc: "Micro-batches accumulated per rank before one communication and one optimizer step."),
        ConfigKey(path: "train.epochs", kind: .double(0...1e6), defaultValue: .double(8),
                  doc: "Training length in passes over the training set (used when `train.steps` is 0)."),
        ConfigKey(path: "train.steps", kind: .int(0...TrainConfig.maxSteps), defaultValue: .int(0),
                  doc: "Training length in optimizer steps; 0 means derive it from `train.epochs`."),
        ConfigKey(path: "train.seed", kind: .int(0...Int.max), defaultValue: .int(0),
                  doc: "Seed for initialisation and shuffling; a run is reproducible for a given seed and world size."),
        ConfigKey(path: "train.log_every", kind: .int(1...Int.max), defaultValue: .int(25),
                  doc: "Steps between metrics lines; the logged loss is the mean training loss since the previous line."),
        ConfigKey(path: "train.eval_every", kind: .int(0...Int.max), defaultValue: .int(0),
                  doc: "Steps between test-set evaluations; 0 evaluates once, at the end."),
        ConfigKey(path: "train.eval_sequences", kind: .int(0...Int.max), defaultValue: .int(256),
                  doc: "Text: validation sequences evaluated (the first ones of the held-out split); 0: all."),
        ConfigKey(path: "train.grad_clip", kind: .double(0...1e30), defaultValue: .double(0),
                  doc: "Global-norm gradient clipping threshold on the averaged raw gradient; 0 disables clipping."),
        ConfigKey(path: "optimizer.name", kind: .string(allowed: OptimizerCatalog.names), defaultValue: .string("adamw"),
                  doc: "Optimizer for every tensor not routed elsewhere by `groups.<role>.optimizer`: one of \(OptimizerCatalog.names.map { "`\($0)`" }.joined(separator: ", ")). See docs/optimizers.md."),
        ConfigKey(path: "optimizer.lr", kind: .double(0...1e6), defaultValue: .double(1e-3),
                  doc: "Peak learning rate γ (the schedule scales it)."),
        ConfigKey(path: "optimizer.weight_decay", kind: .double(0...1e6), defaultValue: .double(0.01),
                  doc: "Weight decay λ. Applied to weight matrices and embeddings only, never to biases or norm gains."),
    ]

    static let scheduleAndRunKeys: [ConfigKey] = [
        ConfigKey(path: "schedule.kind", kind: .string(allowed: ["cosine", "constant", "step", "wsd"]), defaultValue: .string("cosine"),
                  doc: "`cosine`: linear warmup then cosine decay to `min_lr_ratio`·lr at the last step; `constant`: lr throughout (warmup ignored); `step`: warmup, then ×`gamma` every `step_every` steps; `wsd`: warmup, stable, then linear decay to `min_lr_ratio`·lr over the last `decay_fraction` of training."),
        ConfigKey(path: "schedule.warmup_steps", kind: .int(0...Int.max), defaultValue: .int(100),
                  doc: "Linear warmup length in steps (lr·t/warmup for step t ≤ warmup)."),
        ConfigKey(path: "schedule.min_lr_ratio", kind: .double(0...1), defaultValue: .double(0),
                  doc: "Final learning rate as a fraction of `optimizer.lr` (cosine and wsd)."),
        ConfigKey(path: "schedule.step_every", kind: .int(1...Int.max), defaultValue: .int(1000),
                  doc: "`step` schedule: steps between decays."),
        ConfigKey(path: "schedule.gamma", kind: .double(0...1), defaultValue: .double(0.1),
                  doc: "`step` schedule: multiplier applied at each decay."),
        ConfigKey(path: "schedule.decay_fraction", kind: .double(0...1), defaultValue: .double(0.2),
                  doc: "`wsd` schedule: fraction of the training steps spent in the final decay."),
        ConfigKey(path: "zero.stage", kind: .int(0...3), defaultValue: .int(0),
                  doc: "ZeRO stage: 0 replicated (gradients all-reduced); 1 optimizer state sharded (gradients reduce-scattered, parameters all-gathered); 2 gradients sharded too; 3 parameters sharded too (each layer all-gathered just ahead of its forward and backward). See docs/distributed.md."),
        ConfigKey(path: "zero.prefetch", kind: .int(0...64), defaultValue: .int(1),
                  doc: "Stage 3: layers whose parameter all-gathers are issued ahead of the layer computing (0 gathers each layer when it is needed). Working memory is about (prefetch + 2) × the largest layer."),
        ConfigKey(path: "zero.reshard_after_forward", kind: .bool, defaultValue: .bool(true),
                  doc: "Stage 3: free each layer's gathered parameters after its forward and gather them again for backward (FSDP's default). `false` keeps them from forward to backward: one gather per layer per micro-batch instead of two, but the whole model is gathered at the end of forward."),
        ConfigKey(path: "train.memory_limit_mb", kind: .double(0...1e9), defaultValue: .double(0),
                  doc: "Per-rank limit (MiB) on the bytes a rank allocates for parameters, gradients, optimizer state and communication/gather buffers, checked at start-up before training (activations and data are not counted); 0 = no limit. The error names the figure and the ZeRO stage that would fit."),
        ConfigKey(path: "train.precision", kind: .string(allowed: ["fp32", "bf16"]), defaultValue: .string("fp32"),
                  doc: "Precision of the model's matrix products. `fp32`: everything fp32. `bf16`: GEMM operands (weights and activations) rounded to bf16, products summed and returned in fp32; master weights, gradients and optimizer state stay fp32, and the model reads a bf16 copy of the weights made once per step. Needs a CPU with AVX512-BF16 or AMX-BF16 (see `train.force_bf16`). See docs/precision.md."),
        ConfigKey(path: "train.force_bf16", kind: .bool, defaultValue: .bool(false),
                  doc: "Run `train.precision: bf16` on a CPU without AVX512-BF16/AMX-BF16: the numerics are the same, but the bf16 products are computed on operands widened to fp32, so the run is slower than fp32 (for testing the numerics, not for speed)."),
        ConfigKey(path: "zero.comm_dtype", kind: .string(allowed: ["fp32", "bf16"]), defaultValue: .string("fp32"),
                  doc: "Element type of the gradient reduce-scatter's messages at stages 1–2. `bf16`: each rank rounds what it sends to bf16 and each owner sums in fp32 (half the gradient bytes; the gradient moves by ≤ 2⁻⁸ relative per contribution). Stage 0's all-reduce is fp32 only."),
        ConfigKey(path: "zero.bucket_mb", kind: .double(1e-6...4096), defaultValue: .double(2),
                  doc: "Gradient bucket size in MiB: each bucket's collective starts as soon as backward has finished its tensors."),
        ConfigKey(path: "train.max_bad_steps", kind: .int(0...Int.max), defaultValue: .int(10),
                  doc: "Stop with an error after this many consecutive steps with a non-finite gradient (each is skipped on every rank); 0 never stops."),
        ConfigKey(path: "train.noise_scale", kind: .bool, defaultValue: .bool(true),
                  doc: "Measure the gradient noise scale B_simple online (per-rank or micro-batch vs global batch; one extra pass over the local gradient and one 2-double all-reduce per step); logged as `noise_scale`."),
        ConfigKey(path: "train.noise_scale_ema", kind: .double(0...0.999_999), defaultValue: .double(0.95),
                  doc: "EMA decay of the two noise-scale estimates (|G|² and tr Σ)."),
        ConfigKey(path: "train.batch_schedule", kind: .string(allowed: ["fixed", "steps", "noise_scale"]), defaultValue: .string("fixed"),
                  doc: "Global batch per step: `fixed` (`train.global_batch`), `steps` (`train.batch_steps`), or `noise_scale` (follows `train.batch_noise_k` × the measured B_simple every `train.batch_change_every` steps, a multiple of ranks × `train.grad_accum`, within `train.batch_min`…`train.batch_max`, never decreasing). Other than `fixed`, the run length and the lr schedule are in examples (`train.steps` × `train.global_batch`, or `train.epochs`), and the peak lr follows `train.batch_lr_scaling` (docs/batch-size.md)."),
        ConfigKey(path: "train.batch_steps", kind: .intList(element: 0...1 << 30, minCount: 0), defaultValue: .intList([]),
                  doc: "With `train.batch_schedule` steps: pairs [step, batch, step, batch, …], from that many completed steps on that global batch (before the first: `train.global_batch`)."),
        ConfigKey(path: "train.batch_noise_k", kind: .double(1e-6...1e6), defaultValue: .double(1),
                  doc: "With `train.batch_schedule` noise_scale: the batch is k × B_simple (rounded to a multiple of ranks × `train.grad_accum`)."),
        ConfigKey(path: "train.batch_min", kind: .int(0...1 << 24), defaultValue: .int(0),
                  doc: "With `train.batch_schedule` noise_scale: the smallest batch (0: `train.global_batch`, which is also where it starts)."),
        ConfigKey(path: "train.batch_max", kind: .int(0...1 << 24), defaultValue: .int(0),
                  doc: "With `train.batch_schedule` noise_scale (required there): the largest batch; workspaces are sized for it."),
        ConfigKey(path: "train.batch_change_every", kind: .int(1...Int.max), defaultValue: .int(50),
                  doc: "With `train.batch_schedule` noise_scale: steps between batch changes (the estimate is an EMA: let it settle)."),
        ConfigKey(path: "train.batch_lr_scaling", kind: .string(allowed: ["none", "linear", "sqrt"]), defaultValue: .string("sqrt"),
                  doc: "With `train.batch_schedule` steps or noise_scale: how the peak lr follows the step's batch B from `train.global_batch` B₀: `linear` γ·B/B₀, `sqrt` γ·√(B/B₀), `none` γ."),
        ConfigKey(path: "train.stop_at", kind: .int(0...Int.max), defaultValue: .int(0),
                  doc: "Pause after this step: write a checkpoint and exit 0, keeping the schedule of the full run (for time-limited jobs; continue with --resume). 0: off; ignored when resuming past it."),
        ConfigKey(path: "train.hang_timeout_s", kind: .double(0...86_400), defaultValue: .double(TrainConfig.defaultHangTimeout),
                  doc: "Watchdog: a rank waiting longer than this many seconds in one collective ends the whole job (exit status 4) with a message naming the rank(s) that stopped progressing, the call and the step, instead of hanging forever (docs/checkpoints.md). 0: off."),
        ConfigKey(path: "checkpoint.every", kind: .int(0...Int.max), defaultValue: .int(500),
                  doc: "Steps between checkpoints (in `<run>/checkpoints/step-N/`); 0: none except the final one."),
        ConfigKey(path: "checkpoint.final", kind: .bool, defaultValue: .bool(true),
                  doc: "Write a checkpoint after the last step (and always when stopped by SIGINT/SIGTERM)."),
        ConfigKey(path: "checkpoint.keep", kind: .int(1...1_000_000), defaultValue: .int(3),
                  doc: "Complete checkpoints kept; older ones are removed only after a newer one is complete."),
        ConfigKey(path: "checkpoint.async", kind: .bool, defaultValue: .bool(false),
                  doc: "Write periodic checkpoints in a background thread while training goes on: the state is copied at the step boundary and the checkpoint is complete (renamed into place) at the first step boundary after every rank's files are written; the next checkpoint, the final one and a stop wait for it. Costs a second copy of the optimizer state in memory while writing; a crash before completion falls back to the previous checkpoint (docs/checkpoints.md)."),
        ConfigKey(path: "output.dir", kind: .string(allowed: nil), defaultValue: .string(""),
                  doc: "Run directory (also `--out`). Empty: `runs/<config name>-<UTC time>`. An existing run directory is never overwritten."),
        ConfigKey(path: "output.save_model", kind: .bool, defaultValue: .bool(true),
                  doc: "Write the final parameters to `model.safetensors` in the run directory."),
        ConfigKey(path: "output.tensorboard", kind: .bool, defaultValue: .bool(false),
                  doc: "Also write the metrics as TensorBoard scalars (`events.out.tfevents.*` in the run directory, rank 0, one record per metrics line); `tensorboard --logdir runs`."),
    ]

    /// Optimizers selectable by name (`optimizer.name`, `groups.<role>.optimizer`).
    public static let optimizerNames = OptimizerCatalog.names

    /// Per-role routing keys: groups.<role>.{optimizer, lr, lr_scale, weight_decay} for every tensor role.
    static let groupKeys: [ConfigKey] = TensorRoleNames.all.flatMap { role -> [ConfigKey] in [
        ConfigKey(path: "groups.\(role).optimizer", kind: .string(allowed: [""] + optimizerNames), defaultValue: .string(""),
                  doc: "Optimizer for `\(role)` tensors; empty: `optimizer.name`. E.g. `muon` for hidden matrices with AdamW elsewhere."),
        ConfigKey(path: "groups.\(role).lr", kind: .double(0...1e6), defaultValue: .double(0),
                  doc: "Peak learning rate for `\(role)` tensors; 0: `optimizer.lr`. Follows the same schedule."),
        ConfigKey(path: "groups.\(role).lr_scale", kind: .double(0...1e6), defaultValue: .double(1),
                  doc: "Multiplier on the learning rate of `\(role)` tensors."),
        ConfigKey(path: "groups.\(role).weight_decay", kind: .double(0...1e6), defaultValue: nil,
                  doc: "Weight decay for `\(role)` tensors; unset: `optimizer.weight_decay` for weights, 0 for biases and norms."),
    ] }

    public static let byPath: [String: ConfigKey] = Dictionary(uniqueKeysWithValues: keys.map { ($0.path, $0) })

    /// The built-in configuration (used when no `--config` is given).
    public static var defaults: [String: ConfigValue] {
        Dictionary(uniqueKeysWithValues: keys.compactMap { key in key.defaultValue.map { (key.path, $0) } })
    }

    /// The closest known key, for "did you mean" hints (edit distance ≤ a third of the length).
    static func suggestion(for path: String) -> String? {
        let scored = keys.map { ($0.path, editDistance(path, $0.path)) }.min { $0.1 < $1.1 }
        guard let (best, d) = scored, d <= max(2, path.count / 3) else {
            // Same leaf under another section ("optim.lr" → "optimizer.lr") is also worth suggesting.
            let leaf = path.split(separator: ".").last.map(String.init) ?? path
            return keys.first { $0.path.hasSuffix("." + leaf) }?.path
        }
        return best
    }

    /// docs/configuration.md, generated from this table so the documentation cannot drift from the code.
    public static func markdown() -> String {
        var out = """
        # Configuration reference

        Every key swift-train accepts, generated by `swift-train config --markdown` (a test checks this file is current).
        Keys are set in a YAML file (`--config FILE`, nested sections as below) and overridden on the command line with
        `--set section.key=value` (repeatable; the value is parsed as YAML, so `--set model.hidden=[512,256]` works).
        Unknown keys and invalid values are rejected before any rank communicates, with a message naming the key.
        With no `--config`, the defaults below are used; they equal `configs/fashion-mlp.yaml`. An *unset* key (`~` in
        YAML) means each reader's own default: the optimizer keys are declared by each optimizer in its own source file
        (`Sources/Optimizers/`), and where optimizers disagree on a default the key stays unset until you set it.

        | key | type | default | meaning |
        |---|---|---|---|

        """
        for k in keys {
            out += "| `\(k.path)` | \(k.kind.typeName) | \(k.defaultValue.map { "`\($0)`" } ?? "unset") | \(k.doc) |\n"
        }
        return out
    }
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...max(b.count, 1) where !b.isEmpty {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return a.isEmpty ? b.count : previous[b.count]
}
