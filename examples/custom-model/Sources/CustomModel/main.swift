// A two-layer classifier written outside swift-train (forward, backward, parameter table), trained on Fashion-MNIST
// by swift-train's trainer under mpirun with ZeRO stage 1 and Muon on its hidden matrix (AdamW on the rest):
//   launch/mpirun -n 4 examples/custom-model/.build/debug/CustomModel [steps]
// Prints the test accuracy on rank 0 and exits 0 when training lowered the loss.
import Foundation
import SwiftTrainKit

/// y = W2 · relu(W1 · x + b1) + b2, softmax cross-entropy. Dimension letters: B rows, I inputs, H hidden, C classes.
final class TwoLayerNet: Model {
    let inputs: Int, hidden: Int, classes: Int
    private(set) var table: ParameterTable
    var predictionsPerRow: Int { 1 }
    var precision: GEMMPrecision = .fp32
    private var index: [String: Int] = [:]
    // Workspace sized once for the largest batch seen: pre-activation and activation [B, H], logits/probs [B, C].
    private var capacity = 0
    private var pre = FloatBuffer(count: 0), act = FloatBuffer(count: 0), dAct = FloatBuffer(count: 0), dPre = FloatBuffer(count: 0)
    private var logits = FloatBuffer(count: 0), probs = FloatBuffer(count: 0), dLogits = FloatBuffer(count: 0)
    private var scratch = FloatBuffer(count: 0)  // one layer's weight and bias gradients before they go to the sink

    init(inputs: Int, hidden: Int, classes: Int) {
        self.inputs = inputs
        self.hidden = hidden
        self.classes = classes
        // Roles route optimizers: `matrix` to Muon here, `head` and `bias` to AdamW (the config's groups.*).
        var t = ParameterTable()
        t.add("fc1.weight", shape: [hidden, inputs], role: .matrix)
        t.add("fc1.bias", shape: [hidden], role: .bias)
        t.add("fc2.weight", shape: [classes, hidden], role: .head)
        t.add("fc2.bias", shape: [classes], role: .bias)
        table = t
        adopt(layout: t)
    }

    func adopt(layout: ParameterTable) {
        precondition(layout.sameTensors(as: table))
        table = layout
        index = Dictionary(uniqueKeysWithValues: layout.entries.enumerated().map { ($1.name, $0) })
    }

    private func p(_ params: UnsafePointer<Float>, _ name: String) -> UnsafePointer<Float> { params + table.entries[index[name]!].offset }

    func initializeParameters(_ params: UnsafeMutableBufferPointer<Float>, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for e in table.entries {
            let bound = 1 / Float(e.shape.count == 2 ? e.shape[1] : hidden).squareRoot()
            for i in e.range { params[i] = rng.uniform(-bound, bound) }
        }
    }

    private func reserve(_ rows: Int) {
        guard rows > capacity else { return }
        capacity = rows
        (pre, act, dAct, dPre) = (FloatBuffer(count: rows * hidden), FloatBuffer(count: rows * hidden),
                                  FloatBuffer(count: rows * hidden), FloatBuffer(count: rows * hidden))
        (logits, probs, dLogits) = (FloatBuffer(count: rows * classes), FloatBuffer(count: rows * classes), FloatBuffer(count: rows * classes))
        scratch = FloatBuffer(count: table.count)
    }

    func forward(params: UnsafePointer<Float>, batch: ModelBatch) -> BatchResult {
        reserve(batch.rows)
        let x = batch.features!, rows = batch.rows
        linearForward(pre.pointer, x, p(params, "fc1.weight"), p(params, "fc1.bias"), batch: rows, inFeatures: inputs, outFeatures: hidden)
        reluForward(act.pointer, pre.pointer, count: rows * hidden)
        linearForward(logits.pointer, act.pointer, p(params, "fc2.weight"), p(params, "fc2.bias"), batch: rows, inFeatures: hidden,
                      outFeatures: classes)
        var correct = 0
        let loss = softmaxCrossEntropyForward(probs.pointer, logits.pointer, targets: batch.targets, batch: rows, classes: classes,
                                              correct: &correct)
        return BatchResult(lossSum: loss, correct: correct, predictions: rows)
    }

    /// Hands a whole tensor's gradient (`gradient`) to the sink in the row blocks it asks for (ZeRO stage 2 splits
    /// large tensors into blocks).
    private func deliver(_ name: String, _ gradient: UnsafePointer<Float>, sink: GradientSink) {
        let i = index[name]!, e = table.entries[i]
        for block in sink.rowBlocks(i) {
            let dst = sink.gradient(i, rows: block), src = gradient + block.lowerBound * e.blockCols
            for j in 0..<(block.count * e.blockCols) { dst[j] += src[j] }
            sink.finished(i, rows: block)
        }
    }

    func forwardBackward(params: UnsafePointer<Float>, sink: GradientSink, batch: ModelBatch, lossScale: Float) -> BatchResult {
        let result = forward(params: params, batch: batch)
        let x = batch.features!, rows = batch.rows
        dLogits.pointer.update(repeating: 0, count: rows * classes)
        softmaxCrossEntropyBackward(dLogits.pointer, probs.pointer, targets: batch.targets, batch: rows, classes: classes, scale: lossScale)
        // Layer 2, then layer 1: each parameter gradient goes to the sink as soon as it is final (the engine overlaps
        // its communication with the rest of backward). Kernels accumulate, so the scratch is zeroed first.
        let dW = scratch.pointer
        dW.update(repeating: 0, count: classes * hidden + classes)
        dAct.pointer.update(repeating: 0, count: rows * hidden)
        linearBackward(dAct.pointer, dW, dW + classes * hidden, dLogits.pointer, act.pointer, p(params, "fc2.weight"),
                       batch: rows, inFeatures: hidden, outFeatures: classes)
        deliver("fc2.weight", dW, sink: sink)
        deliver("fc2.bias", dW + classes * hidden, sink: sink)
        dPre.pointer.update(repeating: 0, count: rows * hidden)
        reluBackward(dPre.pointer, dAct.pointer, pre.pointer, count: rows * hidden)
        dW.update(repeating: 0, count: hidden * inputs + hidden)
        linearBackward(nil, dW, dW + hidden * inputs, dPre.pointer, x, p(params, "fc1.weight"), batch: rows, inFeatures: inputs,
                       outFeatures: hidden)
        deliver("fc1.weight", dW, sink: sink)
        deliver("fc1.bias", dW + hidden * inputs, sink: sink)
        return result
    }
}

// Phase 1, before MPI: configuration and data, errors kept so that every rank reports them together.
let launch = LaunchEnvironment.current()
let steps = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "60"
var task: TrainingTask?
var config: TrainConfig?
var inputError: Error?
do {
    let resolved = try ResolvedConfig(name: "custom-model", overrides: [
        "train.steps=\(steps)", "train.global_batch=128", "train.log_every=20", "zero.stage=1",
        "optimizer.name=adamw", "optimizer.lr=0.002", "groups.matrix.optimizer=muon", "groups.matrix.lr=0.02",
        "schedule.warmup_steps=10",
    ])
    let c = try TrainConfig(resolved, worldSize: launch.worldSize)
    let data = try FashionMNIST.load(directory: c.dataDirectory)
    let model = TwoLayerNet(inputs: data.train.featureCount, hidden: 64, classes: data.train.classes)
    task = ImageClassificationTask(train: data.train, test: data.test, model: model, description: "TwoLayerNet 784-64-10",
                                   globalBatch: c.globalBatch, microBatch: c.microBatch, seed: c.seed)
    config = c
} catch { inputError = error }
_ = launch.configureBLASThreads()

// Phase 2: MPI, one agreement on the input, then the trainer (ZeRO stage 1, Muon + AdamW groups).
do {
    let comm = try MPISession.start(expecting: launch)
    var trainer: Trainer?
    if let config, let task {
        do { trainer = try Trainer(config: config, comm: comm, task: task) } catch { inputError = error }
    }
    try MPISession.agreeOnInput(inputError, comm: comm)
    let summary = try trainer!.run()
    if comm.rank == 0 {
        print("custom model: \(summary.steps) steps on \(comm.size) ranks, test accuracy \(String(format: "%.4f", summary.evalAccuracy)), " +
              "final train loss \(String(format: "%.4f", summary.finalTrainLoss))")
    }
    MPISession.finalize()
    exit(summary.finalTrainLoss < 1.0 ? 0 : 1)
} catch {
    printError("error: \(error)")
    MPISession.abort(code: 2)
}
