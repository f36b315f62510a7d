import AccessControl
import Foundation
import GRPCLite
import InferenceCore
import SwiftProtobuf
import TEIProto
import TextTasks

/// text-embeddings-inference's gRPC API (package tei.v1: Info, Embed,
/// Predict, Rerank, Tokenize and their streaming variants) beside KServe's on
/// the same port, so TEI's gRPC clients change only the address. TEI serves
/// one model; here the metadata key `model` names one, else the one model
/// with the method's task answers. The work is `TextTaskRunner`'s, shared
/// with the HTTP routes; errors map as TEI maps them (INVALID_ARGUMENT for
/// the request's fault, FAILED_PRECONDITION for the model's).
extension KServeGRPCService {
    func addTextEmbeddingsInferenceMethods(to router: inout GRPCRouter) {
        let tasks = TextTaskRunner(server: server, protocolName: "grpc")
        @Sendable func model(_ context: GRPCCallContext) -> String? { context.metadata.first { $0.name == "model" }?.value }

        unary(&router, "Info", service: "/tei.v1.Info/") { (_: Tei_V1_InfoRequest, context) in
            let (view, text) = try tasks.model(named: model(context), tasks: TextModel.Task.allCases)
            return Self.info(view: view, model: text, version: server.identity.version)
        }
        let embed: @Sendable (Tei_V1_EmbedRequest, GRPCCallContext) async throws -> Tei_V1_EmbedResponse = { request, context in
            let began = ContinuousClock.now
            let (view, text) = try tasks.model(named: model(context), tasks: [.embedding])
            var options = Self.options(truncate: request.truncate, direction: request.truncationDirection,
                                       prompt: request.hasPromptName ? request.promptName : nil)
            options.normalize = request.hasNormalize ? request.normalize : true
            let dimensions = try text.dimensions(request.hasDimensions ? Int(request.dimensions) : nil)
            let (rows, tokens) = try await tasks.embeddings(text, view: view, inputs: try Self.texts(request.inputs), options: options,
                                                            dimensions: dimensions, requestBytes: request.inputs.utf8.count)
            return .with {
                $0.embeddings = rows.first ?? []
                $0.metadata = Self.metadata(request.inputs, tokens: tokens, since: began)
            }
        }
        unary(&router, "Embed", service: "/tei.v1.Embed/", embed)
        streaming(&router, "EmbedStream", service: "/tei.v1.Embed/", embed)
        let sparse: @Sendable (Tei_V1_EmbedSparseRequest, GRPCCallContext) async throws -> Tei_V1_EmbedSparseResponse = { request, context in
            let began = ContinuousClock.now
            let (view, text) = try tasks.model(named: model(context), tasks: [.sparseEmbedding])
            let options = Self.options(truncate: request.truncate, direction: request.truncationDirection,
                                       prompt: request.hasPromptName ? request.promptName : nil)
            let (rows, tokens) = try await tasks.pooled(text, view: view, inputs: try Self.texts(request.inputs), options: options,
                                                        requestBytes: request.inputs.utf8.count)
            return .with {
                $0.sparseEmbeddings = TextMath.sparse(rows.first ?? []).map { entry in
                    .with { $0.index = UInt32(entry.index); $0.value = entry.value }
                }
                $0.metadata = Self.metadata(request.inputs, tokens: tokens, since: began)
            }
        }
        unary(&router, "EmbedSparse", service: "/tei.v1.Embed/", sparse)
        streaming(&router, "EmbedSparseStream", service: "/tei.v1.Embed/", sparse)
        let all: @Sendable (Tei_V1_EmbedAllRequest, GRPCCallContext) async throws -> Tei_V1_EmbedAllResponse = { request, context in
            let began = ContinuousClock.now
            let (view, text) = try tasks.model(named: model(context), tasks: [.embedding])
            let options = Self.options(truncate: request.truncate, direction: request.truncationDirection,
                                       prompt: request.hasPromptName ? request.promptName : nil)
            let (rows, tokens) = try await tasks.tokenStates(text, view: view, inputs: try Self.texts(request.inputs), options: options,
                                                             requestBytes: request.inputs.utf8.count)
            return .with {
                $0.tokenEmbeddings = (rows.first ?? []).map { state in .with { $0.embeddings = state } }
                $0.metadata = Self.metadata(request.inputs, tokens: tokens, since: began)
            }
        }
        unary(&router, "EmbedAll", service: "/tei.v1.Embed/", all)
        streaming(&router, "EmbedAllStream", service: "/tei.v1.Embed/", all)

        let predict: @Sendable (Tei_V1_PredictRequest, GRPCCallContext) async throws -> Tei_V1_PredictResponse = { request, context in
            try await Self.predict(tasks, model: model(context), inputs: try Self.texts(request.inputs), raw: request.rawScores,
                                   options: Self.options(truncate: request.truncate, direction: request.truncationDirection, prompt: nil),
                                   characters: request.inputs)
        }
        unary(&router, "Predict", service: "/tei.v1.Predict/", predict)
        streaming(&router, "PredictStream", service: "/tei.v1.Predict/", predict)
        let predictPair: @Sendable (Tei_V1_PredictPairRequest, GRPCCallContext) async throws -> Tei_V1_PredictResponse = { request, context in
            guard request.inputs.count == 2, request.inputs.allSatisfy({ !$0.isEmpty }) else {
                throw TextTaskError.validation("`inputs` must have two non-empty texts, got \(request.inputs.count)")
            }
            return try await Self.predict(tasks, model: model(context), inputs: .pairs([TextPair(request.inputs[0], request.inputs[1])]),
                                          raw: request.rawScores,
                                          options: Self.options(truncate: request.truncate, direction: request.truncationDirection, prompt: nil),
                                          characters: request.inputs.joined())
        }
        unary(&router, "PredictPair", service: "/tei.v1.Predict/", predictPair)
        streaming(&router, "PredictPairStream", service: "/tei.v1.Predict/", predictPair)

        unary(&router, "Rerank", service: "/tei.v1.Rerank/") { (request: Tei_V1_RerankRequest, context) in
            try await Self.rerank(tasks, model: model(context), query: request.query, texts: request.texts, raw: request.rawScores,
                                  returnText: request.returnText,
                                  options: Self.options(truncate: request.truncate, direction: request.truncationDirection, prompt: nil))
        }
        // A client stream of (query, text) messages, one ranking at its end.
        router.register("/tei.v1.Rerank/RerankStream", .bidirectionalStreaming { requests, responses, context in
            let principal = try authorize(context)
            let permit = try mapped { try access.limiter.admit(principal) }
            defer { permit.release() }
            do {
                try await IncomingTraceContext.$headers.withValue(IncomingTraceContext.headers(context)) {
                    var messages: [Tei_V1_RerankStreamRequest] = []
                    for try await bytes in requests { messages.append(try decode(Tei_V1_RerankStreamRequest.self, bytes)) }
                    guard let first = messages.first else { throw TextTaskError.empty("`texts` cannot be empty") }
                    guard messages.allSatisfy({ $0.query == first.query }) else {
                        throw TextTaskError.validation("every message of a rerank stream must carry the same query")
                    }
                    let response = try await Self.rerank(tasks, model: model(context), query: first.query, texts: messages.map(\.text),
                                                         raw: first.rawScores, returnText: first.returnText,
                                                         options: Self.options(truncate: first.truncate, direction: first.truncationDirection, prompt: nil))
                    try await responses.write(try response.serializedBytes())
                }
            } catch {
                throw GRPCStatus(error)
            }
        })

        let tokenize: @Sendable (Tei_V1_EncodeRequest, GRPCCallContext) async throws -> Tei_V1_EncodeResponse = { request, context in
            let (_, tokenizer) = try tasks.tokenizingModel(named: model(context))
            let prompt = request.hasPromptName ? try tokenizer.prompt(named: request.promptName) : ""
            return .with {
                $0.tokens = tokenizer.tokens(prompt + request.inputs, addSpecialTokens: request.addSpecialTokens).map { token in
                    .with {
                        $0.id = UInt32(bitPattern: token.id)
                        $0.text = token.text
                        $0.special = token.special
                        if let start = token.start { $0.start = UInt32(start) }
                        if let stop = token.stop { $0.stop = UInt32(stop) }
                    }
                }
            }
        }
        unary(&router, "Tokenize", service: "/tei.v1.Tokenize/", tokenize)
        streaming(&router, "TokenizeStream", service: "/tei.v1.Tokenize/", tokenize)
        let decodeIDs: @Sendable (Tei_V1_DecodeRequest, GRPCCallContext) async throws -> Tei_V1_DecodeResponse = { request, context in
            let (_, tokenizer) = try tasks.tokenizingModel(named: model(context))
            do {
                let text = try tokenizer.decode(request.ids.map(Int64.init), skipSpecialTokens: request.skipSpecialTokens)
                return .with { $0.text = text }
            } catch let error as InferenceError {
                throw TextTaskError(kind: .tokenizer, message: error.message)
            }
        }
        unary(&router, "Decode", service: "/tei.v1.Tokenize/", decodeIDs)
        streaming(&router, "DecodeStream", service: "/tei.v1.Tokenize/", decodeIDs)
    }

    /// A bidirectional stream answering each message with one response, in
    /// the order the messages came; messages run concurrently (and batch
    /// together). An error ends the stream with its status, as TEI does.
    func streaming<Request: SwiftProtobuf.Message & Sendable, Response: SwiftProtobuf.Message>(
        _ router: inout GRPCRouter, _ method: String, service: String,
        _ body: @escaping @Sendable (Request, GRPCCallContext) async throws -> Response
    ) {
        router.register(service + method, .bidirectionalStreaming { requests, responses, context in
            let principal = try authorize(context)
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    let (pending, continuation) = AsyncStream.makeStream(of: Task<[UInt8], any Error>.self)
                    group.addTask {
                        for await task in pending {
                            try await withTaskCancellationHandler { try await responses.write(try await task.value) } onCancel: { task.cancel() }
                        }
                    }
                    defer { continuation.finish() }
                    for try await bytes in requests {
                        let request = try decode(Request.self, bytes)
                        // Each message counts against the token's limits.
                        let permit = try mapped { try access.limiter.admit(principal) }
                        continuation.yield(Task {
                            defer { permit.release() }
                            return try await IncomingTraceContext.$headers.withValue(IncomingTraceContext.headers(context)) {
                                try await body(request, context).serializedBytes()
                            }
                        })
                    }
                    continuation.finish()
                    try await group.waitForAll()
                }
            } catch {
                throw GRPCStatus(error)
            }
        })
    }

    static func texts(_ inputs: String) throws -> TextInputs {
        guard !inputs.isEmpty else { throw TextTaskError.empty("`inputs` cannot be empty") }
        return .texts([inputs])
    }

    static func options(truncate: Bool, direction: Tei_V1_TruncationDirection, prompt: String?) -> TextOptions {
        TextOptions(truncate: truncate, truncationDirection: direction == .left ? .left : nil, promptName: prompt)
    }

    static func metadata(_ text: String, tokens: Int, since began: ContinuousClock.Instant) -> Tei_V1_Metadata {
        .with {
            $0.computeChars = UInt32(clamping: text.count)
            $0.computeTokens = UInt32(clamping: tokens)
            $0.totalTimeNs = UInt64(clamping: (ContinuousClock.now - began).nanosecondsClamped)
        }
    }

    static func predict(_ tasks: TextTaskRunner, model name: String?, inputs: TextInputs, raw: Bool, options: TextOptions,
                        characters: String) async throws -> Tei_V1_PredictResponse {
        let began = ContinuousClock.now
        let (view, model) = try tasks.model(named: name, tasks: [.classification, .rerank])
        let (rows, tokens) = try await tasks.scores(model, view: view, inputs: inputs, options: options, raw: raw,
                                                    requestBytes: characters.utf8.count)
        return .with {
            $0.predictions = (rows.first ?? []).enumerated()
                .map { entry in Tei_V1_Prediction.with { $0.score = entry.element; $0.label = model.label(entry.offset) } }
                .sorted { $0.score > $1.score }
            $0.metadata = metadata(characters, tokens: tokens, since: began)
        }
    }

    static func rerank(_ tasks: TextTaskRunner, model name: String?, query: String, texts: [String], raw: Bool, returnText: Bool,
                       options: TextOptions) async throws -> Tei_V1_RerankResponse {
        let began = ContinuousClock.now
        guard !texts.isEmpty else { throw TextTaskError.empty("`texts` cannot be empty") }
        try TextInputs.pairs(texts.map { TextPair(query, $0) }).requireNonEmpty(field: "texts")
        let (view, model) = try tasks.model(named: name, tasks: [.rerank])
        let (scores, tokens) = try await tasks.rerank(model, view: view, query: query, documents: texts, options: options, raw: raw,
                                                      requestBytes: texts.reduce(query.utf8.count) { $0 + $1.utf8.count })
        return .with {
            $0.ranks = scores.enumerated().map { entry in
                Tei_V1_Rank.with {
                    $0.index = UInt32(entry.offset)
                    $0.score = entry.element
                    if returnText { $0.text = texts[entry.offset] }
                }
            }.sorted { $0.score > $1.score }
            $0.metadata = metadata(query + texts.joined(), tokens: tokens, since: began)
        }
    }

    static func info(view: ModelView, model: TextModel, version: String) -> Tei_V1_InfoResponse {
        let info = TextModelInfo(view: view, model: model)
        return .with {
            $0.version = version
            $0.modelID = info.modelID
            $0.modelDtype = info.dtype
            $0.modelType = switch info.task {
            case .embedding, .sparseEmbedding: .embedding
            case .classification: .classifier
            case .rerank: .reranker
            }
            $0.maxConcurrentRequests = UInt32(info.maxConcurrentRequests)
            $0.maxInputLength = UInt32(clamping: info.maxInputLength)
            $0.maxBatchTokens = UInt32(clamping: info.maxBatchTokens)
            if let requests = info.maxBatchRequests { $0.maxBatchRequests = UInt32(clamping: requests) }
            $0.maxClientBatchSize = UInt32(info.maxClientBatchSize)
            $0.tokenizationWorkers = 1
        }
    }
}
