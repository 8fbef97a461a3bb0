#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Dimension letters used in this file:
//   B  sequences     T  positions (time)     C  channels = NH · HS     NH heads     HS head size
// Causal multi-head self-attention (Vaswani et al. 2017; GPT-2's masked variant), as llm.c's attention_forward:
// the input is the fused projection qkv[B, T, 3C] = [Q | K | V], head h using channels h·HS ..< (h+1)·HS of each.
//   S = Q·Kᵀ / √HS,  S[t, j] = −∞ for j > t,  P = softmax_rows(S),  out = P·V
// P is saved for backward as att[B, NH, T, T] (zero above the diagonal). The fast kernels compute Q·Kᵀ, P·V and
// their gradients with one GEMM per (b, head), reading Q, K, V in place through leading dimension 3C (no copies);
// the masked upper triangle is computed and discarded, which costs less than T small GEMMs would.
// Backward kernels accumulate (+=). With `precision: .bf16` the four GEMMs of each (b, head) take bf16 operands (as
// torch.autocast runs attention's matmuls); the softmax and its backward stay fp32.

/// out[B, T, C] and att[B, NH, T, T] from qkv[B, T, 3C].
public func attentionForward(_ out: UnsafeMutablePointer<Float>, _ att: UnsafeMutablePointer<Float>,
                             _ qkv: UnsafePointer<Float>, batch: Int, time: Int, channels: Int, heads: Int,
                             precision: GEMMPrecision = .fp32) {
    attentionForward(out, att, .fp32(qkv), batch: batch, time: time, channels: channels, heads: heads,
                     precision: precision)
}

/// `attentionForward` with qkv as a GEMM operand: Q, K and V are read only by products, so a qkv rounded to bf16
/// once (with `precision` bf16) serves every head's products without rounding per head. With `attH`
/// ([B, NH, T, T], bf16 only) each P is rounded once into it as it is produced, for P·V here and for backward's
/// dV (`attentionBackward(…, attH:)`); without, P is rounded at the product.
public func attentionForward(_ out: UnsafeMutablePointer<Float>, _ att: UnsafeMutablePointer<Float>,
                             _ qkv: GEMMOperand, batch: Int, time: Int, channels: Int, heads: Int,
                             precision: GEMMPrecision, attH: UnsafeMutablePointer<UInt16>? = nil) {
    let T = time, C = channels, C3 = 3 * channels
    precondition(C % heads == 0, "channels \(C) not divisible by heads \(heads)")
    let HS = C / heads
    let scale = 1 / Float(HS).squareRoot()
    for b in 0..<batch {
        let base = qkv.advanced(by: b * T * C3)
        for h in 0..<heads {
            let q = base.advanced(by: h * HS), k = base.advanced(by: C + h * HS), v = base.advanced(by: 2 * C + h * HS)
            let head = (b * heads + h) * T * T, p = att + head
            // S[T, T] = scale · Q[T, HS] · K[T, HS]ᵀ
            gemm(precision, transposeA: false, transposeB: true, m: T, n: T, k: HS, alpha: scale, q, lda: C3, k, ldb: C3,
             beta: 0, p, ldc: T)
            causalSoftmaxRows(p, time: T)
            // out_h[T, HS] = P[T, T] · V[T, HS]
            let pOperand = GEMMOperand.rounding(p, into: attH.map { $0 + head }, count: T * T, in: precision)
            gemm(precision, transposeA: false, transposeB: false, m: T, n: HS, k: T, alpha: 1, pOperand, lda: T, v, ldb: C3,
             beta: 0, out + b * T * C + h * HS, ldc: C)
        }
    }
}

/// Row t of p[T, T]: softmax over columns 0...t (max subtracted first), zero above the diagonal.
@inline(__always)
private func causalSoftmaxRows(_ p: UnsafeMutablePointer<Float>, time T: Int) {
    for t in 0..<T {
        let row = p + t * T
        var maxValue = row[0]
        for j in 0...t where row[j] > maxValue { maxValue = row[j] }
        var sum: Float = 0
        for j in 0...t {
            let e = expf(row[j] - maxValue)
            row[j] = e
            sum += e
        }
        let inv = 1 / sum
        for j in 0...t { row[j] *= inv }
        for j in (t + 1)..<T { row[j] = 0 }
    }
}

/// Gradients of `attentionForward`, accumulated into dqkv[B, T, 3C]:
///   dP = dOut_h·Vᵀ,  dV += Pᵀ·dOut_h,  dS = P ⊙ (dP − rowsum(P ⊙ dP)) / √HS,  dQ += dS·K,  dK += dSᵀ·Q
/// `scratch` holds T·T floats (dP, then dS in place); its contents on return are unspecified.
public func attentionBackward(_ dqkv: UnsafeMutablePointer<Float>, _ dOut: UnsafePointer<Float>,
                              _ qkv: UnsafePointer<Float>, _ att: UnsafePointer<Float>,
                              scratch: UnsafeMutablePointer<Float>,
                              batch: Int, time: Int, channels: Int, heads: Int, precision: GEMMPrecision = .fp32) {
    attentionBackward(dqkv, .fp32(dOut), .fp32(qkv), att, scratch: scratch, batch: batch, time: time,
                      channels: channels, heads: heads, precision: precision)
}

/// `attentionBackward` with dOut and qkv as GEMM operands (read only by products; see the forward). In bf16, P
/// comes from `attH` when forward kept it rounded there (else it is rounded at the dV product), and each dS is
/// rounded once for both the dQ and the dK product.
public func attentionBackward(_ dqkv: UnsafeMutablePointer<Float>, _ dOut: GEMMOperand, _ qkv: GEMMOperand,
                              _ att: UnsafePointer<Float>, attH: UnsafePointer<UInt16>? = nil,
                              scratch: UnsafeMutablePointer<Float>,
                              batch: Int, time: Int, channels: Int, heads: Int, precision: GEMMPrecision) {
    let T = time
    withUnsafeTemporaryAllocation(of: UInt16.self, capacity: precision == .bf16 ? T * T : 0) { dSH in
        attentionBackwardHeads(dqkv, dOut, qkv, att, attH: attH, scratch: scratch, dSH: dSH.baseAddress, batch: batch,
                               time: time, channels: channels, heads: heads, precision: precision)
    }
}

/// The per-head loop of `attentionBackward`; `dSH` (T·T, bf16 only) receives each dS rounded.
private func attentionBackwardHeads(_ dqkv: UnsafeMutablePointer<Float>, _ dOut: GEMMOperand, _ qkv: GEMMOperand,
                                    _ att: UnsafePointer<Float>, attH: UnsafePointer<UInt16>?,
                                    scratch: UnsafeMutablePointer<Float>, dSH: UnsafeMutablePointer<UInt16>?,
                                    batch: Int, time: Int, channels: Int, heads: Int, precision: GEMMPrecision) {
    let T = time, C = channels, C3 = 3 * channels
    let HS = C / heads
    let scale = 1 / Float(HS).squareRoot()
    let dS = scratch
    for b in 0..<batch {
        let base = qkv.advanced(by: b * T * C3), dBase = dqkv + b * T * C3
        for h in 0..<heads {
            let q = base.advanced(by: h * HS), k = base.advanced(by: C + h * HS), v = base.advanced(by: 2 * C + h * HS)
            let dq = dBase + h * HS, dk = dBase + C + h * HS, dv = dBase + 2 * C + h * HS
            let head = (b * heads + h) * T * T, p = att + head
            let pOperand = GEMMOperand.stored(p, attH.map { $0 + head }, in: precision)
            let dOutH = dOut.advanced(by: b * T * C + h * HS)
            // dP[T, T] = dOut_h[T, HS] · V[T, HS]ᵀ
            gemm(precision, transposeA: false, transposeB: true, m: T, n: T, k: HS, alpha: 1, dOutH, lda: C, v, ldb: C3,
             beta: 0, dS, ldc: T)
            // dV[T, HS] += P[T, T]ᵀ · dOut_h[T, HS]
            gemm(precision, transposeA: true, transposeB: false, m: T, n: HS, k: T, alpha: 1, pOperand, lda: T, dOutH, ldb: C,
             beta: 1, dv, ldc: C3)
            // Softmax backward, row by row; the scale of S folds in here.
            for t in 0..<T {
                let pr = p + t * T, dr = dS + t * T
                var dot: Float = 0
                for j in 0...t { dot += pr[j] * dr[j] }
                for j in 0...t { dr[j] = pr[j] * (dr[j] - dot) * scale }
                for j in (t + 1)..<T { dr[j] = 0 }
            }
            // dQ[T, HS] += dS[T, T] · K[T, HS];  dK[T, HS] += dS[T, T]ᵀ · Q[T, HS]
            let dSOperand = GEMMOperand.rounding(dS, into: dSH, count: T * T, in: precision)
            gemm(precision, transposeA: false, transposeB: false, m: T, n: HS, k: T, alpha: 1, dSOperand, lda: T, k, ldb: C3,
             beta: 1, dq, ldc: C3)
            gemm(precision, transposeA: true, transposeB: false, m: T, n: HS, k: T, alpha: 1, dSOperand, lda: T, q, ldb: C3,
             beta: 1, dk, ldc: C3)
        }
    }
}

/// Naive twin of `attentionForward`: loops in double precision, only over the unmasked triangle.
public func attentionForwardNaive(_ out: UnsafeMutablePointer<Float>, _ att: UnsafeMutablePointer<Float>,
                                  _ qkv: UnsafePointer<Float>, batch: Int, time: Int, channels: Int, heads: Int,
                             precision: GEMMPrecision = .fp32) {
    let T = time, C = channels, C3 = 3 * channels
    let HS = C / heads
    let scale = 1 / Double(HS).squareRoot()
    var scores = [Double](repeating: 0, count: T)
    for b in 0..<batch {
        for h in 0..<heads {
            let p = att + (b * heads + h) * T * T
            for t in 0..<T {
                let q = qkv + (b * T + t) * C3 + h * HS
                var maxValue = -Double.infinity
                for j in 0...t {
                    let k = qkv + (b * T + j) * C3 + C + h * HS
                    var dot = 0.0
                    for i in 0..<HS { dot += Double(q[i]) * Double(k[i]) }
                    scores[j] = dot * scale
                    maxValue = Swift.max(maxValue, scores[j])
                }
                var sum = 0.0
                for j in 0...t { scores[j] = exp(scores[j] - maxValue); sum += scores[j] }
                for j in 0..<T { p[t * T + j] = j <= t ? Float(scores[j] / sum) : 0 }
                let o = out + (b * T + t) * C + h * HS
                for i in 0..<HS {
                    var acc = 0.0
                    for j in 0...t { acc += scores[j] / sum * Double(qkv[(b * T + j) * C3 + 2 * C + h * HS + i]) }
                    o[i] = Float(acc)
                }
            }
        }
    }
}

/// Naive twin of `attentionBackward` (no scratch; double-precision loops).
public func attentionBackwardNaive(_ dqkv: UnsafeMutablePointer<Float>, _ dOut: UnsafePointer<Float>,
                                   _ qkv: UnsafePointer<Float>, _ att: UnsafePointer<Float>,
                                   batch: Int, time: Int, channels: Int, heads: Int, precision: GEMMPrecision = .fp32) {
    let T = time, C = channels, C3 = 3 * channels
    let HS = C / heads
    let scale = 1 / Double(HS).squareRoot()
    var dP = [Double](repeating: 0, count: T)
    for b in 0..<batch {
        for h in 0..<heads {
            let p = att + (b * heads + h) * T * T
            func at(_ t: Int, _ part: Int, _ i: Int) -> Int { (b * T + t) * C3 + part * C + h * HS + i }
            for t in 0..<T {
                let dO = dOut + (b * T + t) * C + h * HS
                var dot = 0.0
                for j in 0...t {
                    var acc = 0.0
                    for i in 0..<HS { acc += Double(dO[i]) * Double(qkv[at(j, 2, i)]) }
                    dP[j] = acc
                    dot += Double(p[t * T + j]) * acc
                    for i in 0..<HS { dqkv[at(j, 2, i)] += Float(Double(p[t * T + j]) * Double(dO[i])) }
                }
                for j in 0...t {
                    let dS = Double(p[t * T + j]) * (dP[j] - dot) * scale
                    for i in 0..<HS {
                        dqkv[at(t, 0, i)] += Float(dS * Double(qkv[at(j, 1, i)]))
                        dqkv[at(j, 1, i)] += Float(dS * Double(qkv[at(t, 0, i)]))
                    }
                }
            }
        }
    }
}
