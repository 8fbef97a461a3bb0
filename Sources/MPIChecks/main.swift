// swift-train-mpi-checks: multi-rank checks that need real MPI collectives. Run by launch/test as
//   launch/mpirun -n 4 .build/release/swift-train-mpi-checks     (and with other rank counts)
// Every rank runs every check (so every rank calls every collective in the same order); results are combined
// with an all-reduce and rank 0 prints one line per check and a closing "N passed, M failed" line.
import Datasets
import Optimizers
import Distributed
import Foundation
import FullBatch
import GradientFree
import Models
import SwiftMPI
import Tensors
import TestSupport
import Training

final class Checks {
let comm: MPICommunicator
let world: Int, rank: Int
var passed = 0, failed = 0
let counts: [Int], total: Int, offsets: [Int]

init(comm: MPICommunicator) {
    self.comm = comm
    world = comm.size
    rank = comm.rank
    // Uneven counts with a zero: e.g. 4 ranks → [3, 0, 5, 2]. Ranks past the pattern get varied sizes too.
    counts = (0..<world).map { r in [3, 0, 5, 2, 7, 1][r % 6] }
    total = counts.reduce(0, +)
    offsets = displacements(of: counts)
}

/// Records a check; `ok` is this rank's verdict, combined over ranks (a check passes only if it passed everywhere).
func check(_ name: String, _ ok: Bool, _ detail: @autoclosure () -> String = "") {
    let failures = (try? comm.allReduce(Int32(ok ? 0 : 1), op: .sum)) ?? 1
    if failures == 0 { passed += 1 } else { failed += 1 }
    if !ok { printError("rank \(rank): FAIL \(name) \(detail())") }
    if rank == 0 { print("\(failures == 0 ? "ok  " : "FAIL") \(name)\(failures == 0 ? "" : " (\(failures) ranks)")") }
}

/// A value each rank contributes for element i, so the expected reduction is known in closed form.
func contribution(_ r: Int, _ i: Int) -> Float { Float((r + 1) * 1000 + i) }


/// The engine's direct (point-to-point) Float-sum collectives against the closed-form results: uneven counts with
/// an empty block, several calls in flight and completed in a different order on different ranks (tags must keep
/// the phases apart), and an all-reduce of non-integer values that must leave every rank bit-identical.
func directCollectiveChecks(counts: [Int], offsets: [Int], expectedBlock: [Float]) throws {
    let total = counts.reduce(0, +)
    let send = FloatBuffer(count: total), receive = FloatBuffer(count: counts[rank])
    for i in 0..<total { send[i] = contribution(rank, i) }
    let n = 1001  // not divisible by 2, 3 or 4
    let a = FloatBuffer(count: n), c = FloatBuffer(count: n)
    for i in 0..<n { a[i] = Float(rank + 1); c[i] = Float(i % 7) * Float(rank + 1) }
    let gather = FloatBuffer(count: total)
    for i in 0..<counts[rank] { gather[offsets[rank] + i] = Float(rank * 100 + i) }
    let requests = [try comm.iAllReduceSumDirect(a.buffer),
                    try comm.iReduceScatterSumDirect(UnsafeBufferPointer(send.buffer), into: receive.buffer, counts: counts),
                    try comm.iAllReduceSumDirect(c.buffer),
                    try comm.iAllGatherInPlaceDirect(gather.buffer, counts: counts)]
    // Rank 0 completes them last-first, the others first-last; everyone polls once in between.
    _ = try requests.map { try $0.test() }
    for r in (rank == 0 ? requests.reversed() : requests) { try r.wait() }
    let triangle = Float(world * (world + 1) / 2)
    check("direct all-reduce, \(n) elements over \(world) ranks", (0..<n).allSatisfy { a[$0] == triangle })
    check("direct all-reduce, second call in flight", (0..<n).allSatisfy { c[$0] == Float($0 % 7) * triangle })
    check("direct reduce-scatter, uneven counts \(counts)", receive.array == expectedBlock, "\(receive.array) vs \(expectedBlock)")
    check("direct all-gather in place, uneven counts",
          (0..<world).allSatisfy { r in (0..<counts[r]).allSatisfy { gather[offsets[r] + $0] == Float(r * 100 + $0) } })

    // Non-integer values: rounding depends on summation order, which is fixed (rank order) and done by one owner.
    let x = FloatBuffer(count: n)
    for i in 0..<n { x[i] = Float(i + 1).squareRoot() / Float(rank + 3) }
    try comm.iAllReduceSumDirect(x.buffer).wait()
    var hi = x.array, lo = x.array
    try comm.allReduce(&hi, op: .max)
    try comm.allReduce(&lo, op: .min)
    var worst = 0.0
    for i in 0..<n {
        var exact = 0.0
        for r in 0..<world { exact += Double(Float(i + 1).squareRoot() / Float(r + 3)) }
        worst = max(worst, abs(Double(x[i]) - exact) / exact)
    }
    check("direct all-reduce leaves every rank bit-identical, within 1e-6 of the double sum (max rel. \(worst))",
          hi == x.array && lo == x.array && worst <= 1e-6)

    // bf16 payloads (zero.comm_dtype): the owner adds its own fp32 block, then each peer's block rounded to bf16,
    // in rank order — reproduced here exactly, element by element.
    let values = { (r: Int) in (0..<total).map { Float($0 + 1).squareRoot() / Float(r + 3) } }
    let sendBF16 = values(rank)
    var receiveBF16 = [Float](repeating: -1, count: counts[rank])
    try sendBF16.withUnsafeBufferPointer { s in
        try receiveBF16.withUnsafeMutableBufferPointer {
            try comm.iReduceScatterSumDirectBF16(s, into: $0, counts: counts).wait()
        }
    }
    let block = offsets[rank]..<(offsets[rank] + counts[rank])
    var expected = Array(values(rank)[block])
    for peer in 0..<world where peer != rank {
        var rounded = [UInt16](repeating: 0, count: total)
        let peerValues = values(peer)
        BF16.round(peerValues, into: &rounded, count: total)
        for (k, i) in block.enumerated() { expected[k] += Float(bitPattern: UInt32(rounded[i]) << 16) }
    }
    check("direct reduce-scatter with bf16 payloads = own + Σ bf16(peers) in rank order, uneven counts \(counts)",
          receiveBF16 == expected, "\(receiveBF16) vs \(expected)")
}

func runChecks() throws {
    // all-reduce, sum and max, three element types
    var floats = (0..<13).map { contribution(rank, $0) }
    try comm.allReduce(&floats, op: .sum)
    let expectedSum = (0..<13).map { i in (0..<world).reduce(Float(0)) { $0 + contribution($1, i) } }
    check("allReduce sum float32 (13 elements)", floats == expectedSum, "\(floats) vs \(expectedSum)")
    var doubles = (0..<7).map { Double(rank) * 0.5 + Double($0) }
    try comm.allReduce(&doubles, op: .max)
    check("allReduce max float64", doubles == (0..<7).map { Double(world - 1) * 0.5 + Double($0) })
    let minimum = try comm.allReduce(Int64(rank - 3), op: .min)
    check("allReduce min int64 scalar", minimum == -3)

    // reduce-scatter with per-rank counts that do not divide evenly (one rank receives nothing)
    let send = (0..<total).map { contribution(rank, $0) }
    var receive = [Float](repeating: -1, count: counts[rank])
    try send.withUnsafeBufferPointer { s in
        try receive.withUnsafeMutableBufferPointer { try comm.reduceScatter(s, into: $0, counts: counts, op: .sum) }
    }
    let expectedBlock = (0..<counts[rank]).map { expectedSumAt(offsets[rank] + $0) }
    check("reduceScatter uneven counts \(counts)", receive == expectedBlock, "\(receive) vs \(expectedBlock)")

    // all-gather(v) with uneven counts
    let mine = (0..<counts[rank]).map { Float(rank * 100 + $0) }
    var gathered = [Float](repeating: -1, count: total)
    try mine.withUnsafeBufferPointer { m in
        try gathered.withUnsafeMutableBufferPointer { try comm.allGather(m, into: $0, counts: counts) }
    }
    let expectedGather = (0..<world).flatMap { r in (0..<counts[r]).map { Float(r * 100 + $0) } }
    check("allGatherv uneven counts", gathered == expectedGather, "\(gathered)")

    // in-place all-gather (the sharded optimizer's parameter all-gather)
    var buffer = [Float](repeating: -1, count: total)
    for i in 0..<counts[rank] { buffer[offsets[rank] + i] = Float(rank * 100 + i) }
    try buffer.withUnsafeMutableBufferPointer { try comm.allGatherInPlace($0, counts: counts) }
    check("allGatherv in place", buffer == expectedGather)

    // broadcast from the last rank
    var message = (0..<5).map { Int32(rank == world - 1 ? 40 + $0 : -1) }
    try message.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: world - 1) }
    check("broadcast from rank \(world - 1)", message == [40, 41, 42, 43, 44])
    try comm.barrier()

    // non-blocking variants: start, poll with test() while "computing", then wait
    let big = 1 << 16
    let a = FloatBuffer(count: big)
    for i in 0..<big { a[i] = Float(rank + 1) }
    let request = try comm.iAllReduce(a.buffer, op: .sum)
    var polls = 0
    while try !request.test() { polls += 1; if polls > 10_000_000 { break } }
    try request.wait()
    let triangle = Float(world * (world + 1) / 2)
    check("iAllReduce completes via test()/wait()", (0..<big).allSatisfy { a[$0] == triangle })

    let rsSend = FloatBuffer(count: total), rsReceive = FloatBuffer(count: counts[rank])
    for i in 0..<total { rsSend[i] = contribution(rank, i) }
    let r1 = try comm.iReduceScatter(UnsafeBufferPointer(rsSend.buffer), into: rsReceive.buffer, counts: counts, op: .sum)
    let gatherBuffer = FloatBuffer(count: total)
    for i in 0..<counts[rank] { gatherBuffer[offsets[rank] + i] = Float(rank) }
    let r2 = try comm.iAllGatherInPlace(gatherBuffer.buffer, counts: counts)
    try r1.wait()
    try r2.wait()
    check("iReduceScatter uneven counts", rsReceive.array == expectedBlock)
    check("iAllGatherv in place, two requests in flight",
          (0..<world).allSatisfy { r in (0..<counts[r]).allSatisfy { gatherBuffer[offsets[r] + $0] == Float(r) } })

    try directCollectiveChecks(counts: counts, offsets: offsets, expectedBlock: expectedBlock)

    // A layout error is thrown before any communication, identically on every rank, so nothing hangs.
    var wrong = [Float](repeating: 0, count: counts[rank] + 1)
    var threw = false
    do {
        try send.withUnsafeBufferPointer { s in
            try wrong.withUnsafeMutableBufferPointer { try comm.reduceScatter(s, into: $0, counts: counts, op: .sum) }
        }
    } catch { threw = "\(error)".contains("receive buffer") }
    check("wrong receive size is reported, not corrupted", threw)

    for (optimizer, tolerance) in DataParallelEquivalence.unevenCases {
        try dataParallelEquivalence(optimizer: optimizer, tolerance: tolerance, uneven: true)
    }
    for (optimizer, tolerance) in DataParallelEquivalence.cases {
        try dataParallelEquivalence(optimizer: optimizer, tolerance: tolerance)
    }
    for family in StageEquivalence.allFamilies { try stageEquivalence(family.name, overrides: family.overrides) }
    try gptStageEquivalence()
    if world > 1 { try bf16GradientPayload() }
    try fullBatchEquivalence()
    try evolutionStrategyEquivalence()
    syncBatchNormEquivalence()
}

/// Synchronised batch norm: N ranks × b images, statistics all-reduced, equal one process holding all N·b images —
/// the loss, every layer's batch statistics, and the gradient summed over ranks. Every rank also computes the whole
/// batch alone (no communication) as the reference. fp32 sums in another order: the statistics agree to ~1e-6
/// relative and the gradients (through 8 normalisations) to ~1e-5; tolerance 1e-4·(1 + |value|). Without the
/// reducer the per-rank statistics must differ from the reference (the check can fail).
func syncBatchNormEquivalence() {
    let perRank = 3, rows = perRank * world
    func model() -> (ResNet, FloatBuffer) {
        let m = ResNet(imageChannels: 1, imageSide: 8, classes: 4, depth: 1, width: 4)
        let p = FloatBuffer(count: m.table.count)
        m.initializeParameters(p.buffer, seed: 41)
        return (m, p)
    }
    var rng = SplitMix64(seed: 42)
    let features = (0..<(rows * 64)).map { _ in rng.uniform(-1, 1) }
    let targets = (0..<rows).map { Int32($0 % 4) }
    func run(_ m: ResNet, _ p: FloatBuffer, first: Int, count: Int) -> (BatchResult, FloatBuffer) {
        let grads = FloatBuffer(count: m.table.count)
        let result = features.withUnsafeBufferPointer { f in targets.withUnsafeBufferPointer { t in
            m.forwardBackward(params: p.pointer, grads: grads.pointer,
                              batch: ModelBatch(features: f.baseAddress! + first * 64, targets: t.baseAddress! + first, rows: count),
                              lossScale: 1 / Float(rows))
        } }
        return (result, grads)
    }
    let (whole, wholeParams) = model()
    let (reference, referenceGrads) = run(whole, wholeParams, first: 0, count: rows)
    let (synced, syncedParams) = model()
    let reducer = CommunicatorStatisticsReducer(comm: comm)
    synced.statisticsReducer = reducer
    var (local, grads) = run(synced, syncedParams, first: rank * perRank, count: perRank)
    func close(_ a: Float, _ b: Float) -> Bool { abs(a - b) <= 1e-4 * (1 + abs(b)) }
    var statsAgree = true
    for (s, r) in zip(synced.batchNormStates, whole.batchNormStates) {
        for c in 0..<s.channels where !close(s.mean[c], r.mean[c]) || !close(s.rstd[c], r.rstd[c]) { statsAgree = false }
    }
    check("sync batch norm: statistics of \(world)×\(perRank) images equal one process's \(rows)", statsAgree)
    check("sync batch norm: two all-reduces per batch-norm layer", reducer.calls == 2 * synced.batchNormStates.count, "\(reducer.calls)")
    let lossSum = (try? comm.allReduce(local.lossSum, op: .sum)) ?? .nan
    check("sync batch norm: loss sum over ranks", abs(lossSum - reference.lossSum) <= 1e-4 * abs(reference.lossSum),
          "\(lossSum) vs \(reference.lossSum)")
    do { try comm.allReduce(grads.buffer, op: .sum) } catch { check("sync batch norm: gradient all-reduce", false, "\(error)") }
    let mismatch = (0..<grads.count).first { !close(grads[$0], referenceGrads[$0]) }
    check("sync batch norm: gradient summed over ranks equals one process's",
          mismatch == nil, mismatch.map { "element \($0): \(grads[$0]) vs \(referenceGrads[$0])" } ?? "")
    if world > 1 {
        let (alone, aloneParams) = model()
        (local, grads) = run(alone, aloneParams, first: rank * perRank, count: perRank)
        let differs = zip(alone.batchNormStates, whole.batchNormStates).contains { s, r in
            (0..<s.channels).contains { !close(s.mean[$0], r.mean[$0]) }
        }
        check("batch norm without sync: per-rank statistics differ from the whole batch's", differs)
    }
}

/// OpenAI-ES with its one loss all-reduce per generation over these ranks equals the same run in one process bit for
/// bit (the losses are combined by adding exact zeros), and a generation moves exactly P doubles per rank.
func evolutionStrategyEquivalence() throws {
    let d = 6, population = 24, generations = 15  // 12 antithetic pairs divide over 1, 2, 3 and 4 ranks
    let start = (0..<d).map { Float($0) * 0.5 - 1 }
    var segmentTable = ParameterTable()
    segmentTable.add("x", shape: [d], role: .bias)
    func run(_ exchange: PopulationExchange) throws -> [Float] {
        let es = start.withUnsafeBufferPointer {
            EvolutionStrategy(initial: $0, settings: .init(population: population, sigma: 0.5, seed: 3),
                              optimizer: Adam.make(count: d, name: "adam"),
                              segments: makeSegments(table: segmentTable, owned: 0..<d, weightDecay: { _ in 0 }),
                              noise: NoiseTable(count: 1 << 14, seed: 3))
        }
        for _ in 0..<generations { _ = try es.step(objective: RastriginFunction(dimension: d), exchange: exchange, lr: 0.05) }
        return es.mean.array
    }
    let exchange = CommunicatorPopulationExchange(comm: comm)
    let distributed = try run(exchange), local = try run(SingleProcessExchange())
    check("ES on \(world) ranks = one process after \(generations) generations (bit-identical), " +
          "\(exchange.bytesSent / generations) B per generation", distributed == local
          && exchange.bytesSent == generations * population * MemoryLayout<Double>.stride)
}

/// Full-batch L-BFGS and GD-Armijo on the logistic regression of docs/theory.md, the 200 samples spread over the
/// ranks (value and gradient all-reduced), against the same solve on all samples in this process. The two differ
/// only in the summation order of the data sums, which can tip a line search's acceptance near the end; both stop
/// at ‖∇f‖ < 1e-8, and μ-strong convexity (μ = 1) puts each within ‖∇f‖/μ = 1e-8 of w*, so they agree to 2e-8.
func fullBatchEquivalence() throws {
    let data = LogisticRegressionData.generate()
    let start = [Double](repeating: 0, count: data.features)
    for (name, solve) in [("L-BFGS", { (o: FullBatchObjective) in try LBFGS(gradientTolerance: 1e-8).minimize(o, from: start) }),
                          ("GD-Armijo", { (o: FullBatchObjective) in try GradientDescent(gradientTolerance: 1e-8).minimize(o, from: start) })] {
        let distributed = try solve(LogisticRegressionObjective(data: data, comm: comm))
        let local = try solve(LogisticRegressionObjective(data: data))
        let worst = zip(distributed.x, local.x).map { abs($0 - $1) }.max()!
        check("\(name) on the full batch spread over \(world) ranks = one process (\(distributed.iterations) iterations, " +
              "max |Δw| \(worst) ≤ 2e-8)", worst <= 2e-8 && distributed.stop == .converged && local.stop == .converged)
    }
}

/// ZeRO stages 1, 2 and 3 equal stage 0 on these ranks (TestSupport.StageEquivalence: families, config, tolerance
/// shared with the simulated-rank test); stage 1 holds less optimizer state per rank, stage 3 fewer parameters.
func stageEquivalence(_ family: String, overrides: [String]) throws {
    let data = StageEquivalence.data()
    let runs = try (0...3).map { try StageEquivalence.train(stage: $0, overrides: overrides, comm: comm, data: data) }
    let stateBytes = runs.map { $0.summary.optimizerStateBytesPerRank.max()! }
    let parameterBytes = runs.map { $0.summary.parameterBytesPerRank.max()! }
    for stage in 1...3 {
        let worst = StageEquivalence.worstRelativeDifference(runs[stage].params, runs[0].params)
        check("\(family): stage \(stage) = stage 0 after \(StageEquivalence.steps) steps on \(world) ranks " +
              "(max rel. diff \(worst) ≤ \(StageEquivalence.tolerance))", worst <= StageEquivalence.tolerance)
    }
    if world > 1 {
        check("\(family): stage 1 state per rank \(stateBytes[1]) B < stage 0 \(stateBytes[0]) B", stateBytes[1] < stateBytes[0] || stateBytes[0] == 0)
        check("\(family): stage 3 parameters per rank \(parameterBytes[3]) B < stage 2 \(parameterBytes[2]) B", parameterBytes[3] < parameterBytes[2])
    }
}

/// The GPT at stages 1–3 equals stage 0 on these ranks (the families and tolerance of the simulated-rank test), and
/// every rank ends with the same masters bit for bit.
func gptStageEquivalence() throws {
    let corpus = try StageEquivalence.gptCorpus()
    for (family, overrides) in StageEquivalence.gptFamilies {
        let runs = try (0...3).map { try StageEquivalence.trainGPT(stage: $0, overrides: overrides, comm: comm, corpus: corpus) }
        for stage in 1...3 {
            let worst = StageEquivalence.worstRelativeDifference(runs[stage].params, runs[0].params)
            var highs = runs[stage].params, lows = runs[stage].params
            try comm.allReduce(&highs, op: .max)
            try comm.allReduce(&lows, op: .min)
            check("\(family): stage \(stage) = stage 0 after 6 steps on \(world) ranks (max rel. diff \(worst) ≤ " +
                  "\(StageEquivalence.tolerance)), bit-identical on every rank", worst <= StageEquivalence.tolerance && highs == lows)
        }
    }
}

/// `zero.comm_dtype: bf16` through the real direct exchange, at stage 2 with SGD + momentum (linear in the
/// gradient): within 1e-3 of fp32 payloads and not equal to them (Tests/TrainingTests/PrecisionTrainingTests.swift,
/// GradientPayloadTests, states the bound), with exactly half the gradient bytes sent.
func bf16GradientPayload() throws {
    let data = StageEquivalence.data(), sgd = StageEquivalence.families[0].overrides
    let fp32 = try StageEquivalence.train(stage: 2, overrides: sgd, comm: comm, data: data)
    let bf16 = try StageEquivalence.train(stage: 2, overrides: sgd + ["zero.comm_dtype=bf16"], comm: comm, data: data)
    let worst = zip(bf16.params, fp32.params).map { abs($0 - $1) }.max()!
    let bytes = (fp32.summary.gradientBytesSentPerStep, bf16.summary.gradientBytesSentPerStep)
    check("zero.comm_dtype bf16 at stage 2 on \(world) ranks: max |Δθ| \(worst) in (0, 1e-3], bytes/step \(bytes.0) → \(bytes.1)",
          worst > 0 && worst <= 1e-3 && bytes.1 * 2 == bytes.0 && bytes.1 > 0)
}

func expectedSumAt(_ i: Int) -> Float { (0..<world).reduce(Float(0)) { $0 + contribution($1, i) } }

/// Data-parallel equivalence with real collectives (TestSupport.DataParallelEquivalence): every rank ends with
/// bit-identical parameters, equal to one rank with the whole batch within the case's tolerance; `uneven`: a global
/// batch of 256 in ⌈⌉/⌊⌋ shares with 3 unequal micro-batches per rank.
func dataParallelEquivalence(optimizer: String, tolerance: Float, uneven: Bool = false) throws {
    let data = DataParallelEquivalence.data()
    let (params, summary) = try DataParallelEquivalence.trainDistributed(optimizer: optimizer, comm: comm, data: data,
                                                                         uneven: uneven)

    // Identical on every rank (bitwise): max and min over ranks agree element by element.
    var highs = params, lows = params
    try comm.allReduce(&highs, op: .max)
    try comm.allReduce(&lows, op: .min)
    check("\(optimizer): parameters bit-identical on all \(world) ranks", highs == lows)

    var worst: Float = 0
    if rank == 0 {
        let single = try DataParallelEquivalence.trainSingle(optimizer: optimizer, world: world, data: data, uneven: uneven)
        worst = StageEquivalence.worstRelativeDifference(params, single)
    }
    worst = try comm.allReduce(worst, op: .max)
    let b = DataParallelEquivalence.perRankBatch, B = DataParallelEquivalence.unevenGlobalBatch
    let split = uneven ? "batch \(B) as \(summary.perRankBatch)-row shares × \(DataParallelEquivalence.unevenGradAccum) micro-batches"
                       : "batch \(b)"
    check("\(optimizer): \(DataParallelEquivalence.steps) steps on \(world) ranks × \(split) = 1 rank × batch \(uneven ? B : b * world) " +
          "(max rel. diff \(worst) ≤ \(tolerance))", worst <= tolerance && summary.skippedSteps == 0)
}

}

let launch = LaunchEnvironment.current()
_ = launch.configureBLASThreads()
do { try MPIRuntime.initialize() } catch { printError("MPI_Init failed: \(error)"); exit(1) }
let checks: Checks
do { checks = Checks(comm: try MPICommunicator()) } catch { printError("\(error)"); MPIRuntime.abort(code: 1) }
do { try checks.runChecks() } catch {
    printError("rank \(checks.rank): error: \(error)")
    MPIRuntime.abort(code: 1)
}
if checks.rank == 0 { print("mpi-checks (\(checks.world) ranks): \(checks.passed) passed, \(checks.failed) failed") }
MPIRuntime.finalize()
exit(checks.failed == 0 ? 0 : 1)
