import Tensors

public enum Activation: String, CaseIterable, Sendable {
    case relu, gelu
}

/// A multilayer perceptron classifier: widths [I, H1, …, Hk, C], Linear → activation between layers, softmax
/// cross-entropy on the last. Parameters: `layerL.weight` [out, in] and `layerL.bias` [out] for each layer.
///
/// Workspace (activations) is owned by the model and grows to the largest batch seen; a model instance is not
/// thread-safe.
public final class MLP: Model {
    public let widths: [Int]
    public let activation: Activation
    public private(set) var table: ParameterTable
    public var predictionsPerRow: Int { 1 }
    /// GEMM precision of the linear layers (forward, input and weight gradients); activations, softmax and
    /// cross-entropy stay fp32.
    public var precision: GEMMPrecision = .fp32
    // Per layer: the table entries (offsets into the flat buffer) and their indices in the table.
    private var weights: [TensorEntry] = []
    private var biases: [TensorEntry] = []
    private var weightIndex: [Int] = []
    private var biasIndex: [Int] = []

    // Workspace for a batch of up to `capacity` rows. Activations are feature-major (LinearFeatureMajor.swift: the
    // GEMMs run faster with the batch as the narrow dimension): preActivations[l], outputs[l], dOutputs[l] are
    // [widths[l+1], B] for layer l. The logits are transposed to [B, C] for the softmax and back for backward.
    private var capacity = 0
    private var preActivations: [FloatBuffer] = []
    private var outputs: [FloatBuffer] = []
    private var dOutputs: [FloatBuffer] = []
    // bf16 only: what a product reads twice, rounded once — each weight (forward, then the input gradient), each
    // layer's input (forward, then the weight gradient: inputH is the batch [B, I], outputsH[l] layer l's output)
    // and the gradient being multiplied (input and weight gradients).
    private var weightsH: [BF16Buffer] = []
    private var inputH = BF16Buffer(count: 0)
    private var outputsH: [BF16Buffer] = []
    private var dyH = BF16Buffer(count: 0)
    private var logits = FloatBuffer(count: 0)
    private var dLogits = FloatBuffer(count: 0)
    private var probs = FloatBuffer(count: 0)

    public init(widths: [Int], activation: Activation) {
        precondition(widths.count >= 2 && widths.allSatisfy { $0 > 0 }, "MLP needs at least input and output widths")
        self.widths = widths
        self.activation = activation
        var t = ParameterTable()
        for l in 0..<(widths.count - 1) {
            let last = l == widths.count - 2
            t.add("layer\(l).weight", shape: [widths[l + 1], widths[l]], role: last ? .head : .matrix)
            t.add("layer\(l).bias", shape: [widths[l + 1]], role: .bias)
        }
        table = t
        adopt(layout: t)
    }

    public func adopt(layout: ParameterTable) {
        precondition(layout.sameTensors(as: table), "layout does not hold this MLP's tensors")
        table = layout
        let index = Dictionary(uniqueKeysWithValues: layout.entries.enumerated().map { ($1.name, $0) })
        weightIndex = (0..<layerCount).map { index["layer\($0).weight"]! }
        biasIndex = (0..<layerCount).map { index["layer\($0).bias"]! }
        weights = weightIndex.map { layout.entries[$0] }
        biases = biasIndex.map { layout.entries[$0] }
    }

    public var layerCount: Int { widths.count - 1 }
    public var classes: Int { widths.last! }

    /// PyTorch's nn.Linear default: weight and bias ~ U(−1/√in, 1/√in).
    public func initializeParameters(_ params: UnsafeMutableBufferPointer<Float>, seed: UInt64) {
        var rng = SplitMix64(seed: seed, stream: 0x1417)
        for l in 0..<layerCount {
            let bound = 1 / Float(widths[l]).squareRoot()
            for i in weights[l].range { params[i] = rng.uniform(-bound, bound) }
            for i in biases[l].range { params[i] = rng.uniform(-bound, bound) }
        }
    }

    private func reserve(rows: Int) {
        let bf = precision == .bf16
        if bf && weightsH.isEmpty {
            weightsH = weights.map { BF16Buffer(count: $0.count) }
            capacity = 0  // the activations' bf16 copies too
        }
        guard rows > capacity else { return }
        capacity = rows
        inputH = BF16Buffer(count: bf ? rows * widths[0] : 0)
        outputsH = (0..<layerCount).map { BF16Buffer(count: bf ? rows * widths[$0 + 1] : 0) }
        dyH = BF16Buffer(count: bf ? rows * (widths.dropFirst().max() ?? 0) : 0)
        preActivations = (0..<layerCount).map { FloatBuffer(count: rows * widths[$0 + 1]) }
        outputs = (0..<layerCount).map { FloatBuffer(count: rows * widths[$0 + 1]) }
        dOutputs = (0..<layerCount).map { FloatBuffer(count: rows * widths[$0 + 1]) }
        logits = FloatBuffer(count: rows * classes)
        dLogits = FloatBuffer(count: rows * classes)
        probs = FloatBuffer(count: rows * classes)
    }

    /// Layer l reads `layerL.weight` and `layerL.bias`.
    public var layers: [[String]] { (0..<layerCount).map { ["layer\($0).weight", "layer\($0).bias"] } }
    /// Backward reads a layer's weight only for the gradient of its input, which layer 0 has no use for.
    public var layersReadInBackward: [Int] { Array((1..<layerCount).reversed()) }

    public func forward(params: UnsafePointer<Float>, batch: ModelBatch) -> BatchResult {
        forward(params: FlatParameters(base: params, table: table), batch: batch)
    }

    public func forward(params: ParameterSource, batch: ModelBatch) -> BatchResult {
        reserve(rows: batch.rows)
        return runForward(params: params, batch: batch, keepLastLayer: false)
    }

    /// Forward over the layers, each acquired from `params` just before its GEMM and released after it; the last
    /// layer stays acquired when backward follows (it is the first backward reads).
    private func runForward(params: ParameterSource, batch: ModelBatch, keepLastLayer: Bool) -> BatchResult {
        guard let features = batch.features else { preconditionFailure("MLP needs dense features") }
        let rows = batch.rows
        var input = features  // [B, I] for the first layer, then feature-major [I, B]
        for l in 0..<layerCount {
            let z = preActivations[l].pointer
            params.acquire(l, pass: .forward)
            let x = GEMMOperand.rounding(input, into: (l == 0 ? inputH : outputsH[l - 1]).pointer,
                                         count: rows * widths[l], in: precision)
            let weight = GEMMOperand.rounding(params.tensor(weightIndex[l]), into: weightCopy(l),
                                              count: weights[l].count, in: precision)
            linearForwardFeatureMajor(z, x, inputIsBatchMajor: l == 0, weight, params.tensor(biasIndex[l]),
                                      batch: rows, inFeatures: widths[l], outFeatures: widths[l + 1], precision: precision)
            if l < layerCount - 1 || !keepLastLayer { params.release(l, pass: .forward) }
            if l < layerCount - 1 {
                let n = rows * widths[l + 1]
                switch activation {
                case .relu: reluForward(outputs[l].pointer, z, count: n)
                case .gelu: geluForward(outputs[l].pointer, z, count: n)
                }
                input = UnsafePointer(outputs[l].pointer)
            }
        }
        var correct = 0
        transpose(preActivations[layerCount - 1].pointer, rows: classes, cols: rows, into: logits.pointer)
        let loss = softmaxCrossEntropyForward(probs.pointer, logits.pointer, targets: batch.targets,
                                              batch: rows, classes: classes, correct: &correct)
        return BatchResult(lossSum: loss, correct: correct, predictions: rows)
    }

    /// The arg-max class of each of the first `rows` rows of the last forward pass (ties: the lower class).
    public func lastPredictions(rows: Int) -> [Int] {
        precondition(rows <= capacity, "only \(capacity) rows were computed")
        return (0..<rows).map { r in
            var best = 0
            for c in 1..<classes where logits[r * classes + c] > logits[r * classes + best] { best = c }
            return best
        }
    }

    public func forwardBackward(params: UnsafePointer<Float>, sink: GradientSink, batch: ModelBatch,
                                lossScale: Float) -> BatchResult {
        forwardBackward(params: FlatParameters(base: params, table: table), sink: sink, batch: batch, lossScale: lossScale)
    }

    public func forwardBackward(params: ParameterSource, sink: GradientSink, batch: ModelBatch,
                                lossScale: Float) -> BatchResult {
        runForwardBackward(params: params, sink: sink, dFeatures: nil, batch: batch, lossScale: lossScale)
    }

    /// Forward, then backward to the input only: dFeatures[B, I] += lossScale · ∂(loss sum)/∂features, in the
    /// batch-major layout of `batch.features`; no parameter gradient is formed (what an attack needs per step).
    public func inputGradient(params: UnsafePointer<Float>, batch: ModelBatch, dFeatures: UnsafeMutablePointer<Float>,
                              lossScale: Float) -> BatchResult {
        runForwardBackward(params: FlatParameters(base: params, table: table), sink: nil, dFeatures: dFeatures, batch: batch,
                           lossScale: lossScale)
    }

    /// The backward pass with either output: parameter gradients into `sink`, and/or the input gradient into
    /// `dFeatures` ([B, I], accumulated).
    private func runForwardBackward(params: ParameterSource, sink: GradientSink?, dFeatures: UnsafeMutablePointer<Float>?,
                                    batch: ModelBatch, lossScale: Float) -> BatchResult {
        reserve(rows: batch.rows)
        let result = runForward(params: params, batch: batch, keepLastLayer: true)
        let rows = batch.rows
        // dOutputs[l] ([O, B]) holds dLoss/d(preActivation of layer l) once its activation backward has run.
        dLogits.slice(0..<(rows * classes)).update(repeating: 0)
        softmaxCrossEntropyBackward(dLogits.pointer, probs.pointer, targets: batch.targets, batch: rows, classes: classes,
                                    scale: lossScale)
        transpose(dLogits.pointer, rows: rows, cols: classes, into: dOutputs[layerCount - 1].pointer)
        for l in stride(from: layerCount - 1, through: 0, by: -1) {
            // The first layer reads the batch as it arrives, [B, I]; the others their input feature-major, [I, B].
            let input: UnsafePointer<Float> = l == 0 ? batch.features! : UnsafePointer(outputs[l - 1].pointer)
            let inputOperand = GEMMOperand.stored(input, (l == 0 ? inputH : outputsH[l - 1]).pointer, in: precision)
            // d(output of layer l−1) goes to a scratch buffer the GEMM overwrites (β = 0: no zeroing pass); the
            // input layer's gradient is formed only when asked for, batch-major and accumulated.
            let n = rows * widths[l]
            let dInput: UnsafeMutablePointer<Float>? = l > 0 ? scratch(n) : nil
            let w = weightIndex[l], b = biasIndex[l]
            let dy = UnsafePointer(dOutputs[l].pointer), inF = widths[l], outF = widths[l + 1]
            let dyOperand = GEMMOperand.rounding(dy, into: dyH.pointer, count: rows * outF, in: precision)
            // Only the input gradient reads the weights (the parameter gradients read activations alone), so training
            // never reads layer 0 in backward (`layersReadInBackward`).
            let readsWeights = dInput != nil || dFeatures != nil
            if readsWeights { params.acquire(l, pass: .backward) }
            if let dInput {
                let weight = GEMMOperand.stored(params.tensor(w), weightCopy(l), in: precision)
                linearBackwardInputFeatureMajor(dInput, dyOperand, weight, batch: rows, inFeatures: inF,
                                                outFeatures: outF, precision: precision)
            } else if let dFeatures {
                linearBackwardInputToBatchMajor(dFeatures, dy, params.tensor(w), batch: rows, inFeatures: inF,
                                                outFeatures: outF)
            }
            if readsWeights { params.release(l, pass: .backward) }
            // Parameter gradients in the blocks the sink asks for; each block is handed over as soon as it is final.
            if let sink {
                for block in sink.rowBlocks(b) {
                    linearBackwardParameterRowsFeatureMajor(nil, sink.gradient(b, rows: block), dy, input,
                                                            inputIsBatchMajor: l == 0, rows: block, batch: rows, inFeatures: inF,
                                                            precision: precision)
                    sink.finished(b, rows: block)
                }
                for block in sink.rowBlocks(w) {
                    linearBackwardWeightRowsFeatureMajor(sink.gradient(w, rows: block), dyOperand, inputOperand,
                                                         inputIsBatchMajor: l == 0, rows: block, batch: rows,
                                                         inFeatures: inF, precision: precision)
                    sink.finished(w, rows: block)
                }
            }
            if let dInput {
                // Through layer l−1's activation into d(pre-activation of layer l−1).
                let dPre = dOutputs[l - 1].pointer
                dPre.update(repeating: 0, count: n)
                switch activation {
                case .relu: reluBackward(dPre, dInput, preActivations[l - 1].pointer, count: n)
                case .gelu: geluBackward(dPre, dInput, preActivations[l - 1].pointer, count: n)
                }
            }
        }
        return result
    }

    /// Layer l's bf16 weight copy (nil until a bf16 batch has made them).
    private func weightCopy(_ l: Int) -> UnsafeMutablePointer<UInt16>? { weightsH.isEmpty ? nil : weightsH[l].pointer }

    // One scratch buffer for d(activation output), grown to the widest hidden layer × batch.
    private var scratchBuffer = FloatBuffer(count: 0)
    private func scratch(_ n: Int) -> UnsafeMutablePointer<Float> {
        if scratchBuffer.count < n { scratchBuffer = FloatBuffer(count: n) }
        return scratchBuffer.pointer
    }
}
