import Foundation
import InferenceCore
import Logging
import ModelRepository
import Scheduler
import Synchronization
import Testing
@testable import RequestPipeline

/// Counts each call of `prepare`, by model; the scores are INPUT0 as FP32.
final class PrepareCounts: Sendable {
    let byModel = Mutex<[String: Int]>([:])
    func add(_ model: String) { byModel.withLock { $0[model, default: 0] += 1 } }
    subscript(model: String) -> Int { byModel.withLock { $0[model] ?? 0 } }
}

/// A backend whose `prepare` counts and marks each request (a row-token
/// count), and whose instances answer SCORES = INPUT0 (twice, for the
/// decoupled model), failing any request that was not prepared.
struct CountingBackend: ModelBackend {
    let name = "counting"
    let counts: PrepareCounts
    var variableLengthBatching: TokenCost? { .padded }
    func validate(_ spec: ModelSpec) throws {}
    func prepare(_ request: inout ValidatedRequest, spec: ModelSpec) throws {
        counts.add(spec.name)
        request.rowTokens = Array(repeating: 4, count: request.batchSize)
    }
    func makeInstance(for spec: ModelSpec, index: Int) throws -> any ModelInstance { ScoresInstance() }
}

final class ScoresInstance: DecoupledModelInstance {
    static func scores(_ request: ValidatedRequest) throws -> [Tensor] {
        guard request.rowTokens != nil else { throw InferenceError.internal("the request was not prepared") }
        let input = request.request.input(named: "INPUT0")!
        return [Tensor(name: "SCORES", shape: input.shape, values: try input.values(as: Int32.self).map(Float.init))]
    }

    func execute(_ batch: Batch) throws -> [[Tensor]] { try batch.items.map(Self.scores) }

    func execute(_ request: ValidatedRequest, respond: ([Tensor]) -> Void, isCancelled: () -> Bool) throws {
        let outputs = try Self.scores(request)
        respond(outputs)
        respond(outputs)
    }
}

/// Every path a request takes to a model prepares it once and classifies
/// its answer once: the dynamic batcher, the sequence batcher, a decoupled
/// stream and an ensemble's step (the runners do neither themselves).
@Suite(.serialized) struct ModelStepsTests {
    static let tensors = """
    input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 4 ] } ]
    output [ { name: "SCORES" data_type: TYPE_FP32 dims: [ 4 ] } ]
    """
    static let configs = [
        "dynamic": "backend: \"counting\"\nmax_batch_size: 8\ndynamic_batching { }\n\(tensors)",
        "sequence": "backend: \"counting\"\nmax_batch_size: 8\nsequence_batching { }\n\(tensors)",
        "decoupled": "backend: \"counting\"\nmax_batch_size: 8\nmodel_transaction_policy { decoupled: true }\n\(tensors)",
        "ensemble": """
        platform: "ensemble"
        max_batch_size: 8
        \(tensors)
        ensemble_scheduling { step [ { model_name: "dynamic" model_version: -1
          input_map { key: "INPUT0" value: "INPUT0" } output_map { key: "SCORES" value: "SCORES" } } ] }
        """,
    ]

    func fixture() async throws -> (InferencePipeline, PrepareCounts, String) {
        let path = NSTemporaryDirectory() + "batchserver-steps-" + UUID().uuidString
        for (name, config) in Self.configs {
            try FileManager.default.createDirectory(atPath: path + "/\(name)/1", withIntermediateDirectories: true)
            try "name: \"\(name)\"\n\(config)".write(toFile: path + "/\(name)/config.pbtxt", atomically: true, encoding: .utf8)
        }
        let counts = PrepareCounts()
        let models = ModelManager(repositoryPath: path, backends: BackendRegistry([CountingBackend(counts: counts)]),
                                  logger: Logger(label: "test"),
                                  makeRunner: { spec, backend in try ModelScheduler.runner(spec: spec, backend: backend) })
        try await models.loadAll()
        let phase = ServerPhase()
        phase.set(.serving)
        let pipeline = InferencePipeline(identity: ServerIdentity(name: "triton", version: "test", extensions: ServerExtensions.supported),
                                         models: models, phase: phase, ready: { true }, logSettings: LogSettingsStore(),
                                         logger: Logger(label: "test"))
        return (pipeline, counts, path)
    }

    static func request(_ model: String) -> InferenceRequest {
        var request = InferenceRequest(modelName: model, inputs: [Tensor(name: "INPUT0", shape: [1, 4], values: [Int32(3), 9, 1, 7])],
                                       requestedOutputs: [RequestedOutput(name: "SCORES", classificationCount: 2)])
        if model == "sequence" {
            request.parameters = ["sequence_id": .int64(5), "sequence_start": .bool(true), "sequence_end": .bool(true)]
        }
        return request
    }

    /// Classified once: the two best scores as "value:index" strings.
    static func expectClassified(_ response: InferenceResponse) throws {
        let classes = try #require(response.outputs.first { $0.name == "SCORES" })
        #expect(classes.dataType == .bytes && classes.shape == [1, 2])
        #expect(try classes.elements().map { String(decoding: $0, as: UTF8.self) } == ["9.000000:1", "7.000000:3"])
    }

    @Test(arguments: ["dynamic", "sequence", "ensemble"])
    func aRequestIsPreparedAndClassifiedOnce(model: String) async throws {
        let (pipeline, counts, path) = try await fixture()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let response = try await pipeline.infer(InferenceCall(modelName: model, modelVersion: "", protocolName: "test")) { _ in
            (Self.request(model), ())
        }.0
        try Self.expectClassified(response)
        #expect(response.tokenCount == (model == "ensemble" ? nil : 4))
        // An ensemble's step is prepared as its own model; the ensemble has no backend to prepare with.
        let prepared = model == "ensemble" ? "dynamic" : model
        #expect(counts[prepared] == 1)
        #expect(counts.byModel.withLock { $0.values.reduce(0, +) } == 1)
    }

    @Test func aStreamIsPreparedOnceAndEachResponseClassified() async throws {
        let (pipeline, counts, path) = try await fixture()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let responses = Mutex<[InferenceResponse]>([])
        try await pipeline.inferStream(InferenceCall(modelName: "decoupled", modelVersion: "", protocolName: "test"),
                                       decode: { _ in Self.request("decoupled") },
                                       each: { response in responses.withLock { $0.append(response) } })
        let answered = responses.withLock { $0 }
        #expect(answered.count == 2)
        for response in answered { try Self.expectClassified(response) }
        #expect(counts["decoupled"] == 1)
    }
}
