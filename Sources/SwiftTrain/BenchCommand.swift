import ArgumentParser
import Foundation
import Bench
import Training

/// `swift-train bench`: single-core kernel benchmarks against the same run's hardware references.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark optimizer updates against memory bandwidth and Newton–Schulz against sgemm (one core); --gemm: the GEMM backends.",
        discussion: "Prints a table and writes JSON. End-to-end training throughput: launch/bench.")

    @Option(help: "Elements per optimizer update (default 16M).")
    var elements = 16 * 1024 * 1024

    @Option(help: "Timed repetitions per figure (the median is reported).")
    var repeats = 7

    @Option(help: "Matrix size for sgemm and Newton–Schulz.")
    var matrix = 1024

    @Option(help: "Optimizers to time (comma-separated; default: all).")
    var optimizers = OptimizerCatalog.names.joined(separator: ",")

    @Option(help: "Write the results as JSON here.")
    var json: String?

    @Flag(help: "Only the GEMM table: GFLOP/s of OpenBLAS fp32, oneDNN fp32 and oneDNN bf16 on the GPT's shapes.")
    var gemm = false

    func run() throws {
        Benchmarks.useOneCore()  // one core: the targets compare against one core's bandwidth and sgemm rate
        if gemm {
            let rows = Benchmarks.gemmTable(repeats: repeats) { print($0) }
            if let json { try writeAtomically(Data(("{\"gemm\":[\(rows.joined(separator: ","))]}\n").utf8), to: json) }
            return
        }
        let copy = Benchmarks.copyBandwidth(elements: elements, repeats: repeats)
        print(String(format: "memory copy (read + write), %d floats: %.2f GB/s", elements, copy / 1e9))
        print("optimizer update, \(elements) floats, one core (bytes = θ, g and state read + θ and state written):")
        print("  optimizer    B/elem   M elem/s    GB/s   × copy bandwidth (median of per-repetition ratios, copy timed beside each)")
        var rows: [String] = []
        for name in optimizers.split(separator: ",").map(String.init) {
            guard OptimizerCatalog.names.contains(name) else { throw ValidationError("unknown optimizer \(name)") }
            // Whole-matrix optimizers are GEMM-bound, not bandwidth-bound: Newton–Schulz is timed against sgemm below.
            if !OptimizerCatalog.info(name).bandwidthBound { continue }
            let r = Benchmarks.optimizerUpdate(name, elements: elements, repeats: repeats)
            let ratio = r.ratioToCopy
            print("  " + name.padding(toLength: 10, withPad: " ", startingAt: 0) +
                  String(format: " %6d %10.1f %7.2f   %.2f", r.bytesPerElement, r.elementsPerSecond / 1e6, r.bytesPerSecond / 1e9, ratio))
            rows.append("{\"optimizer\":\"\(name)\",\"bytes_per_element\":\(r.bytesPerElement),\"elements_per_sec\":\(r.elementsPerSecond),\"bytes_per_sec\":\(r.bytesPerSecond),\"ratio_to_copy\":\(ratio)}")
        }
        let gemm = Benchmarks.sgemmGFLOPs(n: matrix, repeats: repeats)
        let ns = Benchmarks.newtonSchulzGFLOPs(rows: matrix, cols: matrix, repeats: repeats)
        print(String(format: "sgemm %d³: %.1f GFLOP/s · Newton–Schulz %d×%d (5 steps): %.1f GFLOP/s in %.0f ms = %.2f × sgemm",
                     matrix, gemm, matrix, matrix, ns.gflops, ns.seconds * 1000, ns.gflops / gemm))
        if let json {
            let text = """
            {"copy_bytes_per_sec":\(copy),"elements":\(elements),"optimizers":[\(rows.joined(separator: ","))],\
            "sgemm_gflops":\(gemm),"newton_schulz_gflops":\(ns.gflops),"newton_schulz_seconds":\(ns.seconds),"matrix":\(matrix)}
            """
            try writeAtomically(Data((text + "\n").utf8), to: json)
        }
    }
}
