import Foundation
import InferenceCore

/// What the OpenAI and text-embeddings-inference routes ask of a model: which
/// tensors carry text or token ids in, and which carries the answer out. A
/// model takes part by saying what it is in config.pbtxt:
/// `parameters { key: "task" value { string_value: "embedding" } }` (or
/// "classification").
struct TextModelBinding: Sendable {
    enum Task: String, Sendable { case embedding, classification }

    let spec: ModelSpec
    let task: Task
    /// A BYTES input that takes text.
    let text: TensorSpec?
    /// Integer inputs that take token ids and their attention mask.
    let ids: TensorSpec?
    let mask: TensorSpec?
    let tokenTypes: TensorSpec?
    /// The FP32 embedding or the logits; an output of token states
    /// (dims [-1, hidden]) is mean-pooled over each row's tokens.
    let output: TensorSpec

    init(spec: ModelSpec, expecting expected: Task) throws {
        self.spec = spec
        guard let value = spec.parameters["task"] else {
            throw RouteError.validation(
                "model '\(spec.name)' is not an \(expected.rawValue) model for this route: its config.pbtxt has no "
                + "parameters { key: \"task\" value { string_value: \"\(expected.rawValue)\" } }")
        }
        guard let task = Task(rawValue: value), task == expected else {
            throw RouteError.validation("model '\(spec.name)' is a '\(value)' model, not an \(expected.rawValue) model")
        }
        self.task = task
        let integer: Set<DataType> = [.int64, .int32]
        text = spec.inputs.first { $0.name == spec.parameters["text_input"] } ?? spec.inputs.first { $0.dataType == .bytes }
        ids = spec.inputs.first { $0.name == spec.parameters["ids_input"] }
            ?? spec.inputs.first { integer.contains($0.dataType) && ["INPUT_IDS", "input_ids"].contains($0.name) }
        mask = spec.inputs.first { integer.contains($0.dataType) && ["ATTENTION_MASK", "attention_mask"].contains($0.name) }
        // BERT exports take segment ids too: one segment, zeros.
        tokenTypes = spec.inputs.first { integer.contains($0.dataType) && ["TOKEN_TYPE_IDS", "token_type_ids"].contains($0.name) }
        guard let output = spec.outputs.first(where: { $0.name == spec.parameters["output"] })
            ?? spec.outputs.first(where: { $0.dataType == .fp32 }) else {
            throw RouteError.validation("model '\(spec.name)' has no FP32 output to read an \(task.rawValue) from")
        }
        self.output = output
    }

    /// The InferenceRequests for `inputs`: one of all rows where the model
    /// batches (the scheduler splits it past max_batch_size), else one per input.
    /// OpenAI's limit on inputs per request; token rows of models without a
    /// tokenizer are held to `defaultMaxTokens`, so padding stays bounded.
    static let maxInputs = 2048
    static let defaultMaxTokens = 8192

    func requests(for inputs: TextInputs, truncate: Bool, maxTokens: Int?) throws -> [InferenceRequest] {
        guard inputs.count <= Self.maxInputs else {
            throw RouteError.validation("at most \(Self.maxInputs) inputs per request, got \(inputs.count)")
        }
        let maxTokens = maxTokens ?? Self.defaultMaxTokens
        let batched = spec.maxBatchSize > 0
        func request(_ tensors: [Tensor]) -> InferenceRequest {
            var request = InferenceRequest(modelName: spec.name, modelVersion: spec.version, inputs: tensors,
                                           requestedOutputs: [RequestedOutput(name: output.name)])
            request.parameters["truncate"] = .bool(truncate)
            return request
        }
        switch inputs {
        case .texts(let texts):
            guard let text else {
                throw RouteError.validation("model '\(spec.name)' takes token ids, not text: send arrays of token ids")
            }
            let rowDims = text.dims.map { $0 == -1 ? 1 : $0 }
            guard rowDims.reduce(1, *) == 1 else {
                throw RouteError.validation("model '\(spec.name)': text input '\(text.name)' must take one string per row, its dims are \(ShapeMath.format(text.dims))")
            }
            let elements = texts.map { Array($0.utf8) }
            if batched { return [request([Tensor(name: text.name, shape: [elements.count] + rowDims, elements: elements)])] }
            return elements.map { request([Tensor(name: text.name, shape: rowDims, elements: [$0])]) }
        case .tokens(var rows):
            guard let ids else {
                throw RouteError.validation("model '\(spec.name)' takes text, not token ids")
            }
            if let long = rows.firstIndex(where: { $0.count > maxTokens }) {
                guard truncate else {
                    throw RouteError.validation("`inputs` must have less than \(maxTokens) tokens. Given: \(rows[long].count)")
                }
                rows = rows.map { Array($0.prefix(maxTokens)) }
            }
            func tensors(_ rows: [[Int64]], batch: Bool) -> [Tensor] {
                let length = rows.map(\.count).max() ?? 0
                let shape = batch ? [rows.count, length] : [length]
                let padded = rows.flatMap { $0 + Array(repeating: 0, count: length - $0.count) }
                let maskValues = rows.flatMap { Array(repeating: Int64(1), count: $0.count) + Array(repeating: 0, count: length - $0.count) }
                var result = [Self.integerTensor(ids.name, ids.dataType, shape, padded)]
                if let mask { result.append(Self.integerTensor(mask.name, mask.dataType, shape, maskValues)) }
                if let tokenTypes {
                    result.append(Self.integerTensor(tokenTypes.name, tokenTypes.dataType, shape, Array(repeating: 0, count: padded.count)))
                }
                return result
            }
            if batched { return [request(tensors(rows, batch: true))] }
            return rows.map { request(tensors([$0], batch: false)) }
        }
    }

    private static func integerTensor(_ name: String, _ type: DataType, _ shape: [Int], _ values: [Int64]) -> Tensor {
        type == .int32 ? Tensor(name: name, shape: shape, values: values.map { Int32(truncatingIfNeeded: $0) })
                       : Tensor(name: name, shape: shape, values: values)
    }

    /// The output's rows as float vectors, in input order. Token states
    /// ([rows, length, hidden]) are averaged over each row's first
    /// `lengths[row]` positions (its real tokens; all where unknown), as
    /// sentence-transformers pools them.
    func vectors(_ responses: [InferenceResponse], lengths: [Int]? = nil) throws -> [[Float]] {
        var row = 0
        return try responses.flatMap { response -> [[Float]] in
            guard let tensor = response.outputs.first(where: { $0.name == output.name }) else {
                throw InferenceError.internal("model '\(spec.name)' returned no '\(output.name)'")
            }
            let values = try tensor.values(as: Float.self)
            let batched = spec.maxBatchSize > 0
            let rows = batched ? (tensor.shape.first ?? 1) : 1
            guard rows > 0 else { return [] }
            let width = values.count / rows
            let perRow = Array(tensor.shape.dropFirst(batched ? 1 : 0))
            return (0..<rows).map { index in
                defer { row += 1 }
                let slice = Array(values[(index * width)..<((index + 1) * width)])
                guard perRow.count == 2, let hidden = perRow.last, hidden > 0 else { return slice }
                let positions = min(lengths?[safe: row] ?? perRow[0], perRow[0])
                guard positions > 0 else { return Array(repeating: 0, count: hidden) }
                var mean = [Float](repeating: 0, count: hidden)
                for position in 0..<positions {
                    for h in 0..<hidden { mean[h] += slice[position * hidden + h] }
                }
                return mean.map { $0 / Float(positions) }
            }
        }
    }

    /// The label of each logit: the output's label file, else LABEL_i.
    func label(_ index: Int) -> String {
        index < output.labels.count ? output.labels[index] : "LABEL_\(index)"
    }
}

/// Texts or token-id rows, as OpenAI's `input` and TEI's `inputs` carry them.
enum TextInputs: Sendable, Equatable {
    case texts([String])
    case tokens([[Int64]])

    var count: Int {
        switch self {
        case .texts(let texts): texts.count
        case .tokens(let rows): rows.count
        }
    }

    /// A string, a list of strings, a list of token ids, or a list of lists of ids.
    static func parse(_ value: JSONValue?, field: String) throws -> TextInputs {
        guard let value else { throw RouteError.validation("'\(field)' is required", param: field) }
        switch value {
        case .string(let text):
            return .texts([text])
        case .array(let items) where items.isEmpty:
            throw RouteError.empty("`\(field)` cannot be empty", param: field)
        case .array(let items):
            if items.allSatisfy({ if case .string = $0 { true } else { false } }) {
                return .texts(items.map { if case .string(let text) = $0 { text } else { "" } })
            }
            if let ids = try? tokenRow(items) { return .tokens([ids]) }
            let rows = try items.enumerated().map { index, item -> [Int64] in
                guard case .array(let row) = item else {
                    throw RouteError.validation("'\(field)' must be a string, a list of strings, a list of token ids or a list of lists of token ids; element \(index) is a \(item.typeName)", param: field)
                }
                return try tokenRow(row, field: "\(field)[\(index)]")
            }
            return .tokens(rows)
        default:
            throw RouteError.validation("'\(field)' must be a string or a list, got a \(value.typeName)", param: field)
        }
    }

    private static func tokenRow(_ items: [JSONValue], field: String = "") throws -> [Int64] {
        try items.enumerated().map { index, item in
            switch item {
            case .int(let value) where value >= 0: return value
            case .uint(let value) where value <= UInt64(Int64.max): return Int64(value)
            default: throw RouteError.validation("'\(field)' element \(index) must be a non-negative integer token id", param: field)
            }
        }
    }

    /// Refuses empty strings and empty token rows, naming the first.
    func requireNonEmpty(field: String) throws {
        switch self {
        case .texts(let texts):
            if let index = texts.firstIndex(where: \.isEmpty) {
                throw RouteError.empty("`\(field)` element \(index) is empty", param: field)
            }
        case .tokens(let rows):
            if let index = rows.firstIndex(where: \.isEmpty) {
                throw RouteError.empty("`\(field)` element \(index) has no tokens", param: field)
            }
        }
    }
}

/// Vector arithmetic of the routes.
enum EmbeddingMath {
    static func normalized(_ vector: [Float]) -> [Float] {
        let norm = vector.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? vector.map { $0 / norm } : vector
    }

    /// OpenAI's `encoding_format: base64`: the float32 values little-endian.
    static func base64(_ vector: [Float]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(vector.count * 4)
        for value in vector {
            withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        }
        return Data(bytes).base64EncodedString()
    }
}

/// An error of the OpenAI or TEI routes, with the kind TEI names
/// (`error_type`) and the request field OpenAI names (`param`).
struct RouteError: Error, Sendable {
    enum Kind: String, Sendable {
        case validation = "Validation", empty = "Empty", tokenizer = "Tokenizer", backend = "Backend"
    }
    let kind: Kind
    let message: String
    let param: String?

    static func validation(_ message: String, param: String? = nil) -> RouteError { .init(kind: .validation, message: message, param: param) }
    static func empty(_ message: String, param: String? = nil) -> RouteError { .init(kind: .empty, message: message, param: param) }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
