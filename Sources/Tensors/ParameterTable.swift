/// What a tensor is for; optimizers and parameter groups route by role (e.g. no weight decay for biases,
/// Muon only for hidden matrices).
public enum TensorRole: String, CaseIterable, Sendable, Codable {
    /// A hidden 2-D weight matrix.
    case matrix
    /// An additive bias vector.
    case bias
    /// A normalisation gain or shift (LayerNorm).
    case norm
    /// An embedding table (rows are looked up, not multiplied).
    case embedding
    /// The output projection (classifier / language-model head).
    case head
}

/// One named tensor inside a flat buffer.
public struct TensorEntry: Equatable, Sendable, Codable {
    public let name: String
    /// Row-major shape, e.g. [out, in] for a weight matrix.
    public let shape: [Int]
    /// First element in the flat buffer.
    public let offset: Int
    public let role: TensorRole

    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset..<(offset + count) }
    /// Rows and columns when the tensor is 2-D, nil otherwise.
    public var matrixShape: (rows: Int, cols: Int)? { shape.count == 2 ? (shape[0], shape[1]) : nil }
}

/// The table of named tensors laid out back to back in one flat float32 buffer; parameters and gradients share it,
/// so an optimizer shard or a communication bucket is simply a range of that buffer.
public struct ParameterTable: Equatable, Sendable, Codable {
    public private(set) var entries: [TensorEntry] = []
    public private(set) var count = 0

    public init() {}

    /// Appends a tensor and returns its entry. Names must be unique.
    @discardableResult
    public mutating func add(_ name: String, shape: [Int], role: TensorRole) -> TensorEntry {
        precondition(!entries.contains { $0.name == name }, "duplicate tensor name \(name)")
        precondition(!shape.isEmpty && shape.allSatisfy { $0 > 0 }, "tensor \(name) has invalid shape \(shape)")
        let entry = TensorEntry(name: name, shape: shape, offset: count, role: role)
        entries.append(entry)
        count += entry.count
        return entry
    }

    public subscript(name: String) -> TensorEntry? { entries.first { $0.name == name } }

    /// Entries overlapping `range`, each with the overlapping sub-range.
    public func entries(overlapping range: Range<Int>) -> [(entry: TensorEntry, overlap: Range<Int>)] {
        entries.compactMap { e in
            let lo = Swift.max(e.offset, range.lowerBound), hi = Swift.min(e.range.upperBound, range.upperBound)
            return lo < hi ? (e, lo..<hi) : nil
        }
    }
}
