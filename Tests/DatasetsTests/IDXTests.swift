import Datasets
import Foundation
import XCTest

final class IDXTests: XCTestCase {
    private var directory: String!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "swift-train-idx-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    private func writeSplit(images: Int, labels: Int, gzip: Bool) throws {
        let img = IDXArray(shape: [images, 2, 3], bytes: (0..<(images * 6)).map { UInt8($0 % 256) })
        let lab = IDXArray(shape: [labels], bytes: (0..<labels).map { UInt8($0 % 10) })
        for (array, stem) in [(img, "train-images-idx3-ubyte"), (lab, "train-labels-idx1-ubyte"),
                              (img, "t10k-images-idx3-ubyte"), (lab, "t10k-labels-idx1-ubyte")] {
            let path = "\(directory!)/\(stem)"
            try IDX.write(array, to: path)
            if gzip { try run("/bin/gzip", ["-f", path]) }
        }
    }

    private func run(_ tool: String, _ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
    }

    func testReadsPlainAndGzipWithTheSameContent() throws {
        try writeSplit(images: 5, labels: 5, gzip: false)
        let plain = try IDX.read(path: "\(directory!)/train-images-idx3-ubyte")
        XCTAssertEqual(plain.shape, [5, 2, 3])
        XCTAssertEqual(plain.itemSize, 6)
        try run("/bin/gzip", ["-k", "\(directory!)/train-images-idx3-ubyte"])
        let gz = try IDX.read(path: "\(directory!)/train-images-idx3-ubyte.gz")
        XCTAssertEqual(gz, plain)
    }

    func testMissingFileNamesThePackage() {
        XCTAssertThrowsError(try IDX.read(path: "\(directory!)/nope.gz", package: "dataset-fashion-mnist")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("nope.gz") && text.contains("dataset-fashion-mnist"), text)
        }
    }

    func testWrongMagicNumber() throws {
        let path = "\(directory!)/bad"
        try Data([0x1F, 0x00, 0x08, 0x01, 0, 0, 0, 1, 7]).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try IDX.read(path: path)) { XCTAssertTrue("\($0)".contains("magic"), "\($0)") }
    }

    func testTruncatedData() throws {
        let path = "\(directory!)/short"
        // Header says 10 items of 1 byte, only 4 present.
        try Data([0, 0, 0x08, 0x01, 0, 0, 0, 10, 1, 2, 3, 4]).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try IDX.read(path: path)) { XCTAssertTrue("\($0)".contains("truncated"), "\($0)") }
    }

    func testTruncatedGzip() throws {
        try writeSplit(images: 50, labels: 50, gzip: true)
        let path = "\(directory!)/train-images-idx3-ubyte.gz"
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try IDX.read(path: path)) { error in
            XCTAssertTrue("\(error)".contains("truncated") || "\(error)".contains("corrupt"), "\(error)")
        }
    }

    func testImageLabelCountMismatch() throws {
        try writeSplit(images: 5, labels: 4, gzip: true)
        XCTAssertThrowsError(try FashionMNIST.load(directory: directory)) { error in
            XCTAssertTrue("\(error)".contains("mismatch") && "\(error)".contains("5 images") && "\(error)".contains("4 labels"), "\(error)")
        }
    }

    func testLoadsAGzipSplitAndNormalises() throws {
        try writeSplit(images: 6, labels: 6, gzip: true)
        let (train, test) = try FashionMNIST.load(directory: directory)
        XCTAssertEqual(train.count, 6)
        XCTAssertEqual(test.featureCount, 6)
        let mean = train.features.reduce(0, +) / Float(train.features.count)
        XCTAssertEqual(mean, 0, accuracy: 1e-4, "training features are standardised")
    }

    /// The real data set as installed by launch/setup (dataset-fashion-mnist).
    func testRealFashionMNIST() throws {
        let (train, test) = try FashionMNIST.load()
        XCTAssertEqual(train.count, 60_000)
        XCTAssertEqual(test.count, 10_000)
        XCTAssertEqual(train.featureCount, 784)
        // Balanced classes: 6,000 training images each.
        var counts = [Int](repeating: 0, count: 10)
        for l in train.labels { counts[Int(l)] += 1 }
        XCTAssertEqual(counts, Array(repeating: 6000, count: 10))
    }
}

final class BatchSamplerTests: XCTestCase {
    func testRanksTakeDisjointSlicesWhoseUnionIsTheGlobalBatch() {
        var sampler = BatchSampler(datasetSize: 1000, globalBatch: 96, seed: 7)
        var single = BatchSampler(datasetSize: 1000, globalBatch: 96, seed: 7)
        for step in [0, 1, 10, 11, 25] {  // 10 steps per epoch: crosses epochs
            var all: [Int32] = []
            var slice: [Int32] = []
            for rank in 0..<4 {
                sampler.indices(step: step, offset: rank * 24, rows: 24, into: &slice)
                all += slice
            }
            var whole: [Int32] = []
            single.indices(step: step, offset: 0, rows: 96, into: &whole)
            XCTAssertEqual(all, whole)
            XCTAssertEqual(Set(all).count, 96, "no example twice in one global batch")
        }
    }

    func testEpochIsAPermutationAndSeedMatters() {
        var a = BatchSampler(datasetSize: 100, globalBatch: 10, seed: 1)
        var b = BatchSampler(datasetSize: 100, globalBatch: 10, seed: 2)
        var seen: [Int32] = [], other: [Int32] = [], tmp: [Int32] = []
        for s in 0..<10 {
            a.indices(step: s, offset: 0, rows: 10, into: &tmp); seen += tmp
            b.indices(step: s, offset: 0, rows: 10, into: &tmp); other += tmp
        }
        XCTAssertEqual(Set(seen), Set(0..<100))
        XCTAssertNotEqual(seen, other)
        var again = BatchSampler(datasetSize: 100, globalBatch: 10, seed: 1)
        again.indices(step: 3, offset: 0, rows: 10, into: &tmp)
        XCTAssertEqual(tmp, Array(seen[30..<40]))
        a.indices(step: 10, offset: 0, rows: 10, into: &tmp)
        XCTAssertNotEqual(tmp, Array(seen[0..<10]), "the next epoch is reshuffled")
    }
}

/// BatchSplit: every global row is taken exactly once, in rank order, shares differ by at most one row.
final class BatchSplitTests: XCTestCase {
    func testSharesCoverTheGlobalBatchOnceInOrder() {
        for batch in [1, 7, 25, 100, 256] {
            for world in 1...7 {
                for accum in [1, 2, 3] where batch >= world * accum {
                    let split = BatchSplit(globalBatch: batch, worldSize: world, gradAccum: accum)
                    var next = 0
                    var sizes: [Int] = []
                    for rank in 0..<world {
                        let r = split.rows(rank: rank)
                        XCTAssertEqual(r.firstRow, next, "B \(batch) N \(world): rank \(rank) starts where the previous ended")
                        for m in 0..<accum {
                            let micro = split.microBatch(rank: rank, index: m)
                            XCTAssertEqual(micro.firstRow, next)
                            XCTAssertGreaterThan(micro.count, 0)
                            XCTAssertLessThanOrEqual(micro.count, split.largestMicroBatch)
                            next += micro.count
                            sizes.append(micro.count)
                        }
                        XCTAssertEqual(next, r.firstRow + r.count)
                        XCTAssertLessThanOrEqual(r.count, split.largestRankBatch)
                    }
                    XCTAssertEqual(next, batch, "B \(batch) N \(world) A \(accum): every row once")
                    let ranks = (0..<world).map { split.rows(rank: $0).count }
                    XCTAssertLessThanOrEqual(ranks.max()! - ranks.min()!, 1, "rank shares differ by at most one row")
                    XCTAssertEqual(split.isEven, Set(sizes).count == 1)
                }
            }
        }
        XCTAssertNotNil(BatchSplit.problem(globalBatch: 5, worldSize: 3, gradAccum: 2))
        XCTAssertNil(BatchSplit.problem(globalBatch: 6, worldSize: 3, gradAccum: 2))
    }

    /// An even split is the layout of before uneven batches: rank r takes r·b ..< (r+1)·b, micro-batches in order.
    func testEvenSplitKeepsTheOldLayout() {
        let split = BatchSplit(globalBatch: 64, worldSize: 4, gradAccum: 2)
        for rank in 0..<4 {
            for m in 0..<2 {
                let micro = split.microBatch(rank: rank, index: m)
                XCTAssertEqual(micro.firstRow, rank * 16 + m * 8)
                XCTAssertEqual(micro.count, 8)
            }
        }
    }
}
