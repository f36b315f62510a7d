#if canImport(Glibc)
import Glibc
#endif
import Foundation
import InferenceCore
import Logging
import ModelRepository
import Testing
@testable import RequestPipeline

/// A backend the pipeline tests register by name; its runner adds INPUT0 and INPUT1.
struct SumBackend: ModelBackend {
    let name = "sum"
    func validate(_ spec: ModelSpec) throws {}
    func makeInstance(for spec: ModelSpec, index: Int) throws -> any ModelInstance {
        throw InferenceError.internal("the pipeline tests use SumRunner")
    }
}

struct SumRunner: InferenceRunner {
    func infer(_ request: ValidatedRequest) async throws -> InferenceResponse {
        let a = try request.request.input(named: "INPUT0")!.values(as: Int32.self)
        let b = try request.request.input(named: "INPUT1")!.values(as: Int32.self)
        let shape = request.request.input(named: "INPUT0")!.shape
        return InferenceResponse(id: request.request.id, modelName: request.request.modelName, modelVersion: 1,
                                 outputs: [Tensor(name: "OUTPUT0", shape: shape, values: zip(a, b).map { $0 &+ $1 })])
    }
    func statistics() -> ModelStatistics { ModelStatistics() }
    func shutdown() async {}
}

/// A repository holding one `sum` model, and the pipeline over it.
final class PipelineFixture {
    let path: String
    let phase = ServerPhase()
    let pipeline: InferencePipeline

    init() async throws {
        path = NSTemporaryDirectory() + "batchserver-pipeline-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path + "/sum/1", withIntermediateDirectories: true)
        try """
        name: "sum"
        backend: "sum"
        max_batch_size: 8
        input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 4 ] }, { name: "INPUT1" data_type: TYPE_INT32 dims: [ 4 ] } ]
        output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 4 ] } ]
        """.write(toFile: path + "/sum/config.pbtxt", atomically: true, encoding: .utf8)
        let models = ModelManager(repositoryPath: path, backends: BackendRegistry([SumBackend()]), logger: Logger(label: "test"),
                                  makeRunner: { _, _ in SumRunner() })
        try await models.loadAll()
        phase.set(.serving)
        pipeline = InferencePipeline(identity: ServerIdentity(name: "triton", version: "test", extensions: ServerExtensions.supported),
                                     models: models, phase: phase, ready: { true }, logSettings: LogSettingsStore(),
                                     logger: Logger(label: "test"))
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    static func request(_ a: [Int32], _ b: [Int32], outputs: [RequestedOutput] = []) -> InferenceRequest {
        InferenceRequest(modelName: "sum", inputs: [Tensor(name: "INPUT0", shape: [1, 4], values: a),
                                                    Tensor(name: "INPUT1", shape: [1, 4], values: b)],
                         requestedOutputs: outputs)
    }

    func infer(_ request: InferenceRequest, version: String = "") async throws -> InferenceResponse {
        try await pipeline.infer(InferenceCall(modelName: request.modelName, modelVersion: version, protocolName: "test")) { spec in
            #expect(spec.name == "sum")
            return (request, ())
        }.0
    }
}

/// A POSIX shared-memory segment the test creates, as a client would.
final class Segment {
    let key = "/batchserver-test-" + UUID().uuidString.prefix(8)
    let size: Int
    let base: UnsafeMutableRawPointer

    init(size: Int) {
        self.size = size
        let descriptor = shm_open(key, O_CREAT | O_RDWR, 0o600)
        precondition(descriptor >= 0)
        precondition(ftruncate(descriptor, off_t(size)) == 0)
        base = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0)!
        close(descriptor)
    }

    func write(_ values: [Int32], at offset: Int) {
        values.withUnsafeBytes { (base + offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    func read(_ count: Int, at offset: Int) -> [Int32] {
        Array(UnsafeBufferPointer(start: (base + offset).assumingMemoryBound(to: Int32.self), count: count))
    }

    deinit {
        munmap(base, size)
        shm_unlink(key)
    }
}

@Suite struct InferencePipelineTests {
    @Test func infersThroughTheModelsRunner() async throws {
        let fixture = try await PipelineFixture()
        let response = try await fixture.infer(PipelineFixture.request([1, 2, 3, 4], [10, 20, 30, 40]))
        #expect(try response.outputs[0].values(as: Int32.self) == [11, 22, 33, 44])
    }

    @Test func answersWithTritonsTexts() async throws {
        let fixture = try await PipelineFixture()
        var unknown = PipelineFixture.request([1, 2, 3, 4], [1, 2, 3, 4])
        unknown.modelName = "nope"
        await #expect(throws: TritonErrors.unknownModel("nope")) { try await fixture.infer(unknown) }
        let good = PipelineFixture.request([1, 2, 3, 4], [1, 2, 3, 4])
        await #expect(throws: TritonErrors.malformedVersion("abc")) { try await fixture.infer(good, version: "abc") }
        await #expect(throws: TritonErrors.unknownVersion("sum", version: 7)) { try await fixture.infer(good, version: "7") }
        #expect(throws: TritonErrors.unknownModel("nope")) { try fixture.pipeline.model("nope", version: "") }
    }

    @Test func refusesInferenceWhileDraining() async throws {
        let fixture = try await PipelineFixture()
        fixture.phase.set(.draining)
        await #expect(throws: InferenceError.self) { try await fixture.infer(PipelineFixture.request([1, 2, 3, 4], [1, 2, 3, 4])) }
        #expect(!fixture.pipeline.isModelReady("sum", version: ""))
    }

    @Test func readsInputsFromAndWritesOutputsIntoSharedMemory() async throws {
        let fixture = try await PipelineFixture()
        let segment = Segment(size: 4096)
        segment.write([1, 2, 3, 4], at: 64)
        segment.write([5, 6, 7, 8], at: 80)
        let registry = fixture.pipeline.systemSharedMemory
        try registry.register(name: "inputs", key: segment.key, offset: 64, byteSize: 32)
        try registry.register(name: "outputs", key: segment.key, offset: 1024, byteSize: 64)
        #expect(throws: TritonErrors.sharedMemoryAlreadyRegistered("inputs")) {
            try registry.register(name: "inputs", key: segment.key, offset: 0, byteSize: 8)
        }
        var request = PipelineFixture.request([], [], outputs: [
            RequestedOutput(name: "OUTPUT0", region: SharedMemoryReference(region: "outputs", offset: 16, byteSize: 16)),
        ])
        request.inputRegions = ["INPUT0": .init(region: "inputs", offset: 0, byteSize: 16),
                                "INPUT1": .init(region: "inputs", offset: 16, byteSize: 16)]
        let response = try await fixture.infer(request)
        #expect(response.outputs[0].bytes.isEmpty)
        #expect(response.outputRegions["OUTPUT0"] == SharedMemoryReference(region: "outputs", offset: 16, byteSize: 16))
        #expect(segment.read(4, at: 1024 + 16) == [6, 8, 10, 12])
        #expect(try registry.status(name: "").map(\.name) == ["inputs", "outputs"])
        try registry.unregister(name: "")
        #expect(try registry.status(name: "").isEmpty)
        try registry.unregister(name: "never-registered")
    }

    @Test func sharedMemoryErrorsNameTheRegion() async throws {
        let fixture = try await PipelineFixture()
        let segment = Segment(size: 128)
        let registry = fixture.pipeline.systemSharedMemory
        #expect(throws: TritonErrors.sharedMemoryOpenFailed("/no-such-key")) {
            try registry.register(name: "r", key: "/no-such-key", offset: 0, byteSize: 8)
        }
        #expect(throws: TritonErrors.sharedMemoryRegionTooLarge("r", offset: 64, byteSize: 128, segmentSize: 128)) {
            try registry.register(name: "r", key: segment.key, offset: 64, byteSize: 128)
        }
        try registry.register(name: "r", key: segment.key, offset: 0, byteSize: 32)
        #expect(throws: TritonErrors.sharedMemoryUnknownRegion("x")) { try registry.status(name: "x") }

        func attempt(_ reference: SharedMemoryReference, output: SharedMemoryReference? = nil) async throws {
            var request = PipelineFixture.request([], [1, 2, 3, 4], outputs: output.map { [RequestedOutput(name: "OUTPUT0", region: $0)] } ?? [])
            request.inputRegions = ["INPUT0": reference]
            _ = try await fixture.infer(request)
        }
        await #expect(throws: TritonErrors.sharedMemoryOutOfBounds("r")) { try await attempt(.init(region: "r", offset: 24, byteSize: 16)) }
        await #expect(throws: TritonErrors.sharedMemoryInvalidOffset("r")) { try await attempt(.init(region: "r", offset: 32, byteSize: 0)) }
        await #expect(throws: TritonErrors.sharedMemoryRegionNotRegistered("gone")) { try await attempt(.init(region: "gone", byteSize: 16)) }
        await #expect(throws: TritonErrors.inputByteSizeMismatch(input: "INPUT0", model: "sum", expected: 16, got: 8)) {
            try await attempt(.init(region: "r", byteSize: 8))
        }
        await #expect(throws: TritonErrors.sharedMemoryOutputTooSmall("OUTPUT0", given: 8, needed: 16)) {
            try await attempt(.init(region: "r", byteSize: 16), output: .init(region: "r", offset: 16, byteSize: 8))
        }
    }

    @Test func anUnregisteredRegionStaysMappedWhileHeld() throws {
        let registry = SystemSharedMemory()
        let segment = Segment(size: 64)
        segment.write([42], at: 0)
        try registry.register(name: "r", key: segment.key, offset: 0, byteSize: 64)
        let held = try registry.region(for: .init(region: "r", byteSize: 4))
        try registry.unregister(name: "r")
        #expect(held.read(offset: 0, count: 4) == [42, 0, 0, 0])
        #expect(throws: TritonErrors.sharedMemoryRegionNotRegistered("r")) { try registry.region(for: .init(region: "r", byteSize: 4)) }
    }
}

@Suite struct SharedMemoryBoundsTests {
    @Test func regionsMustFitTheirSegment() {
        #expect(SharedMemoryBounds.regionFits(offset: 0, byteSize: 64, segmentSize: 64))
        #expect(!SharedMemoryBounds.regionFits(offset: 1, byteSize: 64, segmentSize: 64))
        #expect(!SharedMemoryBounds.regionFits(offset: 65, byteSize: 0, segmentSize: 64))
        // No wrap-around: a huge offset plus a huge size is not small.
        #expect(!SharedMemoryBounds.regionFits(offset: .max, byteSize: 2, segmentSize: 64))
    }

    @Test func accessesMustFitTheirRegion() throws {
        try SharedMemoryBounds.checkAccess(region: "r", offset: 0, byteSize: 64, regionSize: 64)
        try SharedMemoryBounds.checkAccess(region: "r", offset: 63, byteSize: 1, regionSize: 64)
        try SharedMemoryBounds.checkAccess(region: "r", offset: 0, byteSize: 0, regionSize: 0)
        #expect(throws: TritonErrors.sharedMemoryInvalidOffset("r")) { try SharedMemoryBounds.checkAccess(region: "r", offset: 64, byteSize: 0, regionSize: 64) }
        #expect(throws: TritonErrors.sharedMemoryInvalidOffset("r")) { try SharedMemoryBounds.checkAccess(region: "r", offset: -1, byteSize: 1, regionSize: 64) }
        #expect(throws: TritonErrors.sharedMemoryOutOfBounds("r")) { try SharedMemoryBounds.checkAccess(region: "r", offset: 8, byteSize: 57, regionSize: 64) }
        #expect(throws: TritonErrors.sharedMemoryOutOfBounds("r")) { try SharedMemoryBounds.checkAccess(region: "r", offset: 8, byteSize: .max, regionSize: 64) }
    }

    @Test func referencesParseWithTritonsTexts() throws {
        #expect(try SharedMemoryReference.parse([:], tensor: "t") == nil)
        #expect(try SharedMemoryReference.parse(["shared_memory_region": .string("r"), "shared_memory_byte_size": .int64(8),
                                                 "shared_memory_offset": .uint64(4)], tensor: "t")
            == SharedMemoryReference(region: "r", offset: 4, byteSize: 8))
        #expect(throws: TritonErrors.sharedMemoryByteSizeMissing(tensor: "t")) {
            try SharedMemoryReference.parse(["shared_memory_region": .string("r")], tensor: "t")
        }
        #expect(throws: TritonErrors.sharedMemoryParameterWithoutRegion("shared_memory_offset", tensor: "t")) {
            try SharedMemoryReference.parse(["shared_memory_offset": .int64(0)], tensor: "t")
        }
        #expect(throws: TritonErrors.sharedMemoryParameterType("shared_memory_region", tensor: "t", expected: "string_param")) {
            try SharedMemoryReference.parse(["shared_memory_region": .int64(1), "shared_memory_byte_size": .int64(8)], tensor: "t")
        }
        #expect(throws: TritonErrors.sharedMemoryParameterType("shared_memory_offset", tensor: "t", expected: "int64_param")) {
            try SharedMemoryReference.parse(["shared_memory_region": .string("r"), "shared_memory_byte_size": .int64(8),
                                             "shared_memory_offset": .int64(-1)], tensor: "t")
        }
    }
}

@Suite struct SettingsTests {
    @Test func logSettingsChangeWhatIsWritten() throws {
        let store = LogSettingsStore()
        #expect(store.snapshot.allows(.info) && !store.snapshot.allows(.debug))
        let after = try store.update(["log_verbose_level": .uint32(1), "log_info": .bool(false)])
        #expect(after["log_verbose_level"] == .uint32(1))
        #expect(store.snapshot.allows(.debug) && !store.snapshot.allows(.info) && store.snapshot.allows(.error))
        #expect(throws: TritonErrors.logSettingType("log_info", expected: "boolean")) { try store.update(["log_info": .string("yes")]) }
        #expect(throws: TritonErrors.logFormatInvalid("xml")) { try store.update(["log_format": .string("xml")]) }
        #expect(throws: TritonErrors.logFileNotSettable()) { try store.update(["log_file": .string("/tmp/x")]) }
        // All or nothing: the failed update above left the settings as they were.
        #expect(store.current()["log_info"] == .bool(false))
    }

    @Test func traceSettingsAreKeptPerModelAndCleared() throws {
        let store = TraceSettingsStore(knownModel: { $0 == "sum" })
        #expect(try store.current(model: "")["trace_level"] == ["OFF"])
        _ = try store.update(model: "", ["trace_rate": ["50"]])
        let model = try store.update(model: "sum", ["trace_level": ["TIMESTAMPS"], "trace_count": ["10"]])
        #expect(model["trace_level"] == ["TIMESTAMPS"] && model["trace_rate"] == ["50"])
        #expect(try store.update(model: "sum", ["trace_level": nil])["trace_level"] == ["OFF"])
        #expect(throws: TritonErrors.traceUnknownModel("nope")) { try store.current(model: "nope") }
        #expect(throws: TritonErrors.traceCountInvalid("-2")) { try store.update(model: "", ["trace_count": ["-2"]]) }
        #expect(throws: TritonErrors.traceValueUnparsable("trace_rate", "fast")) { try store.update(model: "", ["trace_rate": ["fast"]]) }
        #expect(throws: TritonErrors.traceLevelOffWithOthers()) { try store.update(model: "", ["trace_level": ["OFF", "TENSORS"]]) }
        #expect(throws: TritonErrors.traceFileNotSettable()) { try store.update(model: "", ["trace_file": ["/tmp/t"]]) }
    }
}
