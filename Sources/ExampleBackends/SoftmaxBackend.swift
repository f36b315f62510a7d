import InferenceCore

/// Softmax over the last dimension of one FP32 input: logits to
/// probabilities, the post-processing step of the shipped text classifier
/// ensemble.
public struct SoftmaxBackend: ModelBackend {
    public let name = "softmax"
    public init() {}

    public func validate(_ spec: ModelSpec) throws {
        guard spec.inputs.count == 1, spec.outputs.count == 1, spec.inputs[0].dataType == .fp32, spec.outputs[0].dataType == .fp32,
              spec.inputs[0].dims == spec.outputs[0].dims, let last = spec.inputs[0].dims.last, last > 0 else {
            throw InferenceError.invalidArgument(
                "model '\(spec.name)': backend '\(name)' needs one FP32 input and one FP32 output of the same dims, the last fixed")
        }
    }

    public func makeInstance(for spec: ModelSpec, index: Int) throws -> any ModelInstance { SoftmaxInstance(spec: spec) }
}

final class SoftmaxInstance: ModelInstance {
    let spec: ModelSpec
    init(spec: ModelSpec) { self.spec = spec }

    func execute(_ batch: Batch) throws -> [[Tensor]] {
        let width = spec.inputs[0].dims.last!
        return try batch.items.map { item in
            guard let input = item.request.input(named: spec.inputs[0].name) else {
                throw InferenceError.invalidArgument("model '\(spec.name)': input '\(spec.inputs[0].name)' is required")
            }
            let logits = try input.values(as: Float.self)
            let probabilities = stride(from: 0, to: logits.count, by: width).flatMap { row in
                Softmax.probabilities(logits[row..<(row + width)])
            }
            return [Tensor(name: spec.outputs[0].name, shape: input.shape, values: probabilities)]
        }
    }
}
