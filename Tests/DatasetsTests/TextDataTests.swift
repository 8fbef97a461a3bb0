import Datasets
import Foundation
import XCTest

final class TextDataTests: XCTestCase {
    private var directory: String!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "swift-train-text-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    private func write(_ relative: String, _ text: String) throws {
        let path = "\(directory!)/\(relative)"
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    private func bytes(_ corpus: TextCorpus) -> String {
        String(decoding: (corpus.train + corpus.validation).map { UInt8($0) }, as: UTF8.self)
    }

    func testFolderLoadingSkipsIndexesLinksHiddenAndBinaryFilesInSortedOrder() throws {
        try write("b", "BB")
        try write("a", "AA")
        try write("a.dat", "index")
        try write(".hidden", "hidden")
        try write("sub/c", "CC")
        try Data([0x43, 0x00, 0x44]).write(to: URL(fileURLWithPath: "\(directory!)/binary"))
        try FileManager.default.createSymbolicLink(atPath: "\(directory!)/a.u8", withDestinationPath: "a")
        let corpus = try TextCorpus.loadBytes(path: directory, validationFraction: 0)
        XCTAssertEqual(bytes(corpus), "AABBCC")
        XCTAssertEqual(corpus.vocabulary, 256)
        XCTAssertEqual(try TextCorpus.textFiles(at: directory).map { ($0 as NSString).lastPathComponent }, ["a", "b", "c"])
        // Same result on a second load, and a single file loads as itself.
        XCTAssertEqual(try TextCorpus.loadBytes(path: directory, validationFraction: 0), corpus)
        XCTAssertEqual(bytes(try TextCorpus.loadBytes(path: "\(directory!)/b", validationFraction: 0)), "BB")
    }

    func testValidationSplitIsTheTail() throws {
        try write("text", String(repeating: "x", count: 95) + "01234")
        let corpus = try TextCorpus.loadBytes(path: directory, validationFraction: 0.05)
        XCTAssertEqual(corpus.train.count, 95)
        XCTAssertEqual(corpus.validation.count, 5)
        XCTAssertEqual(String(decoding: corpus.validation.map { UInt8($0) }, as: UTF8.self), "01234")
        let tenth = try TextCorpus(tokens: Array(repeating: 1, count: 1001), vocabulary: 2)
        XCTAssertEqual(tenth.validation.count, 100)  // ⌊1001 · 0.1⌋
        XCTAssertEqual(tenth.train.count, 901)
    }

    func testTokenFileRoundTripAndBadToken() throws {
        let tokens: [UInt16] = [0, 1, 300, 65_535, 7, 2]
        let path = "\(directory!)/train.bin"
        try TextCorpus.writeTokens(tokens, to: path)
        let corpus = try TextCorpus.load(path: path, vocabulary: 65_536, validationFraction: 0)
        XCTAssertEqual(corpus.train, tokens)
        XCTAssertEqual(corpus.vocabulary, 65_536)
        XCTAssertThrowsError(try TextCorpus.loadTokens(path: path, vocabulary: 1000)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains(path) && message.contains("65535") && message.contains("byte offset 6"), message)
        }
        try Data([1, 0, 2]).write(to: URL(fileURLWithPath: "\(directory!)/odd.bin"))
        XCTAssertThrowsError(try TextCorpus.loadTokens(path: "\(directory!)/odd.bin", vocabulary: 10)) { error in
            XCTAssertTrue("\(error)".contains("odd size"), "\(error)")
        }
    }

    func testErrors() throws {
        XCTAssertThrowsError(try TextCorpus.loadBytes(path: directory)) { error in
            XCTAssertTrue("\(error)".contains("empty"), "\(error)")
        }
        try write("empty", "")
        XCTAssertThrowsError(try TextCorpus.loadBytes(path: directory)) { error in
            XCTAssertTrue("\(error)".contains("empty"), "\(error)")
        }
        XCTAssertThrowsError(try TextCorpus.loadBytes(path: "\(directory!)/missing")) { error in
            XCTAssertTrue("\(error)".contains("no such file"), "\(error)")
        }
        try write("short", "abcdef")
        let corpus = try TextCorpus.loadBytes(path: directory, validationFraction: 0)
        XCTAssertNoThrow(try corpus.check(context: 5))
        XCTAssertThrowsError(try corpus.check(context: 6)) { error in
            XCTAssertTrue("\(error)".contains("context + 1"), "\(error)")
        }
    }

    func testTrainWindowsAreKeyedByStepAndRowAndTargetsAreShifted() throws {
        let text = (0..<2000).map { _ in "the quick brown fox " }.joined().prefix(5000)
        try write("text", String(text))
        let corpus = try TextCorpus.loadBytes(path: directory)
        let T = 16
        func window(_ step: Int, _ row: Int, seed: UInt64 = 1) -> ([Int32], [Int32]) {
            var tokens = [Int32](repeating: -1, count: T), targets = tokens
            corpus.trainWindow(step: step, row: row, seed: seed, context: T, tokens: &tokens, targets: &targets)
            return (tokens, targets)
        }
        let (a, ay) = window(3, 5)
        let (b, by) = window(3, 5)
        XCTAssertEqual(a, b)
        XCTAssertEqual(ay, by)
        XCTAssertEqual(Array(a.dropFirst()), Array(ay.dropLast()), "targets are the tokens shifted by one")
        // Different rows, steps or seeds start elsewhere (the text has period 20, so compare whole windows of
        // several distinct (step, row) keys: not all can coincide).
        let others = [window(3, 6).0, window(4, 5).0, window(3, 5, seed: 2).0, window(0, 0).0, window(9, 1).0]
        XCTAssertTrue(others.contains { $0 != a })
        // Windows lie inside the training split.
        let trainText = corpus.train.map(Int32.init)
        XCTAssertTrue((0...(trainText.count - T - 1)).contains { Array(trainText[$0..<($0 + T)]) == a && trainText[$0 + T] == ay.last! })
    }

    func testTrainWindowStartsVaryAcrossRows() throws {
        let tokens = (0..<10_000).map { UInt16($0 % 1000) }
        let corpus = try TextCorpus(tokens: tokens, vocabulary: 1000, validationFraction: 0)
        var starts = Set<Int32>()
        var t = [Int32](repeating: 0, count: 8), y = t
        for row in 0..<16 {
            corpus.trainWindow(step: 0, row: row, seed: 42, context: 8, tokens: &t, targets: &y)
            starts.insert(t[0])
            XCTAssertEqual(Array(t.dropFirst()), Array(y.dropLast()))
        }
        XCTAssertGreaterThan(starts.count, 12)
    }

    func testValidationWindowsAreConsecutiveAndNonOverlapping() throws {
        let tokens = (0..<100).map { UInt16($0) }
        let corpus = try TextCorpus(tokens: tokens, vocabulary: 100, validationFraction: 0.3)  // validation 70..<100
        XCTAssertEqual(corpus.validationWindowCount(context: 8), 3)  // (30 − 1) / 8
        XCTAssertEqual(corpus.validationWindowCount(context: 29), 1)
        XCTAssertEqual(corpus.validationWindowCount(context: 30), 0)
        var t = [Int32](repeating: 0, count: 8), y = t
        for i in 0..<3 {
            corpus.validationWindow(index: i, context: 8, tokens: &t, targets: &y)
            XCTAssertEqual(t, (0..<8).map { Int32(70 + 8 * i + $0) })
            XCTAssertEqual(y, (0..<8).map { Int32(71 + 8 * i + $0) })
        }
    }

    /// The real default corpus (Debian `fortunes`, installed by launch/setup).
    func testFortunesCorpusLoads() throws {
        guard FileManager.default.fileExists(atPath: TextCorpus.defaultFolder) else {
            throw XCTSkip("\(TextCorpus.defaultFolder) is not installed (apt-get install fortunes)")
        }
        let corpus = try TextCorpus.loadBytes()
        XCTAssertEqual(corpus.vocabulary, 256)
        XCTAssertGreaterThan(corpus.train.count + corpus.validation.count, 100_000)
        XCTAssertEqual(corpus.validation.count, (corpus.train.count + corpus.validation.count) / 10)
        XCTAssertNoThrow(try corpus.check(context: 128))
        XCTAssertFalse(try TextCorpus.textFiles(at: TextCorpus.defaultFolder).contains { $0.hasSuffix(".dat") || $0.hasSuffix(".u8") })
    }
}
