import Tensors

/// Which examples each rank uses at each step.
///
/// Every epoch is a seeded permutation of the training set (independent of the world size); consecutive slices of
/// `globalBatch` positions form the global batches (the last incomplete one is dropped); within a global batch,
/// each rank takes the consecutive positions `BatchSplit` assigns it. So the union over ranks of one step is the
/// same set of examples whatever the world size, and a run is reproducible from (seed, world size).
public struct BatchSampler: Equatable, Sendable {
    public let datasetSize: Int
    public let globalBatch: Int
    public let seed: UInt64
    public private(set) var epoch = -1
    private var permutation: [Int32] = []

    public init(datasetSize: Int, globalBatch: Int, seed: UInt64) {
        precondition(globalBatch > 0 && globalBatch <= datasetSize, "global batch must be in 1...datasetSize")
        self.datasetSize = datasetSize
        self.globalBatch = globalBatch
        self.seed = seed
    }

    public var stepsPerEpoch: Int { datasetSize / globalBatch }

    /// The dataset indices of `rows` examples starting at `offset` within global batch `step` (0-based, counted from
    /// the start of training), written into `indices`.
    public mutating func indices(step: Int, offset: Int, rows: Int, into indices: inout [Int32]) {
        precondition(offset >= 0 && offset + rows <= globalBatch, "slice \(offset)..<\(offset + rows) outside the global batch")
        let start = (step / stepsPerEpoch) * datasetSize + (step % stepsPerEpoch) * globalBatch
        self.indices(batchStart: start, offset: offset, rows: rows, into: &indices)
    }

    /// The dataset indices of `rows` examples starting at `offset` within the global batch that starts at data
    /// position `batchStart` (a position of the epoch stream, see `batchStart(position:batch:datasetSize:)`).
    public mutating func indices(batchStart: Int, offset: Int, rows: Int, into indices: inout [Int32]) {
        let e = batchStart / datasetSize, start = batchStart % datasetSize + offset
        precondition(offset >= 0 && start + rows <= datasetSize, "slice \(offset)..<\(offset + rows) runs past epoch \(e)")
        if e != epoch { shuffle(epoch: e) }
        indices.removeAll(keepingCapacity: true)
        indices.append(contentsOf: permutation[start..<(start + rows)])
    }

    /// The data position where a global batch of `batch` rows starts when the examples consumed so far end at
    /// `position` of the epoch stream (position e·N + i is row i of epoch e's permutation): there, unless the
    /// epoch has fewer than `batch` rows left — those are dropped, as for a fixed batch, and the batch starts the
    /// next epoch. So a batch that changes between steps never repeats or skips an example within an epoch, and
    /// with a fixed batch B, step s starts at (s / ⌊N/B⌋)·N + (s mod ⌊N/B⌋)·B exactly as `indices(step:)` does.
    public static func batchStart(position: Int, batch: Int, datasetSize: Int) -> Int {
        precondition(batch > 0 && batch <= datasetSize && position >= 0, "batch \(batch) outside 1...\(datasetSize)")
        return position % datasetSize + batch <= datasetSize ? position : (position / datasetSize + 1) * datasetSize
    }

    /// Fisher–Yates with a generator seeded by (seed, epoch).
    private mutating func shuffle(epoch e: Int) {
        epoch = e
        permutation = (0..<Int32(datasetSize)).map { $0 }
        var rng = SplitMix64(seed: seed, stream: UInt64(e) &+ 0x5EED)
        var i = datasetSize - 1
        while i > 0 {
            let j = Int(rng.next() % UInt64(i + 1))
            permutation.swapAt(i, j)
            i -= 1
        }
    }
}

/// Labelled examples addressed by row index, flattened to `featureCount` floats each: what image classification
/// samples from (in-memory `ImageDataset`, memory-mapped `ArrayDataset`).
public protocol LabelledExamples: Sendable {
    var count: Int { get }
    var featureCount: Int { get }
    var classes: Int { get }
    /// Copies the rows named by `indices` into features [indices.count, featureCount] and labels [indices.count].
    func gather(indices: [Int32], features: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>)
    /// How the features were normalised from [0, 1] pixels (attacks work in pixel units), or nil: used as they are.
    var normalisation: ImageDataset.Normalisation? { get }
}

extension LabelledExamples {
    public var normalisation: ImageDataset.Normalisation? { nil }
}

extension ImageDataset: LabelledExamples {
    public func gather(indices: [Int32], features: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>) {
        let f = featureCount
        self.features.withUnsafeBufferPointer { src in
            for (row, index) in indices.enumerated() {
                (features + row * f).update(from: src.baseAddress! + Int(index) * f, count: f)
                labels[row] = self.labels[Int(index)]
            }
        }
    }
}

/// Which rows of a global batch each rank and micro-batch takes, for any global batch on any world size.
///
/// Rank r takes ⌈B/N⌉ rows if r < B mod N, else ⌊B/N⌋, in rank order: rows Σ_{q<r} n_q ..< that + n_r of the global
/// batch (so the union over ranks is the same B rows at any world size). Its rows are split into `gradAccum`
/// micro-batches the same way. Every gradient is scaled by 1/B (the engine's `meanLossScale`), so ranks and
/// micro-batches of unequal sizes still sum to the exact mean over the global batch.
public struct BatchSplit: Equatable, Sendable {
    public let globalBatch: Int
    public let worldSize: Int
    public let gradAccum: Int

    /// Why this split cannot be made, or nil: every micro-batch needs at least one row.
    public static func problem(globalBatch: Int, worldSize: Int, gradAccum: Int) -> String? {
        guard globalBatch >= worldSize * gradAccum else {
            return "train.global_batch = \(globalBatch) is smaller than \(worldSize) ranks × train.grad_accum " +
                "\(gradAccum) = \(worldSize * gradAccum): every micro-batch on every rank needs at least one row — " +
                "raise the batch to ≥ \(worldSize * gradAccum), lower train.grad_accum, or run on fewer ranks"
        }
        return nil
    }

    public init(globalBatch: Int, worldSize: Int, gradAccum: Int) {
        precondition(Self.problem(globalBatch: globalBatch, worldSize: worldSize, gradAccum: gradAccum) == nil,
                     Self.problem(globalBatch: globalBatch, worldSize: worldSize, gradAccum: gradAccum)!)
        self.globalBatch = globalBatch
        self.worldSize = worldSize
        self.gradAccum = gradAccum
    }

    /// Part `i` of `total` split into `parts` nearly equal parts, the first `total mod parts` one larger:
    /// (offset, count).
    @inline(__always)
    static func part(_ i: Int, of total: Int, parts: Int) -> (offset: Int, count: Int) {
        let base = total / parts, extra = total % parts
        return (i * base + Swift.min(i, extra), base + (i < extra ? 1 : 0))
    }

    /// Rows of the global batch rank `rank` takes: (first row, count).
    public func rows(rank: Int) -> (firstRow: Int, count: Int) {
        let p = Self.part(rank, of: globalBatch, parts: worldSize)
        return (p.offset, p.count)
    }

    /// Rows of micro-batch `index` of rank `rank`, as global rows: (first row, count).
    public func microBatch(rank: Int, index: Int) -> (firstRow: Int, count: Int) {
        let r = rows(rank: rank), p = Self.part(index, of: r.count, parts: gradAccum)
        return (r.firstRow + p.offset, p.count)
    }

    /// The most rows any rank takes (⌈B/N⌉), and the largest micro-batch (workspace sizes).
    public var largestRankBatch: Int { (globalBatch + worldSize - 1) / worldSize }
    public var largestMicroBatch: Int { (largestRankBatch + gradAccum - 1) / gradAccum }
    /// True when every rank and micro-batch has the same number of rows.
    public var isEven: Bool { globalBatch % (worldSize * gradAccum) == 0 }
}
