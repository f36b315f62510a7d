import Foundation
import InferenceCore

/// The `phi_deidentifier` backend: TEXT (BYTES) in; DEIDENTIFIED_TEXT (BYTES)
/// and ENTITIES (BYTES, a JSON list per text) out. A model in the repository
/// like any other, so it serves KServe HTTP and gRPC, ensembles, the bulk
/// client and the Presidio routes through the same scheduler.
///
/// Config parameters: `entities` (comma list, default all), `score_threshold`
/// (0.5), `operator` (default operator, `replace`), `operator_<TYPE>` (per
/// type), `tag_style` (brackets | presidio), `key_file`, `allow_list_file`,
/// `deny_list_file`, `patterns_file`, `first_names_file`, `last_names_file`,
/// `common_words_file` (paths relative to the version directory), `ner_labels`
/// (`LABEL=TYPE,…`: a token-classification model's labels, `ModelEntityLabels`).
/// Optional input NER_ENTITIES: that model's spans in the same text.
/// Request parameters: `entities`, `score_threshold`, `operators` (Presidio's
/// anonymizers JSON), `analyzer_results` (JSON spans to apply instead of
/// detecting), `patient_key` (date shifts), `deanonymize` (JSON items whose
/// encrypted spans to restore; the request pipeline admits it only for
/// callers granted re-identification).
public struct PHIDeidentifierBackend: ModelBackend {
    public let name = DeidentificationParameters.backend
    public init() {}

    public static let textInput = DeidentificationParameters.textInput
    public static let textOutput = DeidentificationParameters.textOutput
    public static let entitiesOutput = DeidentificationParameters.entitiesOutput

    public static let modelEntitiesInput = DeidentificationParameters.modelEntitiesInput

    public func validate(_ spec: ModelSpec) throws {
        guard let input = spec.inputs.first(where: { $0.name == Self.textInput }), input.dataType == .bytes,
              spec.inputs.allSatisfy({ $0.name == Self.textInput || ($0.name == Self.modelEntitiesInput && $0.dataType == .bytes && $0.dims == input.dims) })
        else {
            throw InferenceError.invalidArgument(
                "model '\(spec.name)': backend 'phi_deidentifier' takes input 'TEXT' of TYPE_STRING, and optionally 'NER_ENTITIES' (TYPE_STRING, the dims of 'TEXT')")
        }
        for output in spec.outputs {
            guard [Self.textOutput, Self.entitiesOutput].contains(output.name), output.dataType == .bytes, output.dims == input.dims else {
                throw InferenceError.invalidArgument(
                    "model '\(spec.name)': backend 'phi_deidentifier' produces 'DEIDENTIFIED_TEXT' and 'ENTITIES' (TYPE_STRING, the dims of 'TEXT'), not '\(output.name)'")
            }
        }
        _ = try DeidentifierSettings(spec: spec, loadFiles: false)
    }

    public func makeInstance(for spec: ModelSpec, index: Int) throws -> any ModelInstance {
        PHIDeidentifierInstance(spec: spec, settings: try DeidentifierSettings(spec: spec, loadFiles: true))
    }

    /// Request checks before queuing, so a bad request fails alone: UTF-8
    /// text, known entity names, well-formed operators and spans.
    public func prepare(_ request: inout ValidatedRequest, spec: ModelSpec) throws {
        guard let text = request.request.input(named: Self.textInput) else { return }
        let settings = try DeidentifierSettings(spec: spec, loadFiles: false)
        let elements = try text.elements()
        for (index, element) in elements.enumerated() {
            guard element.count <= settings.maxTextBytes else {
                throw InferenceError.invalidArgument("model '\(spec.name)': input 'TEXT' element \(index) is \(element.count) bytes, over the model's max_text_bytes (\(settings.maxTextBytes))")
            }
            guard String(validating: element, as: UTF8.self) != nil else {
                throw InferenceError.invalidArgument("model '\(spec.name)': input 'TEXT' element \(index) is not valid UTF-8")
            }
        }
        let options = try RequestOptions(request.request.parameters, settings: settings, model: spec.name)
        if options.analyzerResults != nil || options.deanonymize != nil {
            guard request.batchSize == 1, elements.count == 1 else {
                throw InferenceError.invalidArgument("model '\(spec.name)': 'analyzer_results' and 'deanonymize' apply to a request of one text")
            }
        }
        if let spans = request.request.input(named: Self.modelEntitiesInput) {
            let lists = try spans.elements()
            guard lists.count == elements.count else {
                throw InferenceError.invalidArgument("model '\(spec.name)': input 'NER_ENTITIES' has \(lists.count) elements for \(elements.count) texts")
            }
            for (index, list) in lists.enumerated() {
                let length = String(decoding: elements[index], as: UTF8.self).unicodeScalars.count
                try modelSpans(list, element: index, textLength: length, labels: settings.modelLabels, model: spec.name)
            }
        }
        let length = elements.first.map { String(decoding: $0, as: UTF8.self).unicodeScalars.count } ?? 0
        try options.check(textLength: length, hasKey: spec.parameters["key_file"] != nil, model: spec.name, configured: settings.operators)
    }
}

/// One text's NER_ENTITIES element, checked and mapped; errors name the element, never its content.
@discardableResult
func modelSpans(_ json: [UInt8], element: Int, textLength: Int, labels: ModelEntityLabels, model: String) throws -> [DetectedEntity] {
    guard let text = String(validating: json, as: UTF8.self) else {
        throw InferenceError.invalidArgument("model '\(model)': input 'NER_ENTITIES' element \(element) is not valid UTF-8")
    }
    do { return try labels.entities(text, textLength: textLength) } catch let error as DeidentificationError {
        throw InferenceError.invalidArgument("model '\(model)': input 'NER_ENTITIES' element \(element): \(error.message)")
    }
}

final class PHIDeidentifierInstance: ModelInstance {
    let spec: ModelSpec
    let settings: DeidentifierSettings

    init(spec: ModelSpec, settings: DeidentifierSettings) {
        self.spec = spec
        self.settings = settings
    }

    var reportedParameters: [String: String] {
        ["key_file_loaded": settings.key == nil ? "false" : "true",
         "first_names": String(settings.analyzer.lexicon.firstNames.count), "last_names": String(settings.analyzer.lexicon.lastNames.count),
         "common_words": String(settings.analyzer.lexicon.commonWords.count)]
    }

    func execute(_ batch: Batch) throws -> [[Tensor]] {
        try executeEach(batch).map { try $0.get() }
    }

    /// A request's bad input (a span that does not decrypt, an unknown
    /// operator) fails that request alone, not the others in its batch.
    func executeEach(_ batch: Batch) -> [Result<[Tensor], any Error>] {
        batch.items.map { item in Result { try execute(item) } }
    }

    func execute(_ item: ValidatedRequest) throws -> [Tensor] {
        guard let text = item.request.input(named: PHIDeidentifierBackend.textInput) else {
            throw InferenceError.invalidArgument("model '\(spec.name)': input 'TEXT' is required")
        }
        let options = try RequestOptions(item.request.parameters, settings: settings, model: spec.name)
        var cleaned: [[UInt8]] = [], entities: [[UInt8]] = []
        let spanLists = try item.request.input(named: PHIDeidentifierBackend.modelEntitiesInput)?.elements()
        for (index, element) in try text.elements().enumerated() {
            let string = String(decoding: element, as: UTF8.self)
            let found = try spanLists.map {
                try modelSpans($0[index], element: index, textLength: string.unicodeScalars.count, labels: settings.modelLabels, model: spec.name)
            } ?? []
            let (out, json) = try run(string, options, modelSpans: found)
            cleaned.append(Array(out.utf8))
            entities.append(json)
        }
        return spec.outputs.map { output in
            Tensor(name: output.name, shape: text.shape, elements: output.name == PHIDeidentifierBackend.textOutput ? cleaned : entities)
        }
    }

    func run(_ text: String, _ options: RequestOptions, modelSpans: [DetectedEntity] = []) throws -> (String, [UInt8]) {
        var anonymizer = settings.anonymizer
        if let style = options.tagStyle { anonymizer.tagStyle = style }
        do {
            if let spans = options.deanonymize {
                let table = options.deanonymizers ?? OperatorTable(fallback: .decrypt(key: nil), deanonymizer: true)
                let (restored, items) = try anonymizer.deanonymize(text, spans: spans, operators: table)
                return (restored, SpanJSON.encode(items: items))
            }
            let spans = try options.analyzerResults ?? detect(text, options, modelSpans: modelSpans)
            if options.analyzeOnly { return ("", SpanJSON.encode(spans: spans)) }
            let (output, items) = try anonymizer.anonymize(text, spans: spans, operators: options.operators ?? settings.operators,
                                                           patientKey: options.patientKey)
            return (output, SpanJSON.encode(items: items))
        } catch let error as DeidentificationError {
            throw InferenceError.invalidArgument("model '\(spec.name)': \(error.message)")
        }
    }

    func detect(_ text: String, _ options: RequestOptions, modelSpans: [DetectedEntity] = []) throws -> [AnonymizeSpan] {
        let found = settings.analyzer.analyze(text, entities: options.entities, threshold: options.threshold, modelSpans: modelSpans)
        guard !options.allowList.isEmpty || !options.allowListRegex.isEmpty else { return found.map(AnonymizeSpan.init) }
        let scalars = Array(text.unicodeScalars)
        return found.filter { !options.allows(String(String.UnicodeScalarView(scalars[$0.start..<$0.end]))) }.map(AnonymizeSpan.init)
    }
}

/// A model's de-identification settings, checked at load.
struct DeidentifierSettings: Sendable {
    var entities: Set<EntityType>
    var threshold: Double
    var analyzer: PHIAnalyzer
    var anonymizer: Anonymizer
    /// The config's operators: `operator` for every type, `operator_<TYPE>` for one.
    var operators: OperatorTable
    var key: DeidentificationKey?
    /// The longest text one element may hold (`max_text_bytes`, 1 MiB): a note is
    /// kilobytes; a larger element is a mistake to refuse, not to scan.
    var maxTextBytes: Int
    /// A token-classification model's labels as entity types (`ner_labels`).
    var modelLabels: ModelEntityLabels

    init(spec: ModelSpec, loadFiles: Bool) throws {
        let p = spec.parameters
        func fail(_ message: String) -> InferenceError { .invalidArgument("model '\(spec.name)': \(message)") }
        entities = try p["entities"].map { try EntityNames.parse($0, field: "parameters.entities") } ?? Set(EntityType.allCases)
        threshold = try p["score_threshold"].map { try EntityNames.threshold($0, field: "parameters.score_threshold") } ?? 0.5
        if let text = p["max_text_bytes"] {
            guard let value = Int(text), value > 0 else { throw fail("parameters.max_text_bytes must be a positive integer") }
            maxTextBytes = value
        } else {
            maxTextBytes = 1 << 20
        }
        do { modelLabels = try ModelEntityLabels(configured: p["ner_labels"]) } catch let error as DeidentificationError { throw fail(error.message) }
        guard let style = TagStyle(rawValue: p["tag_style"] ?? "brackets") else {
            throw fail("parameters.tag_style must be brackets or presidio")
        }
        var configs: [String: [String: Any]] = [:]
        for type in EntityType.allCases { if let name = p["operator_\(type.rawValue)"] { configs[type.rawValue] = ["type": name] } }
        let fallback: AnonymizeOperator
        do { fallback = try AnonymizeOperator.parse(["type": p["operator"] ?? "replace"]) }
        catch let error as DeidentificationError { throw fail("parameters.operator: \(error.message)") }
        operators = OperatorTable(configs: configs, fallback: fallback)
        for type in configs.keys {
            do { _ = try operators.operatorFor(type) } catch let error as DeidentificationError { throw fail("parameters.operator_\(type): \(error.message)") }
        }
        anonymizer = Anonymizer(tagStyle: style)
        analyzer = PHIAnalyzer(lexicon: Lexicon())
        key = nil
        if operators.mentionsServerKey && p["key_file"] == nil { throw fail("operators hash, encrypt and date_shift need parameters.key_file") }
        guard loadFiles else { return }
        func path(_ key: String) -> String? {
            guard let name = p[key] else { return nil }
            return name.hasPrefix("/") ? name : spec.versionPath + "/" + name
        }
        func list(_ key: String) throws -> Set<String> {
            guard let file = path(key) else { return [] }
            do { return try Lexicon.readList(file) } catch { throw fail("parameters.\(key): '\(file)' cannot be read") }
        }
        var lexicon = Lexicon(firstNames: try list("first_names_file"), lastNames: try list("last_names_file"),
                              commonWords: try list("common_words_file"), allowList: try list("allow_list_file"))
        lexicon.denyList = try Self.denyList(path("deny_list_file"), fail: fail)
        analyzer = PHIAnalyzer(lexicon: lexicon, extraPatterns: try Self.patterns(path("patterns_file"), fail: fail))
        if let file = path("key_file") {
            do { key = try DeidentificationKey.read(path: file) } catch let error as DeidentificationError { throw fail(error.message) }
            anonymizer.key = key
        }
    }

    /// Deny list lines: `term` (reported as CUSTOM) or `TYPE<tab>term`.
    static func denyList(_ file: String?, fail: (String) -> InferenceError) throws -> [(terms: [String], type: EntityType)] {
        guard let file else { return [] }
        guard let content = try? String(contentsOfFile: file, encoding: .utf8) else { throw fail("parameters.deny_list_file: '\(file)' cannot be read") }
        return try content.split(whereSeparator: \.isNewline).enumerated().compactMap { number, line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { return nil }
            let parts = trimmed.split(separator: "\t", maxSplits: 1).map(String.init)
            let type = parts.count == 2 ? EntityType(rawValue: parts[0]) : .custom
            guard let type else { throw fail("\(file):\(number + 1): unknown entity type") }
            let terms = ScannedText(parts.last!).tokens.map(\.lower)
            return terms.isEmpty ? nil : (terms, type)
        }
    }

    /// Patterns file lines: `TYPE<tab>score<tab>regular expression`.
    static func patterns(_ file: String?, fail: (String) -> InferenceError) throws -> [PHIAnalyzer.ExtraPattern] {
        guard let file else { return [] }
        guard let content = try? String(contentsOfFile: file, encoding: .utf8) else { throw fail("parameters.patterns_file: '\(file)' cannot be read") }
        return try content.split(whereSeparator: \.isNewline).enumerated().compactMap { number, line in
            guard !line.hasPrefix("#"), !line.trimmingCharacters(in: .whitespaces).isEmpty else { return nil }
            let parts = line.split(separator: "\t", maxSplits: 2).map(String.init)
            guard parts.count == 3, let type = EntityType(rawValue: parts[0]), let score = Double(parts[1]), (0...1).contains(score),
                  let expression = try? NSRegularExpression(pattern: parts[2]) else {
                throw fail("\(file):\(number + 1): expected TYPE<tab>score<tab>regular expression")
            }
            return PHIAnalyzer.ExtraPattern(type: type, expression: expression, score: score)
        }
    }
}
