import Foundation
import InferenceCore
import SwiftProtobuf
import TritonProto

/// Reads config.pbtxt files (protobuf text format of Triton's ModelConfig).
public enum ModelConfigFile {
    public static let fileName = "config.pbtxt"

    /// Parses the text at `path`. Errors name the file; a config that does not
    /// parse fails only its own model.
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
            throw InferenceError.invalidArgument("\(path): invalid model configuration: \(error)")
        }
    }
}
