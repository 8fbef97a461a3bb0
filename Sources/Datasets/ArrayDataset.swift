import Foundation

/// Labelled examples from `.npy` arrays: features [N, d₁, …] (float32 as stored, or uint8 scaled to [0, 1]) stay
/// memory-mapped and are converted a batch at a time; labels [N] (int64, int32 or uint8 class ids) are read and
/// range-checked once, at load. Rows are flattened to d₁·d₂·… features.
public struct ArrayDataset: LabelledExamples {
    public let features: NPYArray
    /// [count] class ids, each in 0..<classes.
    public let labels: [Int32]
    public let classes: Int
    public var count: Int { labels.count }
    public var featureCount: Int { features.rowElements }
    /// The shape of one example, e.g. [28, 28].
    public var exampleShape: [Int] { Array(features.shape.dropFirst()) }

    public static let featureTypes: [NPYArray.ElementType] = [.float32, .uint8]
    public static let labelTypes: [NPYArray.ElementType] = [.int64, .int32, .uint8]

    /// x / 255 for every byte value, rounded once as float32 division rounds (so uint8 features give the same floats
    /// as NumPy's `a.astype(np.float32) / 255`).
    static let unitScale: [Float] = (0..<256).map { Float($0) / 255 }

    /// Loads one split.
    /// - Parameters:
    ///   - exampleShape: the shape every example must have (the training split's, when loading the test split).
    ///   - classes: labels must lie in 0..<classes; nil: one more than the largest label (at least 2).
    ///   - classesKey: the configuration key that sets `classes`, named in the out-of-range error.
    public static func load(features featuresPath: String, labels labelsPath: String, exampleShape: [Int]? = nil,
                            classes: Int? = nil, classesKey: String = "data.classes") throws -> ArrayDataset {
        let features = try NPYArray(path: featuresPath)
        guard featureTypes.contains(features.elementType) else {
            throw DataError("\(featuresPath): features have dtype \(features.elementType.name), expected float32 or uint8 " +
                            "(uint8 is scaled to [0, 1]); save a.astype(np.float32)")
        }
        guard features.shape.count >= 2, features.count > 0 else {
            throw DataError("\(featuresPath): features have shape \(features.shapeDescription), expected (examples, features…) " +
                            "with at least one example, e.g. (60000, 784) or (60000, 28, 28)")
        }
        if let exampleShape, Array(features.shape.dropFirst()) != exampleShape {
            throw DataError("\(featuresPath): features have shape \(features.shapeDescription), expected " +
                            "\(NPYArray.describe([features.count] + exampleShape)): every example must have the training " +
                            "split's shape \(NPYArray.describe(exampleShape)) (the model's input); reshape or re-export the file")
        }
        let labelArray = try NPYArray(path: labelsPath)
        guard labelTypes.contains(labelArray.elementType) else {
            throw DataError("\(labelsPath): labels have dtype \(labelArray.elementType.name), expected an integer class id " +
                            "type (int64, int32 or uint8); save a.astype(np.int64)")
        }
        guard labelArray.shape == [features.count] else {
            throw DataError("\(labelsPath): labels have shape \(labelArray.shapeDescription), expected (\(features.count),): " +
                            "one class id per example of \(featuresPath); the two files must come from the same split")
        }
        let limit = classes ?? 65_536
        let labels: [Int32]
        switch labelArray.integers(as: Int32.self, below: limit) {
        case .success(let values): labels = values
        case .failure(let bad):
            throw DataError("\(labelsPath): label \(bad.value) of example \(bad.index) is outside 0..<\(limit)" +
                            (classes == nil ? "" : "; set \(classesKey) to the number of classes (labels are 0-based)"))
        }
        let found = classes ?? Int(labels.max() ?? 0) + 1
        guard found >= 2 else {
            throw DataError("\(labelsPath): every label is 0: a classifier needs at least two classes; check the file")
        }
        return ArrayDataset(features: features, labels: labels, classes: found)
    }

    /// The training and test splits; the test split must have the training split's example shape and classes.
    /// - Parameter classes: nil: one more than the largest training label.
    public static func loadSplits(trainFeatures: String, trainLabels: String, testFeatures: String, testLabels: String,
                                  classes: Int?, classesKey: String = "data.classes") throws -> (train: ArrayDataset, test: ArrayDataset) {
        let train = try load(features: trainFeatures, labels: trainLabels, classes: classes, classesKey: classesKey)
        let test = try load(features: testFeatures, labels: testLabels, exampleShape: train.exampleShape,
                            classes: train.classes, classesKey: classesKey)
        return (train, test)
    }

    public func gather(indices: [Int32], features out: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>) {
        let f = featureCount
        switch features.elementType {
        case .float32:
            for (row, index) in indices.enumerated() {
                // A byte copy: the mapped data is only as aligned as the file's header made it.
                UnsafeMutableRawPointer(out + row * f).copyMemory(from: features.data + Int(index) * f * 4, byteCount: f * 4)
                labels[row] = self.labels[Int(index)]
            }
        case .uint8:
            let bytes = features.data.assumingMemoryBound(to: UInt8.self)
            Self.unitScale.withUnsafeBufferPointer { scale in
                for (row, index) in indices.enumerated() {
                    let source = UnsafeBufferPointer(start: bytes + Int(index) * f, count: f)
                    let target = UnsafeMutableBufferPointer(start: out + row * f, count: f)
                    for i in 0..<f { target[i] = scale[Int(source[i])] }
                    labels[row] = self.labels[Int(index)]
                }
            }
        default:
            preconditionFailure("ArrayDataset.load admits only float32 and uint8 features")
        }
    }
}
