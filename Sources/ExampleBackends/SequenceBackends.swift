import InferenceCore
import Synchronization

/// Triton's sequence models, with the arithmetic its example clients check.
/// Every kind reads the control tensors the server filled (START, END, READY,
/// CORRID), as a Triton backend reads them.
///
/// - `sequence_example`: what Triton's `simple_sequence` and
///   `simple_dyna_sequence` ONNX graphs compute, without state:
///   OUTPUT = READY * (INPUT + START + END * int32(CORRID)); the END and CORRID
///   terms count where the model has those controls.
/// - `sequence`: Triton's QA `sequence` backend, an accumulator per batch slot
///   (the direct strategy keeps one sequence per slot): START sets it to the
///   sum of INPUT, later requests add theirs.
/// - `dyna_sequence`: Triton's QA `dyna_sequence` backend (`simple_string_dyna_sequence`),
///   an accumulator per correlation id (the oldest strategy moves sequences
///   between slots): START sets it to INPUT, later requests add INPUT, END adds
///   the id as an INT32 (a string id must be a decimal integer) and forgets it.
///
/// The accumulators answer their value in every element of OUTPUT, shaped as
/// INPUT; READY 0 leaves state alone and answers no output.
public struct SequenceBackend: ModelBackend {
    public enum Kind: Sendable { case stateless, slotAccumulator, correlationAccumulator }
    public let name: String
    let kind: Kind

    public static let example = SequenceBackend(name: "sequence_example", kind: .stateless)
    public static let sequence = SequenceBackend(name: "sequence", kind: .slotAccumulator)
    public static let dynaSequence = SequenceBackend(name: "dyna_sequence", kind: .correlationAccumulator)

    public func validate(_ spec: ModelSpec) throws {
        guard let sequence = spec.sequenceBatching else {
            throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(name)' needs sequence_batching")
        }
        guard spec.inputs.count == 1, spec.outputs.count == 1, spec.inputs[0].dataType == .int32, spec.outputs[0].dataType == .int32 else {
            throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(name)' needs one INT32 input and one INT32 output")
        }
        guard sequence.control(.start) != nil, sequence.control(.ready) != nil else {
            throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(name)' needs CONTROL_SEQUENCE_START and CONTROL_SEQUENCE_READY controls")
        }
        if kind == .correlationAccumulator && (sequence.control(.correlationID) == nil || sequence.control(.end) == nil) {
            throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(name)' needs CONTROL_SEQUENCE_END and CONTROL_SEQUENCE_CORRID controls")
        }
    }

    public func makeInstance(for spec: ModelSpec, index: Int) throws -> any ModelInstance {
        SequenceInstance(spec: spec, kind: kind, delay: try ExecutionDelay(spec))
    }
}

final class SequenceInstance: ModelInstance, @unchecked Sendable {
    enum Key: Hashable { case slot(Int), correlation(Int32) }
    let spec: ModelSpec
    let sequence: SequenceBatchingSpec
    let kind: SequenceBackend.Kind
    let delay: ExecutionDelay
    /// Accumulators by key; touched only from this instance's thread.
    private var sums: [Key: Int32] = [:]

    init(spec: ModelSpec, kind: SequenceBackend.Kind, delay: ExecutionDelay) {
        self.spec = spec
        self.sequence = spec.sequenceBatching!
        self.kind = kind
        self.delay = delay
    }

    func execute(_ batch: Batch) throws -> [[Tensor]] {
        delay.apply()
        var seen = Set<Key>()
        return try batch.items.map { item in
            let request = item.request
            guard try sequence.flag(.ready, in: request) ?? true else { return [] }
            guard let input = request.input(named: spec.inputs[0].name) else {
                throw InferenceError.invalidArgument("model '\(spec.name)': input '\(spec.inputs[0].name)' is required")
            }
            let values = try input.values(as: Int32.self)
            guard let first = values.first else {
                throw InferenceError.invalidArgument("model '\(spec.name)': input '\(spec.inputs[0].name)' is empty")
            }
            let start = try sequence.flag(.start, in: request) ?? false
            let end = try sequence.flag(.end, in: request) ?? false
            let correlation = try sequence.correlation(in: request).map(Self.integer) ?? 0
            let output: Int32
            switch kind {
            case .stateless:
                output = first &+ (start ? 1 : 0) &+ (end ? correlation : 0)
            case .slotAccumulator, .correlationAccumulator:
                let key: Key = kind == .slotAccumulator ? .slot(item.sequenceSlot ?? 0) : .correlation(correlation)
                guard seen.insert(key).inserted else {
                    throw InferenceError.unsupported("Execute() called with batch containing multiple inferences requests for the same Correlation ID")
                }
                var sum = values.reduce(start ? 0 : sums[key] ?? 0, &+)
                if end && kind == .correlationAccumulator { sum = sum &+ correlation }
                sums[key] = end ? nil : sum
                output = sum
            }
            let shape = input.shape
            return [Tensor(name: spec.outputs[0].name, shape: shape, values: [Int32](repeating: output, count: values.count))]
        }
    }

    /// The id as the models read it: a number truncated to INT32, a string as
    /// a decimal integer (Triton's backend parses it with `std::stoi`).
    static func integer(_ correlation: CorrelationID) throws -> Int32 {
        switch correlation {
        case .number(let id): return Int32(truncatingIfNeeded: id)
        case .string(let text):
            let trimmed = text.drop { $0.isWhitespace }
            let sign = trimmed.first == "-" || trimmed.first == "+" ? 1 : 0
            let digits = trimmed.dropFirst(sign).prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, let value = Int32(trimmed.prefix(sign + digits.count)) else {
                throw InferenceError.invalidArgument("dyna sequence backend expects correlation ID to be decodable into an integer")
            }
            return value
        }
    }
}
