import Foundation
import InferenceCore
import Testing
@testable import HTTPFrontend

func json(_ text: String) throws -> JSONValue { try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) }

let embeddingSpec = ModelSpec(
    name: "minilm", version: 1, backend: "transformer_encoder", maxBatchSize: 32,
    inputs: [TensorSpec(name: "INPUT_IDS", dataType: .int64, dims: [-1], isOptional: true),
             TensorSpec(name: "ATTENTION_MASK", dataType: .int64, dims: [-1], isOptional: true),
             TensorSpec(name: "TEXT", dataType: .bytes, dims: [1], isOptional: true)],
    outputs: [TensorSpec(name: "EMBEDDING", dataType: .fp32, dims: [3])],
    parameters: ["task": "embedding"])

@Suite struct TextInputsTests {
    @Test func readsEveryShapeOpenAIAndTEIAccept() throws {
        #expect(try TextInputs.parse(json(#""one""#), field: "input") == .texts(["one"]))
        #expect(try TextInputs.parse(json(#"["a","b"]"#), field: "input") == .texts(["a", "b"]))
        #expect(try TextInputs.parse(json("[101, 7, 102]"), field: "input") == .tokens([[101, 7, 102]]))
        #expect(try TextInputs.parse(json("[[101, 102], [101, 5, 102]]"), field: "input") == .tokens([[101, 102], [101, 5, 102]]))
    }

    @Test func refusesWhatTheyRefuse() throws {
        #expect(throws: RouteError.self) { try TextInputs.parse(nil, field: "input") }
        #expect(throws: RouteError.self) { try TextInputs.parse(json("[]"), field: "input") }
        #expect(throws: RouteError.self) { try TextInputs.parse(json("[-1]"), field: "input") }
        #expect(throws: RouteError.self) { try TextInputs.parse(json(#"[["a"]]"#), field: "input") }
        #expect(throws: RouteError.self) { try TextInputs.parse(json("{}"), field: "input") }
        #expect(throws: RouteError.self) { try TextInputs.texts(["ok", ""]).requireNonEmpty(field: "input") }
    }

    @Test func predictTakesOneTextOrABatchNotPairs() throws {
        #expect(try KServeHTTPServer.predictInputs(json(#""x""#)) == (["x"], true))
        #expect(try KServeHTTPServer.predictInputs(json(#"["x"]"#)) == (["x"], true))
        #expect(try KServeHTTPServer.predictInputs(json(#"[["x"],["y"]]"#)) == (["x", "y"], false))
        #expect(throws: RouteError.self) { try KServeHTTPServer.predictInputs(json(#"["premise","hypothesis"]"#)) }
        #expect(throws: RouteError.self) { try KServeHTTPServer.predictInputs(json(#"[["a","b"]]"#)) }
    }
}

@Suite struct TextModelBindingTests {
    @Test func buildsOneBatchedRequestOfTextRows() throws {
        let binding = try TextModelBinding(spec: embeddingSpec, expecting: .embedding)
        let requests = try binding.requests(for: .texts(["a", "bc"]), truncate: false, maxTokens: 512)
        #expect(requests.count == 1)
        #expect(requests[0].inputs.map(\.name) == ["TEXT"] && requests[0].inputs[0].shape == [2, 1])
        #expect(requests[0].requestedOutputs.map(\.name) == ["EMBEDDING"])
        #expect(requests[0].parameters["truncate"] == .bool(false))
    }

    @Test func padsTokenRowsAndMasksThePadding() throws {
        let binding = try TextModelBinding(spec: embeddingSpec, expecting: .embedding)
        let request = try binding.requests(for: .tokens([[101, 102], [101, 7, 102]]), truncate: true, maxTokens: 512)[0]
        #expect(try request.input(named: "INPUT_IDS")?.values(as: Int64.self) == [101, 102, 0, 101, 7, 102])
        #expect(try request.input(named: "ATTENTION_MASK")?.values(as: Int64.self) == [1, 1, 0, 1, 1, 1])
        // Too long: cut when truncating, refused otherwise.
        let cut = try binding.requests(for: .tokens([[1, 2, 3, 4]]), truncate: true, maxTokens: 3)[0]
        #expect(cut.input(named: "INPUT_IDS")?.shape == [1, 3])
        #expect(throws: RouteError.self) { try binding.requests(for: .tokens([[1, 2, 3, 4]]), truncate: false, maxTokens: 3) }
    }

    @Test func limitsInputsAndRowLengths() throws {
        let binding = try TextModelBinding(spec: embeddingSpec, expecting: .embedding)
        #expect(throws: RouteError.self) { try binding.requests(for: .texts(Array(repeating: "x", count: 2049)), truncate: true, maxTokens: 512) }
        // Without a tokenizer's limit, rows are held to 8192 tokens.
        #expect(throws: RouteError.self) {
            try binding.requests(for: .tokens([Array(repeating: 1, count: 8193)]), truncate: false, maxTokens: nil)
        }
        #expect(try binding.requests(for: .tokens([Array(repeating: 1, count: 9000)]), truncate: true, maxTokens: nil)[0]
            .input(named: "INPUT_IDS")?.shape == [1, 8192])
    }

    @Test func aModelMustSayItsTask() {
        var spec = embeddingSpec
        #expect(throws: RouteError.self) { try TextModelBinding(spec: spec, expecting: .classification) }
        spec.parameters = [:]
        #expect(throws: RouteError.self) { try TextModelBinding(spec: spec, expecting: .embedding) }
    }

    @Test func splitsOutputRowsInOrder() throws {
        let binding = try TextModelBinding(spec: embeddingSpec, expecting: .embedding)
        let response = InferenceResponse(id: "", modelName: "minilm", modelVersion: 1,
                                         outputs: [Tensor(name: "EMBEDDING", shape: [2, 3], values: [Float]([1, 2, 3, 4, 5, 6]))])
        #expect(try binding.vectors([response]) == [[1, 2, 3], [4, 5, 6]])
    }
}

@Suite struct TokenStatePoolingTests {
    /// An ONNX export of a BERT encoder: ids, mask and segment ids in, token states out.
    let exported = ModelSpec(
        name: "bert_onnx", version: 1, backend: "onnxruntime", maxBatchSize: 8,
        inputs: [TensorSpec(name: "input_ids", dataType: .int64, dims: [-1]),
                 TensorSpec(name: "attention_mask", dataType: .int64, dims: [-1]),
                 TensorSpec(name: "token_type_ids", dataType: .int64, dims: [-1])],
        outputs: [TensorSpec(name: "last_hidden_state", dataType: .fp32, dims: [-1, 2])],
        parameters: ["task": "embedding"])

    @Test func sendsZeroSegmentIdsAndPoolsOverRealTokens() throws {
        let binding = try TextModelBinding(spec: exported, expecting: .embedding)
        let request = try binding.requests(for: .tokens([[5, 6], [7]]), truncate: true, maxTokens: nil)[0]
        #expect(try request.input(named: "token_type_ids")?.values(as: Int64.self) == [0, 0, 0, 0])
        // Row 0: two real tokens; row 1: one, then padding whose state must not count.
        let states: [Float] = [1, 2, 3, 4, /* row 1 */ 10, 20, 99, 99]
        let response = InferenceResponse(id: "", modelName: "bert_onnx", modelVersion: 1,
                                         outputs: [Tensor(name: "last_hidden_state", shape: [2, 2, 2], values: states)])
        #expect(try binding.vectors([response], lengths: [2, 1]) == [[2, 3], [10, 20]])
    }
}

@Suite struct EmbeddingMathTests {
    @Test func base64IsLittleEndianFloat32() {
        // 1.0f is 0x3F800000: bytes 00 00 80 3F.
        #expect(EmbeddingMath.base64([1]) == Data([0, 0, 0x80, 0x3F]).base64EncodedString())
    }

    @Test func normalizesAndTakesSoftmax() {
        let unit = EmbeddingMath.normalized([3, 4])
        #expect(abs(unit[0] - 0.6) < 1e-6 && abs(unit[1] - 0.8) < 1e-6)
        #expect(EmbeddingMath.normalized([0, 0]) == [0, 0])
        let probabilities = Softmax.probabilities([Float(1000), 1000])
        #expect(probabilities == [0.5, 0.5])
    }
}

@Suite struct ErrorDialectTests {
    @Test func picksTheBodyByRoute() {
        #expect(ErrorDialect.forPath("/v1/embeddings") == .openAI)
        #expect(ErrorDialect.forPath("/embed") == .textEmbeddingsInference)
        #expect(ErrorDialect.forPath("/v2/models/x/infer") == .triton)
    }

    @Test func usesEachAPIsStatuses() throws {
        #expect(try ErrorDialect.textEmbeddingsInference.response(RouteError.validation("x")).status.code == 413)
        #expect(try ErrorDialect.textEmbeddingsInference.response(RouteError.empty("x")).status.code == 400)
        #expect(try ErrorDialect.textEmbeddingsInference.response(InferenceError.unavailable("x")).status.code == 503)
        #expect(try ErrorDialect.openAI.response(RouteError.validation("x")).status.code == 400)
        #expect(try ErrorDialect.openAI.response(InferenceError.notFound("x")).status.code == 404)
    }
}
