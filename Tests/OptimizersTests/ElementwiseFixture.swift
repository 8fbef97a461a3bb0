import Foundation
import Optimizers
import Tensors
import XCTest

/// Reference trajectories written by Tests/Fixtures/make_elementwise_fixtures.py (torch.optim in float32 on CPU, or a
/// float64 NumPy version of the paper's rule where torch has no class). Loaded relative to this file, not as a bundle
/// resource. Layout: a flat vector of `weightCount` weight elements (decayed) then `biasCount` bias elements (no
/// decay, learning rate × `biasLrScale`).
struct ElementwiseFixture: Decodable {
    struct Case: Decodable {
        let name: String
        let optimizer: String
        /// Hyperparameter key (`optimizer.<key>` without the prefix) → value (flags as 0/1).
        let hyper: [String: Double]
        let lr: Float
        let weightDecay: Float
        let reference: String
        /// Parameters after step 1, 2, …
        let params: [[Float]]

        enum CodingKeys: String, CodingKey {
            case name, optimizer, hyper, lr, reference, params
            case weightDecay = "weight_decay"
        }
    }

    let torchVersion: String
    let weightCount: Int
    let biasCount: Int
    let biasLrScale: Float
    let initial: [Float]
    let grads: [[Float]]
    let cases: [Case]

    enum CodingKeys: String, CodingKey {
        case initial, grads, cases
        case torchVersion = "torch_version"
        case weightCount = "weight_count"
        case biasCount = "bias_count"
        case biasLrScale = "bias_lr_scale"
    }

    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/elementwise.json")

    static func load() throws -> ElementwiseFixture {
        let data = try Data(contentsOf: path)
        return try JSONDecoder().decode(ElementwiseFixture.self, from: data)
    }

    var count: Int { weightCount + biasCount }

    /// A table of one decayed weight matrix and one undecayed bias, matching the fixture layout.
    var table: ParameterTable {
        var t = ParameterTable()
        t.add("weight", shape: [weightCount], role: .matrix)
        t.add("bias", shape: [biasCount], role: .bias)
        return t
    }

    /// Segments of `owned` (absolute range of the flat vector): weight with `weightDecay`, bias with 0 and its lr scale.
    func segments(owned: Range<Int>, weightDecay: Float) -> [ParamSegment] {
        makeSegments(table: table, owned: owned, weightDecay: { $0 == .matrix ? weightDecay : 0 },
                     lrScale: { $0 == .bias ? biasLrScale : 1 })
    }
}

/// Builds the optimizer a fixture case names through the registry, as configuration does, with the case's keys.
func makeElementwiseOptimizer(_ name: String, hyper: [String: Double], count: Int) -> any Optimizer {
    guard let info = OptimizerInfos.info(name) else { fatalError("fixture names unknown optimizer \(name)") }
    return info.make(name, count: count, settings: info.settings(parsing: hyper))
}

/// Applies one step of `optimizer` to `params` (its whole owned range) with `grads`.
func step(_ optimizer: any Optimizer, params: inout [Float], grads: [Float], segments: [ParamSegment], lr: Float) {
    params.withUnsafeMutableBufferPointer { p in
        grads.withUnsafeBufferPointer { g in
            optimizer.update(params: p, grads: g, segments: segments, context: StepContext(lr: lr))
        }
    }
}
