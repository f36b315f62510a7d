/// A request checked against its model: every input present, known, of the
/// right datatype, shape and byte size; one batch size across inputs.
public struct ValidatedRequest: Sendable {
    public var request: InferenceRequest
    /// Rows in the batch dimension (1 for models that do not batch).
    public var batchSize: Int
    /// Requested outputs, defaulting to every model output, in model order.
    public var outputs: [RequestedOutput]
    /// Tokens each row costs, counted by the backend before the request is
    /// queued (`ModelBackend.prepare`); nil where the shapes say it.
    public var rowTokens: [Int]? = nil
    /// Token ids the backend produced from text inputs before queuing, one
    /// ragged row per batch row, so the instance does not tokenize again.
    public var tokenized: TokenRows? = nil
    /// Sequence models: the request's sequence and the batch slot it runs in
    /// (set by the sequence scheduler; a backend that keeps per-slot state
    /// keys it by this, as Triton's direct strategy guarantees one sequence
    /// per slot at a time).
    public var sequence: SequenceFlags? = nil
    public var sequenceSlot: Int? = nil

    /// Rows `range` of this request: its inputs, token counts and tokens.
    public func rows(_ range: Range<Int>) -> ValidatedRequest {
        var part = self
        part.batchSize = range.count
        part.request.inputs = request.inputs.map { (try? $0.rows(range)) ?? $0 }
        part.rowTokens = rowTokens.map { Array($0[range]) }
        part.tokenized = tokenized?.rows(range)
        return part
    }
}

/// Ragged rows of token ids, packed back to back, with each token's segment
/// (BERT's token type: 0 for a single text and a pair's first text, 1 for
/// its second).
public struct TokenRows: Sendable, Equatable {
    public var ids: [Int32] = []
    /// (tokens) segment of each token; empty while every token is in segment 0.
    public var segments: [Int32] = []
    /// (rows + 1) offset of each row's first id; the last is the total.
    public var starts: [Int] = [0]

    public init() {}

    public var count: Int { starts.count - 1 }
    public func row(_ index: Int) -> ArraySlice<Int32> { ids[starts[index]..<starts[index + 1]] }
    /// Row `index`'s segments, or nil where they are all 0.
    public func rowSegments(_ index: Int) -> ArraySlice<Int32>? {
        segments.isEmpty ? nil : segments[starts[index]..<starts[index + 1]]
    }

    public mutating func append(_ row: some Collection<Int32>, segments rowSegments: (some Collection<Int32>)? = [Int32]?.none) {
        if let rowSegments {
            precondition(rowSegments.count == row.count, "one segment per token")
            if segments.isEmpty && !ids.isEmpty { segments = Array(repeating: 0, count: ids.count) }
            segments.append(contentsOf: rowSegments)
        } else if !segments.isEmpty {
            segments.append(contentsOf: repeatElement(0, count: row.count))
        }
        ids.append(contentsOf: row)
        starts.append(ids.count)
    }

    public func rows(_ range: Range<Int>) -> TokenRows {
        var part = TokenRows()
        for index in range { part.append(row(index), segments: rowSegments(index)) }
        return part
    }
}

extension ModelSpec {
    /// Checks `request` against this model. Messages follow Triton's wording and
    /// name the model, tensor and offending value, never tensor contents.
    public func validate(_ request: InferenceRequest) throws -> ValidatedRequest {
        var seen = Set<String>()
        var batchSize: Int?
        for tensor in request.inputs {
            guard seen.insert(tensor.name).inserted else {
                throw InferenceError.invalidArgument("input '\(tensor.name)' given more than once for model '\(name)'")
            }
            guard let spec = inputs.first(where: { $0.name == tensor.name }) else {
                throw InferenceError.invalidArgument("unexpected inference input '\(tensor.name)' for model '\(name)'")
            }
            guard tensor.dataType == spec.dataType else {
                throw InferenceError.invalidArgument(
                    "inference input '\(tensor.name)' data-type is '\(tensor.dataType.rawValue)', but model '\(name)' expects '\(spec.dataType.rawValue)'")
            }
            let rows = try checkShape(tensor, against: spec)
            if let existing = batchSize, existing != rows {
                throw InferenceError.invalidArgument(
                    "input '\(tensor.name)' has batch size \(rows) but other inputs of the request have \(existing) for model '\(name)'")
            }
            batchSize = rows
            try checkByteSize(tensor)
        }
        let missing = inputs.filter { !$0.isOptional && !seen.contains($0.name) }.map(\.name)
        if !missing.isEmpty {
            throw InferenceError.invalidArgument(
                "expected \(inputs.filter { !$0.isOptional }.count) inputs but got \(request.inputs.count) inputs for model '\(name)'; missing input '\(missing.joined(separator: "', '"))'")
        }
        // A batch larger than max_batch_size is valid here: the scheduler splits it.
        let rows = batchSize ?? 1
        var outputsWanted: [RequestedOutput] = []
        var outputSeen = Set<String>()
        for wanted in request.requestedOutputs {
            guard outputs.contains(where: { $0.name == wanted.name }) else {
                throw InferenceError.invalidArgument("unexpected inference output '\(wanted.name)' for model '\(name)'")
            }
            guard outputSeen.insert(wanted.name).inserted else {
                throw InferenceError.invalidArgument("output '\(wanted.name)' requested more than once for model '\(name)'")
            }
            outputsWanted.append(wanted)
        }
        if outputsWanted.isEmpty {
            outputsWanted = outputs.map { RequestedOutput(name: $0.name) }
        }
        return ValidatedRequest(request: request, batchSize: rows, outputs: outputsWanted)
    }

    /// Returns the request's batch size for this tensor.
    private func checkShape(_ tensor: Tensor, against spec: TensorSpec) throws -> Int {
        let expected = protocolShape(spec)
        let matches = tensor.shape.count == expected.count
            && zip(tensor.shape, expected).allSatisfy { got, want in got >= 0 && (want == -1 || got == want) }
        guard matches else {
            throw InferenceError.invalidArgument(
                "unexpected shape for input '\(tensor.name)' for model '\(name)'. Expected \(ShapeMath.format(expected)), got \(ShapeMath.format(tensor.shape))")
        }
        if maxBatchSize > 0 {
            guard tensor.shape[0] >= 1 else {
                throw InferenceError.invalidArgument("input '\(tensor.name)' for model '\(name)' has batch size 0")
            }
            return tensor.shape[0]
        }
        return 1
    }

    private func checkByteSize(_ tensor: Tensor) throws {
        if let expected = try ShapeMath.byteSize(tensor.shape, dataType: tensor.dataType, tensorName: tensor.name) {
            guard tensor.bytes.count == expected else {
                throw TritonErrors.inputByteSizeMismatch(input: tensor.name, model: name, expected: expected, got: tensor.bytes.count)
            }
        } else {
            let expected = try ShapeMath.elementCount(tensor.shape, tensorName: tensor.name)
            let got = try BytesElements.count(tensor.bytes, tensorName: tensor.name)
            guard got == expected else {
                throw InferenceError.invalidArgument(
                    "input '\(tensor.name)' for model '\(name)' has \(got) BYTES elements, but shape \(ShapeMath.format(tensor.shape)) needs \(expected)")
            }
        }
    }
}
