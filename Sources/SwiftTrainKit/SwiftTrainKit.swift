// SwiftTrainKit: the library product for training a model of your own with swift-train's kernels, distributed engine
// (data parallelism, ZeRO stages 0–3) and trainer. `import SwiftTrainKit` re-exports the modules below; what is
// stable across releases, and what is not, is in docs/models.md ("Stability"). examples/custom-model uses it.
@_exported import Datasets
@_exported import Distributed
@_exported import Models
@_exported import Optimizers
@_exported import SwiftMPI
@_exported import Tensors
@_exported import Training
