/// config.pbtxt's `sequence_batching`: requests tied by a correlation id run
/// in order on one sequence slot, with control inputs the server fills and
/// state it carries between them.
public struct SequenceBatchingSpec: Sendable {
    public enum Strategy: Sendable, Equatable {
        /// Each sequence owns one batch slot of one instance until it ends.
        case direct
        /// Sequences share instances; a batch takes the oldest requests of
        /// distinct sequences (never two of one sequence).
        case oldest(maxCandidateSequences: Int, preferredBatchSizes: [Int], maxQueueDelay: Duration)
    }

    public var strategy: Strategy
    /// A sequence with no request for this long is released (Triton's default: 1 s).
    public var maxSequenceIdle: Duration
    public var controls: [SequenceControl]
    public var states: [SequenceState]

    public init(strategy: Strategy = .direct, maxSequenceIdle: Duration = .seconds(1),
                controls: [SequenceControl] = [], states: [SequenceState] = []) {
        self.strategy = strategy
        self.maxSequenceIdle = maxSequenceIdle
        self.controls = controls
        self.states = states
    }

    public func control(_ kind: SequenceControl.Kind) -> SequenceControl? { controls.first { $0.kind == kind } }
}

/// One control input the server fills.
public struct SequenceControl: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case start, end, ready, correlationID }
    /// The false and true values of a flag control, in its datatype.
    public enum FlagValues: Sendable, Equatable {
        case int32(Int32, Int32), fp32(Float, Float), bool(Bool, Bool)
    }

    public var kind: Kind
    public var tensorName: String
    /// Flags: their values; the correlation id: nil (its datatype says how it is written).
    public var values: FlagValues?
    public var dataType: DataType

    public init(kind: Kind, tensorName: String, values: FlagValues?, dataType: DataType) {
        self.kind = kind
        self.tensorName = tensorName
        self.values = values
        self.dataType = dataType
    }

    /// The control's tensor for one request: `[1]`, or `[1, 1]` with the batch dimension.
    public func tensor(flag: Bool, batched: Bool) -> Tensor {
        let shape = batched ? [1, 1] : [1]
        switch values {
        case .int32(let off, let on)?: return Tensor(name: tensorName, shape: shape, values: [flag ? on : off])
        case .fp32(let off, let on)?: return Tensor(name: tensorName, shape: shape, values: [flag ? on : off])
        case .bool(let off, let on)?: return Tensor(name: tensorName, shape: shape, values: [flag ? on : off])
        case nil: return Tensor(name: tensorName, shape: shape, values: [flag ? Int32(1) : 0])
        }
    }

    /// The correlation-id control's tensor, in the control's datatype
    /// (narrower integers keep the low bits, as Triton writes them).
    public func tensor(correlation: CorrelationID, batched: Bool) -> Tensor {
        let shape = batched ? [1, 1] : [1]
        switch (correlation, dataType) {
        case (.string(let text), _): return Tensor(name: tensorName, shape: shape, elements: [Array(text.utf8)])
        case (.number(let id), .int64): return Tensor(name: tensorName, shape: shape, values: [Int64(truncatingIfNeeded: id)])
        case (.number(let id), .uint32): return Tensor(name: tensorName, shape: shape, values: [UInt32(truncatingIfNeeded: id)])
        case (.number(let id), .int32): return Tensor(name: tensorName, shape: shape, values: [Int32(truncatingIfNeeded: id)])
        case (.number(let id), _): return Tensor(name: tensorName, shape: shape, values: [id])
        }
    }
}

/// Implicit state: an output of one request fed back as an input of the next.
public struct SequenceState: Sendable, Equatable {
    public var inputName: String
    public var outputName: String
    public var dataType: DataType
    public var dims: [Int]
    /// The value a sequence starts from: its bytes (zeros, or a file's contents).
    public var initialBytes: [UInt8]

    public init(inputName: String, outputName: String, dataType: DataType, dims: [Int], initialBytes: [UInt8]) {
        self.inputName = inputName
        self.outputName = outputName
        self.dataType = dataType
        self.dims = dims
        self.initialBytes = initialBytes
    }
}

/// A sequence's correlation id: an unsigned integer or a string.
public enum CorrelationID: Sendable, Hashable, CustomStringConvertible {
    case number(UInt64)
    case string(String)

    public var description: String {
        switch self {
        case .number(let id): String(id)
        case .string(let text): text
        }
    }

    /// The datatype Triton names in its type-mismatch error.
    var wireType: String {
        switch self {
        case .number: "UINT64"
        case .string: "BYTES"
        }
    }
}

/// A request's place in its sequence: the protocol parameters `sequence_id`,
/// `sequence_start` and `sequence_end`.
public struct SequenceFlags: Sendable, Equatable {
    public var correlation: CorrelationID
    public var start: Bool
    public var end: Bool

    public init(correlation: CorrelationID, start: Bool, end: Bool) {
        self.correlation = correlation
        self.start = start
        self.end = end
    }

    /// The flags of a request to a sequence model, with Triton's errors.
    public static func of(_ request: InferenceRequest, spec: ModelSpec, sequence: SequenceBatchingSpec) throws -> SequenceFlags {
        func flag(_ key: String) throws -> Bool {
            switch request.parameters[key] {
            case nil: return false
            case .bool(let value)?: return value
            default: throw InferenceError.invalidArgument("invalid value type for '\(key)' parameter, expected bool_param.")
            }
        }
        let correlation: CorrelationID?
        switch request.parameters["sequence_id"] {
        case nil: correlation = nil
        case .int64(let id)?: correlation = id > 0 ? .number(UInt64(id)) : nil
        case .uint64(let id)?: correlation = id > 0 ? .number(id) : nil
        case .string(let text)?: correlation = text.isEmpty ? nil : .string(text)
        default: throw InferenceError.invalidArgument("invalid value type for 'sequence_id' parameter, expected int64_param or string_param.")
        }
        guard let correlation else {
            throw InferenceError.invalidArgument(
                "inference request to model '\(spec.name)' must specify a non-zero or non-empty correlation ID")
        }
        if let control = sequence.control(.correlationID) {
            let isString = control.dataType == .bytes
            if case .string = correlation, !isString {
                throw Self.typeMismatch(correlation, control: control, model: spec.name)
            }
            if case .number = correlation, isString {
                throw Self.typeMismatch(correlation, control: control, model: spec.name)
            }
        }
        if case .string(let text) = correlation, text.utf8.count > 128 {
            throw InferenceError.invalidArgument("correlation ID of model '\(spec.name)' is longer than 128 bytes")
        }
        return SequenceFlags(correlation: correlation, start: try flag("sequence_start"), end: try flag("sequence_end"))
    }

    private static func typeMismatch(_ correlation: CorrelationID, control: SequenceControl, model: String) -> InferenceError {
        .invalidArgument("sequence batching control '\(control.tensorName)' data-type is '\(correlation.wireType)', but model '\(model)' expects '\(control.dataType.rawValue)'")
    }
}

extension SequenceBatchingSpec {
    /// A flag control's value in a request as the server filled it; nil where
    /// the model has no such control.
    public func flag(_ kind: SequenceControl.Kind, in request: InferenceRequest) throws -> Bool? {
        guard let control = control(kind), let tensor = request.input(named: control.tensorName) else { return nil }
        switch control.values {
        case .int32(_, let on)?: return try tensor.values(as: Int32.self).first == on
        case .fp32(_, let on)?: return try tensor.values(as: Float.self).first == on
        case .bool(_, let on)?: return try tensor.values(as: Bool.self).first == on
        case nil: return nil
        }
    }

    /// The correlation-id control's value in a request, if the model has one.
    public func correlation(in request: InferenceRequest) throws -> CorrelationID? {
        guard let control = control(.correlationID), let tensor = request.input(named: control.tensorName) else { return nil }
        switch tensor.dataType {
        case .bytes: return try tensor.elements().first.map { .string(String(decoding: $0, as: UTF8.self)) }
        case .int64: return try tensor.values(as: Int64.self).first.map { .number(UInt64(bitPattern: $0)) }
        case .int32: return try tensor.values(as: Int32.self).first.map { .number(UInt64(UInt32(bitPattern: $0))) }
        case .uint32: return try tensor.values(as: UInt32.self).first.map { .number(UInt64($0)) }
        default: return try tensor.values(as: UInt64.self).first.map { .number($0) }
        }
    }
}
