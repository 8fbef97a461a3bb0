import Datasets
import Foundation
import XCTest

/// The `.npy` reader, the array data set and `.npy` token streams on files NumPy wrote
/// (Fixtures/make_npy_fixtures.py, which spells out every fixture's content).
final class NPYTests: XCTestCase {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    func path(_ name: String) -> String { "\(fixtures)/\(name)" }

    /// The fixtures' features: arange(36) · 0.5 − 3, shape (6, 2, 3).
    let expectedFeatures = (0..<36).map { Float($0) * 0.5 - 3 }

    func gatherAll(_ data: ArrayDataset) -> (features: [Float], labels: [Int32]) {
        var features = [Float](repeating: .nan, count: data.count * data.featureCount)
        var labels = [Int32](repeating: -1, count: data.count)
        features.withUnsafeMutableBufferPointer { f in
            labels.withUnsafeMutableBufferPointer { l in
                data.gather(indices: (0..<Int32(data.count)).map { $0 }, features: f.baseAddress!, labels: l.baseAddress!)
            }
        }
        return (features, labels)
    }

    func assertError(_ body: @autoclosure () throws -> Any, mentions parts: [String], file: StaticString = #filePath,
                     line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue(error is DataError, "\(type(of: error))", file: file, line: line)
            for part in parts { XCTAssertTrue("\(error)".contains(part), "'\(part)' not in: \(error)", file: file, line: line) }
        }
    }

    func testHeaderVersionsShapesAndTypes() throws {
        for (name, major, type) in [("features_f32.npy", 1, NPYArray.ElementType.float32), ("features_f32_v3.npy", 3, .float32),
                                    ("features_u8_v2.npy", 2, .uint8), ("labels_i64.npy", 1, .int64), ("labels_u8_v2.npy", 2, .uint8)] {
            let array = try NPYArray(path: path(name))
            XCTAssertEqual(Int(array.version.major), major, name)
            XCTAssertEqual(array.elementType, type, name)
        }
        let features = try NPYArray(path: path("features_f32.npy"))
        XCTAssertEqual(features.shape, [6, 2, 3])
        XCTAssertEqual(features.rowElements, 6)
        XCTAssertEqual(features.shapeDescription, "(6, 2, 3)")
        XCTAssertEqual(try NPYArray(path: path("labels_i32.npy")).shapeDescription, "(6,)")
    }

    func testFloatFeaturesAndEveryLabelTypeLoadAsStored() throws {
        for labels in ["labels_i64.npy", "labels_i32.npy", "labels_u8_v2.npy"] {
            for features in ["features_f32.npy", "features_f32_v3.npy"] {
                let data = try ArrayDataset.load(features: path(features), labels: path(labels))
                XCTAssertEqual(data.count, 6)
                XCTAssertEqual(data.featureCount, 6)
                XCTAssertEqual(data.exampleShape, [2, 3])
                XCTAssertEqual(data.classes, 3, "one more than the largest label")
                let all = gatherAll(data)
                XCTAssertEqual(all.features, expectedFeatures, "\(features) with \(labels)")
                XCTAssertEqual(all.labels, [0, 1, 2, 0, 1, 2], labels)
            }
        }
    }

    func testGatherTakesTheNamedRowsInOrder() throws {
        let data = try ArrayDataset.load(features: path("features_f32.npy"), labels: path("labels_i64.npy"))
        var features = [Float](repeating: .nan, count: 2 * 6)
        var labels: [Int32] = [-1, -1]
        data.gather(indices: [4, 1], features: &features, labels: &labels)
        XCTAssertEqual(features, Array(expectedFeatures[24..<30]) + Array(expectedFeatures[6..<12]))
        XCTAssertEqual(labels, [1, 1])
    }

    /// uint8 pixels become x / 255 with float32 division: bit for bit NumPy's `a.astype(np.float32) / 255`.
    func testUInt8FeaturesScaleToTheUnitIntervalAsNumPyDoes() throws {
        let bytes = try ArrayDataset.load(features: path("features_u8_v2.npy"), labels: path("labels_i64.npy"))
        let floats = try ArrayDataset.load(features: path("features_u8_as_f32.npy"), labels: path("labels_i64.npy"))
        let scaled = gatherAll(bytes).features
        XCTAssertEqual(scaled.map(\.bitPattern), gatherAll(floats).features.map(\.bitPattern))
        XCTAssertEqual(scaled[0], 0)
        XCTAssertEqual(scaled[1], 1)
        XCTAssertTrue(scaled.allSatisfy { (0...1).contains($0) })
    }

    func testTestSplitMustMatchTheTrainingShapeAndClasses() throws {
        let (train, test) = try ArrayDataset.loadSplits(trainFeatures: path("features_f32.npy"), trainLabels: path("labels_i64.npy"),
                                                        testFeatures: path("test_features_2x3.npy"),
                                                        testLabels: path("test_labels_i64.npy"), classes: nil)
        XCTAssertEqual(train.classes, 3)
        XCTAssertEqual(test.classes, 3)
        XCTAssertEqual(gatherAll(test).labels, [2, 1, 0, 1])
        assertError(try ArrayDataset.loadSplits(trainFeatures: path("features_f32.npy"), trainLabels: path("labels_i64.npy"),
                                                testFeatures: path("test_features_3x2.npy"), testLabels: path("test_labels_i64.npy"),
                                                classes: nil),
                    mentions: ["test_features_3x2.npy", "(4, 3, 2)", "expected (4, 2, 3)"])
        // A test label the training labels never reach, with the class count inferred from them.
        assertError(try ArrayDataset.loadSplits(trainFeatures: path("features_f32.npy"), trainLabels: path("labels_i64.npy"),
                                                testFeatures: path("test_features_2x3.npy"), testLabels: path("test_labels_class_3.npy"),
                                                classes: nil),
                    mentions: ["test_labels_class_3.npy", "label 3 of example 2", "0..<3", "data.classes"])
        // Declaring the classes admits it.
        XCTAssertEqual(try ArrayDataset.loadSplits(trainFeatures: path("features_f32.npy"), trainLabels: path("labels_i64.npy"),
                                                   testFeatures: path("test_features_2x3.npy"),
                                                   testLabels: path("test_labels_class_3.npy"), classes: 4).test.classes, 4)
    }

    func testBadLabelsAreErrorsNamingTheFile() {
        let features = path("features_f32.npy")
        assertError(try ArrayDataset.load(features: features, labels: path("labels_out_of_range.npy"), classes: 3),
                    mentions: ["labels_out_of_range.npy", "label 5 of example 2", "0..<3", "data.classes"])
        assertError(try ArrayDataset.load(features: features, labels: path("labels_negative.npy")),
                    mentions: ["labels_negative.npy", "label -1 of example 3"])
        assertError(try ArrayDataset.load(features: features, labels: path("labels_five.npy")),
                    mentions: ["labels_five.npy", "shape (5,)", "expected (6,)"])
        assertError(try ArrayDataset.load(features: features, labels: path("labels_f32.npy")),
                    mentions: ["labels_f32.npy", "float32", "int64, int32 or uint8"])
    }

    func testBadFeatureFilesAreErrorsSayingHowToFixThem() {
        let labels = path("labels_i64.npy")
        assertError(try ArrayDataset.load(features: path("features_f64.npy"), labels: labels),
                    mentions: ["features_f64.npy", "float64", "expected float32 or uint8", "astype(np.float32)"])
        assertError(try ArrayDataset.load(features: path("features_big_endian.npy"), labels: labels),
                    mentions: ["features_big_endian.npy", "big-endian", "'>f4'", "astype('<f4')"])
        assertError(try ArrayDataset.load(features: path("features_fortran.npy"), labels: labels),
                    mentions: ["features_fortran.npy", "Fortran", "ascontiguousarray"])
        assertError(try ArrayDataset.load(features: path("features_vector.npy"), labels: labels),
                    mentions: ["features_vector.npy", "shape (6,)", "(examples, features…)"])
        assertError(try ArrayDataset.load(features: path("records.npy"), labels: labels),
                    mentions: ["records.npy", "structured"])
        assertError(try ArrayDataset.load(features: path("no-such.npy"), labels: labels), mentions: ["no-such.npy", "cannot open"])
    }

    func testDamagedFilesAreErrors() throws {
        let directory = NSTemporaryDirectory() + "swift-train-npy-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let whole = try Data(contentsOf: URL(fileURLWithPath: path("features_f32.npy")))
        let truncated = "\(directory)/truncated.npy"
        try whole.dropLast(8).write(to: URL(fileURLWithPath: truncated))
        assertError(try NPYArray(path: truncated), mentions: ["truncated.npy", "truncated", "needs 144 bytes", "has 136"])
        let notNPY = "\(directory)/idx.npy"
        try Data([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]).write(to: URL(fileURLWithPath: notNPY))
        assertError(try NPYArray(path: notNPY), mentions: ["idx.npy", "not an .npy file"])
        var future = whole
        future[6] = 9
        let futurePath = "\(directory)/future.npy"
        try future.write(to: URL(fileURLWithPath: futurePath))
        assertError(try NPYArray(path: futurePath), mentions: ["future.npy", "version 9.0"])
        // A header that is not the dict NumPy writes.
        var garbled = whole
        let brace = garbled.firstIndex(of: UInt8(ascii: "{"))!
        garbled[brace] = UInt8(ascii: "(")
        let garbledPath = "\(directory)/garbled.npy"
        try garbled.write(to: URL(fileURLWithPath: garbledPath))
        assertError(try NPYArray(path: garbledPath), mentions: ["garbled.npy", "malformed .npy header"])
    }

    func testTokenStreamsFromNPY() throws {
        for name in ["tokens_u16.npy", "tokens_i64.npy"] {
            let corpus = try TextCorpus.load(path: path(name), vocabulary: 300, validationFraction: 0.1)
            XCTAssertEqual(corpus.train + corpus.validation, (0..<300).map { UInt16($0) }, name)
            XCTAssertEqual(corpus.validation.count, 30)
        }
        assertError(try TextCorpus.load(path: path("tokens_u16.npy"), vocabulary: 256),
                    mentions: ["tokens_u16.npy", "token 256 at index 256", "0..<256", "data.vocabulary"])
        assertError(try TextCorpus.load(path: path("tokens_2d.npy"), vocabulary: 300),
                    mentions: ["tokens_2d.npy", "shape (10, 30)", "expected (300,)"])
        assertError(try TextCorpus.load(path: path("tokens_f32.npy"), vocabulary: 300),
                    mentions: ["tokens_f32.npy", "float32", "uint16"])
    }

    /// A folder of token files reads `.bin` and `.npy` alike, in sorted order.
    func testTokenFolderMixesBinAndNPY() throws {
        let directory = NSTemporaryDirectory() + "swift-train-tokens-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.copyItem(atPath: path("tokens_u16.npy"), toPath: "\(directory)/b.npy")
        try TextCorpus.writeTokens([7, 8, 9], to: "\(directory)/a.bin")
        let corpus = try TextCorpus.loadTokens(path: directory, vocabulary: 300, validationFraction: 0.1)
        XCTAssertEqual(corpus.train + corpus.validation, [7, 8, 9] + (0..<300).map { UInt16($0) })
    }
}
