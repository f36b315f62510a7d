/// A tensor element type, named as the KServe v2 protocol names it on the wire.
public enum DataType: String, Sendable, CaseIterable, Hashable {
    case bool = "BOOL"
    case uint8 = "UINT8"
    case uint16 = "UINT16"
    case uint32 = "UINT32"
    case uint64 = "UINT64"
    case int8 = "INT8"
    case int16 = "INT16"
    case int32 = "INT32"
    case int64 = "INT64"
    case fp16 = "FP16"
    case fp32 = "FP32"
    case fp64 = "FP64"
    case bytes = "BYTES"
    case bf16 = "BF16"

    /// Bytes per element; nil for BYTES, whose elements are length-prefixed.
    public var elementByteSize: Int? {
        switch self {
        case .bool, .uint8, .int8: 1
        case .uint16, .int16, .fp16, .bf16: 2
        case .uint32, .int32, .fp32: 4
        case .uint64, .int64, .fp64: 8
        case .bytes: nil
        }
    }

    /// The name config.pbtxt uses (`TYPE_INT32`); BYTES is `TYPE_STRING` there.
    public var configName: String {
        self == .bytes ? "TYPE_STRING" : "TYPE_" + rawValue
    }

    public init?(configName: String) {
        guard configName.hasPrefix("TYPE_") else { return nil }
        let suffix = configName.dropFirst(5)
        if suffix == "STRING" { self = .bytes; return }
        if suffix == "BYTES" { return nil }
        self.init(rawValue: String(suffix))
    }
}
