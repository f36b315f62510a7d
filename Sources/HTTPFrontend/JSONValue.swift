import Foundation
import InferenceCore
import NIOCore

/// A parsed JSON value that keeps integers, unsigned integers, floating
/// numbers and booleans apart, which tensor decoding needs.
indirect enum JSONValue: Sendable, Decodable, Equatable {
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

extension JSONValue {
    /// The value of a JSON number, whatever its decoded kind.
    var number: Double? {
        switch self {
        case .int(let v): Double(v)
        case .uint(let v): Double(v)
        case .double(let v): v
        default: nil
        }
    }

    /// Compact JSON text of the value, to hand a sub-document on as a parameter.
    func jsonText() throws -> String {
        func any(_ value: JSONValue) -> Any {
            switch value {
            case .null: NSNull()
            case .bool(let v): v
            case .int(let v): v
            case .uint(let v): v
            case .double(let v): v
            case .string(let v): v
            case .array(let items): items.map(any)
            case .object(let members): members.mapValues(any)
            }
        }
        let data = try JSONSerialization.data(withJSONObject: any(self), options: [.fragmentsAllowed])
        return String(decoding: data, as: UTF8.self)
    }
}
