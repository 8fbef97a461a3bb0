// swift-tools-version:6.0
// Module map: each module and the modules its sources import (checked against the real `import` lines and the
// dependencies below by Tests/PackageLayoutTests; `—` means none). Arrows point down the list, never up.
// Only Distributed communicates during a training step; Optimizers never import MPI.
//   MPIChecks   → Datasets, Distributed, FullBatch, Optimizers, SwiftMPI, Tensors, TestSupport, Training
//   SwiftTrain  → Bench, Experiments, FullBatch, Training
//   Bench       → Optimizers, SwiftMPI, Tensors, Training
//   Experiments → Datasets, Models, Plots, SwiftMPI, Tensors, Training, Yams
//   TestSupport → Datasets, SwiftMPI, Tensors, Training
//   Training    → Datasets, Distributed, Models, Optimizers, SwiftMPI, Tensors, Yams
//   Distributed → Optimizers, SwiftMPI, Tensors
//   Datasets    → CZlib, Tensors
//   FullBatch   → Plots, SwiftMPI, Tensors
//   Models      → Tensors
//   Optimizers  → CKernels, Tensors
//   Plots       → —
//   SwiftMPI    → CKernels, CMPI
//   Tensors     → CBLAS, CDNNL, CKernels
import PackageDescription

// Releases keep Swift's safety checks (-O, not -Ounchecked): a missing validation then traps with a message instead
// of reading out of bounds or looping forever. Measured on the MLP and GPT (launch/compare, docs/benchmarks.md):
// no cost above the run-to-run noise, so no module is compiled unchecked. The hot loops are OpenBLAS and CKernels.
let release: [SwiftSetting] = [.unsafeFlags(["-O", "-wmo"], .when(configuration: .release))]

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
        // C APIs, each behind a small module map; only SwiftMPI, Tensors, Optimizers and Datasets see them.
        // CKernels: hand-vectorised element-wise loops (runtime CPU dispatch), each with a Swift twin in tests.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // oneDNN 2.x for the bf16 GEMM (Sources/Tensors/GEMM.swift); Debian ships no pkg-config file for it.
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3", "-fno-math-errno", "-ffp-contract=off"])]),

        // Foundations: no module here knows about training.
        .target(name: "SwiftMPI", dependencies: ["CMPI", "CKernels"], swiftSettings: release),
        .target(name: "Tensors", dependencies: ["CBLAS", "CDNNL", "CKernels"], swiftSettings: release),
        .target(name: "Plots", swiftSettings: release),
        .target(name: "Models", dependencies: ["Tensors"], swiftSettings: release),
        .target(name: "Datasets", dependencies: ["CZlib", "Tensors"], swiftSettings: release),
        .target(name: "Optimizers", dependencies: ["Tensors", "CKernels"], swiftSettings: release),
        // The only module that communicates during a training step.
        .target(name: "Distributed", dependencies: ["SwiftMPI", "Tensors", "Optimizers"], swiftSettings: release),
        // The training loop, configuration, checkpoints and the run directory.
        .target(name: "Training",
                dependencies: ["Distributed", "Datasets", "Models", "Optimizers", "Tensors", "SwiftMPI",
                               .product(name: "Yams", package: "Yams")],
                swiftSettings: release),
        // Many runs: sweeps, their results and reports.
        .target(name: "Experiments",
                dependencies: ["Training", "Datasets", "Models", "Plots", "SwiftMPI", "Tensors", .product(name: "Yams", package: "Yams")],
                swiftSettings: release),
        // Full-batch optimisation (L-BFGS, line searches), the convergence-theory check and logistic regression.
        .target(name: "FullBatch", dependencies: ["Plots", "SwiftMPI", "Tensors"], swiftSettings: release),
        // Kernel and collective benchmarks.
        .target(name: "Bench", dependencies: ["Training", "Optimizers", "SwiftMPI", "Tensors"], swiftSettings: release),
        .executableTarget(name: "SwiftTrain",
                          dependencies: ["Training", "Experiments", "FullBatch", "Bench",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: release),
        // Pieces shared by the XCTest targets and the multi-rank checks (no XCTest inside).
        .target(name: "TestSupport", dependencies: ["Datasets", "SwiftMPI", "Tensors", "Training"],
                swiftSettings: release),
        // Multi-rank checks that need real MPI collectives; run under `mpirun -n 4` by launch/test.
        .executableTarget(name: "MPIChecks",
                          dependencies: ["Training", "Distributed", "FullBatch", "SwiftMPI", "Optimizers", "Datasets", "Tensors", "TestSupport"],
                          swiftSettings: release),

        .testTarget(name: "SwiftMPITests", dependencies: ["SwiftMPI"]),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors"]),
        .testTarget(name: "PlotsTests", dependencies: ["Plots"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Tensors", "TestSupport"]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets"]),
        .testTarget(name: "OptimizersTests", dependencies: ["Optimizers", "Tensors"], exclude: ["Fixtures"]),
        .testTarget(name: "MatrixOptimizersTests", dependencies: ["Optimizers", "Tensors"], exclude: ["Fixtures"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "Tensors"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Distributed", "SwiftMPI", "Models", "Datasets", "Tensors", "Optimizers", "TestSupport"]),
        .testTarget(name: "ExperimentsTests", dependencies: ["Experiments", "Training", "Datasets", "Models", "SwiftMPI"]),
        .testTarget(name: "FullBatchTests", dependencies: ["FullBatch", "Optimizers", "SwiftMPI", "Tensors"]),
        .testTarget(name: "PackageLayoutTests"),
    ]
)
