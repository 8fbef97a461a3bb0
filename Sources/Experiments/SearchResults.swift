import Foundation
import Training

// MARK: - Search results

/// results.csv (one row per trial, with the best so far) and results.json (the spec's space and every record, read
/// back to resume) of a search directory.
public struct SearchResults {
    public let spec: SearchSpec
    public let records: [SearchRecord]

    public init(spec: SearchSpec, records: [SearchRecord]) {
        self.spec = spec
        self.records = records
    }

    public var csv: String {
        let header = ["trial"] + spec.space.map(\.name) + [spec.metric, "best_so_far", "status", "rung", "examples",
                                                            "examples_so_far", "steps", "world_size", "seconds"]
        var best = Double.infinity, examples = 0
        var lines = [CSV.line(header)]
        for r in records {
            best = min(best, r.score)
            examples += r.examples
            let value = spec.maximize ? -r.score : r.score, bestValue = spec.maximize ? -best : best
            lines.append(CSV.line(["\(r.trial)"] + zip(spec.space, r.params).map { $0.distribution.text($1) } +
                                  ["\(value)", "\(bestValue)", r.status, "\(r.rung)", "\(r.examples)", "\(examples)", "\(r.steps)",
                                   "\(r.worldSize)", String(format: "%.2f", r.seconds)]))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public var json: String {
        func number(_ v: Double) -> Any { v.isFinite ? v : NSNull() }
        let trials: [[String: Any]] = records.map { r in
            var params: [String: Any] = [:]
            for (p, v) in zip(spec.space, r.params) {
                if case .categorical(let c) = p.distribution { params[p.name] = c[Int(v)] } else { params[p.name] = v }
            }
            return ["trial": r.trial, "value": number(spec.maximize ? -r.score : r.score), "status": r.status, "rung": r.rung,
                    "examples": r.examples, "steps": r.steps, "world_size": r.worldSize, "seconds": r.seconds,
                    "rung_values": r.rungScores.map { number(spec.maximize ? -$0 : $0) }, "params": params,
                    "record": r.encoded.map { $0.isFinite ? "\($0)" : "\($0)" }]
        }
        let o: [String: Any] = ["name": spec.name, "metric": spec.metric, "direction": spec.maximize ? "maximize" : "minimize",
                                "sampler": spec.sampler.rawValue, "seed": Int(spec.seed),
                                "rungs": spec.pruner?.rungs ?? [], "reduction_factor": spec.pruner?.reductionFactor ?? 0,
                                "space": spec.space.map { ["name": $0.name, "distribution": $0.distribution.description] },
                                "trials": trials]
        let data = (try? JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    public func write(to path: String) throws {
        try writeAtomically(Data(csv.utf8), to: "\(path)/results.csv")
        try writeAtomically(Data(json.utf8), to: "\(path)/results.json")
    }

    /// Rank 0 opening a search directory: creates it, or checks that it holds this same search and returns its
    /// records (to resume).
    public static func open(path: String, spec: SearchSpec, rungs: Int) throws -> [SearchRecord] {
        try createFolders("\(path)/trials", what: "search directory")
        let specPath = "\(path)/search.yaml"
        if let stored = try? String(contentsOfFile: specPath, encoding: .utf8), stored != spec.text {
            throw ConfigError("\(path) holds a different search (its search.yaml differs from this search file): use another --out, " +
                              "or delete \(path) to start again")
        }
        try writeAtomically(Data(spec.text.utf8), to: specPath)
        guard let data = FileManager.default.contents(atPath: "\(path)/results.json") else { return [] }
        guard let o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], let trials = o["trials"] as? [[String: Any]] else {
            throw ConfigError("\(path)/results.json cannot be read: delete \(path) to start the search again")
        }
        return trials.compactMap { t in
            guard let raw = t["record"] as? [String] else { return nil }
            let values = raw.map { Double($0) ?? .nan }
            guard values.count == SearchRecord.width(rungs: rungs, dimensions: spec.space.count) else { return nil }
            return SearchRecord(decoding: values[...], rungs: rungs, dimensions: spec.space.count)
        }
    }
}
