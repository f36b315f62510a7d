/// A named tensor: element type, shape (batch dimension included where the
/// model batches) and row-major little-endian bytes. BYTES tensors hold their
/// elements in the protocol's serialized form: a 4-byte little-endian length
/// before each element, so raw wire data is stored without conversion.
public struct Tensor: Sendable, Hashable {
    public var name: String
    public var dataType: DataType
    public var shape: [Int]
    public var bytes: [UInt8]

    public init(name: String, dataType: DataType, shape: [Int], bytes: [UInt8]) {
        self.name = name
        self.dataType = dataType
        self.shape = shape
        self.bytes = bytes
    }

    /// A tensor of a fixed-size element type built from values.
    public init<T: TensorElement>(name: String, shape: [Int], values: [T]) {
        self.init(name: name, dataType: T.dataType, shape: shape,
                  bytes: values.withUnsafeBytes { Array($0) })
    }

    /// A BYTES tensor built from its elements.
    public init(name: String, shape: [Int], elements: [[UInt8]]) {
        self.init(name: name, dataType: .bytes, shape: shape,
                  bytes: BytesElements.serialize(elements))
    }

    /// The elements of a fixed-size tensor, reinterpreted (little-endian host assumed).
    public func values<T: TensorElement>(as type: T.Type) throws -> [T] {
        guard dataType == T.dataType else {
            throw InferenceError.invalidArgument(
                "tensor '\(name)' has datatype \(dataType.rawValue), not \(T.dataType.rawValue)")
        }
        guard bytes.count % MemoryLayout<T>.stride == 0 else {
            throw InferenceError.invalidArgument(
                "tensor '\(name)' holds \(bytes.count) bytes, not a multiple of \(MemoryLayout<T>.stride)")
        }
        let count = bytes.count / MemoryLayout<T>.stride
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            bytes.withUnsafeBytes { raw in
                _ = UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw)
            }
            initialized = count
        }
    }

    /// The elements of a BYTES tensor.
    public func elements() throws -> [[UInt8]] {
        guard dataType == .bytes else {
            throw InferenceError.invalidArgument("tensor '\(name)' has datatype \(dataType.rawValue), not BYTES")
        }
        return try BytesElements.parse(bytes, tensorName: name)
    }
}

/// Fixed-size element types whose in-memory layout equals the wire layout.
public protocol TensorElement: Sendable {
    static var dataType: DataType { get }
}
extension Bool: TensorElement { public static var dataType: DataType { .bool } }
extension UInt8: TensorElement { public static var dataType: DataType { .uint8 } }
extension UInt16: TensorElement { public static var dataType: DataType { .uint16 } }
extension UInt32: TensorElement { public static var dataType: DataType { .uint32 } }
extension UInt64: TensorElement { public static var dataType: DataType { .uint64 } }
extension Int8: TensorElement { public static var dataType: DataType { .int8 } }
extension Int16: TensorElement { public static var dataType: DataType { .int16 } }
extension Int32: TensorElement { public static var dataType: DataType { .int32 } }
extension Int64: TensorElement { public static var dataType: DataType { .int64 } }
extension Float: TensorElement { public static var dataType: DataType { .fp32 } }
extension Double: TensorElement { public static var dataType: DataType { .fp64 } }

/// The protocol's serialized form of BYTES elements: each element is a
/// 4-byte little-endian length followed by that many bytes.
public enum BytesElements {
    public static func serialize(_ elements: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(elements.reduce(0) { $0 + 4 + $1.count })
        for element in elements {
            appendLength(UInt32(truncatingIfNeeded: element.count), to: &out)
            out.append(contentsOf: element)
        }
        return out
    }

    static func appendLength(_ length: UInt32, to out: inout [UInt8]) {
        withUnsafeBytes(of: length.littleEndian) { out.append(contentsOf: $0) }
    }

    public static func parse(_ bytes: [UInt8], tensorName: String) throws -> [[UInt8]] {
        var elements: [[UInt8]] = []
        try walk(bytes, tensorName: tensorName) { elements.append(Array(bytes[$0])) }
        return elements
    }

    /// Counts elements without copying them, validating every length prefix.
    public static func count(_ bytes: [UInt8], tensorName: String) throws -> Int {
        var count = 0
        try walk(bytes, tensorName: tensorName) { _ in count += 1 }
        return count
    }

    /// Calls `visit` with the byte range of each element, in order.
    private static func walk(_ bytes: [UInt8], tensorName: String, _ visit: (Range<Int>) -> Void) throws {
        var index = 0
        var offset = 0
        while offset < bytes.count {
            let length = try readLength(bytes, at: offset, tensorName: tensorName)
            offset += 4
            guard length <= bytes.count - offset else {
                throw InferenceError.invalidArgument(
                    "BYTES tensor '\(tensorName)': element \(index) declares \(length) bytes but only \(bytes.count - offset) remain")
            }
            visit(offset..<(offset + length))
            offset += length
            index += 1
        }
    }

    private static func readLength(_ bytes: [UInt8], at offset: Int, tensorName: String) throws -> Int {
        guard bytes.count - offset >= 4 else {
            throw InferenceError.invalidArgument(
                "BYTES tensor '\(tensorName)': truncated 4-byte length prefix at byte \(offset)")
        }
        return Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
    }
}

/// Shape arithmetic with overflow checks: a client-chosen shape must not be
/// able to wrap an element count or byte size.
public enum ShapeMath {
    /// The number of elements of `shape`, or an error naming the tensor when a
    /// dimension is negative or the product overflows.
    public static func elementCount(_ shape: [Int], tensorName: String) throws -> Int {
        var total = 1
        for dim in shape {
            guard dim >= 0 else {
                throw InferenceError.invalidArgument("tensor '\(tensorName)' has negative dimension \(dim) in shape \(format(shape))")
            }
            let (product, overflow) = total.multipliedReportingOverflow(by: dim)
            guard !overflow else {
                throw InferenceError.invalidArgument("tensor '\(tensorName)' shape \(format(shape)) has too many elements")
            }
            total = product
        }
        return total
    }

    /// Byte size of a fixed-size tensor of this shape, overflow-checked.
    public static func byteSize(_ shape: [Int], dataType: DataType, tensorName: String) throws -> Int? {
        guard let size = dataType.elementByteSize else { return nil }
        let (bytes, overflow) = try elementCount(shape, tensorName: tensorName).multipliedReportingOverflow(by: size)
        guard !overflow else {
            throw InferenceError.invalidArgument("tensor '\(tensorName)' shape \(format(shape)) is too large")
        }
        return bytes
    }

    public static func format(_ shape: [Int]) -> String {
        "[" + shape.map(String.init).joined(separator: ",") + "]"
    }
}

extension Sequence where Element == UInt8 {
    /// Lowercase hexadecimal, two digits a byte (digests, keyed hashes).
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
