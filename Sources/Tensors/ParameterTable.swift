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

extension ParameterTable {
    /// The same tensors laid out in `order` (names), back to back.
    public func reordered(_ order: [String]) -> ParameterTable {
        precondition(Set(order) == Set(entries.map(\.name)) && order.count == entries.count, "a layout must name every tensor once")
        var t = ParameterTable()
        for name in order {
            let e = self[name]!
            t.add(e.name, shape: e.shape, role: e.role)
        }
        return t
    }

    /// True when `other` holds the same tensors (names, shapes, roles), whatever their offsets.
    public func sameTensors(as other: ParameterTable) -> Bool {
        guard entries.count == other.entries.count else { return false }
        return entries.allSatisfy { e in other[e.name].map { $0.shape == e.shape && $0.role == e.role } ?? false }
    }
}
