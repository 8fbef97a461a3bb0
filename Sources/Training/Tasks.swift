import Datasets
import Foundation
import Models
import SwiftMPI
import Tensors

/// What the trainer trains: a model, the rows of each global batch, and an evaluation. Rows are indexed globally
/// (rank r of N takes rows r·b ..< (r+1)·b of every global batch), so a step uses the same examples at any world
/// size, and a run is reproducible from (seed, world size).
public protocol TrainingTask: AnyObject {
    var model: Model { get }
    /// One line for logs and checkpoints, e.g. "MLP 784-1024-1024-10 (relu)".
    var modelDescription: String { get }
    /// Rows (examples or sequences) per epoch, for `train.epochs`.
    var rowsPerEpoch: Int { get }
    /// A batch of `rows` rows starting at global row `firstRow` of global batch `step`; valid until the next call.
    func trainBatch(step: Int, firstRow: Int, rows: Int, globalBatch: Int) -> ModelBatch
    /// The same for a batch whose size may change between steps (`BatchSchedule`): `batchStart` is the data
    /// position of its row 0 (`BatchSampler.batchStart`). The default ignores it: tasks that draw windows keyed by
    /// (step, row), with replacement, need no position.
    func trainBatch(step: Int, batchStart: Int, firstRow: Int, rows: Int, globalBatch: Int) -> ModelBatch
    /// This rank's share of the held-out evaluation, as sums (all-reduced by the caller). Every rank makes the same
    /// number of forward calls (`EvaluationShares`): at ZeRO stage 3 each one gathers the layers from every rank.
    func evaluate(params: ParameterSource, rank: Int, world: Int) -> BatchResult
    /// Extra evaluation metrics derived from the reduced result (e.g. bits per byte).
    func evaluationMetrics(_ result: BatchResult) -> [(String, Double)]
}

extension TrainingTask {
    public func trainBatch(step: Int, batchStart: Int, firstRow: Int, rows: Int, globalBatch: Int) -> ModelBatch {
        trainBatch(step: step, firstRow: firstRow, rows: rows, globalBatch: globalBatch)
    }

    /// The held-out evaluation over every rank: this rank's share, then one sum over ranks by `sumOverRanks` (the
    /// gradient engine's or the population exchange's — whichever owns the run's collectives).
    func evaluateOverRanks(params: ParameterSource, rank: Int, world: Int,
                           sumOverRanks: (inout [Double]) throws -> Void) throws -> BatchResult {
        let local = evaluate(params: params, rank: rank, world: world)
        var sums = [local.lossSum, Double(local.correct), Double(local.predictions)]
        try sumOverRanks(&sums)
        return BatchResult(lossSum: sums[0], correct: Int(sums[1]), predictions: Int(sums[2]))
    }
}

/// The held-out examples split over ranks (rank r takes rows n·r/N ..< n·(r+1)/N) in batches of at most `batchRows`,
/// with the batch count of the largest share on every rank: a rank whose share ends early makes its remaining
/// forward calls without data (`passWithoutData`), so the ZeRO stage-3 gathers inside them match on every rank.
struct EvaluationShares {
    let count: Int, world: Int, batchRows: Int

    private func share(_ rank: Int) -> Range<Int> { (count * rank / world)..<(count * (rank + 1) / world) }

    var batchesPerRank: Int {
        (0..<world).map { (share($0).count + batchRows - 1) / batchRows }.max() ?? 0
    }

    /// Rows of `batch` on `rank`, or nil when its share has ended.
    func rows(rank: Int, batch: Int) -> Range<Int>? {
        let mine = share(rank), start = mine.lowerBound + batch * batchRows
        return start < mine.upperBound ? start..<min(start + batchRows, mine.upperBound) : nil
    }
}

/// A forward pass's parameter traffic without its compute: every layer acquired and released in forward order.
func passWithoutData(_ model: Model, _ params: ParameterSource) {
    for l in model.layers.indices {
        params.acquire(l, pass: .forward)
        params.release(l, pass: .forward)
    }
}

/// Image classification (Fashion-MNIST, or `.npy` arrays) with the MLP or the ResNet.
public final class ImageClassificationTask: TrainingTask {
    public let model: Model
    /// The model as an MLP (adversarial attacks and population methods; configuration allows them only for
    /// model.kind mlp).
    public var mlp: MLP {
        guard let mlp = model as? MLP else { preconditionFailure("this task's model is \(modelDescription), not an MLP") }
        return mlp
    }
    public let modelDescription: String
    public let train: any LabelledExamples
    public let test: any LabelledExamples
    private var sampler: BatchSampler
    private let features: FloatBuffer
    private let labels: UnsafeMutablePointer<Int32>
    private var indices: [Int32] = []

    public convenience init(train: any LabelledExamples, test: any LabelledExamples, hidden: [Int], activation: Activation,
                            globalBatch: Int, microBatch: Int, seed: UInt64) {
        let mlp = MLP(widths: [train.featureCount] + hidden + [train.classes], activation: activation)
        self.init(train: train, test: test, model: mlp,
                  description: "MLP \(mlp.widths.map(String.init).joined(separator: "-")) (\(mlp.activation.rawValue))",
                  globalBatch: globalBatch, microBatch: microBatch, seed: seed)
    }

    /// Any classifier of `train`'s features (rows [featureCount], one class per row).
    public init(train: any LabelledExamples, test: any LabelledExamples, model: Model, description: String, globalBatch: Int,
                microBatch: Int, seed: UInt64) {
        self.train = train
        self.test = test
        self.model = model
        modelDescription = description
        sampler = BatchSampler(datasetSize: train.count, globalBatch: globalBatch, seed: seed)
        features = FloatBuffer(count: max(microBatch, 1000) * train.featureCount)
        labels = .allocate(capacity: max(microBatch, 1000))
    }

    deinit { labels.deallocate() }

    public var rowsPerEpoch: Int { train.count }

    public func trainBatch(step: Int, firstRow: Int, rows: Int, globalBatch: Int) -> ModelBatch {
        sampler.indices(step: step, offset: firstRow, rows: rows, into: &indices)
        return fill(from: train, rows: rows)
    }

    public func trainBatch(step: Int, batchStart: Int, firstRow: Int, rows: Int, globalBatch: Int) -> ModelBatch {
        sampler.indices(batchStart: batchStart, offset: firstRow, rows: rows, into: &indices)
        return fill(from: train, rows: rows)
    }

    private func fill(from dataset: any LabelledExamples, rows: Int) -> ModelBatch {
        dataset.gather(indices: indices, features: features.pointer, labels: labels)
        return ModelBatch(features: features.pointer, targets: labels, rows: rows)
    }

    /// Test-set loss and accuracy over this rank's contiguous share of the test set.
    public func evaluate(params: ParameterSource, rank: Int, world: Int) -> BatchResult {
        let shares = EvaluationShares(count: test.count, world: world, batchRows: 1000)
        var total = BatchResult()
        for batch in 0..<shares.batchesPerRank {
            guard let rows = shares.rows(rank: rank, batch: batch) else { passWithoutData(model, params); continue }
            indices = (Int32(rows.lowerBound)..<Int32(rows.upperBound)).map { $0 }
            total += model.forward(params: params, batch: fill(from: test, rows: rows.count))
        }
        return total
    }

    public func evaluationMetrics(_ result: BatchResult) -> [(String, Double)] { [] }

    /// How the features relate to [0, 1] pixels (identity for data without a recorded normalisation).
    public var pixelSpace: PixelSpace {
        train.normalisation.map { PixelSpace(mean: $0.mean, std: $0.std) } ?? .identity
    }

    private lazy var attack = AdversarialAttack(model: mlp, space: pixelSpace)
    private var adversarialFeatures = FloatBuffer(count: 0)

    /// `batch` with its features replaced by their FGSM/PGD version against `params` (adversarial training, Madry et
    /// al. 2018); `firstRow` seeds the random starts (pass a number unique to these examples in the run). The
    /// returned batch is valid until the next call.
    public func adversarialBatch(_ batch: ModelBatch, params: UnsafePointer<Float>, settings: AttackSettings,
                                 firstRow: Int) -> ModelBatch {
        let n = batch.rows * train.featureCount
        if adversarialFeatures.count < n { adversarialFeatures = FloatBuffer(count: n) }
        attack.perturb(params: params, batch: batch, settings: settings, into: adversarialFeatures.pointer, firstRow: firstRow)
        return ModelBatch(features: adversarialFeatures.pointer, targets: batch.targets, rows: batch.rows)
    }
}

/// Next-token prediction on a token corpus with the GPT.
public final class LanguageModelTask: TrainingTask {
    public let gpt: GPT
    public var model: Model { gpt }
    public let corpus: TextCorpus
    public let seed: UInt64
    /// Held-out windows evaluated (the first ones of the validation split; 0 = all).
    public let evalSequences: Int
    private let tokens: UnsafeMutablePointer<Int32>
    private let targets: UnsafeMutablePointer<Int32>
    private let capacity: Int

    public init(corpus: TextCorpus, config: GPTConfig, microBatch: Int, seed: UInt64, evalSequences: Int) {
        self.corpus = corpus
        self.seed = seed
        self.evalSequences = evalSequences
        gpt = GPT(config)
        capacity = max(microBatch, 16)
        tokens = .allocate(capacity: capacity * config.context)
        targets = .allocate(capacity: capacity * config.context)
    }

    deinit {
        tokens.deallocate()
        targets.deallocate()
    }

    public var modelDescription: String {
        let c = gpt.config
        return "GPT \(c.layers) layers, width \(c.width), \(c.heads) heads, context \(c.context), vocabulary \(c.vocabulary)" +
            (c.tiedHead ? ", tied head" : "")
    }
    public var rowsPerEpoch: Int { max(1, corpus.train.count / gpt.config.context) }

    public func trainBatch(step: Int, firstRow: Int, rows: Int, globalBatch: Int) -> ModelBatch {
        let t = gpt.config.context
        for r in 0..<rows {
            corpus.trainWindow(step: step, row: firstRow + r, seed: seed, context: t, tokens: tokens + r * t, targets: targets + r * t)
        }
        return ModelBatch(tokens: tokens, targets: targets, rows: rows)
    }

    public func evaluate(params: ParameterSource, rank: Int, world: Int) -> BatchResult {
        let t = gpt.config.context
        let available = corpus.validationWindowCount(context: t)
        let shares = EvaluationShares(count: evalSequences > 0 ? min(evalSequences, available) : available, world: world,
                                      batchRows: capacity)
        var total = BatchResult()
        for batch in 0..<shares.batchesPerRank {
            guard let rows = shares.rows(rank: rank, batch: batch) else { passWithoutData(gpt, params); continue }
            for r in 0..<rows.count {
                corpus.validationWindow(index: rows.lowerBound + r, context: t, tokens: tokens + r * t, targets: targets + r * t)
            }
            total += gpt.forward(params: params, batch: ModelBatch(tokens: tokens, targets: targets, rows: rows.count))
        }
        return total
    }

    /// Bits per byte = nats per token / ln 2 when every token is one byte (the byte-level vocabulary).
    public func evaluationMetrics(_ result: BatchResult) -> [(String, Double)] {
        corpus.vocabulary == 256 ? [("eval_bits_per_byte", result.meanLoss / log(2))] : []
    }
}
