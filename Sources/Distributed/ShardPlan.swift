import Optimizers
import Tensors

/// One optimizer group as the planner needs it: which tensors it updates and how it can be split.
public struct GroupSpec: Sendable {
    public var name: String
    public var sharding: ShardingClass
    /// Tensor names in model order.
    public var tensorNames: [String]
    public init(name: String, sharding: ShardingClass, tensorNames: [String]) {
        self.name = name
        self.sharding = sharding
        self.tensorNames = tensorNames
    }
}

/// Where one group lives in the flat buffer and which part of it each rank owns.
public struct GroupLayout: Equatable, Sendable {
    public let name: String
    public let sharding: ShardingClass
    /// The group's contiguous range of the flat buffer.
    public let range: Range<Int>
    /// Elements owned by each rank, in rank order: rank r owns the block starting at range.lowerBound + Σ counts[..<r].
    public let counts: [Int]
    /// Matrix groups: the owning rank of each tensor.
    public let owners: [String: Int]

    /// Rank r's block of the group (absolute range of the flat buffer; may be empty).
    public func owned(_ rank: Int) -> Range<Int> {
        let start = range.lowerBound + counts[..<rank].reduce(0, +)
        return start..<(start + counts[rank])
    }
}

/// The shard plan: a layout of the flat buffer in which every group, and every rank's block of it, is contiguous,
/// so that reduce-scatter and all-gather(v) move each group in one variable-count collective without padding.
/// Computed identically on every rank from the parameter table and the group specs (a pure function).
public struct ShardPlan: Equatable, Sendable {
    public let worldSize: Int
    /// The tensors laid out group after group; the model adopts this layout.
    public let table: ParameterTable
    public let groups: [GroupLayout]

    /// Slices of element-wise groups start on multiples of this many floats (64 bytes), so every rank's block is
    /// cache-line aligned; the imbalance this costs is at most `alignment` elements per rank.
    public static let alignment = 16

    /// Newton–Schulz cost model for balancing matrix groups: max(m, n) · min(m, n)² per step.
    public static func matrixCost(_ shape: [Int]) -> Double {
        let m = Double(shape[0]), n = Double(shape.dropFirst().reduce(1, *))
        return max(m, n) * min(m, n) * min(m, n)
    }

    public init(table modelTable: ParameterTable, groups specs: [GroupSpec], worldSize: Int) {
        precondition(worldSize >= 1)
        let assigned = specs.flatMap(\.tensorNames)
        precondition(Set(assigned) == Set(modelTable.entries.map(\.name)) && assigned.count == modelTable.entries.count,
                     "every tensor must belong to exactly one group")
        self.worldSize = worldSize
        var order: [String] = []
        var layouts: [(name: String, sharding: ShardingClass, count: Int, counts: [Int], owners: [String: Int])] = []
        for spec in specs {
            let entries = spec.tensorNames.map { modelTable[$0]! }
            let total = entries.reduce(0) { $0 + $1.count }
            switch spec.sharding {
            case .element, .tensorNorm:
                order += spec.tensorNames
                layouts.append((spec.name, spec.sharding, total, Self.balancedCounts(total, worldSize), [:]))
            case .matrix:
                // Longest-processing-time-first: biggest cost to the least-loaded rank (ties: lower rank, then name).
                var load = [Double](repeating: 0, count: worldSize)
                var owners: [String: Int] = [:]
                let byCost = entries.sorted { (Self.matrixCost($0.shape), $1.name) > (Self.matrixCost($1.shape), $0.name) }
                for e in byCost {
                    let r = load.indices.min { (load[$0], $0) < (load[$1], $1) }!
                    owners[e.name] = r
                    load[r] += Self.matrixCost(e.shape)
                }
                var counts = [Int](repeating: 0, count: worldSize)
                for r in 0..<worldSize {
                    for e in entries where owners[e.name] == r {
                        order.append(e.name)
                        counts[r] += e.count
                    }
                }
                layouts.append((spec.name, spec.sharding, total, counts, owners))
            }
        }
        table = modelTable.reordered(order)
        var start = 0
        groups = layouts.map { g in
            defer { start += g.count }
            return GroupLayout(name: g.name, sharding: g.sharding, range: start..<(start + g.count), counts: g.counts,
                               owners: g.owners)
        }
    }

    /// n elements over `world` ranks: boundaries at multiples of `alignment`, as even as that allows.
    static func balancedCounts(_ n: Int, _ world: Int) -> [Int] {
        var bounds = (0...world).map { r -> Int in
            let ideal = Double(n) * Double(r) / Double(world)
            return min(n, Int((ideal / Double(alignment)).rounded()) * alignment)
        }
        bounds[world] = n
        for r in 1...world { bounds[r] = max(bounds[r], bounds[r - 1]) }
        return (0..<world).map { bounds[$0 + 1] - bounds[$0] }
    }

    /// Tensors of group g owned (wholly or partly) by `rank`, with the overlapping absolute range.
    public func ownedEntries(group g: Int, rank: Int) -> [(entry: TensorEntry, overlap: Range<Int>)] {
        table.entries(overlapping: groups[g].owned(rank))
    }
}
