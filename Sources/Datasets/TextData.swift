import Foundation
import Tensors

/// A token corpus for language modelling: the training and validation token streams and the vocabulary size.
///
/// Two sources:
/// - text, byte-level (vocabulary 256): one file, or every text file under a folder, recursively, in sorted path
///   order (byte-wise), concatenated. A file is skipped when its name starts with `.`, it ends in `.dat` (the
///   `fortunes` package installs `strfile` indexes next to the text), it is a symbolic link (the package's `.u8`
///   files are links to the text files, which would otherwise be read twice), or its first 8 KiB contain a NUL byte
///   (binary). Files are concatenated as they are, bytes unchanged.
/// - pre-tokenised `.bin`: little-endian uint16 tokens, no header (nanoGPT's `train.bin`), or `.npy`: a 1-D array of
///   uint16, uint8, int32 or int64 tokens; one file, or every `.bin` and `.npy` file under a folder in sorted order.
///   The vocabulary is the caller's; a token ≥ vocabulary is an error.
///
/// The validation split is the last `validationFraction` of the concatenated tokens (rounded down), the training
/// split the rest.
public struct TextCorpus: Sendable, Equatable {
    /// Training tokens, in corpus order.
    public var train: [UInt16]
    /// Validation tokens: the tail of the corpus.
    public var validation: [UInt16]
    /// Token ids are 0..<vocabulary.
    public var vocabulary: Int

    /// Where Debian's `fortunes` package installs its text; the default byte-level corpus.
    public static let defaultFolder = "/usr/share/games/fortunes"
    /// The Debian package that installs `defaultFolder`.
    public static let defaultPackage = "fortunes"
    public static let defaultValidationFraction = 0.1

    /// Splits `tokens` (the whole corpus) into training and validation.
    /// - Parameter source: named in error messages (a path, or a description).
    public init(tokens: [UInt16], vocabulary: Int, validationFraction: Double = TextCorpus.defaultValidationFraction,
                source: String = "the corpus") throws {
        guard vocabulary >= 1 && vocabulary <= 65_536 else {
            throw DataError("\(source): vocabulary \(vocabulary) must be in 1...65536 (tokens are uint16)")
        }
        guard validationFraction >= 0 && validationFraction < 1 else {
            throw DataError("\(source): validation fraction \(validationFraction) must be in [0, 1)")
        }
        guard !tokens.isEmpty else {
            throw DataError("\(source): the corpus is empty (no tokens); point it at non-empty text or .bin files")
        }
        if let bad = tokens.firstIndex(where: { Int($0) >= vocabulary }) {
            throw DataError("\(source): token \(tokens[bad]) at token index \(bad) is not below the vocabulary size \(vocabulary)")
        }
        let validationCount = Int(Double(tokens.count) * validationFraction)
        train = Array(tokens[..<(tokens.count - validationCount)])
        validation = Array(tokens[(tokens.count - validationCount)...])
        self.vocabulary = vocabulary
    }

    // MARK: Loading

    /// Byte-level text corpus (vocabulary 256) from a file or a folder (see the type's rules for which files).
    /// With the default path, a missing folder names the Debian package that installs it.
    public static func loadBytes(path: String = TextCorpus.defaultFolder,
                                 validationFraction: Double = TextCorpus.defaultValidationFraction) throws -> TextCorpus {
        var bytes: [UInt8] = []
        for file in try textFiles(at: path) {
            bytes.append(contentsOf: try readFile(file))
        }
        guard !bytes.isEmpty else {
            throw DataError("\(path): the corpus is empty (no non-empty text files; .dat files, symbolic links, hidden " +
                            "and binary files are skipped); point it at a folder or file of text")
        }
        return try TextCorpus(tokens: bytes.map { UInt16($0) }, vocabulary: 256, validationFraction: validationFraction,
                              source: path)
    }

    /// Pre-tokenised corpus: a `.bin` file of little-endian uint16 tokens or a one-dimensional `.npy` array of
    /// integer tokens (uint16, uint8, int32 or int64), or every such file under a folder, in sorted order.
    public static func loadTokens(path: String, vocabulary: Int,
                                  validationFraction: Double = TextCorpus.defaultValidationFraction) throws -> TextCorpus {
        let files = try existingPath(path) ? listFiles(under: path).filter(isTokenFile) : [path]
        guard !files.isEmpty else { throw DataError("\(path): no .bin or .npy token files in this folder") }
        var tokens: [UInt16] = []
        for file in files {
            tokens += file.hasSuffix(".npy") ? try npyTokens(file, vocabulary: vocabulary)
                                             : try binTokens(file, vocabulary: vocabulary)
        }
        return try TextCorpus(tokens: tokens, vocabulary: vocabulary, validationFraction: validationFraction, source: path)
    }

    static func isTokenFile(_ path: String) -> Bool { path.hasSuffix(".bin") || path.hasSuffix(".npy") }

    private static func binTokens(_ file: String, vocabulary: Int) throws -> [UInt16] {
        let bytes = try readFile(file)
        guard bytes.count % 2 == 0 else {
            throw DataError("\(file): \(bytes.count) bytes is an odd size: a token file holds little-endian uint16 " +
                            "tokens (2 bytes each); the file is truncated or not a token file")
        }
        var tokens: [UInt16] = []
        tokens.reserveCapacity(bytes.count / 2)
        for i in stride(from: 0, to: bytes.count, by: 2) { tokens.append(UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8) }
        if let bad = tokens.firstIndex(where: { Int($0) >= vocabulary }) {
            throw DataError("\(file): token \(tokens[bad]) at byte offset \(2 * bad) is not below the " +
                            "vocabulary size \(vocabulary); pass the tokenizer's vocabulary size")
        }
        return tokens
    }

    static let npyTokenTypes: [NPYArray.ElementType] = [.uint16, .uint8, .int32, .int64]

    private static func npyTokens(_ file: String, vocabulary: Int) throws -> [UInt16] {
        let array = try NPYArray(path: file)
        guard npyTokenTypes.contains(array.elementType) else {
            throw DataError("\(file): tokens have dtype \(array.elementType.name), expected uint16, uint8, int32 or int64; " +
                            "save a.astype(np.uint16)")
        }
        guard array.shape.count == 1 else {
            throw DataError("\(file): tokens have shape \(array.shapeDescription), expected (\(array.elementCount),): one " +
                            "token stream; save a.reshape(-1)")
        }
        switch array.integers(as: UInt16.self, below: vocabulary) {
        case .success(let tokens): return tokens
        case .failure(let bad):
            throw DataError("\(file): token \(bad.value) at index \(bad.index) is not in 0..<\(vocabulary) (the vocabulary " +
                            "size); set data.vocabulary to the tokenizer's vocabulary size")
        }
    }

    /// `loadTokens` for a path ending in `.bin` or `.npy`, `loadBytes` otherwise (`vocabulary` is then ignored:
    /// bytes are 256).
    public static func load(path: String, vocabulary: Int = 256,
                            validationFraction: Double = TextCorpus.defaultValidationFraction) throws -> TextCorpus {
        isTokenFile(path) ? try loadTokens(path: path, vocabulary: vocabulary, validationFraction: validationFraction)
                          : try loadBytes(path: path, validationFraction: validationFraction)
    }

    /// Writes tokens as a little-endian uint16 `.bin` file (tests and tools).
    public static func writeTokens(_ tokens: [UInt16], to path: String) throws {
        var data = Data(capacity: 2 * tokens.count)
        for t in tokens { data.append(contentsOf: [UInt8(t & 0xFF), UInt8(t >> 8)]) }
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// The text files a byte-level load reads, in order: `path` itself when it is a file, else the files under it
    /// that pass the type's rules, sorted by path.
    public static func textFiles(at path: String) throws -> [String] {
        guard try existingPath(path) else { return [path] }
        return try listFiles(under: path).filter { file in
            let name = (file as NSString).lastPathComponent
            if name.hasPrefix(".") || name.hasSuffix(".dat") { return false }
            return try !looksBinary(file)
        }
    }

    /// True when `path` is a folder, false when a file; throws when it does not exist.
    private static func existingPath(_ path: String) throws -> Bool {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            var message = "\(path): no such file or folder"
            if path == defaultFolder {
                message += " (the default text corpus is installed by the Debian package `\(defaultPackage)`: run " +
                           "launch/setup, or apt-get install \(defaultPackage))"
            }
            throw DataError(message)
        }
        return isFolder.boolValue
    }

    /// Regular files under `folder`, recursively, sorted by path; symbolic links are not followed or listed.
    private static func listFiles(under folder: String) throws -> [String] {
        let fm = FileManager.default
        guard let enumerator = fm.enumerator(atPath: folder) else {
            throw DataError("\(folder): cannot list this folder; check its permissions")
        }
        var files: [String] = []
        while let relative = enumerator.nextObject() as? String {
            let full = (folder as NSString).appendingPathComponent(relative)
            let attributes = try? fm.attributesOfItem(atPath: full)
            if attributes?[.type] as? FileAttributeType == .typeRegular { files.append(full) }
        }
        return files.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    private static func readFile(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError("\(path): cannot read this file; check that it exists and its permissions")
        }
        return [UInt8](data)
    }

    /// A NUL byte in the first 8 KiB marks a binary file (the rule `grep` and `git` use).
    private static func looksBinary(_ path: String) throws -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw DataError("\(path): cannot read this file; check its permissions or remove it from the corpus folder")
        }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 8192)) ?? Data()
        return head.contains(0)
    }

    // MARK: Windows

    /// Throws unless both splits hold at least one window of `context` tokens plus its shifted target
    /// (the validation split only when it is non-empty).
    public func check(context: Int) throws {
        guard context >= 1 else { throw DataError("context \(context) must be ≥ 1") }
        if train.count < context + 1 {
            throw DataError("the training split has \(train.count) tokens, fewer than context + 1 = \(context + 1); " +
                            "use a larger corpus, a shorter context or a smaller validation fraction")
        }
        if !validation.isEmpty && validation.count < context + 1 {
            throw DataError("the validation split has \(validation.count) tokens, fewer than context + 1 = " +
                            "\(context + 1); use a larger corpus or validation fraction, or a shorter context")
        }
    }

    /// Writes training window `row` of global batch `step`: tokens[context] from a start drawn uniformly in
    /// 0...(train.count − context − 1) by SplitMix64(seed, stream keyed by (step, row)), and targets[context] the
    /// same window shifted by one. The global batch is thus the same for any world size; rank r of a world with b
    /// rows per rank takes rows r·b ..< (r+1)·b. Precondition: train.count ≥ context + 1 (see `check(context:)`).
    public func trainWindow(step: Int, row: Int, seed: UInt64, context: Int, tokens: UnsafeMutablePointer<Int32>,
                            targets: UnsafeMutablePointer<Int32>) {
        precondition(train.count >= context + 1, "training split of \(train.count) tokens is shorter than context + 1")
        precondition(step >= 0 && row >= 0, "step and row must be ≥ 0")
        var rng = SplitMix64(seed: seed, stream: UInt64(step) &* 0x0000_0001_0000_0001 ^ UInt64(row) ^ 0x7E47_0000_0000_0000)
        let start = Int(rng.next() % UInt64(train.count - context))
        copyWindow(train, start: start, context: context, tokens: tokens, targets: targets)
    }

    /// Non-overlapping validation windows of `context` tokens (plus one target token each) from the start of the
    /// validation split.
    public func validationWindowCount(context: Int) -> Int {
        validation.count > context ? (validation.count - 1) / context : 0
    }

    /// Validation window `index`: tokens validation[index·context ..< (index+1)·context], targets shifted by one.
    public func validationWindow(index: Int, context: Int, tokens: UnsafeMutablePointer<Int32>,
                                 targets: UnsafeMutablePointer<Int32>) {
        precondition(index >= 0 && index < validationWindowCount(context: context),
                     "validation window \(index) outside 0..<\(validationWindowCount(context: context))")
        copyWindow(validation, start: index * context, context: context, tokens: tokens, targets: targets)
    }

    private func copyWindow(_ source: [UInt16], start: Int, context: Int, tokens: UnsafeMutablePointer<Int32>,
                            targets: UnsafeMutablePointer<Int32>) {
        source.withUnsafeBufferPointer { s in
            let p = s.baseAddress! + start
            for t in 0..<context {
                tokens[t] = Int32(p[t])
                targets[t] = Int32(p[t + 1])
            }
        }
    }
}
