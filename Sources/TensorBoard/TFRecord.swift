import Foundation

/// Errors writing or reading event files; each names the file.
public struct TensorBoardError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// TFRecord framing, the container of TensorBoard event files. Each record is
///
///     uint64 length (little-endian) · uint32 masked CRC-32C of those 8 bytes · length bytes of data ·
///     uint32 masked CRC-32C of the data
///
/// so a reader can find a torn record at the end of a file that was being written when the process died.
public enum TFRecord {
    /// One framed record around `payload`.
    public static func frame(_ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + 16)
        let length = littleEndianBytes(UInt64(payload.count))
        out += length
        out += littleEndianBytes(CRC32C.masked(CRC32C.checksum(length)))
        out += payload
        out += littleEndianBytes(CRC32C.masked(CRC32C.checksum(payload)))
        return out
    }

    /// The payloads of the records in `bytes`, checking both CRCs of every record.
    /// - Parameter source: named in errors (the file's path).
    public static func records(in bytes: [UInt8], source: String) throws -> [[UInt8]] {
        var records: [[UInt8]] = []
        var offset = 0
        while offset < bytes.count {
            guard bytes.count - offset >= 12 else {
                throw TensorBoardError("\(source): \(bytes.count - offset) stray bytes at offset \(offset): a truncated record header")
            }
            let header = Array(bytes[offset..<(offset + 8)])
            let length = Int(header.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
            guard readUInt32(bytes, at: offset + 8) == CRC32C.masked(CRC32C.checksum(header)) else {
                throw TensorBoardError("\(source): record at offset \(offset): the length's CRC does not match")
            }
            let start = offset + 12
            guard length >= 0, bytes.count - start >= length + 4 else {
                throw TensorBoardError("\(source): record at offset \(offset) claims \(length) bytes but the file ends first")
            }
            let payload = Array(bytes[start..<(start + length)])
            guard readUInt32(bytes, at: start + length) == CRC32C.masked(CRC32C.checksum(payload)) else {
                throw TensorBoardError("\(source): record at offset \(offset): the data's CRC does not match (corrupt file)")
            }
            records.append(payload)
            offset = start + length + 4
        }
        return records
    }

    static func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    static func readUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
    }
}
