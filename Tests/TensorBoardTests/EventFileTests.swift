import Foundation
import TensorBoard
import XCTest

/// The framing and the messages against known answers from the reference implementations: CRC-32C check values
/// (RFC 3720 B.4 and the "123456789" check value), records and Event bytes written by the `tensorboard` package's own
/// RecordWriter and protobuf classes (tensorboard 2.21), then a file written here read back record by record.
final class EventFileTests: XCTestCase {
    func testCRC32CKnownValues() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum([]), 0)
        // tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c(b"123456789")
        XCTAssertEqual(CRC32C.masked(CRC32C.checksum(Array("123456789".utf8))), 0xC78A_B0E5)
    }

    func testRecordFramingMatchesTensorBoardsRecordWriter() throws {
        // io.BytesIO written by tensorboard.summary.writer.record_writer.RecordWriter: write(b"hello"); write(b"").
        let expected: [UInt8] = [5, 0, 0, 0, 0, 0, 0, 0, 234, 178, 4, 62, 104, 101, 108, 108, 111, 187, 31, 28, 25,
                                 0, 0, 0, 0, 0, 0, 0, 0, 41, 3, 152, 7, 216, 234, 130, 162]
        XCTAssertEqual(TFRecord.frame(Array("hello".utf8)) + TFRecord.frame([]), expected)
        XCTAssertEqual(try TFRecord.records(in: expected, source: "known"), [Array("hello".utf8), []])
    }

    func testCorruptAndTruncatedRecordsAreErrors() {
        var record = TFRecord.frame(Array("hello".utf8))
        record[13] ^= 0x01  // one bit of the data
        XCTAssertThrowsError(try TFRecord.records(in: record, source: "f")) { XCTAssertTrue("\($0)".contains("CRC"), "\($0)") }
        let whole = TFRecord.frame(Array("hello".utf8))
        XCTAssertThrowsError(try TFRecord.records(in: Array(whole.dropLast(2)), source: "f")) {
            XCTAssertTrue("\($0)".contains("ends first"), "\($0)")
        }
    }

    func testEventFileHoldsTheMessagesTensorBoardWrites() throws {
        let directory = NSTemporaryDirectory() + "swift-train-tb-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = try EventFileWriter(directory: directory, restartStep: 41, now: Date(timeIntervalSince1970: 1.5))
        try writer.writeScalars(step: 7, [("loss", 0.25)], wallTime: 1.5)
        try writer.writeScalars(step: 8, [("loss", 0.1), ("lr", 3e-4)], wallTime: 2)
        XCTAssertTrue((writer.path as NSString).lastPathComponent.hasPrefix("events.out.tfevents.1."), writer.path)

        let records = try TFRecord.records(in: [UInt8](FileManager.default.contents(atPath: writer.path)!), source: writer.path)
        XCTAssertEqual(records.count, 4)  // version, restart, two scalar events
        // Event(wall_time=1.5, file_version="brain.Event:2").SerializeToString() from tensorboard.compat.proto.
        XCTAssertEqual(records[0], [9, 0, 0, 0, 0, 0, 0, 248, 63, 26, 13, 98, 114, 97, 105, 110, 46, 69, 118, 101, 110,
                                    116, 58, 50])
        // Event(wall_time=1.5, step=41, session_log=SessionLog(status=START)).
        XCTAssertEqual(records[1], [9, 0, 0, 0, 0, 0, 0, 248, 63, 16, 41, 58, 2, 8, 1])
        // Event(wall_time=1.5, step=7, summary=Summary(value=[Summary.Value(tag="loss", simple_value=0.25)])).
        XCTAssertEqual(records[2], [9, 0, 0, 0, 0, 0, 0, 248, 63, 16, 7, 42, 13, 10, 11, 10, 4, 108, 111, 115, 115,
                                    21, 0, 0, 128, 62])

        let read = try EventFileReader.read(path: writer.path)
        XCTAssertEqual(read.fileVersion, "brain.Event:2")
        XCTAssertEqual(read.restarts, [41])
        XCTAssertEqual(read.scalars.map(\.tag), ["loss", "loss", "lr"])
        XCTAssertEqual(read.scalars.map(\.step), [7, 8, 8])
        XCTAssertEqual(read.scalars.map(\.value), [0.25, Float(0.1), Float(3e-4)])

        // A second writer in the same second does not overwrite the first file.
        let second = try EventFileWriter(directory: directory, now: Date(timeIntervalSince1970: 1.5))
        XCTAssertNotEqual(second.path, writer.path)
        XCTAssertEqual(try EventFileReader.read(path: writer.path).scalars.count, 3)
    }
}
