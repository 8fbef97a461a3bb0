#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Scalar helpers shared by the element-wise optimizers (SGD, Adam family, Adagrad, Adadelta, RMSprop, AdaMax, NAdam,
// RAdam, Lion, signSGD/Signum, Rprop).

/// The Double a config file means by a Float hyperparameter: `Double(Float(0.999))` is 0.99900001287…, whereas
/// torch receives the Python float 0.999. Going through the shortest decimal form recovers the value the user wrote,
/// which matters where torch computes scalars in double (RAdam's ρ∞ = 2/(1−β₂) − 1 moves by 1.3e-5 otherwise).
/// Call once per step or at init, never per element.
@inline(__always)
func decimalWidened(_ x: Float) -> Double {
    Double(x.description) ?? Double(x)
}

/// `torch.sign`: −1, 0 (keeping the zero's sign) or +1, and NaN for NaN.
@inline(__always)
func signOf(_ x: Float) -> Float {
    x > 0 ? 1 : (x < 0 ? -1 : x)
}

/// Decoupled weight-decay multiplier 1 − γλ, computed in double and rounded once, as torch does with Python floats.
@inline(__always)
func decoupledDecayFactor(lr: Float, weightDecay: Float) -> Float {
    Float(1 - Double(lr) * Double(weightDecay))
}

/// Adam-style bias correction 1 − βᵗ, in double from the decimal value of β, as torch computes it from Python
/// floats. Every optimizer that bias-corrects calls this (once per step), so they all round the same way.
@inline(__always)
func biasCorrection(beta: Float, step: Int) -> Double {
    1 - pow(decimalWidened(beta), Double(step))
}
