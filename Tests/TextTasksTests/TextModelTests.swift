import Foundation
import InferenceCore
import Testing
@testable import TextTasks

let embeddingSpec = ModelSpec(
    name: "minilm", version: 1, backend: "transformer_encoder", maxBatchSize: 32,
    inputs: [TensorSpec(name: "INPUT_IDS", dataType: .int64, dims: [-1], isOptional: true),
             TensorSpec(name: "ATTENTION_MASK", dataType: .int64, dims: [-1], isOptional: true),
             TensorSpec(name: "TEXT", dataType: .bytes, dims: [1], isOptional: true)],
    outputs: [TensorSpec(name: "EMBEDDING", dataType: .fp32, dims: [3]),
              TensorSpec(name: "LAST_HIDDEN_STATE", dataType: .fp32, dims: [-1, 3])],
    parameters: ["task": "embedding"])

let rerankSpec = ModelSpec(
    name: "reranker", version: 1, backend: "transformer_encoder", maxBatchSize: 4,
    inputs: [TensorSpec(name: "TEXT", dataType: .bytes, dims: [1], isOptional: true),
             TensorSpec(name: "TEXT_PAIR", dataType: .bytes, dims: [1], isOptional: true)],
    outputs: [TensorSpec(name: "LOGITS", dataType: .fp32, dims: [1])],
    parameters: ["task": "rerank"])

@Suite struct TextModelTests {
    @Test func buildsOneBatchedRequestOfTextRowsWithTheOptions() throws {
        let model = try TextModel(spec: embeddingSpec, accepting: [.embedding])
        #expect(model.output.name == "EMBEDDING" && model.tokenStates?.name == "LAST_HIDDEN_STATE")
        let options = TextOptions(truncate: false, truncationDirection: .left, promptName: "query", normalize: false)
        let requests = try model.requests(for: .texts(["a", "bc"]), options: options, maxTokens: 512)
        #expect(requests.count == 1)
        #expect(requests[0].inputs.map(\.name) == ["TEXT"] && requests[0].inputs[0].shape == [2, 1])
        #expect(requests[0].requestedOutputs.map(\.name) == ["EMBEDDING"])
        #expect(requests[0].parameters == ["truncate": .bool(false), "truncation_direction": .string("left"),
                                           "prompt_name": .string("query"), "normalize": .bool(false)])
        // Defaults send only `truncate`.
        #expect(try model.requests(for: .texts(["a"]), options: TextOptions(truncate: true), maxTokens: 512)[0].parameters
            == ["truncate": .bool(true)])
    }

    @Test func sendsPairsAsTextAndTextPair() throws {
        let model = try TextModel(spec: rerankSpec, accepting: [.rerank])
        let requests = try model.requests(for: .pairs([TextPair("q", "a"), TextPair("q", "b")]), options: TextOptions(truncate: true),
                                          maxTokens: 512)
        #expect(requests.count == 1 && requests[0].inputs.map(\.name) == ["TEXT", "TEXT_PAIR"])
        #expect(try requests[0].input(named: "TEXT_PAIR")?.elements() == [Array("a".utf8), Array("b".utf8)])
        let embedding = try TextModel(spec: embeddingSpec, accepting: [.embedding])
        #expect(throws: TextTaskError.self) { try embedding.requests(for: .pairs([TextPair("q", "a")]), options: TextOptions(truncate: true), maxTokens: 512) }
    }

    @Test func tokenStatesComeInRequestsOfAtMostMaxBatchSize() throws {
        let model = try TextModel(spec: embeddingSpec, accepting: [.embedding])
        let requests = try model.requests(for: .texts(Array(repeating: "x", count: 70)), options: TextOptions(truncate: true),
                                          output: model.tokenStates, maxTokens: 512)
        #expect(requests.map { $0.inputs[0].shape[0] } == [32, 32, 6])
        #expect(requests.allSatisfy { $0.requestedOutputs.map(\.name) == ["LAST_HIDDEN_STATE"] })
    }

    @Test func padsTokenRowsAndCutsFromTheAskedEnd() throws {
        let model = try TextModel(spec: embeddingSpec, accepting: [.embedding])
        let request = try model.requests(for: .tokens([[101, 102], [101, 7, 102]]), options: TextOptions(truncate: true), maxTokens: 512)[0]
        #expect(try request.input(named: "INPUT_IDS")?.values(as: Int64.self) == [101, 102, 0, 101, 7, 102])
        #expect(try request.input(named: "ATTENTION_MASK")?.values(as: Int64.self) == [1, 1, 0, 1, 1, 1])
        let right = try model.requests(for: .tokens([[1, 2, 3, 4]]), options: TextOptions(truncate: true), maxTokens: 3)[0]
        #expect(try right.input(named: "INPUT_IDS")?.values(as: Int64.self) == [1, 2, 3])
        let left = try model.requests(for: .tokens([[1, 2, 3, 4]]), options: TextOptions(truncate: true, truncationDirection: .left), maxTokens: 3)[0]
        #expect(try left.input(named: "INPUT_IDS")?.values(as: Int64.self) == [2, 3, 4])
        #expect(throws: TextTaskError.self) { try model.requests(for: .tokens([[1, 2, 3, 4]]), options: TextOptions(truncate: false), maxTokens: 3) }
    }

    @Test func limitsInputsAndRowLengths() throws {
        let model = try TextModel(spec: embeddingSpec, accepting: [.embedding])
        #expect(throws: TextTaskError.self) {
            try model.requests(for: .texts(Array(repeating: "x", count: 2049)), options: TextOptions(truncate: true), maxTokens: 512)
        }
        // Without a tokenizer's limit, rows are held to 8192 tokens.
        #expect(throws: TextTaskError.self) {
            try model.requests(for: .tokens([Array(repeating: 1, count: 8193)]), options: TextOptions(truncate: false), maxTokens: nil)
        }
        #expect(try model.requests(for: .tokens([Array(repeating: 1, count: 9000)]), options: TextOptions(truncate: true), maxTokens: nil)[0]
            .input(named: "INPUT_IDS")?.shape == [1, 8192])
    }

    @Test func aModelMustSayItsTaskAndTheErrorIsTEIsBackendKind() throws {
        var spec = embeddingSpec
        #expect { try TextModel(spec: spec, accepting: [.rerank]) } throws: { error in
            let error = error as? TextTaskError
            return error?.kind == .backend && error?.message == "model 'minilm' is a 'embedding' model, not a re-ranker model"
        }
        spec.parameters = [:]
        #expect(throws: TextTaskError.self) { try TextModel(spec: spec, accepting: [.embedding]) }
        #expect(try TextModel(spec: rerankSpec, accepting: [.classification, .rerank]).task == .rerank)
    }

    @Test func dimensionsAreTheWidthOrFewerWhereTheConfigAllows() throws {
        let model = try TextModel(spec: embeddingSpec, accepting: [.embedding])
        #expect(try model.dimensions(nil) == nil && model.dimensions(3) == nil)
        #expect(throws: TextTaskError.self) { try model.dimensions(2) }   // no allow_dimensions
        var spec = embeddingSpec
        spec.parameters["allow_dimensions"] = "true"
        let allowing = try TextModel(spec: spec, accepting: [.embedding])
        #expect(try allowing.dimensions(2) == 2)
        #expect(throws: TextTaskError.self) { try allowing.dimensions(4) }
        #expect(throws: TextTaskError.self) { try allowing.dimensions(0) }
    }

    @Test func splitsOutputRowsAndTrimsTokenStatesAtEachRowsEnd() throws {
        let model = try TextModel(spec: embeddingSpec, accepting: [.embedding])
        let pooled = InferenceResponse(id: "", modelName: "minilm", modelVersion: 1,
                                       outputs: [Tensor(name: "EMBEDDING", shape: [2, 3], values: [Float]([1, 2, 3, 4, 5, 6]))])
        #expect(try model.vectors([pooled]) == [[1, 2, 3], [4, 5, 6]])
        // Row 0 has two tokens, row 1 one (zeros past its end).
        let states = InferenceResponse(id: "", modelName: "minilm", modelVersion: 1, outputs: [
            Tensor(name: "LAST_HIDDEN_STATE", shape: [2, 2, 3], values: [Float]([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0]))])
        #expect(try model.tokenStateRows([states]) == [[[1, 2, 3], [4, 5, 6]], [[7, 8, 9]]])
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
        let model = try TextModel(spec: exported, accepting: [.embedding])
        let request = try model.requests(for: .tokens([[5, 6], [7]]), options: TextOptions(truncate: true), maxTokens: nil)[0]
        #expect(try request.input(named: "token_type_ids")?.values(as: Int64.self) == [0, 0, 0, 0])
        // Row 0: two real tokens; row 1: one, then padding whose state must not count.
        let states: [Float] = [1, 2, 3, 4, /* row 1 */ 10, 20, 99, 99]
        let response = InferenceResponse(id: "", modelName: "bert_onnx", modelVersion: 1,
                                         outputs: [Tensor(name: "last_hidden_state", shape: [2, 2, 2], values: states)])
        #expect(try model.vectors([response], lengths: [2, 1]) == [[2, 3], [10, 20]])
    }
}

@Suite struct TextMathTests {
    @Test func base64IsLittleEndianFloat32() {
        // 1.0f is 0x3F800000: bytes 00 00 80 3F.
        #expect(TextMath.base64([1]) == Data([0, 0, 0x80, 0x3F]).base64EncodedString())
    }

    @Test func normalizesActivatesAndMeasuresCosine() {
        let unit = TextMath.normalized([3, 4])
        #expect(abs(unit[0] - 0.6) < 1e-6 && abs(unit[1] - 0.8) < 1e-6)
        #expect(TextMath.normalized([0, 0]) == [0, 0])
        #expect(TextMath.activated([Float(1000), 1000]) == [0.5, 0.5])
        #expect(abs(TextMath.activated([0])[0] - 0.5) < 1e-7 && abs(TextMath.activated([2])[0] - 0.880797) < 1e-6)
        #expect(abs(TextMath.cosine([1, 0], [1, 1]) - 0.70710677) < 1e-6)
        #expect(TextMath.cosine([0, 0], [1, 1]) == 0)
    }

    @Test func sparseKeepsNonZeroEntriesInIndexOrder() {
        let entries = TextMath.sparse([0, 1.5, 0, 0.25])
        #expect(entries.map(\.index) == [1, 3] && entries.map(\.value) == [1.5, 0.25])
    }

    @Test func readsTEIsTruncationDirections() throws {
        #expect(try ["Left", "left", "Right", "right"].map { try TextOptions.direction($0) } == [.left, .left, .right, .right])
        #expect(throws: TextTaskError.self) { try TextOptions.direction("LEFT") }
    }
}
