import Tensors

/// Which examples each rank uses at each step.
///
/// Every epoch is a seeded permutation of the training set (independent of the world size); consecutive slices of
/// `globalBatch` positions form the global batches (the last incomplete one is dropped); within a global batch,
/// rank r takes positions r·b ..< (r+1)·b with b = globalBatch / world. So the union over ranks of one step is the
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
        let e = step / stepsPerEpoch
        if e != epoch { shuffle(epoch: e) }
        let start = (step % stepsPerEpoch) * globalBatch + offset
        indices.removeAll(keepingCapacity: true)
        indices.append(contentsOf: permutation[start..<(start + rows)])
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
