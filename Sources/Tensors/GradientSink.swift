/// Where backward writes parameter gradients, tensor by tensor, and who hears when each is final.
///
/// Backward asks for `gradient(i)` before accumulating (+=) into table entry i, and calls `finished(i)` once entry
/// i's gradient for this batch is complete (in backward order: last layer first). A plain flat buffer is the simplest
/// sink; the distributed engine uses the callbacks to start communication of a bucket while backward continues
/// (overlap) and, at ZeRO stage 2, to keep only bucket-sized staging memory instead of a full gradient buffer.
public protocol GradientSink: AnyObject {
    func gradient(_ tensorIndex: Int) -> UnsafeMutablePointer<Float>
    func finished(_ tensorIndex: Int)
}

/// The whole gradient in one flat buffer laid out by the parameter table; `finished` does nothing.
public final class FlatGradientSink: GradientSink {
    public let base: UnsafeMutablePointer<Float>
    private let offsets: [Int]
    public init(base: UnsafeMutablePointer<Float>, table: ParameterTable) {
        self.base = base
        offsets = table.entries.map(\.offset)
    }
    public func gradient(_ tensorIndex: Int) -> UnsafeMutablePointer<Float> { base + offsets[tensorIndex] }
    public func finished(_ tensorIndex: Int) {}
}
