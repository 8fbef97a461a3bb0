import SwiftMPI
import XCTest

/// `SimulatedWorld` (ranks as threads) has the semantics of the MPI collectives the engine uses, so the single-process
/// tests of Distributed and Training mean something; the same collectives run under real MPI in swift-train-mpi-checks.
final class SimulatedWorldTests: XCTestCase {
    func testSimulatedCollectivesWithUnevenCounts() throws {
        let counts = [3, 0, 5, 2]
        let results = try SimulatedWorld.run(size: 4) { comm -> ([Float], [Float], [Float]) in
            var sum = (0..<4).map { Float(comm.rank * 10 + $0) }
            try comm.allReduce(&sum, op: .sum)
            let send = (0..<10).map { Float(comm.rank + $0) }
            var block = [Float](repeating: 0, count: counts[comm.rank])
            try send.withUnsafeBufferPointer { s in try block.withUnsafeMutableBufferPointer {
                try comm.reduceScatter(s, into: $0, counts: counts, op: .sum) } }
            var gathered = [Float](repeating: -1, count: 10)
            let start = displacements(of: counts)[comm.rank]
            for i in 0..<counts[comm.rank] { gathered[start + i] = Float(comm.rank) }
            try gathered.withUnsafeMutableBufferPointer { try comm.allGatherInPlace($0, counts: counts) }
            return (sum, block, gathered)
        }
        for (rank, r) in results.enumerated() {
            XCTAssertEqual(r.0, [60, 64, 68, 72])
            let start = displacements(of: counts)[rank]
            XCTAssertEqual(r.1, (0..<counts[rank]).map { Float(6 + 4 * (start + $0)) })
            XCTAssertEqual(r.2, [0, 0, 0, 2, 2, 2, 2, 2, 3, 3])
        }
    }

    func testAFailingRankDoesNotHangTheOthers() {
        XCTAssertThrowsError(try SimulatedWorld.run(size: 3) { comm -> Int in
            if comm.rank == 1 { throw CommunicationError(call: "test", message: "rank 1 gives up") }
            try comm.barrier()
            return 0
        })
    }
}
