// Adversarial examples against a classifier's input: the reverse view of optimisation, where the weights are fixed
// and the input is moved to increase the loss inside an ℓ∞ ball.
// - FGSM (Goodfellow, Shlens & Szegedy 2015, "Explaining and Harnessing Adversarial Examples"):
//   x' = clip₍₀,₁₎(x + ε·sign ∇ₓL(x, y)).
// - PGD (Madry, Makelov, Schmidt, Tsipras & Vladu 2018, "Towards Deep Learning Models Resistant to Adversarial
//   Attacks"): from x (or a uniform random start in the ball), k steps x ← Π(x + α·sign ∇ₓL), Π the projection onto
//   {x' : ‖x' − x‖∞ ≤ ε} ∩ [0, 1]ᴵ, which for a box is an element-wise clamp. FGSM is PGD with one step α = ε and no
//   random start, and is computed by the same loop.
// ε and α are in pixel units ([0, 1] images); the model sees normalised inputs (p − mean)/std, so both are divided by
// std and the pixel box [0, 1] becomes [−mean/std, (1 − mean)/std] (`PixelSpace`).
// Dimension letters: B rows, I input features.

import Tensors

/// How model inputs relate to pixels: input = (pixel − mean) / std, pixels in [0, 1].
public struct PixelSpace: Sendable, Equatable {
    public var mean: Float
    public var std: Float
    public init(mean: Float, std: Float) {
        precondition(std > 0, "pixel standard deviation must be positive")
        self.mean = mean; self.std = std
    }
    /// Inputs are pixels (tests, synthetic data).
    public static let identity = PixelSpace(mean: 0, std: 1)
    /// The model-input values of pixels 0 and 1.
    public var lower: Float { -mean / std }
    public var upper: Float { (1 - mean) / std }
    /// A pixel distance in model-input units.
    public func inputUnits(_ pixels: Float) -> Float { pixels / std }
    public func pixel(_ input: Float) -> Float { input * std + mean }
}

public enum AttackMethod: String, Sendable, CaseIterable {
    case fgsm, pgd
}

/// One attack's settings, in pixel units.
public struct AttackSettings: Sendable, Equatable {
    public var method: AttackMethod
    /// ε, the ℓ∞ radius.
    public var epsilon: Float
    /// α per PGD step (FGSM: ε).
    public var stepSize: Float
    public var steps: Int
    /// PGD only: start from a uniform point of the ball (clipped to the box).
    public var randomStart: Bool
    public var seed: UInt64

    public init(method: AttackMethod, epsilon: Float, stepSize: Float = 0, steps: Int = 1, randomStart: Bool = false,
                seed: UInt64 = 0) {
        self.method = method; self.epsilon = epsilon; self.seed = seed
        switch method {
        case .fgsm: (self.stepSize, self.steps, self.randomStart) = (epsilon, 1, false)
        case .pgd: (self.stepSize, self.steps, self.randomStart) = (stepSize, steps, randomStart)
        }
    }

    /// Madry et al.'s usual PGD: α = 2.5ε/k, so k steps can cross the ball and back, random start.
    public static func pgd(epsilon: Float, steps: Int, seed: UInt64 = 0) -> Self {
        AttackSettings(method: .pgd, epsilon: epsilon, stepSize: 2.5 * epsilon / Float(max(steps, 1)), steps: steps,
                       randomStart: true, seed: seed)
    }

    /// nil when usable, else what is wrong (named by the flag or key prefix `key`).
    public func problem(key: String) -> String? {
        if !(epsilon >= 0 && epsilon <= 1) { return "\(key) ε = \(epsilon) must be in [0, 1] (pixel units)" }
        if method == .pgd && epsilon > 0 && !(stepSize > 0) { return "\(key) PGD step size = \(stepSize) must be positive" }
        if steps < 1 { return "\(key) steps = \(steps) must be at least 1" }
        return nil
    }
}

/// Runs FGSM/PGD against an MLP. Holds its own gradient workspace (grows to the largest batch); not thread-safe.
public final class AdversarialAttack {
    public let model: MLP
    public let space: PixelSpace
    private var gradient = FloatBuffer(count: 0)  // (B, I) ∂(loss sum)/∂input

    public init(model: MLP, space: PixelSpace) {
        self.model = model
        self.space = space
    }

    /// Writes the adversarial version of `batch.features` into `adversarial` (B, I; may not alias the features).
    /// The random start of row r draws from `SplitMix64(seed: settings.seed, stream: firstRow + r)`: a caller that
    /// passes each batch's global first row gets the same adversarial examples however the rows are split.
    public func perturb(params: UnsafePointer<Float>, batch: ModelBatch, settings: AttackSettings,
                        into adversarial: UnsafeMutablePointer<Float>, firstRow: Int = 0) {
        guard let clean = batch.features else { preconditionFailure("attacks need dense features") }
        let features = model.widths[0], n = batch.rows * features
        if gradient.count < n { gradient = FloatBuffer(count: n) }
        let eps = space.inputUnits(settings.epsilon), alpha = space.inputUnits(settings.stepSize)
        let lower = space.lower, upper = space.upper
        adversarial.update(from: clean, count: n)
        guard eps > 0 else { return }
        if settings.randomStart {
            for r in 0..<batch.rows {
                var rng = SplitMix64(seed: settings.seed, stream: UInt64(firstRow + r))
                for k in (r * features)..<((r + 1) * features) {
                    let x = clean[k]
                    adversarial[k] = min(min(upper, x + eps), max(max(lower, x - eps), x + rng.uniform(-eps, eps)))
                }
            }
        }
        let g = gradient.pointer
        let step = ModelBatch(features: UnsafePointer(adversarial), targets: batch.targets, rows: batch.rows)
        for _ in 0..<settings.steps {
            g.update(repeating: 0, count: n)
            _ = model.inputGradient(params: params, batch: step, dFeatures: g, lossScale: 1)
            // x ← Π(x + α sign g): the projection onto the ball ∩ box is a clamp to [max(lower, x₀ − ε), min(upper, x₀ + ε)].
            for k in 0..<n {
                let x = clean[k], gk = g[k]
                let moved = adversarial[k] + (gk > 0 ? alpha : (gk < 0 ? -alpha : 0))
                adversarial[k] = min(min(upper, x + eps), max(max(lower, x - eps), moved))
            }
        }
    }
}
