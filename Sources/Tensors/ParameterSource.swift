/// Which pass of a step a model is in when it asks for a layer's parameters (ZeRO stage 3 prefetches the next
/// layer in the order of the pass: forward 0, 1, …; backward …, 1, 0).
public enum ModelPass: Sendable {
    case forward, backward
}

/// Where a model reads its parameters, layer by layer: the read-side twin of `GradientSink`.
///
/// A model lists its layers (`Model.layers`: the tensors each one reads, in forward order). Before it reads any tensor
/// of layer l it calls `acquire(l, pass:)`; `tensor(i)` is then the address of tensor i (its index in the parameter
/// table) until `release(l, pass:)`. A flat buffer is the simplest source (acquire and release do nothing); the
/// distributed engine at ZeRO stage 3 holds only this rank's shard of every tensor and all-gathers a layer into a
/// working buffer on `acquire` — the next layers' gathers already in flight (prefetch) — and frees the buffer on
/// `release`, so a rank holds the whole model at no point of a step.
public protocol ParameterSource: AnyObject {
    /// Makes every tensor of layer `layer` readable (blocks until its gather arrived) and may start prefetches.
    func acquire(_ layer: Int, pass: ModelPass)
    /// Ends the reads of layer `layer` in this pass; its tensors' addresses are invalid afterwards.
    func release(_ layer: Int, pass: ModelPass)
    /// Address of tensor `index` (parameter-table order), valid while its layer is acquired.
    func tensor(_ index: Int) -> UnsafePointer<Float>
    /// A base address from which every tensor lies at `base + entry.offset`, when the source holds the whole model in
    /// table layout while layer 0 is acquired (a flat buffer; or a gather of a model that is one layer); else nil.
    var flatBase: UnsafePointer<Float>? { get }
}

/// Parameters in one flat buffer laid out by a parameter table: every tensor readable at all times.
public final class FlatParameters: ParameterSource {
    public let base: UnsafePointer<Float>
    private let offsets: [Int]

    public init(base: UnsafePointer<Float>, table: ParameterTable) {
        self.base = base
        offsets = table.entries.map(\.offset)
    }

    public func acquire(_ layer: Int, pass: ModelPass) {}
    public func release(_ layer: Int, pass: ModelPass) {}
    public func tensor(_ index: Int) -> UnsafePointer<Float> { base + offsets[index] }
    public var flatBase: UnsafePointer<Float>? { base }
}
