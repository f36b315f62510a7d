import Foundation
import InferenceCore

/// The embedding, classification, rerank and sparse-embedding work the
/// OpenAI, TEI (HTTP and gRPC), Cohere and vLLM APIs ask for, written once:
/// each frontend parses its wire shape, calls these, and writes its answer.
/// Every call goes through the server's request pipeline (access group,
/// limits, redaction, statistics, batching with KServe traffic).
public struct TextTaskRunner: Sendable {
    public let server: any InferenceServer
    /// "http" or "grpc", for the pipeline's log line.
    public let protocolName: String

    public init(server: any InferenceServer, protocolName: String) {
        self.server = server
        self.protocolName = protocolName
    }

    /// A ready model for one of `tasks`: the one named, else the only one
    /// served with the first of `tasks` that any model serves (TEI's requests
    /// name no model; /predict prefers a classifier to a re-ranker).
    public func model(named name: String?, tasks: [TextModel.Task]) throws -> (ModelView, TextModel) {
        let view: ModelView
        if let name {
            view = try server.model(name, version: "")
        } else {
            let ready = readyViews()
            let served = Set(ready.compactMap { $0.spec.parameters["task"] })
            let preferred = (tasks.first { served.contains($0.rawValue) } ?? tasks[0]).rawValue
            view = try only(ready.filter { $0.spec.parameters["task"] == preferred })
        }
        return (view, try TextModel(spec: view.spec, accepting: tasks))
    }

    /// A ready model with a tokenizer: the one named, else the only one with any task.
    public func tokenizingModel(named name: String?) throws -> (ModelView, any TextTokenizer) {
        let view = try name.map { try server.model($0, version: "") } ?? only(readyViews().filter { $0.spec.parameters["task"] != nil })
        guard let tokenizer = view.steps.tokenizer else {
            throw TextTaskError(kind: .tokenizer, message: "model '\(view.spec.name)' has no tokenizer: it takes token ids")
        }
        return (view, tokenizer)
    }

    private func readyViews() -> [ModelView] {
        Set(server.repositoryIndex(readyOnly: true).map(\.name)).sorted().compactMap { try? server.model($0, version: "") }
    }

    private func only(_ candidates: [ModelView]) throws -> ModelView {
        guard candidates.count == 1, let view = candidates.first else {
            throw TextTaskError.validation(candidates.isEmpty
                ? "no ready model for this route is served (config.pbtxt parameters { key: \"task\" … })"
                : "more than one model for this route is served (\(candidates.map(\.spec.name).joined(separator: ", "))): name one in 'model'",
                param: "model")
        }
        return view
    }

    /// The model's answer per input row (embeddings, logits or sparse
    /// vectors) and the tokens it read.
    public func pooled(_ model: TextModel, view: ModelView, inputs: TextInputs, options: TextOptions,
                       requestBytes: Int) async throws -> (rows: [[Float]], tokens: Int) {
        let (responses, tokens) = try await run(model, view: view, inputs: inputs, options: options, output: model.output, bytes: requestBytes)
        let lengths: [Int]? = if case .tokens(let rows) = inputs { rows.map(\.count) } else { nil }
        return (try model.vectors(responses, lengths: lengths), tokens)
    }

    /// Every token's state per input row, (tokens, hidden).
    public func tokenStates(_ model: TextModel, view: ModelView, inputs: TextInputs, options: TextOptions,
                            requestBytes: Int) async throws -> (rows: [[[Float]]], tokens: Int) {
        guard let states = model.tokenStates else {
            throw TextTaskError.backend("model '\(model.spec.name)' has no output of token states (LAST_HIDDEN_STATE, dims [ -1, hidden ])")
        }
        let (responses, tokens) = try await run(model, view: view, inputs: inputs, options: options, output: states, bytes: requestBytes)
        let lengths: [Int]? = if case .tokens(let rows) = inputs { rows.map(\.count) } else { nil }
        return (try model.tokenStateRows(responses, lengths: lengths), tokens)
    }

    /// Embeddings, normalized unless the options say not (the model is asked
    /// not to; a model that normalizes anyway answers normalized), cut to
    /// `dimensions` first where asked.
    public func embeddings(_ model: TextModel, view: ModelView, inputs: TextInputs, options: TextOptions, dimensions: Int? = nil,
                           requestBytes: Int) async throws -> (rows: [[Float]], tokens: Int) {
        let (rows, tokens) = try await pooled(model, view: view, inputs: inputs, options: options, requestBytes: requestBytes)
        return (rows.map { row in
            let cut = dimensions.map { Array(row.prefix($0)) } ?? row
            return options.normalize ? TextMath.normalized(cut) : cut
        }, tokens)
    }

    /// Class scores per input (texts or pairs): probabilities (softmax over
    /// several labels, the sigmoid of a single one) unless `raw`.
    public func scores(_ model: TextModel, view: ModelView, inputs: TextInputs, options: TextOptions, raw: Bool,
                       requestBytes: Int) async throws -> (rows: [[Float]], tokens: Int) {
        let (rows, tokens) = try await pooled(model, view: view, inputs: inputs, options: options, requestBytes: requestBytes)
        return (raw ? rows : rows.map(TextMath.activated), tokens)
    }

    /// Relevance of each document to the query, in document order: the
    /// cross-encoder's single logit through the sigmoid unless `raw`.
    public func rerank(_ model: TextModel, view: ModelView, query: String, documents: [String], options: TextOptions, raw: Bool,
                       requestBytes: Int) async throws -> (scores: [Float], tokens: Int) {
        guard model.output.dims == [1] else {
            throw TextTaskError.backend("model '\(model.spec.name)' is not a re-ranker model: it has \(model.output.dims.first ?? 0) labels, a re-ranker has one")
        }
        let inputs = TextInputs.pairs(documents.map { TextPair(query, $0) })
        let (rows, tokens) = try await scores(model, view: view, inputs: inputs, options: options, raw: raw, requestBytes: requestBytes)
        return (rows.map { $0.first ?? 0 }, tokens)
    }

    private func run(_ model: TextModel, view: ModelView, inputs: TextInputs, options: TextOptions, output: TensorSpec,
                     bytes: Int) async throws -> (responses: [InferenceResponse], tokens: Int) {
        let maxTokens = view.steps.tokenizer?.maxTokens
        let requests = try model.requests(for: inputs, options: options, output: output, maxTokens: maxTokens)
        var traced = InferenceCall(modelName: view.spec.name, modelVersion: String(view.spec.version), protocolName: protocolName,
                                   requestBytes: bytes)
        // The client's trace context, as the frontend bound it for this call.
        traced.traceHeaders = IncomingTraceContext.headers
        let call = traced
        let server = self.server
        let responses = try await withThrowingTaskGroup(of: (Int, InferenceResponse).self) { group in
            for (index, request) in requests.enumerated() {
                group.addTask { (index, try await server.infer(call) { _ in (request, ()) }.0) }
            }
            var ordered = [InferenceResponse?](repeating: nil, count: requests.count)
            for try await (index, response) in group { ordered[index] = response }
            return ordered.map { $0! }
        }
        let tokens: Int = switch inputs {
        case .tokens(let rows): rows.reduce(0) { $0 + min($1.count, maxTokens ?? $1.count) }
        case .texts, .pairs: responses.reduce(0) { $0 + ($1.tokenCount ?? 0) }
        }
        return (responses, tokens)
    }
}

/// Vector arithmetic of the APIs.
public enum TextMath {
    public static func normalized(_ vector: [Float]) -> [Float] {
        let norm = vector.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? vector.map { $0 / norm } : vector
    }

    /// Cosine similarity (TEI's /similarity: 1 - cosine distance).
    public static func cosine(_ a: [Float], _ b: [Float]) -> Float {
        var dot: Double = 0, na: Double = 0, nb: Double = 0
        for (x, y) in zip(a, b) {
            dot += Double(x) * Double(y)
            na += Double(x) * Double(x)
            nb += Double(y) * Double(y)
        }
        let denominator = (na * nb).squareRoot()
        return denominator > 0 ? Float(dot / denominator) : 0
    }

    /// Softmax over several logits, the sigmoid of a single one (TEI, vLLM).
    public static func activated(_ logits: [Float]) -> [Float] {
        logits.count == 1 ? [1 / (1 + Foundation.exp(-logits[0]))] : Softmax.probabilities(logits)
    }

    /// OpenAI's `encoding_format: base64`: the float32 values little-endian.
    public static func base64(_ vector: [Float]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(vector.count * 4)
        for value in vector {
            withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        }
        return Data(bytes).base64EncodedString()
    }

    /// A sparse vector's non-zero entries, ascending by index (TEI's /embed_sparse).
    public static func sparse(_ vector: [Float]) -> [(index: Int, value: Float)] {
        vector.enumerated().compactMap { $0.element != 0 ? ($0.offset, $0.element) : nil }
    }
}
