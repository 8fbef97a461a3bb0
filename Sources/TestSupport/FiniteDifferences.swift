import Tensors

/// Central finite differences of a scalar loss with respect to every element of `params`, one element at a time:
/// numeric = (f(θ + h·eᵢ) − f(θ − h·eᵢ)) / 2h, compared by the caller with the analytic gradient. Used by the model
/// gradient tests (XCTest) and usable from the multi-rank checks, which cannot link XCTest.
public struct FiniteDifferenceCheck {
    public struct Mismatch: CustomStringConvertible {
        public var tensor: String
        public var element: Int
        public var analytic: Double
        public var numeric: Double
        public var description: String { "\(tensor)[\(element)]: analytic \(analytic), numeric \(numeric)" }
    }

    /// Step h (in parameter units).
    public var step: Float
    /// |analytic − numeric| ≤ absolute + relative·|numeric| passes.
    public var absolute: Double
    public var relative: Double

    public init(step: Float = 1e-2, absolute: Double, relative: Double) {
        self.step = step
        self.absolute = absolute
        self.relative = relative
    }

    public struct Result {
        /// Elements compared.
        public var checked = 0
        public var mismatches: [Mismatch] = []
        /// Per tensor: the largest |analytic| seen (a tensor whose gradient is all ~0 passes vacuously: callers
        /// assert it is not).
        public var largestGradient: [String: Double] = [:]
    }

    /// (f(θ + h·eᵢ) − f(θ − h·eᵢ)) / 2h for element `element` of `params` (restored afterwards).
    public static func derivative(params: FloatBuffer, element i: Int, step: Float, loss: () -> Double) -> Double {
        let original = params[i]
        params[i] = original + step
        let up = loss()
        params[i] = original - step
        let down = loss()
        params[i] = original
        return (up - down) / Double(2 * step)
    }

    /// Compares `grads` (analytic, same layout as `params`) with finite differences of `loss` over every tensor of
    /// `table`. `params` is perturbed in place and restored element by element.
    public func run(table: ParameterTable, params: FloatBuffer, grads: FloatBuffer, loss: () -> Double) -> Result {
        var result = Result()
        for entry in table.entries {
            var largest = 0.0
            for i in entry.range {
                let numeric = Self.derivative(params: params, element: i, step: step, loss: loss)
                let analytic = Double(grads[i])
                largest = max(largest, abs(analytic))
                if !(abs(analytic - numeric) <= absolute + relative * abs(numeric)) {
                    result.mismatches.append(Mismatch(tensor: entry.name, element: i - entry.offset, analytic: analytic, numeric: numeric))
                }
                result.checked += 1
            }
            result.largestGradient[entry.name] = largest
        }
        return result
    }
}
