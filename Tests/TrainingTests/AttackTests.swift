import Datasets
import Models
import SwiftMPI
import Tensors
import Training
import XCTest

final class AttackTests: XCTestCase {
    /// Bad input is a `ConfigError` naming the flag, before any file is read or any rank communicates.
    func testBadRequestsNameTheFlag() {
        func problem(_ eps: String, method: String = "fgsm,pgd", steps: Int = 10, stepSize: Float? = nil) -> String? {
            do {
                _ = try AttackRequest(run: "r", epsilonList: eps, methodList: method, steps: steps, stepSize: stepSize,
                                      randomStart: true, limit: 0, images: 0, out: nil, seed: 0)
                return nil
            } catch { return "\(error)" }
        }
        XCTAssertNil(problem("0,0.1"))
        XCTAssertEqual(problem("-0.1"), "--eps: ε = -0.1 must be in [0, 1] (pixel units)")
        XCTAssertEqual(problem("0.1,x"), "--eps: 'x' is not a number; give ε in pixel units, e.g. --eps 0.05,0.1")
        XCTAssertEqual(problem("0.1", method: "cw"), "--method: 'cw' is not fgsm or pgd")
        XCTAssertEqual(problem("0.1", steps: 0), "--steps = 0 must be at least 1")
        XCTAssertEqual(problem("0.1", stepSize: -1), "--step-size = -1.0 must be positive (pixel units)")
    }

    /// The distributed attack counts every example exactly once and gives the same accuracies on 1, 2 and 3
    /// simulated ranks (random starts are seeded per global row, so the split does not change an example's attack);
    /// at ε = 0 the robust accuracy is the clean accuracy exactly.
    func testSameReportOnAnyNumberOfRanks() throws {
        let test = ImageDataset.synthetic(count: 301, featureCount: 16, classes: 4, seed: 3)
        let model = MLP(widths: [16, 8, 4], activation: .relu)
        let params = FloatBuffer(count: model.table.count)
        model.initializeParameters(params.buffer, seed: 4)
        let request = AttackRequest(run: "synthetic", epsilons: [0, 0.1, 0.3], steps: 3)
        func report(ranks: Int) throws -> [[Double]] {
            try SimulatedWorld.run(size: ranks) { comm in
                // Each simulated rank its own model instance (workspaces are not shared between threads).
                let own = MLP(widths: [16, 8, 4], activation: .relu)
                let plan = try AttackPlan(request: request, model: own, params: params, test: test, space: PixelSpace(mean: 0.5, std: 2))
                let r = try AttackRunner.run(plan, comm: comm)
                XCTAssertEqual(r.examples, 301)
                return [r.cleanAccuracy] + r.attacks.map(\.accuracy)
            }
        }
        let one = try report(ranks: 1)[0]
        XCTAssertEqual(one.count, 1 + 2 * 3)
        XCTAssertEqual(one[1], one[0], "FGSM at ε = 0 changes nothing")
        XCTAssertEqual(one[4], one[0], "PGD at ε = 0 changes nothing")
        XCTAssertLessThan(one[6], one[0], "PGD at ε = 0.3 must lower the accuracy")
        for ranks in [2, 3] { for r in try report(ranks: ranks) { XCTAssertEqual(r, one, "\(ranks) ranks") } }
    }
}
