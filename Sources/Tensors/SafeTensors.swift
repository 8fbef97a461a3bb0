import Foundation

/// The safetensors interchange format: an 8-byte little-endian header length N, N bytes of JSON
/// (name → {dtype, shape, data_offsets: [begin, end]} relative to the data section, plus optional "__metadata__"),
/// then the raw little-endian tensor data. Only F32 tensors are written and read here.
public enum SafeTensors {
    public struct Tensor: Equatable {
        public var name: String
        public var shape: [Int]
        public var values: [Float]
        public init(name: String, shape: [Int], values: [Float]) {
            self.name = name
            self.shape = shape
            self.values = values
        }
    }

    public struct FormatError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Encodes tensors (in the given order) with string metadata.
    public static func encode(_ tensors: [Tensor], metadata: [String: String] = [:]) -> Data {
        var header = "{"
        var entries: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            entries.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        for t in tensors {
            precondition(t.shape.reduce(1, *) == t.values.count, "tensor \(t.name): shape \(t.shape) vs \(t.values.count) values")
            let end = offset + t.values.count * 4
            entries.append("\(jsonString(t.name)):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        header += entries.joined(separator: ",") + "}"
        // Pad the header with spaces so the data section starts 8-byte aligned (allowed by the format).
        while (header.utf8.count % 8) != 0 { header += " " }
        var data = Data()
        var n = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        for t in tensors {
            t.values.withUnsafeBytes { raw in
                // Float is little-endian on every platform Swift runs on here; assert rather than assume silently.
                precondition(1.littleEndian == 1, "big-endian hosts are not supported")
                data.append(contentsOf: raw)
            }
        }
        return data
    }

    /// Decodes every F32 tensor, sorted by data offset, and the metadata.
    public static func decode(_ data: Data) throws -> (tensors: [Tensor], metadata: [String: String]) {
        guard data.count >= 8 else { throw FormatError(description: "file shorter than the 8-byte header length") }
        let n = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard n <= UInt64(data.count - 8) else { throw FormatError(description: "header length \(n) exceeds the file") }
        let headerData = data.subdata(in: 8..<(8 + Int(n)))
        guard let json = try JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw FormatError(description: "header is not a JSON object")
        }
        let body = data.subdata(in: (8 + Int(n))..<data.count)
        var metadata: [String: String] = [:]
        var tensors: [(Int, Tensor)] = []
        for (name, value) in json {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
            else { throw FormatError(description: "tensor \(name): malformed header entry") }
            guard dtype == "F32" else { throw FormatError(description: "tensor \(name): dtype \(dtype) is not supported (F32 only)") }
            let count = shape.reduce(1, *)
            guard offsets[0] >= 0, offsets[1] == offsets[0] + 4 * count, offsets[1] <= body.count else {
                throw FormatError(description: "tensor \(name): data_offsets \(offsets) do not match shape \(shape) and the file size")
            }
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBytes { dst in
                body.copyBytes(to: dst.bindMemory(to: UInt8.self), from: offsets[0]..<offsets[1])
            }
            tensors.append((offsets[0], Tensor(name: name, shape: shape, values: values)))
        }
        return (tensors.sorted { $0.0 < $1.0 }.map { $0.1 }, metadata)
    }

    /// `s` as a JSON string literal (quotes, backslashes and control characters escaped).
    public static func jsonString(_ s: String) -> String {
        var out = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case _ where ch.value < 0x20: out += String(format: "\\u%04x", ch.value)
            default: out.unicodeScalars.append(ch)
            }
        }
        return out + "\""
    }
}

extension ParameterTable {
    /// The parameters of `buffer` as safetensors tensors, in table order.
    public func safeTensors(from buffer: UnsafeBufferPointer<Float>) -> [SafeTensors.Tensor] {
        entries.map { SafeTensors.Tensor(name: $0.name, shape: $0.shape, values: Array(buffer[$0.range])) }
    }
}
