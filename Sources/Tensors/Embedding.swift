// Dimension letters used in this file:
//   B  sequences in the batch     T  positions (time) per sequence     C  channels     V  vocabulary
// Token + position embedding of GPT-2. Backward accumulates (+=). No BLAS here: tests check against direct sums.

/// out[B, T, C] = wte[tokens[b, t], C] + wpe[t, C]
/// Precondition: every token in 0..<vocabulary, and wpe holds at least T rows.
public func embeddingForward(_ out: UnsafeMutablePointer<Float>, _ tokens: UnsafePointer<Int32>,
                             _ wte: UnsafePointer<Float>, _ wpe: UnsafePointer<Float>,
                             batch: Int, time: Int, channels: Int, vocabulary: Int) {
    let C = channels
    for b in 0..<batch {
        for t in 0..<time {
            let token = Int(tokens[b * time + t])
            precondition(token >= 0 && token < vocabulary, "token \(token) outside the vocabulary 0..<\(vocabulary)")
            let o = out + (b * time + t) * C, e = wte + token * C, p = wpe + t * C
            for c in 0..<C { o[c] = e[c] + p[c] }
        }
    }
}

/// dWte[V, C] += Σ over positions holding token v of dOut;  dWpe[t, C] += Σ_B dOut[b, t, C]
/// Either gradient may be nil (skipped).
public func embeddingBackward(_ dWte: UnsafeMutablePointer<Float>?, _ dWpe: UnsafeMutablePointer<Float>?,
                              _ dOut: UnsafePointer<Float>, _ tokens: UnsafePointer<Int32>,
                              batch: Int, time: Int, channels: Int) {
    let C = channels
    for b in 0..<batch {
        for t in 0..<time {
            let d = dOut + (b * time + t) * C
            if let dWte {
                let e = dWte + Int(tokens[b * time + t]) * C
                for c in 0..<C { e[c] += d[c] }
            }
            if let dWpe {
                let p = dWpe + t * C
                for c in 0..<C { p[c] += d[c] }
            }
        }
    }
}

/// out[n] = a[n] + b[n]   (a residual connection; its backward is `residualBackward`).
public func residualForward(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                            count n: Int) {
    for i in 0..<n { out[i] = a[i] + b[i] }
}

/// da[n] += dOut[n],  db[n] += dOut[n]
public func residualBackward(_ da: UnsafeMutablePointer<Float>, _ db: UnsafeMutablePointer<Float>,
                             _ dOut: UnsafePointer<Float>, count n: Int) {
    for i in 0..<n {
        da[i] += dOut[i]
        db[i] += dOut[i]
    }
}
