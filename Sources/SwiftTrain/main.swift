import ArgumentParser
import Data
import Foundation
import Models
import Tensors
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
        subcommands: [Train.self, ShowConfig.self, Export.self, Sample.self, PlotCommand.self, Sweep.self, Report.self,
                      Theory.self, Bench.self, BenchComm.self],
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

    @Option(name: .long, help: ArgumentHelp("Resume from a checkpoint directory, a run directory (its latest checkpoint), or `latest`. Any world size and ZeRO stage; the checkpoint's config is used unless --config is given, then --set applies.", valueName: "path"))
    var resume: String?

    mutating func run() throws {
        let launch = LaunchEnvironment.current()
        let isRoot = launch.rank == 0
        // Phase 1, before MPI: everything that can fail because of the user's input. Each rank checks the same
        // inputs; a failure exits non-zero here and mpirun ends the job, so no rank is left waiting in a collective.
        let config: TrainConfig
        let task: TrainingTask
        var runDirectory: RunDirectory?
        var checkpoint: LoadedCheckpoint?
        var runPath = ""
        do {
            var resolved: ResolvedConfig
            if let resume {
                let path = try Checkpoint.resolve(resume)
                checkpoint = try Checkpoint.load(path)
                if options.config == nil {
                    // The checkpoint's own configuration, then this command's --set overrides.
                    resolved = ResolvedConfig(name: "resumed")
                    try resolved.merge(yaml: checkpoint!.manifest.config, source: "\(path)/manifest.json (config)")
                    for assignment in options.overrides { try resolved.override(assignment) }
                } else {
                    resolved = try options.resolve()
                }
            } else {
                resolved = try options.resolve()
            }
            if let out { try resolved.set("output.dir", raw: out, source: "--out") }
            config = try TrainConfig(resolved, worldSize: launch.worldSize)
            task = try config.makeTask()
            _ = try config.totalSteps(datasetSize: task.rowsPerEpoch)
            _ = try config.groupSpecs(for: task.model.table)  // e.g. Muon routed to a vector: named here, before MPI
            // The same model check Trainer makes, here before any rank communicates.
            try checkpoint?.checkModel(task.model.table, description: task.modelDescription)
            if let checkpoint, out == nil {
                runPath = URL(fileURLWithPath: checkpoint.path).deletingLastPathComponent().deletingLastPathComponent().path
                if isRoot { runDirectory = try RunDirectory(resuming: runPath, atStep: checkpoint.manifest.step) }
            } else {
                runPath = config.outputDirectory.isEmpty ? RunDirectory.defaultPath(name: resolved.name) : config.outputDirectory
                if isRoot { runDirectory = try RunDirectory(path: runPath) }
            }
        } catch {
            if isRoot { printError("error: \(error)") }
            throw ExitCode(2)
        }
        let blasThreads = launch.configureBLASThreads()

        // Phase 2: MPI.
        do {
            let comm = try startWorld(expecting: launch)
            // The default run directory name has rank 0's clock in it: every rank takes rank 0's.
            runPath = try broadcast(runPath, comm: comm)
            StopRequest.install()
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
            let trainer = try Trainer(config: config, comm: comm, task: task, output: runDirectory, console: console,
                                      resume: checkpoint)
            trainer.checkpointRoot = runPath
            if let checkpoint, let console {
                console.line("resumed from \(checkpoint.path) at step \(checkpoint.manifest.step) " +
                             "(written by \(checkpoint.manifest.worldSize) ranks at ZeRO stage \(checkpoint.manifest.zeroStage))")
            }
            if let console {
                let groups = trainer.engine.plan.groups.map { "\($0.name) (\($0.range.count) parameters)" }.joined(separator: ", ")
                console.line("model: \(task.modelDescription), \(trainer.model.table.count) parameters · optimizers: \(groups) · " +
                             "ZeRO stage \(config.zeroStage) · \(trainer.totalSteps) steps")
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
        } catch let stopped as TrainingStopped {
            // Rank 0 has already reported why (before the ranks' last barrier).
            MPIRuntime.finalize()
            throw ExitCode(stopped.exitCode)
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

/// Initialises MPI and returns the world, which must have the size the launcher announced (configuration was
/// validated for that size before MPI started); otherwise every rank stops with the same message.
func startWorld(expecting launch: LaunchEnvironment) throws -> MPICommunicator {
    try MPIRuntime.initialize()
    let comm = try MPICommunicator()
    guard comm.size == launch.worldSize else {
        printError("error: the launcher reported \(launch.worldSize) ranks but MPI has \(comm.size)")
        MPIRuntime.abort(code: 2)
    }
    return comm
}

/// Rank 0's string on every rank.
func broadcast(_ text: String, comm: Communicator) throws -> String {
    var length = Int64(text.utf8.count)
    try withUnsafeMutablePointer(to: &length) { try comm.broadcast(UnsafeMutableBufferPointer(start: $0, count: 1), root: 0) }
    var bytes = comm.rank == 0 ? Array(text.utf8) : [UInt8](repeating: 0, count: Int(length))
    try bytes.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: 0) }
    return String(decoding: bytes, as: UTF8.self)
}

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
        do {
            let loaded = try Checkpoint.load(try Checkpoint.resolve(checkpoint))
            var tensors = try loaded.parameters()
            if optimizerState { tensors += loaded.optimizerState() }
            try writeAtomically(SafeTensors.encode(tensors, metadata: [
                "format": "swift-train", "model": loaded.manifest.model, "step": String(loaded.manifest.step)]), to: out)
            print("wrote \(tensors.count) tensors (\(loaded.manifest.model), step \(loaded.manifest.step)) to \(out)")
        } catch let error as CheckpointError {
            printError("error: \(error)")
            throw ExitCode(2)
        }
    }
}

/// `swift-train sample`: text from a GPT checkpoint.
struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text from a GPT checkpoint.")

    @Argument(help: "Checkpoint directory, run directory (its latest checkpoint), or `latest`.")
    var checkpoint: String

    @Option(help: "Text to continue (bytes of UTF-8).")
    var prompt = "\n"

    @Option(help: "Tokens to generate.")
    var tokens = 200

    @Option(help: "Softmax temperature; 0 is greedy.")
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
        do {
            let loaded = try Checkpoint.load(try Checkpoint.resolve(checkpoint))
            var resolved = ResolvedConfig(name: "sample")
            try resolved.merge(yaml: loaded.manifest.config, source: "\(loaded.path)/manifest.json (config)")
            let config = try TrainConfig(resolved, worldSize: 1)
            guard config.modelKind == "gpt" else {
                throw CheckpointError("\(loaded.path) holds a \(loaded.manifest.model), not a GPT: nothing to sample")
            }
            let model = GPT(config.gpt)
            try loaded.checkModel(model.table, description: "GPT")
            let params = FloatBuffer(count: model.table.count)
            for e in model.table.entries {
                let v = try loaded.values(state: "param", tensor: e.name, offset: 0, count: e.count)
                for i in 0..<v.count { params[e.offset + i] = v[i] }
            }
            let promptTokens = Array(prompt.utf8).map { Int32($0) }.filter { Int($0) < config.gpt.vocabulary }
            let out = generate(model: model, params: params.pointer, prompt: promptTokens, count: tokens,
                               temperature: temperature, topK: topK, seed: seed)
            if config.gpt.vocabulary == 256 {
                print(prompt + String(decoding: out.map { UInt8($0) }, as: UTF8.self))
            } else {
                print(out.map(String.init).joined(separator: " "))
            }
        } catch let error as CheckpointError {
            printError("error: \(error)"); throw ExitCode(2)
        } catch let error as ConfigError {
            printError("error: \(error)"); throw ExitCode(2)
        }
    }
}

SwiftTrainCommand.main()
