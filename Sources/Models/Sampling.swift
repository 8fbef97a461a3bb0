#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Tensors

/// Samples `count` tokens from a GPT after `prompt` and returns the new tokens only (not the prompt).
///
/// Each step runs the full forward over the running sequence cropped to its last `context` tokens and reads the
/// logits of the last position (no key/value cache: O(T²) per token, fine for the short samples printed during
/// training). Then:
/// - `temperature` 0: greedy arg-max (the lowest token id among ties);
/// - otherwise logits / temperature, restricted to the `topK` largest (ties broken by lower token id; `topK` ≤ 0
///   or ≥ V means no filter), softmax, and one draw from a SplitMix64 stream keyed by `seed`.
/// `topK` = 1 therefore equals greedy at any temperature. Deterministic in (model, params, prompt, seed).
/// Precondition: `prompt` is non-empty and every token is in 0..<V.
public func generate(model: GPT, params: UnsafePointer<Float>, prompt: [Int32], count: Int, temperature: Float,
                     topK: Int, seed: UInt64) -> [Int32] {
    precondition(!prompt.isEmpty, "generate needs at least one prompt token")
    precondition(temperature >= 0, "temperature must be ≥ 0, got \(temperature)")
    let V = model.config.vocabulary, context = model.config.context
    var sequence = prompt
    var generated: [Int32] = []
    generated.reserveCapacity(count)
    var rng = SplitMix64(seed: seed, stream: 0x5A4D_9E7E)
    var order = [Int](repeating: 0, count: V)
    var weights = [Double](repeating: 0, count: V)
    for _ in 0..<count {
        let length = min(sequence.count, context)
        let logits = sequence.withUnsafeBufferPointer { s in
            model.logits(params: params, tokens: s.baseAddress! + (s.count - length), rows: 1, time: length)
        }
        let last = logits.baseAddress! + (length - 1) * V
        var next = 0
        if temperature == 0 {
            for v in 1..<V where last[v] > last[next] { next = v }
        } else {
            let k = topK <= 0 || topK >= V ? V : topK
            for v in 0..<V { order[v] = v }
            if k < V {
                order.sort { last[$0] > last[$1] || (last[$0] == last[$1] && $0 < $1) }
            }
            var maxLogit = -Double.infinity
            for i in 0..<k { maxLogit = max(maxLogit, Double(last[order[i]])) }
            var sum = 0.0
            for i in 0..<k {
                weights[i] = exp((Double(last[order[i]]) - maxLogit) / Double(temperature))
                sum += weights[i]
            }
            // Inverse CDF with 53 random bits; the last candidate absorbs rounding.
            let u = Double(rng.next() >> 11) * (1.0 / 9_007_199_254_740_992.0) * sum
            var cumulative = 0.0
            next = order[k - 1]
            for i in 0..<k {
                cumulative += weights[i]
                if u < cumulative { next = order[i]; break }
            }
        }
        sequence.append(Int32(next))
        generated.append(Int32(next))
    }
    return generated
}
