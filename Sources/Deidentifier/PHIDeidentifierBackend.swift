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
/// `common_words_file` (paths relative to the version directory).
/// Request parameters: `entities`, `score_threshold`, `operators` (Presidio's
/// anonymizers JSON), `analyzer_results` (JSON spans to apply instead of
/// detecting), `patient_key` (date shifts), `deanonymize` (JSON items whose
/// encrypted spans to restore; the request pipeline admits it only for
/// callers granted re-identification).
public struct PHIDeidentifierBackend: ModelBackend {
    public let name = "phi_deidentifier"
    public init() {}

    public static let textInput = "TEXT"
    public static let textOutput = "DEIDENTIFIED_TEXT"
    public static let entitiesOutput = "ENTITIES"

    public func validate(_ spec: ModelSpec) throws {
        guard let input = spec.inputs.first(where: { $0.name == Self.textInput }), input.dataType == .bytes, spec.inputs.count == 1 else {
            throw InferenceError.invalidArgument("model '\(spec.name)': backend 'phi_deidentifier' takes one input 'TEXT' of TYPE_STRING")
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
        for (index, element) in try text.elements().enumerated() where String(validating: element, as: UTF8.self) == nil {
            throw InferenceError.invalidArgument("model '\(spec.name)': input 'TEXT' element \(index) is not valid UTF-8")
        }
        let settings = try DeidentifierSettings(spec: spec, loadFiles: false)
        let options = try RequestOptions(request.request.parameters, settings: settings, model: spec.name)
        if options.needsKey && spec.parameters["key_file"] == nil {
            throw InferenceError.invalidArgument("model '\(spec.name)': hash, encrypt, date_shift and deanonymize need the model's key file (parameters.key_file)")
        }
        let texts = try text.elements().count
        if options.analyzerResults != nil || options.deanonymize != nil, request.batchSize != 1 || texts != 1 {
            throw InferenceError.invalidArgument("model '\(spec.name)': 'analyzer_results' and 'deanonymize' apply to a request of one text")
        }
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
        try batch.items.map { item in
            guard let text = item.request.input(named: PHIDeidentifierBackend.textInput) else {
                throw InferenceError.invalidArgument("model '\(spec.name)': input 'TEXT' is required")
            }
            let options = try RequestOptions(item.request.parameters, settings: settings, model: spec.name)
            var cleaned: [[UInt8]] = [], entities: [[UInt8]] = []
            for element in try text.elements() {
                let (out, json) = try run(String(decoding: element, as: UTF8.self), options)
                cleaned.append(Array(out.utf8))
                entities.append(json)
            }
            return spec.outputs.map { output in
                Tensor(name: output.name, shape: text.shape, elements: output.name == PHIDeidentifierBackend.textOutput ? cleaned : entities)
            }
        }
    }

    func run(_ text: String, _ options: RequestOptions) throws -> (String, [UInt8]) {
        var anonymizer = settings.anonymizer
        if let operators = options.operators {
            anonymizer.operators = operators.perType
            anonymizer.defaultOperator = operators.fallback ?? settings.anonymizer.defaultOperator
        }
        if let style = options.tagStyle { anonymizer.tagStyle = style }
        if let items = options.deanonymize {
            let (restored, placed) = try Deanonymizer.restore(text, items: items, key: settings.key, model: spec.name)
            return (restored, EntityJSON.encode(items: placed))
        }
        let found = options.analyzerResults ?? settings.analyzer.analyze(text, entities: options.entities, threshold: options.threshold)
        let (output, items) = try anonymizer.anonymize(text, entities: found, patientKey: options.patientKey)
        return (output, EntityJSON.encode(items: items))
    }
}

/// A model's de-identification settings, checked at load.
struct DeidentifierSettings: Sendable {
    var entities: Set<EntityType>
    var threshold: Double
    var analyzer: PHIAnalyzer
    var anonymizer: Anonymizer
    var key: DeidentificationKey?

    init(spec: ModelSpec, loadFiles: Bool) throws {
        let p = spec.parameters
        func fail(_ message: String) -> InferenceError { .invalidArgument("model '\(spec.name)': \(message)") }
        entities = try p["entities"].map { try EntityNames.parse($0, field: "parameters.entities") } ?? Set(EntityType.allCases)
        threshold = try p["score_threshold"].map { try EntityNames.threshold($0, field: "parameters.score_threshold") } ?? 0.5
        guard let style = TagStyle(rawValue: p["tag_style"] ?? "brackets") else {
            throw fail("parameters.tag_style must be brackets or presidio")
        }
        func op(_ key: String) throws -> AnonymizeOperator? {
            guard let name = p[key] else { return nil }
            do { return try AnonymizeOperator.parse(["type": name], field: "parameters.\(key)") }
            catch let error as DeidentificationError { throw fail(error.message) }
        }
        var perType: [EntityType: AnonymizeOperator] = [:]
        for type in EntityType.allCases { perType[type] = try op("operator_\(type.rawValue)") }
        anonymizer = Anonymizer(operators: perType, defaultOperator: try op("operator") ?? .replace(nil), tagStyle: style)
        analyzer = PHIAnalyzer(lexicon: Lexicon())
        key = nil
        let needsKey = ([anonymizer.defaultOperator] + perType.values).contains { [.hash(sha512: false), .hash(sha512: true), .encrypt, .dateShift].contains($0) }
        if needsKey && p["key_file"] == nil { throw fail("operators hash, encrypt and date_shift need parameters.key_file") }
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
