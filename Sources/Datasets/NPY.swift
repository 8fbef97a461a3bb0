import Foundation

/// A NumPy `.npy` array (format versions 1.0, 2.0 and 3.0), memory-mapped read-only: pages are read from the file as
/// rows are touched, so a data set larger than memory trains without being loaded whole.
///
/// Layout: the magic `\x93NUMPY`, major and minor version bytes, the header length (little-endian uint16 in 1.0,
/// uint32 in 2.0 and 3.0), then the header — a Python dict literal `{'descr': '<f4', 'fortran_order': False,
/// 'shape': (60000, 784), }` — padded with spaces, then the data. Only C-order arrays of little-endian (or
/// single-byte) numeric types are accepted; anything else is an error that names the file and the conversion to make.
public final class NPYArray: @unchecked Sendable {  // immutable after init; the mapping is read-only
    /// Element types as the header's `descr` spells them on a little-endian machine.
    public enum ElementType: String, Sendable, CaseIterable {
        case bool = "|b1", int8 = "|i1", uint8 = "|u1", int16 = "<i2", uint16 = "<u2", int32 = "<i4", uint32 = "<u4",
             int64 = "<i8", uint64 = "<u8", float16 = "<f2", float32 = "<f4", float64 = "<f8"

        public var byteSize: Int { Int(rawValue.dropFirst(2))! }
        /// The NumPy name (`float32`), for messages.
        public var name: String { "\(self)" }
    }

    public let path: String
    public let shape: [Int]
    public let elementType: ElementType
    /// (major, minor) of the file format.
    public let version: (major: UInt8, minor: UInt8)
    /// The first element; `elementCount × elementType.byteSize` bytes follow. Aligned only as the writer padded it
    /// (NumPy pads the header to 64 bytes), so typed reads use `loadUnaligned` or byte copies.
    public let data: UnsafeRawPointer
    private let mapping: UnsafeMutableRawPointer
    private let mappingLength: Int

    /// Rows: the first dimension (1 for a 0-d array).
    public var count: Int { shape.first ?? 1 }
    public var elementCount: Int { shape.reduce(1, *) }
    /// Elements per row (product of the trailing dimensions).
    public var rowElements: Int { shape.dropFirst().reduce(1, *) }
    /// `(60000, 784)`, as NumPy prints a shape.
    public var shapeDescription: String { NPYArray.describe(shape) }

    public static func describe(_ shape: [Int]) -> String {
        shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }

    /// Maps and validates `path`.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw DataError("\(path): cannot open (\(String(cString: strerror(errno)))); check the path in the configuration")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw DataError("\(path): not a regular file; point the configuration at an .npy file")
        }
        let size = Int(info.st_size)
        guard size >= 10 else { throw DataError("\(path): \(size) bytes is too short for an .npy file (header missing)") }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw DataError("\(path): cannot memory-map (\(String(cString: strerror(errno))))")
        }
        mapping = mapped
        mappingLength = size
        let bytes = UnsafeBufferPointer(start: UnsafePointer<UInt8>(OpaquePointer(mapped)), count: size)
        do {
            (version, shape, elementType, data) = try Self.parse(bytes, path: path, base: UnsafeRawPointer(mapped))
        } catch {
            munmap(mapped, size)
            throw error
        }
    }

    deinit { munmap(mapping, mappingLength) }

    private static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>, path: String, base: UnsafeRawPointer) throws
        -> ((UInt8, UInt8), [Int], ElementType, UnsafeRawPointer) {
        guard Array(bytes[0..<6]) == magic else {
            throw DataError("\(path): not an .npy file (the first bytes are not \\x93NUMPY); write it with numpy.save")
        }
        let major = bytes[6], minor = bytes[7]
        let headerStart: Int, headerLength: Int
        switch major {
        case 1: headerStart = 10; headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        case 2, 3:
            guard bytes.count >= 12 else { throw DataError("\(path): truncated .npy header") }
            headerStart = 12
            headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
        default:
            throw DataError("\(path): .npy format version \(major).\(minor) is not supported (1.0, 2.0 and 3.0 are); " +
                            "rewrite it with numpy.save")
        }
        guard headerStart + headerLength <= bytes.count else {
            throw DataError("\(path): the .npy header claims \(headerLength) bytes but the file has \(bytes.count - headerStart) after it")
        }
        var parser = NPYHeaderParser(bytes: Array(bytes[headerStart..<(headerStart + headerLength)]), path: path)
        let header = try parser.dictionary()
        guard Set(header.keys) == ["descr", "fortran_order", "shape"] else {
            throw DataError("\(path): the .npy header has keys \(header.keys.sorted()), expected descr, fortran_order and shape")
        }
        guard case .string(let descr)? = header["descr"] else {
            throw DataError("\(path): structured (record) arrays are not supported: save one plain numeric array per file")
        }
        guard case .bool(let fortranOrder)? = header["fortran_order"], case .tuple(let shape)? = header["shape"] else {
            throw DataError("\(path): malformed .npy header (fortran_order must be True/False, shape a tuple of integers)")
        }
        guard !fortranOrder else {
            throw DataError("\(path): the array is in Fortran (column-major) order; save numpy.ascontiguousarray(a) instead")
        }
        let type = try elementType(descr, path: path)
        let total = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
        let dataBytes = total.multipliedReportingOverflow(by: type.byteSize)
        let dataStart = headerStart + headerLength
        guard !dataBytes.overflow, bytes.count - dataStart >= dataBytes.partialValue else {
            throw DataError("\(path): truncated: shape \(describe(shape)) of \(type.name) needs \(dataBytes.partialValue) bytes of " +
                            "data, the file has \(bytes.count - dataStart); the file is incomplete — write it again")
        }
        return ((major, minor), shape, type, base + dataStart)
    }

    private static func elementType(_ descr: String, path: String) throws -> ElementType {
        if let type = ElementType(rawValue: descr) { return type }
        // One-byte types may be written with either byte-order mark.
        if descr.count == 3, "<=>".contains(descr.first!), let type = ElementType(rawValue: "|" + descr.dropFirst()), type.byteSize == 1 {
            return type
        }
        if descr.first == ">", let type = ElementType(rawValue: "<" + descr.dropFirst()) {
            throw DataError("\(path): the array is big-endian (dtype '\(descr)'); save a.astype('<\(descr.dropFirst())') instead")
        }
        throw DataError("\(path): dtype '\(descr)' is not a supported numeric type (supported: " +
                        ElementType.allCases.map { $0.name }.joined(separator: ", ") + ")")
    }

    /// Every element of an integer array, converted to `T` with a check that each lies in `0..<limit`.
    /// - Returns: the values, or the flat index and value of the first one outside the range.
    public func integers<T: FixedWidthInteger>(as: T.Type, below limit: Int) -> Result<[T], OutOfRange> {
        precondition(limit <= Int(T.max) + 1, "limit must fit \(T.self)")
        var out = [T](repeating: 0, count: elementCount)
        let failure: OutOfRange? = out.withUnsafeMutableBufferPointer { out in
            func convert<S: FixedWidthInteger>(_: S.Type) -> OutOfRange? {
                for i in 0..<out.count {
                    let v = (data + i * MemoryLayout<S>.size).loadUnaligned(as: S.self)
                    // A non-negative value of any width up to 64 bits converts to UInt64 exactly.
                    guard v >= 0, UInt64(v) < UInt64(limit) else { return OutOfRange(index: i, value: "\(v)") }
                    out[i] = T(truncatingIfNeeded: v)
                }
                return nil
            }
            switch elementType {
            case .uint8, .bool: return convert(UInt8.self)
            case .int8: return convert(Int8.self)
            case .int16: return convert(Int16.self)
            case .uint16: return convert(UInt16.self)
            case .int32: return convert(Int32.self)
            case .uint32: return convert(UInt32.self)
            case .int64: return convert(Int64.self)
            case .uint64: return convert(UInt64.self)
            case .float16, .float32, .float64: preconditionFailure("integers(as:below:) on a \(elementType.name) array")
            }
        }
        if let failure { return .failure(failure) }
        return .success(out)
    }

    /// The first element of an integer array outside the admissible range.
    public struct OutOfRange: Error, Equatable {
        public var index: Int
        public var value: String
    }
}

/// A value of an `.npy` header dict.
enum NPYHeaderValue: Equatable {
    case string(String)
    case bool(Bool)
    case tuple([Int])
    /// A list: only a structured dtype's descr, which is not supported; its content is not kept.
    case list
}

/// Parses the Python literal of an `.npy` header: a dict of string keys to strings, True/False, tuples of integers
/// (and lists, for structured dtypes, recognised only to be rejected with a clear message).
struct NPYHeaderParser {
    let bytes: [UInt8]
    let path: String
    var position = 0

    init(bytes: [UInt8], path: String) {
        self.bytes = bytes
        self.path = path
    }

    private func error(_ what: String) -> DataError {
        DataError("\(path): malformed .npy header (\(what) at character \(position) of " +
                  "\"\(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))\")")
    }

    private mutating func skipSpace() {
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
    }

    private mutating func peek() -> UInt8? {
        skipSpace()
        return position < bytes.count ? bytes[position] : nil
    }

    private mutating func expect(_ character: Character) throws {
        guard peek() == character.asciiValue else { throw error("expected '\(character)'") }
        position += 1
    }

    mutating func dictionary() throws -> [String: NPYHeaderValue] {
        try expect("{")
        var out: [String: NPYHeaderValue] = [:]
        while peek() != UInt8(ascii: "}") {
            guard case .string(let key) = try value() else { throw error("expected a string key") }
            try expect(":")
            guard out.updateValue(try value(), forKey: key) == nil else { throw error("duplicate key '\(key)'") }
            guard peek() == UInt8(ascii: ",") else { break }
            position += 1
        }
        try expect("}")
        return out
    }

    private mutating func value() throws -> NPYHeaderValue {
        switch peek() {
        case UInt8(ascii: "'")?, UInt8(ascii: "\"")?:
            let quote = bytes[position]
            position += 1
            let start = position
            while position < bytes.count, bytes[position] != quote {
                guard bytes[position] != UInt8(ascii: "\\") else { throw error("escapes in strings are not expected") }
                position += 1
            }
            guard position < bytes.count else { throw error("unterminated string") }
            position += 1
            return .string(String(decoding: bytes[start..<(position - 1)], as: UTF8.self))
        case UInt8(ascii: "(")?:
            position += 1
            var items: [Int] = []
            while peek() != UInt8(ascii: ")") {
                items.append(try integer())
                guard peek() == UInt8(ascii: ",") else { break }
                position += 1
            }
            try expect(")")
            return .tuple(items)
        case UInt8(ascii: "[")?:
            var depth = 0
            repeat {
                if bytes[position] == UInt8(ascii: "[") { depth += 1 } else if bytes[position] == UInt8(ascii: "]") { depth -= 1 }
                position += 1
            } while depth > 0 && position < bytes.count
            guard depth == 0 else { throw error("unterminated list") }
            return .list
        default:
            for (word, value) in [("True", true), ("False", false)] where bytes[position...].starts(with: word.utf8) {
                position += word.utf8.count
                return .bool(value)
            }
            throw error("unexpected value")
        }
    }

    private mutating func integer() throws -> Int {
        _ = peek()
        let start = position
        while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) { position += 1 }
        guard position > start, let v = Int(String(decoding: bytes[start..<position], as: UTF8.self)) else {
            throw error("expected a non-negative integer")
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "L") { position += 1 }  // Python 2 long literals
        return v
    }
}
