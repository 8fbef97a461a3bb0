import ArgumentParser
import Foundation
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
        subcommands: [Train.self, ShowConfig.self, Export.self, Sample.self, Attack.self, PlotCommand.self, Sweep.self, Search.self, Branch.self,
                      Report.self, BatchReport.self,
                      Theory.self, Bench.self, BenchComm.self],
        defaultSubcommand: Train.self)
}

let swiftTrainVersion = "0.1.0"

/// The entry point, so that every kind of input error ends with one exit status, 2, whichever command met it:
/// ArgumentParser's own usage errors (a missing or malformed flag, a failed `validate()`) would exit 64, and a
/// configuration or checkpoint error a command lets through would exit 1.
func runSwiftTrain() -> Never {
    do {
        var command = try SwiftTrainCommand.parseAsRoot()
        try command.run()
        exit(0)
    } catch let error as ConfigError {
        printError("error: \(error)")
        exit(inputErrorStatus)
    } catch let error as CheckpointError {
        printError("error: \(error)")
        exit(inputErrorStatus)
    } catch {
        if SwiftTrainCommand.exitCode(for: error) == .validationFailure {
            // Every rank parses the same arguments, so rank 0's message is everyone's. The others wait a moment:
            // mpirun ends the job when the first rank exits non-zero, which could cut rank 0 off mid-message.
            if LaunchEnvironment.current().rank == 0 { printError(SwiftTrainCommand.fullMessage(for: error)) } else { usleep(1_000_000) }
            exit(inputErrorStatus)
        }
        SwiftTrainCommand.exit(withError: error)
    }
}

runSwiftTrain()
