import Foundation
import InferenceCore
import NIOCore

/// A parsed JSON value that keeps integers, unsigned integers, floating
/// numbers and booleans apart, which tensor decoding needs.
indirect enum JSONValue: Sendable, Decodable {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null; return }
        if let value = try? container.decode(Bool.self) { self = .bool(value); return }
        if let value = try? container.decode(Int64.self) { self = .int(value); return }
        if let value = try? container.decode(UInt64.self) { self = .uint(value); return }
        if let value = try? container.decode(Double.self) { self = .double(value); return }
        if let value = try? container.decode(String.self) { self = .string(value); return }
        if let value = try? container.decode([JSONValue].self) { self = .array(value); return }
        self = .object(try container.decode([String: JSONValue].self))
    }

    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .int, .uint, .double: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }
}

extension JSONValue {
    /// Parses a request body that must be a JSON object; `what` names the
    /// request in error messages.
    static func object(from body: ByteBuffer, what: String) throws -> JSONValue {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView))
        } catch {
            throw InferenceError.invalidArgument("malformed JSON in \(what): \(InferRequestDecoder.describe(error))")
        }
        guard case .object = value else { throw InferenceError.invalidArgument("\(what) must be a JSON object") }
        return value
    }
}
