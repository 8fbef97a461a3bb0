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
        subcommands: [Train.self, ShowConfig.self, Export.self, Sample.self, Attack.self, PlotCommand.self, Sweep.self, Report.self,
                      Theory.self, Bench.self, BenchComm.self],
        defaultSubcommand: Train.self)
}

let swiftTrainVersion = "0.1.0"

SwiftTrainCommand.main()
