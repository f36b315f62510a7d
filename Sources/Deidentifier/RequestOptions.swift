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

/// Presidio's anonymizers map parsed: operators per type and a DEFAULT.
public struct OperatorTable: Sendable {
    public var perType: [EntityType: AnonymizeOperator] = [:]
    public var fallback: AnonymizeOperator?

    public init(json: String, field: String) throws {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw InferenceError.invalidArgument("\(field) must be a JSON object of operators by entity type")
        }
        for (name, value) in object {
            guard let config = value as? [String: Any] else { throw InferenceError.invalidArgument("\(field).\(name.prefix(40)) must be an object") }
            let op: AnonymizeOperator
            do { op = try AnonymizeOperator.parse(config, field: "\(field).\(name.prefix(40))") }
            catch let error as DeidentificationError { throw InferenceError.invalidArgument(error.message) }
            if name == "DEFAULT" { fallback = op; continue }
            guard let type = EntityType(rawValue: name) else {
                throw InferenceError.invalidArgument("\(field): unknown entity type '\(name.prefix(40))'")
            }
            perType[type] = op
        }
    }

    var usesKey: Bool {
        (Array(perType.values) + [fallback].compactMap { $0 }).contains { op in
            switch op {
            case .hash, .encrypt, .dateShift: true
            default: false
            }
        }
    }
}

/// One request's de-identification parameters, checked.
struct RequestOptions {
    var entities: Set<EntityType>
    var threshold: Double
    var operators: OperatorTable?
    var analyzerResults: [DetectedEntity]?
    var patientKey: String?
    var deanonymize: [DeanonymizeItem]?
    var tagStyle: TagStyle?

    /// The request parameter that asks for re-identification; the request
    /// pipeline refuses it to callers without the re-identification grant.
    static let deanonymizeParameter = "deanonymize"

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
        operators = try string("operators").map { try OperatorTable(json: $0, field: "parameter 'operators'") }
        analyzerResults = try string("analyzer_results").map { try EntityJSON.decodeSpans($0, field: "parameter 'analyzer_results'") }
        patientKey = try string("patient_key")
        tagStyle = try string("tag_style").map { name in
            guard let style = TagStyle(rawValue: name) else { throw InferenceError.invalidArgument("model '\(model)': parameter 'tag_style' must be brackets or presidio") }
            return style
        }
        deanonymize = try string(Self.deanonymizeParameter).map { try DeanonymizeItem.decode($0, field: "parameter 'deanonymize'") }
    }

    var needsKey: Bool { (operators?.usesKey ?? false) || deanonymize != nil }
}

/// The ENTITIES output and the spans requests send, as JSON.
enum EntityJSON {
    /// At most this many spans in one request's `analyzer_results`.
    static let maxSpans = 10_000

    static func encode(items: [AnonymizedItem]) -> [UInt8] {
        var out = "["
        for (k, item) in items.enumerated() {
            if k > 0 { out += "," }
            let s = item.source
            out += "{\"entity_type\":\"\(s.type.rawValue)\",\"start\":\(s.start),\"end\":\(s.end),\"score\":\(s.score),"
            out += "\"recognizer\":\"\(s.recognizer.rawValue)\",\"operator\":\"\(item.operatorName)\",\"new_start\":\(item.start),\"new_end\":\(item.end)}"
        }
        return Array((out + "]").utf8)
    }

    static func decodeSpans(_ json: String, field: String) throws -> [DetectedEntity] {
        guard let list = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] else {
            throw InferenceError.invalidArgument("\(field) must be a JSON list of {entity_type, start, end, score}")
        }
        guard list.count <= maxSpans else { throw InferenceError.invalidArgument("\(field): at most \(maxSpans) spans, got \(list.count)") }
        return try list.enumerated().map { index, span in
            guard let name = span["entity_type"] as? String, let start = span["start"] as? Int, let end = span["end"] as? Int, start >= 0, end >= start else {
                throw InferenceError.invalidArgument("\(field)[\(index)] needs entity_type, start and end (0 <= start <= end)")
            }
            let type = EntityType(rawValue: name) ?? .custom
            return DetectedEntity(type: type, start: start, end: end, score: span["score"] as? Double ?? 1.0, recognizer: .pattern)
        }
    }
}

/// A span of an anonymized text to restore (Presidio's deanonymize items).
struct DeanonymizeItem {
    var start: Int
    var end: Int
    var type: String

    static func decode(_ json: String, field: String) throws -> [DeanonymizeItem] {
        guard let list = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] else {
            throw InferenceError.invalidArgument("\(field) must be a JSON list of {start, end, entity_type}")
        }
        guard list.count <= EntityJSON.maxSpans else { throw InferenceError.invalidArgument("\(field): at most \(EntityJSON.maxSpans) items") }
        return try list.enumerated().map { index, item in
            guard let start = item["start"] as? Int, let end = item["end"] as? Int, start >= 0, end >= start else {
                throw InferenceError.invalidArgument("\(field)[\(index)] needs start and end (0 <= start <= end)")
            }
            return DeanonymizeItem(start: start, end: end, type: item["entity_type"] as? String ?? "")
        }
    }
}

/// Restores encrypted spans of an anonymized text.
enum Deanonymizer {
    /// The restored text, and where each restored value now lies (operator `decrypt`).
    static func restore(_ text: String, items: [DeanonymizeItem], key: DeidentificationKey?, model: String) throws -> (String, [AnonymizedItem]) {
        guard let key else { throw InferenceError.invalidArgument("model '\(model)': deanonymize needs the model's key file (parameters.key_file)") }
        let scalars = Array(text.unicodeScalars)
        var output = String.UnicodeScalarView()
        var cursor = 0
        var restored: [AnonymizedItem] = []
        for (index, item) in items.sorted(by: { $0.start < $1.start }).enumerated() {
            guard item.start >= cursor, item.end <= scalars.count else {
                throw InferenceError.invalidArgument("deanonymize item \(index): span \(item.start)..<\(item.end) overlaps another or lies outside the text")
            }
            output.append(contentsOf: scalars[cursor..<item.start])
            let value = String(String.UnicodeScalarView(scalars[item.start..<item.end]))
            let plain: String
            do { plain = try key.decrypt(value) }
            catch { throw InferenceError.invalidArgument("deanonymize item \(index): the span is not a value this server encrypted") }
            let start = output.count
            output.append(contentsOf: plain.unicodeScalars)
            let type = EntityType(rawValue: item.type) ?? .custom
            restored.append(AnonymizedItem(type: type, start: start, end: output.count, operatorName: "decrypt",
                                           source: DetectedEntity(type: type, start: item.start, end: item.end, score: 1.0, recognizer: .pattern)))
            cursor = item.end
        }
        output.append(contentsOf: scalars[cursor...])
        return (String(output), restored)
    }
}
