import Foundation
import SwiftMPI
import Training

// MARK: - Rank groups

// `--ranks-per-trial k` splits the job's N ranks into N/k groups (world ranks g·k ..< (g+1)·k form group g, its
// leader is world rank g·k). Each group trains one point at a time on its own communicator; world rank 0 — group 0's
// leader, which also trains — hands points out one by one, so fast and slow points balance over the groups.
//
// Protocol (point-to-point on the world communicator; training only ever communicates on the group communicators):
//   leader → rank 0   request [finished point or -1, 1 if the group was stopped by a signal else 0]
//   rank 0 → leader   reply   [next point index, or -1: no more]
//   leader → its mates        [the same index] (the mates train it with the leader, or stop on -1)
//   rank 0 → every rank       release, once every group has been told -1 (then all finalize together)
// Rank 0 answers requests between its own training steps (`Trainer.betweenSteps`) and between points: MPI is
// initialized FUNNELED, so no second thread may call MPI. Every wait polls MPI_Test with a sleep (`waitSleeping`):
// a rank with nothing left to do takes no core from the ranks still training.
// Results: each leader writes its points' run directories (the sweep directory must be on a file system every rank
// sees, as on a cluster); rank 0 reads a finished point's summary.json when its leader reports it, and rewrites
// results.csv atomically after each point.

/// Message tags on the world communicator.
enum GroupTag {
    static let request = 32_001, reply = 32_002, release = 32_003
}

extension SweepRunner {
    func runInGroups(world: GroupingCommunicator) throws -> [SweepRow] {
        if world.rank == 0 { return try coordinate(world: world) }
        let k = comm.size, leader = (world.rank / k) * k
        var stop: TrainingStopped?
        if comm.rank == 0 {
            let shared = sweepPath.map { SweepDirectory(sharedPath: $0, plan: plan) }
            var finished: Int64 = -1
            while true {
                try world.send([finished, stop == nil ? 0 : 1], to: 0, tag: GroupTag.request).waitSleeping()
                let reply = try world.receive(count: 1, from: 0, tag: GroupTag.reply)
                try reply.waitSleeping()
                let next = reply.values[0]
                try tellMates(next, world: world, leader: leader)
                if next < 0 { break }
                finished = -1
                do {
                    _ = try runPoint(plan.points[Int(next)], directory: shared)
                    finished = next
                } catch TrainingStopped.signal(let sig, let step) {
                    stop = .signal(sig, step: step)
                }
            }
        } else {
            while true {
                let message = try world.receive(count: 1, from: leader, tag: GroupTag.reply)
                try message.waitSleeping()
                let next = message.values[0]
                if next < 0 { break }
                do { _ = try runPoint(plan.points[Int(next)]) } catch TrainingStopped.signal(let sig, let step) {
                    stop = .signal(sig, step: step)
                }
            }
        }
        try world.receive(count: 1, from: 0, tag: GroupTag.release).waitSleeping()
        if let stop { throw stop }
        return []
    }

    /// Sends `next` to the other ranks of the group led by world rank `leader`.
    private func tellMates(_ next: Int64, world: GroupingCommunicator, leader: Int) throws {
        let sends = try (leader + 1 ..< leader + comm.size).map { try world.send([next], to: $0, tag: GroupTag.reply) }
        for s in sends { try s.waitSleeping() }
    }

    /// World rank 0: hands out points, trains group 0's share, records every group's results.
    private func coordinate(world: GroupingCommunicator) throws -> [SweepRow] {
        let k = comm.size, total = plan.points.count, width = String(total).count
        var rows: [Int: SweepRow] = [:]
        if let directory {
            for i in directory.finished.sorted() {
                let row = try directory.row(for: plan.points[i])
                rows[i] = row
                console?.line(String(format: "[%\(width)d/%d] ", i + 1, total) + "\(plan.points[i].label): finished earlier — \(Self.describe(row))")
            }
        }
        // Phase 1: the queue, in plan order, of points not finished earlier.
        let queue = plan.points.map(\.index).filter { rows[$0] == nil }
        var taken = 0
        var stopSeen = false
        var ownStop: TrainingStopped?
        var pending: [Int: MessageRequest] = [:]  // leader → its posted request
        for leader in stride(from: k, to: world.size, by: k) {
            pending[leader] = try world.receive(count: 2, from: leader, tag: GroupTag.request)
        }
        var replies: [CollectiveRequest] = []

        func take() -> Int64 {
            if stopSeen || StopRequest.isPending || taken == queue.count { return -1 }
            taken += 1
            return Int64(queue[taken - 1])
        }
        func record(_ index: Int, group: Int) throws {
            guard let directory else { return }
            let point = plan.points[index]
            let row = try directory.row(for: point)
            rows[index] = row
            try directory.writeResults(rows.keys.sorted().map { rows[$0]! })
            console?.line(String(format: "[%\(width)d/%d] ", index + 1, total) +
                          "\(point.label) (group \(group), \(k) rank\(k == 1 ? "" : "s")): \(Self.describe(row))")
        }
        // Answers every leader whose request has arrived: records its finished point, replies with the next one.
        func serve() throws {
            for leader in pending.keys.sorted() {
                guard let request = pending[leader], try request.test() else { continue }
                let message = request.values
                if message[0] >= 0 { try record(Int(message[0]), group: leader / k) }
                if message[1] != 0 { stopSeen = true }
                let next = take()
                replies.append(try world.send([next], to: leader, tag: GroupTag.reply))
                pending[leader] = next < 0 ? nil : try world.receive(count: 2, from: leader, tag: GroupTag.request)
            }
            replies = try replies.filter { try !$0.test() }
        }

        // Phase 2: group 0 trains while rank 0 serves the other groups between its steps.
        while true {
            try serve()
            let next = ownStop == nil ? take() : -1
            try tellMates(next, world: world, leader: 0)
            if next < 0 { break }
            do {
                _ = try runPoint(plan.points[Int(next)], betweenSteps: serve)
                try record(Int(next), group: 0)
            } catch TrainingStopped.signal(let sig, let step) {
                ownStop = .signal(sig, step: step)
                stopSeen = true
            }
        }
        // Phase 3: wait (sleeping) until every other group has been told there is nothing left, then release all.
        var pause = timespec(tv_sec: 0, tv_nsec: 2_000_000)
        while !pending.isEmpty {
            try serve()
            if !pending.isEmpty { nanosleep(&pause, nil) }
        }
        for r in replies { try r.waitSleeping() }
        let releases = try (1..<world.size).map { try world.send([0], to: $0, tag: GroupTag.release) }
        for r in releases { try r.waitSleeping() }

        let ordered = rows.keys.sorted().map { rows[$0]! }
        try directory?.writeResults(ordered)
        if let ownStop { throw ownStop }
        if stopSeen || StopRequest.isPending { throw TrainingStopped.signal(SIGTERM, step: 0) }
        return ordered
    }
}

/// Checking and forming the rank groups of `--ranks-per-trial`.
public enum RankGroups {
    /// The group size for `ranksPerTrial` (nil: the whole world); thrown before MPI starts when it does not divide
    /// the world size, so every rank reports it and none communicates.
    public static func groupSize(_ ranksPerTrial: Int?, worldSize: Int) throws -> Int {
        guard let k = ranksPerTrial else { return worldSize }
        guard k >= 1, k <= worldSize, worldSize % k == 0 else {
            let divisors = (1...worldSize).filter { worldSize % $0 == 0 }.map(String.init).joined(separator: ", ")
            throw ConfigError("--ranks-per-trial \(k) does not divide the world size \(worldSize) into equal groups: " +
                              "use one of \(divisors), or launch a multiple of \(max(k, 1)) ranks")
        }
        return k
    }

    /// This rank's group communicator (collective over `world`): the world itself when one group holds every rank.
    public static func split(_ world: GroupingCommunicator, groupSize: Int) throws -> Communicator {
        guard groupSize < world.size else { return world }
        return try world.split(color: world.rank / groupSize, key: world.rank)
    }
}
