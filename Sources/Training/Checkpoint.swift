import Datasets
import Distributed
import Foundation
import Optimizers
import Tensors

/// Sharded checkpoints (docs/checkpoints.md).
///
/// A checkpoint is a directory `checkpoints/step-NNNNNNNN/` in the run directory:
/// - `params.bin` (rank 0): every parameter tensor, by name;
/// - `state-rank-RRRRR.bin` (every rank that owns optimizer state): its optimizer state, one record per
///   (state name, tensor, element offset) — generic names, so any optimizer (Muon, LAMB, Shampoo, …) re-shards;
/// - `manifest.json` (rank 0, written last): format and version, step, world size, ZeRO stage, the parameter table,
///   the shard plan, each group's optimizer, state names and step count, the data position, the resolved
///   configuration, and the size and CRC-32 of every file.
/// The directory is assembled under a temporary name and renamed into place only when complete, so a crash leaves
/// either the previous checkpoints or a complete new one; older checkpoints beyond `checkpoint.keep` are removed only
/// after that.
public enum Checkpoint {
    public static let format = "swift-train-checkpoint"
    public static let version = 1
    static let recordMagic: [UInt8] = Array("STRNRECS".utf8)

    // MARK: Manifest

    public struct FileEntry: Codable, Equatable, Sendable {
        public var name: String
        public var bytes: Int
        public var crc32: UInt32
    }

    public struct GroupEntry: Codable, Equatable, Sendable {
        public var name: String
        public var sharding: String
        public var range: [Int]
        public var counts: [Int]
        public var owners: [String: Int]
        public var stateNames: [String]
        public var stepCount: Int
    }

    public struct Manifest: Codable, Equatable, Sendable {
        public var format: String
        public var version: Int
        public var step: Int
        public var worldSize: Int
        public var zeroStage: Int
        public var model: String
        public var table: [TensorEntry]
        public var groups: [GroupEntry]
        /// Data position: the sampler is a pure function of (seed, step), so the step and seed are the whole state.
        public var dataSeed: UInt64
        public var dataStep: Int
        public var skippedSteps: Int
        public var consecutiveBadSteps: Int
        public var config: String
        public var files: [FileEntry]
        /// The batch schedule's state (batch, data position in examples, noise-scale averages); absent in
        /// checkpoints written before batch schedules existed (a fixed batch: the step is the position).
        public var batchSchedule: BatchScheduleState?
        public var created: String
        /// CRC-32 of this manifest encoded without the checksum (`encodedForChecksum`), so a damaged or hand-edited
        /// manifest is rejected like a damaged data file.
        public var checksum: UInt32?

        /// The canonical bytes the checksum covers: sorted keys, no checksum field.
        func encodedForChecksum() throws -> Foundation.Data {
            var unsigned = self
            unsigned.checksum = nil
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            return try encoder.encode(unsigned)
        }

        /// Every field in range and consistent with the others (a manifest is input: it may be damaged or edited),
        /// so nothing later indexes out of bounds, loops from a step past the end, or trusts a negative count.
        /// Returns the first problem, naming the field.
        public func problem() -> String? {
            let maxSteps = TrainConfig.maxSteps
            guard (0...maxSteps).contains(step) else { return "step \(step) is outside 0…\(maxSteps)" }
            guard dataStep == step else { return "dataStep \(dataStep) differs from step \(step)" }
            guard (1...1 << 20).contains(worldSize) else { return "worldSize \(worldSize) is outside 1…\(1 << 20)" }
            guard (0...3).contains(zeroStage) else { return "zeroStage \(zeroStage) is not 0, 1, 2 or 3" }
            guard (0...step).contains(skippedSteps) else { return "skippedSteps \(skippedSteps) is outside 0…step (\(step))" }
            guard (0...skippedSteps).contains(consecutiveBadSteps) else {
                return "consecutiveBadSteps \(consecutiveBadSteps) is outside 0…skippedSteps (\(skippedSteps))"
            }
            var elements = 0
            for t in table {
                guard !t.shape.isEmpty, t.shape.allSatisfy({ (1...1 << 31).contains($0) }) else {
                    return "tensor '\(t.name)' has shape \(t.shape) (every dimension must be positive)"
                }
                guard t.offset >= 0, t.count <= 1 << 36 else { return "tensor '\(t.name)' has offset \(t.offset), \(t.count) elements" }
                elements = max(elements, t.offset + t.count)
            }
            for g in groups {
                guard (0...step).contains(g.stepCount) else {
                    return "group '\(g.name)' has stepCount \(g.stepCount), outside 0…step (\(step))"
                }
                guard g.range.count == 2, 0 <= g.range[0], g.range[0] <= g.range[1], g.range[1] <= elements else {
                    return "group '\(g.name)' has range \(g.range), outside the \(elements) parameters of the table"
                }
            }
            for f in files {
                // Only the names save writes: a name with a path in it would read a file outside the checkpoint.
                let isStateFile = f.name.hasPrefix("state-rank-") && f.name.hasSuffix(".bin") && !f.name.contains("/")
                guard f.name == "params.bin" || isStateFile else { return "file entry '\(f.name)' is not a checkpoint file name" }
                guard f.bytes >= 0 else { return "file '\(f.name)' has \(f.bytes) bytes" }
            }
            guard files.contains(where: { $0.name == "params.bin" }) else { return "no params.bin entry" }
            if let b = batchSchedule {
                guard (1...1 << 24).contains(b.globalBatch) else { return "batchSchedule.globalBatch \(b.globalBatch) is outside 1…\(1 << 24)" }
                guard b.examples >= 0, b.dataPosition >= b.examples, (0...step).contains(b.lastChange) else {
                    return "batchSchedule: examples \(b.examples), dataPosition \(b.dataPosition), lastChange \(b.lastChange) " +
                        "(need 0 ≤ examples ≤ dataPosition and lastChange in 0…step)"
                }
            }
            return nil
        }
    }

    // MARK: Record files

    /// A record file is: magic "STRNRECS", UInt32 version, UInt64 index length, JSON index
    /// [{state, tensor, offset, count}], then the float32 values of every record back to back (little-endian).
    struct IndexEntry: Codable { var state: String; var tensor: String; var offset: Int; var count: Int }

    /// Writes a record file durably (temporary name, fsync, rename) with `values` emitting each record's values in
    /// index order straight from where they are (no copy of the whole file in memory); returns its size and CRC-32.
    static func writeRecords(_ index: [IndexEntry], to path: String,
                             values: (_ emit: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws -> FileSum {
        // Sorted keys: the same records give the same bytes (an encoder's key order is not otherwise fixed).
        let indexEncoder = JSONEncoder()
        indexEncoder.outputFormatting = .sortedKeys
        let indexData = try indexEncoder.encode(index)
        var head = Foundation.Data(recordMagic)
        var version = UInt32(Checkpoint.version).littleEndian
        withUnsafeBytes(of: &version) { head.append(contentsOf: $0) }
        var length = UInt64(indexData.count).littleEndian
        withUnsafeBytes(of: &length) { head.append(contentsOf: $0) }
        head.append(indexData)
        var written = FileSum()
        try writeAtomically(to: path) { fd in
            func emit(_ bytes: UnsafeRawBufferPointer) throws {
                try writeAll(fd, bytes, path: path)
                written.crc32 = crc32(bytes, initial: written.crc32)
                written.bytes += bytes.count
            }
            try head.withUnsafeBytes(emit)
            try values(emit)
        }
        precondition(written.bytes == head.count + 4 * index.reduce(0) { $0 + $1.count }, "record values do not match the index")
        return written
    }

    static func decode(_ data: Foundation.Data, file: String) throws -> [TensorState] {
        func bad(_ why: String) -> CheckpointError { CheckpointError("\(file): \(why)") }
        guard data.count >= 20, Array(data.prefix(8)) == recordMagic else { throw bad("not a swift-train checkpoint file (bad magic)") }
        let version = data.subdata(in: 8..<12).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }.littleEndian
        guard Int(version) == Checkpoint.version else {
            throw bad("format version \(version); this swift-train reads version \(Checkpoint.version)")
        }
        let length = Int(data.subdata(in: 12..<20).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian)
        guard length <= data.count - 20 else { throw bad("truncated index") }
        let index = try JSONDecoder().decode([IndexEntry].self, from: data.subdata(in: 20..<(20 + length)))
        var position = 20 + length
        var records: [TensorState] = []
        for e in index {
            guard e.count >= 0, e.offset >= 0, e.count <= (data.count - position) / 4 else {
                throw bad("record \(e.state)/\(e.tensor) has offset \(e.offset) and \(e.count) values, more than the file holds")
            }
            let bytes = e.count * 4
            guard position + bytes <= data.count else { throw bad("truncated: record \(e.state)/\(e.tensor) runs past the end") }
            var values = [Float](repeating: 0, count: e.count)
            values.withUnsafeMutableBytes { dst in
                data.copyBytes(to: dst.bindMemory(to: UInt8.self), from: position..<(position + bytes))
            }
            records.append(TensorState(stateName: e.state, tensorName: e.tensor, offset: e.offset, values: values))
            position += bytes
        }
        return records
    }

    // MARK: Saving (collective: every rank calls it at the same step)

    /// What a checkpoint records beside the engine's state: the model and where training stands.
    public struct RunState: Sendable {
        public var step: Int
        public var model: String
        public var table: ParameterTable
        public var dataSeed: UInt64
        public var skippedSteps: Int
        public var consecutiveBadSteps: Int
        /// The resolved configuration (YAML), so `--resume` needs nothing else.
        public var config: String
        /// The batch schedule's state after `step`.
        public var batchSchedule: BatchScheduleState?
        public init(step: Int, model: String, table: ParameterTable, dataSeed: UInt64, skippedSteps: Int,
                    consecutiveBadSteps: Int, config: String) {
            self.step = step; self.model = model; self.table = table; self.dataSeed = dataSeed
            self.skippedSteps = skippedSteps; self.consecutiveBadSteps = consecutiveBadSteps; self.config = config
        }
    }

    /// Writes a checkpoint of `engine` after `run.step` completed steps into `runDirectory/checkpoints` and returns
    /// its directory once every rank knows it is complete. Collective: every rank calls it at the same step; the
    /// engine issues every collective. The four phases below can also be run apart (`checkpoint.async`:
    /// `BackgroundCheckpoint` writes and finishes in threads while training goes on).
    @discardableResult
    public static func save(_ engine: ShardedDataParallel, run: RunState, runDirectory: String, keep: Int) throws -> String {
        let taken = try snapshot(engine, run: run, runDirectory: runDirectory, keep: keep)
        if let files = try agree(taken, Result { try write(taken) }, engine: engine) { _ = try finish(taken, files: files) }
        try engine.synchronize()
        return taken.directory
    }

    /// A checkpoint taken at a step boundary and not yet on disk. It holds copies of everything it will write, so the
    /// engine's buffers may change (training goes on) while a thread writes it.
    public struct Snapshot: Sendable {
        public let step: Int
        let rank: Int, worldSize: Int, keep: Int
        let root: String, name: String
        /// This rank's optimizer-state records (the engine's export copies them).
        let records: [TensorState]
        /// Rank 0: a copy of the fp32 masters at the snapshot, written as `params.bin`; nil on other ranks.
        let masters: [Float]?
        /// Rank 0: the manifest as of the snapshot, before its file list, checksum and creation time.
        let manifest: Manifest?
        var temporary: String { "\(root)/.\(name).partial" }
        public var directory: String { "\(root)/\(name)" }
    }

    /// A written file's size and CRC-32 (what the manifest lists).
    struct FileSum: Sendable {
        var bytes = 0
        var crc32: UInt32 = 0
    }

    /// What one rank wrote of a snapshot: its state file (0 bytes when it owns no state), and on rank 0 `params.bin`.
    public struct Written: Sendable {
        var state = FileSum()
        var params: FileSum?
    }

    /// Phase 1 (collective): rank 0 creates the temporary directory and every rank waits for it; then each rank
    /// copies what it will write: its optimizer state, and on rank 0 the fp32 masters (in bf16 at stages 1–2, and at
    /// stage 3, gathered from their owners on every rank first).
    public static func snapshot(_ engine: ShardedDataParallel, run: RunState, runDirectory: String,
                                keep: Int) throws -> Snapshot {
        let rank = engine.rank, root = "\(runDirectory)/checkpoints"
        let name = String(format: "step-%08d", run.step)
        if rank == 0 {
            let temporary = "\(root)/.\(name).partial"
            try? FileManager.default.removeItem(atPath: temporary)
            try createFolders(temporary, what: "checkpoint folder")
        }
        try engine.synchronize()
        let records = engine.exportOptimizerState()
        let masters = try engine.masterParameters()
        var masterCopy: [Float]?, manifest: Manifest?
        if rank == 0 {
            masterCopy = Array(masters.slice(0..<masters.count))
            manifest = Manifest(
                format: format, version: version, step: run.step, worldSize: engine.worldSize,
                zeroStage: engine.stage.rawValue, model: run.model, table: run.table.entries,
                groups: engine.groupStates.map { g in
                    GroupEntry(name: g.layout.name, sharding: g.layout.sharding.rawValue,
                               range: [g.layout.range.lowerBound, g.layout.range.upperBound], counts: g.layout.counts,
                               owners: g.layout.owners, stateNames: g.stateNames, stepCount: g.stepCount)
                },
                dataSeed: run.dataSeed, dataStep: run.step, skippedSteps: run.skippedSteps,
                consecutiveBadSteps: run.consecutiveBadSteps, config: run.config, files: [],
                batchSchedule: run.batchSchedule, created: "")
        }
        return Snapshot(step: run.step, rank: rank, worldSize: engine.worldSize, keep: keep, root: root, name: name,
                        records: records, masters: masterCopy, manifest: manifest)
    }

    /// Phase 2 (local: no MPI, any thread): writes this rank's files of `snapshot` into the temporary directory,
    /// each durably (written, fsynced, renamed into its name).
    public static func write(_ snapshot: Snapshot) throws -> Written {
        var written = Written()
        if !snapshot.records.isEmpty {
            let index = snapshot.records.map {
                IndexEntry(state: $0.stateName, tensor: $0.tensorName, offset: $0.offset, count: $0.values.count)
            }
            written.state = try writeRecords(index, to: "\(snapshot.temporary)/\(stateFile(snapshot.rank))") { emit in
                for r in snapshot.records { try r.values.withUnsafeBytes(emit) }
            }
        }
        if let masters = snapshot.masters, let table = snapshot.manifest?.table {
            let index = table.map { IndexEntry(state: "param", tensor: $0.name, offset: 0, count: $0.range.count) }
            written.params = try writeRecords(index, to: "\(snapshot.temporary)/params.bin") { emit in
                try masters.withUnsafeBytes { all in
                    for e in table { try emit(UnsafeRawBufferPointer(rebasing: all[(4 * e.range.lowerBound)..<(4 * e.range.upperBound)])) }
                }
            }
        }
        return written
    }

    /// Phase 3 (collective): the sizes and checksums meet on every rank (a rank whose write failed sends −1, and
    /// every rank throws naming it). Returns, on rank 0, the files the manifest lists; nil on other ranks.
    public static func agree(_ snapshot: Snapshot, _ written: Result<Written, Error>,
                             engine: ShardedDataParallel) throws -> [FileEntry]? {
        let mine = (try? written.get()).map { (Int64($0.state.bytes), Int64($0.state.crc32)) } ?? (-1, 0)
        let sizes = try engine.gatherPerRank(mine.0), checksums = try engine.gatherPerRank(mine.1)
        if case .failure(let error) = written { throw error }
        if let failed = sizes.firstIndex(where: { $0 < 0 }) {
            throw CheckpointError("\(snapshot.directory) was not written: rank \(failed) could not write its part " +
                                  "(its own message says why); the previous checkpoints are intact")
        }
        guard snapshot.rank == 0, let params = try written.get().params else { return nil }
        var files = [FileEntry(name: "params.bin", bytes: params.bytes, crc32: params.crc32)]
        for r in 0..<snapshot.worldSize where sizes[r] > 0 {
            files.append(FileEntry(name: stateFile(r), bytes: Int(sizes[r]), crc32: UInt32(checksums[r])))
        }
        return files
    }

    /// Phase 4 (rank 0, local: any thread): writes the manifest last, renames the directory into place, points
    /// `latest` at it and removes checkpoints beyond `keep`. Returns the checkpoint's directory.
    public static func finish(_ snapshot: Snapshot, files: [FileEntry]) throws -> String {
        guard var manifest = snapshot.manifest else { preconditionFailure("finish runs on rank 0, which holds the manifest") }
        manifest.files = files
        manifest.created = ISO8601DateFormatter().string(from: Date())
        let unsigned = try manifest.encodedForChecksum()
        manifest.checksum = unsigned.withUnsafeBytes { crc32($0) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeDurably(try encoder.encode(manifest), to: "\(snapshot.temporary)/manifest.json")
        let final = snapshot.directory
        try? FileManager.default.removeItem(atPath: final)  // only a leftover of an interrupted save of this same step
        guard rename(snapshot.temporary, final) == 0 else {
            throw CheckpointError("cannot rename \(snapshot.temporary) to \(final): \(String(cString: strerror(errno)))")
        }
        fsyncDirectory(snapshot.root)
        try writeAtomically(Foundation.Data((snapshot.name + "\n").utf8), to: "\(snapshot.root)/latest")
        prune(root: snapshot.root, keep: snapshot.keep)
        return final
    }

    static func stateFile(_ rank: Int) -> String { String(format: "state-rank-%05d.bin", rank) }

    /// Removes all but the newest `keep` complete checkpoints.
    static func prune(root: String, keep: Int) {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .filter { $0.hasPrefix("step-") }.sorted()
        for old in names.dropLast(max(keep, 1)) { try? FileManager.default.removeItem(atPath: "\(root)/\(old)") }
    }

    static func writeDurably(_ data: Foundation.Data, to path: String) throws {
        try writeAtomically(data, to: path)
    }

    static func fsyncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
    }

    // MARK: Loading

    /// Finds the checkpoint an argument names: a checkpoint directory, a run directory (its latest checkpoint), or
    /// `latest`: the latest checkpoint of `runDirectory` when one is given (`--resume latest --out DIR`), else the
    /// newest checkpoint of any run under `runs/`. `use` names the argument in messages (`--resume`, `export`).
    public static func resolve(_ argument: String, for use: String = "--resume", runDirectory: String? = nil,
                               runsRoot: String = "runs") throws -> String {
        let fm = FileManager.default
        if argument == "latest", let runDirectory {
            do { return try resolve(runDirectory, for: use) } catch {
                throw CheckpointError("\(use) latest with --out \(runDirectory): no checkpoint in \(runDirectory)/checkpoints; " +
                                      "drop --out to take the newest run under \(runsRoot)/, or name a checkpoint directory")
            }
        }
        if argument == "latest" {
            let runs = ((try? fm.contentsOfDirectory(atPath: runsRoot)) ?? []).map { "\(runsRoot)/\($0)" }
            let candidates = runs.compactMap { try? resolve($0) }
            let newest = candidates.max { a, b in
                let ma = (try? fm.attributesOfItem(atPath: "\(a)/manifest.json")[.modificationDate] as? Date) ?? .distantPast
                let mb = (try? fm.attributesOfItem(atPath: "\(b)/manifest.json")[.modificationDate] as? Date) ?? .distantPast
                return ma < mb
            }
            guard let newest else { throw CheckpointError("\(use) latest: no checkpoint found under \(runsRoot)/*/checkpoints") }
            return newest
        }
        if fm.fileExists(atPath: "\(argument)/manifest.json") { return argument }
        let root = "\(argument)/checkpoints"
        if let latest = try? String(contentsOfFile: "\(root)/latest", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
           fm.fileExists(atPath: "\(root)/\(latest)/manifest.json") {
            return "\(root)/\(latest)"
        }
        let complete = ((try? fm.contentsOfDirectory(atPath: root)) ?? []).filter {
            $0.hasPrefix("step-") && fm.fileExists(atPath: "\(root)/\($0)/manifest.json")
        }.sorted()
        guard let last = complete.last else {
            let name = URL(fileURLWithPath: argument).lastPathComponent
            if name.hasPrefix(".step-") && name.hasSuffix(".partial") {
                throw CheckpointError("\(use) \(argument): an incomplete checkpoint (its write was interrupted before the " +
                                      "manifest, so nothing in it is verified); resume from the run directory, which takes " +
                                      "its latest complete checkpoint")
            }
            let what = fm.fileExists(atPath: argument) ? "no checkpoint there" : "no such file or directory"
            throw CheckpointError("\(use) \(argument): \(what) (expected a checkpoint directory with manifest.json, " +
                                  "or a run directory with checkpoints/)")
        }
        return "\(root)/\(last)"
    }

    /// Reads and verifies a checkpoint (every file's size and CRC-32). Throws a message naming the file and problem.
    public static func load(_ path: String) throws -> LoadedCheckpoint {
        let manifestPath = "\(path)/manifest.json"
        guard let manifestData = FileManager.default.contents(atPath: manifestPath) else {
            throw CheckpointError("\(manifestPath): missing — not a complete checkpoint (an interrupted save leaves no manifest)")
        }
        let manifest: Manifest
        do { manifest = try JSONDecoder().decode(Manifest.self, from: manifestData) } catch {
            throw CheckpointError("\(manifestPath): corrupt manifest (\(error))")
        }
        guard manifest.format == format else { throw CheckpointError("\(manifestPath): format '\(manifest.format)' is not \(format)") }
        guard manifest.version == version else {
            throw CheckpointError("\(manifestPath): checkpoint format version \(manifest.version); this swift-train reads version \(version)")
        }
        guard let checksum = manifest.checksum else {
            throw CheckpointError("\(manifestPath): no checksum (written by an older swift-train, or edited): it cannot be verified; " +
                                  "resume from a checkpoint this version wrote")
        }
        let computed = try manifest.encodedForChecksum().withUnsafeBytes { crc32($0) }
        guard computed == checksum else {
            throw CheckpointError(String(format: "%@: checksum mismatch (CRC-32 %08x, recorded %08x): the manifest is damaged or was edited",
                                         manifestPath, computed, checksum))
        }
        if let problem = manifest.problem() { throw CheckpointError("\(manifestPath): \(problem)") }
        var records: [TensorState] = []
        for file in manifest.files {
            let filePath = "\(path)/\(file.name)"
            guard let data = FileManager.default.contents(atPath: filePath) else { throw CheckpointError("\(filePath): missing") }
            guard data.count == file.bytes else {
                throw CheckpointError("\(filePath): \(data.count) bytes, the manifest says \(file.bytes) (truncated or replaced)")
            }
            let crc = data.withUnsafeBytes { crc32($0) }
            guard crc == file.crc32 else {
                throw CheckpointError(String(format: "%@: checksum mismatch (CRC-32 %08x, manifest %08x): the file is corrupt", filePath, crc, file.crc32))
            }
            records += try decode(data, file: filePath)
        }
        return LoadedCheckpoint(path: path, manifest: manifest, records: records)
    }
}

public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A verified checkpoint in memory; serves any slice of any state to optimizers of any world size.
public final class LoadedCheckpoint: StateSource, @unchecked Sendable {
    public let path: String
    public let manifest: Checkpoint.Manifest
    /// (state, tensor) → pieces sorted by offset.
    private var pieces: [String: [TensorState]] = [:]

    init(path: String, manifest: Checkpoint.Manifest, records: [TensorState]) {
        self.path = path
        self.manifest = manifest
        for r in records { pieces["\(r.stateName)\u{0}\(r.tensorName)", default: []].append(r) }
        for k in pieces.keys { pieces[k]!.sort { $0.offset < $1.offset } }
    }

    public func values(state stateName: String, tensor tensorName: String, offset: Int, count: Int) throws -> [Float] {
        guard let list = pieces["\(stateName)\u{0}\(tensorName)"] else {
            throw CheckpointError("\(path): no '\(stateName)' state for tensor '\(tensorName)' — the checkpoint was written " +
                                  "with a different optimizer for it (\(manifest.groups.map(\.name).joined(separator: ", ")))")
        }
        var out = [Float](repeating: 0, count: count)
        var filled = 0
        for piece in list where piece.offset < offset + count && piece.offset + piece.values.count > offset {
            let lo = max(offset, piece.offset), hi = min(offset + count, piece.offset + piece.values.count)
            for i in lo..<hi { out[i - offset] = piece.values[i - piece.offset] }
            filled += hi - lo
        }
        guard filled == count else {
            throw CheckpointError("\(path): '\(stateName)' of '\(tensorName)' covers \(filled) of elements \(offset)..<\(offset + count)")
        }
        return out
    }

    /// Checks that the checkpoint holds the same tensors as `table` (names, shapes), naming the first difference.
    public func checkModel(_ table: ParameterTable, description: String) throws {
        let saved = Dictionary(uniqueKeysWithValues: manifest.table.map { ($0.name, $0) })
        for e in table.entries {
            guard let s = saved[e.name] else {
                throw CheckpointError("\(path) was written for a different model (\(manifest.model)): it has no tensor '\(e.name)' (this model: \(description))")
            }
            guard s.shape == e.shape else {
                throw CheckpointError("\(path) was written for a different model (\(manifest.model)): tensor '\(e.name)' has shape \(s.shape) there, \(e.shape) here")
            }
        }
        guard saved.count == table.entries.count else {
            throw CheckpointError("\(path) was written for a different model (\(manifest.model)): \(saved.count) tensors there, \(table.entries.count) here")
        }
    }

    /// Restores parameters and optimizer state into `engine` (any world size and stage).
    public func restore(into engine: ShardedDataParallel) throws {
        let saved = Dictionary(manifest.groups.map { ($0.name, $0.stepCount) }, uniquingKeysWith: { a, _ in a })
        try engine.importState(from: self, stepCount: { saved[$0] }, missingGroup: { name in
            CheckpointError("\(self.path): no optimizer group '\(name)' (the checkpoint has \(self.manifest.groups.map(\.name).joined(separator: ", "))); resume with the optimizers it was written with")
        })
    }

    /// All parameters by name (for export).
    public func parameters() throws -> [SafeTensors.Tensor] {
        try manifest.table.map { SafeTensors.Tensor(name: $0.name, shape: $0.shape, values: try values(state: "param", tensor: $0.name, offset: 0, count: $0.count)) }
    }

    /// Every optimizer state of every tensor, assembled whole, named `optimizer.<state>.<tensor>`.
    public func optimizerState() -> [SafeTensors.Tensor] {
        pieces.keys.sorted().compactMap { key -> SafeTensors.Tensor? in
            let list = pieces[key]!
            guard list[0].stateName != "param" else { return nil }
            let values = list.flatMap(\.values)
            let shape = manifest.table.first { $0.name == list[0].tensorName }.map { $0.count == values.count ? $0.shape : [values.count] } ?? [values.count]
            return SafeTensors.Tensor(name: "optimizer.\(list[0].stateName).\(list[0].tensorName)", shape: shape, values: values)
        }
    }
}
