// swift-tools-version:6.0
// Dependency direction (each module imports only those listed after it):
//   swift-train (CLI) → Training → Distributed, Data, Models, Optimizers → Tensors → CBLAS, CKernels
//   Distributed → SwiftMPI → CMPI         Data → Tensors (RNG), CZlib
// Optimizers never import MPI: they update a contiguous range of the flat buffer and nothing else.
import PackageDescription

let release: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "swift-train",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "swift-train", targets: ["SwiftTrain"]),
        .executable(name: "swift-train-mpi-checks", targets: ["MPIChecks"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // C APIs, each behind a small module map; nothing above Tensors/Optimizers/SwiftMPI/Data sees them.
        // CKernels: hand-vectorised element-wise loops (runtime CPU dispatch), each with a Swift twin in tests.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        .target(name: "SwiftMPI", dependencies: ["CMPI"], swiftSettings: release),
        .target(name: "Tensors", dependencies: ["CBLAS", "CKernels"], swiftSettings: release),
        .target(name: "Models", dependencies: ["Tensors"], swiftSettings: release),
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3", "-fno-math-errno", "-ffp-contract=off"])]),
        .target(name: "Optimizers", dependencies: ["Tensors", "CKernels"], swiftSettings: release),
        .target(name: "Distributed", dependencies: ["SwiftMPI", "Tensors", "Optimizers"], swiftSettings: release),
        .target(name: "Data", dependencies: ["CZlib", "Tensors"], swiftSettings: release),
        .target(name: "Training",
                dependencies: ["Distributed", "Data", "Models", "Optimizers", "Tensors", "SwiftMPI",
                               .product(name: "Yams", package: "Yams")],
                swiftSettings: release),
        .executableTarget(name: "SwiftTrain",
                          dependencies: ["Training", "SwiftMPI", "Tensors", "Models", "Data", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: release),
        // Multi-rank checks that need real MPI collectives; run under `mpirun -n 4` by launch/test.
        .executableTarget(name: "MPIChecks", dependencies: ["Training", "Distributed", "SwiftMPI", "Optimizers", "Data", "Tensors"],
                          swiftSettings: release),

        .testTarget(name: "TensorsTests", dependencies: ["Tensors"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Tensors"]),
        .testTarget(name: "OptimizersTests", dependencies: ["Optimizers", "Tensors"], exclude: ["Fixtures"]),
        .testTarget(name: "MatrixOptimizersTests", dependencies: ["Optimizers", "Tensors"], exclude: ["Fixtures"]),
        .testTarget(name: "FullBatchTests", dependencies: ["Optimizers", "Tensors", "Training", "SwiftMPI"]),
        .testTarget(name: "DataTests", dependencies: ["Data"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Distributed", "SwiftMPI", "Models", "Data", "Tensors", "Optimizers"]),
    ]
)
