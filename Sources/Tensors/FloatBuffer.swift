#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One contiguous, 64-byte-aligned float32 allocation: the storage for parameters, gradients, optimizer state and
/// activations. Reference semantics (a class) because kernels and communication write into it in place.
/// `@unchecked Sendable`: like any raw memory, concurrent writers must coordinate (simulated ranks never share one).
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    /// Allocates `count` floats, zero-filled.
    public init(count: Int) {
        self.count = count
        pointer = allocateZeroed(Float.self, count: count, zero: 0)
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { free(pointer) }

    /// The whole buffer.
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    /// Elements `range` as a buffer pointer (no copy).
    public func slice(_ range: Range<Int>) -> UnsafeMutableBufferPointer<Float> {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "slice \(range) outside 0..<\(count)")
        return UnsafeMutableBufferPointer(start: pointer + range.lowerBound, count: range.count)
    }

    public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }

    public func fill(_ value: Float) { pointer.update(repeating: value, count: count) }
    public func zero() { fill(0) }

    /// A copy as an array (tests and checkpoints; not for hot paths).
    public var array: [Float] { Array(buffer) }

    /// Bytes held (for memory accounting).
    public var byteCount: Int { count * MemoryLayout<Float>.stride }
}

/// `count` (at least one) elements set to `zero`, at a 64-byte boundary; release with `free`.
func allocateZeroed<T>(_ type: T.Type, count: Int, zero: T) -> UnsafeMutablePointer<T> {
    precondition(count >= 0, "negative buffer size \(count)")
    var raw: UnsafeMutableRawPointer?
    let bytes = Swift.max(count, 1) * MemoryLayout<T>.stride
    guard posix_memalign(&raw, 64, bytes) == 0, let raw else { fatalError("out of memory allocating \(bytes) bytes") }
    let pointer = raw.bindMemory(to: T.self, capacity: Swift.max(count, 1))
    pointer.initialize(repeating: zero, count: Swift.max(count, 1))
    return pointer
}
