import InferenceCore

/// Converts tensor data between JSON element lists and the protocol's raw
/// little-endian bytes. Error messages name the tensor and element index,
/// never the value.
enum JSONTensorData {
    static func encode(_ values: [JSONValue], as dataType: DataType, tensorName: String) throws -> [UInt8] {
        switch dataType {
        case .bool:
            return try values.enumerated().map { index, value in
                guard case .bool(let flag) = value else { throw mismatch(tensorName, index, "a boolean") }
                return flag ? 1 : 0
            }
        case .int8: return try integers(values, Int8.self, tensorName)
        case .int16: return try integers(values, Int16.self, tensorName)
        case .int32: return try integers(values, Int32.self, tensorName)
        case .int64: return try integers(values, Int64.self, tensorName)
        case .uint8: return try integers(values, UInt8.self, tensorName)
        case .uint16: return try integers(values, UInt16.self, tensorName)
        case .uint32: return try integers(values, UInt32.self, tensorName)
        case .uint64: return try integers(values, UInt64.self, tensorName)
        case .fp32:
            return raw(try values.enumerated().map { index, value in Float(try number(value, tensorName, index)) })
        case .fp64:
            return raw(try values.enumerated().map { index, value in try number(value, tensorName, index) })
        case .bytes:
            return BytesElements.serialize(try values.enumerated().map { index, value in
                guard case .string(let text) = value else { throw mismatch(tensorName, index, "a string") }
                return Array(text.utf8)
            })
        case .fp16, .bf16:
            throw InferenceError.invalidArgument(
                "input '\(tensorName)' is \(dataType.rawValue): send it as binary data (binary_data_size), JSON cannot carry it")
        }
    }

    private static func integers<T: FixedWidthInteger>(_ values: [JSONValue], _: T.Type, _ name: String) throws -> [UInt8] {
        let converted: [T] = try values.enumerated().map { index, value in
            let result: T?
            switch value {
            case .int(let number): result = T(exactly: number)
            case .uint(let number): result = T(exactly: number)
            default: throw mismatch(name, index, "an integer")
            }
            guard let result else {
                throw InferenceError.invalidArgument("input '\(name)' element \(index) is out of range for \(T.self)")
            }
            return result
        }
        return raw(converted)
    }

    private static func number(_ value: JSONValue, _ name: String, _ index: Int) throws -> Double {
        switch value {
        case .int(let number): return Double(number)
        case .uint(let number): return Double(number)
        case .double(let number): return number
        default: throw mismatch(name, index, "a number")
        }
    }

    private static func mismatch(_ name: String, _ index: Int, _ expected: String) -> InferenceError {
        .invalidArgument("input '\(name)' element \(index) must be \(expected)")
    }

    private static func raw<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

    /// An output tensor's elements as a JSON-encodable list.
    static func decode(_ tensor: Tensor) throws -> JSONTensorValues {
        switch tensor.dataType {
        case .bool: return .bools(tensor.bytes.map { $0 != 0 })
        case .int8: return .ints(try tensor.values(as: Int8.self).map(Int64.init))
        case .int16: return .ints(try tensor.values(as: Int16.self).map(Int64.init))
        case .int32: return .ints(try tensor.values(as: Int32.self).map(Int64.init))
        case .int64: return .ints(try tensor.values(as: Int64.self))
        case .uint8: return .uints(try tensor.values(as: UInt8.self).map(UInt64.init))
        case .uint16: return .uints(try tensor.values(as: UInt16.self).map(UInt64.init))
        case .uint32: return .uints(try tensor.values(as: UInt32.self).map(UInt64.init))
        case .uint64: return .uints(try tensor.values(as: UInt64.self))
        case .fp32: return .floats(try tensor.values(as: Float.self))
        case .fp64: return .doubles(try tensor.values(as: Double.self))
        case .bytes: return .strings(try tensor.elements().map { String(decoding: $0, as: UTF8.self) })
        case .fp16, .bf16:
            throw InferenceError.invalidArgument(
                "output '\(tensor.name)' is \(tensor.dataType.rawValue): request it as binary data, JSON cannot carry it")
        }
    }
}

/// Output data in JSON, typed so numbers keep their exact values.
enum JSONTensorValues: Encodable {
    case bools([Bool]), ints([Int64]), uints([UInt64]), floats([Float]), doubles([Double]), strings([String])

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .bools(let values): try container.encode(values)
        case .ints(let values): try container.encode(values)
        case .uints(let values): try container.encode(values)
        case .floats(let values): try container.encode(values)
        case .doubles(let values): try container.encode(values)
        case .strings(let values): try container.encode(values)
        }
    }
}
