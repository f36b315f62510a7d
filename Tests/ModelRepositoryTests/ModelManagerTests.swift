import ExampleBackends
import Foundation
import InferenceCore
import Logging
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

@Suite struct ModelManagerTests {
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
