// Checkpoints of population runs (train.method es, ga, sa): `checkpoints/step-NNNNNNNN/` in the run directory with
// `population.safetensors` (every float buffer of the method's `PopulationState`) and `population.json` (format,
// version, step, method, the resolved configuration, and the double scalars as exact bit patterns), written last so
// a directory without it is an interrupted save. The state is replicated on every rank, so rank 0 alone writes it,
// and a checkpoint resumes on any number of ranks the configuration divides over (every random draw is a function
// of seed and step, so no generator state is stored and the resumed run continues bit for bit).

import Foundation
import GradientFree
import Tensors

/// A population checkpoint as read back: where it was, its manifest and the method's state.
public struct LoadedPopulationCheckpoint: Sendable {
    public let path: String
    public let manifest: PopulationCheckpoint.Manifest
    public let state: PopulationState
}

public enum PopulationCheckpoint {
    public static let format = "swift-train-population"
    public static let version = 1
    static let manifestName = "population.json", buffersName = "population.safetensors"

    public struct Manifest: Codable, Equatable, Sendable {
        public var format: String
        public var version: Int
        public var step: Int
        public var method: String
        public var config: String
        /// name → each double's IEEE-754 bit pattern in hex, so resuming is exact.
        public var scalars: [String: [String]]
    }

    /// Writes the checkpoint after `step` completed steps; rank 0 only. Returns its directory.
    @discardableResult
    public static func save(_ method: PopulationMethod, step: Int, config yaml: String, runDirectory: String) throws -> String {
        let dir = "\(runDirectory)/checkpoints/" + String(format: "step-%08d", step)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let state = method.exportState()
        let tensors = state.buffers.keys.sorted().map { SafeTensors.Tensor(name: $0, shape: [state.buffers[$0]!.count], values: state.buffers[$0]!) }
        try writeAtomically(SafeTensors.encode(tensors, metadata: ["format": format]), to: "\(dir)/\(buffersName)")
        let manifest = Manifest(format: format, version: version, step: step, method: method.name, config: yaml,
                                scalars: state.scalars.mapValues { $0.map { String($0.bitPattern, radix: 16) } })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try encoder.encode(manifest), to: "\(dir)/\(manifestName)")
        return dir
    }

    /// The population checkpoint `argument` names: a checkpoint directory, or a run directory (its latest complete
    /// one); nil when there is none (the caller may then try a gradient checkpoint).
    public static func find(_ argument: String) -> String? {
        let fm = FileManager.default
        if fm.fileExists(atPath: "\(argument)/\(manifestName)") { return argument }
        let root = "\(argument)/checkpoints"
        let complete = ((try? fm.contentsOfDirectory(atPath: root)) ?? []).filter {
            $0.hasPrefix("step-") && fm.fileExists(atPath: "\(root)/\($0)/\(manifestName)")
        }.sorted()
        return complete.last.map { "\(root)/\($0)" }
    }

    /// Reads a checkpoint written by `save`. Errors name the file and the problem.
    public static func load(_ path: String) throws -> LoadedPopulationCheckpoint {
        let manifestPath = "\(path)/\(manifestName)"
        guard let data = FileManager.default.contents(atPath: manifestPath) else {
            throw CheckpointError("\(manifestPath): missing — not a complete population checkpoint")
        }
        let manifest: Manifest
        do { manifest = try JSONDecoder().decode(Manifest.self, from: data) } catch {
            throw CheckpointError("\(manifestPath): corrupt manifest (\(error))")
        }
        guard manifest.format == format, manifest.version == version else {
            throw CheckpointError("\(manifestPath): format \(manifest.format) v\(manifest.version) is not \(format) v\(version)")
        }
        guard let bytes = FileManager.default.contents(atPath: "\(path)/\(buffersName)") else {
            throw CheckpointError("\(path)/\(buffersName): missing")
        }
        let tensors: [SafeTensors.Tensor]
        do { tensors = try SafeTensors.decode(bytes).tensors } catch { throw CheckpointError("\(path)/\(buffersName): \(error)") }
        var scalars: [String: [Double]] = [:]
        for (name, patterns) in manifest.scalars {
            scalars[name] = try patterns.map {
                guard let bits = UInt64($0, radix: 16) else { throw CheckpointError("\(manifestPath): scalar \(name) has a bad bit pattern '\($0)'") }
                return Double(bitPattern: bits)
            }
        }
        let buffers = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0.values) })
        return LoadedPopulationCheckpoint(path: path, manifest: manifest,
                                          state: PopulationState(stepCount: manifest.step, buffers: buffers, scalars: scalars))
    }
}
