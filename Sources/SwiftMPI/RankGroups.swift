import CMPI
import Foundation

// Pieces for running several independent trainings side by side in one job (the sweep's and search's rank groups):
// splitting the world into sub-communicators, and small point-to-point messages that are waited for by polling with
// a sleep, because Open MPI's MPI_Wait spins a core at 100 % — wrong for a rank that only waits for its next point.

/// Point-to-point messages of a few `Int64`s (the rank-group scheduler's requests and replies) and communicator
/// splitting. `MPICommunicator` implements them over MPI; other communicators throw (they are single-group).
public protocol GroupingCommunicator: Communicator {
    /// MPI_Comm_split: ranks with the same `color` form a new communicator, ordered by `key` (collective over this
    /// communicator: every rank calls it).
    func split(color: Int, key: Int) throws -> Communicator
    /// Starts sending `message` to `peer` with `tag`; the array is kept alive by the request.
    func send(_ message: [Int64], to peer: Int, tag: Int) throws -> CollectiveRequest
    /// Starts receiving `count` values from `peer` with `tag`; `MessageRequest.values` holds them once complete.
    func receive(count: Int, from peer: Int, tag: Int) throws -> MessageRequest
}

/// A posted receive of a few `Int64`s.
public protocol MessageRequest: CollectiveRequest {
    /// The received values (valid once `test()` returned true or `wait()` returned).
    var values: [Int64] { get }
}

extension CollectiveRequest {
    /// Waits for completion without spinning: MPI_Test, then sleep `interval` seconds, until done. For ranks that
    /// wait long (for a point to train, or for the other groups to finish), not for collectives on the step path.
    public func waitSleeping(interval: Double = 0.002) throws {
        var pause = timespec(tv_sec: 0, tv_nsec: Int(interval * 1e9))
        while try !test() { nanosleep(&pause, nil) }
    }
}

extension MPICommunicator: GroupingCommunicator {
    public func split(color: Int, key: Int) throws -> Communicator {
        var handle: MPI_Comm? = swt_comm_null()
        try MPIRuntime.check(MPI_Comm_split(comm, Int32(color), Int32(key), &handle), "MPI_Comm_split")
        guard let handle else { throw CommunicationError(call: "MPI_Comm_split", message: "no communicator returned") }
        return try MPICommunicator(splitFrom: handle)
    }

    public func send(_ message: [Int64], to peer: Int, tag: Int) throws -> CollectiveRequest {
        let request = MessageBuffer(values: message, call: "MPI_Isend")
        request.request.handle = try postSend(UnsafePointer(request.storage.baseAddress!), count: message.count, to: peer,
                                      tag: Int32(tag), call: "message")
        return request
    }

    public func receive(count: Int, from peer: Int, tag: Int) throws -> MessageRequest {
        let request = MessageBuffer(values: [Int64](repeating: 0, count: count), call: "MPI_Irecv")
        request.request.handle = try postReceive(request.storage.baseAddress!, count: count, from: peer, tag: Int32(tag), call: "message")
        return request
    }
}

/// A message request that owns its buffer (allocated, so its address is fixed while MPI reads or writes it).
final class MessageBuffer: MessageRequest {
    let storage: UnsafeMutableBufferPointer<Int64>
    let request: MPIRequest

    init(values: [Int64], call: String) {
        storage = .allocate(capacity: max(values.count, 1))
        storage.initialize(repeating: 0)
        _ = storage.initialize(from: values)
        request = MPIRequest(call: call)
    }

    var values: [Int64] { Array(storage) }

    func wait() throws { try waitSleeping() }

    func test() throws -> Bool { try request.test() }

    deinit {
        // Complete before the buffer goes (a dropped request would leave MPI writing into freed memory).
        try? request.wait()
        storage.deallocate()
    }
}
