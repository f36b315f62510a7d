import Foundation
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
        IdentityInstance(spec: spec, delay: try ExecutionDelay(spec))
    }
}

final class IdentityInstance: ModelInstance {
    let spec: ModelSpec
    let delay: ExecutionDelay
    init(spec: ModelSpec, delay: ExecutionDelay) {
        self.spec = spec
        self.delay = delay
    }

    func execute(_ batch: Batch) throws -> [[Tensor]] {
        delay.apply()
        return batch.items.map { item in
            zip(spec.inputs, spec.outputs).compactMap { input, output in
                guard var tensor = item.request.input(named: input.name) else { return nil }
                tensor.name = output.name
                return tensor
            }
        }
    }
}

/// A fixed time each execution takes (model parameter `execute_delay_ms`),
/// so tests and benchmarks can make queueing and batching observable, as
/// Triton's own test models do.
struct ExecutionDelay: Sendable {
    let duration: Duration

    init(_ spec: ModelSpec) throws {
        guard let text = spec.parameters["execute_delay_ms"] else { duration = .zero; return }
        guard let milliseconds = Int(text), milliseconds >= 0 else {
            throw InferenceError.invalidArgument(
                "model '\(spec.name)': parameters.execute_delay_ms must be a non-negative integer, got '\(text)'")
        }
        duration = .milliseconds(milliseconds)
    }

    func apply() {
        if duration > .zero { Thread.sleep(forTimeInterval: Double(duration.nanosecondsClamped) / 1e9) }
    }
}

/// The backends this module provides.
public enum ExampleBackends {
    public static var all: [any ModelBackend] {
        [AddSubBackend(), IdentityBackend(), SequenceBackend.example, SequenceBackend.sequence, SequenceBackend.dynaSequence, RepeatBackend(), SoftmaxBackend()]
    }
}
