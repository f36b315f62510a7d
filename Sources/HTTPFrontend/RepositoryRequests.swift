import Foundation
import InferenceCore
import ModelRepository
import NIOCore
import SwiftProtobuf
import TritonProto

/// The model control API's request bodies and rules, shared wording with gRPC.
enum RepositoryRequests {
    struct LoadParameters {
        var config: Inference_ModelConfig?
        var files: [String: [UInt8]] = [:]
    }

    /// `{"parameters": {"config": "<model config JSON>", "file:<path>": "<base64>"}}`, all optional.
    static func loadParameters(_ body: ByteBuffer) throws -> LoadParameters {
        var result = LoadParameters()
        guard body.readableBytes > 0 else { return result }
        let root = try JSONValue.object(from: body, what: "model load request")
        guard let parameters = root["parameters"] else { return result }
        guard case .object(let members) = parameters else {
            throw InferenceError.invalidArgument("model load 'parameters' must be an object")
        }
        for (key, value) in members {
            if key == "config" {
                guard case .string(let json) = value else {
                    throw InferenceError.invalidArgument("load parameter 'config' must be a string holding the model configuration as JSON")
                }
                result.config = try modelConfig(fromJSON: json)
            } else if key.hasPrefix("file:") {
                guard case .string(let base64) = value, let data = Data(base64Encoded: base64) else {
                    throw InferenceError.invalidArgument("load parameter '\(key)' must be base64-encoded file contents")
                }
                result.files[String(key.dropFirst(5))] = Array(data)
            } else {
                throw InferenceError.invalidArgument("unknown model load parameter '\(key)'")
            }
        }
        return result
    }

    static func modelConfig(fromJSON json: String) throws -> Inference_ModelConfig {
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = false
        do {
            return try Inference_ModelConfig(jsonString: json, options: options)
        } catch {
            throw InferenceError.invalidArgument("load parameter 'config' is not a valid model configuration: \(error)")
        }
    }
}
