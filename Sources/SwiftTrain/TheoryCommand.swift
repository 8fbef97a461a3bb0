import ArgumentParser
import Foundation
import FullBatch
import Training

/// `swift-train theory`: the convergence-theory check on strongly convex logistic regression (single process, no MPI).
/// Writes <out>/theory.svg and prints the measured numbers; docs/theory.md explains them.
struct Theory: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "theory",
        abstract: "Check GD/SGD convergence theory on strongly convex logistic regression and plot f − f*.",
        discussion: """
        Runs gradient descent with step 1/L (linear rate), SGD with a constant step (noise floor) and SGD with a \
        decaying step (keeps converging) on l2-regularised logistic regression (m = 200, n = 10, mu = 1), plus \
        GD-Armijo and L-BFGS to ||grad f|| < 1e-8, and writes <out>/theory.svg. See docs/theory.md.
        """)

    @Option(name: .long, help: ArgumentHelp("Directory for theory.svg (created if missing).", valueName: "dir"))
    var out = "docs"

    @Option(name: .long, help: "SGD epochs (m single-sample steps each).")
    var epochs = TheoryConfiguration().epochs

    @Option(name: .customLong("sgd-step"), help: "Constant SGD step, and the initial step of the decaying schedule.")
    var sgdStep = TheoryConfiguration().sgdStep

    @Option(name: .long, help: "Seed of the generated data set.")
    var seed = TheoryConfiguration().dataSeed

    @Option(name: .customLong("feature-scale"), help: "Standard deviation of the generated features.")
    var featureScale = TheoryConfiguration().featureScale

    func validate() throws {
        guard epochs >= 6 else { throw ValidationError("--epochs must be at least 6 (the late windows need room)") }
        guard sgdStep > 0, sgdStep.isFinite else { throw ValidationError("--sgd-step must be a positive number") }
    }

    func run() throws {
        var configuration = TheoryConfiguration()
        configuration.epochs = epochs
        configuration.sgdStep = sgdStep
        configuration.dataSeed = seed
        configuration.featureScale = featureScale
        let result = try TheoryExperiment.run(configuration)
        do {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try result.plot().write(to: "\(out)/theory.svg")
        } catch {
            printError("error: cannot write \(out)/theory.svg: \(error); choose another --out")
            throw ExitCode(inputErrorStatus)
        }
        print(result.table())
        print("\nwrote \(out)/theory.svg")
    }
}
