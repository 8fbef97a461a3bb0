/// Where backward writes parameter gradients, and who hears when each piece is final.
///
/// A tensor's gradient may be produced in row blocks (rows of its [rows, cols] view; a vector is rows × 1), in the
/// order `rowBlocks(i)` lists them. For each block backward asks `gradient(i, rows:)` for the address of the block's
/// first element, accumulates (+=) into it, and calls `finished(i, rows:)` once that block is final for this batch.
/// A flat buffer is the simplest sink (one block per tensor); the distributed engine starts communicating a bucket
/// while backward continues (overlap) and, at ZeRO stage 2, splits large tensors into blocks so only bucket-sized
/// staging memory is needed instead of a full gradient buffer.
public protocol GradientSink: AnyObject {
    func rowBlocks(_ tensorIndex: Int) -> [Range<Int>]
    func gradient(_ tensorIndex: Int, rows: Range<Int>) -> UnsafeMutablePointer<Float>
    func finished(_ tensorIndex: Int, rows: Range<Int>)
}

extension TensorEntry {
    /// Rows of the [rows, cols] view used for row blocks: the first dimension (a vector has one element per row).
    public var blockRows: Int { shape[0] }
    /// Elements per row of that view.
    public var blockCols: Int { count / shape[0] }
}

/// The whole gradient in one flat buffer laid out by the parameter table; one block per tensor.
public final class FlatGradientSink: GradientSink {
    public let base: UnsafeMutablePointer<Float>
    private let entries: [TensorEntry]
    public init(base: UnsafeMutablePointer<Float>, table: ParameterTable) {
        self.base = base
        entries = table.entries
    }
    public func rowBlocks(_ tensorIndex: Int) -> [Range<Int>] { [0..<entries[tensorIndex].blockRows] }
    public func gradient(_ tensorIndex: Int, rows: Range<Int>) -> UnsafeMutablePointer<Float> {
        let e = entries[tensorIndex]
        return base + e.offset + rows.lowerBound * e.blockCols
    }
    public func finished(_ tensorIndex: Int, rows: Range<Int>) {}
}
