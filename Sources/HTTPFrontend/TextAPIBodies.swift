import Foundation
import HTTPTypes
import Hummingbird
import InferenceCore
import TextTasks

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
    /// `encoding_format`: a list of floats, or base64 of little-endian float32.
    enum Format: String { case float, base64 }
    enum Vector: Encodable {
        case floats([Float]), base64(String)
        init(_ values: [Float], format: Format) {
            self = format == .base64 ? .base64(TextMath.base64(values)) : .floats(values)
        }
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
    struct SparseValue: Encodable {
        let index: Int
        let value: Float
    }
    struct Rank: Encodable {
        let index: Int
        let text: String?
        let score: Float
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(index, forKey: .index)
            try container.encodeIfPresent(text, forKey: .text)
            try container.encode(score, forKey: .score)
        }
        enum CodingKeys: String, CodingKey { case index, text, score }
    }
    /// GET /info: the model as TEI describes itself (limits are this
    /// server's: the model's batch size and token budget).
    struct Info: Encodable {
        let model_id: String
        let model_sha: String?
        let model_dtype: String
        let served_model_name: String
        let model_type: [String: ModelType]
        let max_concurrent_requests: Int
        let max_input_length: Int
        let max_batch_tokens: Int
        let max_batch_requests: Int?
        let max_client_batch_size: Int
        let auto_truncate: Bool
        let tokenization_workers: Int
        let version: String
        let sha: String?
        let docker_label: String?

        struct ModelType: Encodable {
            var pooling: String?
            var id2label: [String: String]?
            var label2id: [String: Int]?
        }

        init(_ info: TextModelInfo, version: String) {
            model_id = info.modelID
            model_sha = nil
            model_dtype = info.dtype
            served_model_name = info.modelID
            switch info.task {
            case .embedding: model_type = ["embedding": ModelType(pooling: "mean")]
            case .sparseEmbedding: model_type = ["embedding": ModelType(pooling: "splade")]
            case .classification, .rerank:
                model_type = [info.task == .rerank ? "reranker" : "classifier": ModelType(
                    id2label: Dictionary(uniqueKeysWithValues: info.labels.enumerated().map { (String($0.offset), $0.element) }),
                    label2id: Dictionary(info.labels.enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { a, _ in a }))]
            }
            max_concurrent_requests = info.maxConcurrentRequests
            max_input_length = info.maxInputLength
            max_batch_tokens = info.maxBatchTokens
            max_batch_requests = info.maxBatchRequests
            max_client_batch_size = info.maxClientBatchSize
            auto_truncate = true
            tokenization_workers = 1
            self.version = version
            sha = nil
            docker_label = nil
        }
    }
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

    /// TEI's routes (/rerank also takes vLLM's shape; its errors are TEI's).
    static let teiPaths: Set = ["/embed", "/embed_all", "/embed_sparse", "/predict", "/rerank", "/similarity", "/tokenize", "/decode", "/info",
                                "/", "/invocations"]
    /// vLLM's routes outside /v1, whose errors are OpenAI's shape.
    static let vLLMPaths: Set = ["/score", "/pooling"]

    static func forPath(_ path: String) -> ErrorDialect {
        if path.hasPrefix("/v1/") { return .openAI }
        if path == "/anonymize" || path == "/deanonymize" { return .presidioAnonymizer }
        if path == "/v2/rerank" || vLLMPaths.contains(path) { return .openAI }
        if teiPaths.contains(path) { return .textEmbeddingsInference }
        return .triton
    }

    func response(_ error: TextTaskError) throws -> Response {
        switch self {
        case .openAI:
            return try json(OpenAIBodies.Error(error: .init(message: error.message, type: "invalid_request_error", param: error.param, code: nil)),
                            status: .badRequest)
        case .textEmbeddingsInference:
            let status: HTTPResponse.Status = switch error.kind {
            case .validation: .unprocessableContent
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
            case .invalidArgument: (.unprocessableContent, "Validation")
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

/// vLLM's score, rerank and pooling response shapes.
enum VLLMBodies {
    struct Usage: Encodable {
        let prompt_tokens: Int
        let total_tokens: Int
        var completion_tokens = 0
    }
    struct ScoreResponse: Encodable {
        let id: String
        var object = "list"
        let created: Int
        let model: String
        let data: [Score]
        let usage: Usage
        struct Score: Encodable {
            let index: Int
            var object = "score"
            let score: Float
        }
    }
    struct RerankResponse: Encodable {
        let id: String
        let model: String
        let usage: Usage
        let results: [Result]
        struct Result: Encodable {
            let index: Int
            let document: Document?
            let relevance_score: Float
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(index, forKey: .index)
                try container.encodeIfPresent(document, forKey: .document)
                try container.encode(relevance_score, forKey: .relevance_score)
            }
            enum CodingKeys: String, CodingKey { case index, document, relevance_score }
        }
        struct Document: Encodable { let text: String }
    }
    struct PoolingResponse: Encodable {
        let id: String
        var object = "list"
        let created: Int
        let model: String
        let data: [PoolingData]
        let usage: Usage
    }
    struct PoolingData: Encodable {
        let index: Int
        var object = "pooling"
        let data: Values
        enum Values: Encodable {
            case vector([Float], OpenAIBodies.Format), matrix([[Float]])
            func encode(to encoder: any Encoder) throws {
                var container = encoder.singleValueContainer()
                switch self {
                case .vector(let values, let format):
                    if format == .base64 { try container.encode(TextMath.base64(values)) } else { try container.encode(values) }
                case .matrix(let rows): try container.encode(rows)
                }
            }
        }
    }
}
