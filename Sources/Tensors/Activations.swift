import CKernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Element-wise activations over n elements. Backward kernels accumulate: dx += dy · f'(x).

/// y = max(x, 0)
public func reluForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
    for i in 0..<n { y[i] = x[i] > 0 ? x[i] : 0 }
}

/// dx += dy · 1[x > 0]   (the subgradient at 0 is taken as 0, as in PyTorch)
/// Branch-free C kernel; `reluBackwardNaive` is its twin.
public func reluBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                         count n: Int) {
    swt_relu_backward_add(dx, dy, x, n)
}

/// Naive twin of `reluBackward` for tests.
public func reluBackwardNaive(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                              count n: Int) {
    for i in 0..<n where x[i] > 0 { dx[i] += dy[i] }
}

// GELU, tanh approximation (GPT-2; PyTorch's approximate='tanh'):
//   y = ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
private let geluScale: Float = 0.7978845608028654  // √(2/π)
private let geluCubic: Float = 0.044715

public func geluForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
    for i in 0..<n {
        let v = x[i]
        let u = geluScale * (v + geluCubic * v * v * v)
        y[i] = 0.5 * v * (1 + tanhf(u))
    }
}

/// dx += dy · (½(1 + tanh u) + ½·x·(1 − tanh² u)·√(2/π)·(1 + 3·0.044715·x²))
public func geluBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                         count n: Int) {
    for i in 0..<n {
        let v = x[i]
        let u = geluScale * (v + geluCubic * v * v * v)
        let t = tanhf(u)
        let du = geluScale * (1 + 3 * geluCubic * v * v)
        dx[i] += dy[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du)
    }
}
