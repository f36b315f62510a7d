import InferenceCore

/// Triton's example "simple_identity": each output equals the input at the
/// same position, any datatype and shape.
public struct IdentityBackend: ModelBackend {
    public let name = "identity"
    public init() {}

    public func validate(_ spec: ModelSpec) throws {
        guard spec.inputs.count == spec.outputs.count else {
            throw InferenceError.invalidArgument(
                "model '\(spec.name)': backend '\(name)' needs as many outputs as inputs, got \(spec.inputs.count) inputs and \(spec.outputs.count) outputs")
        }
        for (input, output) in zip(spec.inputs, spec.outputs) where input.dataType != output.dataType || input.dims != output.dims {
            throw InferenceError.invalidArgument(
                "model '\(spec.name)': output '\(output.name)' must match input '\(input.name)' in data_type and dims")
        }
    }

    public func makeInstance(for spec: ModelSpec, index: Int) throws -> any ModelInstance {
        IdentityInstance(spec: spec)
    }
}

final class IdentityInstance: ModelInstance {
    let spec: ModelSpec
    init(spec: ModelSpec) { self.spec = spec }

    func execute(_ batch: Batch) throws -> [[Tensor]] {
        batch.items.map { item in
            zip(spec.inputs, spec.outputs).compactMap { input, output in
                guard var tensor = item.request.input(named: input.name) else { return nil }
                tensor.name = output.name
                return tensor
            }
        }
    }
}

/// The backends this module provides.
public enum ExampleBackends {
    public static var all: [any ModelBackend] { [AddSubBackend(), IdentityBackend()] }
}
