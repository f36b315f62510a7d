import Foundation
import InferenceCore
import TritonProto

/// Runs a model's `model_warmup` samples before it reports READY, as Triton
/// does: each sample `count` times (at least once), with zero, random or
/// file data, duplicated to the sample's batch size.
enum ModelWarmupRunner {
    static func run(_ samples: [Inference_ModelWarmup], steps: ModelSteps, runner: any InferenceRunner, modelPath: String) async throws {
        let spec = steps.spec
        for sample in samples {
            do {
                let validated = try spec.validate(try makeRequest(sample, spec: spec, modelPath: modelPath))
                for _ in 0..<max(Int(sample.count), 1) {
                    _ = try await steps.run(validated, on: runner)
                }
            } catch let error as InferenceError {
                throw InferenceError.invalidArgument("model '\(spec.name)': warmup sample '\(sample.name)' failed: \(error.message)")
            }
        }
    }

    static func makeRequest(_ sample: Inference_ModelWarmup, spec: ModelSpec, modelPath: String) throws -> InferenceRequest {
        let batch = max(Int(sample.batchSize), 1)
        if spec.maxBatchSize == 0 && batch > 1 {
            throw InferenceError.invalidArgument("model '\(spec.name)': model_warmup '\(sample.name)' batch_size \(batch) needs a model that batches")
        }
        var inputs: [Tensor] = []
        for (name, input) in sample.inputs.sorted(by: { $0.key < $1.key }) {
            guard let dataType = DataType(protoType: input.dataType) else {
                throw InferenceError.invalidArgument("model '\(spec.name)': model_warmup '\(sample.name)' input '\(name)' has no valid data_type")
            }
            let dims = input.dims.map(Int.init)
            let elements = try ShapeMath.elementCount(dims, tensorName: name)
            var one: [UInt8]
            switch input.inputDataType {
            case .inputDataFile(let file)?:
                guard !file.contains(".."), !file.hasPrefix("/") else {
                    throw InferenceError.invalidArgument("model '\(spec.name)': model_warmup input_data_file '\(file)' must stay inside the warmup directory")
                }
                let path = (modelPath as NSString).appendingPathComponent("warmup/\(file)")
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw InferenceError.invalidArgument("model '\(spec.name)': model_warmup input_data_file '\(file)' cannot be read at \(path)")
                }
                one = Array(data)
            case .randomData? where dataType != .bytes:
                var generator = SystemRandomNumberGenerator()
                one = (0..<(elements * (dataType.elementByteSize ?? 1))).map { _ in UInt8.random(in: 0...255, using: &generator) }
                if dataType == .fp32 || dataType == .fp64 || dataType == .fp16 || dataType == .bf16 || dataType == .bool {
                    // Random bit patterns make NaNs and invalid booleans; small values are what warmup needs.
                    one = zeros(dataType, elements)
                }
            default:
                one = zeros(dataType, elements)
            }
            let shape = spec.maxBatchSize > 0 ? [batch] + dims : dims
            inputs.append(Tensor(name: name, dataType: dataType, shape: shape,
                                 bytes: Array((0..<(spec.maxBatchSize > 0 ? batch : 1)).map { _ in one }.joined())))
        }
        return InferenceRequest(id: "warmup-\(sample.name)", modelName: spec.name, modelVersion: spec.version, inputs: inputs)
    }

    private static func zeros(_ dataType: DataType, _ elements: Int) -> [UInt8] {
        if dataType == .bytes {
            // Zero data for strings is empty strings; simple_string-like models want "0".
            return BytesElements.serialize(Array(repeating: Array("0".utf8), count: elements))
        }
        return [UInt8](repeating: 0, count: elements * (dataType.elementByteSize ?? 1))
    }
}
