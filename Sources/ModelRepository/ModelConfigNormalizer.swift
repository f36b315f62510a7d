import InferenceCore
import TritonProto

/// The config pipeline Triton applies: parse, fill defaults (this file), validate.
public enum ModelConfigNormalizer {
    /// Fills Triton's defaults so the served config states what will happen.
    public static func normalize(_ config: Inference_ModelConfig, directoryName: String) -> Inference_ModelConfig {
        var config = config
        if config.name.isEmpty { config.name = directoryName }
        if config.versionPolicy.policyChoice == nil {
            config.versionPolicy.latest = .with { $0.numVersions = 1 }
        }
        if case .latest(var latest)? = config.versionPolicy.policyChoice, latest.numVersions == 0 {
            latest.numVersions = 1
            config.versionPolicy.latest = latest
        }
        if config.instanceGroup.isEmpty && config.platform != "ensemble" {
            // The default group runs on the CPU: GPU instances are asked for, never assumed.
            config.instanceGroup = [.with { $0.kind = .cpu }]
        }
        for index in config.instanceGroup.indices {
            if config.instanceGroup[index].name.isEmpty {
                config.instanceGroup[index].name = "\(config.name)_\(index)"
            }
            if config.instanceGroup[index].kind == .auto { config.instanceGroup[index].kind = .cpu }
            if config.instanceGroup[index].count == 0 {
                // Triton's default count: 2 CPU instances for the ONNX Runtime
                // and TensorFlow backends, 1 otherwise.
                let twoOnCPU = config.backend == "onnxruntime" || config.backend == "tensorflow"
                config.instanceGroup[index].count = twoOnCPU && config.instanceGroup[index].kind == .cpu ? 2 : 1
            }
        }
        if case .dynamicBatching(var batching)? = config.schedulingChoice {
            // Triton: an empty preferred list means "the largest batch the model takes".
            if batching.preferredBatchSize.isEmpty && config.maxBatchSize > 0 {
                batching.preferredBatchSize = [config.maxBatchSize]
            }
            config.dynamicBatching = batching
        }
        return config
    }
}
