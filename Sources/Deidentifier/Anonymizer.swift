import Crypto
import CryptoExtras
import Foundation
import InferenceCore

/// A span to transform: the de-identifier's own findings, or a Presidio
/// client's `analyzer_results`, whose entity types may be any name.
public struct AnonymizeSpan: Sendable, Equatable {
    public var type: String
    public var start: Int
    public var end: Int
    public var score: Double?
    /// The detector that found it, where the de-identifier did.
    public var recognizer: String?

    public init(type: String, start: Int, end: Int, score: Double?, recognizer: String? = nil) {
        self.type = type
        self.start = start
        self.end = end
        self.score = score
        self.recognizer = recognizer
    }

    public init(_ entity: DetectedEntity) {
        self.init(type: entity.type.rawValue, start: entity.start, end: entity.end, score: entity.score, recognizer: entity.recognizer.rawValue)
    }

    var length: Int { end - start }
}

/// What replaces a span: Presidio's operators with Presidio's parameters, and
/// ours (keyed hashing and encryption under the server's key, date_shift).
public enum AnonymizeOperator: Sendable, Equatable {
    /// A fixed value, or (nil) the type's tag in the model's tag style.
    case replace(String?)
    case redact
    case mask(character: Character, count: Int, fromEnd: Bool)
    /// With a salt, Presidio's sha(value + salt); without, an HMAC under the
    /// server's key, so one person gets one pseudonym across a whole job.
    case hash(sha512: Bool, salt: [UInt8]?)
    /// With a key, Presidio's AES-CBC (URL-safe base64 of IV and ciphertext);
    /// without, AES-GCM under the server's key.
    case encrypt(key: [UInt8]?)
    /// A date moved back by the patient key's offset, in its own format.
    case dateShift
    case keep
    /// Deanonymizers: the inverse of `encrypt`, and Presidio's `deanonymize_keep`.
    case decrypt(key: [UInt8]?)
    case deanonymizeKeep

    public var name: String {
        switch self {
        case .replace: "replace"
        case .redact: "redact"
        case .mask: "mask"
        case .hash: "hash"
        case .encrypt: "encrypt"
        case .dateShift: "date_shift"
        case .keep: "keep"
        case .decrypt: "decrypt"
        case .deanonymizeKeep: "deanonymize_keep"
        }
    }

    var usesServerKey: Bool {
        switch self {
        case .hash(_, nil), .encrypt(nil), .decrypt(nil), .dateShift: true
        default: false
        }
    }

    /// Parses Presidio's operator object (`{"type": "mask", "masking_char": "*", …}`)
    /// with Presidio's error texts.
    public static func parse(_ object: [String: Any], deanonymizer: Bool = false) throws -> AnonymizeOperator {
        guard let type = object["type"] as? String else {
            throw DeidentificationError.invalid("Invalid input, operator config must contain operator_name")
        }
        func typeName(_ value: Any) -> String {
            switch value {
            case is String: "string"
            case let number as NSNumber: JSONKind.isBoolean(number) ? "boolean" : "number"
            case is [Any]: "list"
            case is [String: Any]: "object"
            default: "null"
            }
        }
        func key() throws -> [UInt8]? {
            guard let value = object["key"] else { return nil }
            guard let text = value as? String, [16, 24, 32].contains(text.utf8.count) else {
                throw DeidentificationError.invalid("Invalid input, key must be of length 128, 192 or 256 bits")
            }
            return Array(text.utf8)
        }
        if deanonymizer {
            switch type {
            case "decrypt": return .decrypt(key: try key())
            case "deanonymize_keep": return .deanonymizeKeep
            default: throw DeidentificationError.invalid("Invalid operator class '\(type.prefix(40))'.")
            }
        }
        switch type {
        case "replace":
            if let value = object["new_value"], !(value is String) {
                throw DeidentificationError.invalid("Invalid parameter value for new_value. Expecting 'string', but got '\(typeName(value))'.")
            }
            let value = object["new_value"] as? String
            return .replace(value?.isEmpty == true ? nil : value)
        case "redact": return .redact
        case "keep": return .keep
        case "mask":
            for name in ["masking_char", "chars_to_mask", "from_end"] where object[name] == nil || object[name] is NSNull {
                throw DeidentificationError.invalid("Expected parameter \(name)")
            }
            guard let character = object["masking_char"] as? String, character.unicodeScalars.count == 1 else {
                throw DeidentificationError.invalid("Invalid input, masking_char must be a character")
            }
            guard let count = object["chars_to_mask"] as? Int, !JSONKind.isBoolean(object["chars_to_mask"]!) else {
                throw DeidentificationError.invalid("Invalid parameter value for chars_to_mask. Expecting 'number', but got '\(typeName(object["chars_to_mask"]!))'.")
            }
            guard let fromEnd = object["from_end"] as? Bool, JSONKind.isBoolean(object["from_end"]!) else {
                throw DeidentificationError.invalid("Invalid parameter value for from_end. Expecting 'boolean', but got '\(typeName(object["from_end"]!))'.")
            }
            return .mask(character: character.first!, count: count, fromEnd: fromEnd)
        case "hash":
            let kind = object["hash_type"] as? String ?? "sha256"
            guard kind == "sha256" || kind == "sha512" else {
                throw DeidentificationError.invalid("Parameter hash_type value \(kind.prefix(16)) is not in range of values ['sha256', 'sha512']")
            }
            var salt: [UInt8]? = nil
            if let value = object["salt"] {
                let bytes = Array((value as? String ?? "").utf8)
                if bytes.isEmpty {
                    throw DeidentificationError.invalid("Salt parameter cannot be empty. Either omit the salt parameter to auto-generate a random salt, or provide a salt of at least 16 bytes (128 bits).")
                }
                guard bytes.count >= 16 else {
                    throw DeidentificationError.invalid("Salt must be at least 16 bytes (128 bits). Provided salt is \(bytes.count) bytes.")
                }
                salt = bytes
            }
            return .hash(sha512: kind == "sha512", salt: salt)
        case "encrypt": return .encrypt(key: try key())
        case "date_shift": return .dateShift
        default:
            throw DeidentificationError.invalid("Invalid operator class '\(type.prefix(40))'.")
        }
    }
}

/// How `replace` with no value writes the tag.
public enum TagStyle: String, Sendable {
    /// `[NAME]`, `[DATE]`: short tags for people reading the note.
    case brackets
    /// `<PERSON>`, `<DATE_TIME>`: Presidio's default.
    case presidio

    func tag(_ type: String) -> String {
        guard self == .brackets else { return "<\(type)>" }
        return "[\(EntityType(rawValue: type)?.bracketTag ?? type)]"
    }
}

/// One span as the transformed text holds it (Presidio's "items").
public struct AnonymizedItem: Sendable, Equatable {
    /// Where the new value lies in the new text.
    public var start: Int
    public var end: Int
    public var operatorName: String
    /// The span of the input it replaced.
    public var source: AnonymizeSpan
}

/// Operators by entity type (Presidio's `anonymizers` map), each parsed when
/// first used, as Presidio does: an operator for a type with no span is never checked.
public struct OperatorTable: @unchecked Sendable {
    // Values are JSON objects from JSONSerialization: immutable once parsed.
    private var configs: [String: [String: Any]]
    private let deanonymizer: Bool
    public var fallback: AnonymizeOperator

    public init(configs: [String: [String: Any]] = [:], fallback: AnonymizeOperator = .replace(nil), deanonymizer: Bool = false) {
        self.configs = configs
        self.fallback = fallback
        self.deanonymizer = deanonymizer
    }

    /// Parses Presidio's JSON map; `DEFAULT` replaces the fallback.
    public init(json: String, fallback: AnonymizeOperator, deanonymizer: Bool = false) throws {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw DeidentificationError.invalid("Invalid input, operators must be a JSON object of operator configs by entity type")
        }
        var configs: [String: [String: Any]] = [:]
        for (name, value) in object {
            guard let config = value as? [String: Any] else {
                throw DeidentificationError.invalid("Invalid input, operator config for '\(name.prefix(40))' must be an object")
            }
            configs[name] = config
        }
        self.init(configs: configs, fallback: fallback, deanonymizer: deanonymizer)
        if let config = configs["DEFAULT"] {
            self.fallback = try AnonymizeOperator.parse(config, deanonymizer: deanonymizer)
        }
    }

    public func operatorFor(_ type: String) throws -> AnonymizeOperator {
        guard let config = configs[type] else { return fallback }
        return try AnonymizeOperator.parse(config, deanonymizer: deanonymizer)
    }

    /// Whether a configured operator (parsed or not) needs the server's key.
    var mentionsServerKey: Bool {
        (configs.values.compactMap { try? AnonymizeOperator.parse($0, deanonymizer: deanonymizer) } + [fallback]).contains(where: \.usesServerKey)
    }
}

/// Turns spans into text, Presidio's way: conflicts resolved as its anonymizer
/// engine resolves them, items in descending order of start.
public struct Anonymizer: Sendable {
    public var tagStyle: TagStyle
    public var key: DeidentificationKey?

    public init(tagStyle: TagStyle = .brackets, key: DeidentificationKey? = nil) {
        self.tagStyle = tagStyle
        self.key = key
    }

    public func anonymize(_ text: String, spans: [AnonymizeSpan], operators: OperatorTable,
                          patientKey: String? = nil) throws -> (text: String, items: [AnonymizedItem]) {
        let scalars = Array(text.unicodeScalars)
        try Self.checkBounds(spans, length: scalars.count)
        let resolved = Self.resolveConflicts(spans, scalars: scalars)
        var output = String.UnicodeScalarView()
        var items: [AnonymizedItem] = []
        var cursor = 0, written = 0   // `written` counts output scalars: the view's count walks it
        for span in resolved {
            if cursor < span.start {
                output.append(contentsOf: scalars[cursor..<span.start])
                written += span.start - cursor
            }
            let original = String(String.UnicodeScalarView(scalars[span.start..<span.end]))
            let op = try operators.operatorFor(span.type)
            let replacement = try apply(op, to: original, type: span.type, patientKey: patientKey)
            let length = replacement.unicodeScalars.count
            output.append(contentsOf: replacement.unicodeScalars)
            items.append(AnonymizedItem(start: written, end: written + length, operatorName: op.name, source: span))
            written += length
            cursor = max(cursor, span.end)
        }
        if cursor < scalars.count { output.append(contentsOf: scalars[cursor...]) }
        return (String(output), items.sorted { ($0.start, $0.end) > ($1.start, $1.end) })
    }

    /// Presidio's checks on analyzer results, with its texts.
    static func checkBounds(_ spans: [AnonymizeSpan], length: Int) throws {
        for span in spans {
            if span.start < 0 || span.end < 0 { throw DeidentificationError.invalid("Invalid input, result start and end must be positive") }
            if span.start > span.end {
                throw DeidentificationError.invalid("Invalid input, start index '\(span.start)' must be smaller than end index '\(span.end)'")
            }
            if span.end > length {
                throw DeidentificationError.invalid("Invalid analyzer result, start: \(span.start) and end: \(span.end), while text length is only \(length).")
            }
        }
    }

    /// Presidio's default conflict strategy: same-type overlaps merge into their
    /// union (highest score); a span inside another is dropped (on equal spans
    /// the higher score stays, the later on a tie); partial overlaps of
    /// different types both stay, the earlier cut where the later starts; then
    /// same-type spans separated only by spaces merge.
    static func resolveConflicts(_ spans: [AnonymizeSpan], scalars: [Unicode.Scalar]) -> [AnonymizeSpan] {
        // Same-type overlaps: one sweep per type over spans sorted by start.
        var merged: [AnonymizeSpan] = []
        for (_, group) in Dictionary(grouping: spans, by: \.type) {
            for span in group.sorted(by: { ($0.start, $0.end) < ($1.start, $1.end) }) {
                if let last = merged.last, last.type == span.type, span.start < last.end {
                    merged[merged.count - 1] = AnonymizeSpan(type: last.type, start: last.start, end: max(last.end, span.end),
                                                             score: max(last.score ?? 0, span.score ?? 0), recognizer: last.recognizer ?? span.recognizer)
                } else {
                    merged.append(span)
                }
            }
        }
        // Equal spans: the higher score stays, the later on a tie (input order breaks ties as Presidio's does).
        let order = Dictionary(spans.enumerated().map { ("\($0.element.start):\($0.element.end):\($0.element.type)", $0.offset) },
                               uniquingKeysWith: max)
        func rank(_ span: AnonymizeSpan) -> (Double, Int) { (span.score ?? 0, order["\(span.start):\(span.end):\(span.type)"] ?? 0) }
        // Sorted by start, longer first, best first among equals: a span is inside another
        // exactly when an earlier one in this order reaches as far.
        let sorted = merged.sorted {
            if $0.start != $1.start { return $0.start < $1.start }
            if $0.end != $1.end { return $0.end > $1.end }
            return rank($0) > rank($1)
        }
        var kept: [AnonymizeSpan] = []
        var reach = Int.min
        for span in sorted {
            if span.end <= reach { continue }
            kept.append(span)
            reach = span.end
        }
        var result: [AnonymizeSpan] = []
        for span in kept {
            if let last = result.last, last.type == span.type, last.end < span.start,
               scalars[last.end..<span.start].allSatisfy({ $0 == " " }) {
                result[result.count - 1] = AnonymizeSpan(type: span.type, start: last.start, end: span.end,
                                                         score: max(last.score ?? 0, span.score ?? 0), recognizer: last.recognizer)
            } else {
                result.append(span)
            }
        }
        return result
    }

    func apply(_ op: AnonymizeOperator, to value: String, type: String, patientKey: String?) throws -> String {
        switch op {
        case .replace(let newValue): return newValue ?? tagStyle.tag(type)
        case .redact: return ""
        case .keep, .deanonymizeKeep: return value
        case .mask(let character, let count, let fromEnd):
            // Code points, as Presidio (Python) counts them.
            var points = Array(value.unicodeScalars)
            let n = max(0, min(count, points.count))
            let range = fromEnd ? (points.count - n)..<points.count : 0..<n
            let mask = character.unicodeScalars.first!
            for k in range { points[k] = mask }
            return String(String.UnicodeScalarView(points))
        case .hash(let sha512, let salt?):
            let input = Array(value.utf8) + salt
            return sha512 ? SHA512.hash(data: input).hex : SHA256.hash(data: input).hex
        case .hash(let sha512, nil):
            let key = try required("hash without a salt")
            return sha512 ? key.pseudonym512(of: value, type: type) : key.pseudonym(of: value, type: type)
        case .encrypt(let clientKey?):
            let iv = AES._CBC.IV()
            let sealed = try AES._CBC.encrypt(Array(value.utf8), using: SymmetricKey(data: clientKey), iv: iv)
            return Data(Array(iv) + sealed).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        case .encrypt(nil):
            return try required("encrypt without a key").encrypt(value)
        case .decrypt(let clientKey?):
            let standard = value.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            guard let data = Data(base64Encoded: standard), data.count > 16, let iv = try? AES._CBC.IV(ivBytes: data.prefix(16)),
                  let plain = try? AES._CBC.decrypt(data.dropFirst(16), using: SymmetricKey(data: clientKey), iv: iv),
                  let text = String(data: plain, encoding: .utf8) else {
                throw DeidentificationError.invalid("Invalid input, the text to decrypt is not a value encrypted with this key")
            }
            return text
        case .decrypt(nil):
            return try required("decrypt without a key").decrypt(value)
        case .dateShift:
            let key = try required("date_shift")
            guard let patientKey, !patientKey.isEmpty else {
                throw DeidentificationError.invalid("operator 'date_shift' needs the request parameter 'patient_key'")
            }
            guard type == EntityType.dateTime.rawValue, let shifted = DateShift.shift(value, byDays: -key.shiftDays(patientKey: patientKey)) else {
                return tagStyle.tag(type)
            }
            return shifted
        }
    }

    func required(_ use: String) throws -> DeidentificationKey {
        guard let key else {
            throw DeidentificationError.keyFile("\(use) needs the model's key file (parameters.key_file)")
        }
        return key
    }

    /// Presidio's deanonymize: each item's operator by its type (no conflict
    /// resolution); items where the restored values now lie.
    public func deanonymize(_ text: String, spans: [AnonymizeSpan], operators: OperatorTable) throws -> (text: String, items: [AnonymizedItem]) {
        let scalars = Array(text.unicodeScalars)
        try Self.checkBounds(spans, length: scalars.count)
        var output = String.UnicodeScalarView()
        var items: [AnonymizedItem] = []
        var cursor = 0, written = 0
        for span in spans.sorted(by: { ($0.start, $0.end) < ($1.start, $1.end) }) {
            guard span.start >= cursor else { throw DeidentificationError.invalid("Invalid input, anonymizer results overlap") }
            output.append(contentsOf: scalars[cursor..<span.start])
            written += span.start - cursor
            let op = try operators.operatorFor(span.type)
            let restored = try apply(op, to: String(String.UnicodeScalarView(scalars[span.start..<span.end])), type: span.type, patientKey: nil)
            let length = restored.unicodeScalars.count
            output.append(contentsOf: restored.unicodeScalars)
            items.append(AnonymizedItem(start: written, end: written + length, operatorName: op.name, source: span))
            written += length
            cursor = span.end
        }
        output.append(contentsOf: scalars[cursor...])
        return (String(output), items.sorted { ($0.start, $0.end) > ($1.start, $1.end) })
    }
}

extension Digest {
    var hex: String { Array(self).hex }
}

/// What JSONSerialization produced: on Linux a JSON `true` and a `1` both
/// cast to Bool and to Int, so booleans are told apart by their encoding.
enum JSONKind {
    static func isBoolean(_ value: Any) -> Bool {
        guard let number = value as? NSNumber else { return false }
        return String(cString: number.objCType) == "c"
    }
}
