import Tensors

/// A residual network for small images (He et al. 2016, the CIFAR variant): a 3×3 stem, three stages of `depth` basic
/// blocks at `width`, 2·`width`, 4·`width` channels (the second and third stages start with stride 2 and a 1×1
/// projection shortcut), global average pooling and a linear head; batch norm after every convolution.
///
/// Parameters, in forward order and grouped by block (stem, block0, block1, …, head) so each group is a natural
/// ZeRO stage-3 layer: `<unit>.conv.weight` [O, C·K·K] (role matrix: Muon/LARS/LAMB see the matrix it multiplies),
/// `<unit>.bn.weight` and `<unit>.bn.bias` [O] (role norm), `head.weight` [classes, 4·width] (head), `head.bias`.
///
/// Batch norm uses the batch's statistics in `forwardBackward` and the running statistics in `forward`
/// (evaluation). With `statisticsReducer` set (`model.sync_batchnorm`), the batch statistics are those of the whole
/// global micro-batch over all ranks. The running statistics are model state, not parameters: they are not in the
/// parameter table, so checkpoints do not hold them (a resumed run re-estimates them during its first steps).
///
/// Workspace is sized once per batch size (the largest training micro-batch); evaluation runs in chunks of that
/// size. Not thread-safe.
/// A model with batch statistics that may be shared across ranks (synchronised batch norm): the trainer sets
/// `statisticsReducer` from the Distributed engine when `model.sync_batchnorm` is true.
public protocol BatchStatisticsModel: Model {
    var statisticsReducer: StatisticsReducer? { get set }
}

public final class ResNet: BatchStatisticsModel {
    public let imageChannels: Int, imageSide: Int, classes: Int
    public let depth: Int, width: Int
    public private(set) var table: ParameterTable
    public var predictionsPerRow: Int { 1 }
    public var precision: GEMMPrecision = .fp32
    /// Sums batch-norm statistics over ranks (synchronised batch norm); nil: each rank's own micro-batch.
    public var statisticsReducer: StatisticsReducer?

    /// A convolution followed by batch norm.
    final class Unit {
        let name: String
        let shape: ConvShape
        let bn: BatchNormState
        var weight = 0, gamma = 0, beta = 0  // table indices
        var conv = FloatBuffer(count: 0), out = FloatBuffer(count: 0)  // [N, O, P, Q] before and after batch norm
        init(name: String, _ shape: ConvShape) {
            self.name = name
            self.shape = shape
            bn = BatchNormState(channels: shape.outChannels)
        }
        var names: [String] { ["\(name).conv.weight", "\(name).bn.weight", "\(name).bn.bias"] }
        var pixels: Int { shape.outHeight * shape.outWidth }
    }

    /// conv1 → bn → relu → conv2 → bn, plus the shortcut (identity or a 1×1 unit), → relu.
    final class Block {
        let conv1: Unit, conv2: Unit, projection: Unit?
        var hidden = FloatBuffer(count: 0)  // relu(conv1's output) [N, O, P, Q]
        var sum = FloatBuffer(count: 0)     // residual sum before the last relu
        var out = FloatBuffer(count: 0)
        init(conv1: Unit, conv2: Unit, projection: Unit?) {
            self.conv1 = conv1
            self.conv2 = conv2
            self.projection = projection
        }
        var units: [Unit] { [conv1, conv2] + (projection.map { [$0] } ?? []) }
    }

    let stem: Unit
    let blocks: [Block]
    private var stemOut = FloatBuffer(count: 0)
    private var headEntry = (weight: 0, bias: 0)
    private var capacity = 0
    private var pooled = FloatBuffer(count: 0), logits = FloatBuffer(count: 0), probs = FloatBuffer(count: 0)
    private var dLogits = FloatBuffer(count: 0), dPooled = FloatBuffer(count: 0)
    // Scratch: one image's columns and their gradient; activation-sized gradients; one tensor's gradient.
    private var cols = FloatBuffer(count: 0), dcols = FloatBuffer(count: 0)
    // Backward of a block keeps four live: d(hidden), d(block input), d(residual sum), d(conv2 before its norm).
    private var gradA = FloatBuffer(count: 0), gradB = FloatBuffer(count: 0), gradC = FloatBuffer(count: 0)
    private var gradD = FloatBuffer(count: 0)
    private var tensorGradient = FloatBuffer(count: 0)

    public init(imageChannels: Int, imageSide: Int, classes: Int, depth: Int, width: Int) {
        precondition(depth >= 1 && width >= 1 && imageSide >= 4 && classes >= 2, "invalid ResNet shape")
        self.imageChannels = imageChannels
        self.imageSide = imageSide
        self.classes = classes
        self.depth = depth
        self.width = width
        stem = Unit(name: "stem", ConvShape(inChannels: imageChannels, height: imageSide, width: imageSide, outChannels: width,
                                            kernel: 3, padding: 1))
        var blocks: [Block] = []
        var channels = width, side = imageSide
        for stage in 0..<3 {
            let outChannels = width << stage
            for b in 0..<depth {
                let stride = stage > 0 && b == 0 ? 2 : 1
                let name = "block\(blocks.count)"
                let c1 = Unit(name: "\(name).conv1", ConvShape(inChannels: channels, height: side, width: side,
                                                                outChannels: outChannels, kernel: 3, stride: stride, padding: 1))
                let outSide = c1.shape.outHeight
                let c2 = Unit(name: "\(name).conv2", ConvShape(inChannels: outChannels, height: outSide, width: outSide,
                                                                outChannels: outChannels, kernel: 3, padding: 1))
                let projection = stride != 1 || channels != outChannels
                    ? Unit(name: "\(name).shortcut", ConvShape(inChannels: channels, height: side, width: side,
                                                               outChannels: outChannels, kernel: 1, stride: stride))
                    : nil
                blocks.append(Block(conv1: c1, conv2: c2, projection: projection))
                channels = outChannels
                side = outSide
            }
        }
        self.blocks = blocks
        var t = ParameterTable()
        for unit in [stem] + blocks.flatMap(\.units) {
            t.add("\(unit.name).conv.weight", shape: unit.shape.weightShape, role: .matrix)
            t.add("\(unit.name).bn.weight", shape: [unit.shape.outChannels], role: .norm)
            t.add("\(unit.name).bn.bias", shape: [unit.shape.outChannels], role: .norm)
        }
        t.add("head.weight", shape: [classes, width << 2], role: .head)
        t.add("head.bias", shape: [classes], role: .bias)
        table = t
        adopt(layout: t)
    }

    /// Every batch-norm layer's state (statistics of the last training forward, running statistics), in forward order.
    public var batchNormStates: [BatchNormState] { allUnits.map(\.bn) }

    /// One line for logs and checkpoints.
    public var summary: String {
        "ResNet \(imageChannels)×\(imageSide)×\(imageSide) depth \(depth) width \(width) (\(blocks.count) blocks, \(table.count) parameters)"
    }

    /// Channels after the last stage: the head's input width.
    public var featureWidth: Int { width << 2 }
    private var allUnits: [Unit] { [stem] + blocks.flatMap(\.units) }
    private var lastOutput: FloatBuffer { blocks.last!.out }
    private var lastPixels: Int { blocks.last!.conv2.pixels }

    /// The tensors of each block in forward order: the stem, each residual block, the head.
    public var tensorGroups: [[String]] {
        [stem.names] + blocks.map { $0.units.flatMap(\.names) } + [["head.weight", "head.bias"]]
    }
    /// Layers (the units ZeRO stage 3 gathers): 0 the stem, 1…blocks the residual blocks, then the head.
    public var layers: [[String]] { tensorGroups }
    private var headLayer: Int { blocks.count + 1 }

    public func adopt(layout: ParameterTable) {
        precondition(layout.sameTensors(as: table), "layout does not hold this ResNet's tensors")
        table = layout
        let index = Dictionary(uniqueKeysWithValues: layout.entries.enumerated().map { ($1.name, $0) })
        for unit in allUnits {
            unit.weight = index["\(unit.name).conv.weight"]!
            unit.gamma = index["\(unit.name).bn.weight"]!
            unit.beta = index["\(unit.name).bn.bias"]!
        }
        headEntry = (index["head.weight"]!, index["head.bias"]!)
    }

    /// Kaiming-normal kernels (std √(2/fan-in), for ReLU), γ = 1, β = 0, the head as PyTorch's nn.Linear.
    public func initializeParameters(_ params: UnsafeMutableBufferPointer<Float>, seed: UInt64) {
        var rng = SplitMix64(seed: seed, stream: 0x5e5)
        for unit in allUnits {
            let std = (2 / Double(unit.shape.patch)).squareRoot()
            for i in table.entries[unit.weight].range { params[i] = Float(rng.normal() * std) }
            for i in table.entries[unit.gamma].range { params[i] = 1 }
            for i in table.entries[unit.beta].range { params[i] = 0 }
        }
        let bound = 1 / Float(featureWidth).squareRoot()
        for i in table.entries[headEntry.weight].range { params[i] = rng.uniform(-bound, bound) }
        for i in table.entries[headEntry.bias].range { params[i] = rng.uniform(-bound, bound) }
        for unit in allUnits { unit.bn.resetRunningStatistics() }
    }

    private func reserve(rows: Int) {
        guard rows > capacity else { return }
        capacity = rows
        var largest = 0, largestColumns = 0
        for unit in allUnits {
            unit.conv = FloatBuffer(count: rows * unit.shape.outputCount)
            unit.out = FloatBuffer(count: rows * unit.shape.outputCount)
            largest = max(largest, rows * unit.shape.outputCount, rows * unit.shape.inputCount)
            largestColumns = max(largestColumns, unit.shape.columnCount)
        }
        stemOut = FloatBuffer(count: rows * stem.shape.outputCount)
        for block in blocks {
            let n = rows * block.conv2.shape.outputCount
            block.hidden = FloatBuffer(count: rows * block.conv1.shape.outputCount)
            block.sum = FloatBuffer(count: n)
            block.out = FloatBuffer(count: n)
        }
        pooled = FloatBuffer(count: rows * featureWidth)
        dPooled = FloatBuffer(count: rows * featureWidth)
        logits = FloatBuffer(count: rows * classes)
        probs = FloatBuffer(count: rows * classes)
        dLogits = FloatBuffer(count: rows * classes)
        cols = FloatBuffer(count: largestColumns)
        dcols = FloatBuffer(count: largestColumns)
        gradA = FloatBuffer(count: largest)
        gradB = FloatBuffer(count: largest)
        gradC = FloatBuffer(count: largest)
        gradD = FloatBuffer(count: largest)
        tensorGradient = FloatBuffer(count: table.entries.map(\.count).max()!)
    }

    // MARK: Forward

    private func unitForward(_ unit: Unit, _ x: UnsafePointer<Float>, _ p: ParameterSource, rows: Int, training: Bool) {
        let w = p.tensor(unit.weight), g = p.tensor(unit.gamma), b = p.tensor(unit.beta)
        conv2dForward(unit.conv.pointer, x, w, nil, cols: cols.pointer, images: rows, unit.shape, precision: precision)
        if training {
            unit.bn.forwardTraining(unit.out.pointer, unit.conv.pointer, g, b, images: rows, pixels: unit.pixels,
                                    reducer: statisticsReducer)
        } else {
            unit.bn.forwardEvaluation(unit.out.pointer, unit.conv.pointer, g, b, images: rows, pixels: unit.pixels)
        }
    }

    /// Forward over `rows` images from `x`; leaves probabilities in `probs` and returns the batch's loss sums. Each
    /// layer is acquired from `p` around its kernels (when `acquires`; evaluation acquires the whole model once
    /// around its chunks), and the head stays acquired when `keepHead` (backward reads it first).
    private func runForward(_ p: ParameterSource, _ x: UnsafePointer<Float>, targets: UnsafePointer<Int32>, rows: Int,
                            training: Bool, acquires: Bool = true, keepHead: Bool = false) -> BatchResult {
        if acquires { p.acquire(0, pass: .forward) }
        unitForward(stem, x, p, rows: rows, training: training)
        if acquires { p.release(0, pass: .forward) }
        reluForward(stemOut.pointer, stem.out.pointer, count: rows * stem.shape.outputCount)
        var input = UnsafePointer(stemOut.pointer)
        for (i, block) in blocks.enumerated() {
            if acquires { p.acquire(i + 1, pass: .forward) }
            defer { if acquires { p.release(i + 1, pass: .forward) } }
            unitForward(block.conv1, input, p, rows: rows, training: training)
            reluForward(block.hidden.pointer, block.conv1.out.pointer, count: rows * block.conv1.shape.outputCount)
            unitForward(block.conv2, block.hidden.pointer, p, rows: rows, training: training)
            let n = rows * block.conv2.shape.outputCount
            let shortcut: UnsafePointer<Float>
            if let projection = block.projection {
                unitForward(projection, input, p, rows: rows, training: training)
                shortcut = UnsafePointer(projection.out.pointer)
            } else {
                shortcut = input
            }
            let s = block.sum.pointer, y = block.conv2.out.pointer
            for i in 0..<n { s[i] = y[i] + shortcut[i] }
            reluForward(block.out.pointer, s, count: n)
            input = UnsafePointer(block.out.pointer)
        }
        globalAveragePoolForward(pooled.pointer, input, images: rows, channels: featureWidth, pixels: lastPixels)
        if acquires { p.acquire(headLayer, pass: .forward) }
        linearForward(logits.pointer, pooled.pointer, p.tensor(headEntry.weight), p.tensor(headEntry.bias), batch: rows,
                      inFeatures: featureWidth, outFeatures: classes, precision: precision)
        if acquires && !keepHead { p.release(headLayer, pass: .forward) }
        var correct = 0
        let loss = softmaxCrossEntropyForward(probs.pointer, logits.pointer, targets: targets, batch: rows, classes: classes,
                                              correct: &correct)
        return BatchResult(lossSum: loss, correct: correct, predictions: rows)
    }

    private func features(_ batch: ModelBatch) -> UnsafePointer<Float> {
        guard let f = batch.features else { preconditionFailure("ResNet needs image features") }
        return f
    }

    /// Evaluation: running batch-norm statistics, in chunks of the workspace's size.
    public func forward(params: UnsafePointer<Float>, batch: ModelBatch) -> BatchResult {
        forward(params: FlatParameters(base: params, table: table), batch: batch)
    }

    /// Evaluation acquires every layer once, in forward order, around all its chunks (the chunk count depends on
    /// the batch, so per-chunk gathers would not match between ranks at stage 3; the gathers a pass issues, and their
    /// order, are those of one forward).
    public func forward(params: ParameterSource, batch: ModelBatch) -> BatchResult {
        for l in layers.indices { params.acquire(l, pass: .forward) }
        defer { for l in layers.indices { params.release(l, pass: .forward) } }
        let x = features(batch)
        reserve(rows: capacity > 0 ? 1 : min(batch.rows, 128))
        var total = BatchResult()
        var start = 0
        while start < batch.rows {
            let rows = min(capacity, batch.rows - start)
            total += runForward(params, x + start * stem.shape.inputCount, targets: batch.targets + start, rows: rows,
                                training: false, acquires: false)
            start += rows
        }
        return total
    }

    /// Forward with the batch's statistics, as `forwardBackward` computes it (updates the running statistics), without
    /// backward: the loss finite-difference checks differentiate.
    public func forwardTraining(params: UnsafePointer<Float>, batch: ModelBatch) -> BatchResult {
        reserve(rows: batch.rows)
        return runForward(FlatParameters(base: params, table: table), features(batch), targets: batch.targets,
                          rows: batch.rows, training: true)
    }

    // MARK: Backward

    /// Hands `gradient` (the whole tensor's, computed in scratch) to the sink in the blocks it asks for.
    private func deliver(_ index: Int, _ gradient: UnsafePointer<Float>, sink: GradientSink) {
        let entry = table.entries[index]
        for block in sink.rowBlocks(index) {
            let dst = sink.gradient(index, rows: block), src = gradient + block.lowerBound * entry.blockCols
            for i in 0..<(block.count * entry.blockCols) { dst[i] += src[i] }
            sink.finished(index, rows: block)
        }
    }

    /// Backward through batch norm and the convolution of `unit`: dOut is d(unit.out); dx += d(unit input) when given.
    private func unitBackward(_ unit: Unit, dOut: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                              _ p: ParameterSource, sink: GradientSink, rows: Int, scratch: UnsafeMutablePointer<Float>) {
        let n = rows * unit.shape.outputCount
        let dConv = scratch
        dConv.update(repeating: 0, count: n)
        let gammaEntry = table.entries[unit.gamma], betaEntry = table.entries[unit.beta]
        let dGamma = tensorGradient.pointer, dBeta = tensorGradient.pointer + gammaEntry.count
        dGamma.update(repeating: 0, count: gammaEntry.count + betaEntry.count)
        unit.bn.backward(dConv, dGamma, dBeta, dOut, unit.conv.pointer, p.tensor(unit.gamma), images: rows, pixels: unit.pixels,
                         reducer: statisticsReducer)
        deliver(unit.gamma, dGamma, sink: sink)
        deliver(unit.beta, dBeta, sink: sink)
        let weightEntry = table.entries[unit.weight]
        tensorGradient.pointer.update(repeating: 0, count: weightEntry.count)
        conv2dBackward(dx, tensorGradient.pointer, nil, dConv, x, p.tensor(unit.weight), cols: cols.pointer, dcols: dcols.pointer,
                       images: rows, unit.shape, precision: precision)
        deliver(unit.weight, tensorGradient.pointer, sink: sink)
    }

    public func forwardBackward(params: UnsafePointer<Float>, sink: GradientSink, batch: ModelBatch, lossScale: Float) -> BatchResult {
        forwardBackward(params: FlatParameters(base: params, table: table), sink: sink, batch: batch, lossScale: lossScale)
    }

    public func forwardBackward(params: ParameterSource, sink: GradientSink, batch: ModelBatch, lossScale: Float) -> BatchResult {
        let rows = batch.rows, x = features(batch), p = params
        reserve(rows: rows)
        let result = runForward(p, x, targets: batch.targets, rows: rows, training: true, keepHead: true)
        p.acquire(headLayer, pass: .backward)  // still held from forward
        // Phase 1: the head and the pooling. gradA holds d(current activation) as backward walks down the blocks.
        dLogits.pointer.update(repeating: 0, count: rows * classes)
        softmaxCrossEntropyBackward(dLogits.pointer, probs.pointer, targets: batch.targets, batch: rows, classes: classes,
                                    scale: lossScale)
        let headW = table.entries[headEntry.weight], headB = table.entries[headEntry.bias]
        dPooled.pointer.update(repeating: 0, count: rows * featureWidth)
        let dW = tensorGradient.pointer, dB = tensorGradient.pointer + headW.count
        dW.update(repeating: 0, count: headW.count + headB.count)
        linearBackward(dPooled.pointer, dW, dB, dLogits.pointer, pooled.pointer, p.tensor(headEntry.weight), batch: rows,
                       inFeatures: featureWidth, outFeatures: classes, precision: precision)
        p.release(headLayer, pass: .backward)
        deliver(headEntry.weight, dW, sink: sink)
        deliver(headEntry.bias, dB, sink: sink)
        var dOut = gradA.pointer, dSpare = gradB.pointer
        dOut.update(repeating: 0, count: rows * blocks.last!.conv2.shape.outputCount)
        globalAveragePoolBackward(dOut, dPooled.pointer, images: rows, channels: featureWidth, pixels: lastPixels)
        // Phase 2: the blocks, last first. dOut = d(block.out) → dSpare = d(block input).
        for i in stride(from: blocks.count - 1, through: 0, by: -1) {
            let block = blocks[i]
            p.acquire(i + 1, pass: .backward)
            defer { p.release(i + 1, pass: .backward) }
            let input = i > 0 ? UnsafePointer(blocks[i - 1].out.pointer) : UnsafePointer(stemOut.pointer)
            let n = rows * block.conv2.shape.outputCount
            let dSum = gradC.pointer
            dSum.update(repeating: 0, count: n)
            reluBackward(dSum, dOut, block.sum.pointer, count: n)
            dSpare.update(repeating: 0, count: rows * block.conv1.shape.inputCount)
            if let projection = block.projection {
                unitBackward(projection, dOut: dSum, x: input, dx: dSpare, p, sink: sink, rows: rows, scratch: dOut)
            } else {
                dSpare.update(from: dSum, count: n)  // identity shortcut: same shape
            }
            // conv2: d(hidden) into gradA (d(block.out) is spent), its pre-norm gradient in gradD.
            let hiddenCount = rows * block.conv1.shape.outputCount
            let dHidden = dOut
            dHidden.update(repeating: 0, count: hiddenCount)
            unitBackward(block.conv2, dOut: dSum, x: block.hidden.pointer, dx: dHidden, p, sink: sink, rows: rows,
                         scratch: gradD.pointer)
            // relu of conv1: d(conv1.out) into gradC (dSum is no longer needed).
            let dPre = gradC.pointer
            dPre.update(repeating: 0, count: hiddenCount)
            reluBackward(dPre, dHidden, block.conv1.out.pointer, count: hiddenCount)
            unitBackward(block.conv1, dOut: dPre, x: input, dx: dSpare, p, sink: sink, rows: rows, scratch: dHidden)
            swap(&dOut, &dSpare)
        }
        // Phase 3: the stem (its input needs no gradient).
        let n = rows * stem.shape.outputCount
        let dPre = gradC.pointer
        dPre.update(repeating: 0, count: n)
        reluBackward(dPre, dOut, stem.out.pointer, count: n)
        p.acquire(0, pass: .backward)
        unitBackward(stem, dOut: dPre, x: x, dx: nil, p, sink: sink, rows: rows, scratch: dSpare)
        p.release(0, pass: .backward)
        return result
    }
}
