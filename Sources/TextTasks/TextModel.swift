import Foundation
import InferenceCore

/// What the embedding, classification and rerank APIs (OpenAI, TEI, Cohere,
/// vLLM) ask of a model: which tensors carry text, sentence pairs or token
/// ids in, and which carry the answer out. A model takes part by saying what
/// it is in config.pbtxt:
/// `parameters { key: "task" value { string_value: "embedding" } }` (or
/// "classification", "rerank", "sparse_embedding").
public struct TextModel: Sendable {
    public enum Task: String, Sendable, CaseIterable {
        case embedding, classification, rerank
        case sparseEmbedding = "sparse_embedding"

        /// How the APIs name a model of this task in their errors.
        var noun: String {
            switch self {
            case .embedding: "an embedding model"
            case .classification: "a classifier model"
            case .rerank: "a re-ranker model"
            case .sparseEmbedding: "an embedding model with SPLADE pooling"
            }
        }
    }

    public let spec: ModelSpec
    public let task: Task
    /// A BYTES input that takes text, and one that takes a pair's second text.
    public let text: TensorSpec?
    public let pair: TensorSpec?
    /// Integer inputs that take token ids, their attention mask and segments.
    public let ids: TensorSpec?
    public let mask: TensorSpec?
    public let tokenTypes: TensorSpec?
    /// The FP32 embedding, logits or sparse vector; an output of token
    /// states (dims [-1, hidden]) here is mean-pooled over each row's tokens.
    public let output: TensorSpec
    /// Every token's state (LAST_HIDDEN_STATE, dims [-1, hidden]), where the model has it.
    public let tokenStates: TensorSpec?

    /// OpenAI's limit on inputs per request; token rows of models without a
    /// tokenizer are held to `defaultMaxTokens`, so padding stays bounded.
    public static let maxInputs = 2048
    public static let defaultMaxTokens = 8192

    public init(spec: ModelSpec, accepting tasks: [Task]) throws {
        self.spec = spec
        let wanted = tasks.map(\.noun).joined(separator: " or ")
        guard let value = spec.parameters["task"] else {
            throw TextTaskError.backend(
                "model '\(spec.name)' is not \(wanted): its config.pbtxt has no "
                + "parameters { key: \"task\" value { string_value: \"\(tasks[0].rawValue)\" } }")
        }
        guard let task = Task(rawValue: value), tasks.contains(task) else {
            throw TextTaskError.backend("model '\(spec.name)' is a '\(value)' model, not \(wanted)")
        }
        self.task = task
        let integer: Set<DataType> = [.int64, .int32]
        // The encoder's parameter names (text_tensor, …) or the routes' older ones (text_input, …).
        func named(_ parameters: String...) -> TensorSpec? {
            parameters.lazy.compactMap { key in spec.parameters[key].flatMap { name in spec.inputs.first { $0.name == name } } }.first
        }
        let pair = named("text_pair_tensor", "text_pair_input")
            ?? spec.inputs.first { $0.dataType == .bytes && ["TEXT_PAIR", "text_pair"].contains($0.name) }
        self.pair = pair
        text = named("text_tensor", "text_input") ?? spec.inputs.first { $0.dataType == .bytes && $0.name != pair?.name }
        ids = named("input_ids_tensor", "ids_input")
            ?? spec.inputs.first { integer.contains($0.dataType) && ["INPUT_IDS", "input_ids"].contains($0.name) }
        mask = spec.inputs.first { integer.contains($0.dataType) && ["ATTENTION_MASK", "attention_mask"].contains($0.name) }
        tokenTypes = spec.inputs.first { integer.contains($0.dataType) && ["TOKEN_TYPE_IDS", "token_type_ids"].contains($0.name) }
        let floats = spec.outputs.filter { $0.dataType == .fp32 }
        guard let output = floats.first(where: { $0.name == spec.parameters["output"] })
            ?? floats.first(where: { $0.dims.count == 1 }) ?? floats.first else {
            throw TextTaskError.backend("model '\(spec.name)' has no FP32 output to read \(task.noun)'s answer from")
        }
        self.output = output
        // An ONNX export's last_hidden_state is both: pooled for /embed, whole for /embed_all.
        tokenStates = floats.first { $0.dims.count == 2 && $0.dims[0] == -1 }
    }

    /// The InferenceRequests for `inputs`: one of all rows where the model
    /// batches (the scheduler splits it past max_batch_size), else one per
    /// input; token states come in requests of at most max_batch_size rows,
    /// each padded to its own longest row.
    public func requests(for inputs: TextInputs, options: TextOptions, output wanted: TensorSpec? = nil,
                         maxTokens: Int?) throws -> [InferenceRequest] {
        guard inputs.count <= Self.maxInputs else {
            throw TextTaskError.validation("at most \(Self.maxInputs) inputs per request, got \(inputs.count)")
        }
        let output = wanted ?? self.output
        let maxTokens = maxTokens ?? Self.defaultMaxTokens
        let batched = spec.maxBatchSize > 0
        let chunk = !batched ? 1 : output.name == tokenStates?.name ? spec.maxBatchSize : Int.max
        func request(_ tensors: [Tensor]) -> InferenceRequest {
            var request = InferenceRequest(modelName: spec.name, modelVersion: spec.version, inputs: tensors,
                                           requestedOutputs: [RequestedOutput(name: output.name)])
            request.parameters = options.parameters
            return request
        }
        func chunks<T>(_ rows: [T]) -> [[T]] {
            stride(from: 0, to: rows.count, by: min(chunk, max(rows.count, 1))).map { Array(rows[$0..<min($0 + chunk, rows.count)]) }
        }
        func textTensor(_ spec: TensorSpec, _ texts: [String]) throws -> Tensor {
            let rowDims = spec.dims.map { $0 == -1 ? 1 : $0 }
            guard rowDims.reduce(1, *) == 1 else {
                throw TextTaskError.validation("model '\(self.spec.name)': text input '\(spec.name)' must take one string per row, its dims are \(ShapeMath.format(spec.dims))")
            }
            return Tensor(name: spec.name, shape: (batched ? [texts.count] : []) + rowDims, elements: texts.map { Array($0.utf8) })
        }
        switch inputs {
        case .texts(let texts):
            guard let text else {
                throw TextTaskError.validation("model '\(spec.name)' takes token ids, not text: send arrays of token ids")
            }
            return try chunks(texts).map { try request([textTensor(text, $0)]) }
        case .pairs(let pairs):
            guard let text, let pair else {
                throw TextTaskError.validation("model '\(spec.name)' takes no sentence pairs (it has no TEXT_PAIR input)")
            }
            return try chunks(pairs).map { part in
                try request([textTensor(text, part.map(\.first)), textTensor(pair, part.map(\.second))])
            }
        case .tokens(var rows):
            guard let ids else {
                throw TextTaskError.validation("model '\(spec.name)' takes text, not token ids")
            }
            if let long = rows.firstIndex(where: { $0.count > maxTokens }) {
                guard options.truncate else {
                    throw TextTaskError.validation("`inputs` must have less than \(maxTokens) tokens. Given: \(rows[long].count)")
                }
                rows = rows.map { options.truncationDirection == .left ? Array($0.suffix(maxTokens)) : Array($0.prefix(maxTokens)) }
            }
            func tensors(_ rows: [[Int64]]) -> [Tensor] {
                let length = rows.map(\.count).max() ?? 0
                let shape = batched ? [rows.count, length] : [length]
                let padded = rows.flatMap { $0 + Array(repeating: 0, count: length - $0.count) }
                let maskValues = rows.flatMap { Array(repeating: Int64(1), count: $0.count) + Array(repeating: 0, count: length - $0.count) }
                var result = [Self.integerTensor(ids.name, ids.dataType, shape, padded)]
                if let mask { result.append(Self.integerTensor(mask.name, mask.dataType, shape, maskValues)) }
                // BERT exports take segment ids too: one segment, zeros.
                if let tokenTypes {
                    result.append(Self.integerTensor(tokenTypes.name, tokenTypes.dataType, shape, Array(repeating: 0, count: padded.count)))
                }
                return result
            }
            return chunks(rows).map { request(tensors($0)) }
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
    public func vectors(_ responses: [InferenceResponse], lengths: [Int]? = nil) throws -> [[Float]] {
        var row = 0
        return try rows(of: output, in: responses).map { values, perRow in
            defer { row += 1 }
            guard perRow.count == 2, let hidden = perRow.last, hidden > 0 else { return values }
            let positions = min(lengths?[safe: row] ?? perRow[0], perRow[0])
            guard positions > 0 else { return Array(repeating: 0, count: hidden) }
            var mean = [Float](repeating: 0, count: hidden)
            for position in 0..<positions {
                for h in 0..<hidden { mean[h] += values[position * hidden + h] }
            }
            return mean.map { $0 / Float(positions) }
        }
    }

    /// Each row's token states, (tokens, hidden): the padded output cut at
    /// the row's end (the encoder zeroes positions past it; rows of token
    /// ids know their lengths).
    public func tokenStateRows(_ responses: [InferenceResponse], lengths: [Int]? = nil) throws -> [[[Float]]] {
        guard let tokenStates else { throw TextTaskError.backend("model '\(spec.name)' has no token states output") }
        var row = 0
        return try rows(of: tokenStates, in: responses).map { values, perRow in
            defer { row += 1 }
            let hidden = perRow.last ?? 0, positions = perRow.first ?? 0
            guard hidden > 0 else { return [] }
            var count = min(lengths?[safe: row] ?? positions, positions)
            if lengths == nil {
                while count > 1, values[((count - 1) * hidden)..<(count * hidden)].allSatisfy({ $0 == 0 }) { count -= 1 }
            }
            return (0..<count).map { Array(values[($0 * hidden)..<(($0 + 1) * hidden)]) }
        }
    }

    /// Every row of `output` across the responses, with its per-row dims.
    private func rows(of output: TensorSpec, in responses: [InferenceResponse]) throws -> [(values: [Float], dims: [Int])] {
        try responses.flatMap { response -> [(values: [Float], dims: [Int])] in
            guard let tensor = response.outputs.first(where: { $0.name == output.name }) else {
                throw InferenceError.internal("model '\(spec.name)' returned no '\(output.name)'")
            }
            let values = try tensor.values(as: Float.self)
            let batched = spec.maxBatchSize > 0
            let rows = batched ? (tensor.shape.first ?? 1) : 1
            guard rows > 0 else { return [] }
            let width = values.count / rows
            let perRow = Array(tensor.shape.dropFirst(batched ? 1 : 0))
            return (0..<rows).map { (Array(values[($0 * width)..<(($0 + 1) * width)]), perRow) }
        }
    }

    /// OpenAI's and TEI's `dimensions`: nil for the output's own width, fewer
    /// where the config allows truncated (Matryoshka) embeddings.
    public func dimensions(_ requested: Int?) throws -> Int? {
        guard let requested else { return nil }
        let width = output.dims.last ?? 0
        guard requested > 0 else { throw TextTaskError.validation("'dimensions' must be a positive integer", param: "dimensions") }
        if requested == width { return nil }
        guard spec.parameters["allow_dimensions"] == "true" else {
            throw TextTaskError.validation(
                "model '\(spec.name)' does not support 'dimensions' other than its \(width) (its config sets no allow_dimensions parameter)",
                param: "dimensions")
        }
        guard requested < width else {
            throw TextTaskError.validation("'dimensions' \(requested) is more than the model's \(width)", param: "dimensions")
        }
        return requested
    }

    /// The label of each logit: the output's label file, else LABEL_i.
    public func label(_ index: Int) -> String {
        index < output.labels.count ? output.labels[index] : "LABEL_\(index)"
    }
}

/// One sentence pair: a query and a passage, a premise and a hypothesis.
public struct TextPair: Sendable, Equatable {
    public var first: String, second: String
    public init(_ first: String, _ second: String) { (self.first, self.second) = (first, second) }
}

/// Texts, sentence pairs or token-id rows, as the APIs carry them.
public enum TextInputs: Sendable, Equatable {
    case texts([String])
    case pairs([TextPair])
    case tokens([[Int64]])

    public var count: Int {
        switch self {
        case .texts(let texts): texts.count
        case .pairs(let pairs): pairs.count
        case .tokens(let rows): rows.count
        }
    }

    /// Refuses empty strings and empty token rows, naming the first.
    public func requireNonEmpty(field: String) throws {
        switch self {
        case .texts(let texts):
            if let index = texts.firstIndex(where: \.isEmpty) {
                throw TextTaskError.empty("`\(field)` element \(index) is empty", param: field)
            }
        case .pairs(let pairs):
            if let index = pairs.firstIndex(where: { $0.first.isEmpty || $0.second.isEmpty }) {
                throw TextTaskError.empty("`\(field)` pair \(index) has an empty text", param: field)
            }
        case .tokens(let rows):
            if let index = rows.firstIndex(where: \.isEmpty) {
                throw TextTaskError.empty("`\(field)` element \(index) has no tokens", param: field)
            }
        }
    }
}

/// How a request asks its texts to be read: TEI's `truncate`,
/// `truncation_direction`, `prompt_name`, and whether embeddings are
/// normalized. They travel to the model as request parameters, so a KServe
/// client can send the same.
public struct TextOptions: Sendable, Equatable {
    public enum Direction: String, Sendable { case left, right }
    public var truncate: Bool
    public var truncationDirection: Direction?
    public var promptName: String?
    public var normalize: Bool

    public init(truncate: Bool, truncationDirection: Direction? = nil, promptName: String? = nil, normalize: Bool = true) {
        self.truncate = truncate
        self.truncationDirection = truncationDirection
        self.promptName = promptName
        self.normalize = normalize
    }

    var parameters: [String: ParameterValue] {
        var parameters: [String: ParameterValue] = ["truncate": .bool(truncate)]
        if let truncationDirection { parameters["truncation_direction"] = .string(truncationDirection.rawValue) }
        if let promptName { parameters["prompt_name"] = .string(promptName) }
        if !normalize { parameters["normalize"] = .bool(false) }
        return parameters
    }

    /// TEI's spellings: Left, left, Right, right.
    public static func direction(_ value: String, field: String = "truncation_direction") throws -> Direction {
        guard let direction = Direction(rawValue: value.lowercased()), value == direction.rawValue || value == direction.rawValue.capitalized else {
            throw TextTaskError.validation("'\(field)' must be 'left' or 'right', got '\(value)'", param: field)
        }
        return direction
    }
}

/// An error of the embedding, classification and rerank APIs, with the kind
/// TEI names (`error_type`) and the request field OpenAI names (`param`).
public struct TextTaskError: Error, Sendable {
    public enum Kind: String, Sendable {
        case validation = "Validation", empty = "Empty", tokenizer = "Tokenizer", backend = "Backend"
    }
    public let kind: Kind
    public let message: String
    public let param: String?

    public init(kind: Kind, message: String, param: String? = nil) {
        (self.kind, self.message, self.param) = (kind, message, param)
    }

    public static func validation(_ message: String, param: String? = nil) -> TextTaskError { .init(kind: .validation, message: message, param: param) }
    public static func empty(_ message: String, param: String? = nil) -> TextTaskError { .init(kind: .empty, message: message, param: param) }
    public static func backend(_ message: String) -> TextTaskError { .init(kind: .backend, message: message) }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}

/// What TEI's `Info` says of a model, for its HTTP and gRPC forms.
public struct TextModelInfo: Sendable {
    public let modelID: String
    /// float32, bfloat16 or int8: the precision the backend serves (resolved
    /// at load where the config says `auto`).
    public let dtype: String
    public let task: TextModel.Task
    public let labels: [String]
    public let maxInputLength: Int
    public let maxBatchTokens: Int
    public let maxBatchRequests: Int?
    public let maxClientBatchSize = TextModel.maxInputs
    /// TEI's default; the encoder refuses nothing it can cut unless asked.
    public let maxConcurrentRequests = 512

    public init(view: ModelView, model: TextModel) {
        let spec = view.spec
        modelID = spec.name
        let precision = view.runner.reportedParameters["precision_in_effect"] ?? spec.parameters["precision"] ?? "fp32"
        dtype = ["fp32": "float32", "bf16": "bfloat16", "int8": "int8"][precision] ?? "float32"
        task = model.task
        labels = model.task == .classification || model.task == .rerank ? (0..<(model.output.dims.last ?? 0)).map { model.label($0) } : []
        maxInputLength = view.steps.tokenizer?.maxTokens ?? TextModel.defaultMaxTokens
        maxBatchTokens = spec.dynamicBatching?.maxBatchTokens ?? max(spec.maxBatchSize, 1) * maxInputLength
        maxBatchRequests = spec.maxBatchSize > 0 ? spec.maxBatchSize : nil
    }
}
