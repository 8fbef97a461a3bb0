// Over 400 lines on purpose: one optimizer (statistics, inverse roots by eigendecomposition, grafting, and
// per-tensor checkpoint state) described in one place, as every optimizer is.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Tensors

// Dimension letters used in this file:
//   M  rows of a matrix parameter     N  columns     (a ≥3-D tensor [d0, d1, ...] is viewed as [d0, d1·d2·...])
//   D  length of a 1-D parameter

/// Shampoo (Gupta, Koren & Singer 2018, "Shampoo: Preconditioned Stochastic Tensor Optimization"), Algorithm 1,
/// for matrices:
///   L ← L + GGᵀ (M×M),   R ← R + GᵀG (N×N)
///   every k steps (k = `preconditionFrequency`, on steps 1, k+1, 2k+1, …):
///       L̃ = (L + δI)^(−1/4),   R̃ = (R + δI)^(−1/4)          (δ = `damping`)
///   D = L̃·G·R̃
///   optional grafting: D ← D·‖D_graft‖_F/‖D‖_F per tensor (D unchanged if ‖D‖ = 0), where
///       adam: D_graft = m̂/(√v̂ + ε) with m, v Adam's moments of g (β₁, β₂, ε from Hyper, bias-corrected)
///       sgd:  D_graft = g
///   θ ← θ(1 − γλ) − γ·D                                          (decoupled weight decay, as AdamW)
///
/// Damping: the paper starts from L₀ = δI, R₀ = δI. We accumulate L and R from zero in float32 and add δI in double
/// when taking the roots — the same matrices mathematically, but δ is not lost to rounding next to large float32
/// entries. Roots come from a symmetric eigendecomposition in double (Householder tridiagonalisation + implicit QL;
/// eigenvalues clamped at 0 before adding δ).
///
/// 1-D tensors (biases, norm gains) are handled diagonally, i.e. Adagrad-like: s ← s + g², D = g/√(s + δ) (the
/// diagonal analogue of L^(−1/4)·G·R^(−1/4) with L = R = diag(s)), recomputed every step; grafting applies to them
/// too. Every segment must cover a whole tensor.
///
/// State (`stateNames`) is per tensor, not per element: "left_stats"/"left_inv_root" hold the M×M matrices of every
/// matrix segment back to back (in segment order), "right_stats"/"right_inv_root" the N×N ones, "diag_stats" the
/// D-vectors of 1-D segments; "exp_avg"/"exp_avg_sq" (adam grafting only) are per element. The segments are fixed
/// at `init` (they size the state) and every `update` must pass the same segments.
///
/// Cost: each root is a scalar double O(n³) eigendecomposition (not BLAS): the first step of a 1024×1024 tensor
/// (two roots) took 2.2 s in a release build; raise `preconditionFrequency` for large layers.
///
/// Precision: with stale roots (k > 1) and small δ, float32 statistics differ from exact ones where exact arithmetic
/// has zero eigenvalues (rounding noise ≈ 1e-7·‖L‖ instead of 0), which moves (λ + δ)^(−1/4) by ≈ noise/(4δ); keep
/// δ well above 1e-7·‖L‖ when k > 1 (see docs/optimizers-matrix.md for measurements).
public final class Shampoo: OptimizerBase, Optimizer {
    public static let info = OptimizerInfo(
        names: ["shampoo"], sharding: .matrix, bandwidthBound: false, reference: "Gupta, Koren & Singer 2018",
        keys: [
            HyperKey("precondition_frequency", .integer(1...1_000_000), default: 1, "Shampoo: recompute the inverse 4th roots every k steps."),
            // δ > 0: the statistics start as zero matrices and stay singular for rank-deficient gradients, and a zero
            // eigenvalue has no inverse root, so δ = 0 turns the first update into ∞ (NaN parameters).
            HyperKey("damping", .number(1e-12...1e6), default: 1e-4, "Shampoo damping δ > 0 added to the statistics (δI) before the inverse roots."),
            HyperKey("graft", .choice(Graft.allCases.map(\.rawValue)), default: "none",
                     "Shampoo grafting: scale each tensor's step to the norm of the Adam (or SGD) step."),
            .beta1(), .beta2(), .eps(1e-8),
        ],
        build: { Shampoo(count: $0.count, segments: $0.segments, hyper: Hyper($0.values)) })

    public enum Graft: String, CaseIterable, Sendable, Codable {
        case none, adam, sgd
    }

    public struct Hyper: Equatable, Sendable {
        /// k: roots are recomputed on steps 1, k+1, ….
        public let preconditionFrequency: Int
        /// δ, in double: it is added to eigenvalues computed in double.
        public let damping: Double
        /// Step-norm grafting (none | adam | sgd), and Adam grafting's β₁, β₂, ε.
        public let graft: Graft
        public let beta1, beta2, eps: Float
        public init(_ v: HyperValues) {
            (preconditionFrequency, damping, graft) = (v.int("precondition_frequency"), v.double("damping"), v.choice("graft"))
            (beta1, beta2, eps) = (v.float("beta1"), v.float("beta2"), v.float("eps"))
        }
    }
    public let hyper: Hyper

    private enum Block {
        /// Offsets into left_* (M×M) and right_* (N×N).
        case matrix(rows: Int, cols: Int, left: Int, right: Int)
        /// Offset into diag_stats.
        case diagonal(offset: Int)
    }
    private let segments: [ParamSegment]
    private let blocks: [Block]
    private let direction: FloatBuffer   // (M, N) largest matrix: D
    private let temp: FloatBuffer        // (M, N) largest matrix: L̃·G
    private let eigen: SymmetricEigen       // sized for the largest M or N

    public init(count: Int, segments: [ParamSegment], hyper: Hyper) {
        self.hyper = hyper
        self.segments = segments
        var blocks: [Block] = []
        var left = 0, right = 0, diag = 0, largest = 1, largestDim = 1
        for seg in segments {
            precondition(seg.range.count == seg.tensor.count,
                         "Shampoo needs the whole tensor '\(seg.tensor.name)' (\(seg.tensor.count) elements) in one "
                         + "optimizer, but this shard owns only \(seg.range.count); shard Shampoo by whole tensors")
            precondition(seg.range.lowerBound >= 0 && seg.range.upperBound <= count,
                         "segment \(seg.range) of '\(seg.tensor.name)' is outside the owned range 0..<\(count)")
            if seg.tensor.shape.count >= 2 {
                let rows = seg.tensor.shape[0], cols = seg.tensor.count / rows
                blocks.append(.matrix(rows: rows, cols: cols, left: left, right: right))
                left += rows * rows
                right += cols * cols
                largest = Swift.max(largest, rows * cols)
                largestDim = Swift.max(largestDim, rows, cols)
            } else {
                blocks.append(.diagonal(offset: diag))
                diag += seg.range.count
                // The diagonal path writes its direction into `direction` too.
                largest = Swift.max(largest, seg.range.count)
            }
        }
        self.blocks = blocks
        var buffers = [FloatBuffer(count: left), FloatBuffer(count: right), FloatBuffer(count: left),
                       FloatBuffer(count: right), FloatBuffer(count: diag)]
        if hyper.graft == .adam { buffers += [FloatBuffer(count: count), FloatBuffer(count: count)] }
        direction = FloatBuffer(count: largest)
        temp = FloatBuffer(count: largest)
        eigen = SymmetricEigen(capacity: largestDim)
        super.init(name: "shampoo", count: count, stateNames: ["left_stats", "right_stats", "left_inv_root", "right_inv_root", "diag_stats"]
                   + (hyper.graft == .adam ? ["exp_avg", "exp_avg_sq"] : []), state: buffers)
    }

    public func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeBufferPointer<Float>,
                       segments: [ParamSegment], context: StepContext) {
        precondition(segments.map(\.range) == self.segments.map(\.range)
                     && segments.map(\.tensor) == self.segments.map(\.tensor),
                     "Shampoo.update must receive the segments it was created with")
        stepCount += 1
        let recompute = (stepCount - 1) % hyper.preconditionFrequency == 0
        let t = Double(stepCount)
        let b1 = hyper.beta1, b2 = hyper.beta2, adamEps = hyper.eps
        let invBc1 = Float(1 / biasCorrection(beta: b1, step: stepCount))
        let invSqrtBc2 = Float(1 / biasCorrection(beta: b2, step: stepCount).squareRoot())
        let p = params.baseAddress!, g = grads.baseAddress!
        let lStats = state[0].pointer, rStats = state[1].pointer
        let lRoot = state[2].pointer, rRoot = state[3].pointer, dStats = state[4].pointer
        let damping = hyper.damping

        for (seg, block) in zip(segments, blocks) {
            let lo = seg.range.lowerBound, n = seg.range.count
            let gs = g + lo, ps = p + lo
            let d = direction.pointer

            // Phase 1: statistics and the preconditioned direction D.
            switch block {
            case let .matrix(rows, cols, left, right):
                let lS = lStats + left, rS = rStats + right, lR = lRoot + left, rR = rRoot + right
                // L += G·Gᵀ (M×M), R += Gᵀ·G (N×N)
                gemm(.fp32, transposeA: false, transposeB: true, m: rows, n: rows, k: cols, alpha: 1, gs, lda: cols,
                      gs, ldb: cols, beta: 1, lS, ldc: rows)
                gemm(.fp32, transposeA: true, transposeB: false, m: cols, n: cols, k: rows, alpha: 1, gs, lda: cols,
                      gs, ldb: cols, beta: 1, rS, ldc: cols)
                if recompute {
                    eigen.inverseRoot(lS, into: lR, n: rows, power: 4, damping: damping)
                    eigen.inverseRoot(rS, into: rR, n: cols, power: 4, damping: damping)
                }
                // D = L̃·G·R̃
                gemm(.fp32, transposeA: false, transposeB: false, m: rows, n: cols, k: rows, alpha: 1, lR, lda: rows,
                      gs, ldb: cols, beta: 0, temp.pointer, ldc: cols)
                gemm(.fp32, transposeA: false, transposeB: false, m: rows, n: cols, k: cols, alpha: 1, temp.pointer,
                      lda: cols, rR, ldb: cols, beta: 0, d, ldc: cols)
            case let .diagonal(offset):
                let s = dStats + offset
                for i in 0..<n {
                    let gi = gs[i]
                    let si = s[i] + gi * gi
                    s[i] = si
                    d[i] = Float(Double(gi) / (Double(si) + damping).squareRoot())
                }
            }

            // Phase 2: grafting (per tensor).
            var graftScale: Float = 1
            if hyper.graft != .none {
                var sumD = 0.0, sumGraft = 0.0
                for i in 0..<n { sumD += Double(d[i]) * Double(d[i]) }
                if hyper.graft == .adam {
                    let m = state[5].pointer + lo, v = state[6].pointer + lo
                    for i in 0..<n {
                        let gi = gs[i]
                        let mi = b1 * m[i] + (1 - b1) * gi
                        let vi = b2 * v[i] + (1 - b2) * gi * gi
                        m[i] = mi
                        v[i] = vi
                        let ai = (mi * invBc1) / (vi.squareRoot() * invSqrtBc2 + adamEps)
                        sumGraft += Double(ai) * Double(ai)
                    }
                } else {
                    for i in 0..<n { sumGraft += Double(gs[i]) * Double(gs[i]) }
                }
                graftScale = sumD > 0 ? Float((sumGraft / sumD).squareRoot()) : 1
            }

            // Phase 3: θ ← θ(1 − γλ) − γ·scale·D.
            let lr = context.lr * seg.lrScale
            let decay = decoupledDecayFactor(lr: lr, weightDecay: seg.weightDecay), step = lr * graftScale
            for i in 0..<n { ps[i] = ps[i] * decay - step * d[i] }
        }
    }
}

/// Symmetric eigendecomposition in double precision for Shampoo's inverse roots: Householder reduction to
/// tridiagonal form and the implicit QL algorithm (`tred2`/`tql2` of EISPACK, in the form of JAMA's
/// EigenvalueDecomposition), about 9n³ flops. Workspace is allocated once for the largest dimension.
final class SymmetricEigen {
    let capacity: Int
    /// (n, n) the matrix, then the transformation, stored TRANSPOSED: element (i, j) of JAMA's V lives at
    /// v[j·n + i], so every O(n³) inner loop (columns of V) runs over contiguous memory; at the end row k of v is
    /// eigenvector k.
    private let v: UnsafeMutablePointer<Double>
    /// (n, n) accumulator for V·diag(w)·Vᵀ.
    private let acc: UnsafeMutablePointer<Double>
    private let d: UnsafeMutablePointer<Double>   // (n) diagonal, then eigenvalues
    private let e: UnsafeMutablePointer<Double>   // (n) off-diagonal
    private let w: UnsafeMutablePointer<Double>   // (n) eigenvalue powers

    init(capacity: Int) {
        self.capacity = capacity
        v = .allocate(capacity: capacity * capacity)
        acc = .allocate(capacity: capacity * capacity)
        d = .allocate(capacity: capacity)
        e = .allocate(capacity: capacity)
        w = .allocate(capacity: capacity)
    }

    deinit {
        v.deallocate()
        acc.deallocate()
        d.deallocate()
        e.deallocate()
        w.deallocate()
    }

    /// out = (S + δI)^(−1/p) for the symmetric n×n float32 matrix S (eigenvalues of S clamped at 0 first).
    func inverseRoot(_ s: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, n: Int, power: Double,
                     damping: Double) {
        precondition(n <= capacity, "matrix \(n)×\(n) exceeds the eigen workspace \(capacity)")
        // Symmetrise while converting: float32 GEMM accumulation can leave S slightly asymmetric.
        for i in 0..<n {
            for j in 0..<n { v[i * n + j] = 0.5 * (Double(s[i * n + j]) + Double(s[j * n + i])) }
        }
        tridiagonalize(n: n)
        diagonalize(n: n)
        for k in 0..<n { w[k] = pow(Swift.max(d[k], 0) + damping, -1 / power) }
        // out = Σ_k w_k·e_k·e_kᵀ (e_k = row k of v), accumulated row by row over contiguous memory (upper triangle).
        for i in 0..<(n * n) { acc[i] = 0 }
        for k in 0..<n {
            let ek = v + k * n, wk = w[k]
            for i in 0..<n {
                let scale = wk * ek[i], row = acc + i * n
                for j in i..<n { row[j] += scale * ek[j] }
            }
        }
        for i in 0..<n {
            for j in i..<n {
                out[i * n + j] = Float(acc[i * n + j])
                out[j * n + i] = Float(acc[i * n + j])
            }
        }
    }

    /// Householder reduction of the symmetric matrix in `v` to tridiagonal (d, e); `v` becomes the orthogonal
    /// transformation (transposed storage, see `v`).
    private func tridiagonalize(n: Int) {
        @inline(__always) func V(_ i: Int, _ j: Int) -> Double { v[j * n + i] }
        @inline(__always) func setV(_ i: Int, _ j: Int, _ x: Double) { v[j * n + i] = x }
        for j in 0..<n { d[j] = V(n - 1, j) }
        var i = n - 1
        while i > 0 {
            var scale = 0.0, h = 0.0
            for k in 0..<i { scale += Swift.abs(d[k]) }
            if scale == 0 {
                e[i] = d[i - 1]
                for j in 0..<i {
                    d[j] = V(i - 1, j)
                    setV(i, j, 0)
                    setV(j, i, 0)
                }
            } else {
                for k in 0..<i {
                    d[k] /= scale
                    h += d[k] * d[k]
                }
                var f = d[i - 1]
                var g = h.squareRoot()
                if f > 0 { g = -g }
                e[i] = scale * g
                h -= f * g
                d[i - 1] = f - g
                for j in 0..<i { e[j] = 0 }
                for j in 0..<i {
                    f = d[j]
                    setV(j, i, f)
                    g = e[j] + V(j, j) * f
                    var k = j + 1
                    while k <= i - 1 {
                        g += V(k, j) * d[k]
                        e[k] += V(k, j) * f
                        k += 1
                    }
                    e[j] = g
                }
                f = 0
                for j in 0..<i {
                    e[j] /= h
                    f += e[j] * d[j]
                }
                let hh = f / (h + h)
                for j in 0..<i { e[j] -= hh * d[j] }
                for j in 0..<i {
                    f = d[j]
                    g = e[j]
                    var k = j
                    while k <= i - 1 {
                        v[j * n + k] -= f * e[k] + g * d[k]
                        k += 1
                    }
                    d[j] = V(i - 1, j)
                    setV(i, j, 0)
                }
            }
            d[i] = h
            i -= 1
        }
        // Accumulate transformations.
        for i in 0..<(n - 1) {
            setV(n - 1, i, V(i, i))
            setV(i, i, 1)
            let h = d[i + 1]
            if h != 0 {
                for k in 0...i { d[k] = V(k, i + 1) / h }
                for j in 0...i {
                    var g = 0.0
                    for k in 0...i { g += V(k, i + 1) * V(k, j) }
                    for k in 0...i { v[j * n + k] -= g * d[k] }
                }
            }
            for k in 0...i { setV(k, i + 1, 0) }
        }
        for j in 0..<n {
            d[j] = V(n - 1, j)
            setV(n - 1, j, 0)
        }
        setV(n - 1, n - 1, 1)
        e[0] = 0
    }

    /// Implicit QL on the tridiagonal (d, e), accumulating rotations into the rows of `v`.
    private func diagonalize(n: Int) {
        for i in 1..<Swift.max(n, 1) { e[i - 1] = e[i] }
        e[n - 1] = 0
        var f = 0.0, tst1 = 0.0
        let eps = Double.ulpOfOne
        for l in 0..<n {
            tst1 = Swift.max(tst1, Swift.abs(d[l]) + Swift.abs(e[l]))
            var m = l
            while m < n {
                if Swift.abs(e[m]) <= eps * tst1 { break }
                m += 1
            }
            if m > l {
                var iterations = 0
                repeat {
                    iterations += 1
                    precondition(iterations < 200, "Shampoo eigen solver did not converge")
                    var g = d[l]
                    var p = (d[l + 1] - g) / (2 * e[l])
                    var r = (p * p + 1).squareRoot()
                    if p < 0 { r = -r }
                    d[l] = e[l] / (p + r)
                    d[l + 1] = e[l] * (p + r)
                    let dl1 = d[l + 1]
                    var h = g - d[l]
                    var i2 = l + 2
                    while i2 < n { d[i2] -= h; i2 += 1 }
                    f += h
                    p = d[m]
                    var c = 1.0, c2 = 1.0, c3 = 1.0
                    let el1 = e[l + 1]
                    var s = 0.0, s2 = 0.0
                    var i = m - 1
                    while i >= l {
                        c3 = c2
                        c2 = c
                        s2 = s
                        g = c * e[i]
                        h = c * p
                        r = (p * p + e[i] * e[i]).squareRoot()
                        e[i + 1] = s * r
                        s = e[i] / r
                        c = p / r
                        p = c * d[i] - s * g
                        d[i + 1] = h + s * (c * g + s * d[i])
                        // Rows i and i+1 of v are columns i and i+1 of V.
                        let ri = v + i * n, ri1 = v + (i + 1) * n
                        for k in 0..<n {
                            let hk = ri1[k]
                            ri1[k] = s * ri[k] + c * hk
                            ri[k] = c * ri[k] - s * hk
                        }
                        i -= 1
                    }
                    p = -s * s2 * c3 * el1 * e[l] / dl1
                    e[l] = s * p
                    d[l] = c * p
                } while Swift.abs(e[l]) > eps * tst1
            }
            d[l] += f
            e[l] = 0
        }
    }
}

extension Shampoo: TensorKeyedStateOptimizer {
    /// Per tensor: its L, R, L̃, R̃ (matrices) or its diagonal statistics (vectors), and with Adam grafting the
    /// element-aligned moments — each as one record with offset 0 (whole tensors are always owned by one rank).
    public func exportState(segments: [ParamSegment]) -> [TensorState] {
        var out: [TensorState] = []
        for (seg, block) in zip(segments, blocks) {
            for (name, buffer, range) in stateViews(seg, block) {
                out.append(TensorState(stateName: name, tensorName: seg.tensor.name, offset: 0, values: Array(buffer.slice(range))))
            }
        }
        return out
    }

    public func importState(segments: [ParamSegment], from source: StateSource) throws {
        for (seg, block) in zip(segments, blocks) {
            for (name, buffer, range) in stateViews(seg, block) {
                let values = try source.values(state: name, tensor: seg.tensor.name, offset: 0, count: range.count)
                let dst = buffer.slice(range)
                for i in 0..<values.count { dst[i] = values[i] }
            }
        }
    }

    /// (state name, buffer, range in it) of every piece of state that belongs to one tensor.
    private func stateViews(_ seg: ParamSegment, _ block: Block) -> [(String, FloatBuffer, Range<Int>)] {
        var views: [(String, FloatBuffer, Range<Int>)] = []
        switch block {
        case let .matrix(rows, cols, left, right):
            views += [("left_stats", state[0], left..<(left + rows * rows)), ("right_stats", state[1], right..<(right + cols * cols)),
                      ("left_inv_root", state[2], left..<(left + rows * rows)), ("right_inv_root", state[3], right..<(right + cols * cols))]
        case let .diagonal(offset):
            views.append(("diag_stats", state[4], offset..<(offset + seg.range.count)))
        }
        if hyper.graft == .adam {
            views += [("exp_avg", state[5], seg.range), ("exp_avg_sq", state[6], seg.range)]
        }
        return views
    }
}
