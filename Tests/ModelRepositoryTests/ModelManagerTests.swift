import ExampleBackends
import Foundation
import InferenceCore
import Logging
import Synchronization
import Testing
@testable import ModelRepository

/// A temporary Triton-layout repository written by the test.
struct TemporaryRepository: ~Copyable {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "batchserver-repo-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func addModel(_ name: String, config: String, versions: [String] = ["1"]) throws {
        let modelPath = path + "/" + name
        for version in versions {
            try FileManager.default.createDirectory(atPath: modelPath + "/" + version, withIntermediateDirectories: true)
        }
        try config.write(toFile: modelPath + "/config.pbtxt", atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A runner that records nothing and answers nothing: enough for lifecycle tests.
struct IdleRunner: InferenceRunner {
    func infer(_ request: ValidatedRequest) async throws -> InferenceResponse {
        throw InferenceError.unavailable("idle")
    }
    func statistics() -> ModelStatistics { ModelStatistics() }
    func shutdown() async {}
}

func simpleConfig(name: String, type: String = "TYPE_INT32", extra: String = "") -> String {
    """
    name: "\(name)"
    backend: "add_sub"
    max_batch_size: 8
    input [ { name: "INPUT0" data_type: \(type) dims: [ 16 ] }, { name: "INPUT1" data_type: \(type) dims: [ 16 ] } ]
    output [ { name: "OUTPUT0" data_type: \(type) dims: [ 16 ] }, { name: "OUTPUT1" data_type: \(type) dims: [ 16 ] } ]
    \(extra)
    """
}

func makeManager(_ repository: borrowing TemporaryRepository) -> ModelManager {
    ModelManager(repositoryPath: repository.path, backends: BackendRegistry(ExampleBackends.all),
                 logger: Logger(label: "test"), makeRunner: { _, _ in IdleRunner() })
}

/// A runner that records its shutdown.
struct ShutdownRecordingRunner: InferenceRunner {
    let stopped: @Sendable () -> Void
    func infer(_ request: ValidatedRequest) async throws -> InferenceResponse {
        throw InferenceError.unavailable("idle")
    }
    func statistics() -> ModelStatistics { ModelStatistics() }
    func shutdown() async { stopped() }
}

/// Lines appended from any task.
final class EventLog: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

/// Opens once; waiters resume when it does.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    func wait() async {
        await withCheckedContinuation { continuation in
            let open = state.withLock { state -> Bool in
                if !state.open { state.waiters.append(continuation) }
                return state.open
            }
            if open { continuation.resume() }
        }
    }
    func open() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        waiters.forEach { $0.resume() }
    }
}

@Suite struct ModelManagerTests {
    @Test func anUnloadStopsTheRunnerWhenTheLastRequestHoldingItEnds() async throws {
        let repository = try TemporaryRepository()
        try repository.addModel("simple", config: simpleConfig(name: "simple"))
        let events = EventLog()
        let manager = ModelManager(repositoryPath: repository.path, backends: BackendRegistry(ExampleBackends.all),
                                   logger: Logger(label: "test"), makeRunner: { _, _ in
                                       ShutdownRecordingRunner { events.append("stopped") }
                                   })
        try await manager.loadAll()
        let held = Gate(), release = Gate()
        async let request: Void = manager.withModel("simple", version: nil) { _ in
            held.open()
            await release.wait()
            events.append("answered")
        }
        await held.wait()
        async let unloading: Void = manager.unload("simple")
        // The unload is waiting on the lease: the runner is still up.
        for _ in 0..<50 { await Task.yield() }
        #expect(events.all.isEmpty)
        release.open()
        try await request
        try await unloading
        #expect(events.all == ["answered", "stopped"])
    }

    @Test func operationsOnOneModelRunOneAtATimeInArrivalOrderAndOthersDoNot() async throws {
        let locks = ModelOperationLocks()
        let log = EventLog()
        let firstIn = Gate(), firstOut = Gate()
        async let first: Void = locks.serialized("a") {
            log.append("a1 in")
            firstIn.open()
            await firstOut.wait()
            log.append("a1 out")
        }
        await firstIn.wait()
        async let second: Void = locks.serialized("a") { log.append("a2") }
        // Another model's operation is not held up.
        try await locks.serialized("b") { log.append("b") }
        for _ in 0..<50 { await Task.yield() }
        #expect(log.all == ["a1 in", "b"])
        firstOut.open()
        try await first
        try await second
        #expect(log.all == ["a1 in", "b", "a1 out", "a2"])
    }

    @Test func loadsModelsAndResolvesVersions() async throws {
        let repository = try TemporaryRepository()
        try repository.addModel("simple", config: simpleConfig(name: "simple"), versions: ["1", "3", "007", "x"])
        let manager = makeManager(repository)
        try await manager.loadAll()
        // latest(1) by default: only version 3 is served; zero-prefixed and non-numeric are ignored.
        #expect(try manager.resolve("simple", version: nil).spec.version == 3)
        #expect(try manager.resolve("simple", version: "3").spec.version == 3)
        #expect(throws: TritonErrors.unknownVersion("simple", version: 1)) {
            try manager.resolve("simple", version: "1")
        }
        #expect(throws: TritonErrors.unknownModel("other")) { try manager.resolve("other", version: nil) }
        #expect(throws: TritonErrors.malformedVersion("x")) { try manager.resolve("simple", version: "x") }
        #expect(throws: TritonErrors.negativeVersion("-3")) { try manager.resolve("simple", version: "-3") }
        #expect(manager.index() == [ModelIndexEntry(name: "simple", version: "3", state: .ready, reason: "")])
        #expect(manager.allModelsReady)
    }

    @Test func versionPolicyAllServesEveryVersion() async throws {
        let repository = try TemporaryRepository()
        try repository.addModel("m", config: simpleConfig(name: "m", extra: "version_policy: { all: {} }"), versions: ["1", "2"])
        let manager = makeManager(repository)
        try await manager.loadAll()
        #expect(try manager.readyVersions(of: "m").map(\.spec.version) == [1, 2])
    }

    @Test func brokenModelFailsAloneWithItsFileInTheReason() async throws {
        let repository = try TemporaryRepository()
        try repository.addModel("good", config: simpleConfig(name: "good"))
        try repository.addModel("broken", config: "name: \"broken\"\nmax_batch_size: [oops")
        try repository.addModel("unknown_field", config: simpleConfig(name: "unknown_field", extra: "no_such_field: 1"))
        try repository.addModel("bad_backend", config: simpleConfig(name: "bad_backend").replacingOccurrences(of: "add_sub", with: "nope"))
        let manager = makeManager(repository)
        try await manager.loadAll()
        #expect(try manager.resolve("good", version: nil).spec.name == "good")
        let index = Dictionary(uniqueKeysWithValues: manager.index().map { ($0.name, $0) })
        #expect(index["good"]?.state == .ready)
        #expect(index["broken"]?.state == .unavailable)
        #expect(index["broken"]?.reason.contains("broken/config.pbtxt") == true)
        #expect(index["unknown_field"]?.reason.contains("unknown_field/config.pbtxt") == true)
        #expect(index["bad_backend"]?.reason.contains("unknown backend 'nope'") == true)
        #expect(!manager.allModelsReady)
        let error = #expect(throws: InferenceError.self) { try manager.resolve("broken", version: nil) }
        #expect(error?.code == .notFound)
        #expect(error?.message.hasPrefix("Request for unknown model: 'broken' has no available versions (failed to load: ") == true)
    }

    @Test(arguments: [
        ("name: \"wrong\"", "does not match its directory"),
        ("max_batch_size: -1", "max_batch_size must be >= 0"),
        ("dynamic_batching { preferred_batch_size: [ 9 ] }", "preferred_batch_size 9 must be within 1...8"),
        ("instance_group [ { count: -2 } ]", "count must be >= 1"),
    ])
    func invalidConfigsNameTheField(extra: String, message: String) async throws {
        let repository = try TemporaryRepository()
        var config = simpleConfig(name: "m", extra: extra)
        if extra.hasPrefix("name:") { config = config.replacingOccurrences(of: "name: \"m\"\n", with: "") }
        if extra.hasPrefix("max_batch_size") { config = config.replacingOccurrences(of: "max_batch_size: 8\n", with: "") }
        try repository.addModel("m", config: config)
        let manager = makeManager(repository)
        try await manager.loadAll()
        let reason = manager.index().first?.reason ?? ""
        #expect(reason.contains(message), "\(reason)")
    }

    @Test func backendRejectsMismatchedTensors() async throws {
        let repository = try TemporaryRepository()
        let config = simpleConfig(name: "m").replacingOccurrences(
            of: "{ name: \"OUTPUT1\" data_type: TYPE_INT32", with: "{ name: \"OUTPUT1\" data_type: TYPE_FP32")
        try repository.addModel("m", config: config)
        let manager = makeManager(repository)
        try await manager.loadAll()
        #expect(manager.index().first?.reason.contains("'OUTPUT1' is TYPE_FP32") == true)
    }
}

@Suite struct ConfigNormalizationTests {
    @Test func fillsTritonDefaults() async throws {
        let parsed = try ModelConfigFile.parse(simpleConfig(name: "", extra: "dynamic_batching { }"), path: "m/config.pbtxt")
        let config = ModelConfigNormalizer.normalize(parsed, directoryName: "m")
        #expect(config.name == "m")
        #expect(config.versionPolicy.latest.numVersions == 1)
        #expect(config.instanceGroup.count == 1 && config.instanceGroup[0].count == 1)
        #expect(config.dynamicBatching.preferredBatchSize == [8])
    }

    @Test func syntaxErrorNamesTheFile() {
        let error = #expect(throws: InferenceError.self) { try ModelConfigFile.parse("input [ {", path: "repo/m/config.pbtxt") }
        #expect(error?.message.hasPrefix("repo/m/config.pbtxt:1:9: syntax error") == true, "\(error?.message ?? "")")
    }
}

/// A backend that reads a fixed signature from any model file, as the
/// onnxruntime backend reads one from model.onnx.
struct SignatureBackend: ModelBackend {
    let name = "onnxruntime"
    let signature: ModelSignature
    var defaultModelFileName: String? { "model.onnx" }
    func signature(ofModelAt path: String) throws -> ModelSignature? { signature }
    func validate(_ spec: ModelSpec) throws {}
    func makeInstance(for spec: ModelSpec, index: Int) throws -> any ModelInstance { throw InferenceError.internal("unused") }
}

@Suite struct ConfigAutoCompleteTests {
    let batching = ModelSignature(
        inputs: [ModelFileTensor(name: "IDS", dataType: .int64, shape: [-1, -1]), ModelFileTensor(name: "FLAG", dataType: .bool, shape: [-1])],
        outputs: [ModelFileTensor(name: "LOGITS", dataType: .fp32, shape: [-1, 2])])

    func manager(_ repository: borrowing TemporaryRepository, signature: ModelSignature, enabled: Bool = true) -> ModelManager {
        ModelManager(repositoryPath: repository.path, backends: BackendRegistry([SignatureBackend(signature: signature)]),
                     autoComplete: AutoCompleteSettings(enabled: enabled), logger: Logger(label: "test"),
                     makeRunner: { _, _ in IdleRunner() })
    }

    func addONNX(_ repository: borrowing TemporaryRepository, _ name: String, config: String?) throws {
        try FileManager.default.createDirectory(atPath: "\(repository.path)/\(name)/1", withIntermediateDirectories: true)
        try Data().write(to: URL(fileURLWithPath: "\(repository.path)/\(name)/1/model.onnx"))
        if let config { try config.write(toFile: "\(repository.path)/\(name)/config.pbtxt", atomically: true, encoding: .utf8) }
    }

    @Test func completesAModelWithoutConfigFromItsFile() async throws {
        let repository = try TemporaryRepository()
        try addONNX(repository, "bare", config: nil)
        let manager = manager(repository, signature: batching)
        try await manager.load("bare")
        let config = try manager.resolve("bare", version: nil).config
        #expect(config.backend == "onnxruntime" && config.platform == "onnxruntime_onnx")
        #expect(config.maxBatchSize == 4)
        #expect(config.input.map(\.name) == ["IDS", "FLAG"] && config.input[0].dims == [-1] && config.input[0].dataType == .typeInt64)
        // FLAG is [batch] only: dims [1] with an empty reshape, as Triton writes a scalar.
        #expect(config.input[1].dims == [1] && config.input[1].hasReshape)
        #expect(config.output[0].dims == [2])
        #expect(config.dynamicBatching.preferredBatchSize == [4])
        // Triton's default for the ONNX Runtime backend on the CPU: two instances.
        #expect(config.instanceGroup.map(\.count) == [2])
    }

    @Test func keepsWhatTheConfigSays() async throws {
        let repository = try TemporaryRepository()
        try addONNX(repository, "partial", config: """
            platform: "onnxruntime_onnx"
            max_batch_size: 16
            output [ { name: "LOGITS" data_type: TYPE_FP32 dims: [ 2 ] } ]
            instance_group [ { count: 1 kind: KIND_CPU } ]
            """)
        let manager = manager(repository, signature: batching)
        try await manager.load("partial")
        let config = try manager.resolve("partial", version: nil).config
        #expect(config.maxBatchSize == 16 && config.input.count == 2 && config.output.count == 1)
        #expect(config.instanceGroup.map(\.count) == [1])
    }

    @Test func aModelThatCannotBatchRefusesMaxBatchSize() async throws {
        let repository = try TemporaryRepository()
        let fixed = ModelSignature(inputs: [ModelFileTensor(name: "X", dataType: .fp32, shape: [1, 3])],
                                   outputs: [ModelFileTensor(name: "Y", dataType: .fp32, shape: [1, 3])])
        try addONNX(repository, "fixed", config: "platform: \"onnxruntime_onnx\"\nmax_batch_size: 4\n")
        try addONNX(repository, "fixed_ok", config: "platform: \"onnxruntime_onnx\"\n")
        let manager = manager(repository, signature: fixed)
        await #expect(throws: InferenceError.self) { try await manager.load("fixed") }
        #expect(manager.index().first { $0.name == "fixed" }?.reason.contains(
            "autofill failed for model 'fixed': model does not support batching while non-zero max_batch_size is specified") == true)
        try await manager.load("fixed_ok")
        let config = try manager.resolve("fixed_ok", version: nil).config
        #expect(config.maxBatchSize == 0 && config.input[0].dims == [1, 3] && config.schedulingChoice == nil)
    }

    @Test func disabledAutoCompleteNeedsAWholeConfig() async throws {
        let repository = try TemporaryRepository()
        try addONNX(repository, "bare", config: nil)
        try addONNX(repository, "named", config: "platform: \"onnxruntime_onnx\"\n")
        let manager = manager(repository, signature: batching, enabled: false)
        await #expect(throws: InferenceError.self) { try await manager.load("bare") }
        await #expect(throws: InferenceError.self) { try await manager.load("named") }
        let reasons = Dictionary(uniqueKeysWithValues: manager.index().map { ($0.name, $0.reason) })
        #expect(reasons["bare"]?.contains("failed to open text file for read \(repository.path)/bare/config.pbtxt: No such file or directory") == true)
        #expect(reasons["named"]?.contains("input: at least one input is required") == true)
    }

    @Test func tritonBackendsWeDoNotServeSayWhat() async throws {
        let repository = try TemporaryRepository()
        try FileManager.default.createDirectory(atPath: "\(repository.path)/torch/1", withIntermediateDirectories: true)
        try Data().write(to: URL(fileURLWithPath: "\(repository.path)/torch/1/model.pt"))
        try FileManager.default.createDirectory(atPath: "\(repository.path)/plan/1", withIntermediateDirectories: true)
        try "platform: \"tensorrt_plan\"\n".write(toFile: "\(repository.path)/plan/config.pbtxt", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: "\(repository.path)/unknown/1", withIntermediateDirectories: true)
        let manager = manager(repository, signature: batching)
        try? await manager.loadAll()
        let reasons = Dictionary(uniqueKeysWithValues: manager.index().map { ($0.name, $0.reason) })
        #expect(reasons["torch"]?.contains("backend 'pytorch' (TorchScript models) is not available in BatchServer") == true)
        #expect(reasons["plan"]?.contains("backend 'tensorrt' (TensorRT plans) is not available in BatchServer") == true)
        #expect(reasons["unknown"]?.contains("Could not determine backend for model 'unknown'") == true)
    }
}
