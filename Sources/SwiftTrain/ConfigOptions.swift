import ArgumentParser
import Foundation
import Training

/// Options shared by commands that resolve a configuration.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("YAML configuration file (default: the built-in fashion-mlp config).", valueName: "file"))
    var config: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override one key, e.g. --set optimizer.lr=0.01 (repeatable).", valueName: "key=value"))
    var overrides: [String] = []

    func resolve() throws -> ResolvedConfig {
        var resolved = try config.map(ResolvedConfig.load(path:)) ?? ResolvedConfig()
        for assignment in overrides { try resolved.override(assignment) }
        return resolved
    }
}


/// A command's input was rejected before MPI started (every rank rejects the same input): rank 0 reports it; the
/// other ranks wait a moment before exiting, because mpirun tears the whole job down as soon as any rank exits
/// non-zero, which could otherwise kill rank 0 before its message is out (seen once in CI as a bare mpirun notice).
func failedBeforeMPI(_ error: Error, isRoot: Bool) -> ExitCode {
    if isRoot { printError("error: \(error)") } else { usleep(1_000_000) }
    return ExitCode(inputErrorStatus)
}
