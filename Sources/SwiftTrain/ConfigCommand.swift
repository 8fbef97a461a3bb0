import ArgumentParser
import Foundation
import Training

struct ShowConfig: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "config",
                                                    abstract: "Print the resolved configuration (or the key reference).")
    @OptionGroup var options: ConfigOptions

    @Flag(help: "Print docs/configuration.md (every key, its type, default and meaning).")
    var markdown = false

    @Flag(help: "Print docs/optimizer-keys.md (each optimizer's own keys, ranges and defaults).")
    var optimizerKeys = false

    func run() throws {
        if markdown { print(ConfigSchema.markdown(), terminator: ""); return }
        if optimizerKeys { print(OptimizerCatalog.markdown(), terminator: ""); return }
        do { print(try options.resolve().yaml(), terminator: "") } catch let error as ConfigError {
            printError("error: \(error)")
            throw ExitCode(inputErrorStatus)
        }
    }
}

