import ArgumentParser
import Foundation
import Training

/// `swift-train export`: a checkpoint's parameters (and optionally optimizer state) as one safetensors file.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a checkpoint's full parameters (optionally optimizer state) as a .safetensors file.")

    @Argument(help: "Checkpoint directory, run directory (its latest checkpoint), or `latest`.")
    var checkpoint: String

    @Option(help: ArgumentHelp("Output file.", valueName: "file.safetensors"))
    var out: String

    @Flag(help: "Also write every optimizer state tensor, named optimizer.<state>.<tensor>.")
    var optimizerState = false

    func run() throws {
        // Checkpoint errors reach the entry point, which reports them with exit status 2.
        let loaded = try Checkpoint.load(try Checkpoint.resolve(checkpoint, for: "export"))
        let count = try loaded.exportSafeTensors(to: out, optimizerState: optimizerState)
        print("wrote \(count) tensors (\(loaded.manifest.model), step \(loaded.manifest.step)) to \(out)")
    }
}

