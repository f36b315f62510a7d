import Foundation
import InferenceCore
import TritonProto

/// Whether, and how, configs are completed from the model files, as Triton
/// does unless `--disable-auto-complete-config` (or `--strict-model-config=true`).
public struct AutoCompleteSettings: Sendable, Hashable {
    public var enabled: Bool
    /// `max_batch_size` given to a model that batches but names none
    /// (Triton's `--backend-config=…,default-max-batch-size`, 4).
    public var defaultMaxBatchSize: Int

    public init(enabled: Bool = true, defaultMaxBatchSize: Int = 4) {
        self.enabled = enabled
        self.defaultMaxBatchSize = defaultMaxBatchSize
    }
}

/// Triton's two auto-complete steps: the backend fields from the platform or
/// the model file's name (always), then the tensors, `max_batch_size` and
/// dynamic batching from what the model file declares (when enabled).
enum ModelConfigAutoComplete {
    /// Triton's platforms and the backend each implies.
    static let platformBackends: [String: String] = [
        "onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt", "pytorch_libtorch": "pytorch",
        "tensorflow_savedmodel": "tensorflow", "tensorflow_graphdef": "tensorflow",
    ]
    /// Model file names Triton recognises in a version directory.
    static let modelFiles: [(file: String, platform: String, backend: String)] = [
        ("model.savedmodel", "tensorflow_savedmodel", "tensorflow"), ("model.graphdef", "tensorflow_graphdef", "tensorflow"),
        ("model.plan", "tensorrt_plan", "tensorrt"), ("model.onnx", "onnxruntime_onnx", "onnxruntime"),
        ("model.pt", "pytorch_libtorch", "pytorch"), ("model.py", "", "python"),
    ]
    /// Triton backends BatchServer does not have, with what they serve, for the error.
    static let unservedBackends: [String: String] = [
        "tensorrt": "TensorRT plans", "pytorch": "TorchScript models", "tensorflow": "TensorFlow models",
        "python": "Python models", "openvino": "OpenVINO models", "dali": "DALI pipelines", "fil": "FIL tree models",
    ]

    /// Fills `backend` from `platform` (and the reverse for onnxruntime), or
    /// both from the model file in the first version directory.
    static func completeBackendFields(_ config: inout Inference_ModelConfig, modelPath: String) {
        if config.platform.isEmpty && config.backend.isEmpty && config.defaultModelFilename.isEmpty,
           let first = VersionSelector.availableVersions(modelPath: modelPath).first {
            let versionPath = (modelPath as NSString).appendingPathComponent(String(first))
            if let known = modelFiles.first(where: {
                FileManager.default.fileExists(atPath: (versionPath as NSString).appendingPathComponent($0.file))
            }) {
                config.platform = known.platform
                config.backend = known.backend
                if known.backend == "onnxruntime" { config.defaultModelFilename = known.file }
            }
        }
        if config.backend.isEmpty, let backend = platformBackends[config.platform] { config.backend = backend }
        if config.platform.isEmpty && config.backend == "onnxruntime" { config.platform = "onnxruntime_onnx" }
    }

    /// The error for a config whose backend this server does not have.
    static func unknownBackend(_ config: Inference_ModelConfig, model: String, configPath: String, known: [String]) -> InferenceError {
        if config.backend.isEmpty {
            if !config.platform.isEmpty {
                return .invalidArgument("\(configPath): model '\(model)': unexpected platform type '\(config.platform)'")
            }
            return .invalidArgument(
                "Invalid model name: Could not determine backend for model '\(model)' with no backend in model configuration. "
                + "Expected model name of the form 'model.<backend_name>'.")
        }
        if let what = unservedBackends[config.backend] {
            return .invalidArgument(
                "\(configPath): model '\(model)': backend '\(config.backend)' (\(what)) is not available in BatchServer; "
                + "it serves: \(known.joined(separator: ", "))")
        }
        return .invalidArgument("\(configPath): model '\(model)': unknown backend '\(config.backend)'; known backends: \(known.joined(separator: ", "))")
    }

    /// Completes inputs, outputs, `max_batch_size` and dynamic batching from
    /// the model file, following Triton's ORT backend: nothing happens when
    /// both tensor lists are given; an empty list takes every tensor of the
    /// model; a model batches when every tensor's first dimension is dynamic.
    static func completeFromModel(_ config: inout Inference_ModelConfig, signature: ModelSignature,
                                  settings: AutoCompleteSettings) throws {
        guard config.input.isEmpty || config.output.isEmpty else { return }
        let all = signature.inputs + signature.outputs
        let batches = !all.isEmpty && all.allSatisfy { $0.shape.first == -1 }
        if batches && config.maxBatchSize == 0 {
            config.maxBatchSize = Int32(max(settings.defaultMaxBatchSize, 0))
        } else if !batches && config.maxBatchSize != 0 {
            throw InferenceError.invalidArgument(
                "autofill failed for model '\(config.name)': model does not support batching while non-zero max_batch_size is specified")
        }
        if config.maxBatchSize > 1 && config.schedulingChoice == nil {
            config.dynamicBatching = Inference_ModelDynamicBatching()
        }
        func tensorDims(_ tensor: ModelFileTensor) -> (dims: [Int64], scalar: Bool) {
            let dims = (config.maxBatchSize > 0 ? Array(tensor.shape.dropFirst()) : tensor.shape).map(Int64.init)
            return dims.isEmpty ? ([1], config.maxBatchSize > 0) : (dims, false)
        }
        if config.input.isEmpty {
            config.input = signature.inputs.map { tensor in
                let (dims, scalar) = tensorDims(tensor)
                return Inference_ModelInput.with {
                    $0.name = tensor.name
                    $0.dataType = tensor.dataType.protoType
                    $0.dims = dims
                    if scalar { $0.reshape = Inference_ModelTensorReshape() }
                }
            }
        }
        if config.output.isEmpty {
            config.output = signature.outputs.map { tensor in
                let (dims, scalar) = tensorDims(tensor)
                return Inference_ModelOutput.with {
                    $0.name = tensor.name
                    $0.dataType = tensor.dataType.protoType
                    $0.dims = dims
                    if scalar { $0.reshape = Inference_ModelTensorReshape() }
                }
            }
        }
    }
}

extension DataType {
    /// config.pbtxt's enum for this datatype.
    public var protoType: Inference_DataType {
        switch self {
        case .bool: .typeBool
        case .uint8: .typeUint8
        case .uint16: .typeUint16
        case .uint32: .typeUint32
        case .uint64: .typeUint64
        case .int8: .typeInt8
        case .int16: .typeInt16
        case .int32: .typeInt32
        case .int64: .typeInt64
        case .fp16: .typeFp16
        case .fp32: .typeFp32
        case .fp64: .typeFp64
        case .bytes: .typeString
        case .bf16: .typeBf16
        }
    }
}
