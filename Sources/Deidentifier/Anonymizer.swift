import InferenceCore
import Crypto
import Foundation

/// What replaces a span: Presidio's operators (replace, redact, mask, hash,
/// encrypt, keep) and ours (date_shift).
public enum AnonymizeOperator: Sendable, Equatable {
    /// A fixed value, or (nil) the type's tag in the model's tag style.
    case replace(String?)
    case redact
    case mask(character: String, count: Int, fromEnd: Bool)
    /// A keyed HMAC of the value (SHA-256 or SHA-512) under the server's key, in hex.
    case hash(sha512: Bool)
    /// AES-GCM under the server's key; reversed by /deanonymize.
    case encrypt
    /// A date moved back by the patient key's offset, in its own format.
    case dateShift
    case keep

    public var name: String {
        switch self {
        case .replace: "replace"
        case .redact: "redact"
        case .mask: "mask"
        case .hash: "hash"
        case .encrypt: "encrypt"
        case .dateShift: "date_shift"
        case .keep: "keep"
        }
    }

    public static let names = ["replace", "redact", "mask", "hash", "encrypt", "date_shift", "keep"]

    /// Parses Presidio's operator object (`{"type": "mask", "masking_char": "*", …}`);
    /// `field` names where it came from in errors.
    public static func parse(_ object: [String: Any], field: String) throws -> AnonymizeOperator {
        guard let type = object["type"] as? String else {
            throw DeidentificationError.invalid("\(field): 'type' is required, one of \(names.joined(separator: ", "))")
        }
        switch type {
        case "replace":
            if let value = object["new_value"], !(value is String) { throw DeidentificationError.invalid("\(field).new_value must be a string") }
            return .replace(object["new_value"] as? String)
        case "redact": return .redact
        case "keep": return .keep
        case "mask":
            guard let character = object["masking_char"] as? String, character.count == 1 else {
                throw DeidentificationError.invalid("\(field).masking_char must be one character")
            }
            guard let count = object["chars_to_mask"] as? Int, count >= 0 else {
                throw DeidentificationError.invalid("\(field).chars_to_mask must be a non-negative integer")
            }
            if let fromEnd = object["from_end"], !(fromEnd is Bool) { throw DeidentificationError.invalid("\(field).from_end must be true or false") }
            return .mask(character: character, count: count, fromEnd: object["from_end"] as? Bool ?? false)
        case "hash":
            let kind = object["hash_type"] as? String ?? "sha256"
            guard kind == "sha256" || kind == "sha512" else {
                throw DeidentificationError.invalid("\(field).hash_type must be sha256 or sha512, got '\(kind.prefix(16))'")
            }
            return .hash(sha512: kind == "sha512")
        case "encrypt":
            if object["key"] != nil {
                throw DeidentificationError.invalid("\(field).key: this server encrypts with its own key file; leave 'key' out")
            }
            return .encrypt
        case "date_shift": return .dateShift
        default:
            throw DeidentificationError.invalid("\(field): unknown operator '\(type.prefix(32))'; supported: \(names.joined(separator: ", "))")
        }
    }
}

/// How `replace` with no value writes the tag.
public enum TagStyle: String, Sendable {
    /// `[NAME]`, `[DATE]`: short tags for people reading the note.
    case brackets
    /// `<PERSON>`, `<DATE_TIME>`: Presidio's default.
    case presidio

    func tag(_ type: EntityType) -> String {
        self == .brackets ? "[\(type.bracketTag)]" : "<\(type.rawValue)>"
    }
}

/// One span as the anonymized text holds it (Presidio's "items"): offsets in
/// the new text.
public struct AnonymizedItem: Sendable, Equatable {
    public var type: EntityType
    public var start: Int
    public var end: Int
    public var operatorName: String
    public var source: DetectedEntity
}

/// Turns spans into text: pure, given the operators, the tag style and the key.
public struct Anonymizer: Sendable {
    public var operators: [EntityType: AnonymizeOperator]
    public var defaultOperator: AnonymizeOperator
    public var tagStyle: TagStyle
    public var key: DeidentificationKey?

    public init(operators: [EntityType: AnonymizeOperator] = [:], defaultOperator: AnonymizeOperator = .replace(nil),
                tagStyle: TagStyle = .brackets, key: DeidentificationKey? = nil) {
        self.operators = operators
        self.defaultOperator = defaultOperator
        self.tagStyle = tagStyle
        self.key = key
    }

    public func anonymize(_ text: String, entities: [DetectedEntity], patientKey: String? = nil) throws -> (text: String, items: [AnonymizedItem]) {
        let scalars = Array(text.unicodeScalars)
        let spans = SpanResolver.resolve(entities.filter { $0.start >= 0 && $0.end <= scalars.count && $0.start < $0.end })
        var output = String.UnicodeScalarView()
        var items: [AnonymizedItem] = []
        var cursor = 0
        var written = 0
        for span in spans {
            output.append(contentsOf: scalars[cursor..<span.start])
            written += span.start - cursor
            let original = String(String.UnicodeScalarView(scalars[span.start..<span.end]))
            let op = operators[span.type] ?? defaultOperator
            let replacement = try apply(op, to: original, type: span.type, patientKey: patientKey)
            output.append(contentsOf: replacement.unicodeScalars)
            let length = replacement.unicodeScalars.count
            items.append(AnonymizedItem(type: span.type, start: written, end: written + length, operatorName: op.name, source: span))
            written += length
            cursor = span.end
        }
        output.append(contentsOf: scalars[cursor...])
        return (String(output), items)
    }

    func apply(_ op: AnonymizeOperator, to value: String, type: EntityType, patientKey: String?) throws -> String {
        switch op {
        case .replace(let newValue): return newValue ?? tagStyle.tag(type)
        case .redact: return ""
        case .keep: return value
        case .mask(let character, let count, let fromEnd):
            var characters = Array(value)
            let n = min(count, characters.count)
            let range = fromEnd ? (characters.count - n)..<characters.count : 0..<n
            for k in range { characters[k] = Character(character) }
            return String(characters)
        case .hash(let sha512):
            let key = try required("hash")
            if sha512 {
                let mac = HMAC<SHA512>.authenticationCode(for: Array("\(type.rawValue):\(value.lowercased())".utf8), using: key.pseudonym)
                return mac.map { String(format: "%02x", $0) }.joined()
            }
            return key.pseudonym(of: value, type: type)
        case .encrypt:
            return try required("encrypt").encrypt(value)
        case .dateShift:
            let key = try required("date_shift")
            guard let patientKey, !patientKey.isEmpty else {
                throw DeidentificationError.invalid("operator 'date_shift' needs the request parameter 'patient_key'")
            }
            guard type == .dateTime, let shifted = DateShift.shift(value, byDays: -key.shiftDays(patientKey: patientKey)) else {
                return tagStyle.tag(type)
            }
            return shifted
        }
    }

    func required(_ name: String) throws -> DeidentificationKey {
        guard let key else {
            throw DeidentificationError.keyFile("operator '\(name)' needs the model's key file (parameters.key_file)")
        }
        return key
    }
}
