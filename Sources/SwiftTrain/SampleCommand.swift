import ArgumentParser
import Foundation
import Training

/// `swift-train sample`: text from a GPT checkpoint.
struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text from a GPT checkpoint.")

    @Argument(help: "Checkpoint directory, run directory (its latest checkpoint), or `latest`.")
    var checkpoint: String

    @Option(help: "Text to continue (bytes of UTF-8).")
    var prompt = "\n"

    // `.unconditional`, so that `--tokens -5` reaches validate() and its message instead of reading as a flag.
    @Option(parsing: .unconditional, help: "Tokens to generate.")
    var tokens = 200

    @Option(parsing: .unconditional, help: "Softmax temperature; 0 is greedy.")
    var temperature: Float = 0.8

    @Option(name: .customLong("top-k"), help: "Sample among the k most likely tokens (0: all).")
    var topK = 40

    @Option(help: "Random seed.")
    var seed: UInt64 = 0

    func validate() throws {
        guard tokens > 0 else { throw ValidationError("--tokens must be positive") }
        guard temperature >= 0 else { throw ValidationError("--temperature must be ≥ 0") }
    }

    func run() throws {
        // Checkpoint and configuration errors reach the entry point, which reports them with exit status 2.
        let loaded = try Checkpoint.load(try Checkpoint.resolve(checkpoint, for: "sample"))
        print(try loaded.sampleText(prompt: prompt, tokens: tokens, temperature: temperature, topK: topK, seed: seed))
    }
}

