import Foundation
import InferenceCore
import SwiftProtobuf
import TritonProto

/// The model configuration in JSON, both ways, as Triton's HTTP API and its
/// load API's `config` parameter carry it.
enum ModelConfigJSON {
    /// The load API's `config` parameter: Triton's ModelConfig as protobuf JSON.
    static func decode(_ json: String) throws -> Inference_ModelConfig {
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = false
        do {
            return try Inference_ModelConfig(jsonString: json, options: options)
        } catch {
            throw InferenceError.invalidArgument("load parameter 'config' is not a valid model configuration: \(error)")
        }
    }

    /// The model configuration as Triton serves it: protobuf JSON with the
    /// proto field names, integers as numbers, and the fields clients read
    /// present even when they hold their default value.
    static func encode(_ config: Inference_ModelConfig) throws -> [UInt8] {
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        options.alwaysPrintInt64sAsNumbers = true
        let json: [UInt8] = try config.jsonUTF8Bytes(options: options)
        guard var object = try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any] else {
            throw InferenceError.internal("model configuration did not encode as a JSON object")
        }
        object["name"] = config.name
        object["platform"] = config.platform
        object["backend"] = config.backend
        object["max_batch_size"] = Int(config.maxBatchSize)
        for key in ["input", "output"] {
            let tensors = (object[key] as? [[String: Any]]) ?? []
            object[key] = tensors.map { tensor in
                var tensor = tensor
                if tensor["data_type"] == nil { tensor["data_type"] = "TYPE_INVALID" }
                if tensor["dims"] == nil { tensor["dims"] = [Int]() }
                if key == "input" {
                    tensor["format"] = tensor["format"] ?? "FORMAT_NONE"
                    tensor["optional"] = tensor["optional"] ?? false
                    tensor["allow_ragged_batch"] = tensor["allow_ragged_batch"] ?? false
                } else {
                    tensor["label_filename"] = tensor["label_filename"] ?? ""
                }
                tensor["is_shape_tensor"] = tensor["is_shape_tensor"] ?? false
                return tensor
            }
        }
        if var batching = object["dynamic_batching"] as? [String: Any] {
            batching["max_queue_delay_microseconds"] = batching["max_queue_delay_microseconds"] ?? 0
            batching["preserve_ordering"] = batching["preserve_ordering"] ?? false
            batching["priority_levels"] = batching["priority_levels"] ?? 0
            batching["default_priority_level"] = batching["default_priority_level"] ?? 0
            object["dynamic_batching"] = batching
        }
        return Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
    }
}
