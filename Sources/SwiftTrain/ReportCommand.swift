import ArgumentParser
import Foundation
import Experiments
import Training

/// `swift-train report`: a markdown report with SVG plots from sweep directories (see docs/batch-size.md).
struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a markdown report with SVG plots from one or more sweep directories.",
        discussion: """
        Reads <dir>/results.csv and <dir>/points/*/metrics.jsonl of each directory and writes the report (steps to \
        target against batch size with perfect scaling, the S = S_min(1 + B_crit/B) fit per optimizer, the best \
        learning rate per batch, loss curves, noise scale, unreached points) with its plots (<stem>-*.svg) beside it.
        """)

    @Argument(help: ArgumentHelp("Sweep directories written by `swift-train sweep`.", valueName: "dir"))
    var directories: [String]

    @Option(name: .long, help: ArgumentHelp("Report file (default: <first dir>/report.md); plots are written beside it.", valueName: "file.md"))
    var out: String?

    @Option(name: .long, help: ArgumentHelp("Residuals of the S_min/B_crit fit: relative (each point weighted 1/S²) or absolute (ordinary least squares).", valueName: "weighting"))
    var fit: String = CriticalBatchFit.Weighting.relative.rawValue

    func validate() throws {
        guard !directories.isEmpty else { throw ValidationError("give at least one sweep directory") }
        guard CriticalBatchFit.Weighting(rawValue: fit) != nil else {
            throw ValidationError("--fit must be one of: \(CriticalBatchFit.Weighting.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        let path = out ?? "\(directories[0])/report.md"
        do {
            if directories.count == 1, SearchReport.isSearch(directories[0]) {
                try SearchReport.write(directory: directories[0], out: path)
                print("wrote \(path) and its plots (search report)")
                return
            }
            try SweepReport.write(directories: directories, out: path, weighting: CriticalBatchFit.Weighting(rawValue: fit)!)
        } catch {
            printError("error: \(error)")
            throw ExitCode(inputErrorStatus)
        }
        print("wrote \(path) and its plots")
    }
}
