#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Dimension letters: B rows, C classes.

/// Softmax cross-entropy over rows of logits[B, C] with integer targets.
/// Writes probabilities into probs[B, C] (kept for backward) and returns Σ_B −log p[target] in double precision
/// (a sum, not a mean: the caller divides by whatever batch the loss is normalised over).
/// Also counts correct arg-max predictions into `correct` when given.
public func softmaxCrossEntropyForward(_ probs: UnsafeMutablePointer<Float>, _ logits: UnsafePointer<Float>,
                                       targets: UnsafePointer<Int32>, batch: Int, classes: Int,
                                       correct: UnsafeMutablePointer<Int>? = nil) -> Double {
    var lossSum = 0.0
    var hits = 0
    for b in 0..<batch {
        let row = logits + b * classes
        let p = probs + b * classes
        var maxValue = row[0]
        var argmax = 0
        for c in 1..<classes where row[c] > maxValue { maxValue = row[c]; argmax = c }
        var sum: Float = 0
        for c in 0..<classes {
            let e = expf(row[c] - maxValue)
            p[c] = e
            sum += e
        }
        let inv = 1 / sum
        for c in 0..<classes { p[c] *= inv }
        let t = Int(targets[b])
        precondition(t >= 0 && t < classes, "target \(t) outside 0..<\(classes)")
        // log-sum-exp form: −log p_t = log Σ exp(z − max) − (z_t − max); exact even when p_t underflows.
        lossSum += Double(logf(sum)) - Double(row[t] - maxValue)
        if argmax == t { hits += 1 }
    }
    correct?.pointee += hits
    return lossSum
}

/// dlogits[B, C] += scale · (probs − onehot(target)). With scale = 1/N this is the gradient of the mean loss over N.
public func softmaxCrossEntropyBackward(_ dLogits: UnsafeMutablePointer<Float>, _ probs: UnsafePointer<Float>,
                                        targets: UnsafePointer<Int32>, batch: Int, classes: Int, scale: Float) {
    for b in 0..<batch {
        let d = dLogits + b * classes
        let p = probs + b * classes
        for c in 0..<classes { d[c] += scale * p[c] }
        d[Int(targets[b])] -= scale
    }
}
