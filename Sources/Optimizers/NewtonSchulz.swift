import Tensors

// Dimension letters used in this file:
//   S  the short side of the matrix, min(rows, cols)      L  the long side, max(rows, cols)
// Layout is row-major. A wide matrix (rows ≤ cols) is worked on as X[S, L]; a tall one as X[L, S]. The tall case
// runs the wide algorithm on Xᵀ without ever transposing memory: Xᵀ ← B·Xᵀ is the same as X ← X·Bᵀ = X·B
// (B is a polynomial in the symmetric Gram matrix, so it is symmetric).

/// Coefficient schedules for the quintic Newton–Schulz iteration X ← aX + (bA + cA²)X, A = XXᵀ.
public enum NewtonSchulzCoefficients: String, CaseIterable, Sendable, Codable {
    /// Keller Jordan's Muon quintic, (a, b, c) = (3.4445, −4.7750, 2.0315) every step. It does not converge to
    /// UVᵀ: singular values end in roughly [0.68, 1.13], by design (a steep slope at 0 matters more than accuracy).
    case quintic
    /// Polar Express (Amsel, Persson, Musco & Gower 2025, "The Polar Express: Optimal Matrix Sign Methods and Their
    /// Application to the Muon Algorithm"): a different minimax-optimal triple per step. The input is divided by
    /// ‖G‖_F·1.01 and every triple except the final (1.875, −1.25, 0.375) is scaled to (a/1.01, b/1.01³, c/1.01⁵)
    /// as a safety margin, exactly as in the paper's reference code; steps past the 8th repeat the final triple.
    case polarExpress = "polar_express"

    /// Keller Jordan's quintic triple.
    public static let kellerQuintic = (a: 3.4445, b: -4.7750, c: 2.0315)

    /// Polar Express triples before the 1.01 safety scaling (the last one is never scaled).
    public static let polarExpressRaw: [(a: Double, b: Double, c: Double)] = [
        (8.28721201814563, -23.595886519098837, 17.300387312530933),
        (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
        (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
        (3.3184196573706015, -2.488488024314874, 0.51004894012372),
        (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
        (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
        (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
        (1.875, -1.25, 0.375),
    ]

    /// The (a, b, c) triple used at `step` (0-based), in double precision.
    public func triple(step: Int) -> (a: Double, b: Double, c: Double) {
        switch self {
        case .quintic:
            return Self.kellerQuintic
        case .polarExpress:
            let raw = Self.polarExpressRaw
            if step >= raw.count - 1 { return raw[raw.count - 1] }
            let t = raw[step], s = 1.01
            return (t.a / s, t.b / (s * s * s), t.c / (s * s * s * s * s))
        }
    }

    /// Factor on ‖G‖_F in the initial normalisation X = G / (factor·‖G‖_F + eps).
    public var normFactor: Double { self == .polarExpress ? 1.01 : 1 }
}

/// Newton–Schulz orthogonalisation of one rows×cols float32 matrix through BLAS: an approximation of UVᵀ for
/// G = UΣVᵀ, as used by Muon (Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks").
///
///   X ← G / (f·‖G‖_F + eps)            (f = 1, or 1.01 for Polar Express)
///   repeat k times:  A = XXᵀ;  B = aI + bA + cA²;  X ← B·X
///
/// which is the paper's X ← aX + (bA + cA²)X with the aX term folded into B's diagonal (S operations instead of a
/// pass over X). Work is done in the wide orientation (the Gram matrix is S×S, S = min(rows, cols)) without copying
/// a transpose. Per step there are exactly three sgemm calls: A = XXᵀ, B = c·A·A + b·B (B pre-filled with A) and
/// X' = B·X; the last one writes straight into the caller's output with its alpha/beta, so an optimizer can fuse
/// θ ← β·θ + α·NS(G) into it. Besides the GEMMs the only passes are one norm pass and one scaling pass over G,
/// one S×S copy and S diagonal additions per step.
///
/// `precision: .bf16` runs the three GEMMs on bf16-rounded operands with fp32 accumulation, as Keller Jordan's
/// reference runs NS in bfloat16 (there the iterate itself is stored in bf16; here X, A and B stay fp32 between
/// products and are rounded where a product reads them, so the aI + bA + cA² additions and the fused update keep
/// fp32). The orthogonality it reaches is bounded in MatrixOptimizerPropertyTests against the fp32 path.
///
/// All workspace is allocated in `init` for this shape and reused by every call; `orthogonalize` allocates nothing.
/// An all-zero input returns all zeros (G/eps = 0), never NaN. Not thread-safe (one instance per thread).
public final class NewtonSchulz {
    public let rows: Int
    public let cols: Int
    public let steps: Int
    public let coefficients: NewtonSchulzCoefficients
    public let eps: Float
    /// Precision of the GEMMs (`optimizer.ns_precision`).
    public let precision: GEMMPrecision

    /// Short and long side; `tall` when rows > cols.
    public let short: Int
    public let long: Int
    public let tall: Bool

    private let triples: [(a: Float, b: Float, c: Float)]
    private var x: FloatBuffer       // (S, L) wide or (L, S) tall: current iterate
    private var y: FloatBuffer       // same shape: next iterate (ping-pong with x)
    private let gram: FloatBuffer    // (S, S)  A = XXᵀ
    private let poly: FloatBuffer    // (S, S)  B = aI + bA + cA²

    /// Floating-point operations of one `orthogonalize` call counted as GEMM flops (2·m·n·k per product):
    /// steps × (2·S²·L  [A = XXᵀ]  +  2·S³  [A·A]  +  2·S²·L  [B·X])  =  steps × (4·S²·L + 2·S³).
    /// The O(S·L) norm/scale passes and O(S²) copies are not counted.
    public var flopsPerCall: Double {
        let s = Double(short), l = Double(long)
        return Double(steps) * (4 * s * s * l + 2 * s * s * s)
    }

    public init(rows: Int, cols: Int, steps: Int = 5, coefficients: NewtonSchulzCoefficients = .quintic,
                eps: Float = 1e-7, precision: GEMMPrecision = .fp32) {
        precondition(rows > 0 && cols > 0, "Newton–Schulz needs a non-empty matrix, got \(rows)×\(cols)")
        precondition(steps >= 0, "Newton–Schulz steps must be ≥ 0, got \(steps)")
        self.rows = rows
        self.cols = cols
        self.steps = steps
        self.coefficients = coefficients
        self.eps = eps
        self.precision = precision
        short = Swift.min(rows, cols)
        long = Swift.max(rows, cols)
        tall = rows > cols
        triples = (0..<steps).map {
            let t = coefficients.triple(step: $0)
            return (Float(t.a), Float(t.b), Float(t.c))
        }
        x = FloatBuffer(count: rows * cols)
        y = FloatBuffer(count: rows * cols)
        gram = FloatBuffer(count: short * short)
        poly = FloatBuffer(count: short * short)
    }

    /// out ← alpha·NS(g) + beta·out, both rows×cols row-major. `out` may be `g` itself (g is read once, into the
    /// workspace, before `out` is written). With beta = 0, `out` is not read.
    public func orthogonalize(_ g: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                              alpha: Float = 1, beta: Float = 0) {
        let n = rows * cols
        // Phase 1: X = G / (f·‖G‖_F + eps).
        let norm = sumOfSquares(UnsafeBufferPointer(start: g, count: n)).squareRoot()
        let scale = Float(1 / (coefficients.normFactor * norm + Double(eps)))
        let xp0 = x.pointer
        for j in 0..<n { xp0[j] = g[j] * scale }

        if steps == 0 {
            for j in 0..<n { out[j] = beta == 0 ? alpha * xp0[j] : alpha * xp0[j] + beta * out[j] }
            return
        }

        // Phase 2: the iteration.
        let s = short, l = long
        let a2 = gram.pointer, b2 = poly.pointer
        for step in 0..<steps {
            let (a, b, c) = triples[step]
            let xp = x.pointer
            // A = XXᵀ (wide) or XᵀX (tall): (S, S)
            if tall {
                gemm(precision, transposeA: true, transposeB: false, m: s, n: s, k: l, alpha: 1, xp, lda: s, xp, ldb: s,
                      beta: 0, a2, ldc: s)
            } else {
                gemm(precision, transposeA: false, transposeB: true, m: s, n: s, k: l, alpha: 1, xp, lda: l, xp, ldb: l,
                      beta: 0, a2, ldc: s)
            }
            // B = c·A·A + b·A, then + a·I
            b2.update(from: a2, count: s * s)
            gemm(precision, transposeA: false, transposeB: false, m: s, n: s, k: s, alpha: c, a2, lda: s, a2, ldb: s,
                  beta: b, b2, ldc: s)
            for d in 0..<s { b2[d * s + d] += a }
            // X' = B·X (wide) or X·B (tall); the last step writes alpha·X' + beta·out into out.
            let last = step == steps - 1
            let dst = last ? out : y.pointer
            let al: Float = last ? alpha : 1, be: Float = last ? beta : 0
            if tall {
                gemm(precision, transposeA: false, transposeB: false, m: l, n: s, k: s, alpha: al, xp, lda: s, b2, ldb: s,
                      beta: be, dst, ldc: s)
            } else {
                gemm(precision, transposeA: false, transposeB: false, m: s, n: l, k: s, alpha: al, b2, lda: s, xp, ldb: l,
                      beta: be, dst, ldc: l)
            }
            if !last { swap(&x, &y) }
        }
    }
}
