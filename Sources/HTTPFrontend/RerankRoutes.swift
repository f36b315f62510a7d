import Foundation
import HTTPTypes
import Hummingbird
import InferenceCore
import TextTasks

/// The classification and reranking routes: TEI's /predict (texts and
/// sentence pairs) and /rerank, the Cohere/Jina-style /v1/rerank and
/// /v2/rerank as vLLM serves them (also at /rerank when the body carries
/// `documents`), and vLLM's /score. Cross-encoders are `task: rerank` models
/// with a TEXT_PAIR input; the work is `TextTaskRunner`'s.
extension KServeHTTPServer {
    func addRerankRoutes(to router: Router<KServeRequestContext>) {
        router.postCancellable("/predict") { request, _ in
            let (fields, bytes) = try await teiFields(request, what: "predict request")
            return try await predict(fields, bytes: bytes)
        }
        router.postCancellable("/rerank") { request, _ in
            let (fields, bytes) = try await teiFields(request, what: "rerank request")
            // vLLM serves its Cohere-style rerank at /rerank too: `documents`, not `texts`.
            if fields["documents"] != nil && fields["texts"] == nil { return try await cohereRerank(fields, bytes: bytes) }
            return try await rerank(fields, bytes: bytes)
        }
        for path in ["/v1/rerank", "/v2/rerank"] {
            router.postCancellable(RouterPath(path)) { request, _ in
                let body = try await body(request)
                return try await cohereRerank(try JSONValue.object(from: body, what: "rerank request"), bytes: body.readableBytes)
            }
        }
        for path in ["/score", "/v1/score"] {
            router.postCancellable(RouterPath(path)) { request, _ in
                let body = try await body(request)
                return try await score(try JSONValue.object(from: body, what: "score request"), bytes: body.readableBytes)
            }
        }
    }

    /// TEI's /predict: texts and sentence pairs, one request of each kind.
    func predict(_ fields: JSONValue, bytes: Int) async throws -> Response {
        let (rows, single) = try TextFields.predictInputs(fields["inputs"])
        let (view, model) = try textTasks.model(named: try TextFields.model(fields["model"]), tasks: [.classification, .rerank])
        let raw = try TextFields.bool(fields["raw_scores"], field: "raw_scores") ?? false
        let options = try TextFields.options(fields)
        let texts = rows.compactMap { if case .text(let text) = $0 { text } else { nil } }
        let pairs = rows.compactMap { if case .pair(let pair) = $0 { pair } else { nil } }
        async let textScores = texts.isEmpty ? [] : textTasks.scores(model, view: view, inputs: .texts(texts), options: options, raw: raw,
                                                                    requestBytes: bytes).rows
        async let pairScores = pairs.isEmpty ? [] : textTasks.scores(model, view: view, inputs: .pairs(pairs), options: options, raw: raw,
                                                                    requestBytes: bytes).rows
        var nextText = try await textScores.makeIterator(), nextPair = try await pairScores.makeIterator()
        var predictions: [[TEIBodies.Prediction]] = []
        for row in rows {
            let scores: [Float]
            if case .text = row { scores = nextText.next() ?? [] } else { scores = nextPair.next() ?? [] }
            predictions.append(scores.enumerated().map { TEIBodies.Prediction(score: $0.element, label: model.label($0.offset)) }
                .sorted { $0.score > $1.score })
        }
        return single ? try json(predictions[0]) : try json(predictions)
    }

    /// TEI's /rerank: `query`, `texts`; ranks highest first.
    func rerank(_ fields: JSONValue, bytes: Int) async throws -> Response {
        guard case .string(let query)? = fields["query"], !query.isEmpty else {
            throw TextTaskError.validation("'query' must be a non-empty string", param: "query")
        }
        let texts = try TextFields.texts(fields["texts"], field: "texts")
        let (view, model) = try textTasks.model(named: try TextFields.model(fields["model"]), tasks: [.rerank])
        let raw = try TextFields.bool(fields["raw_scores"], field: "raw_scores") ?? false
        let returnText = try TextFields.bool(fields["return_text"], field: "return_text") ?? false
        let (scores, _) = try await textTasks.rerank(model, view: view, query: query, documents: texts, options: try TextFields.options(fields),
                                                     raw: raw, requestBytes: bytes)
        return try json(scores.enumerated().map { TEIBodies.Rank(index: $0.offset, text: returnText ? texts[$0.offset] : nil, score: $0.element) }
            .sorted { $0.score > $1.score })
    }

    /// Cohere's and Jina's rerank as vLLM serves it: `query`, `documents`
    /// (strings, or Cohere's `{"text": …}`), `top_n` (0 or absent: all),
    /// `return_documents` (default true, as vLLM always returns them).
    private func cohereRerank(_ fields: JSONValue, bytes: Int) async throws -> Response {
        guard case .string(let query)? = fields["query"], !query.isEmpty else {
            throw TextTaskError.validation("'query' must be a non-empty string", param: "query")
        }
        let documents = try TextFields.texts(fields["documents"], field: "documents")
        let topN = try TextFields.count(fields["top_n"], field: "top_n") ?? 0
        let returnDocuments = try TextFields.bool(fields["return_documents"], field: "return_documents") ?? true
        let name = try TextFields.model(fields["model"])
        let (view, model) = try textTasks.model(named: name, tasks: [.rerank])
        let (scores, tokens) = try await textTasks.rerank(model, view: view, query: query, documents: documents,
                                                          options: try Self.vLLMOptions(fields), raw: false, requestBytes: bytes)
        let ranked = scores.enumerated().sorted { $0.element > $1.element }.prefix(topN > 0 ? topN : scores.count)
        return try json(VLLMBodies.RerankResponse(
            id: "rerank-\(UUID().uuidString.lowercased())", model: name ?? view.spec.name,
            usage: .init(prompt_tokens: tokens, total_tokens: tokens),
            results: ranked.map { .init(index: $0.offset, document: returnDocuments ? .init(text: documents[$0.offset]) : nil,
                                        relevance_score: $0.element) }))
    }

    /// vLLM's /score: `queries`/`documents` (or `queries`/`items`,
    /// `data_1`/`data_2`, `text_1`/`text_2`), each a string or a list, paired
    /// 1:1, 1:N or N:N; scores in input order.
    private func score(_ fields: JSONValue, bytes: Int) async throws -> Response {
        guard let (left, right) = [("queries", "documents"), ("queries", "items"), ("data_1", "data_2"), ("text_1", "text_2")]
            .first(where: { fields[$0.0] != nil && fields[$0.1] != nil }) else {
            throw TextTaskError.validation("a score request takes 'queries' and 'documents' (or 'text_1' and 'text_2')", param: "queries")
        }
        func side(_ field: String) throws -> [String] {
            if case .string(let text)? = fields[field] {
                guard !text.isEmpty else { throw TextTaskError.validation("'\(field)' must be non-empty", param: field) }
                return [text]
            }
            return try TextFields.texts(fields[field], field: field)
        }
        let (queries, documents) = (try side(left), try side(right))
        let pairs: [TextPair]
        switch (queries.count, documents.count) {
        case (1, _): pairs = documents.map { TextPair(queries[0], $0) }
        case (let n, let m) where n == m: pairs = zip(queries, documents).map { TextPair($0, $1) }
        default: throw TextTaskError.validation("Input lengths must be either 1:1, 1:N or N:N", param: left)
        }
        let name = try TextFields.model(fields["model"])
        let (view, model) = try textTasks.model(named: name, tasks: [.rerank, .classification])
        let raw = try TextFields.bool(fields["use_activation"], field: "use_activation") == false
        let (rows, tokens) = try await textTasks.scores(model, view: view, inputs: .pairs(pairs), options: try Self.vLLMOptions(fields),
                                                        raw: raw, requestBytes: bytes)
        return try json(VLLMBodies.ScoreResponse(
            id: "score-\(UUID().uuidString.lowercased())", created: Int(Date().timeIntervalSince1970), model: name ?? view.spec.name,
            data: rows.enumerated().map { .init(index: $0.offset, score: $0.element.first ?? 0) },
            usage: .init(prompt_tokens: tokens, total_tokens: tokens)))
    }

    /// vLLM's reading options: `truncation_side`, and `truncate_prompt_tokens`
    /// -1 (cut at the model's limit); texts too long are refused without it.
    static func vLLMOptions(_ fields: JSONValue) throws -> TextOptions {
        let side = try TextFields.string(fields["truncation_side"], field: "truncation_side").map { try TextOptions.direction($0, field: "truncation_side") }
        switch fields["truncate_prompt_tokens"] {
        case nil, .null?: return TextOptions(truncate: false, truncationDirection: side)
        case .int(-1)?: return TextOptions(truncate: true, truncationDirection: side)
        default:
            throw TextTaskError.validation("'truncate_prompt_tokens' must be -1 (the model's limit); other lengths are not supported",
                                           param: "truncate_prompt_tokens")
        }
    }
}
