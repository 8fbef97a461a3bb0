import Tensors

/// A gradient sink that asks for every tensor in blocks of `blockRows` rows, last block first (as the stage-2 engine
/// does), counts the blocks reported finished, and snapshots each one then, so a test can prove that nothing is
/// added to a block after it was reported final.
public final class BlockSink: GradientSink {
    public let flat: FlatGradientSink
    public let table: ParameterTable
    public let blockRows: Int
    /// Finished blocks per tensor index.
    public private(set) var finishedBlocks: [Int: Int] = [:]
    /// Each finished block's values at the moment it was reported.
    public private(set) var snapshots: [(tensor: Int, rows: Range<Int>, values: [Float])] = []

    public init(base: UnsafeMutablePointer<Float>, table: ParameterTable, blockRows: Int = 2) {
        flat = FlatGradientSink(base: base, table: table)
        self.table = table
        self.blockRows = blockRows
    }

    public func rowBlocks(_ i: Int) -> [Range<Int>] {
        let rows = table.entries[i].blockRows
        return stride(from: 0, to: rows, by: blockRows).map { $0..<min($0 + blockRows, rows) }.reversed()
    }

    public func gradient(_ i: Int, rows: Range<Int>) -> UnsafeMutablePointer<Float> { flat.gradient(i, rows: rows) }

    public func finished(_ i: Int, rows: Range<Int>) {
        finishedBlocks[i, default: 0] += 1
        let p = flat.gradient(i, rows: rows)
        snapshots.append((i, rows, Array(UnsafeBufferPointer(start: p, count: rows.count * table.entries[i].blockCols))))
    }
}
