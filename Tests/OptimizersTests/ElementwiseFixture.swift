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
        /// Swift `Hyper` field name → value (booleans as 0/1).
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

/// Builds the Swift optimizer for a fixture case from its optimizer name and `Hyper` fields.
func makeElementwiseOptimizer(_ kind: String, hyper h: [String: Double], count: Int) -> any Optimizer {
    func f(_ key: String, _ fallback: Float) -> Float { h[key].map { Float($0) } ?? fallback }
    func b(_ key: String, _ fallback: Bool) -> Bool { h[key].map { $0 != 0 } ?? fallback }
    switch kind {
    case "sgd":
        let d = SGD.Hyper()
        return SGD(count: count, hyper: .init(momentum: f("momentum", d.momentum), dampening: f("dampening", d.dampening),
                                              nesterov: b("nesterov", d.nesterov)))
    case "adagrad":
        let d = Adagrad.Hyper()
        return Adagrad(count: count, hyper: .init(lrDecay: f("lrDecay", d.lrDecay),
                                                  initialAccumulator: f("initialAccumulator", d.initialAccumulator),
                                                  eps: f("eps", d.eps)))
    case "adadelta":
        let d = Adadelta.Hyper()
        return Adadelta(count: count, hyper: .init(rho: f("rho", d.rho), eps: f("eps", d.eps)))
    case "rmsprop":
        let d = RMSprop.Hyper()
        return RMSprop(count: count, hyper: .init(alpha: f("alpha", d.alpha), eps: f("eps", d.eps),
                                                  momentum: f("momentum", d.momentum),
                                                  centered: b("centered", d.centered)))
    case "adam":
        let d = Adam.Hyper()
        return Adam(count: count, hyper: .init(beta1: f("beta1", d.beta1), beta2: f("beta2", d.beta2),
                                               eps: f("eps", d.eps), decoupled: b("decoupled", d.decoupled),
                                               amsgrad: b("amsgrad", d.amsgrad)))
    case "adamax":
        let d = AdaMax.Hyper()
        return AdaMax(count: count, hyper: .init(beta1: f("beta1", d.beta1), beta2: f("beta2", d.beta2),
                                                 eps: f("eps", d.eps)))
    case "nadam":
        let d = NAdam.Hyper()
        return NAdam(count: count, hyper: .init(beta1: f("beta1", d.beta1), beta2: f("beta2", d.beta2),
                                                eps: f("eps", d.eps), momentumDecay: f("momentumDecay", d.momentumDecay),
                                                decoupled: b("decoupled", d.decoupled)))
    case "radam":
        let d = RAdam.Hyper()
        return RAdam(count: count, hyper: .init(beta1: f("beta1", d.beta1), beta2: f("beta2", d.beta2),
                                                eps: f("eps", d.eps), decoupled: b("decoupled", d.decoupled)))
    case "lion":
        let d = Lion.Hyper()
        return Lion(count: count, hyper: .init(beta1: f("beta1", d.beta1), beta2: f("beta2", d.beta2)))
    case "signsgd":
        return SignSGD(count: count, hyper: .init(momentum: f("momentum", 0)))
    case "rprop":
        let d = Rprop.Hyper()
        return Rprop(count: count, hyper: .init(etaMinus: f("etaMinus", d.etaMinus), etaPlus: f("etaPlus", d.etaPlus),
                                                stepSizeMin: f("stepSizeMin", d.stepSizeMin),
                                                stepSizeMax: f("stepSizeMax", d.stepSizeMax)))
    default:
        fatalError("fixture names unknown optimizer \(kind); add it to makeElementwiseOptimizer")
    }
}

/// Applies one step of `optimizer` to `params` (its whole owned range) with `grads`.
func step(_ optimizer: any Optimizer, params: inout [Float], grads: [Float], segments: [ParamSegment], lr: Float) {
    params.withUnsafeMutableBufferPointer { p in
        grads.withUnsafeBufferPointer { g in
            optimizer.update(params: p, grads: g, segments: segments, context: StepContext(lr: lr))
        }
    }
}
