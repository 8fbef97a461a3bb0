import Foundation
import Tensors

/// A labelled image set in memory: features normalised to zero mean / unit variance with the *training* split's
/// statistics, labels as Int32 class ids.
public struct ImageDataset: Sendable {
    /// [count, featureCount], row-major.
    public var features: [Float]
    public var labels: [Int32]
    public var featureCount: Int
    public var classes: Int
    /// How features relate to [0, 1] pixels (feature = (pixel − mean)/std); nil for data that are not images.
    public var normalisation: Normalisation?

    public var count: Int { labels.count }

    public init(features: [Float], labels: [Int32], featureCount: Int, classes: Int, normalisation: Normalisation? = nil) {
        precondition(features.count == labels.count * featureCount, "features must be labels.count × featureCount")
        self.features = features
        self.labels = labels
        self.featureCount = featureCount
        self.classes = classes
        self.normalisation = normalisation
    }

    /// A learnable synthetic problem for tests and benchmarks: standard-normal features, labels from the arg-max of
    /// a random linear teacher. Deterministic in `seed`.
    public static func synthetic(count: Int, featureCount: Int, classes: Int, seed: UInt64) -> ImageDataset {
        var rng = SplitMix64(seed: seed, stream: 0xDA7A)
        let teacher = (0..<(classes * featureCount)).map { _ in Float(rng.normal()) }
        var features = [Float](repeating: 0, count: count * featureCount)
        var labels = [Int32](repeating: 0, count: count)
        for n in 0..<count {
            for f in 0..<featureCount { features[n * featureCount + f] = Float(rng.normal()) }
            var best = -Float.infinity
            for c in 0..<classes {
                var z: Float = 0
                for f in 0..<featureCount { z += teacher[c * featureCount + f] * features[n * featureCount + f] }
                if z > best { best = z; labels[n] = Int32(c) }
            }
        }
        return ImageDataset(features: features, labels: labels, featureCount: featureCount, classes: classes)
    }

    /// Pixel mean and standard deviation (in [0, 1] units) used for normalisation.
    public struct Normalisation: Equatable, Sendable {
        public var mean: Float
        public var std: Float
    }

    /// Builds a dataset from IDX image and label arrays, checking they agree.
    public static func from(images: IDXArray, labels: IDXArray, imagesPath: String, labelsPath: String,
                            classes: Int, normalisation: Normalisation) throws -> ImageDataset {
        guard images.shape.count >= 2 else {
            throw DataError("\(imagesPath): expected an image array of rank ≥ 2, found shape \(images.shape)")
        }
        guard labels.shape.count == 1 else {
            throw DataError("\(labelsPath): expected a label vector (rank 1), found shape \(labels.shape)")
        }
        guard images.count == labels.count else {
            throw DataError("image/label count mismatch: \(imagesPath) has \(images.count) images but \(labelsPath) has " +
                            "\(labels.count) labels; the two files must come from the same split")
        }
        if let bad = labels.bytes.first(where: { Int($0) >= classes }) {
            throw DataError("\(labelsPath): label \(bad) is outside 0..<\(classes)")
        }
        let scale = 1 / (255 * normalisation.std)
        let shift = normalisation.mean / normalisation.std
        var features = [Float](repeating: 0, count: images.bytes.count)
        images.bytes.withUnsafeBufferPointer { src in
            features.withUnsafeMutableBufferPointer { dst in
                for i in 0..<src.count { dst[i] = Float(src[i]) * scale - shift }
            }
        }
        return ImageDataset(features: features, labels: labels.bytes.map { Int32($0) }, featureCount: images.itemSize,
                            classes: classes, normalisation: normalisation)
    }

    /// Mean and standard deviation of raw pixels (scaled to [0, 1]) over an IDX image array, in double precision.
    public static func statistics(of images: IDXArray) -> Normalisation {
        var sum = 0.0, sumSquares = 0.0
        for b in images.bytes { let v = Double(b); sum += v; sumSquares += v * v }
        let n = Double(max(images.bytes.count, 1))
        let mean = sum / n
        let variance = max(sumSquares / n - mean * mean, 1e-12)
        return Normalisation(mean: Float(mean / 255), std: Float(variance.squareRoot() / 255))
    }
}

/// Fashion-MNIST as installed by Debian's `dataset-fashion-mnist` (or any folder of MNIST-format IDX files with the
/// standard names, gzip-compressed or plain).
public enum FashionMNIST {
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
    public static let debianPackage = "dataset-fashion-mnist"
    public static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                                    "Bag", "Ankle boot"]

    /// Finds `<dir>/<stem>.gz` or `<dir>/<stem>`.
    static func path(_ directory: String, _ stem: String) -> String {
        let gz = "\(directory)/\(stem).gz"
        if FileManager.default.fileExists(atPath: gz) { return gz }
        let plain = "\(directory)/\(stem)"
        return FileManager.default.fileExists(atPath: plain) ? plain : gz
    }

    /// Loads the training and test splits; both normalised with the training split's pixel statistics.
    public static func load(directory: String = defaultDirectory) throws -> (train: ImageDataset, test: ImageDataset) {
        let paths = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
            .map { path(directory, $0) }
        let trainImages = try IDX.read(path: paths[0], package: debianPackage)
        let trainLabels = try IDX.read(path: paths[1], package: debianPackage)
        let testImages = try IDX.read(path: paths[2], package: debianPackage)
        let testLabels = try IDX.read(path: paths[3], package: debianPackage)
        let stats = ImageDataset.statistics(of: trainImages)
        let train = try ImageDataset.from(images: trainImages, labels: trainLabels, imagesPath: paths[0], labelsPath: paths[1],
                                          classes: 10, normalisation: stats)
        let test = try ImageDataset.from(images: testImages, labels: testLabels, imagesPath: paths[2], labelsPath: paths[3],
                                         classes: 10, normalisation: stats)
        guard train.featureCount == test.featureCount else {
            throw DataError("\(paths[0]) has \(train.featureCount) pixels per image but \(paths[2]) has \(test.featureCount)")
        }
        return (train, test)
    }
}
