import Tensors

/// One batch as a model sees it: pointers into the data loader's buffers, valid for the duration of a call.
public struct ModelBatch {
    /// Dense features [rows, featureCount] (classifiers), or nil.
    public var features: UnsafePointer<Float>?
    /// Token ids [rows, sequence] (language models), or nil.
    public var tokens: UnsafePointer<Int32>?
    /// Targets: one class per row for classifiers, one token per position for language models.
    public var targets: UnsafePointer<Int32>
    /// Rows (examples or sequences) in the batch.
    public var rows: Int

    public init(features: UnsafePointer<Float>? = nil, tokens: UnsafePointer<Int32>? = nil,
                targets: UnsafePointer<Int32>, rows: Int) {
        self.features = features
        self.tokens = tokens
        self.targets = targets
        self.rows = rows
    }
}

/// Loss statistics of one batch. Sums, not means, so they add across micro-batches and ranks.
public struct BatchResult: Equatable, Sendable {
    public var lossSum: Double
    /// Correct arg-max predictions.
    public var correct: Int
    /// Predictions the loss was summed over (rows for a classifier, rows × positions for a language model).
    public var predictions: Int

    public init(lossSum: Double = 0, correct: Int = 0, predictions: Int = 0) {
        self.lossSum = lossSum
        self.correct = correct
        self.predictions = predictions
    }

    public static func += (a: inout BatchResult, b: BatchResult) {
        a.lossSum += b.lossSum
        a.correct += b.correct
        a.predictions += b.predictions
    }

    public var meanLoss: Double { predictions > 0 ? lossSum / Double(predictions) : .nan }
    public var accuracy: Double { predictions > 0 ? Double(correct) / Double(predictions) : .nan }
}

/// A differentiable model over a flat parameter buffer laid out by `table`.
///
/// The layout may be changed with `adopt(layout:)` (same names and shapes, other offsets): the distributed engine
/// orders tensors so that each optimizer group, and each rank's share of it, is contiguous.
public protocol Model: AnyObject {
    var table: ParameterTable { get }
    /// Switches to another layout of the same tensors (names, shapes and roles must match).
    func adopt(layout: ParameterTable)
    /// Predictions one row contributes to `BatchResult.predictions`.
    var predictionsPerRow: Int { get }
    /// The precision of the model's matrix products (`train.precision`); everything else computes in fp32.
    /// Contract: tensors of role `matrix` or `head` are read only as matrix-product operands (the engine's bf16
    /// weight gather sends them as bf16, since bf16 is all a bf16 GEMM reads of them); other roles may be read
    /// element-wise and are kept in fp32.
    var precision: GEMMPrecision { get set }
    /// Writes initial parameters (deterministic in `seed`).
    func initializeParameters(_ params: UnsafeMutableBufferPointer<Float>, seed: UInt64)
    /// Forward only (evaluation).
    func forward(params: UnsafePointer<Float>, batch: ModelBatch) -> BatchResult
    /// Forward, then backward with `dLoss/dLossSum = lossScale` (pass 1/N to differentiate the mean over N
    /// predictions); gradients are accumulated (+=) into the sink, which hears as each tensor's gradient is final.
    func forwardBackward(params: UnsafePointer<Float>, sink: GradientSink, batch: ModelBatch,
                         lossScale: Float) -> BatchResult

    /// The tensors (names) each layer reads, in forward order: the units ZeRO stage 3 gathers one at a time
    /// (a tensor belongs to exactly one layer). Default: the whole model as one layer, which stage 3 refuses
    /// (it would gather everything at once).
    var layers: [[String]] { get }
    /// The layers backward reads parameters of, in the order it acquires them (what stage 3 prefetches in
    /// backward). Default: every layer, last first.
    var layersReadInBackward: [Int] { get }
    /// `forward` reading parameters from `params` layer by layer (acquire before the first read, release after
    /// the last). Default: acquire layer 0, which must be the whole model, and read it as a flat buffer.
    func forward(params: ParameterSource, batch: ModelBatch) -> BatchResult
    /// `forwardBackward` reading parameters layer by layer: forward acquires 0, 1, … in `.forward`, backward
    /// acquires in reverse in `.backward`. Default as `forward(params:batch:)`.
    func forwardBackward(params: ParameterSource, sink: GradientSink, batch: ModelBatch, lossScale: Float) -> BatchResult
}

extension Model {
    public var layers: [[String]] { [table.entries.map(\.name)] }
    public var layersReadInBackward: [Int] { Array(layers.indices.reversed()) }

    public func forward(params: ParameterSource, batch: ModelBatch) -> BatchResult {
        withWholeModel(params) { forward(params: $0, batch: batch) }
    }

    public func forwardBackward(params: ParameterSource, sink: GradientSink, batch: ModelBatch, lossScale: Float) -> BatchResult {
        withWholeModel(params) { forwardBackward(params: $0, sink: sink, batch: batch, lossScale: lossScale) }
    }

    /// The default for a model that reads one flat buffer: layer 0 acquired for the whole call.
    private func withWholeModel(_ params: ParameterSource, _ body: (UnsafePointer<Float>) -> BatchResult) -> BatchResult {
        precondition(layers.count == 1, "a model with several layers implements the ParameterSource methods itself")
        params.acquire(0, pass: .forward)
        defer { params.release(0, pass: .forward) }
        guard let base = params.flatBase else { preconditionFailure("this parameter source does not hold the model in table layout") }
        return body(base)
    }
}

extension Model {
    /// Backward into a flat gradient buffer laid out by `table`.
    public func forwardBackward(params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>, batch: ModelBatch,
                                lossScale: Float) -> BatchResult {
        forwardBackward(params: params, sink: FlatGradientSink(base: grads, table: table), batch: batch, lossScale: lossScale)
    }
}
