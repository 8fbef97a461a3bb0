import ArgumentParser
import Foundation
import Bench

/// `swift-train bench-comm` (under mpirun): the typed collectives against the raw MPI calls, interleaved.
struct BenchComm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-comm",
        abstract: "Collective bandwidth of the Swift wrapper against the raw MPI calls (run under mpirun).")

    @Option(help: "Floats per collective (default: the MLP's 1,863,690 parameters).")
    var elements = 1_863_690

    @Option(help: "Timed repetitions (medians are reported).")
    var repeats = 300

    @Option(help: "Write the results as JSON here (rank 0).")
    var json: String?

    func run() throws {
        try CollectiveBenchmark.run(elements: elements, repeats: repeats, json: json)
    }
}
