// Over 400 lines on purpose: one model, its parameter table, forward and backward read top to bottom as one
// sequence of phases (embedding → blocks → head), each backward phase beside its forward; splitting it would
// separate each phase from its gradient.

import Tensors

// Dimension letters used in this file:
//   B  sequences in the batch    T  positions per sequence (time)    N = B·T positions    C  channels (width)
//   NH heads    HS = C / NH head size    V  vocabulary    L  layers    Tmax  the configured context

/// The shape of a GPT. Defaults are the byte-level benchmark model (4 layers, width 256, 4 heads, context 128).
public struct GPTConfig: Equatable, Sendable, Codable {
    /// V: token ids are 0..<vocabulary (256 for bytes).
    public var vocabulary: Int
    /// Tmax: the sequence length of a training batch and the longest context the model attends over.
    public var context: Int
    /// L: transformer blocks.
    public var layers: Int
    /// NH: attention heads; must divide `width`.
    public var heads: Int
    /// C: residual stream width.
    public var width: Int
    /// True: the output head is `wte` (GPT-2's weight tying), no separate tensor. False: `lm_head.weight` [V, C].
    public var tiedHead: Bool

    public init(vocabulary: Int = 256, context: Int = 128, layers: Int = 4, heads: Int = 4, width: Int = 256,
                tiedHead: Bool = true) {
        self.vocabulary = vocabulary
        self.context = context
        self.layers = layers
        self.heads = heads
        self.width = width
        self.tiedHead = tiedHead
    }

    /// HS.
    public var headSize: Int { width / heads }

    /// Why this configuration cannot be built, or nil when it can (for validating a config before training starts).
    public var invalidReason: String? {
        if vocabulary < 1 { return "GPT vocabulary must be ≥ 1, got \(vocabulary)" }
        if context < 1 { return "GPT context must be ≥ 1, got \(context)" }
        if layers < 1 { return "GPT layers must be ≥ 1, got \(layers)" }
        if heads < 1 || width < 1 { return "GPT heads and width must be ≥ 1, got heads \(heads), width \(width)" }
        if width % heads != 0 { return "GPT width \(width) must be divisible by heads \(heads)" }
        return nil
    }
}

/// A decoder-only, pre-norm transformer language model (GPT-2: Radford et al. 2019; layout and names as nanoGPT,
/// kernels as llm.c's train_gpt2.c):
///   x = wte[token] + wpe[pos];  per block: x += c_proj(attn(ln_1(x)));  x += mlp.c_proj(gelu(c_fc(ln_2(x))))
///   logits = ln_f(x) · Wheadᵀ  (Whead = wte when tied),  loss = softmax cross-entropy at every position.
///
/// A training batch is `ModelBatch(tokens: [B, Tmax], targets: [B, Tmax], rows: B)`: every row is a full-context
/// sequence, and `BatchResult` sums over all B·Tmax positions (`predictionsPerRow` = Tmax). No dropout. GELU is
/// the tanh approximation (GPT-2), computed by the libm-free `geluFastForward`/`geluFastBackward`.
///
/// Workspace (activations [L, N, …] as llm.c, and gradient scratch) is one allocation each, grown to the largest
/// batch seen and reused; forward and backward allocate nothing. A model instance is not thread-safe.
///
/// Gradients go to a `GradientSink` in the blocks it asks for. Weight blocks are computed block by block (one
/// GEMM each); vectors (biases, LayerNorm) and the embeddings are computed whole into scratch and then added into
/// each block. With a tied head the wte gradient has two contributions (the head, first in backward, and the
/// embedding, last); no wte block is reported finished before both are in.
public final class GPT: Model {
    public let config: GPTConfig
    public private(set) var table: ParameterTable
    public var predictionsPerRow: Int { config.context }
    /// GEMM precision of every matrix product (the linear layers, the head and attention's Q·Kᵀ and P·V, forward
    /// and backward); LayerNorm, GELU, softmax, cross-entropy, embeddings and residual adds stay fp32 (autocast's rule).
    public var precision: GEMMPrecision = .fp32

    /// Table indices of one block's tensors.
    private struct BlockTensors {
        var ln1Weight = 0, ln1Bias = 0, attnWeight = 0, attnBias = 0, projWeight = 0, projBias = 0
        var ln2Weight = 0, ln2Bias = 0, fcWeight = 0, fcBias = 0, fcProjWeight = 0, fcProjBias = 0
    }
    private var blocks: [BlockTensors] = []
    private var wteIndex = 0, wpeIndex = 0, lnfWeight = 0, lnfBias = 0
    private var headIndex: Int?  // nil when tied
    private var weightOffsets: (offset: [Int?], total: Int) = ([], 0)

    public init(_ config: GPTConfig) {
        if let reason = config.invalidReason { preconditionFailure(reason) }
        self.config = config
        let V = config.vocabulary, T = config.context, C = config.width
        var t = ParameterTable()
        t.add("wte.weight", shape: [V, C], role: .embedding)
        t.add("wpe.weight", shape: [T, C], role: .embedding)
        for l in 0..<config.layers {
            t.add("h.\(l).ln_1.weight", shape: [C], role: .norm)
            t.add("h.\(l).ln_1.bias", shape: [C], role: .norm)
            t.add("h.\(l).attn.c_attn.weight", shape: [3 * C, C], role: .matrix)
            t.add("h.\(l).attn.c_attn.bias", shape: [3 * C], role: .bias)
            t.add("h.\(l).attn.c_proj.weight", shape: [C, C], role: .matrix)
            t.add("h.\(l).attn.c_proj.bias", shape: [C], role: .bias)
            t.add("h.\(l).ln_2.weight", shape: [C], role: .norm)
            t.add("h.\(l).ln_2.bias", shape: [C], role: .norm)
            t.add("h.\(l).mlp.c_fc.weight", shape: [4 * C, C], role: .matrix)
            t.add("h.\(l).mlp.c_fc.bias", shape: [4 * C], role: .bias)
            t.add("h.\(l).mlp.c_proj.weight", shape: [C, 4 * C], role: .matrix)
            t.add("h.\(l).mlp.c_proj.bias", shape: [C], role: .bias)
        }
        t.add("ln_f.weight", shape: [C], role: .norm)
        t.add("ln_f.bias", shape: [C], role: .norm)
        if !config.tiedHead { t.add("lm_head.weight", shape: [V, C], role: .head) }
        table = t
        adopt(layout: t)
    }

    public func adopt(layout: ParameterTable) {
        precondition(layout.sameTensors(as: table), "layout does not hold this GPT's tensors")
        table = layout
        let index = Dictionary(uniqueKeysWithValues: layout.entries.enumerated().map { ($1.name, $0) })
        wteIndex = index["wte.weight"]!
        wpeIndex = index["wpe.weight"]!
        lnfWeight = index["ln_f.weight"]!
        lnfBias = index["ln_f.bias"]!
        headIndex = config.tiedHead ? nil : index["lm_head.weight"]!
        weightOffsets = GPT.weightOffsets(layout, tiedWte: config.tiedHead ? wteIndex : nil)
        workspace = nil  // its bf16 weight copies follow the layout
        blocks = (0..<config.layers).map { l in
            func i(_ suffix: String) -> Int { index["h.\(l).\(suffix)"]! }
            return BlockTensors(ln1Weight: i("ln_1.weight"), ln1Bias: i("ln_1.bias"),
                                attnWeight: i("attn.c_attn.weight"), attnBias: i("attn.c_attn.bias"),
                                projWeight: i("attn.c_proj.weight"), projBias: i("attn.c_proj.bias"),
                                ln2Weight: i("ln_2.weight"), ln2Bias: i("ln_2.bias"),
                                fcWeight: i("mlp.c_fc.weight"), fcBias: i("mlp.c_fc.bias"),
                                fcProjWeight: i("mlp.c_proj.weight"), fcProjBias: i("mlp.c_proj.bias"))
        }
    }

    /// GPT-2 / nanoGPT initialisation: every matrix and embedding ~ N(0, 0.02²), the residual projections
    /// (`attn.c_proj.weight`, `mlp.c_proj.weight`) ~ N(0, (0.02/√(2L))²), biases 0, LayerNorm weight 1 and bias 0.
    /// Each tensor draws from its own SplitMix64 stream keyed by its name (FNV-1a), in row-major order, so the
    /// values do not depend on the layout.
    public func initializeParameters(_ params: UnsafeMutableBufferPointer<Float>, seed: UInt64) {
        let residualStd = 0.02 / (2 * Double(config.layers)).squareRoot()
        for e in table.entries {
            let target = params.baseAddress! + e.offset
            switch e.role {
            case .bias:
                target.update(repeating: 0, count: e.count)
            case .norm:
                target.update(repeating: e.name.hasSuffix(".weight") ? 1 : 0, count: e.count)
            case .matrix, .embedding, .head:
                let std = e.name.hasSuffix("c_proj.weight") ? residualStd : 0.02
                var rng = SplitMix64(seed: seed, stream: GPT.stream(e.name))
                for i in 0..<e.count { target[i] = Float(rng.normal() * std) }
            }
        }
    }

    /// FNV-1a of the tensor name: the random stream of its initial values.
    static func stream(_ name: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return h
    }

    // MARK: Workspace

    /// Named pointers into one activation allocation and one gradient-scratch allocation, for `rows` sequences of
    /// Tmax positions (Ncap = rows·Tmax). Per-layer activations are [L, Ncap, …]: layer l's slice starts at l·stride.
    /// A call with fewer rows or positions uses the leading part of each slice.
    ///
    /// In bf16 the activations that only feed products — ln1, qkv, atty, ln2, fchGelu, lnf — are kept for backward
    /// in bf16 only (`*H`, rounded once as they are produced). The LayerNorm and GELU kernels write theirs straight
    /// in bf16 (fused rounding), so ln1, ln2, fchGelu and lnf have no fp32 buffer (size 0: never touched in bf16);
    /// qkv and atty, GEMM outputs, keep one fp32 layer, the product's output before rounding. Attention's P is
    /// kept rounded too (`attH`, beside its fp32 `att` that the softmax backward reads), for P·V and dV. Each matrix weight is rounded once per forward into `weightsH` and read again by
    /// backward, and each gradient a product reads twice (input and weight gradient) is rounded once into `dyH`.
    private struct Workspace {
        let rows: Int
        let precision: GEMMPrecision
        let activations: FloatBuffer
        let scratch: FloatBuffer
        let halves: BF16Buffer
        /// Layers held by the fp32 buffers of qkv and atty: L in fp32, 1 in bf16.
        let gemmOnlyLayers: Int
        var ln1H, qkvH, attyH, ln2H, fchGeluH, lnfH: UnsafeMutablePointer<UInt16>  // as their fp32 twins, all layers
        var dyH: UnsafeMutablePointer<UInt16>      // (Ncap, max(4C, V)) the gradient being multiplied
        var weightsH: UnsafeMutablePointer<UInt16> // every matrix weight, at `weightOffsets`
        var attH: UnsafeMutablePointer<UInt16>     // (L, B, NH, Tmax, Tmax) att rounded, for P·V and backward's dV
        // Activations (kept from forward for backward).
        var encoded: UnsafeMutablePointer<Float>   // (Ncap, C)
        var ln1: UnsafeMutablePointer<Float>       // (L, Ncap, C)
        var ln1Mean: UnsafeMutablePointer<Float>   // (L, Ncap)
        var ln1Rstd: UnsafeMutablePointer<Float>   // (L, Ncap)
        var qkv: UnsafeMutablePointer<Float>       // (L, Ncap, 3C)
        var atty: UnsafeMutablePointer<Float>      // (L, Ncap, C)
        var att: UnsafeMutablePointer<Float>       // (L, B, NH, Tmax, Tmax)
        var attProj: UnsafeMutablePointer<Float>   // (L, Ncap, C)
        var residual2: UnsafeMutablePointer<Float> // (L, Ncap, C)
        var ln2: UnsafeMutablePointer<Float>       // (L, Ncap, C)
        var ln2Mean: UnsafeMutablePointer<Float>   // (L, Ncap)
        var ln2Rstd: UnsafeMutablePointer<Float>   // (L, Ncap)
        var fch: UnsafeMutablePointer<Float>       // (L, Ncap, 4C)
        var fchGelu: UnsafeMutablePointer<Float>   // (L, Ncap, 4C)
        var fcProj: UnsafeMutablePointer<Float>    // (L, Ncap, C)
        var residual3: UnsafeMutablePointer<Float> // (L, Ncap, C)
        var lnf: UnsafeMutablePointer<Float>       // (Ncap, C)
        var lnfMean: UnsafeMutablePointer<Float>   // (Ncap)
        var lnfRstd: UnsafeMutablePointer<Float>   // (Ncap)
        var logits: UnsafeMutablePointer<Float>    // (Ncap, V)
        var probs: UnsafeMutablePointer<Float>     // (Ncap, V)
        // Gradient scratch (one layer's worth, reused going down).
        var dResidual: UnsafeMutablePointer<Float> // (Ncap, C) d(residual stream) at the current depth
        var dLn: UnsafeMutablePointer<Float>       // (Ncap, C) d(LayerNorm output)
        var dAtty: UnsafeMutablePointer<Float>     // (Ncap, C)
        var dqkv: UnsafeMutablePointer<Float>      // (Ncap, 3C)
        var dFch: UnsafeMutablePointer<Float>      // (Ncap, 4C)
        var dFchGelu: UnsafeMutablePointer<Float>  // (Ncap, 4C)
        var dLogits: UnsafeMutablePointer<Float>   // (Ncap, V)
        var dAtt: UnsafeMutablePointer<Float>      // (Tmax, Tmax) attention backward scratch
        var dWte: UnsafeMutablePointer<Float>      // (V, C) whole embedding gradient before it goes to the sink
        var dWpe: UnsafeMutablePointer<Float>      // (Tmax, C)
        var dVector: UnsafeMutablePointer<Float>   // (4C) one vector gradient (bias or LayerNorm parameter)
        var dVector2: UnsafeMutablePointer<Float>  // (4C)

        init(rows: Int, config: GPTConfig, precision: GEMMPrecision, matrixElements: Int) {
            self.rows = rows
            self.precision = precision
            let L = config.layers, C = config.width, V = config.vocabulary, T = config.context, NH = config.heads
            let N = rows * T
            // G: layers of fp32 qkv and atty; F: of fp32 ln1, ln2, fchGelu (and lnf's one), none in bf16.
            let bf = precision == .bf16, G = bf ? 1 : L, F = bf ? 0 : L
            gemmOnlyLayers = G
            let a = Workspace.layout([N * C, F * N * C, L * N, L * N, G * N * 3 * C, G * N * C, L * rows * NH * T * T,
                            L * N * C, L * N * C, F * N * C, L * N, L * N, L * N * 4 * C, F * N * 4 * C, L * N * C,
                            L * N * C, (bf ? 0 : N) * C, N, N, N * V, N * V])
            let act = FloatBuffer(count: a.total)
            activations = act
            var p = a.offsets.map { act.pointer + $0 }.makeIterator()
            encoded = p.next()!; ln1 = p.next()!; ln1Mean = p.next()!; ln1Rstd = p.next()!; qkv = p.next()!
            atty = p.next()!; att = p.next()!; attProj = p.next()!; residual2 = p.next()!; ln2 = p.next()!
            ln2Mean = p.next()!; ln2Rstd = p.next()!; fch = p.next()!; fchGelu = p.next()!; fcProj = p.next()!
            residual3 = p.next()!; lnf = p.next()!; lnfMean = p.next()!; lnfRstd = p.next()!; logits = p.next()!
            probs = p.next()!
            let s = Workspace.layout([N * C, N * C, N * C, N * 3 * C, N * 4 * C, N * 4 * C, N * V, T * T, V * C, T * C,
                            4 * C, 4 * C])
            let scr = FloatBuffer(count: s.total)
            scratch = scr
            var q = s.offsets.map { scr.pointer + $0 }.makeIterator()
            dResidual = q.next()!; dLn = q.next()!; dAtty = q.next()!; dqkv = q.next()!; dFch = q.next()!
            dFchGelu = q.next()!; dLogits = q.next()!; dAtt = q.next()!; dWte = q.next()!; dWpe = q.next()!
            dVector = q.next()!; dVector2 = q.next()!
            let h = bf ? Workspace.layout([L * N * C, L * N * 3 * C, L * N * C, L * N * C, L * N * 4 * C, N * C,
                                           N * Swift.max(4 * C, V), matrixElements, L * rows * NH * T * T])
                       : (offsets: [], total: 0)
            let hb = BF16Buffer(count: h.total)
            halves = hb
            var r = (bf ? h.offsets : Array(repeating: 0, count: 9)).map { hb.pointer + $0 }.makeIterator()
            ln1H = r.next()!; qkvH = r.next()!; attyH = r.next()!; ln2H = r.next()!; fchGeluH = r.next()!
            lnfH = r.next()!; dyH = r.next()!; weightsH = r.next()!; attH = r.next()!
        }

        /// Offsets of buffers of `sizes` floats carved back to back, each at a 16-float (64-byte) boundary.
        static func layout(_ sizes: [Int]) -> (offsets: [Int], total: Int) {
            var offsets: [Int] = [], total = 0
            for s in sizes { offsets.append(total); total += (s + 15) / 16 * 16 }
            return (offsets, total)
        }
    }

    private var workspace: Workspace?

    private func reserve(rows: Int) -> Workspace {
        if let w = workspace, w.rows >= rows, w.precision == precision { return w }
        let w = Workspace(rows: rows, config: config, precision: precision, matrixElements: weightOffsets.total)
        workspace = w
        return w
    }

    /// Bytes of workspace held (for memory accounting); 0 before the first batch.
    public var workspaceBytes: Int {
        guard let w = workspace else { return 0 }
        return w.activations.byteCount + w.scratch.byteCount + w.halves.byteCount
    }

    /// Where each matrix weight (role matrix or head; wte too when it is the tied head) sits in `weightsH`.
    private static func weightOffsets(_ table: ParameterTable, tiedWte: Int?) -> (offset: [Int?], total: Int) {
        var offset = [Int?](repeating: nil, count: table.entries.count), total = 0
        for (i, e) in table.entries.enumerated() where e.role == .matrix || e.role == .head || i == tiedWte {
            offset[i] = total
            total += (e.count + 31) / 32 * 32
        }
        return (offset, total)
    }

    /// A matrix weight as a product's operand in forward: rounded now into `weightsH` in bf16 (where backward
    /// reads it again), the fp32 tensor otherwise.
    private func roundedWeight(_ w: Workspace, _ i: Int, _ params: ParameterSource) -> GEMMOperand {
        GEMMOperand.rounding(params.tensor(i), into: weightCopy(w, i), count: table.entries[i].count, in: precision)
    }

    /// The same weight in backward: its copy rounded in this batch's forward, or the fp32 tensor.
    private func weight(_ w: Workspace, _ i: Int, _ params: ParameterSource) -> GEMMOperand {
        GEMMOperand.stored(params.tensor(i), weightCopy(w, i), in: precision)
    }

    /// Where matrix weight i's bf16 copy lives (nil in fp32, which keeps none).
    private func weightCopy(_ w: Workspace, _ i: Int) -> UnsafeMutablePointer<UInt16>? {
        w.precision == .bf16 ? w.weightsH + weightOffsets.offset[i]! : nil
    }

    /// LayerNorm of x's rows as a product's operand, written in bf16 straight into its copy (no fp32 output: the
    /// backward recomputes x̂ from x, mean and rstd), in fp32 into `out`.
    private func normalized(_ out: UnsafeMutablePointer<Float>, into copy: UnsafeMutablePointer<UInt16>,
                            _ mean: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
                            _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                            rows: Int) -> GEMMOperand {
        guard precision == .bf16 else {
            layerNormForward(out, mean, rstd, x, weight, bias, rows: rows, channels: config.width)
            return .fp32(out)
        }
        layerNormForwardBF16(copy, mean, rstd, x, weight, bias, rows: rows, channels: config.width)
        return .bf16(copy)
    }

    /// GELU of c_fc's output as c_proj's operand, written in bf16 straight into its copy (no fp32 output: the
    /// backward reads the pre-activation), in fp32 into `out`.
    private func gelu(_ out: UnsafeMutablePointer<Float>, into copy: UnsafeMutablePointer<UInt16>,
                      _ x: UnsafePointer<Float>, count: Int) -> GEMMOperand {
        guard precision == .bf16 else {
            geluFastForward(out, x, count: count)
            return .fp32(out)
        }
        geluFastForwardBF16(copy, x, count: count)
        return .bf16(copy)
    }

    /// dx = dy · GELU'(x) (overwriting dx; its fp32 values feed the bias sums) as the next products' operand: in
    /// bf16 rounded into `copy` in the same pass.
    private func geluGradient(_ dx: UnsafeMutablePointer<Float>, into copy: UnsafeMutablePointer<UInt16>,
                              _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) -> GEMMOperand {
        guard precision == .bf16 else {
            dx.update(repeating: 0, count: count)
            geluFastBackward(dx, dy, x, count: count)
            return .fp32(dx)
        }
        geluFastBackwardBF16(dx, copy, dy, x, count: count)
        return .bf16(copy)
    }

    // MARK: Forward

    /// Layers (the units ZeRO stage 3 gathers): 0 the embeddings, 1…L the blocks, L+1 the final LayerNorm (and
    /// the untied head). With a tied head layer 0 is read again by the head, so it stays acquired through forward.
    public var layers: [[String]] {
        let block = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                     "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                     "mlp.c_proj.weight", "mlp.c_proj.bias"]
        return [["wte.weight", "wpe.weight"]] + (0..<config.layers).map { l in block.map { "h.\(l).\($0)" } }
            + [["ln_f.weight", "ln_f.bias"] + (config.tiedHead ? [] : ["lm_head.weight"])]
    }
    /// Backward reads the head layer, the tied embedding (the head is wte), then the blocks last first; the
    /// embedding backward reads no parameters.
    public var layersReadInBackward: [Int] {
        [finalLayer] + (config.tiedHead ? [0] : []) + Array((1...config.layers).reversed())
    }
    private var finalLayer: Int { config.layers + 1 }

    /// Runs the network up to the logits for tokens[B, T], T ≤ Tmax. The final layer (and, tied, the embedding)
    /// stay acquired when `keepHead` (backward reads them first).
    private func runForward(_ w: Workspace, params: ParameterSource, tokens: UnsafePointer<Int32>,
                            batch B: Int, time T: Int, keepHead: Bool) {
        precondition(T >= 1 && T <= config.context, "sequence length \(T) outside 1...\(config.context)")
        let C = config.width, V = config.vocabulary, NH = config.heads
        let N = B * T, Ncap = w.rows * config.context
        func p(_ i: Int) -> UnsafePointer<Float> { params.tensor(i) }
        params.acquire(0, pass: .forward)
        embeddingForward(w.encoded, tokens, p(wteIndex), p(wpeIndex), batch: B, time: T, channels: C, vocabulary: V)
        if !config.tiedHead { params.release(0, pass: .forward) }
        var residual = UnsafePointer(w.encoded)
        for l in 0..<config.layers {
            let t = blocks[l]
            params.acquire(l + 1, pass: .forward)
            // nc: layer l's slice of the per-layer buffers; gc: of the product-only fp32 buffers (0 in bf16).
            let nc = l * Ncap * C, n = l * Ncap, gc = (w.gemmOnlyLayers == 1 ? 0 : l) * Ncap * C
            let ln1 = w.ln1 + gc, qkv = w.qkv + 3 * gc, atty = w.atty + gc, attProj = w.attProj + nc
            let residual2 = w.residual2 + nc, ln2 = w.ln2 + gc, fch = w.fch + 4 * nc, fchGelu = w.fchGelu + 4 * gc
            let fcProj = w.fcProj + nc, residual3 = w.residual3 + nc
            let attSlice = l * w.rows * NH * config.context * config.context, att = w.att + attSlice
            let ln1x = normalized(ln1, into: w.ln1H + nc, w.ln1Mean + n, w.ln1Rstd + n, residual, p(t.ln1Weight),
                                  p(t.ln1Bias), rows: N)
            linearForward(qkv, ln1x, roundedWeight(w, t.attnWeight, params), p(t.attnBias), batch: N, inFeatures: C,
                          outFeatures: 3 * C, precision: precision)
            let qkvx = GEMMOperand.rounding(qkv, into: w.qkvH + 3 * nc, count: N * 3 * C, in: precision)
            attentionForward(atty, att, qkvx, batch: B, time: T, channels: C, heads: NH, precision: precision,
                             attH: w.attH + attSlice)
            let attyx = GEMMOperand.rounding(atty, into: w.attyH + nc, count: N * C, in: precision)
            linearForward(attProj, attyx, roundedWeight(w, t.projWeight, params), p(t.projBias), batch: N, inFeatures: C,
                          outFeatures: C, precision: precision)
            residualForward(residual2, residual, attProj, count: N * C)
            let ln2x = normalized(ln2, into: w.ln2H + nc, w.ln2Mean + n, w.ln2Rstd + n, residual2, p(t.ln2Weight),
                                  p(t.ln2Bias), rows: N)
            linearForward(fch, ln2x, roundedWeight(w, t.fcWeight, params), p(t.fcBias), batch: N, inFeatures: C,
                          outFeatures: 4 * C, precision: precision)
            let fchGelux = gelu(fchGelu, into: w.fchGeluH + 4 * nc, fch, count: N * 4 * C)
            linearForward(fcProj, fchGelux, roundedWeight(w, t.fcProjWeight, params), p(t.fcProjBias), batch: N,
                          inFeatures: 4 * C, outFeatures: C, precision: precision)
            residualForward(residual3, residual2, fcProj, count: N * C)
            residual = UnsafePointer(residual3)
            params.release(l + 1, pass: .forward)
        }
        params.acquire(finalLayer, pass: .forward)
        let lnfx = normalized(w.lnf, into: w.lnfH, w.lnfMean, w.lnfRstd, residual, p(lnfWeight), p(lnfBias), rows: N)
        linearForward(w.logits, lnfx, roundedWeight(w, headIndex ?? wteIndex, params), nil, batch: N, inFeatures: C,
                      outFeatures: V, precision: precision)
        if !keepHead {
            params.release(finalLayer, pass: .forward)
            if config.tiedHead { params.release(0, pass: .forward) }
        }
    }

    /// Logits [B, T, V] for tokens[B, T] (T ≤ Tmax; position t sees tokens 0...t). The buffer is the model's
    /// workspace: valid until the next call on this model.
    public func logits(params: UnsafePointer<Float>, tokens: UnsafePointer<Int32>, rows: Int, time: Int)
        -> UnsafeBufferPointer<Float> {
        let w = reserve(rows: rows)
        runForward(w, params: FlatParameters(base: params, table: table), tokens: tokens, batch: rows, time: time, keepHead: false)
        return UnsafeBufferPointer(start: w.logits, count: rows * time * config.vocabulary)
    }

    private func loss(_ w: Workspace, batch: ModelBatch) -> BatchResult {
        let N = batch.rows * config.context
        var correct = 0
        let lossSum = softmaxCrossEntropyForward(w.probs, w.logits, targets: batch.targets, batch: N,
                                                 classes: config.vocabulary, correct: &correct)
        return BatchResult(lossSum: lossSum, correct: correct, predictions: N)
    }

    public func forward(params: UnsafePointer<Float>, batch: ModelBatch) -> BatchResult {
        forward(params: FlatParameters(base: params, table: table), batch: batch)
    }

    public func forward(params: ParameterSource, batch: ModelBatch) -> BatchResult {
        guard let tokens = batch.tokens else { preconditionFailure("GPT needs token ids (ModelBatch.tokens)") }
        let w = reserve(rows: batch.rows)
        runForward(w, params: params, tokens: tokens, batch: batch.rows, time: config.context, keepHead: false)
        return loss(w, batch: batch)
    }

    // MARK: Backward

    public func forwardBackward(params: UnsafePointer<Float>, sink: GradientSink, batch: ModelBatch,
                                lossScale: Float) -> BatchResult {
        forwardBackward(params: FlatParameters(base: params, table: table), sink: sink, batch: batch, lossScale: lossScale)
    }

    public func forwardBackward(params: ParameterSource, sink: GradientSink, batch: ModelBatch,
                                lossScale: Float) -> BatchResult {
        guard let tokens = batch.tokens else { preconditionFailure("GPT needs token ids (ModelBatch.tokens)") }
        let w = reserve(rows: batch.rows)
        let B = batch.rows, T = config.context, C = config.width, V = config.vocabulary, NH = config.heads
        let N = B * T, Ncap = w.rows * T
        runForward(w, params: params, tokens: tokens, batch: B, time: T, keepHead: true)
        let result = loss(w, batch: batch)
        func p(_ i: Int) -> UnsafePointer<Float> { params.tensor(i) }
        // Backward acquires in `layersReadInBackward` order: the final layer and a tied embedding are still held.
        params.acquire(finalLayer, pass: .backward)
        if config.tiedHead { params.acquire(0, pass: .backward) }

        // Phase 1: loss and head. dLogits = lossScale · (probs − onehot).
        w.dLogits.update(repeating: 0, count: N * V)
        softmaxCrossEntropyBackward(w.dLogits, w.probs, targets: batch.targets, batch: N, classes: V, scale: lossScale)
        let head = weight(w, headIndex ?? wteIndex, params)
        let lnfx = GEMMOperand.stored(w.lnf, w.lnfH, in: precision)
        // dLn[N, C] = dLogits[N, V] · Whead[V, C]
        var dy = GEMMOperand.rounding(w.dLogits, into: w.dyH, count: N * V, in: precision)
        gemm(precision, transposeA: false, transposeB: false, m: N, n: C, k: V, alpha: 1, dy, lda: V, head, ldb: C,
              beta: 0, w.dLn, ldc: C)
        if let headIndex {
            emitLinear(sink, weight: headIndex, bias: nil, dy: w.dLogits, dyOperand: dy, x: lnfx, rows: N, inFeatures: C,
                       outFeatures: V)
        } else {
            // Tied: the head's share of the wte gradient waits in scratch for the embedding's share (phase 4).
            gemm(precision, transposeA: true, transposeB: false, m: V, n: C, k: N, alpha: 1, dy, lda: V, lnfx, ldb: C,
                  beta: 0, w.dWte, ldc: C)
            params.release(0, pass: .backward)  // the embedding backward reads no parameters
        }

        // Phase 2: final LayerNorm into the residual stream gradient.
        let last = config.layers - 1
        let finalResidual = UnsafePointer(w.residual3 + last * Ncap * C)
        w.dResidual.update(repeating: 0, count: N * C)
        layerNormBackwardEmitting(sink, weight: lnfWeight, bias: lnfBias, dx: w.dResidual, dOut: w.dLn, x: finalResidual,
                                  mean: w.lnfMean, rstd: w.lnfRstd, rows: N, params: params)
        params.release(finalLayer, pass: .backward)

        // Phase 3: blocks, last first. dResidual holds d(residual3[l]) on entry and d(block input) on exit.
        for l in stride(from: last, through: 0, by: -1) {
            let t = blocks[l]
            let nc = l * Ncap * C, n = l * Ncap
            let input = l == 0 ? UnsafePointer(w.encoded) : UnsafePointer(w.residual3 + (l - 1) * Ncap * C)
            // The product-only activations: their bf16 copies in bf16 (all layers kept), fp32 buffers otherwise.
            let ln1 = GEMMOperand.stored(w.ln1 + nc, w.ln1H + nc, in: precision)
            let qkv = GEMMOperand.stored(w.qkv + 3 * nc, w.qkvH + 3 * nc, in: precision)
            let atty = GEMMOperand.stored(w.atty + nc, w.attyH + nc, in: precision)
            let ln2 = GEMMOperand.stored(w.ln2 + nc, w.ln2H + nc, in: precision)
            let fchGelu = GEMMOperand.stored(w.fchGelu + 4 * nc, w.fchGeluH + 4 * nc, in: precision)
            let residual2 = w.residual2 + nc, fch = w.fch + 4 * nc
            let attSlice = l * w.rows * NH * T * T, att = w.att + attSlice
            params.acquire(l + 1, pass: .backward)

            // MLP: residual3 = residual2 + c_proj(gelu(c_fc(ln_2(residual2)))); d(c_proj output) = dResidual.
            dy = GEMMOperand.rounding(w.dResidual, into: w.dyH, count: N * C, in: precision)
            gemm(precision, transposeA: false, transposeB: false, m: N, n: 4 * C, k: C, alpha: 1, dy, lda: C,
                  weight(w, t.fcProjWeight, params), ldb: 4 * C, beta: 0, w.dFchGelu, ldc: 4 * C)
            emitLinear(sink, weight: t.fcProjWeight, bias: t.fcProjBias, dy: w.dResidual, dyOperand: dy, x: fchGelu,
                       rows: N, inFeatures: 4 * C, outFeatures: C)
            dy = geluGradient(w.dFch, into: w.dyH, w.dFchGelu, fch, count: N * 4 * C)
            gemm(precision, transposeA: false, transposeB: false, m: N, n: C, k: 4 * C, alpha: 1, dy, lda: 4 * C,
                  weight(w, t.fcWeight, params), ldb: C, beta: 0, w.dLn, ldc: C)
            emitLinear(sink, weight: t.fcWeight, bias: t.fcBias, dy: w.dFch, dyOperand: dy, x: ln2, rows: N,
                       inFeatures: C, outFeatures: 4 * C)
            layerNormBackwardEmitting(sink, weight: t.ln2Weight, bias: t.ln2Bias, dx: w.dResidual, dOut: w.dLn,
                                      x: residual2, mean: w.ln2Mean + n, rstd: w.ln2Rstd + n, rows: N, params: params)

            // Attention: residual2 = input + c_proj(attn(c_attn(ln_1(input)))); dResidual is now d(residual2).
            dy = GEMMOperand.rounding(w.dResidual, into: w.dyH, count: N * C, in: precision)
            gemm(precision, transposeA: false, transposeB: false, m: N, n: C, k: C, alpha: 1, dy, lda: C,
                  weight(w, t.projWeight, params), ldb: C, beta: 0, w.dAtty, ldc: C)
            emitLinear(sink, weight: t.projWeight, bias: t.projBias, dy: w.dResidual, dyOperand: dy, x: atty, rows: N,
                       inFeatures: C, outFeatures: C)
            w.dqkv.update(repeating: 0, count: N * 3 * C)
            let dAtty = GEMMOperand.rounding(w.dAtty, into: w.dyH, count: N * C, in: precision)
            attentionBackward(w.dqkv, dAtty, qkv, att, attH: w.attH + attSlice, scratch: w.dAtt, batch: B, time: T,
                              channels: C, heads: NH, precision: precision)
            dy = GEMMOperand.rounding(w.dqkv, into: w.dyH, count: N * 3 * C, in: precision)
            gemm(precision, transposeA: false, transposeB: false, m: N, n: C, k: 3 * C, alpha: 1, dy, lda: 3 * C,
                  weight(w, t.attnWeight, params), ldb: C, beta: 0, w.dLn, ldc: C)
            emitLinear(sink, weight: t.attnWeight, bias: t.attnBias, dy: w.dqkv, dyOperand: dy, x: ln1, rows: N,
                       inFeatures: C, outFeatures: 3 * C)
            layerNormBackwardEmitting(sink, weight: t.ln1Weight, bias: t.ln1Bias, dx: w.dResidual, dOut: w.dLn,
                                      x: input, mean: w.ln1Mean + n, rstd: w.ln1Rstd + n, rows: N, params: params)
            params.release(l + 1, pass: .backward)
        }

        // Phase 4: embeddings. Untied: wte's scratch starts empty; tied: it already holds the head's share.
        if headIndex != nil { w.dWte.update(repeating: 0, count: V * C) }
        w.dWpe.update(repeating: 0, count: T * C)
        embeddingBackward(w.dWte, w.dWpe, w.dResidual, tokens, batch: B, time: T, channels: C)
        emitRows(sink, tensor: wpeIndex, from: w.dWpe)
        emitRows(sink, tensor: wteIndex, from: w.dWte)
        return result
    }

    /// Weight (and bias) gradients of y[N, O] = x[N, I]·Wᵀ + b, one GEMM per block the sink asks for, each block
    /// reported finished as soon as it is written.
    /// `dy` (fp32) gives the bias sums, `dyOperand` (dy, or its bf16 copy) and `x` the weight products.
    private func emitLinear(_ sink: GradientSink, weight: Int, bias: Int?, dy: UnsafePointer<Float>,
                            dyOperand: GEMMOperand, x: GEMMOperand, rows: Int, inFeatures: Int, outFeatures: Int) {
        if let bias {
            for block in sink.rowBlocks(bias) {
                linearBackwardBiasRows(sink.gradient(bias, rows: block), dy, rows: block, batch: rows,
                                       outFeatures: outFeatures)
                sink.finished(bias, rows: block)
            }
        }
        for block in sink.rowBlocks(weight) {
            linearBackwardWeightRows(sink.gradient(weight, rows: block), dyOperand, x, rows: block, batch: rows,
                                     inFeatures: inFeatures, outFeatures: outFeatures, precision: precision)
            sink.finished(weight, rows: block)
        }
    }

    /// LayerNorm backward: dx accumulates into the residual stream gradient; the weight and bias gradients go
    /// through scratch into the sink's blocks.
    private func layerNormBackwardEmitting(_ sink: GradientSink, weight: Int, bias: Int, dx: UnsafeMutablePointer<Float>,
                                           dOut: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                           mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows: Int,
                                           params: ParameterSource) {
        let w = workspace!, C = config.width
        w.dVector.update(repeating: 0, count: C)
        w.dVector2.update(repeating: 0, count: C)
        layerNormBackward(dx, w.dVector, w.dVector2, dOut, x, params.tensor(weight), mean, rstd, rows: rows, channels: C)
        emitRows(sink, tensor: weight, from: w.dVector)
        emitRows(sink, tensor: bias, from: w.dVector2)
    }

    /// Adds a whole gradient computed in scratch (laid out like the tensor) into the sink, block by block.
    private func emitRows(_ sink: GradientSink, tensor i: Int, from source: UnsafePointer<Float>) {
        let cols = table.entries[i].blockCols
        for block in sink.rowBlocks(i) {
            let dst = sink.gradient(i, rows: block), src = source + block.lowerBound * cols
            for j in 0..<(block.count * cols) { dst[j] += src[j] }
            sink.finished(i, rows: block)
        }
    }
}
