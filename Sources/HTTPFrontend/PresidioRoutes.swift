import Foundation
import HTTPTypes
import Hummingbird
import AccessControl
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
    func addPresidioRoutes(to router: Router<KServeRequestContext>) {
        let model = configuration.deidentifierModel
        router.get("/supportedentities") { request, _ in
            try Self.requireEnglish(request.uri.queryParameters.get("language") ?? "en")
            return try json(EntityType.allCases.filter { $0 != .custom }.map(\.rawValue))
        }
        router.get("/recognizers") { request, _ in
            try Self.requireEnglish(request.uri.queryParameters.get("language") ?? "en")
            return try json(Recognizer.allCases.map(\.rawValue))
        }
        router.get("/anonymizers") { _, _ in try json(DeidentificationParameters.anonymizers) }
        router.get("/deanonymizers") { _, _ in try json(DeidentificationParameters.deanonymizers) }
        router.postCancellable("/analyze") { request, _ in
            let body = try await body(request)
            let fields = try JSONValue.object(from: body, what: "analyze request")
            let texts: [String]
            var batch = false
            switch fields["text"] {
            case .string(let text)? where !text.isEmpty: texts = [text]
            case .array(let items)? where !items.isEmpty:
                texts = try items.map { item in
                    guard case .string(let text) = item else { throw InferenceError.invalidArgument("'text' must be a string or a list of strings") }
                    return text
                }
                batch = true
            default: throw InferenceError.invalidArgument("No text provided")
            }
            guard case .string(let language)? = fields["language"], !language.isEmpty else {
                throw InferenceError.invalidArgument("No language provided")
            }
            try Self.requireEnglish(language)
            if let adHoc = fields["ad_hoc_recognizers"], adHoc != .null, adHoc != .array([]) {
                throw InferenceError.invalidArgument("ad_hoc_recognizers are not supported: put patterns in the de-identifier model's patterns_file and terms in its deny_list_file")
            }
            var parameters: [String: ParameterValue] = ["analyze_only": .bool(true)]
            if let entities = fields["entities"], entities != .null {
                guard case .array(let list) = entities, list.allSatisfy({ if case .string = $0 { true } else { false } }) else {
                    throw InferenceError.invalidArgument("'entities' must be a list of entity names")
                }
                // Presidio answers nothing for a name it does not know; so do we.
                let known = list.compactMap { if case .string(let name) = $0, EntityType(rawValue: name) != nil { name } else { nil } }
                if known.isEmpty { return try json(batch ? texts.map { _ in [PresidioBodies.AnalyzerResult]() } : []) }
                parameters["entities"] = .string(known.joined(separator: ","))
            }
            if let threshold = fields["score_threshold"], threshold != .null {
                guard let value = threshold.number else { throw InferenceError.invalidArgument("'score_threshold' must be a number") }
                parameters["score_threshold"] = .double(value)
            }
            if let allow = fields["allow_list"], allow != .null {
                parameters["allow_list"] = .string(try allow.jsonText())
                if case .string(let match)? = fields["allow_list_match"] { parameters["allow_list_match"] = .string(match) }
            }
            let explain = fields["return_decision_process"] == .bool(true)
            var answers: [[PresidioBodies.AnalyzerResult]] = []
            for text in texts {
                let spans = try await deidentify(model: model, text: text, parameters: parameters, bytes: body.readableBytes).spans
                answers.append(spans.map { PresidioBodies.AnalyzerResult($0, explain: explain) }.sorted(by: PresidioBodies.AnalyzerResult.presidioOrder))
                auditPHI("analyze", spans: spans, request: request)
            }
            return batch ? try PresidioBodies.analyzerJSON(answers) : try PresidioBodies.analyzerJSON(answers[0])
        }
        router.postCancellable("/anonymize") { request, _ in
            let body = try await body(request)
            let fields = try PresidioBodies.fields(body)
            guard let results = fields["analyzer_results"], case .array(let list) = results else {
                throw InferenceError.invalidArgument("Invalid input, request must contain analyzer results")
            }
            let text: String = if case .string(let value)? = fields["text"] { value } else { "" }
            var parameters: [String: ParameterValue] = ["analyzer_results": .string(try results.jsonText()), "tag_style": .string("presidio")]
            if let anonymizers = fields["anonymizers"], anonymizers != .null {
                guard case .object(let table) = anonymizers else {
                    throw InferenceError.invalidArgument("Invalid input, anonymizers must be an object of operator configs by entity type")
                }
                if table.values.contains(where: { $0["type"] == .string("custom") }) {
                    throw HTTPError(.badRequest, message: "Custom type anonymizer is not supported")
                }
                parameters["operators"] = .string(try anonymizers.jsonText())
            }
            if case .string(let key)? = fields["patient_key"] { parameters["patient_key"] = .string(key) }
            if text.isEmpty && list.isEmpty { return try json(PresidioBodies.EngineResult(text: "", items: [])) }
            let result = try await deidentify(model: model, text: text, parameters: parameters, bytes: body.readableBytes)
            auditPHI("anonymize", spans: result.spans, request: request)
            return try json(PresidioBodies.EngineResult(text: result.text, items: PresidioBodies.Item.list(result.spans, in: result.text)))
        }
        router.postCancellable("/deanonymize") { request, _ in
            let body = try await body(request)
            let fields = try PresidioBodies.fields(body)
            let text: String = if case .string(let value)? = fields["text"] { value } else { "" }
            guard let results = fields["anonymizer_results"], case .array(let list) = results, !list.isEmpty else {
                return try json(PresidioBodies.EngineResult(text: text, items: []))
            }
            var parameters: [String: ParameterValue] = ["deanonymize": .string(try results.jsonText())]
            var serverKey = true
            if let deanonymizers = fields["deanonymizers"], case .object(let table) = deanonymizers {
                parameters["deanonymizers"] = .string(try deanonymizers.jsonText())
                // Decrypting with the client's own key reveals nothing the client could not decrypt itself.
                serverKey = table["DEFAULT"]?["key"] == nil || table.values.contains { $0["type"] == .string("decrypt") && $0["key"] == nil }
            }
            if serverKey && !access.isEnabled {
                throw InferenceError(.permissionDenied, "decrypting with the server's key needs access control: start the server with --auth-tokens-file and use a token granting 'reidentify'")
            }
            let result = try await deidentify(model: model, text: text, parameters: parameters, bytes: body.readableBytes, reidentify: true)
            auditPHI("deanonymize", spans: result.spans, request: request)
            return try json(PresidioBodies.EngineResult(text: result.text, items: PresidioBodies.Item.list(result.spans, in: result.text)))
        }
    }

    /// With `--audit-log`: who analyzed, anonymized or de-anonymized how many
    /// entities of which types. Counts and types only, never a span's text.
    private func auditPHI(_ action: String, spans: [PresidioBodies.Span], request: Request) {
        guard let audit else { return }
        let principal = (try? access.authorize(request.headers[.authorization], for: EndpointGroups.forHTTP(path: request.uri.path)))
            .flatMap { $0 } ?? (access.isEnabled ? "anonymous" : "-")
        // A client's own type names (anonymize takes any) are not logged: they are its text.
        let counts = Dictionary(spans.map { (EntityType(rawValue: $0.entity_type) != nil ? $0.entity_type : "OTHER", 1) }, uniquingKeysWith: +)
        audit.info("phi", metadata: [
            "audit.principal": "\(principal)", "phi.action": "\(action)", "phi.entities": "\(spans.count)",
            "phi.types": "\(counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))",
        ])
    }

    private static func requireEnglish(_ language: String) throws {
        guard language == "en" else {
            throw InferenceError.invalidArgument("No matching recognizers were found to serve the request.")
        }
    }

    /// One text through the de-identifier model; its output text and spans.
    private func deidentify(model: String, text: String, parameters: [String: ParameterValue], bytes: Int,
                            reidentify: Bool = false) async throws -> (text: String, spans: [PresidioBodies.Span]) {
        var call = InferenceCall(modelName: model, modelVersion: "", protocolName: "http", requestBytes: bytes,
                                 grantsReidentification: reidentify)
        call.traceHeaders = IncomingTraceContext.headers
        let response = try await server.infer(call) { spec in
            let shape = spec.maxBatchSize > 0 ? [1, 1] : [1]
            return (InferenceRequest(modelName: model, inputs: [Tensor(name: DeidentificationParameters.textInput, shape: shape, elements: [Array(text.utf8)])],
                                     parameters: parameters), ())
        }.0
        guard let cleaned = try response.outputs.first(where: { $0.name == DeidentificationParameters.textOutput })?.elements().first,
              let entities = try response.outputs.first(where: { $0.name == DeidentificationParameters.entitiesOutput })?.elements().first else {
            throw InferenceError.internal("model '\(model)' answered without DEIDENTIFIED_TEXT and ENTITIES")
        }
        let spans = try PresidioBodies.Span.list(entities)
        return (String(decoding: cleaned, as: UTF8.self), spans)
    }
}

/// Presidio's JSON shapes.
enum PresidioBodies {
    /// A span as the de-identifier's ENTITIES output holds it.
    struct Span {
        var entity_type: String
        var start: Int
        var end: Int
        var score: Double?
        var recognizer: String?
        var `operator`: String
        var new_start: Int
        var new_end: Int

        /// Reads ENTITIES: a list of flat objects written by the de-identifier.
        /// A small reader of that shape (strings, numbers, null) costs a fraction
        /// of Foundation's JSON parsers, which took a third of the route's time.
        static func list(_ json: [UInt8]) throws -> [Span] {
            var reader = FlatJSONReader(bytes: json)
            return try reader.objects().map { item in
                guard case .string(let type)? = item["entity_type"], case .number(let startValue)? = item["start"],
                      case .number(let endValue)? = item["end"], case .string(let op)? = item["operator"],
                      case .number(let newStartValue)? = item["new_start"], case .number(let newEndValue)? = item["new_end"],
                      let start = Int(exactly: startValue), let end = Int(exactly: endValue),
                      let newStart = Int(exactly: newStartValue), let newEnd = Int(exactly: newEndValue) else {
                    throw InferenceError.internal("the de-identifier's ENTITIES output lacks a field")
                }
                let score: Double? = if case .number(let value)? = item["score"] { value } else { nil }
                let recognizer: String? = if case .string(let name)? = item["recognizer"] { name } else { nil }
                return Span(entity_type: type, start: start, end: end, score: score, recognizer: recognizer,
                            operator: op, new_start: newStart, new_end: newEnd)
            }
        }
    }

    /// Presidio's AnalysisExplanation; absent values are written as null, as Presidio writes them.
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

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(recognizer, forKey: .recognizer)
            try c.encode(pattern_name, forKey: .pattern_name)
            try c.encode(pattern, forKey: .pattern)
            try c.encode(original_score, forKey: .original_score)
            try c.encode(score, forKey: .score)
            try c.encode(textual_explanation, forKey: .textual_explanation)
            try c.encode(score_context_improvement, forKey: .score_context_improvement)
            try c.encode(supportive_context_word, forKey: .supportive_context_word)
            try c.encode(validation_result, forKey: .validation_result)
        }
        enum Keys: String, CodingKey {
            case recognizer, pattern_name, pattern, original_score, score, textual_explanation, score_context_improvement,
                 supportive_context_word, validation_result
        }
    }

    /// Presidio writes results with sorted keys; so do we.
    struct AnalyzerResult: Encodable {
        var analysis_explanation: Explanation?
        var end: Int
        var entity_type: String
        var score: Double
        var start: Int

        init(_ span: Span, explain: Bool) {
            entity_type = span.entity_type
            start = span.start
            end = span.end
            score = span.score ?? 1
            let recognizer = span.recognizer ?? "PatternRecognizer"
            analysis_explanation = explain ? Explanation(recognizer: recognizer, pattern_name: nil, pattern: nil, original_score: score,
                                                         score: score, textual_explanation: "Identified as \(span.entity_type) by \(recognizer)",
                                                         score_context_improvement: 0, supportive_context_word: "", validation_result: nil) : nil
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(analysis_explanation, forKey: .analysis_explanation)
            try c.encode(end, forKey: .end)
            try c.encode(entity_type, forKey: .entity_type)
            try c.encode(score, forKey: .score)
            try c.encode(start, forKey: .start)
        }
        enum Keys: String, CodingKey { case analysis_explanation, end, entity_type, score, start }

        /// Presidio's order: highest score first, then by start, then longer first.
        static func presidioOrder(_ a: AnalyzerResult, _ b: AnalyzerResult) -> Bool {
            (-a.score, a.start, a.start - a.end) < (-b.score, b.start, b.start - b.end)
        }
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

        /// Anonymizer items: each new value where it lies in the new text.
        static func list(_ spans: [Span], in text: String) -> [Item] {
            let scalars = Array(text.unicodeScalars)
            return spans.map { span in
                let end = max(0, min(span.new_end, scalars.count))
                let start = max(0, min(span.new_start, end))
                return Item(start: start, end: end, entity_type: span.entity_type,
                            text: String(String.UnicodeScalarView(scalars[start..<end])), operator: span.operator)
            }
        }
    }

    struct EngineResult: Encodable {
        var text: String
        var items: [Item]
    }

    /// The analyzer's answer. Without explanations every field is a number or a
    /// plain ASCII name, written directly (JSONEncoder took a tenth of the route).
    static func analyzerJSON<T: Encodable>(_ value: T) throws -> Response {
        func plain(_ results: [AnalyzerResult]) -> String? {
            guard results.allSatisfy({ $0.analysis_explanation == nil && $0.entity_type.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f && $0 != 0x22 && $0 != 0x5c } })
            else { return nil }
            return "[" + results.map {
                "{\"analysis_explanation\":null,\"end\":\($0.end),\"entity_type\":\"\($0.entity_type)\",\"score\":\($0.score),\"start\":\($0.start)}"
            }.joined(separator: ",") + "]"
        }
        let text: String? = switch value {
        case let one as [AnalyzerResult]: plain(one)
        case let many as [[AnalyzerResult]]: many.map(plain).contains(nil) ? nil : "[" + many.map { plain($0)! }.joined(separator: ",") + "]"
        default: nil
        }
        guard let text else { return try json(value) }
        return KServeHTTPServer.bytesResponse(Array(text.utf8), contentType: "application/json")
    }

    /// The anonymizer's body: an object that is not empty, or Presidio's 400s.
    static func fields(_ body: ByteBuffer) throws -> JSONValue {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView)) else {
            throw HTTPError(.badRequest, message: "The browser (or proxy) sent a request that this server could not understand.")
        }
        guard case .object(let members) = value, !members.isEmpty else { throw HTTPError(.badRequest, message: "Invalid request json") }
        return value
    }
}

/// Reads a JSON list of flat objects whose values are strings, numbers or
/// null: the de-identifier's ENTITIES. Anything else is an error.
struct FlatJSONReader {
    enum Value { case string(String), number(Double), null }
    let bytes: [UInt8]
    var position = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func objects() throws -> [[String: Value]] {
        var result: [[String: Value]] = []
        try expect(UInt8(ascii: "["))
        skipSpace()
        if peek() == UInt8(ascii: "]") { position += 1; return result }
        while true {
            result.append(try object())
            skipSpace()
            let next = try take()
            if next == UInt8(ascii: "]") { return result }
            guard next == UInt8(ascii: ",") else { throw failure() }
        }
    }

    private mutating func object() throws -> [String: Value] {
        var members: [String: Value] = [:]
        try expect(UInt8(ascii: "{"))
        skipSpace()
        if peek() == UInt8(ascii: "}") { position += 1; return members }
        while true {
            skipSpace()
            let key = try string()
            try expect(UInt8(ascii: ":"))
            skipSpace()
            switch peek() {
            case UInt8(ascii: "\""): members[key] = .string(try string())
            case UInt8(ascii: "n"):
                guard position + 4 <= bytes.count, bytes[position..<position + 4].elementsEqual("null".utf8) else { throw failure() }
                position += 4
                members[key] = .null
            default:
                let start = position
                while position < bytes.count, "-+.eE0123456789".utf8.contains(bytes[position]) { position += 1 }
                guard let value = Double(String(decoding: bytes[start..<position], as: UTF8.self)) else { throw failure() }
                members[key] = .number(value)
            }
            skipSpace()
            let next = try take()
            if next == UInt8(ascii: "}") { return members }
            guard next == UInt8(ascii: ",") else { throw failure() }
        }
    }

    private mutating func string() throws -> String {
        try expect(UInt8(ascii: "\""))
        var out: [UInt8] = []
        while true {
            let byte = try take()
            if byte == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            guard byte == UInt8(ascii: "\\") else { out.append(byte); continue }
            let escaped = try take()
            switch escaped {
            case UInt8(ascii: "n"): out.append(10)
            case UInt8(ascii: "t"): out.append(9)
            case UInt8(ascii: "r"): out.append(13)
            case UInt8(ascii: "u"):
                guard position + 4 <= bytes.count, let code = UInt32(String(decoding: bytes[position..<position + 4], as: UTF8.self), radix: 16),
                      let scalar = Unicode.Scalar(code) else { throw failure() }
                position += 4
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default: out.append(escaped)
            }
        }
    }

    private func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func take() throws -> UInt8 {
        guard position < bytes.count else { throw failure() }
        defer { position += 1 }
        return bytes[position]
    }

    private mutating func expect(_ byte: UInt8) throws {
        skipSpace()
        guard try take() == byte else { throw failure() }
    }

    private mutating func skipSpace() {
        while position < bytes.count, [0x20, 0x0a, 0x0d, 0x09].contains(bytes[position]) { position += 1 }
    }

    private func failure() -> InferenceError {
        InferenceError.internal("the de-identifier's ENTITIES output is not a list of flat JSON objects (byte \(position))")
    }
}
