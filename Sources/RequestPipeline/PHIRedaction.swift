import InferenceCore
import Logging
import ModelRepository

/// The pipeline's redaction step: a model whose config names a de-identifier
/// (`parameters { key: "phi_redaction" value: { string_value: "phi_deidentifier" } }`)
/// has every text (BYTES) input replaced by its de-identified form before
/// tokenizing, caching, tracing or the model sees it. It fails closed: if the
/// de-identifier is not ready, the request fails instead of passing text on.
struct PHIRedaction {
    static let parameter = DeidentificationParameters.redaction
    static let reidentifyParameter = DeidentificationParameters.reidentify

    let models: ModelManager
    let logger: Logger

    /// Refuses re-identification to a call that was not granted it.
    static func checkGrant(_ request: InferenceRequest, call: InferenceCall) throws {
        if request.parameters[reidentifyParameter] != nil && !call.grantsReidentification {
            throw InferenceError(.permissionDenied,
                                 "parameter '\(reidentifyParameter)' is refused here: re-identification is served only by POST /deanonymize to a token granting 'reidentify'")
        }
    }

    func redact(_ request: InferenceRequest, for spec: ModelSpec) async throws -> InferenceRequest {
        guard let name = spec.parameters[Self.parameter] else { return request }
        var request = request
        for index in request.inputs.indices where request.inputs[index].dataType == .bytes {
            let elements = try request.inputs[index].elements()
            let (cleaned, counts) = try await deidentify(elements, with: name, forModel: spec.name, input: request.inputs[index].name)
            request.inputs[index].bytes = BytesElements.serialize(cleaned)
            logger.debug("phi redaction", metadata: [
                "request.id": "\(request.id)", "model.name": "\(spec.name)", "input": "\(request.inputs[index].name)",
                "texts": "\(elements.count)", "phi.entities": "\(counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))",
            ])
        }
        return request
    }

    /// Runs the texts through the de-identifier model in batches it accepts;
    /// returns the cleaned texts and the count of entities per type.
    private func deidentify(_ texts: [[UInt8]], with name: String, forModel model: String,
                            input: String) async throws -> ([[UInt8]], [String: Int]) {
        try await models.withModel(name, version: nil) { deidentifier in
            let spec = deidentifier.spec
            guard spec.inputs.first?.name == DeidentificationParameters.textInput, spec.inputs.first?.dims == [1] else {
                throw InferenceError.invalidArgument("model '\(model)': parameters.phi_redaction names '\(name)', which takes no TEXT input of dims [1]")
            }
            let chunk = max(spec.maxBatchSize, 1)
            var cleaned: [[UInt8]] = []
            var counts: [String: Int] = [:]
            cleaned.reserveCapacity(texts.count)
            for start in stride(from: 0, to: texts.count, by: chunk) {
                let part = Array(texts[start..<min(start + chunk, texts.count)])
                let shape = spec.maxBatchSize > 0 ? [part.count, 1] : [1]
                let request = InferenceRequest(modelName: name, inputs: [Tensor(name: DeidentificationParameters.textInput, shape: shape, elements: part)])
                let response = try await deidentifier.steps.run(try spec.validate(request), on: deidentifier.runner)
                guard let text = response.outputs.first(where: { $0.name == DeidentificationParameters.textOutput }) else {
                    throw InferenceError.internal("model '\(name)' returned no DEIDENTIFIED_TEXT")
                }
                let rows = try text.elements()
                guard rows.count == part.count else { throw InferenceError.internal("model '\(name)' returned \(rows.count) texts for \(part.count)") }
                cleaned += rows
                if let entities = response.outputs.first(where: { $0.name == DeidentificationParameters.entitiesOutput }) {
                    for row in try entities.elements() { Self.countTypes(row, into: &counts) }
                }
            }
            return (cleaned, counts)
        }
    }

    /// Counts `"entity_type":"X"` occurrences without decoding the JSON (it holds offsets and types only).
    static func countTypes(_ json: [UInt8], into counts: inout [String: Int]) {
        let marker = Array("\"entity_type\":\"".utf8)
        var i = 0
        while i + marker.count < json.count {
            if json[i] == marker[0], Array(json[i..<i + marker.count]) == marker {
                var j = i + marker.count
                while j < json.count, json[j] != UInt8(ascii: "\"") { j += 1 }
                counts[String(decoding: json[(i + marker.count)..<j], as: UTF8.self), default: 0] += 1
                i = j
            }
            i += 1
        }
    }
}
