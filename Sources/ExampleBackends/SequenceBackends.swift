import InferenceCore
import Synchronization

/// Triton's example sequence models: an INT32 accumulator per sequence.
/// Each request adds INPUT and the START flag (1 on the first request, which
/// also resets the sum); the `dyna_sequence` kind adds the correlation id on
/// the END request, and keys its sums by the CORRID control (the oldest
/// strategy moves sequences between batch slots), where `sequence` keys them
/// by batch slot (the direct strategy keeps one sequence per slot). READY 0
/// leaves a sum alone and answers 0. The flags are read from the control
/// tensors the server filled, as a Triton backend reads them.
public struct SequenceAccumulatorBackend: ModelBackend {
    public enum Keying: Sendable { case slot, correlationID }
    public let name: String
    let keying: Keying

    public init(name: String, keying: Keying) {
        self.name = name
        self.keying = keying
    }

    public static let sequence = SequenceAccumulatorBackend(name: "sequence", keying: .slot)
    public static let dynaSequence = SequenceAccumulatorBackend(name: "dyna_sequence", keying: .correlationID)

    public func validate(_ spec: ModelSpec) throws {
        guard let sequence = spec.sequenceBatching else {
            throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(name)' needs sequence_batching")
        }
        guard spec.inputs.count == 1, spec.outputs.count == 1, spec.inputs[0].dataType == .int32, spec.outputs[0].dataType == .int32 else {
            throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(name)' needs one INT32 input and one INT32 output")
        }
        guard sequence.control(.start) != nil else {
            throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(name)' needs a CONTROL_SEQUENCE_START control")
        }
        if keying == .correlationID && sequence.control(.correlationID) == nil {
            throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(name)' needs a CONTROL_SEQUENCE_CORRID control")
        }
    }

    public func makeInstance(for spec: ModelSpec, index: Int) throws -> any ModelInstance {
        SequenceAccumulatorInstance(spec: spec, keying: keying, delay: try ExecutionDelay(spec))
    }
}

final class SequenceAccumulatorInstance: ModelInstance, @unchecked Sendable {
    enum Key: Hashable { case slot(Int), correlation(CorrelationID) }
    let spec: ModelSpec
    let sequence: SequenceBatchingSpec
    let keying: SequenceAccumulatorBackend.Keying
    let delay: ExecutionDelay
    /// Sums by key; touched only from this instance's thread.
    private var sums: [Key: Int32] = [:]

    init(spec: ModelSpec, keying: SequenceAccumulatorBackend.Keying, delay: ExecutionDelay) {
        self.spec = spec
        self.sequence = spec.sequenceBatching!
        self.keying = keying
        self.delay = delay
    }

    func execute(_ batch: Batch) throws -> [[Tensor]] {
        delay.apply()
        var seen = Set<Key>()
        return try batch.items.map { item in
            let request = item.request
            let shape = spec.maxBatchSize > 0 ? [1, 1] : [1]
            guard try sequence.flag(.ready, in: request) ?? true else {
                return [Tensor(name: spec.outputs[0].name, shape: shape, values: [Int32(0)])]
            }
            guard let input = try request.input(named: spec.inputs[0].name)?.values(as: Int32.self).first else {
                throw InferenceError.invalidArgument("model '\(spec.name)': input '\(spec.inputs[0].name)' is required")
            }
            let start = try sequence.flag(.start, in: request) ?? false
            let end = try sequence.flag(.end, in: request) ?? false
            let correlation = try sequence.correlation(in: request)
            let key: Key = switch keying {
            case .slot: .slot(item.sequenceSlot ?? 0)
            case .correlationID: .correlation(correlation ?? .number(0))
            }
            guard seen.insert(key).inserted else {
                throw InferenceError.internal("Execute() called with batch containing multiple inferences requests for the same Correlation ID")
            }
            var sum = (start ? 0 : sums[key] ?? 0) &+ input &+ (start ? 1 : 0)
            if end, keying == .correlationID, let correlation {
                sum = sum &+ Self.addend(correlation)
            }
            sums[key] = end ? nil : sum
            return [Tensor(name: spec.outputs[0].name, shape: shape, values: [sum])]
        }
    }

    /// What the END request adds: the id as an INT32 (a string id is read as
    /// a decimal integer, 0 where it is not one).
    static func addend(_ correlation: CorrelationID) -> Int32 {
        switch correlation {
        case .number(let id): Int32(truncatingIfNeeded: id)
        case .string(let text): Int32(text) ?? 0
        }
    }
}
