import CMPI
import Foundation

/// The MPI runtime of this process. `initialize()` once, before any `MPICommunicator` is used; `finalize()` at exit.
/// A binary started without `mpirun` is a 1-rank world.
public enum MPIRuntime {
    /// Initializes MPI (thread level FUNNELED: only the main thread calls MPI) and makes errors on
    /// MPI_COMM_WORLD return codes instead of aborting, so every call site can report what failed.
    public static func initialize() throws {
        var flag: Int32 = 0
        try check(MPI_Initialized(&flag), "MPI_Initialized")
        if flag != 0 { return }
        applyCollectiveTuning()
        var provided: Int32 = 0
        try Watchdog.waiting("MPI_Init") {
            try check(MPI_Init_thread(nil, nil, swt_thread_funneled(), &provided), "MPI_Init_thread")
        }
        try check(MPI_Comm_set_errhandler(swt_comm_world(), swt_errors_return()), "MPI_Comm_set_errhandler")
    }

    /// Open MPI's non-blocking all-reduce (coll/libnbc) picks, by default, the binomial algorithm — reduce everything
    /// onto one rank, then broadcast — for any in-place call or fewer than 4 ranks, which is every gradient bucket
    /// here: the reduction is serialised on the root and each rank moves the whole bucket twice. The reduce-scatter +
    /// all-gather algorithm (3, Rabenseifner) spreads the reduction over the ranks. Measured on 2 ranks, four
    /// in-place 2 MiB buckets: binomial 2.4–6.7 ms, Rabenseifner 1.0–2.0 ms; end to end +7% samples/s at
    /// stage 0 (`launch/compare`, 3 runs each: 13,893 → 14,836; docs/benchmarks.md). Set before MPI_Init, and only where the user has not chosen
    /// (`OMPI_MCA_coll_libnbc_iallreduce_algorithm` in the environment wins); other MPI libraries ignore it.
    public static let collectiveTuning = ["OMPI_MCA_coll_libnbc_iallreduce_algorithm": "3"]

    private static func applyCollectiveTuning() {
        for (name, value) in collectiveTuning { setenv(name, value, 0) }
    }

    public static var isInitialized: Bool {
        var flag: Int32 = 0
        MPI_Initialized(&flag)
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        return flag != 0 && finalized == 0
    }

    public static func finalize() {
        if isInitialized { MPI_Finalize() }
    }

    /// Ends every rank of the job with `code` (use after an error that leaves ranks out of step).
    public static func abort(code: Int32) -> Never {
        if isInitialized { MPI_Abort(swt_comm_world(), code) }
        exit(code)
    }

    /// The MPI library's own version line, e.g. "Open MPI v4.1.4, ...".
    public static var libraryVersion: String {
        var buffer = [CChar](repeating: 0, count: Int(swt_max_library_version_string()) + 1)
        var length: Int32 = 0
        MPI_Get_library_version(&buffer, &length)
        buffer[min(Int(length), buffer.count - 1)] = 0
        let line = String(cString: buffer).trimmingCharacters(in: .whitespacesAndNewlines.union(.controlCharacters))
        return line.split(whereSeparator: \.isNewline).first.map(String.init) ?? line
    }

    /// Wall-clock seconds (MPI_Wtime), comparable across calls on one rank.
    public static func wallTime() -> Double { MPI_Wtime() }

    static func check(_ code: Int32, _ call: String) throws {
        guard code != swt_success() else { return }
        var buffer = [CChar](repeating: 0, count: Int(swt_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        let text = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw CommunicationError(call: call, message: "\(text) (MPI error code \(code))")
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// MPI_COMM_WORLD behind the `Communicator` protocol. Every return code is checked and turned into a thrown error.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    let comm: MPI_Comm  // internal: RankGroups.swift splits it
    private var tagCounter = 0
    private var scratchPool: [ScratchBuffer] = []
    private var activeDirect: [DirectRequest] = []

    /// The world communicator; `MPIRuntime.initialize()` must have been called.
    public init() throws {
        comm = swt_comm_world()
        var r: Int32 = 0, s: Int32 = 0
        try MPIRuntime.check(MPI_Comm_rank(comm, &r), "MPI_Comm_rank")
        try MPIRuntime.check(MPI_Comm_size(comm, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
    }

    /// A communicator made by `split` (RankGroups.swift); the new one inherits the parent's error handler.
    init(splitFrom handle: MPI_Comm) throws {
        comm = handle
        var r: Int32 = 0, s: Int32 = 0
        try MPIRuntime.check(MPI_Comm_rank(comm, &r), "MPI_Comm_rank")
        try MPIRuntime.check(MPI_Comm_size(comm, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
    }

    private static func datatype(_ kind: ScalarKind) -> MPI_Datatype {
        switch kind {
        case .float32: return swt_type_float()
        case .float64: return swt_type_double()
        case .int32: return swt_type_int32()
        case .int64: return swt_type_int64()
        case .uint8: return swt_type_uint8()
        case .uint16: return swt_type_uint16()
        }
    }

    private static func mpiOp(_ op: ReduceOp) -> MPI_Op {
        switch op {
        case .sum: return swt_op_sum()
        case .max: return swt_op_max()
        case .min: return swt_op_min()
        }
    }

    private func int32Count(_ n: Int, _ call: String) throws -> Int32 {
        guard n >= 0, n <= Int(Int32.max) else {
            throw CommunicationError(call: call, message: "count \(n) does not fit MPI's 32-bit count; split the buffer")
        }
        return Int32(n)
    }

    public func allReduce<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp) throws {
        let n = try int32Count(buffer.count, "MPI_Allreduce")
        try Watchdog.collective("MPI_Allreduce") {
            try MPIRuntime.check(MPI_Allreduce(swt_in_place(), buffer.baseAddress, n, Self.datatype(T.scalarKind),
                                               Self.mpiOp(op), comm), "MPI_Allreduce")
        }
    }

    public func reduceScatter<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>,
                                                   counts: [Int], op: ReduceOp) throws {
        let c = try reduceScatterCounts(send: send.count, receive: receive.count, counts: counts)
        try Watchdog.collective("MPI_Reduce_scatter") {
            try MPIRuntime.check(MPI_Reduce_scatter(send.baseAddress, receive.baseAddress, c, Self.datatype(T.scalarKind),
                                                    Self.mpiOp(op), comm), "MPI_Reduce_scatter")
        }
    }

    public func allGather<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>,
                                               counts: [Int]) throws {
        let (c, d) = try gatherLayout(counts: counts, total: receive.count, mine: send.count, call: "MPI_Allgatherv")
        try Watchdog.collective("MPI_Allgatherv") {
            try MPIRuntime.check(MPI_Allgatherv(send.baseAddress, c[rank], Self.datatype(T.scalarKind), receive.baseAddress,
                                                c, d, Self.datatype(T.scalarKind), comm), "MPI_Allgatherv")
        }
    }

    public func allGatherInPlace<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, counts: [Int]) throws {
        let (c, d) = try gatherLayout(counts: counts, total: buffer.count, mine: counts[safe: rank] ?? -1,
                                      call: "MPI_Allgatherv")
        try Watchdog.collective("MPI_Allgatherv") {
            try MPIRuntime.check(MPI_Allgatherv(swt_in_place(), 0, Self.datatype(T.scalarKind), buffer.baseAddress,
                                                c, d, Self.datatype(T.scalarKind), comm), "MPI_Allgatherv")
        }
    }

    public func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        let n = try int32Count(buffer.count, "MPI_Bcast")
        try Watchdog.collective("MPI_Bcast") {
            try MPIRuntime.check(MPI_Bcast(buffer.baseAddress, n, Self.datatype(T.scalarKind), Int32(root), comm), "MPI_Bcast")
        }
    }

    public func barrier() throws {
        try Watchdog.collective("MPI_Barrier") { try MPIRuntime.check(MPI_Barrier(comm), "MPI_Barrier") }
    }

    public func iAllReduce<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp) throws -> CollectiveRequest {
        let n = try int32Count(buffer.count, "MPI_Iallreduce")
        let request = MPIRequest(call: "MPI_Iallreduce")
        Watchdog.started()
        try MPIRuntime.check(MPI_Iallreduce(swt_in_place(), buffer.baseAddress, n, Self.datatype(T.scalarKind),
                                            Self.mpiOp(op), comm, &request.handle), "MPI_Iallreduce")
        return request
    }

    public func iReduceScatter<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>,
                                                    counts: [Int], op: ReduceOp) throws -> CollectiveRequest {
        let request = MPIRequest(call: "MPI_Ireduce_scatter")
        Watchdog.started()
        request.counts = try reduceScatterCounts(send: send.count, receive: receive.count, counts: counts)
        try MPIRuntime.check(MPI_Ireduce_scatter(send.baseAddress, receive.baseAddress, request.counts,
                                                 Self.datatype(T.scalarKind), Self.mpiOp(op), comm, &request.handle),
                             "MPI_Ireduce_scatter")
        return request
    }

    public func iAllGatherInPlace<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, counts: [Int]) throws -> CollectiveRequest {
        let request = MPIRequest(call: "MPI_Iallgatherv")
        Watchdog.started()
        (request.counts, request.displacements) = try gatherLayout(counts: counts, total: buffer.count,
                                                                   mine: counts[safe: rank] ?? -1, call: "MPI_Iallgatherv")
        try MPIRuntime.check(MPI_Iallgatherv(swt_in_place(), 0, Self.datatype(T.scalarKind), buffer.baseAddress,
                                             request.counts, request.displacements, Self.datatype(T.scalarKind), comm,
                                             &request.handle), "MPI_Iallgatherv")
        return request
    }

    // MARK: - Point-to-point pieces of the direct collectives (DirectCollectives.swift)

    /// A tag for the next direct collective phase: the counter advances identically on every rank.
    func nextTag() -> Int32 {
        tagCounter = (tagCounter + 1) % 32_767  // MPI guarantees tags up to 32767 (MPI_TAG_UB ≥ 32767)
        return Int32(tagCounter)
    }

    func postSend<T: CollectiveScalar>(_ data: UnsafePointer<T>, count: Int, to peer: Int, tag: Int32, call: String) throws -> MPI_Request? {
        var handle: MPI_Request? = swt_request_null()
        try MPIRuntime.check(MPI_Isend(data, try int32Count(count, call), Self.datatype(T.scalarKind), Int32(peer), tag, comm, &handle),
                             "MPI_Isend(\(call))")
        return handle
    }

    func postReceive<T: CollectiveScalar>(_ data: UnsafeMutablePointer<T>, count: Int, from peer: Int, tag: Int32, call: String) throws -> MPI_Request? {
        var handle: MPI_Request? = swt_request_null()
        try MPIRuntime.check(MPI_Irecv(data, try int32Count(count, call), Self.datatype(T.scalarKind), Int32(peer), tag, comm, &handle),
                             "MPI_Irecv(\(call))")
        return handle
    }

    func takeScratch(bytes: Int) -> ScratchBuffer {
        if let i = scratchPool.firstIndex(where: { $0.capacity >= bytes }) { return scratchPool.remove(at: i) }
        return ScratchBuffer(bytes: bytes)
    }

    func returnScratch(_ buffer: ScratchBuffer) { scratchPool.append(buffer) }

    /// Keeps a direct collective in the progress list until it completes.
    func register(_ request: DirectRequest) {
        Watchdog.started()
        if !request.isComplete { activeDirect.append(request) }
    }

    /// One pass over every direct collective in flight (see `DirectRequest.test`).
    func progressDirectRequests() throws {
        for request in activeDirect { try request.advance() }
        activeDirect.removeAll { $0.isComplete }
    }

    // MARK: - Layout checks (before the call, so a wrong layout is an error rather than memory corruption)

    private func reduceScatterCounts(send: Int, receive: Int, counts: [Int]) throws -> [Int32] {
        try checkCounts(counts, call: "MPI_Reduce_scatter")
        let total = counts.reduce(0, +)
        guard send == total else {
            throw CommunicationError(call: "MPI_Reduce_scatter", message: "send buffer has \(send) elements, counts sum to \(total)")
        }
        guard receive == counts[rank] else {
            throw CommunicationError(call: "MPI_Reduce_scatter",
                                     message: "receive buffer has \(receive) elements, rank \(rank)'s count is \(counts[rank])")
        }
        return counts.map { Int32($0) }
    }

    private func gatherLayout(counts: [Int], total: Int, mine: Int, call: String) throws -> ([Int32], [Int32]) {
        try checkCounts(counts, call: call)
        guard counts.reduce(0, +) == total, total <= Int(Int32.max) else {
            throw CommunicationError(call: call, message: "receive buffer has \(total) elements, counts sum to \(counts.reduce(0, +))")
        }
        guard mine == counts[rank] else {
            throw CommunicationError(call: call, message: "send has \(mine) elements, rank \(rank)'s count is \(counts[rank])")
        }
        return (counts.map { Int32($0) }, displacements(of: counts).map { Int32($0) })
    }
}

/// An MPI request plus the count/displacement arrays MPI reads until the operation completes
/// (MPI requires them to outlive a non-blocking variable-count collective).
final class MPIRequest: CollectiveRequest {
    var handle: MPI_Request? = swt_request_null()
    var counts: [Int32] = []
    var displacements: [Int32] = []
    private var done = false
    let call: String

    init(call: String) { self.call = call }

    func wait() throws {
        if done { return }
        try Watchdog.waiting("MPI_Wait(\(call))") {
            try MPIRuntime.check(MPI_Wait(&handle, swt_status_ignore()), "MPI_Wait(\(call))")
        }
        done = true
    }

    func test() throws -> Bool {
        if done { return true }
        var flag: Int32 = 0
        try MPIRuntime.check(MPI_Test(&handle, &flag, swt_status_ignore()), "MPI_Test(\(call))")
        done = flag != 0
        return done
    }

    deinit {
        // A request dropped without completion would leave MPI writing into freed memory; complete it here.
        if !done { Watchdog.waiting("MPI_Wait(\(call))") { _ = MPI_Wait(&handle, swt_status_ignore()) } }
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
