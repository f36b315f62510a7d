import Foundation
import InferenceCore

/// A `.safetensors` file (Hugging Face's format: an 8-byte little-endian header
/// length, a JSON header naming each tensor's dtype, shape and byte range, then
/// the data). The file is memory-mapped and every entry is validated: dtype,
/// shape arithmetic, and that its bytes lie inside the data section. No code
/// runs from it, unlike pickle checkpoints, which are never read.
public struct SafeTensorsFile: Sendable {
    public struct Entry: Sendable, Equatable {
        public let dtype: String
        public let shape: [Int]
        /// Byte range within the data section.
        public let range: Range<Int>
    }

    public let path: String
    public let entries: [String: Entry]
    private let data: Data
    private let dataStart: Int

    public init(path: String) throws {
        self.path = path
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else {
            throw InferenceError.invalidArgument("cannot read checkpoint \(path)")
        }
        self.data = data
        guard data.count >= 8 else { throw InferenceError.invalidArgument("\(path): too short to be a safetensors file") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(data.count - 8), headerLength <= 100 << 20 else {
            throw InferenceError.invalidArgument("\(path): header length \(headerLength) exceeds the file")
        }
        dataStart = 8 + Int(headerLength)
        let header: Any
        do {
            header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<dataStart))
        } catch {
            throw InferenceError.invalidArgument("\(path): header is not JSON")
        }
        guard let object = header as? [String: Any] else { throw InferenceError.invalidArgument("\(path): header is not a JSON object") }
        let dataLength = data.count - dataStart
        var entries: [String: Entry] = [:]
        for (name, value) in object where name != "__metadata__" {
            guard let fields = value as? [String: Any], let dtype = fields["dtype"] as? String,
                  let shape = (fields["shape"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  let offsets = (fields["data_offsets"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  offsets.count == 2 else {
                throw InferenceError.invalidArgument("\(path): tensor '\(name)' has a malformed header entry")
            }
            guard let size = Self.elementSize(dtype) else {
                throw InferenceError.invalidArgument("\(path): tensor '\(name)' has unsupported dtype \(dtype)")
            }
            let count = try ShapeMath.elementCount(shape, tensorName: name)
            let (bytes, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow, offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= dataLength, offsets[1] - offsets[0] == bytes else {
                throw InferenceError.invalidArgument(
                    "\(path): tensor '\(name)' (\(dtype) \(ShapeMath.format(shape))) has byte range \(offsets) outside the data or of the wrong size")
            }
            entries[name] = Entry(dtype: dtype, shape: shape, range: offsets[0]..<offsets[1])
        }
        // Checkpoints saved by old BERT code name LayerNorm parameters gamma
        // and beta; transformers reads them as weight and bias, and so do we.
        for (name, entry) in entries where name.contains("LayerNorm.") {
            for (old, new) in [(".gamma", ".weight"), (".beta", ".bias")] where name.hasSuffix(old) {
                let renamed = String(name.dropLast(old.count)) + new
                if entries[renamed] == nil { entries[renamed] = entry }
            }
        }
        self.entries = entries
    }

    static func elementSize(_ dtype: String) -> Int? {
        switch dtype {
        case "F32", "I32", "U32": 4
        case "F16", "BF16", "I16", "U16": 2
        case "F64", "I64", "U64": 8
        case "I8", "U8", "BOOL": 1
        default: nil
        }
    }

    /// A tensor as Float32, checked against the expected shape. F16 and BF16
    /// checkpoints are widened on load.
    public func floats(_ name: String, shape expected: [Int]) throws -> [Float] {
        guard let entry = entries[name] else {
            throw InferenceError.invalidArgument("\(path): missing tensor '\(name)' \(ShapeMath.format(expected))")
        }
        guard entry.shape == expected else {
            throw InferenceError.invalidArgument(
                "\(path): tensor '\(name)' has shape \(ShapeMath.format(entry.shape)), expected \(ShapeMath.format(expected))")
        }
        let bytes = data.subdata(in: (dataStart + entry.range.lowerBound)..<(dataStart + entry.range.upperBound))
        switch entry.dtype {
        case "F32":
            return bytes.withUnsafeBytes { raw in (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
        case "BF16":
            return bytes.withUnsafeBytes { raw in
                (0..<(raw.count / 2)).map { Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) << 16) }
            }
        case "F16":
            return bytes.withUnsafeBytes { raw in
                (0..<(raw.count / 2)).map { Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
            }
        default:
            throw InferenceError.invalidArgument("\(path): tensor '\(name)' is \(entry.dtype), expected a floating-point dtype")
        }
    }

    public func contains(_ name: String) -> Bool { entries[name] != nil }
}
