import Tensors

/// A contiguous run of elements inside an optimizer's owned range that share hyperparameters and belong to one
/// tensor. Element-wise optimizers only need `range` and the multipliers; per-tensor and whole-matrix optimizers
/// also read `tensor` (its shape and full extent).
public struct ParamSegment: Equatable, Sendable {
    /// Indices into the owned range's `params` / `grads` / state buffers (0 = first owned element).
    public var range: Range<Int>
    /// The tensor these elements belong to (absolute offsets in the flat buffer).
    public var tensor: TensorEntry
    /// Position of `tensor` in the parameter table (indexes per-tensor norm vectors).
    public var tensorIndex: Int
    /// Weight-decay coefficient λ for these elements (0 for biases and norm gains by default).
    public var weightDecay: Float
    /// Multiplier on the scheduled learning rate (per-group learning rates).
    public var lrScale: Float

    public init(range: Range<Int>, tensor: TensorEntry, tensorIndex: Int, weightDecay: Float, lrScale: Float = 1) {
        self.range = range
        self.tensor = tensor
        self.tensorIndex = tensorIndex
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

/// Which implementation of an element-wise loop runs: the vectorised C kernel (training), or its naive Swift twin
/// (tests compare the two bit for bit through each optimizer's `referenceUpdate`/`referencePrepare`).
public enum KernelChoice: Sendable {
    case c
    case swiftReference
}

/// An optimizer bound to one contiguous range of the flat parameter buffer.
///
/// It owns the state for exactly that range (`state[k]` has one element per owned element), so a sharded optimizer
/// can give each rank any range and the union of the ranks' updates equals the unsharded update. It never
/// communicates: anything that needs values from other ranks (global norms, per-tensor norms over slices) is passed in.
public protocol Optimizer: AnyObject {
    /// Everything else swift-train knows about this optimizer: names, sharding, hyperparameter keys, how to build it.
    static var info: OptimizerInfo { get }
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

/// An element-wise optimizer whose loop is a C kernel with a naive Swift twin: it implements the update once with
/// the loop chosen by `kernel`; training runs the C kernel, tests run `referenceUpdate` and compare bit for bit.
public protocol KernelTwinOptimizer: Optimizer {
    func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                segments: [ParamSegment], context: StepContext, kernel: KernelChoice)
}

extension KernelTwinOptimizer {
    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext) {
        update(params: params, grads: grads, segments: segments, context: context, kernel: .c)
    }

    /// The C kernel's naive twin, for tests: the same update through the plain Swift loop (bit-identical).
    public func referenceUpdate(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                                segments: [ParamSegment], context: StepContext) {
        update(params: params, grads: grads, segments: segments, context: context, kernel: .swiftReference)
    }
}

extension Optimizer {
    public var stateBytes: Int { state.reduce(0) { $0 + $1.byteCount } }

    /// This optimizer built through its registry entry, as configuration builds it: `settings` by key name
    /// (`optimizer.<key>` without the prefix), the rest at the declared defaults. `name` picks a variant where one
    /// class answers to several names (adam/adamw, signsgd/signum); default: the first.
    public static func make(count: Int, segments: [ParamSegment] = [], name: String? = nil,
                            _ settings: [String: HyperValue] = [:]) -> Self {
        info.make(name ?? info.names[0], count: count, segments: segments, settings: settings) as! Self
    }
}

/// Builds the segments of `owned` (absolute range of the flat buffer): one per tensor overlap, with weight decay
/// taken from `weightDecay(role)`. Ranges in the result are relative to `owned.lowerBound`.
public func makeSegments(table: ParameterTable, owned: Range<Int>, weightDecay: (TensorRole) -> Float,
                         lrScale: (TensorRole) -> Float = { _ in 1 }) -> [ParamSegment] {
    table.entries(overlapping: owned).map { entry, overlap in
        ParamSegment(range: (overlap.lowerBound - owned.lowerBound)..<(overlap.upperBound - owned.lowerBound),
                     tensor: entry, tensorIndex: table.entries.firstIndex(of: entry)!,
                     weightDecay: weightDecay(entry.role), lrScale: lrScale(entry.role))
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

/// Biases and norm gains get no weight decay and trust ratio 1 in LARS/LAMB when `enabled` (the usual practice,
/// You et al. 2017/2019).
public func excludedFromTrustRatio(_ segment: ParamSegment, enabled: Bool) -> Bool {
    enabled && (segment.tensor.role == .bias || segment.tensor.role == .norm)
}

/// Optimizers whose update needs norms over whole tensors (LARS, LAMB): the update is split in two phases so a
/// sharded owner of a slice can contribute partial sums and receive exact totals (one all-reduce of a vector of
/// length 2 × tensors) without the optimizer itself communicating.
///
/// Norm vectors have layout [2·i] = Σθ², [2·i + 1] = Σd² for table entry i (`ParamSegment.tensorIndex`), where d is
/// the optimizer's pre-trust-ratio direction.
public protocol TensorNormOptimizer: Optimizer {
    /// Phase 1: advances internal state (moments) and computes the direction for the owned range (kept in the
    /// optimizer's scratch), adding each segment's partial sums of squares into `partialSquares`
    /// (length 2 × table entries, zeroed by the caller).
    func prepare(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                 segments: [ParamSegment], context: StepContext, partialSquares: UnsafeMutableBufferPointer<Double>)
    /// Phase 2: applies the direction scaled by each tensor's trust ratio, computed from `totalSquares`
    /// (the partial sums added over every owner of each tensor).
    func apply(params: UnsafeMutableBufferPointer<Float>, segments: [ParamSegment], context: StepContext,
               totalSquares: UnsafeBufferPointer<Double>)
}

extension TensorNormOptimizer {
    /// The plain update: the owned range holds whole tensors, so local sums are the totals.
    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext) {
        updateWholeTensors(params: params, grads: grads, segments: segments, context: context,
                           tensorCount: (segments.map(\.tensorIndex).max() ?? -1) + 1)
    }

    /// Unsharded use: the owned range holds whole tensors, so the partial sums are already the totals.
    /// `tensorCount` is the number of entries in the parameter table.
    public func updateWholeTensors(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                                   segments: [ParamSegment], context: StepContext, tensorCount: Int) {
        var squares = [Double](repeating: 0, count: 2 * tensorCount)
        squares.withUnsafeMutableBufferPointer {
            prepare(params: params, grads: grads, segments: segments, context: context, partialSquares: $0)
        }
        squares.withUnsafeBufferPointer {
            apply(params: params, segments: segments, context: context, totalSquares: $0)
        }
    }
}

// MARK: - Checkpoint state

/// One piece of optimizer state that belongs to one tensor: the unit checkpoints store, so state can be re-sliced
/// for another world size or ZeRO stage. Names are generic (`stateNames`), never optimizer-specific code.
public struct TensorState: Sendable, Equatable {
    public var stateName: String
    public var tensorName: String
    /// For element-aligned state: the element of the tensor where `values` start. For per-tensor blobs: 0.
    public var offset: Int
    public var values: [Float]
    public init(stateName: String, tensorName: String, offset: Int, values: [Float]) {
        self.stateName = stateName
        self.tensorName = tensorName
        self.offset = offset
        self.values = values
    }
}

/// Where a restored optimizer reads its state from (a checkpoint assembled from any number of old shards).
public protocol StateSource {
    /// `count` values of `stateName` for `tensorName` starting at element `offset` of the tensor.
    func values(state stateName: String, tensor tensorName: String, offset: Int, count: Int) throws -> [Float]
}

extension Optimizer {
    /// Element-aligned export (every state buffer has one value per owned element): one record per state buffer
    /// and segment. `ownedStart` is the absolute index of the optimizer's first element.
    public func exportElementState(segments: [ParamSegment], ownedStart: Int) -> [TensorState] {
        precondition(state.allSatisfy { $0.count == count }, "\(name): state is not element-aligned; override exportState")
        var out: [TensorState] = []
        for (k, buffer) in state.enumerated() {
            for seg in segments {
                out.append(TensorState(stateName: stateNames[k], tensorName: seg.tensor.name,
                                       offset: ownedStart + seg.range.lowerBound - seg.tensor.offset,
                                       values: Array(buffer.slice(seg.range))))
            }
        }
        return out
    }

    /// Element-aligned import, the inverse of `exportElementState`.
    public func importElementState(segments: [ParamSegment], ownedStart: Int, from source: StateSource) throws {
        for (k, buffer) in state.enumerated() {
            for seg in segments {
                let values = try source.values(state: stateNames[k], tensor: seg.tensor.name,
                                               offset: ownedStart + seg.range.lowerBound - seg.tensor.offset,
                                               count: seg.range.count)
                let dst = buffer.slice(seg.range)
                for i in 0..<values.count { dst[i] = values[i] }
            }
        }
    }
}

/// Optimizers whose state is not one value per element (Shampoo's per-tensor statistics) export and import it
/// per tensor themselves; everything else uses the element-aligned default.
public protocol TensorKeyedStateOptimizer: Optimizer {
    func exportState(segments: [ParamSegment]) -> [TensorState]
    func importState(segments: [ParamSegment], from source: StateSource) throws
}
