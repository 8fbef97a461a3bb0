import Tensors

/// A contiguous run of elements inside an optimizer's owned range that share hyperparameters and belong to one
/// tensor. Element-wise optimizers only need `range` and the multipliers; per-tensor and whole-matrix optimizers
/// also read `tensor` (its shape and full extent).
public struct ParamSegment: Equatable, Sendable {
    /// Indices into the owned range's `params` / `grads` / state buffers (0 = first owned element).
    public var range: Range<Int>
    /// The tensor these elements belong to (absolute offsets in the flat buffer).
    public var tensor: TensorEntry
    /// Weight-decay coefficient λ for these elements (0 for biases and norm gains by default).
    public var weightDecay: Float
    /// Multiplier on the scheduled learning rate (per-group learning rates).
    public var lrScale: Float

    public init(range: Range<Int>, tensor: TensorEntry, weightDecay: Float, lrScale: Float = 1) {
        self.range = range
        self.tensor = tensor
        self.weightDecay = weightDecay
        self.lrScale = lrScale
    }
}

/// Per-step inputs shared by every segment.
public struct StepContext: Sendable {
    /// Scheduled learning rate γ for this step (before each segment's `lrScale`).
    public var lr: Float
    public init(lr: Float) { self.lr = lr }
}

/// An optimizer bound to one contiguous range of the flat parameter buffer.
///
/// It owns the state for exactly that range (`state[k]` has one element per owned element), so a sharded optimizer
/// can give each rank any range and the union of the ranks' updates equals the unsharded update. It never
/// communicates: anything that needs values from other ranks (global norms, per-tensor norms over slices) is passed in.
public protocol Optimizer: AnyObject {
    /// Short name used in logs and checkpoints, e.g. "adamw".
    var name: String { get }
    /// Number of elements in the owned range.
    var count: Int { get }
    /// Names of the per-element state buffers, generic so checkpoints need no optimizer-specific code.
    var stateNames: [String] { get }
    /// Per-element state, aligned with the owned range, in `stateNames` order.
    var state: [FloatBuffer] { get }
    /// Optimizer steps taken so far (t in the papers; the next update uses t = stepCount + 1).
    var stepCount: Int { get set }

    /// Applies one update to `params` (the owned range) from `grads` (same range).
    func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                segments: [ParamSegment], context: StepContext)
}

extension Optimizer {
    public var stateBytes: Int { state.reduce(0) { $0 + $1.byteCount } }
}

/// Builds the segments of `owned` (absolute range of the flat buffer): one per tensor overlap, with weight decay
/// taken from `weightDecay(role)`. Ranges in the result are relative to `owned.lowerBound`.
public func makeSegments(table: ParameterTable, owned: Range<Int>, weightDecay: (TensorRole) -> Float,
                         lrScale: (TensorRole) -> Float = { _ in 1 }) -> [ParamSegment] {
    table.entries(overlapping: owned).map { entry, overlap in
        ParamSegment(range: (overlap.lowerBound - owned.lowerBound)..<(overlap.upperBound - owned.lowerBound),
                     tensor: entry, weightDecay: weightDecay(entry.role), lrScale: lrScale(entry.role))
    }
}

/// The default decay policy: weight decay applies to weight matrices and embeddings, never to biases or norm gains
/// (they have no scale to regularise and decaying them hurts, as in most reference trainers).
public func defaultDecays(_ role: TensorRole) -> Bool {
    switch role {
    case .matrix, .embedding, .head: return true
    case .bias, .norm: return false
    }
}
