import Foundation
import InferenceCore
import TextTasks

/// Reading the text APIs' JSON fields into `TextTasks` values, with errors
/// that name the field.
enum TextFields {
    /// A string, a list of strings, a list of token ids, or a list of lists of ids.
    static func inputs(_ value: JSONValue?, field: String) throws -> TextInputs {
        guard let value else { throw TextTaskError.validation("'\(field)' is required", param: field) }
        switch value {
        case .string(let text):
            return .texts([text])
        case .array(let items) where items.isEmpty:
            throw TextTaskError.empty("`\(field)` cannot be empty", param: field)
        case .array(let items):
            if let texts = strings(items) { return .texts(texts) }
            if let ids = try? tokenRow(items) { return .tokens([ids]) }
            let rows = try items.enumerated().map { index, item -> [Int64] in
                guard case .array(let row) = item else {
                    throw TextTaskError.validation("'\(field)' must be a string, a list of strings, a list of token ids or a list of lists of token ids; element \(index) is a \(item.typeName)", param: field)
                }
                return try tokenRow(row, field: "\(field)[\(index)]")
            }
            return .tokens(rows)
        default:
            throw TextTaskError.validation("'\(field)' must be a string or a list, got a \(value.typeName)", param: field)
        }
    }

    /// The strings of a list, or nil where any item is not a string.
    static func strings(_ items: [JSONValue]) -> [String]? {
        var texts: [String] = []
        for item in items {
            guard case .string(let text) = item else { return nil }
            texts.append(text)
        }
        return texts
    }

    /// A list of non-empty strings (a rerank's texts or documents; Cohere's
    /// documents may also be `{"text": …}` objects).
    static func texts(_ value: JSONValue?, field: String) throws -> [String] {
        guard case .array(let items)? = value else {
            throw TextTaskError.validation("'\(field)' must be a list of strings", param: field)
        }
        guard !items.isEmpty else { throw TextTaskError.empty("`\(field)` cannot be empty", param: field) }
        return try items.enumerated().map { index, item in
            var text: String?
            if case .string(let value) = item { text = value }
            if case .string(let value)? = item["text"] { text = value }
            guard let text, !text.isEmpty else {
                throw TextTaskError.validation("'\(field)' element \(index) must be a non-empty string", param: field)
            }
            return text
        }
    }

    static func tokenRow(_ items: [JSONValue], field: String = "") throws -> [Int64] {
        try items.enumerated().map { index, item in
            switch item {
            case .int(let value) where value >= 0: return value
            case .uint(let value) where value <= UInt64(Int64.max): return Int64(value)
            default: throw TextTaskError.validation("'\(field)' element \(index) must be a non-negative integer token id", param: field)
            }
        }
    }

    /// TEI's /predict `inputs`: "text" (one), ["a", "b"] (one pair), or a
    /// batch [["a"], ["b", "c"], …] of texts and pairs. Returns the rows in
    /// order and whether the request was a single input.
    static func predictInputs(_ value: JSONValue?) throws -> (rows: [PredictRow], single: Bool) {
        func text(_ item: JSONValue, _ index: Int) throws -> String {
            guard case .string(let text) = item, !text.isEmpty else {
                throw TextTaskError.validation("'inputs' element \(index) must be a non-empty string", param: "inputs")
            }
            return text
        }
        func row(_ items: [JSONValue], _ index: Int) throws -> PredictRow {
            switch items.count {
            case 1: return .text(try text(items[0], index))
            case 2: return .pair(TextPair(try text(items[0], index), try text(items[1], index)))
            default:
                throw TextTaskError.validation("'inputs' element \(index) must hold one text or a pair of texts, it holds \(items.count)", param: "inputs")
            }
        }
        switch value {
        case .string(let value)?:
            return ([.text(try text(.string(value), 0))], true)
        case .array(let items)? where !items.isEmpty:
            if strings(items) != nil { return ([try row(items, 0)], true) }
            return (try items.enumerated().map { index, item in
                guard case .array(let inner) = item else {
                    throw TextTaskError.validation("'inputs' element \(index) must be a list of one or two strings", param: "inputs")
                }
                return try row(inner, index)
            }, false)
        case .array?:
            throw TextTaskError.empty("`inputs` cannot be empty", param: "inputs")
        default:
            throw TextTaskError.validation("'inputs' must be a string or a list", param: "inputs")
        }
    }

    enum PredictRow: Equatable {
        case text(String), pair(TextPair)
    }

    /// TEI's reading options: `truncate` (default `truncateByDefault`),
    /// `truncation_direction`, `prompt_name`, and `normalize` (default true).
    static func options(_ fields: JSONValue, truncateByDefault: Bool = true) throws -> TextOptions {
        TextOptions(
            truncate: try bool(fields["truncate"], field: "truncate") ?? truncateByDefault,
            truncationDirection: try string(fields["truncation_direction"], field: "truncation_direction").map { try TextOptions.direction($0) },
            promptName: try string(fields["prompt_name"], field: "prompt_name"),
            normalize: try bool(fields["normalize"], field: "normalize") ?? true)
    }

    static func bool(_ value: JSONValue?, field: String) throws -> Bool? {
        switch value {
        case nil, .null?: return nil
        case .bool(let flag)?: return flag
        default: throw TextTaskError.validation("'\(field)' must be a boolean", param: field)
        }
    }

    static func string(_ value: JSONValue?, field: String) throws -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let text)?: return text
        default: throw TextTaskError.validation("'\(field)' must be a string", param: field)
        }
    }

    static func count(_ value: JSONValue?, field: String) throws -> Int? {
        switch value {
        case nil, .null?: return nil
        case .int(let n)? where n >= 0: return Int(n)
        case .uint(let n)? where n <= UInt64(Int.max): return Int(n)
        default: throw TextTaskError.validation("'\(field)' must be a non-negative integer", param: field)
        }
    }

    /// The body's `model` (our extension on TEI's routes).
    static func model(_ value: JSONValue?) throws -> String? {
        try string(value, field: "model")
    }

    /// OpenAI's and TEI's `dimensions` (a positive integer), as the model allows it.
    static func dimensions(_ value: JSONValue?, model: TextModel) throws -> Int? {
        switch value {
        case nil, .null?: return nil
        case .int(let n)? where n > 0: return try model.dimensions(Int(n))
        default: throw TextTaskError.validation("'dimensions' must be a positive integer", param: "dimensions")
        }
    }
}
