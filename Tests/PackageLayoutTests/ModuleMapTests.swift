import Foundation
import XCTest

/// The module map at the top of Package.swift, the targets' declared dependencies and the `import` lines of their
/// sources must tell the same story: a reader learns the dependency direction from Package.swift and it is true.
final class ModuleMapTests: XCTestCase {
    /// Modules from outside this package (the toolchain, the OS, package dependencies): not part of the map.
    static let external: Set<String> = ["Foundation", "Glibc", "Darwin", "Dispatch", "XCTest", "ArgumentParser"]
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Modules imported by the Swift files under `folder` (e.g. Sources/Training), external ones left out.
    func imports(_ folder: String) throws -> Set<String> {
        let dir = root.appendingPathComponent(folder)
        var found = Set<String>()
        for case let file as URL in FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil)!
        where file.pathExtension == "swift" {
            for line in try String(contentsOf: file, encoding: .utf8).split(separator: "\n") {
                let words = line.split(separator: " ")
                if let i = words.firstIndex(of: "import"), i + 1 < words.count, i == 0 || words[0] == "@testable" || words[0] == "@_exported" {
                    found.insert(String(words[i + 1]))
                }
            }
        }
        return found.subtracting(Self.external)
    }

    /// Target name → declared dependencies (target names and product names), from Package.swift's text.
    func declaredTargets() throws -> [String: (kind: String, dependencies: Set<String>)] {
        let text = try String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: #"\.(target|executableTarget|testTarget|systemLibrary)\(name: "(\w+)"(.*?)\)(,\s*\n|\s*\n\s*\])"#,
                                              options: [.dotMatchesLineSeparators])
        var out: [String: (kind: String, dependencies: Set<String>)] = [:]
        for m in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            let kind = String(text[Range(m.range(at: 1), in: text)!]), name = String(text[Range(m.range(at: 2), in: text)!])
            let rest = String(text[Range(m.range(at: 3), in: text)!])
            var deps = Set<String>()
            if let open = rest.range(of: "dependencies: [") {
                let list = rest[open.upperBound...].prefix { $0 != "]" }
                let quoted = try NSRegularExpression(pattern: #"(?:name: )?"(\w+)"(?:, package: "\w+")?"#)
                for q in quoted.matches(in: String(list), range: NSRange(list.startIndex..., in: list)) {
                    let s = String(list)
                    let whole = String(s[Range(q.range, in: s)!])
                    // .product(name: "Yams", package: "Yams") counts once, as "Yams".
                    if !whole.hasPrefix("\"") || !s[..<Range(q.range, in: s)!.lowerBound].hasSuffix("package: ") {
                        deps.insert(String(s[Range(q.range(at: 1), in: s)!]))
                    }
                }
            }
            out[name] = (kind, deps)
        }
        return out
    }

    /// `//   Target → A, B` lines of the comment at the top of Package.swift.
    func moduleMap() throws -> [String: Set<String>] {
        let text = try String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8)
        var map: [String: Set<String>] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("//   ") && line.contains(" → ") {
            let parts = line.dropFirst(5).components(separatorsBy: " → ")
            let deps = parts[1].trimmingCharacters(in: .whitespaces)
            map[parts[0].trimmingCharacters(in: .whitespaces)] = deps == "—" ? [] : Set(deps.components(separatedBy: ", "))
        }
        return map
    }

    func testEveryImportIsADeclaredDependencyAndEveryDependencyIsImported() throws {
        for (name, target) in try declaredTargets() where target.kind != "systemLibrary" {
            let folder = (target.kind == "testTarget" ? "Tests/" : "Sources/") + name
            let used = try imports(folder).subtracting([name])
            XCTAssertEqual(used.subtracting(target.dependencies), [], "\(folder) imports modules Package.swift does not list for \(name)")
            XCTAssertEqual(target.dependencies.subtracting(Self.external).subtracting(used), [], "Package.swift lists dependencies of \(name) that \(folder) never imports")
        }
    }

    func testModuleMapCommentMatchesTheRealImports() throws {
        let targets = try declaredTargets().filter { $0.value.kind == "target" || $0.value.kind == "executableTarget" }
        var expected: [String: Set<String>] = [:]
        for name in targets.keys where name != "CKernels" {  // CKernels is C: no imports to map
            expected[name] = try imports("Sources/\(name)").subtracting([name])
        }
        XCTAssertEqual(try moduleMap(), expected, "regenerate the module map comment at the top of Package.swift")
    }

    /// "Arrows point down the list": every module a line names stands on a later line (or is a C module, unlisted).
    func testModuleMapListsEveryModuleAboveItsDependencies() throws {
        let text = try String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let order = text.split(separator: "\n").filter { $0.hasPrefix("//   ") && $0.contains(" → ") }
            .map { $0.dropFirst(5).components(separatorsBy: " → ")[0].trimmingCharacters(in: .whitespaces) }
        let map = try moduleMap()
        for (i, module) in order.enumerated() {
            for dependency in map[module] ?? [] {
                guard let j = order.firstIndex(of: dependency) else { continue }
                XCTAssertGreaterThan(j, i, "\(module) depends on \(dependency), which the module map lists above it")
            }
        }
    }

    /// The dependency graph has no cycles and every arrow points to a module listed before it in the map.
    func testDependenciesPointOneWay() throws {
        let map = try moduleMap()
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        func visit(_ m: String, _ path: [String]) {
            if state[m] == 2 { return }
            XCTAssertNotEqual(state[m], 1, "import cycle: \((path + [m]).joined(separator: " → "))")
            if state[m] == 1 { return }
            state[m] = 1
            for d in map[m] ?? [] { visit(d, path + [m]) }
            state[m] = 2
        }
        for m in map.keys.sorted() { visit(m, []) }
    }
}

private extension Substring {
    func components(separatorsBy separator: String) -> [String] { String(self).components(separatedBy: separator) }
}
