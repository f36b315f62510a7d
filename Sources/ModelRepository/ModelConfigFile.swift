import Foundation
import InferenceCore
import SwiftProtobuf
import TritonProto

/// Reads config.pbtxt files (protobuf text format of Triton's ModelConfig).
public enum ModelConfigFile {
    public static let fileName = "config.pbtxt"

    /// Parses the text at `path`. Errors name the file, line and column; a
    /// config that does not parse fails only its own model.
    public static func load(path: String) throws -> Inference_ModelConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw InferenceError.invalidArgument("\(path): cannot read model configuration: \(error.localizedDescription)")
        }
        return try parse(text, path: path)
    }

    public static func parse(_ text: String, path: String) throws -> Inference_ModelConfig {
        do {
            return try Inference_ModelConfig(textFormatString: text)
        } catch {
            throw InferenceError.invalidArgument("\(path):\(locate(text, decodeError: error))")
        }
    }

    /// "line:column: what" for a text swift-protobuf refused.
    static func locate(_ text: String, decodeError: any Error) -> String {
        let locator: TextFormatLocator
        let entries: [TextFormatLocator.Entry]
        do {
            locator = try TextFormatLocator(text)
            entries = try locator.entries(in: 0..<locator.tokens.count)
        } catch {
            return "\(error.position): syntax error: \(error.message)"
        }
        do {
            if let found = try firstFailure(in: entries, locator: locator, wrap: { $0 }, parent: nil) { return found }
        } catch {
            return "\(error.position): syntax error: \(error.message)"
        }
        return "1:1: invalid model configuration: \(describe(decodeError))"
    }

    /// Descends into the first entry that does not decode on its own.
    private static func firstFailure(in entries: [TextFormatLocator.Entry], locator: TextFormatLocator,
                                     wrap: (String) -> String, parent: String?) throws(TextFormatLocator.SyntaxError) -> String? {
        for entry in entries {
            let name = entry.name.text
            let field = parent.map { "\($0).\(name)" } ?? name
            let entryError: (any Error)?
            do {
                _ = try Inference_ModelConfig(textFormatString: wrap(locator.text(entry.start..<entry.end)))
                entryError = nil
            } catch {
                entryError = error
            }
            guard let entryError else { continue }
            if case TextFormatDecodingError.unknownField = entryError, entry.bodies.isEmpty {
                return "\(entry.name.position): unknown field '\(field)'"
            }
            if !entry.bodies.isEmpty {
                // The name itself may be unknown, or not a message.
                if (try? Inference_ModelConfig(textFormatString: wrap("\(name) {}"))) == nil {
                    return "\(entry.name.position): unknown field '\(field)' (or it does not hold a message)"
                }
                for body in entry.bodies {
                    let inner = try locator.entries(in: locator.tokenRange(body))
                    if let found = try firstFailure(in: inner, locator: locator, wrap: { wrap("\(name) { \($0) }") }, parent: field) {
                        return found
                    }
                }
            }
            return "\(entry.name.position): invalid value for field '\(field)': \(describe(entryError))"
        }
        return nil
    }

    private static func describe(_ error: any Error) -> String {
        guard let decoding = error as? TextFormatDecodingError else { return "\(error)" }
        switch decoding {
        case .malformedNumber: return "malformed number"
        case .malformedText: return "malformed text"
        case .unknownField: return "unknown field"
        case .unrecognizedEnumValue: return "unknown enum value"
        default: return "\(decoding)"
        }
    }
}
