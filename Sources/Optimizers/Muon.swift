import Tensors

/// Muon (Keller Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks") with MuonW's
/// decoupled weight decay, as in `torch.optim.Muon` and Moonlight (Liu et al. 2025, "Muon is Scalable for LLM
/// Training"):
///   m ← βm + (1−β)g
///   u = nesterov ? (1−β)g + βm : m
///   O = NS(u)                               (Newton–Schulz, see `NewtonSchulz`)
///   θ ← θ(1 − γλ) − γ·s·O                   (decay uses the unscaled γ)
/// with s = √max(1, rows/cols) ("original", Keller Jordan) or 0.2·√max(rows, cols) ("match_rms", Moonlight: the
/// update RMS matches a typical AdamW update's 0.2).
///
/// Preconditions: every segment covers one whole 2-D tensor (`seg.range.count == seg.tensor.count` and
/// `seg.tensor.shape.count == 2`); Muon needs the whole matrix, so it is sharded by whole tensors, never by element
/// slices. Use `Muon.validate(tensor:)` while building the configuration to reject other tensors early.
///
/// Deviations from torch.optim.Muon: NS runs in float32 through BLAS by default, bf16 GEMMs with
/// `optimizer.ns_precision: bf16` (slow on CPUs without bf16 matrix units); the decay θ(1 − γλ) and the update are fused into NS's last GEMM
/// (θ ← (1 − γλ)·θ + (−γs)·B·X), which is the same formula with one rounding fewer.
/// The learning rate and weight decay come from `StepContext.lr` / `ParamSegment.weightDecay`; their
/// torch.optim.Muon defaults are `Muon.defaultLearningRate` and `Muon.defaultWeightDecay`.
public final class Muon: OptimizerBase, Optimizer {
    public static let info = OptimizerInfo(
        names: ["muon"], sharding: .matrix, bandwidthBound: false,
        reference: "Keller Jordan 2024, Muon (Newton–Schulz orthogonalised momentum)",
        keys: [
            HyperKey("muon_momentum", .number(0...0.999_999), default: 0.95, "Muon momentum β (EMA: m ← βm + (1−β)g)."),
            HyperKey("muon_nesterov", .flag, default: true, "Muon: orthogonalise (1−β)g + βm instead of m."),
            HyperKey("ns_steps", .integer(1...50), default: 5, "Muon Newton–Schulz iterations."),
            HyperKey("ns_coefficients", .choice(NewtonSchulzCoefficients.allCases.map(\.rawValue)), default: "quintic",
                     "Muon Newton–Schulz schedule: Keller Jordan's quintic (3.4445, −4.7750, 2.0315), or Polar Express (Amsel et al. 2025)."),
            HyperKey("ns_precision", .choice(GEMMPrecision.allCases.map(\.rawValue)), default: "fp32",
                     "Muon Newton–Schulz GEMM precision: `fp32`, or `bf16` operands with fp32 accumulation (as Keller Jordan's reference runs NS; fast only on CPUs with AVX512-BF16/AMX, see docs/precision.md)."),
            HyperKey("muon_eps", .number(0...1), default: 1e-7, "Muon: ε in X = G/(‖G‖_F + ε) before Newton–Schulz."),
            HyperKey("muon_scale", .choice(Scale.allCases.map(\.rawValue)), default: "original",
                     "Muon update scale: `original` √max(1, rows/cols), or `match_rms` 0.2·√max(rows, cols) (update RMS 0.2, AdamW-like learning rates)."),
        ],
        tensorCheck: { validate(tensor: $0) },
        build: { Muon(count: $0.count, hyper: Hyper($0.values)) })

    /// How the orthogonalised update is scaled per matrix.
    public enum Scale: String, CaseIterable, Sendable, Codable {
        /// √max(1, rows/cols) (Keller Jordan's Muon).
        case original
        /// 0.2·√max(rows, cols) (Moonlight): update RMS 0.2, so AdamW's learning rate and decay can be reused.
        case matchRMS = "match_rms"
    }

    public struct Hyper: Equatable, Sendable {
        /// β, and Nesterov-style u = (1−β)g + βm.
        public let momentum: Float
        public let nesterov: Bool
        /// Newton–Schulz iterations k and their coefficient schedule.
        public let nsSteps: Int
        public let nsCoefficients: NewtonSchulzCoefficients
        /// eps in X = G/(‖G‖_F + eps).
        public let eps: Float
        public let scale: Scale
        /// Newton–Schulz GEMM precision.
        public let nsPrecision: GEMMPrecision
        public init(_ v: HyperValues) {
            (momentum, nesterov, eps) = (v.float("muon_momentum"), v.bool("muon_nesterov"), v.float("muon_eps"))
            (nsSteps, nsCoefficients, scale) = (v.int("ns_steps"), v.choice("ns_coefficients"), v.choice("muon_scale"))
            nsPrecision = v.choice("ns_precision")
        }
    }
    public let hyper: Hyper

    /// torch.optim.Muon's default learning rate.
    public static let defaultLearningRate: Float = 1e-3
    /// torch.optim.Muon's default weight decay (applies to the 2-D matrices Muon owns).
    public static let defaultWeightDecay: Float = 0.1

    private struct Shape: Hashable { var rows: Int, cols: Int }
    private struct Workspace { let ns: NewtonSchulz; let u: FloatBuffer? }
    /// One NS workspace (and Nesterov input buffer) per distinct matrix shape, created on first use and reused.
    private var workspaces: [Shape: Workspace] = [:]

    public init(count: Int, hyper: Hyper) {
        self.hyper = hyper
        super.init(name: "muon", count: count, stateNames: ["momentum_buffer"])
    }

    /// nil if `tensor` can be optimised by Muon, otherwise an error message naming it. Call while building the
    /// configuration so a bad routing fails before training (and before any MPI communication).
    public static func validate(tensor: TensorEntry) -> String? {
        guard tensor.shape.count == 2 else {
            return "Muon only optimises 2-D weight matrices, but parameter '\(tensor.name)' has shape "
                + "\(tensor.shape) (\(tensor.shape.count)-D, role \(tensor.role.rawValue)); route it to AdamW "
                + "(biases, norm gains, embeddings and the output head belong there), or view a conv kernel "
                + "[out, in, kh, kw] as a matrix [out, in·kh·kw]"
        }
        return nil
    }

    /// nil if `segment` is a whole 2-D tensor, otherwise an error message naming the tensor.
    public static func validate(segment: ParamSegment) -> String? {
        if let message = validate(tensor: segment.tensor) { return message }
        guard segment.range.count == segment.tensor.count else {
            return "Muon needs the whole matrix '\(segment.tensor.name)' (\(segment.tensor.count) elements) in one "
                + "optimizer, but this shard owns only \(segment.range.count); shard Muon by whole tensors"
        }
        return nil
    }

    /// The update scale s for a rows×cols matrix.
    public func updateScale(rows: Int, cols: Int) -> Float {
        switch hyper.scale {
        case .original: return Float(Swift.max(1, Double(rows) / Double(cols)).squareRoot())
        case .matchRMS: return Float(0.2 * Double(Swift.max(rows, cols)).squareRoot())
        }
    }

    private func workspace(rows: Int, cols: Int) -> Workspace {
        let key = Shape(rows: rows, cols: cols)
        if let w = workspaces[key] { return w }
        let w = Workspace(ns: NewtonSchulz(rows: rows, cols: cols, steps: hyper.nsSteps,
                                           coefficients: hyper.nsCoefficients, eps: hyper.eps, precision: hyper.nsPrecision),
                          u: hyper.nesterov ? FloatBuffer(count: rows * cols) : nil)
        workspaces[key] = w
        return w
    }

    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext) {
        for seg in segments {
            if let message = Self.validate(segment: seg) { preconditionFailure(message) }
        }
        stepCount += 1
        let beta = hyper.momentum, oneMinusBeta = 1 - hyper.momentum
        let p = params.baseAddress!, g = grads.baseAddress!, mAll = state[0].pointer
        for seg in segments {
            let rows = seg.tensor.shape[0], cols = seg.tensor.shape[1]
            let lo = seg.range.lowerBound, n = seg.range.count
            let gs = g + lo, m = mAll + lo
            let ws = workspace(rows: rows, cols: cols)
            // Phase 1: momentum and the NS input (one pass).
            let input: UnsafePointer<Float>
            if let u = ws.u?.pointer {
                for i in 0..<n {
                    let gi = gs[i]
                    let mi = beta * m[i] + oneMinusBeta * gi
                    m[i] = mi
                    u[i] = oneMinusBeta * gi + beta * mi
                }
                input = UnsafePointer(u)
            } else {
                for i in 0..<n { m[i] = beta * m[i] + oneMinusBeta * gs[i] }
                input = UnsafePointer(m)
            }
            // Phase 2: θ ← (1 − γλ)θ − γs·NS(u), fused into NS's last GEMM.
            let lr = context.lr * seg.lrScale
            ws.ns.orthogonalize(input, into: p + lo, alpha: -lr * updateScale(rows: rows, cols: cols),
                                beta: decoupledDecayFactor(lr: lr, weightDecay: seg.weightDecay))
        }
    }
}
