import Foundation
import HTTPTypes
import Hummingbird
import InferenceCore
import TextTasks

/// The embedding routes clients of OpenAI, Hugging Face's
/// text-embeddings-inference (TEI) and vLLM already call, over models whose
/// config says what they are (`TextModel`). The work is `TextTaskRunner`'s,
/// shared with TEI's gRPC API; these routes read and write the JSON shapes.
/// Errors take each API's shape (`ErrorDialect`).
extension KServeHTTPServer {
    var textTasks: TextTaskRunner { TextTaskRunner(server: server, protocolName: "http") }

    func addEmbeddingRoutes(to router: Router<KServeRequestContext>) {
        let started = Int(Date().timeIntervalSince1970)
        router.get("/v1/models") { _, _ in
            let models = server.repositoryIndex(readyOnly: true).map(\.name)
            return try json(OpenAIBodies.ModelList(data: Set(models).sorted().map {
                OpenAIBodies.Model(id: $0, created: started)
            }))
        }
        router.postCancellable("/v1/embeddings") { request, _ in
            let body = try await body(request)
            let fields = try JSONValue.object(from: body, what: "embeddings request")
            guard case .string(let name)? = fields["model"] else { throw TextTaskError.validation("'model' is required", param: "model") }
            let format = try Self.encodingFormat(fields)
            let inputs = try TextFields.inputs(fields["input"], field: "input")
            try inputs.requireNonEmpty(field: "input")
            let (view, model) = try textTasks.model(named: name, tasks: [.embedding])
            let dimensions = try TextFields.dimensions(fields["dimensions"], model: model)
            // OpenAI never truncates: a text too long is refused.
            let (vectors, tokens) = try await textTasks.embeddings(model, view: view, inputs: inputs, options: TextOptions(truncate: false),
                                                                   dimensions: dimensions, requestBytes: body.readableBytes)
            return try json(OpenAIBodies.EmbeddingList(
                data: vectors.enumerated().map { OpenAIBodies.Embedding(index: $0.offset, embedding: .init($0.element, format: format)) },
                model: name, usage: .init(prompt_tokens: tokens, total_tokens: tokens)))
        }
        router.postCancellable("/embed") { request, _ in
            let (fields, bytes) = try await teiFields(request, what: "embed request")
            return try await embed(fields, bytes: bytes)
        }
        router.postCancellable("/embed_all") { request, _ in
            let body = try await body(request)
            let fields = try JSONValue.object(from: body, what: "embed_all request")
            let inputs = try TextFields.inputs(fields["inputs"], field: "inputs")
            try inputs.requireNonEmpty(field: "inputs")
            let (view, model) = try textTasks.model(named: try TextFields.model(fields["model"]), tasks: [.embedding])
            let (states, _) = try await textTasks.tokenStates(model, view: view, inputs: inputs, options: try TextFields.options(fields),
                                                              requestBytes: body.readableBytes)
            return try json(states)
        }
        router.postCancellable("/embed_sparse") { request, _ in
            let (fields, bytes) = try await teiFields(request, what: "embed_sparse request")
            return try await embedSparse(fields, bytes: bytes)
        }
        // TEI's catch-all routes answer as the model's task does.
        for path in ["/", "/invocations"] {
            router.postCancellable(RouterPath(path)) { request, _ in
                let (fields, bytes) = try await teiFields(request, what: "request")
                let (_, model) = try textTasks.model(named: try TextFields.model(fields["model"]), tasks: TextModel.Task.allCases)
                switch model.task {
                case .embedding: return try await embed(fields, bytes: bytes)
                case .sparseEmbedding: return try await embedSparse(fields, bytes: bytes)
                case .classification: return try await predict(fields, bytes: bytes)
                case .rerank: return try await (fields["query"] != nil ? rerank(fields, bytes: bytes) : predict(fields, bytes: bytes))
                }
            }
        }
        router.postCancellable("/similarity") { request, _ in
            let body = try await body(request)
            let fields = try JSONValue.object(from: body, what: "similarity request")
            guard case .object? = fields["inputs"], case .string(let source)? = fields["inputs"]?["source_sentence"] else {
                throw TextTaskError.validation("'inputs' must be {\"source_sentence\": …, \"sentences\": […]}", param: "inputs")
            }
            guard case .array(let items)? = fields["inputs"]?["sentences"], let sentences = TextFields.strings(items) else {
                throw TextTaskError.validation("'inputs.sentences' must be a list of strings", param: "inputs")
            }
            guard !sentences.isEmpty else { throw TextTaskError.empty("`inputs.sentences` cannot be empty", param: "inputs") }
            let inputs = TextInputs.texts([source] + sentences)
            try inputs.requireNonEmpty(field: "inputs")
            let parameters = fields["parameters"] ?? .object([:])
            var options = try TextFields.options(parameters)
            options.normalize = false
            let (view, model) = try textTasks.model(named: try TextFields.model(fields["model"]), tasks: [.embedding])
            let (vectors, _) = try await textTasks.embeddings(model, view: view, inputs: inputs, options: options,
                                                              requestBytes: body.readableBytes)
            return try json(vectors.dropFirst().map { TextMath.cosine(vectors[0], $0) })
        }
        router.postCancellable("/pooling") { request, _ in
            try await pooling(request, started: started)
        }
        router.post("/tokenize") { request, _ in
            let body = try await body(request)
            let fields = try JSONValue.object(from: body, what: "tokenize request")
            let inputs = try TextFields.inputs(fields["inputs"], field: "inputs")
            guard case .texts(let texts) = inputs else {
                throw TextTaskError.validation("'inputs' must be a string or a list of strings", param: "inputs")
            }
            // The answer is some 15 times the text: keep it bounded.
            guard texts.count <= TextModel.maxInputs, texts.reduce(0, { $0 + $1.utf8.count }) <= 4 << 20 else {
                throw TextTaskError.validation("at most \(TextModel.maxInputs) inputs and 4 MiB of text per tokenize request", param: "inputs")
            }
            let special = try TextFields.bool(fields["add_special_tokens"], field: "add_special_tokens") ?? true
            let (_, tokenizer) = try textTasks.tokenizingModel(named: try TextFields.model(fields["model"]))
            let prompt = try TextFields.string(fields["prompt_name"], field: "prompt_name").map { try tokenizer.prompt(named: $0) } ?? ""
            return try json(texts.map { text in
                tokenizer.tokens(prompt + text, addSpecialTokens: special).map(TEIBodies.Token.init)
            })
        }
        router.post("/decode") { request, _ in
            let body = try await body(request)
            let fields = try JSONValue.object(from: body, what: "decode request")
            guard case .array(let items)? = fields["ids"] else {
                throw TextTaskError.validation("'ids' must be a list of token ids or a list of lists", param: "ids")
            }
            guard !items.isEmpty else { throw TextTaskError.empty("`ids` cannot be empty", param: "ids") }
            let rows: [[Int64]] = if case .tokens(let rows) = try TextFields.inputs(.array(items), field: "ids") { rows } else {
                throw TextTaskError.validation("'ids' must be a list of token ids or a list of lists", param: "ids")
            }
            let skip = try TextFields.bool(fields["skip_special_tokens"], field: "skip_special_tokens") ?? true
            let (_, tokenizer) = try textTasks.tokenizingModel(named: try TextFields.model(fields["model"]))
            do {
                return try json(try rows.map { try tokenizer.decode($0, skipSpecialTokens: skip) })
            } catch let error as InferenceError {
                throw TextTaskError(kind: .tokenizer, message: error.message, param: "ids")
            }
        }
        router.get("/info") { request, _ in
            let name = request.uri.queryParameters["model"].map(String.init)
            let (view, model) = try textTasks.model(named: name, tasks: TextModel.Task.allCases)
            return try json(TEIBodies.Info(TextModelInfo(view: view, model: model), version: server.identity.version))
        }
    }

    /// A TEI route's JSON object and its size.
    func teiFields(_ request: Request, what: String) async throws -> (JSONValue, Int) {
        let body = try await body(request)
        return (try JSONValue.object(from: body, what: what), body.readableBytes)
    }

    /// TEI's /embed.
    private func embed(_ fields: JSONValue, bytes: Int) async throws -> Response {
        let inputs = try TextFields.inputs(fields["inputs"], field: "inputs")
        try inputs.requireNonEmpty(field: "inputs")
        let (view, model) = try textTasks.model(named: try TextFields.model(fields["model"]), tasks: [.embedding])
        let dimensions = try TextFields.dimensions(fields["dimensions"], model: model)
        let (vectors, _) = try await textTasks.embeddings(model, view: view, inputs: inputs, options: try TextFields.options(fields),
                                                          dimensions: dimensions, requestBytes: bytes)
        return try json(vectors)
    }

    /// TEI's /embed_sparse: each vector's non-zero entries.
    private func embedSparse(_ fields: JSONValue, bytes: Int) async throws -> Response {
        let inputs = try TextFields.inputs(fields["inputs"], field: "inputs")
        try inputs.requireNonEmpty(field: "inputs")
        let (view, model) = try textTasks.model(named: try TextFields.model(fields["model"]), tasks: [.sparseEmbedding])
        let (vectors, _) = try await textTasks.pooled(model, view: view, inputs: inputs, options: try TextFields.options(fields),
                                                      requestBytes: bytes)
        return try json(vectors.map { TextMath.sparse($0).map { TEIBodies.SparseValue(index: $0.index, value: $0.value) } })
    }

    /// vLLM's /pooling: the model's raw pooled output per input, or with
    /// `task: token_embed` (the default where the model has token states)
    /// every token's state.
    private func pooling(_ request: Request, started: Int) async throws -> Response {
        let body = try await body(request)
        let fields = try JSONValue.object(from: body, what: "pooling request")
        let inputs = try TextFields.inputs(fields["input"], field: "input")
        try inputs.requireNonEmpty(field: "input")
        let format = try Self.encodingFormat(fields)
        let name = try TextFields.model(fields["model"])
        let (view, model) = try textTasks.model(named: name, tasks: TextModel.Task.allCases)
        let task = try TextFields.string(fields["task"], field: "task") ?? (model.tokenStates != nil ? "token_embed" : model.task == .embedding ? "embed" : "classify")
        let options = try Self.vLLMOptions(fields)
        let data: [VLLMBodies.PoolingData]
        let tokens: Int
        switch task {
        case "token_embed":
            let (states, count) = try await textTasks.tokenStates(model, view: view, inputs: inputs, options: options, requestBytes: body.readableBytes)
            (data, tokens) = (states.enumerated().map { VLLMBodies.PoolingData(index: $0.offset, data: .matrix($0.element)) }, count)
        case "embed" where model.task == .embedding:
            let (vectors, count) = try await textTasks.embeddings(model, view: view, inputs: inputs, options: options, requestBytes: body.readableBytes)
            (data, tokens) = (vectors.enumerated().map { VLLMBodies.PoolingData(index: $0.offset, data: .vector($0.element, format)) }, count)
        case "classify", "encode", "embed":
            let classifies = model.task == .classification || model.task == .rerank
            let (rows, count) = classifies
                ? try await textTasks.scores(model, view: view, inputs: inputs, options: options, raw: false, requestBytes: body.readableBytes)
                : try await textTasks.pooled(model, view: view, inputs: inputs, options: options, requestBytes: body.readableBytes)
            (data, tokens) = (rows.enumerated().map { VLLMBodies.PoolingData(index: $0.offset, data: .vector($0.element, format)) }, count)
        default:
            throw TextTaskError.validation("'task' must be embed, token_embed, classify or encode, got '\(task)'", param: "task")
        }
        return try json(VLLMBodies.PoolingResponse(id: "pool-\(UUID().uuidString.lowercased())", created: Int(Date().timeIntervalSince1970),
                                                   model: name ?? view.spec.name, data: data,
                                                   usage: .init(prompt_tokens: tokens, total_tokens: tokens)))
    }

    static func encodingFormat(_ fields: JSONValue) throws -> OpenAIBodies.Format {
        let value = try TextFields.string(fields["encoding_format"], field: "encoding_format") ?? "float"
        guard let format = OpenAIBodies.Format(rawValue: value) else {
            throw TextTaskError.validation("'encoding_format' must be 'float' or 'base64', got '\(value)'", param: "encoding_format")
        }
        return format
    }
}
