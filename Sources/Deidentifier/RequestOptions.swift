import Foundation
import InferenceCore

/// Entity names and thresholds as requests and configs spell them.
public enum EntityNames {
    public static func parse(_ list: String, field: String) throws -> Set<EntityType> {
        var types = Set<EntityType>()
        for name in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            guard let type = EntityType(rawValue: name) else {
                throw InferenceError.invalidArgument("\(field): unknown entity type '\(name.prefix(40))'; supported: \(EntityType.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            types.insert(type)
        }
        return types
    }

    public static func threshold(_ text: String, field: String) throws -> Double {
        guard let value = Double(text), (0...1).contains(value) else {
            throw InferenceError.invalidArgument("\(field) must be a number from 0 to 1")
        }
        return value
    }
}

/// One request's de-identification parameters, checked. Every failure is an
/// INVALID_ARGUMENT whose text names the parameter (Presidio's texts where
/// the Presidio routes pass the parameter on), never the request's text.
struct RequestOptions {
    var entities: Set<EntityType>
    var threshold: Double
    var operators: OperatorTable?
    var analyzerResults: [AnonymizeSpan]?
    var patientKey: String?
    var deanonymize: [AnonymizeSpan]?
    var deanonymizers: OperatorTable?
    var tagStyle: TagStyle?
    var allowList: [String]
    var allowListRegex: [NSRegularExpression]
    /// Spans only: DEIDENTIFIED_TEXT comes back empty (the Presidio analyzer route).
    var analyzeOnly: Bool

    /// The request parameter that asks for re-identification; the request
    /// pipeline refuses it to callers without the re-identification grant.
    static let deanonymizeParameter = DeidentificationParameters.reidentify

    init(_ parameters: [String: ParameterValue], settings: DeidentifierSettings, model: String) throws {
        func string(_ key: String) throws -> String? {
            switch parameters[key] {
            case nil: return nil
            case .string(let value)?: return value
            default: throw InferenceError.invalidArgument("model '\(model)': parameter '\(key)' must be a string")
            }
        }
        entities = try string("entities").map { try EntityNames.parse($0, field: "parameter 'entities'") } ?? settings.entities
        switch parameters["score_threshold"] {
        case nil: threshold = settings.threshold
        case .double(let value)?: threshold = try EntityNames.threshold(String(value), field: "parameter 'score_threshold'")
        case .string(let value)?: threshold = try EntityNames.threshold(value, field: "parameter 'score_threshold'")
        case .int64(let value)?: threshold = try EntityNames.threshold(String(value), field: "parameter 'score_threshold'")
        default: throw InferenceError.invalidArgument("model '\(model)': parameter 'score_threshold' must be a number from 0 to 1")
        }
        let fallback = settings.operators.fallback
        operators = try string("operators").map { json in try invalid { try OperatorTable(json: json, fallback: fallback) } }
        analyzerResults = try string("analyzer_results").map { json in try invalid { try SpanJSON.decode(json, scoreRequired: true) } }
        patientKey = try string("patient_key")
        deanonymize = try string(Self.deanonymizeParameter).map { json in try invalid { try SpanJSON.decode(json, scoreRequired: false) } }
        deanonymizers = try string("deanonymizers").map { json in
            try invalid { try OperatorTable(json: json, fallback: .decrypt(key: nil), deanonymizer: true) }
        }
        tagStyle = try string("tag_style").map { name in
            guard let style = TagStyle(rawValue: name) else { throw InferenceError.invalidArgument("model '\(model)': parameter 'tag_style' must be brackets or presidio") }
            return style
        }
        allowList = []
        allowListRegex = []
        if let json = try string("allow_list") {
            guard let list = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String] else {
                throw InferenceError.invalidArgument("parameter 'allow_list' must be a JSON list of strings")
            }
            switch try string("allow_list_match") ?? "exact" {
            case "exact": allowList = list
            case "regex":
                // Client expressions run on the server: bounded in number and size (and the
                // spans they are matched against are bounded below) to limit backtracking.
                guard list.count <= 32, list.allSatisfy({ $0.utf8.count <= 200 }) else {
                    throw InferenceError.invalidArgument("allow_list: at most 32 regular expressions of at most 200 bytes each")
                }
                allowListRegex = try list.map { pattern in
                    guard let expression = try? NSRegularExpression(pattern: pattern, options: [.caseInsensitive, .dotMatchesLineSeparators, .anchorsMatchLines]) else {
                        throw InferenceError.invalidArgument("allow_list: an entry is not a valid regular expression")
                    }
                    return expression
                }
            default: throw InferenceError.invalidArgument("allow_list_match must either be set to 'exact' or 'regex'.")
            }
        }
        switch parameters["analyze_only"] {
        case nil: analyzeOnly = false
        case .bool(let flag)?: analyzeOnly = flag
        default: throw InferenceError.invalidArgument("model '\(model)': parameter 'analyze_only' must be a boolean")
        }
    }

    /// Checks what can be checked before queuing, so a bad request fails alone.
    func check(textLength: Int, hasKey: Bool, model: String, configured: OperatorTable) throws {
        var used: [AnonymizeOperator] = []
        // The table the instance will use: the request's, else the model's config.
        let table = operators ?? configured
        if let spans = analyzerResults {
            // Presidio's rule: only the operators of types that have a span are checked.
            try invalid { try Anonymizer.checkBounds(spans, length: textLength) }
            try invalid { used = try Set(spans.map(\.type)).map { try table.operatorFor($0) } }
        } else {
            try invalid { used = try EntityType.allCases.map { try table.operatorFor($0.rawValue) } }
        }
        if let spans = deanonymize {
            try invalid { try Anonymizer.checkBounds(spans, length: textLength) }
            let ordered = spans.sorted { ($0.start, $0.end) < ($1.start, $1.end) }
            if zip(ordered, ordered.dropFirst()).contains(where: { $1.start < $0.end }) {
                throw InferenceError.invalidArgument("Invalid input, anonymizer results overlap")
            }
            let table = deanonymizers ?? OperatorTable(fallback: .decrypt(key: nil), deanonymizer: true)
            try invalid { used += try Set(spans.map(\.type)).map { try table.operatorFor($0) } }
        }
        if !hasKey, used.contains(where: \.usesServerKey) {
            throw InferenceError.invalidArgument("model '\(model)': hashing without a salt, encrypting or decrypting without a key, and date_shift need the model's key file (parameters.key_file)")
        }
        if used.contains(.dateShift), patientKey?.isEmpty ?? true {
            throw InferenceError.invalidArgument("operator 'date_shift' needs the request parameter 'patient_key'")
        }
    }

    /// Whether `span` of `text` is on the request's allow list.
    func allows(_ value: String) -> Bool {
        if allowList.contains(value) { return true }
        guard !allowListRegex.isEmpty, value.utf16.count <= 256 else { return false }
        let range = NSRange(location: 0, length: value.utf16.count)
        return allowListRegex.contains { $0.firstMatch(in: value, range: range) != nil }
    }
}

/// Runs `body`, reporting a de-identification error as INVALID_ARGUMENT with its text.
func invalid<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as DeidentificationError { throw InferenceError.invalidArgument(error.message) }
}

/// Spans as JSON: the ENTITIES output, and the spans requests send.
enum SpanJSON {
    /// At most this many spans in one request.
    static let maxSpans = 10_000

    static func encode(items: [AnonymizedItem]) -> [UInt8] {
        var out = "["
        for (k, item) in items.enumerated() {
            if k > 0 { out += "," }
            let s = item.source
            out += "{\"entity_type\":\(quoted(s.type)),\"start\":\(s.start),\"end\":\(s.end),\"score\":\(s.score.map { "\($0)" } ?? "null"),"
            out += "\"recognizer\":\(s.recognizer.map(quoted) ?? "null"),\"operator\":\"\(item.operatorName)\",\"new_start\":\(item.start),\"new_end\":\(item.end)}"
        }
        return Array((out + "]").utf8)
    }

    /// The analyzer's findings alone (no operator applied).
    static func encode(spans: [AnonymizeSpan]) -> [UInt8] {
        encode(items: spans.map { AnonymizedItem(start: $0.start, end: $0.end, operatorName: "none", source: $0) })
    }

    static func quoted(_ text: String) -> String {
        // Entity type and recognizer names are plain ASCII words: no escaping needed.
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) { return "\"\(text)\"" }
        let data = (try? JSONSerialization.data(withJSONObject: text, options: [.fragmentsAllowed])) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// Presidio's analyzer results (or anonymizer results), with Presidio's texts.
    static func decode(_ json: String, scoreRequired: Bool) throws -> [AnonymizeSpan] {
        guard let list = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [Any] else {
            throw DeidentificationError.invalid("Invalid input, analyzer_results must be a list")
        }
        guard list.count <= maxSpans else { throw DeidentificationError.invalid("Invalid input, at most \(maxSpans) results per request, got \(list.count)") }
        return try list.map { element in
            guard let span = element as? [String: Any] else { throw DeidentificationError.invalid("Invalid input, each result must be an object") }
            guard let type = span["entity_type"] as? String else { throw DeidentificationError.invalid("Invalid input, result must contain entity_type") }
            func index(_ name: String) throws -> Int {
                guard let value = span[name] else { throw DeidentificationError.invalid("Invalid input, result must contain \(name)") }
                guard let number = value as? NSNumber, !JSONKind.isBoolean(number), number.doubleValue == number.doubleValue.rounded() else {
                    let kind = value is String ? "string" : (value is NSNumber ? "boolean" : "object")
                    throw DeidentificationError.invalid("Invalid parameter value for \(name). Expecting 'number', but got '\(kind)'.")
                }
                return number.intValue
            }
            let start = try index("start"), end = try index("end")
            let score = span["score"] as? Double ?? (span["score"] as? NSNumber)?.doubleValue
            if scoreRequired && (span["score"] == nil || span["score"] is NSNull) {
                throw DeidentificationError.invalid("Invalid input, analyzer result must contain score")
            }
            return AnonymizeSpan(type: type, start: start, end: end, score: score)
        }
    }
}
