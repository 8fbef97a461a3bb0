// swift-tools-version:6.0
// A model of one's own trained with swift-train's engine and trainer through the SwiftTrainKit library product.
// Depends on the repository by path; its own dependencies (swift-argument-parser, Yams, swift-protobuf) resolve the
// way the main package's do (SwiftPM's shared repository cache under ~/.cache/org.swift.swiftpm, so a machine that
// has built swift-train once builds this offline). Built and run by launch/test; docs/models.md explains it.
import PackageDescription

let package = Package(
    name: "custom-model",
    platforms: [.macOS(.v13)],
    dependencies: [.package(name: "swift-train", path: "../..")],
    targets: [
        .executableTarget(name: "CustomModel", dependencies: [.product(name: "SwiftTrainKit", package: "swift-train")]),
    ]
)
