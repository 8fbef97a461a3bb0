import Datasets
import Foundation
import SwiftMPI
import TensorBoard
import Training
import XCTest

/// `data.dataset: arrays` through the configuration and the trainer, and `output.tensorboard` through the run
/// directory: a real Trainer on two simulated ranks over the NumPy-written fixtures of Tests/DatasetsTests/Fixtures.
final class ArraysAndTensorBoardTests: XCTestCase {
    let fixtures = "\(repositoryRoot)/Tests/DatasetsTests/Fixtures"
    private var directory: String!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "swift-train-tb-run-\(UUID().uuidString)"
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    func arraysConfig(testLabels: String = "test_labels_i64.npy", extra: [String] = []) throws -> ResolvedConfig {
        try ResolvedConfig(name: "arrays", overrides: [
            "data.dataset=arrays", "data.train_features=\(fixtures)/features_u8_v2.npy",
            "data.train_labels=\(fixtures)/labels_i64.npy", "data.test_features=\(fixtures)/test_features_2x3.npy",
            "data.test_labels=\(fixtures)/\(testLabels)", "model.hidden=[8]", "train.global_batch=2", "train.steps=6",
            "train.log_every=2", "train.eval_every=3", "schedule.warmup_steps=2",
        ] + extra)
    }

    func testArraysConfigurationBuildsTheMLPFromTheFiles() throws {
        let plan = try TrainingPlan(config: TrainConfig(arraysConfig(), worldSize: 2))
        XCTAssertEqual(plan.task.modelDescription, "MLP 6-8-3 (relu)", "inputs from the (2, 3) examples, 3 classes from the labels")
        XCTAssertEqual(plan.task.rowsPerEpoch, 6)
        XCTAssertEqual(plan.totalSteps, 6)
        // With data.classes the output width is the declared one.
        let four = try TrainingPlan(config: TrainConfig(arraysConfig(extra: ["data.classes=4"]), worldSize: 2))
        XCTAssertEqual(four.task.modelDescription, "MLP 6-8-4 (relu)")
    }

    func testBadArraysAndKeysAreErrorsBeforeTraining() throws {
        XCTAssertThrowsError(try TrainingPlan(config: TrainConfig(arraysConfig(testLabels: "test_labels_class_3.npy"), worldSize: 2))) {
            XCTAssertTrue("\($0)".contains("test_labels_class_3.npy: label 3 of example 2"), "\($0)")
        }
        XCTAssertThrowsError(try TrainingPlan(config: TrainConfig(arraysConfig(extra: ["data.test_labels="]), worldSize: 1))) {
            XCTAssertTrue("\($0)".contains("data.dataset = arrays needs data.test_labels"), "\($0)")
        }
        XCTAssertThrowsError(try TrainConfig(arraysConfig(extra: ["model.kind=gpt"]), worldSize: 1)) {
            XCTAssertTrue("\($0)".contains("model.kind = gpt does not fit data.dataset = arrays"), "\($0)")
        }
        XCTAssertThrowsError(try TrainingPlan(config: TrainConfig(arraysConfig(extra: ["train.global_batch=8"]), worldSize: 2))) {
            XCTAssertTrue("\($0)".contains("exceeds the 6 training examples"), "\($0)")
        }
    }

    /// Every numeric field of every metrics line is a scalar of the event file, at its step, as float32.
    func testEventFileHoldsEveryMetricsLine() throws {
        let config = try TrainConfig(arraysConfig(extra: ["output.tensorboard=true"]), worldSize: 2)
        let path: String = directory
        _ = try SimulatedWorld.run(size: 2) { comm in
            // As the train command does: every rank its own plan, rank 0 alone the run directory.
            let output = comm.rank == 0 ? try RunDirectory(claiming: path, tensorboard: config.resolved.bool("output.tensorboard")) : nil
            return try Trainer(plan: TrainingPlan(config: config), comm: comm, output: output).run()
        }
        // Numbers parsed from the text with Double(_:) (correctly rounded; Foundation's JSON parser on Linux is not
        // always). A metrics line is a flat object of numbers, so splitting at commas and colons is exact.
        var expected: [ScalarEvent] = []
        for line in try String(contentsOfFile: "\(directory!)/metrics.jsonl", encoding: .utf8).split(separator: "\n") {
            let fields = line.dropFirst().dropLast().split(separator: ",").map { field in
                let parts = field.split(separator: ":", maxSplits: 1)
                return (String(parts[0].dropFirst().dropLast()), Double(String(parts[1])))
            }
            let step = Int(fields.first { $0.0 == "step" }!.1!)
            for (key, value) in fields where key != "step" {
                expected.append(ScalarEvent(step: step, wallTime: 0, tag: key, value: Float(value ?? .nan)))
            }
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("events.out.tfevents.") }
        XCTAssertEqual(files.count, 1)
        let read = try EventFileReader.read(path: "\(directory!)/\(files[0])")
        XCTAssertEqual(read.fileVersion, "brain.Event:2")
        XCTAssertEqual(read.restarts, [])
        let key = { (e: ScalarEvent) in "\(e.step) \(e.tag)" }
        // As multisets: a training line and an evaluation line at the same step may share a tag (elapsed_sec).
        XCTAssertEqual(read.scalars.map { "\(key($0)) \($0.value)" }.sorted(), expected.map { "\(key($0)) \($0.value)" }.sorted())
        XCTAssertEqual(Set(read.scalars.filter { $0.tag == "loss" }.map(\.step)), [2, 4, 6])
        XCTAssertEqual(Set(read.scalars.filter { $0.tag == "eval_accuracy" }.map(\.step)), [3, 6])
        XCTAssertTrue(Set(read.scalars.map(\.tag)).isSuperset(of: ["loss", "lr", "grad_norm", "samples_per_sec", "eval_loss"]))

        // Resuming in the same directory adds a second file that starts with a restart marker after the checkpoint.
        _ = try RunDirectory(resuming: directory, atStep: 4, tensorboard: true)
        let second = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("events.out.tfevents.") && $0 != files[0] }
        XCTAssertEqual(second.count, 1)
        XCTAssertEqual(try EventFileReader.read(path: "\(directory!)/\(second[0])").restarts, [5])
    }

    func testNoEventFileUnlessAskedFor() throws {
        _ = try RunDirectory(claiming: directory)
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: directory).contains { $0.contains("tfevents") })
    }
}
