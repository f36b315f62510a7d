import Foundation
import HTTPTypes
import Hummingbird
import InferenceCore

/// The embedding and classification routes clients of OpenAI and of Hugging
/// Face's text-embeddings-inference already call, over models whose config
/// says what they are (`TextModelBinding`). Requests go through the same
/// pipeline as KServe requests: same scheduler (batched with them), limits,
/// access group (`inference`) and statistics; errors take each API's shape
/// (`ErrorDialect`).
extension KServeHTTPServer {
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
            guard case .string(let model)? = fields["model"] else { throw RouteError.validation("'model' is required", param: "model") }
            let format = try Self.string(fields["encoding_format"], field: "encoding_format") ?? "float"
            guard format == "float" || format == "base64" else {
                throw RouteError.validation("'encoding_format' must be 'float' or 'base64', got '\(format)'", param: "encoding_format")
            }
            let inputs = try TextInputs.parse(fields["input"], field: "input")
            try inputs.requireNonEmpty(field: "input")
            let view = try server.model(model, version: "")
            let binding = try TextModelBinding(spec: view.spec, expecting: .embedding)
            let result = try await run(binding, view: view, inputs: inputs, truncate: false, bytes: body.readableBytes)
            let dimensions = try Self.dimensions(fields["dimensions"], binding: binding, width: result.vectors.first?.count ?? 0)
            let vectors = result.vectors.map { vector in
                EmbeddingMath.normalized(dimensions.map { Array(vector.prefix($0)) } ?? vector)
            }
            return try json(OpenAIBodies.EmbeddingList(
                data: vectors.enumerated().map { index, vector in
                    OpenAIBodies.Embedding(index: index, embedding: format == "base64" ? .base64(EmbeddingMath.base64(vector)) : .floats(vector))
                },
                model: model, usage: .init(prompt_tokens: result.tokens, total_tokens: result.tokens)))
        }
        router.postCancellable("/embed") { request, _ in
            let body = try await body(request)
            let fields = try JSONValue.object(from: body, what: "embed request")
            let inputs = try TextInputs.parse(fields["inputs"], field: "inputs")
            try inputs.requireNonEmpty(field: "inputs")
            let (view, binding) = try textModel(fields["model"], task: .embedding)
            let result = try await run(binding, view: view, inputs: inputs,
                                       truncate: try Self.bool(fields["truncate"], field: "truncate") ?? false, bytes: body.readableBytes)
            let normalize = try Self.bool(fields["normalize"], field: "normalize") ?? true
            return try json(result.vectors.map { normalize ? EmbeddingMath.normalized($0) : $0 })
        }
        router.postCancellable("/predict") { request, _ in
            let body = try await body(request)
            let fields = try JSONValue.object(from: body, what: "predict request")
            let (texts, single) = try Self.predictInputs(fields["inputs"])
            let (view, binding) = try textModel(fields["model"], task: .classification)
            let raw = try Self.bool(fields["raw_scores"], field: "raw_scores") ?? false
            let result = try await run(binding, view: view, inputs: .texts(texts),
                                       truncate: try Self.bool(fields["truncate"], field: "truncate") ?? false, bytes: body.readableBytes)
            let predictions = result.vectors.map { logits in
                (raw ? logits : Softmax.probabilities(logits)).enumerated()
                    .map { TEIBodies.Prediction(score: $0.element, label: binding.label($0.offset)) }
                    .sorted { $0.score > $1.score }
            }
            return single ? try json(predictions[0]) : try json(predictions)
        }
        router.post("/tokenize") { request, _ in
            let body = try await body(request)
            let fields = try JSONValue.object(from: body, what: "tokenize request")
            let inputs = try TextInputs.parse(fields["inputs"], field: "inputs")
            guard case .texts(let texts) = inputs else { throw RouteError.validation("'inputs' must be a string or a list of strings", param: "inputs") }
            // The answer is some 15 times the text: keep it bounded.
            guard texts.count <= TextModelBinding.maxInputs, texts.reduce(0, { $0 + $1.utf8.count }) <= 4 << 20 else {
                throw RouteError.validation("at most \(TextModelBinding.maxInputs) inputs and 4 MiB of text per tokenize request", param: "inputs")
            }
            let special = try Self.bool(fields["add_special_tokens"], field: "add_special_tokens") ?? true
            let view = try tokenizingModel(fields["model"])
            guard let tokenizer = view.runner.tokenizer else {
                throw RouteError(kind: .tokenizer, message: "model '\(view.spec.name)' has no tokenizer: it takes token ids", param: nil)
            }
            return try json(texts.map { text in
                tokenizer.tokens(text, addSpecialTokens: special).map(TEIBodies.Token.init)
            })
        }
    }

    /// Runs the inputs through the pipeline (one request of all rows where the
    /// model batches) and returns the output rows and the tokens counted.
    private func run(_ binding: TextModelBinding, view: ModelView, inputs: TextInputs, truncate: Bool,
                     bytes: Int) async throws -> (vectors: [[Float]], tokens: Int) {
        let requests = try binding.requests(for: inputs, truncate: truncate, maxTokens: view.runner.tokenizer?.maxTokens)
        let call = InferenceCall(modelName: view.spec.name, modelVersion: String(view.spec.version), protocolName: "http",
                                 requestBytes: bytes)
        let responses = try await withThrowingTaskGroup(of: (Int, InferenceResponse).self) { group in
            for (index, request) in requests.enumerated() {
                group.addTask { (index, try await server.infer(call) { _ in (request, ()) }.0) }
            }
            var ordered = [InferenceResponse?](repeating: nil, count: requests.count)
            for try await (index, response) in group { ordered[index] = response }
            return ordered.map { $0! }
        }
        let tokens: Int = switch inputs {
        case .tokens(let rows): rows.reduce(0) { $0 + min($1.count, view.runner.tokenizer?.maxTokens ?? $1.count) }
        case .texts: responses.reduce(0) { $0 + ($1.tokenCount ?? 0) }
        }
        let lengths: [Int]? = if case .tokens(let rows) = inputs { rows.map(\.count) } else { nil }
        return (try binding.vectors(responses, lengths: lengths), tokens)
    }

    /// TEI's routes name no model: the body's `model` (our extension) or the
    /// one ready model with that task.
    private func textModel(_ field: JSONValue?, task: TextModelBinding.Task) throws -> (ModelView, TextModelBinding) {
        let view = try namedOrOnlyModel(field, what: "\(task.rawValue) model") { $0 == task.rawValue }
        return (view, try TextModelBinding(spec: view.spec, expecting: task))
    }

    /// /tokenize needs a tokenizer, not a task: a named model may be any.
    private func tokenizingModel(_ field: JSONValue?) throws -> ModelView {
        try namedOrOnlyModel(field, what: "model with a task") { $0 != nil }
    }

    private func namedOrOnlyModel(_ field: JSONValue?, what: String, matches: (String?) -> Bool) throws -> ModelView {
        if case .string(let name)? = field { return try server.model(name, version: "") }
        if let field, field.typeName != "null" { throw RouteError.validation("'model' must be a string", param: "model") }
        let candidates = Set(server.repositoryIndex(readyOnly: true).map(\.name)).sorted().compactMap { name -> ModelView? in
            guard let view = try? server.model(name, version: ""), matches(view.spec.parameters["task"]) else { return nil }
            return view
        }
        guard candidates.count == 1, let view = candidates.first else {
            throw RouteError.validation(candidates.isEmpty
                ? "no ready \(what) is served (config.pbtxt parameters { key: \"task\" … })"
                : "more than one \(what) is served (\(candidates.map(\.spec.name).joined(separator: ", "))): name one in 'model'",
                param: "model")
        }
        return view
    }

    /// TEI's /predict `inputs`: a string, [string] (one), or [[string]] (a
    /// batch, one string each); sentence pairs are refused.
    static func predictInputs(_ value: JSONValue?) throws -> (texts: [String], single: Bool) {
        switch value {
        case .string(let text)?:
            return ([text], true)
        case .array(let items)? where !items.isEmpty:
            func text(_ item: JSONValue, _ index: Int) throws -> String {
                guard case .string(let text) = item, !text.isEmpty else {
                    throw RouteError.validation("'inputs' element \(index) must be a non-empty string", param: "inputs")
                }
                return text
            }
            if items.allSatisfy({ if case .string = $0 { true } else { false } }) {
                guard items.count == 1 else {
                    throw RouteError.validation("sentence pairs are not supported: send [[\"text\"], …] for a batch", param: "inputs")
                }
                return ([try text(items[0], 0)], true)
            }
            let texts = try items.enumerated().map { index, item -> String in
                guard case .array(let row) = item, row.count == 1 else {
                    throw RouteError.validation("'inputs' element \(index) must hold one string (sentence pairs are not supported)", param: "inputs")
                }
                return try text(row[0], index)
            }
            return (texts, false)
        case .array?:
            throw RouteError.empty("`inputs` cannot be empty", param: "inputs")
        default:
            throw RouteError.validation("'inputs' must be a string or a list", param: "inputs")
        }
    }

    static func bool(_ value: JSONValue?, field: String) throws -> Bool? {
        switch value {
        case nil, .null?: return nil
        case .bool(let flag)?: return flag
        default: throw RouteError.validation("'\(field)' must be a boolean", param: field)
        }
    }

    static func string(_ value: JSONValue?, field: String) throws -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let text)?: return text
        default: throw RouteError.validation("'\(field)' must be a string", param: field)
        }
    }

    /// OpenAI's `dimensions`: the model's width, or fewer where its config
    /// allows truncated (Matryoshka) embeddings.
    static func dimensions(_ value: JSONValue?, binding: TextModelBinding, width: Int) throws -> Int? {
        let requested: Int
        switch value {
        case nil, .null?: return nil
        case .int(let n)? where n > 0: requested = Int(n)
        default: throw RouteError.validation("'dimensions' must be a positive integer", param: "dimensions")
        }
        if requested == width { return nil }
        guard binding.spec.parameters["allow_dimensions"] == "true" else {
            throw RouteError.validation(
                "model '\(binding.spec.name)' does not support 'dimensions' other than its \(width) (its config sets no allow_dimensions parameter)",
                param: "dimensions")
        }
        guard requested < width else {
            throw RouteError.validation("'dimensions' \(requested) is more than the model's \(width)", param: "dimensions")
        }
        return requested
    }
}

/// OpenAI's response shapes.
enum OpenAIBodies {
    struct ModelList: Encodable {
        var object = "list"
        let data: [Model]
    }
    struct Model: Encodable {
        let id: String
        var object = "model"
        let created: Int
        var owned_by = "batchserver"
    }
    struct EmbeddingList: Encodable {
        var object = "list"
        let data: [Embedding]
        let model: String
        let usage: Usage
    }
    struct Embedding: Encodable {
        var object = "embedding"
        let index: Int
        let embedding: Vector
    }
    enum Vector: Encodable {
        case floats([Float]), base64(String)
        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .floats(let values): try container.encode(values)
            case .base64(let text): try container.encode(text)
            }
        }
    }
    struct Usage: Encodable {
        let prompt_tokens: Int
        let total_tokens: Int
    }
    struct Error: Encodable {
        struct Detail: Encodable {
            let message: String
            let type: String
            let param: String?
            let code: String?
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(message, forKey: .message)
                try container.encode(type, forKey: .type)
                try container.encode(param, forKey: .param)
                try container.encode(code, forKey: .code)
            }
            enum CodingKeys: String, CodingKey { case message, type, param, code }
        }
        let error: Detail
    }
}

/// text-embeddings-inference's response shapes.
enum TEIBodies {
    struct Prediction: Encodable {
        let score: Float
        let label: String
    }
    struct Token: Encodable {
        let id: Int32
        let text: String
        let special: Bool
        let start: Int?
        let stop: Int?
        init(_ token: TextToken) {
            (id, text, special, start, stop) = (token.id, token.text, token.special, token.start, token.stop)
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(text, forKey: .text)
            try container.encode(special, forKey: .special)
            try container.encode(start, forKey: .start)
            try container.encode(stop, forKey: .stop)
        }
        enum CodingKeys: String, CodingKey { case id, text, special, start, stop }
    }
    struct Error: Encodable {
        let error: String
        let error_type: String
    }
}

/// The error body each API's clients read, chosen by route.
enum ErrorDialect {
    case triton, openAI, textEmbeddingsInference
    /// Presidio's anonymizer: `{"error": …}`, invalid input answered 422.
    case presidioAnonymizer

    static func forPath(_ path: String) -> ErrorDialect {
        if path.hasPrefix("/v1/") { return .openAI }
        if path == "/anonymize" || path == "/deanonymize" { return .presidioAnonymizer }
        if ["/embed", "/predict", "/tokenize"].contains(path) { return .textEmbeddingsInference }
        return .triton
    }

    func response(_ error: RouteError) throws -> Response {
        switch self {
        case .openAI:
            return try json(OpenAIBodies.Error(error: .init(message: error.message, type: "invalid_request_error", param: error.param, code: nil)),
                            status: .badRequest)
        case .textEmbeddingsInference:
            let status: HTTPResponse.Status = switch error.kind {
            case .validation: .contentTooLarge
            case .empty: .badRequest
            case .tokenizer: .unprocessableContent
            case .backend: .init(code: 424)
            }
            return try json(TEIBodies.Error(error: error.message, error_type: error.kind.rawValue), status: status)
        case .triton, .presidioAnonymizer:
            return try json(HTTPResponseBodies.ErrorBody(error: error.message), status: .badRequest)
        }
    }

    /// A transport-level failure (no such route, body too large) in this dialect.
    func response(status: HTTPResponse.Status, message: String) throws -> Response {
        switch self {
        case .openAI:
            return try json(OpenAIBodies.Error(error: .init(message: message, type: "invalid_request_error", param: nil, code: nil)),
                            status: status)
        case .textEmbeddingsInference:
            return try json(TEIBodies.Error(error: message, error_type: "Validation"), status: status)
        case .triton, .presidioAnonymizer:
            return try json(HTTPResponseBodies.ErrorBody(error: message), status: status)
        }
    }

    func response(_ error: InferenceError) throws -> Response {
        var response = try body(error)
        // A rate limit: 429 with when to come back, in every dialect.
        if let retry = error.retryAfter {
            response.status = .tooManyRequests
            let milliseconds = retry.nanosecondsClamped / 1_000_000
            response.headers[.retryAfter] = String(max(1, (milliseconds + 999) / 1000))
        }
        return response
    }

    private func body(_ error: InferenceError) throws -> Response {
        let status = error.code.httpStatus
        switch self {
        case .openAI:
            let type = status.code >= 500 ? "server_error" : "invalid_request_error"
            let code: String? = switch error.code {
            case .notFound: "model_not_found"
            case .unauthenticated: "invalid_api_key"
            default: nil
            }
            return try json(OpenAIBodies.Error(error: .init(message: error.message, type: type,
                                                            param: error.code == .notFound ? "model" : nil, code: code)),
                            status: status)
        case .textEmbeddingsInference:
            let (teiStatus, type): (HTTPResponse.Status, String) = switch error.code {
            case .invalidArgument: (.contentTooLarge, "Validation")
            case .unavailable: (.serviceUnavailable, "Unhealthy")
            case .resourceExhausted: (.tooManyRequests, "Overloaded")
            case .notFound: (.notFound, "Validation")
            case .unauthenticated, .permissionDenied: (status, "Validation")
            default: (.init(code: 424), "Backend")
            }
            return try json(TEIBodies.Error(error: error.message, error_type: type), status: teiStatus)
        case .triton:
            return try json(HTTPResponseBodies.ErrorBody(error: error.message), status: status)
        case .presidioAnonymizer:
            return try json(HTTPResponseBodies.ErrorBody(error: error.message),
                            status: error.code == .invalidArgument ? .unprocessableContent : status)
        }
    }
}
