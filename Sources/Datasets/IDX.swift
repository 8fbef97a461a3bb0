import CZlib
import Foundation

/// Errors reading datasets; every message names the file and says how to fix the problem.
public struct DataError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// An IDX array (LeCun's MNIST format): magic 0x00 0x00 type rank, then `rank` big-endian UInt32 dimensions, then
/// the data. Only unsigned bytes (type 0x08) occur in MNIST-format datasets and only they are supported.
public struct IDXArray: Equatable {
    public var shape: [Int]
    public var bytes: [UInt8]

    public init(shape: [Int], bytes: [UInt8]) {
        precondition(shape.reduce(1, *) == bytes.count, "IDX shape \(shape) needs \(shape.reduce(1, *)) bytes, got \(bytes.count)")
        self.shape = shape
        self.bytes = bytes
    }

    public var count: Int { shape.first ?? 0 }
    /// Elements per item (product of the trailing dimensions).
    public var itemSize: Int { shape.dropFirst().reduce(1, *) }
}

public enum IDX {
    /// Reads an IDX file, gzip-compressed (as Debian installs them) or plain; zlib's gz reader handles both.
    /// - Parameter package: the Debian package that installs the file, named in the missing-file error.
    public static func read(path: String, package: String? = nil) throws -> IDXArray {
        guard FileManager.default.fileExists(atPath: path) else {
            var message = "\(path): no such file"
            if let package { message += " (it is installed by the Debian package `\(package)`: run launch/setup, or apt-get install \(package))" }
            throw DataError(message)
        }
        guard let file = gzopen(path, "rb") else {
            throw DataError("\(path): cannot open (\(String(cString: strerror(errno))))")
        }
        defer { gzclose(file) }
        gzbuffer(file, 1 << 20)

        func readExactly(_ n: Int, what: String) throws -> [UInt8] {
            var out = [UInt8](repeating: 0, count: n)
            var filled = 0
            while filled < n {
                let chunk = Int32(min(n - filled, 1 << 30))
                let got = out.withUnsafeMutableBytes { gzread(file, $0.baseAddress! + filled, UInt32(chunk)) }
                if got < 0 {
                    var code: Int32 = 0
                    let text = gzerror(file, &code).map { String(cString: $0) } ?? "unknown error"
                    throw DataError("\(path): corrupt or truncated compressed data while reading \(what) (\(text)); " +
                                    "reinstall the file (e.g. apt-get install --reinstall \(package ?? "the dataset package"))")
                }
                if got == 0 {
                    throw DataError("\(path): truncated: expected \(n) bytes of \(what), found \(filled); " +
                                    "the file is incomplete — reinstall or re-download it")
                }
                filled += Int(got)
            }
            return out
        }

        let header = try readExactly(4, what: "the header")
        guard header[0] == 0, header[1] == 0 else {
            throw DataError(String(format: "%@: wrong magic number 0x%02X%02X%02X%02X: not an IDX file (expected 0x0000 then type and rank)",
                                   path, header[0], header[1], header[2], header[3]))
        }
        guard header[2] == 0x08 else {
            throw DataError(String(format: "%@: IDX element type 0x%02X is not supported (only unsigned bytes, 0x08)", path, header[2]))
        }
        let rank = Int(header[3])
        guard (1...4).contains(rank) else { throw DataError("\(path): IDX rank \(rank) is not 1 to 4: wrong magic number") }
        let dims = try readExactly(4 * rank, what: "the dimensions")
        var shape: [Int] = []
        for d in 0..<rank {
            shape.append(Int(dims[4 * d]) << 24 | Int(dims[4 * d + 1]) << 16 | Int(dims[4 * d + 2]) << 8 | Int(dims[4 * d + 3]))
        }
        let total = shape.reduce(1, *)
        let bytes = try readExactly(total, what: "the data (shape \(shape))")
        return IDXArray(shape: shape, bytes: bytes)
    }

    /// Writes a plain (uncompressed) IDX file of unsigned bytes; used by tests and tools.
    public static func write(_ array: IDXArray, to path: String) throws {
        var data = Data([0, 0, 0x08, UInt8(array.shape.count)])
        for d in array.shape { data.append(contentsOf: [UInt8(d >> 24 & 0xFF), UInt8(d >> 16 & 0xFF), UInt8(d >> 8 & 0xFF), UInt8(d & 0xFF)]) }
        data.append(contentsOf: array.bytes)
        try data.write(to: URL(fileURLWithPath: path))
    }
}

/// CRC-32 (zlib's, the same as gzip and PNG use) of `bytes`, continuing from `initial`.
public func crc32(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return initial }
    var crc = UInt(initial)
    var offset = 0
    while offset < bytes.count {  // zlib takes 32-bit lengths
        let chunk = min(bytes.count - offset, 1 << 30)
        crc = CZlib.crc32(crc, base.assumingMemoryBound(to: UInt8.self) + offset, UInt32(chunk))
        offset += chunk
    }
    return UInt32(crc)
}
