import Foundation
import SwiftMPI
import Tensors
import Training

/// The typed collectives against the raw MPI calls, interleaved (`swift-train bench-comm`, under mpirun): blocking
/// all-reduce, reduce-scatter and all-gatherv through the wrapper and through MPI directly, then the non-blocking
/// forms the gradient buckets use (Open MPI's libnbc against the direct exchange). Rank 0 prints the table.
public enum CollectiveBenchmark {
    public static func run(elements: Int, repeats: Int, json: String?) throws {
        try MPIRuntime.initialize()
        defer { MPIRuntime.finalize() }
        let comm = try MPICommunicator()
        let n = elements, world = comm.size
        let buffer = FloatBuffer(count: n)
        buffer.fill(1)
        let counts = (0..<world).map { r in n / world + (r < n % world ? 1 : 0) }
        let counts32 = counts.map { Int32($0) }, displacements32 = displacements(of: counts).map { Int32($0) }
        let shard = FloatBuffer(count: counts[comm.rank])

        func time(_ body: () throws -> Void) throws -> Double {
            try comm.barrier()
            let t0 = MPIRuntime.wallTime()
            try body()
            return MPIRuntime.wallTime() - t0
        }
        var results: [String: [Double]] = [:]
        let measurements: [(String, () throws -> Void)] = [
            ("allreduce wrapper", { try comm.allReduce(buffer.buffer, op: .sum) }),
            ("allreduce raw", { RawMPI.allReduceSum(buffer.pointer, count: Int32(n)) }),
            ("reduce-scatter wrapper", {
                try comm.reduceScatter(UnsafeBufferPointer(buffer.buffer), into: shard.buffer, counts: counts, op: .sum) }),
            ("reduce-scatter raw", {
                counts32.withUnsafeBufferPointer { _ = RawMPI.reduceScatterSum(buffer.pointer, shard.pointer, counts: $0.baseAddress!) } }),
            ("all-gatherv wrapper", { try comm.allGatherInPlace(buffer.buffer, counts: counts) }),
            ("all-gatherv raw", {
                counts32.withUnsafeBufferPointer { c in displacements32.withUnsafeBufferPointer { d in
                    _ = RawMPI.allGatherInPlace(buffer.pointer, counts: c.baseAddress!, displacements: d.baseAddress!) } } }),
            // The non-blocking forms the gradient buckets use: Open MPI's (coll/libnbc) against the direct exchange
            // (Sources/SwiftMPI/DirectCollectives.swift), each started and waited for.
            ("allreduce direct", { try comm.iAllReduceSumDirect(buffer.buffer).wait() }),
            ("allreduce nonblocking", { try comm.iAllReduce(buffer.buffer, op: .sum).wait() }),
            ("reduce-scatter direct", {
                try comm.iReduceScatterSumDirect(UnsafeBufferPointer(buffer.buffer), into: shard.buffer, counts: counts).wait() }),
            ("reduce-scatter nonblocking", {
                try comm.iReduceScatter(UnsafeBufferPointer(buffer.buffer), into: shard.buffer, counts: counts, op: .sum).wait() }),
            ("all-gatherv direct", { try comm.iAllGatherInPlaceDirect(buffer.buffer, counts: counts).wait() }),
            ("all-gatherv nonblocking", { try comm.iAllGatherInPlace(buffer.buffer, counts: counts).wait() }),
        ]
        for repetition in 0..<(repeats + 2) {  // the first two are warm-up, dropped below
            // Alternate wrapper-first and raw-first so neither always runs on a warmer cache.
            for pair in stride(from: 0, to: measurements.count, by: 2) {
                let order = repetition % 2 == 0 ? [pair, pair + 1] : [pair + 1, pair]
                for k in order { results[measurements[k].0, default: []].append(try time(measurements[k].1)) }
            }
        }
        // The slowest rank decides a collective's time.
        var medians: [String: Double] = [:]
        var reduced: [String: [Double]] = [:]
        for name in results.keys.sorted() {  // same order on every rank: these are collectives
            var t = Array(results[name]!.dropFirst(2))
            try comm.allReduce(&t, op: .max)
            reduced[name] = t
            medians[name] = t.sorted()[t.count / 2]
        }
        /// Ratio of the fastest repetitions: a 7.5 MB collective on this VM alternates between a fast and a slow
        /// phase (scheduling), which medians can straddle differently for the two variants; the minimum over the repetitions is
        /// the cost of the call itself.
        func bestRatio(_ op: String) -> Double { reduced["\(op) wrapper"]!.min()! / reduced["\(op) raw"]!.min()! }
        guard comm.rank == 0 else { return }
        let bytes = Double(n * 4)
        // Bus bandwidth (nccl-tests convention): all-reduce moves 2(N−1)/N of the buffer per rank, the others (N−1)/N.
        let busFactor: [String: Double] = ["allreduce": 2 * Double(world - 1) / Double(world),
                                           "reduce-scatter": Double(world - 1) / Double(world),
                                           "all-gatherv": Double(world - 1) / Double(world)]
        print("\(world) ranks, \(n) floats (\(String(format: "%.1f", bytes / 1e6)) MB), median of \(repeats):")
        print("  collective        wrapper ms   raw ms   median ratio   best ratio   bus GB/s (wrapper)")
        var rows: [String] = []
        for op in ["allreduce", "reduce-scatter", "all-gatherv"] {
            let w = medians["\(op) wrapper"]!, r = medians["\(op) raw"]!, best = bestRatio(op)
            let bus = bytes * busFactor[op]! / w / 1e9
            print("  " + op.padding(toLength: 16, withPad: " ", startingAt: 0) +
                  String(format: "  %9.3f  %7.3f   %11.3f  %10.3f   %8.2f", w * 1000, r * 1000, w / r, best, bus))
            rows.append("{\"collective\":\"\(op)\",\"wrapper_seconds\":\(w),\"raw_seconds\":\(r),\"ratio\":\(w / r),\"best_ratio\":\(best),\"bus_bytes_per_sec\":\(bus * 1e9)}")
        }
        print("  non-blocking     libnbc ms   direct ms   direct / libnbc (median)")
        var direct: [String] = []
        for op in ["allreduce", "reduce-scatter", "all-gatherv"] {
            let m = medians["\(op) nonblocking"]!, d = medians["\(op) direct"]!
            print("  " + op.padding(toLength: 16, withPad: " ", startingAt: 0) + String(format: "  %9.3f  %9.3f   %9.3f", m * 1000, d * 1000, d / m))
            direct.append("{\"collective\":\"\(op)\",\"libnbc_seconds\":\(m),\"direct_seconds\":\(d),\"ratio\":\(d / m)}")
        }
        if let json {
            try writeAtomically(Data("{\"world\":\(world),\"elements\":\(n),\"collectives\":[\(rows.joined(separator: ","))],\"nonblocking\":[\(direct.joined(separator: ","))]}\n".utf8), to: json)
        }
    }
}
