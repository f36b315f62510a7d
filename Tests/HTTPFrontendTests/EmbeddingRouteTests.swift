import Foundation
import InferenceCore
import Testing
import TextTasks
@testable import HTTPFrontend

func json(_ text: String) throws -> JSONValue { try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) }

@Suite struct TextFieldsTests {
    @Test func readsEveryShapeOpenAIAndTEIAccept() throws {
        #expect(try TextFields.inputs(json(#""one""#), field: "input") == .texts(["one"]))
        #expect(try TextFields.inputs(json(#"["a","b"]"#), field: "input") == .texts(["a", "b"]))
        #expect(try TextFields.inputs(json("[101, 7, 102]"), field: "input") == .tokens([[101, 7, 102]]))
        #expect(try TextFields.inputs(json("[[101, 102], [101, 5, 102]]"), field: "input") == .tokens([[101, 102], [101, 5, 102]]))
    }

    @Test func refusesWhatTheyRefuse() throws {
        #expect(throws: TextTaskError.self) { try TextFields.inputs(nil, field: "input") }
        #expect(throws: TextTaskError.self) { try TextFields.inputs(json("[]"), field: "input") }
        #expect(throws: TextTaskError.self) { try TextFields.inputs(json("[-1]"), field: "input") }
        #expect(throws: TextTaskError.self) { try TextFields.inputs(json(#"[["a"]]"#), field: "input") }
        #expect(throws: TextTaskError.self) { try TextFields.inputs(json("{}"), field: "input") }
        #expect(throws: TextTaskError.self) { try TextInputs.texts(["ok", ""]).requireNonEmpty(field: "input") }
    }

    @Test func predictTakesTextsPairsAndBatchesOfBoth() throws {
        #expect(try TextFields.predictInputs(json(#""x""#)) == ([.text("x")], true))
        #expect(try TextFields.predictInputs(json(#"["x"]"#)) == ([.text("x")], true))
        #expect(try TextFields.predictInputs(json(#"["premise","hypothesis"]"#)) == ([.pair(TextPair("premise", "hypothesis"))], true))
        #expect(try TextFields.predictInputs(json(#"[["x"],["a","b"]]"#)) == ([.text("x"), .pair(TextPair("a", "b"))], false))
        #expect(throws: TextTaskError.self) { try TextFields.predictInputs(json(#"["a","b","c"]"#)) }
        #expect(throws: TextTaskError.self) { try TextFields.predictInputs(json(#"[["a",""]]"#)) }
        #expect(throws: TextTaskError.self) { try TextFields.predictInputs(json("[]")) }
    }

    @Test func readsRerankDocumentsAsStringsOrCohereObjects() throws {
        #expect(try TextFields.texts(json(#"["a", {"text": "b"}]"#), field: "documents") == ["a", "b"])
        #expect(throws: TextTaskError.self) { try TextFields.texts(json(#"[{"title": "b"}]"#), field: "documents") }
        #expect(throws: TextTaskError.self) { try TextFields.texts(json("[]"), field: "documents") }
    }

    @Test func readsTEIsOptions() throws {
        let options = try TextFields.options(json(#"{"truncate": false, "truncation_direction": "Left", "prompt_name": "q", "normalize": false}"#))
        #expect(options == TextOptions(truncate: false, truncationDirection: .left, promptName: "q", normalize: false))
        // TEI 1.9 truncates unless told not to.
        #expect(try TextFields.options(json("{}")) == TextOptions(truncate: true))
        #expect(throws: TextTaskError.self) { try TextFields.options(json(#"{"truncation_direction": "up"}"#)) }
    }
}

@Suite struct ErrorDialectTests {
    @Test func picksTheBodyByRoute() {
        #expect(ErrorDialect.forPath("/v1/embeddings") == .openAI)
        #expect(ErrorDialect.forPath("/v2/rerank") == .openAI)
        #expect(ErrorDialect.forPath("/score") == .openAI)
        #expect(ErrorDialect.forPath("/embed") == .textEmbeddingsInference)
        #expect(ErrorDialect.forPath("/rerank") == .textEmbeddingsInference)
        #expect(ErrorDialect.forPath("/v2/models/x/infer") == .triton)
    }

    @Test func usesEachAPIsStatuses() throws {
        // TEI 1.9 answers validation errors 422 (413 before).
        #expect(try ErrorDialect.textEmbeddingsInference.response(TextTaskError.validation("x")).status.code == 422)
        #expect(try ErrorDialect.textEmbeddingsInference.response(TextTaskError.empty("x")).status.code == 400)
        #expect(try ErrorDialect.textEmbeddingsInference.response(TextTaskError.backend("x")).status.code == 424)
        #expect(try ErrorDialect.textEmbeddingsInference.response(InferenceError.unavailable("x")).status.code == 503)
        #expect(try ErrorDialect.openAI.response(TextTaskError.validation("x")).status.code == 400)
        #expect(try ErrorDialect.openAI.response(InferenceError.notFound("x")).status.code == 404)
    }
}
