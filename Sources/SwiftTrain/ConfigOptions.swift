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

