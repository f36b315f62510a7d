import Foundation
import HTTPTypes
import Hummingbird
import InferenceCore

/// Microsoft Presidio's REST API (the analyzer's /analyze, /recognizers,
/// /supportedentities and the anonymizer's /anonymize, /deanonymize,
/// /anonymizers, /deanonymizers) over the server's de-identifier model
/// (`--deidentifier-model`, `phi_deidentifier`), so Presidio clients change
/// only the URL. Every call is an inference through the request pipeline:
/// batched with KServe requests, counted in the model's statistics, under the
/// `inference` access group; /deanonymize needs the `reidentify` group.
/// Errors are Presidio's `{"error": "..."}`.
extension KServeHTTPServer {
    func addPresidioRoutes(to router: Router<BasicRequestContext>) {
        let model = configuration.deidentifierModel
        router.get("/supportedentities") { request, _ in
            try Self.requireEnglish(request.uri.queryParameters.get("language") ?? "en")
            return try json(PresidioBodies.entityNames)
        }
        router.get("/recognizers") { request, _ in
            try Self.requireEnglish(request.uri.queryParameters.get("language") ?? "en")
            return try json(PresidioBodies.recognizerNames)
        }
        router.get("/anonymizers") { _, _ in try json(PresidioBodies.anonymizerNames) }
        router.get("/deanonymizers") { _, _ in try json(["decrypt"]) }
        router.post("/analyze") { request, _ in
            let body = try await body(request)
            let fields = try PresidioBodies.fields(body, what: "analyze request")
            let text = try PresidioBodies.text(fields)
            guard case .string(let language)? = fields["language"], !language.isEmpty else {
                throw InferenceError.invalidArgument("No language provided")
            }
            try Self.requireEnglish(language)
            var parameters: [String: ParameterValue] = [:]
            if let entities = fields["entities"], entities != .null {
                guard case .array(let list) = entities else { throw InferenceError.invalidArgument("'entities' must be a list of entity names") }
                let names = try list.map { item -> String in
                    guard case .string(let name) = item else { throw InferenceError.invalidArgument("'entities' must be a list of entity names") }
                    return name
                }
                parameters["entities"] = .string(names.joined(separator: ","))
            }
            if let threshold = fields["score_threshold"], threshold != .null {
                guard let value = threshold.number else { throw InferenceError.invalidArgument("'score_threshold' must be a number") }
                parameters["score_threshold"] = .double(value)
            }
            let explain = fields["return_decision_process"] == .bool(true)
            let spans = try await deidentify(model: model, text: text, parameters: parameters, bytes: body.readableBytes).spans
            return try json(spans.map { PresidioBodies.AnalyzerResult($0, explain: explain) })
        }
        router.post("/anonymize") { request, _ in
            let body = try await body(request)
            let fields = try PresidioBodies.fields(body, what: "anonymize request")
            let text = try PresidioBodies.text(fields)
            var parameters: [String: ParameterValue] = [:]
            guard let results = fields["analyzer_results"], case .array = results else {
                throw InferenceError.invalidArgument("Invalid input, analyzer_results must be a list")
            }
            parameters["analyzer_results"] = .string(try results.jsonText())
            if let anonymizers = fields["anonymizers"], anonymizers != .null {
                guard case .object = anonymizers else { throw InferenceError.invalidArgument("'anonymizers' must be an object of operators by entity type") }
                parameters["operators"] = .string(try anonymizers.jsonText())
            } else {
                parameters["operators"] = .string(#"{"DEFAULT":{"type":"replace"}}"#)
            }
            if case .string(let key)? = fields["patient_key"] { parameters["patient_key"] = .string(key) }
            let result = try await deidentify(model: model, text: text, parameters: parameters, bytes: body.readableBytes, presidioTags: true)
            return try json(PresidioBodies.EngineResult(text: result.text, items: result.spans.map { PresidioBodies.Item($0, in: result.text) }))
        }
        router.post("/deanonymize") { request, _ in
            guard access.isEnabled else {
                throw InferenceError(.permissionDenied, "re-identification needs access control: start the server with --auth-tokens-file and use a token granting 'reidentify'")
            }
            let body = try await body(request)
            let fields = try PresidioBodies.fields(body, what: "deanonymize request")
            let text = try PresidioBodies.text(fields)
            guard let results = fields["anonymizer_results"], case .array(let items) = results else {
                throw InferenceError.invalidArgument("Invalid input, anonymizer_results must be a list")
            }
            if let deanonymizers = fields["deanonymizers"], case .object(let table) = deanonymizers {
                for (name, config) in table where config["type"] != .string("decrypt") {
                    throw InferenceError.invalidArgument("deanonymizers.\(name.prefix(40)): only 'decrypt' is supported")
                }
                if table.values.contains(where: { $0["key"] != nil }) {
                    throw InferenceError.invalidArgument("deanonymizers: this server decrypts with its own key file; leave 'key' out")
                }
            }
            let result = try await deidentify(model: model, text: text, parameters: ["deanonymize": .string(try results.jsonText())],
                                              bytes: body.readableBytes, reidentify: true)
            _ = items
            return try json(PresidioBodies.EngineResult(text: result.text, items: result.spans.map { PresidioBodies.Item($0, in: result.text) }))
        }
    }

    private static func requireEnglish(_ language: String) throws {
        guard language == "en" else {
            throw InferenceError.invalidArgument("No matching recognizers were found to serve the request.")
        }
    }

    /// One text through the de-identifier model; its de-identified text and spans.
    private func deidentify(model: String, text: String, parameters: [String: ParameterValue], bytes: Int,
                            presidioTags: Bool = false, reidentify: Bool = false) async throws -> (text: String, spans: [PresidioBodies.Span]) {
        var parameters = parameters
        if presidioTags { parameters["tag_style"] = .string("presidio") }
        let request = InferenceRequest(modelName: model, inputs: [Tensor(name: "TEXT", shape: [1, 1], elements: [Array(text.utf8)])],
                                       parameters: parameters)
        let call = InferenceCall(modelName: model, modelVersion: "", protocolName: "http", requestBytes: bytes,
                                 grantsReidentification: reidentify)
        let response = try await server.infer(call) { spec in
            (spec.maxBatchSize > 0 ? request : InferenceRequest(modelName: model, inputs: [Tensor(name: "TEXT", shape: [1], elements: [Array(text.utf8)])],
                                                                 parameters: parameters), ())
        }.0
        guard let cleaned = try response.outputs.first(where: { $0.name == "DEIDENTIFIED_TEXT" })?.elements().first,
              let entities = try response.outputs.first(where: { $0.name == "ENTITIES" })?.elements().first else {
            throw InferenceError.internal("model '\(model)' answered without DEIDENTIFIED_TEXT and ENTITIES")
        }
        let spans = try JSONDecoder().decode([PresidioBodies.Span].self, from: Data(entities))
        return (String(decoding: cleaned, as: UTF8.self), spans)
    }
}

/// Presidio's JSON shapes.
enum PresidioBodies {
    static let entityNames = EntityType.allCases.filter { $0 != .custom }.map(\.rawValue)
    static let recognizerNames = Recognizer.allCases.map(\.rawValue)
    static let anonymizerNames = ["date_shift", "encrypt", "hash", "keep", "mask", "redact", "replace"]

    /// A span as the de-identifier's ENTITIES output holds it.
    struct Span: Decodable {
        var entity_type: String
        var start: Int
        var end: Int
        var score: Double
        var recognizer: String
        var `operator`: String
        var new_start: Int
        var new_end: Int
    }

    struct RecognitionMetadata: Encodable {
        var recognizer_name: String
        var recognizer_identifier: String
    }

    struct Explanation: Encodable {
        var recognizer: String
        var pattern_name: String?
        var pattern: String?
        var original_score: Double
        var score: Double
        var textual_explanation: String?
        var score_context_improvement: Double
        var supportive_context_word: String
        var validation_result: Bool?
    }

    struct AnalyzerResult: Encodable {
        var entity_type: String
        var start: Int
        var end: Int
        var score: Double
        var analysis_explanation: Explanation?
        var recognition_metadata: RecognitionMetadata

        init(_ span: Span, explain: Bool) {
            entity_type = span.entity_type
            start = span.start
            end = span.end
            score = span.score
            analysis_explanation = explain ? Explanation(recognizer: span.recognizer, pattern_name: nil, pattern: nil, original_score: span.score,
                                                         score: span.score, textual_explanation: "Identified as \(span.entity_type) by \(span.recognizer)",
                                                         score_context_improvement: 0, supportive_context_word: "", validation_result: nil) : nil
            recognition_metadata = RecognitionMetadata(recognizer_name: span.recognizer, recognizer_identifier: span.recognizer)
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(entity_type, forKey: .entity_type)
            try c.encode(start, forKey: .start)
            try c.encode(end, forKey: .end)
            try c.encode(score, forKey: .score)
            try c.encode(analysis_explanation, forKey: .analysis_explanation)
            try c.encode(recognition_metadata, forKey: .recognition_metadata)
        }
        enum Keys: String, CodingKey { case entity_type, start, end, score, analysis_explanation, recognition_metadata }
    }

    struct Item: Encodable {
        var start: Int
        var end: Int
        var entity_type: String
        var text: String
        var `operator`: String

        init(start: Int, end: Int, entity_type: String, text: String, operator: String) {
            self.start = start
            self.end = end
            self.entity_type = entity_type
            self.text = text
            self.operator = `operator`
        }

        /// An anonymizer item: the new value where it lies in the new text.
        init(_ span: Span, in text: String) {
            let scalars = Array(text.unicodeScalars)
            let end = min(span.new_end, scalars.count)
            let start = min(span.new_start, end)
            self.init(start: start, end: end, entity_type: span.entity_type,
                      text: String(String.UnicodeScalarView(scalars[start..<end])), operator: span.operator)
        }
    }

    struct EngineResult: Encodable {
        var text: String
        var items: [Item]
    }

    static func fields(_ body: ByteBuffer, what: String) throws -> JSONValue {
        guard body.readableBytes > 0 else { throw InferenceError.invalidArgument("Invalid request json") }
        return try JSONValue.object(from: body, what: what)
    }

    static func text(_ fields: JSONValue) throws -> String {
        guard case .string(let text)? = fields["text"], !text.isEmpty else { throw InferenceError.invalidArgument("No text provided") }
        return text
    }
}
