import ArgumentParser
import Data
import Foundation
import SwiftMPI
import Training

/// `swift-train`: data-parallel training over MPI. Run with `mpirun -n N swift-train …`, or alone for one rank.
struct SwiftTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swift-train",
        abstract: "Data-parallel training over MPI.",
        discussion: """
        Launch several ranks with `mpirun -n 4 swift-train` (as root, or with more ranks than cores, use launch/mpirun, \
        which adds Open MPI's allow-run-as-root variables and --oversubscribe). Plain `swift-train` is one rank.
        """,
        version: swiftTrainVersion,
        subcommands: [Train.self, ShowConfig.self, Bench.self, BenchComm.self],
        defaultSubcommand: Train.self)
}

let swiftTrainVersion = "0.1.0"

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

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a model (the default command).")

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: ArgumentHelp("Run directory (default: runs/<config>-<UTC time>; never overwritten).", valueName: "dir"))
    var out: String?

    mutating func run() throws {
        let launch = LaunchEnvironment.current()
        let isRoot = launch.rank == 0
        // Phase 1, before MPI: everything that can fail because of the user's input. Each rank checks the same
        // inputs; a failure exits non-zero here and mpirun ends the job, so no rank is left waiting in a collective.
        let config: TrainConfig
        let datasets: (train: ImageDataset, test: ImageDataset)
        var runDirectory: RunDirectory?
        do {
            var resolved = try options.resolve()
            if let out { try resolved.set("output.dir", raw: out, source: "--out") }
            config = try TrainConfig(resolved, worldSize: launch.worldSize)
            datasets = try FashionMNIST.load(directory: config.dataDirectory)
            _ = try config.totalSteps(datasetSize: datasets.train.count)
            if isRoot {
                let path = config.outputDirectory.isEmpty ? RunDirectory.defaultPath(name: resolved.name) : config.outputDirectory
                runDirectory = try RunDirectory(path: path)
            }
        } catch {
            if isRoot { printError("error: \(error)") }
            throw ExitCode(2)
        }
        let blasThreads = launch.configureBLASThreads()

        // Phase 2: MPI.
        do {
            try MPIRuntime.initialize()
            let comm = try MPICommunicator()
            guard comm.size == launch.worldSize else {
                // Launched by something that did not announce the world size: validate again (same result everywhere).
                printError("error: the launcher reported \(launch.worldSize) ranks but MPI has \(comm.size)")
                MPIRuntime.abort(code: 2)
            }
            let console = isRoot ? Console() : nil
            if let runDirectory, let console {
                let header = """
                swift-train \(swiftTrainVersion) · \(MPIRuntime.libraryVersion)
                world size \(comm.size) · BLAS threads per rank \(blasThreads) · global batch \(config.globalBatch) \
                = \(comm.size) ranks × \(config.gradAccum) micro-batches × \(config.microBatch)
                run directory \(runDirectory.path)
                """
                console.line(header)
                console.line("resolved config:\n" + config.resolved.yaml())
                try runDirectory.write("config.yaml", text: config.resolved.yaml(header: "resolved configuration of this run; rerun with --config \(runDirectory.path)/config.yaml"))
            }
            let trainer = try Trainer(config: config, comm: comm, train: datasets.train, test: datasets.test,
                                      output: runDirectory, console: console)
            if let console {
                console.line("model: MLP \(trainer.model.widths.map(String.init).joined(separator: "-")) (\(config.activation.rawValue)), " +
                             "\(trainer.model.table.count) parameters · optimizer \(config.optimizerName) · \(trainer.totalSteps) steps")
            }
            let summary = try trainer.run()
            if let runDirectory, let console {
                try runDirectory.write("summary.json", text: summary.json(config: config, mpiLibrary: MPIRuntime.libraryVersion).pretty)
                if config.saveModel {
                    try runDirectory.write("model.safetensors", trainer.modelSafeTensors())
                }
                console.line(String(format: "done: %d steps in %@ · test accuracy %.4f · test loss %.4f · %.0f samples/s · %@",
                                    summary.steps, formatDuration(summary.wallSeconds), summary.evalAccuracy, summary.evalLoss,
                                    summary.samplesPerSecond, runDirectory.path))
            }
            MPIRuntime.finalize()
        } catch {
            printError("error (rank \(launch.rank)): \(error)")
            MPIRuntime.abort(code: 1)
        }
    }
}

struct ShowConfig: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "config",
                                                    abstract: "Print the resolved configuration (or the key reference).")
    @OptionGroup var options: ConfigOptions

    @Flag(help: "Print docs/configuration.md (every key, its type, default and meaning).")
    var markdown = false

    func run() throws {
        if markdown { print(ConfigSchema.markdown(), terminator: ""); return }
        do { print(try options.resolve().yaml(), terminator: "") } catch let error as ConfigError {
            printError("error: \(error)")
            throw ExitCode(2)
        }
    }
}

SwiftTrainCommand.main()
