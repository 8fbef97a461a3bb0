import Optimizers
import SwiftMPI
import Tensors

/// What happened in one distributed optimizer step.
public struct StepReport: Equatable, Sendable {
    /// Global L2 norm of the averaged raw (unclipped) gradient; NaN when the step was skipped.
    public var gradNorm: Double
    /// True when a non-finite gradient was seen on any rank and the step was skipped everywhere.
    public var skipped: Bool
    /// True when the gradient was scaled down by global-norm clipping.
    public var clipped: Bool
}

/// ZeRO stages (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion Parameter Models").
public enum ZeroStage: Int, Sendable, CaseIterable {
    /// Replicated: every rank holds all gradients and optimizer state; gradients all-reduced.
    case replicated = 0
    /// Optimizer state sharded; gradients reduce-scattered to their owners; updated parameters all-gathered.
    case optimizerState = 1
    /// Optimizer state and gradients sharded: only bucket-sized staging plus the owned gradient shard per rank.
    case gradients = 2
    /// Parameters sharded too: each rank stores only what it owns, and the model reads each layer from a working
    /// buffer all-gathered just ahead of use (`LayerGather`).
    case parameters = 3

    /// Stages 2–3 keep no full gradient buffer: gradients are reduce-scattered every micro-batch.
    public var shardsGradients: Bool { rawValue >= 2 }
}

/// How stage 3 gathers parameters (`zero.prefetch`, `zero.reshard_after_forward`).
public struct GatherSettings: Sendable {
    /// Layers whose gathers are in flight ahead of the one computing (0: gather on demand).
    public var prefetchDepth: Int
    /// True: a layer's working buffer is freed after its forward and gathered again for backward (FSDP's
    /// default). False: kept from forward to backward — one gather per layer per micro-batch, more memory.
    public var reshardAfterForward: Bool
    public init(prefetchDepth: Int = 1, reshardAfterForward: Bool = true) {
        self.prefetchDepth = prefetchDepth
        self.reshardAfterForward = reshardAfterForward
    }
}

/// Data-parallel training engine with ZeRO-style sharding. One instance per rank; every rank calls every method in
/// the same order, so every collective is issued in the same order everywhere.
///
/// A step, in order:
/// 1. Backward writes into `sink` (once per micro-batch, between `beginMicroBatch` and `endMicroBatch`); buckets are
///    all-reduced (stage 0) or reduce-scattered to their owners (stages 1, 2) as soon as they are final.
/// 2. Gradients are scaled by 1/world (MPI has no average).
/// 3. Safety: one all-reduce of Σg² over owned elements gives the global norm, and non-finite means some rank saw
///    NaN/Inf: the step is then skipped on every rank before any optimizer state changes. Otherwise global-norm
///    clipping scales the raw gradient (each element counted once, on its owner).
/// 4. Each group's optimizer updates what this rank owns (per-tensor norm optimizers first add their partial norms
///    and all-reduce them once, so trust ratios are exact).
/// 5. Stages 1, 2: updated parameters are all-gathered (variable counts, one collective per group; `WeightGather`).
///    Stage 3 gathers nothing here: the next forward gathers each layer from its owners (`LayerGather`).
///
/// Working precision (`train.precision`, DeepSpeed's and autocast's bf16 mode): `params` hold the fp32 master
/// weights of what this rank owns, and the optimizers update them in fp32; the models round every matrix-product
/// operand to bf16 (`GEMMPrecision.bf16`), so what a GEMM reads is bf16(master). At stages 1–2 the all-gather of
/// step 5 therefore moves the matrices as bf16 — half the bytes — and the rest in fp32 (`WeightGather`).
/// Gradients, optimizer state and masters stay fp32.
public final class ShardedDataParallel {
    public let comm: Communicator
    public let plan: ShardPlan
    public let stage: ZeroStage
    public let clipNorm: Double?
    public let gradAccum: Int
    /// Stages 0–2: the full parameters in `plan.table` layout, what the model reads: identical on every rank after
    /// each step in fp32; in bf16 working precision at stages 1–2, matrices other ranks own hold bf16(master) (see
    /// above). Stage 3 has no full buffer (nil): read through `parameters`, copy with `masterParameters()`.
    public let params: FloatBuffer?
    /// Stage 3: the parameters this rank owns, and the source that gathers layers from every rank's.
    private let owned: OwnedParameters?
    private let layerGather: LayerGather?
    /// What the model reads in forward and backward: the full buffer (stages 0–2) or the layer gather (stage 3).
    public let parameters: ParameterSource
    /// The precision of the matrix products the model computes (see the type's comment).
    public let workingPrecision: GEMMPrecision
    private let weightGather: WeightGather
    /// Per group: this rank's optimizer (over the whole group at stage 0, over its block at stages 1 and 2).
    public let optimizers: [Optimizer]
    /// Per group: the absolute range this rank updates, and its segments (relative to that range).
    public let ownedRanges: [Range<Int>]
    public let segments: [[ParamSegment]]
    private let fullGrads: FloatBuffer?
    private let shards: [FloatBuffer]
    private let bucketSink: BucketedGradientSink
    private var microBatch = 0
    /// Rows of the current micro-batch, and of this step's micro-batches so far on this rank.
    private var microBatchRows = 0, stepRows = 0
    /// For the noise scale with one rank and accumulation at stages 0/1 (one communication per step): the
    /// accumulated gradient before the current micro-batch, so each micro-batch's own gradient is a difference.
    private var previousAccumulation: FloatBuffer?
    /// Per "small batch" of this step: ‖g‖² of its gradient contribution, and its rows.
    private var smallBatchSquares: [(squares: Double, rows: Int)] = []
    /// Whether the noise-scale norms are measured (one extra pass over the local gradient per step).
    public var measuresNoiseScale = true {
        didSet { bucketSink.measuresLocalSquares = measuresNoiseScale }
    }

    /// - Parameters:
    ///   - makeOptimizer: creates the optimizer of group g for `count` elements and the segments it will update.
    ///   - hyperparameters: weight decay and learning-rate multiplier of each tensor.
    ///   - bucketElements: target bucket size for gradient communication (elements).
    ///   - workingPrecision: the precision of the weights the model reads (see the type's comment).
    ///   - gradientPayload: bf16 sends reduce-scatter payloads as bf16, summed in fp32 by each owner (stages 1–2).
    public init(comm: Communicator, plan: ShardPlan, stage: ZeroStage, gradAccum: Int = 1, clipNorm: Double?,
                bucketElements: Int = 1 << 19, workingPrecision: GEMMPrecision = .fp32,
                gradientPayload: GEMMPrecision = .fp32, layers: [[Int]] = [], backwardLayers: [Int] = [],
                gather: GatherSettings = GatherSettings(),
                makeOptimizer: (_ group: GroupLayout, _ count: Int, _ segments: [ParamSegment]) -> Optimizer,
                hyperparameters: (TensorEntry) -> (weightDecay: Float, lrScale: Float)) {
        precondition(plan.worldSize == comm.size, "plan made for \(plan.worldSize) ranks, world has \(comm.size)")
        self.comm = comm
        self.plan = plan
        self.stage = stage
        self.clipNorm = clipNorm
        self.gradAccum = gradAccum
        var ranges: [Range<Int>] = []
        var segs: [[ParamSegment]] = []
        var opts: [Optimizer] = []
        for group in plan.groups {
            let owned = stage == .replicated ? group.range : group.owned(comm.rank)
            ranges.append(owned)
            segs.append(plan.table.entries(overlapping: owned).map { entry, overlap in
                let h = hyperparameters(entry)
                return ParamSegment(range: (overlap.lowerBound - owned.lowerBound)..<(overlap.upperBound - owned.lowerBound),
                                    tensor: entry, tensorIndex: plan.table.entries.firstIndex(of: entry)!,
                                    weightDecay: h.weightDecay, lrScale: h.lrScale)
            })
            opts.append(makeOptimizer(group, owned.count, segs.last!))
        }
        ownedRanges = ranges
        segments = segs
        optimizers = opts
        self.workingPrecision = workingPrecision
        if stage == .parameters {
            precondition(layers.count > 1, "stage 3 gathers layer by layer: the model must list its layers (configuration checks this)")
            let owned = OwnedParameters(ranges: ranges)
            let gather = LayerGather(comm: comm, plan: plan, owned: owned, layers: layers, backwardOrder: backwardLayers,
                                     depth: gather.prefetchDepth, reshardAfterForward: gather.reshardAfterForward)
            params = nil
            self.owned = owned
            layerGather = gather
            parameters = gather
        } else {
            let full = FloatBuffer(count: plan.table.count)
            params = full
            owned = nil
            layerGather = nil
            parameters = FlatParameters(base: full.pointer, table: plan.table)
        }
        // Stage 0 gathers nothing: every rank updates every weight; stage 3 gathers layers in forward and backward.
        weightGather = WeightGather(comm: comm, plan: plan,
                                    workingPrecision: stage == .replicated || stage == .parameters ? .fp32 : workingPrecision)
        switch stage {
        case .replicated:
            fullGrads = FloatBuffer(count: plan.table.count)
            shards = []
        case .optimizerState:
            fullGrads = FloatBuffer(count: plan.table.count)
            shards = ranges.map { FloatBuffer(count: $0.count) }
        case .gradients, .parameters:
            fullGrads = nil
            shards = ranges.map { FloatBuffer(count: $0.count) }
        }
        let mode: BucketedGradientSink.Mode = stage == .replicated ? .allReduce : stage == .optimizerState ? .reduceScatter : .reduceScatterPooled
        bucketSink = BucketedGradientSink(comm: comm, plan: plan, mode: mode, fullGrads: fullGrads, shards: shards,
                                          bucketElements: bucketElements)
        bucketSink.accumulateIntoShards = stage.shardsGradients && gradAccum > 1
        precondition(gradientPayload == .fp32 || stage != .replicated,
                     "bf16 gradient payloads need the reduce-scatter of stages 1–2 (configuration checks this)")
        bucketSink.bf16Payload = gradientPayload == .bf16
    }

    /// The fp32 master weights of the whole model in `plan.table` layout, on every rank (for checkpoints, export
    /// and equivalence checks). `params` itself, except in bf16 working precision at stages 1–2, where a copy
    /// gathers every owner's fp32 masters — a collective, so every rank calls it at the same point.
    public func masterParameters() throws -> FloatBuffer {
        if let params, workingPrecision == .fp32 || stage == .replicated { return params }
        let full = FloatBuffer(count: plan.table.count)
        if let params { full.pointer.update(from: params.pointer, count: params.count) } else { owned!.put(into: full.pointer) }
        let requests = try plan.groups.map { try comm.iAllGatherInPlace(full.slice($0.range), counts: $0.counts) }
        for r in requests { try r.wait() }
        return full
    }

    /// Bytes of parameters this rank holds persistently: `params` (plus the packed bf16 gather buffer in bf16 at
    /// stages 1–2), or the owned blocks at stage 3.
    public var parameterBytes: Int { (params?.byteCount ?? 0) + (owned?.byteCount ?? 0) + weightGather.byteCount }
    /// Stage 3: bytes of the layer working buffers (the pool's high-water mark); 0 otherwise.
    public var gatherBufferBytes: Int { layerGather?.workingBytes ?? 0 }
    /// Stage 3: elements of the largest layer (one working buffer); 0 otherwise.
    public var largestLayerElements: Int { layerGather?.largestLayer ?? 0 }
    /// Stage 3: seconds the model waited for layer gathers (what prefetch did not hide), summed over steps.
    public var exposedGatherSeconds: Double { layerGather?.exposedWaitSeconds ?? 0 }
    /// Weight bytes this rank has received so far: stage 3's layer gathers (in total), or per step at stages 1–2.
    public var weightBytesReceivedPerStep: Int { stage == .replicated || stage == .parameters ? 0 : weightGather.bytesReceived }
    public var layerGatherBytesReceived: Int { layerGather?.bytesReceived ?? 0 }

    /// Gradient bytes this rank will hold once training runs: the full buffer and/or shards, plus the stage 2–3
    /// staging pool at its limit (allocated on first use).
    public var predictedGradientBytes: Int { bucketSink.predictedGradientBytes }
    /// Stage 3: the layer working buffers a step needs: (prefetch depth + 2) slots of the largest layer (the layer
    /// computing, the prefetched ones, and one a model keeps acquired across a pass), or every layer when
    /// `reshard_after_forward` is off.
    public var predictedGatherBytes: Int {
        guard let layerGather else { return 0 }
        let slots = layerGather.reshardAfterForward ? min(layerGather.depth + 2, layerGather.layerCount) : layerGather.layerCount
        return slots * layerGather.largestLayer * 4
    }
    /// What `train.memory_limit_mb` is checked against.
    public var predictedTrainingBytes: Int { parameterBytes + predictedGradientBytes + optimizerStateBytes + predictedGatherBytes }

    /// Fills the parameters: `initialize` writes the whole model into a buffer in table layout (stages 0–2: `params`
    /// itself; stage 3: a temporary one, of which this rank keeps what it owns).
    public func initializeParameters(_ initialize: (UnsafeMutableBufferPointer<Float>) -> Void) {
        if let params { initialize(params.buffer); return }
        let full = FloatBuffer(count: plan.table.count)
        initialize(full.buffer)
        owned!.take(from: full.pointer)
    }

    /// The parameters group g's optimizer updates on this rank.
    private func updatedParameters(_ g: Int) -> UnsafeMutableBufferPointer<Float> {
        if let params { return params.slice(ownedRanges[g]) }
        return owned!.blocks[g].buffer
    }

    /// Whether every parameter this rank holds is finite (its blocks at stage 3; the full buffer otherwise).
    public var localParametersAreFinite: Bool {
        if let params { return sumOfSquares(UnsafeBufferPointer(params.buffer)).isFinite }
        return owned!.blocks.allSatisfy { sumOfSquares(UnsafeBufferPointer($0.buffer)).isFinite }
    }

    /// Writes `values` (in table layout of one tensor, elements `range` relative to the tensor) where this rank
    /// keeps them: everywhere at stages 0–2; only its owned elements at stage 3. For checkpoint restore.
    func storeParameters(of entry: TensorEntry, _ values: [Float]) {
        if let params {
            let dst = params.slice(entry.range)
            for i in 0..<values.count { dst[i] = values[i] }
            return
        }
        for (g, r) in ownedRanges.enumerated() {
            let overlap = entry.range.clamped(to: r)
            guard !overlap.isEmpty else { continue }
            let dst = owned!.blocks[g].pointer + (overlap.lowerBound - r.lowerBound)
            for i in 0..<overlap.count { dst[i] = values[overlap.lowerBound - entry.offset + i] }
        }
    }

    /// The sink backward writes into during a micro-batch.
    public var sink: GradientSink { bucketSink }

    /// Starts micro-batch `index` (0..<gradAccum) of a step, of `rows` rows on this rank; the first one clears the
    /// gradients.
    public func beginMicroBatch(_ index: Int, rows: Int) {
        microBatch = index
        microBatchRows = rows
        stepRows = index == 0 ? rows : stepRows + rows
        if index == 0 {
            fullGrads?.zero()
            for s in shards { s.zero() }
            smallBatchSquares.removeAll(keepingCapacity: true)
            previousAccumulation?.zero()
        }
        bucketSink.communicate = stage.shardsGradients || index == gradAccum - 1
        bucketSink.localSquares = 0
        bucketSink.reducedSquares = 0
    }

    /// The loss scale of one micro-batch's backward, and the one place the mean is decided: gradients are of the
    /// mean loss over the *global* batch, 1 / (global rows × predictions per row), whatever this rank's share, so
    /// summing every rank's and micro-batch's contribution in the collectives yields the exact global mean —
    /// with unequal shares too — and no division pass afterwards.
    public func meanLossScale(globalRows: Int, predictionsPerRow: Int) -> Float {
        1 / Float(globalRows * predictionsPerRow)
    }

    /// True when each micro-batch's own gradient norm is measured by difference (one rank, accumulation, stages 0/1).
    private var measuresMicroBatchesByDifference: Bool { comm.size == 1 && gradAccum > 1 && !stage.shardsGradients }

    /// Ends the micro-batch: waits for its collectives (and, at stage 3, frees any layer still gathered).
    public func endMicroBatch() {
        bucketSink.endMicroBatch()
        layerGather?.releaseAll()
        guard measuresNoiseScale else { return }
        if measuresMicroBatchesByDifference {
            // ‖acc_m − acc_{m−1}‖² is this micro-batch's gradient; keep acc_m for the next one.
            let previous = previousAccumulation ?? FloatBuffer(count: plan.table.count)
            previousAccumulation = previous
            let a = fullGrads!.pointer, p = previous.pointer
            var sum = 0.0
            for i in 0..<plan.table.count { let d = Double(a[i] - p[i]); sum += d * d; p[i] = a[i] }
            smallBatchSquares.append((sum, microBatchRows))
        } else if bucketSink.communicate {
            // Once per step (all of this rank's rows), or per micro-batch at stage 2 with accumulation.
            smallBatchSquares.append((bucketSink.localSquares, gradAccum > 1 && stage.shardsGradients ? microBatchRows : stepRows))
        }
    }

    /// The noise-scale inputs of the last step on this rank: Σ over small batches of ‖mean gradient‖², their
    /// number, and Σ 1/rows. A small batch is this rank's share of the step (one communication per step), or one
    /// micro-batch (stage 2 with accumulation, or one rank with accumulation). Contributions are scaled by
    /// 1/(global rows), so a small batch of b rows has mean gradient contribution × (global rows / b).
    public func smallBatchNorms(globalRows: Int) -> SmallBatchNorms {
        var sum = 0.0, inverse = 0.0
        for (squares, rows) in smallBatchSquares {
            let toMean = Double(globalRows) / Double(rows)
            sum += squares * toMean * toMean
            inverse += 1 / Double(rows)
        }
        return SmallBatchNorms(sumSquares: sum, count: smallBatchSquares.count, sumInverseRows: inverse)
    }

    /// What `smallBatchNorms` returns.
    public struct SmallBatchNorms: Sendable {
        /// Σ over small batches of ‖mean gradient‖².
        public var sumSquares: Double
        public var count: Int
        /// Σ over small batches of 1/rows.
        public var sumInverseRows: Double
    }

    /// Gradient of group g as this rank's optimizer sees it (averaged over ranks once `step` has begun).
    private func ownedGradient(_ g: Int) -> UnsafeMutableBufferPointer<Float> {
        stage == .replicated ? fullGrads!.slice(ownedRanges[g]) : shards[g].buffer
    }

    /// Applies the step to `params` from the accumulated gradients; `lr` is the scheduled learning rate.
    public func step(lr: Float) throws -> StepReport {
        // The collectives summed contributions already scaled by `contributionScale`: the gradient is the global mean.
        // Σg² was measured as each bucket arrived (stage 2 with accumulation: one pass over the shards here).
        var sumSquares = 0.0
        if stage == .replicated {
            // Every rank holds the same gradient (all of it arrived in the last micro-batch's all-reduces): the
            // decision is identical everywhere without communicating.
            sumSquares = bucketSink.reducedSquares
        } else {
            sumSquares = bucketSink.reducedSquaresAreFinal
                ? bucketSink.reducedSquares : shards.reduce(0) { $0 + sumOfSquares(UnsafeBufferPointer($1.buffer)) }
            sumSquares = try comm.allReduce(sumSquares, op: .sum)
        }
        guard sumSquares.isFinite else { return StepReport(gradNorm: .nan, skipped: true, clipped: false) }
        let norm = sumSquares.squareRoot()
        var clipped = false
        if let clipNorm, norm > clipNorm {
            // torch.nn.utils.clip_grad_norm_: g ← g · max_norm / (‖g‖ + 1e-6), on raw gradients only.
            let factor = Float(clipNorm / (norm + 1e-6))
            if stage == .replicated { scale(fullGrads!.buffer, by: factor) } else { for s in shards { scale(s.buffer, by: factor) } }
            clipped = true
        }
        let context = StepContext(lr: lr)
        var updateStart = monotonicSeconds()

        // Per-tensor-norm optimizers: partial sums from every owner, one all-reduce for all such groups.
        let normGroups = optimizers.indices.filter { optimizers[$0] is TensorNormOptimizer }
        if !normGroups.isEmpty {
            var squares = [Double](repeating: 0, count: 2 * plan.table.entries.count)
            squares.withUnsafeMutableBufferPointer { partial in
                for g in normGroups {
                    (optimizers[g] as! TensorNormOptimizer).prepare(
                        params: updatedParameters(g), grads: UnsafeBufferPointer(ownedGradient(g)),
                        segments: segments[g], context: context, partialSquares: partial)
                }
            }
            updateSeconds += monotonicSeconds() - updateStart
            if stage != .replicated { try comm.allReduce(&squares, op: .sum) }
            updateStart = monotonicSeconds()
            squares.withUnsafeBufferPointer { total in
                for g in normGroups {
                    (optimizers[g] as! TensorNormOptimizer).apply(params: updatedParameters(g), segments: segments[g],
                                                                  context: context, totalSquares: total)
                }
            }
        }
        for g in optimizers.indices where !(optimizers[g] is TensorNormOptimizer) {
            optimizers[g].update(params: updatedParameters(g), grads: UnsafeBufferPointer(ownedGradient(g)),
                                 segments: segments[g], context: context)
        }

        updateSeconds += monotonicSeconds() - updateStart
        if let params, stage != .replicated { try weightGather.publish(params) }
        return StepReport(gradNorm: norm, skipped: false, clipped: clipped)
    }

    /// Seconds this rank spent computing optimizer updates (communication excluded), summed over steps: at stages
    /// 1 and 2 this is where Newton–Schulz work is divided between ranks.
    public private(set) var updateSeconds = 0.0
    /// Optimizer state bytes held by this rank.
    public var optimizerStateBytes: Int { optimizers.reduce(0) { $0 + $1.stateBytes } }
    /// Gradient bytes held by this rank (full buffer and/or shards and staging).
    public var gradientBytes: Int { bucketSink.gradientBytes }
    /// Seconds this rank spent blocked on gradient communication (the part overlap did not hide).
    public var communicationWaitSeconds: Double { bucketSink.waitSeconds }
    /// Gradient payload bytes this rank has sent (reduce-scatter: exact; all-reduce: the ring's 2·(N−1)/N estimate).
    public var gradientBytesSent: Int { bucketSink.payloadBytesSent }
    public var bucketCount: Int { bucketSink.buckets.count }
}

/// x ← a·x
public func scale(_ x: UnsafeMutableBufferPointer<Float>, by a: Float) {
    guard let p = x.baseAddress, a != 1 else { return }
    for i in 0..<x.count { p[i] *= a }
}
