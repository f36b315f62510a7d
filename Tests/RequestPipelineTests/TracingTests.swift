import Foundation
import InferenceCore
import Logging
import Synchronization
import Testing
@testable import RequestPipeline

/// A clock the test moves by hand.
final class ManualTraceClock: Sendable {
    private let value = Atomic<UInt64>(1_000)
    func advance(_ ns: UInt64) { value.add(ns, ordering: .relaxed) }
    var clock: TraceClock { { [self] in value.load(ordering: .relaxed) } }
}

@Suite struct TracingTests {
    func temporaryFile() -> String {
        NSTemporaryDirectory() + "trace-\(UUID().uuidString).json"
    }

    @Test func traceConfigFlagsAsTritonSpellsThem() throws {
        let config = try TraceConfiguration(flags: ["triton,file=/tmp/t.json", "level=timestamps", "rate=5", "count=7",
                                                    "triton,log-frequency=3", "opentelemetry,url=http://collector:4318/v1/traces"])
        #expect(config.file == "/tmp/t.json" && config.levels == ["TIMESTAMPS"] && config.rate == 5 && config.count == 7)
        #expect(config.logFrequency == 3 && config.openTelemetry["url"] == ["http://collector:4318/v1/traces"])
        #expect(config.reported["trace_rate"] == ["5"] && config.reported["log_frequency"] == ["3"])
        #expect(throws: InferenceError.self) { try TraceConfiguration(flags: ["level=TENSORS"]) }
        #expect(throws: InferenceError.self) { try TraceConfiguration(flags: ["count=-2"]) }
        #expect(throws: InferenceError.self) { try TraceConfiguration(flags: ["rate"]) }
        #expect(throws: InferenceError.self) { try TraceConfiguration(flags: ["triton,url=x"]) }
    }

    /// Levels add up as Triton's repeated flag does; TENSORS needs the server's
    /// allow flag, from the command line and over the API alike.
    @Test func tensorLevelsOnlyWhereTheServerAllowsThem() throws {
        let both = try TraceConfiguration(flags: ["level=TIMESTAMPS", "level=TENSORS", "level=TIMESTAMPS"], allowTensors: true)
        #expect(both.levels == ["TENSORS", "TIMESTAMPS"])
        #expect(try TraceConfiguration(flags: ["level=TENSORS", "level=OFF"], allowTensors: true).levels == ["OFF"])
        #expect(throws: InferenceError.self) { try TraceConfiguration(flags: ["level=TENSORS"], allowTensors: false) }
        var config = TraceConfiguration()
        config.allowTensors = true
        let store = TraceSettingsStore(configuration: config)
        #expect(try store.update(model: "", ["trace_level": ["TENSORS"]])["trace_level"] == ["TENSORS"])
    }

    /// A tensor trace: Triton's entries after the timestamps, values as Triton
    /// writes them, BYTES quoted inside valid JSON; none at TIMESTAMPS alone.
    @Test(arguments: [true, false])
    func tensorEntriesAreWrittenAtLevelTensorsOnly(tensors: Bool) throws {
        var config = TraceConfiguration()
        (config.levels, config.rate, config.file, config.allowTensors) = (tensors ? ["TENSORS"] : ["TIMESTAMPS"], 1, temporaryFile(), true)
        let store = TraceSettingsStore(configuration: config)
        let trace = try #require(store.sample(model: "m"))
        trace.recordTensors("TENSOR_QUEUE_INPUT", [
            Tensor(name: "A", shape: [2, 2], values: [Float(1.5), -2, 0, 4]),
            Tensor(name: "T", dataType: .bytes, shape: [2], bytes: BytesElements.serialize([Array("a\"b".utf8), Array("ü\n".utf8)])),
        ])
        trace.finish(version: 1)
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: config.file))) as? [[String: Any]])
        let written = entries.compactMap { $0["tensor"] as? [String: String] }
        #expect(entries.contains { $0["timestamps"] != nil } == !tensors)
        guard tensors else {
            #expect(written.isEmpty)
            return
        }
        #expect(written == [["name": "A", "data": "1.5,-2,0,4", "shape": "2,2", "dtype": "FP32"],
                            ["name": "T", "data": "\"a\"b\",\"ü\n\"", "shape": "2", "dtype": "BYTES"]])
        #expect(entries.filter { $0["activity"] as? String == "TENSOR_QUEUE_INPUT" }.count == 2)
    }

    @Test func everyRateThRequestIsTracedWhileTheCountLasts() throws {
        var config = TraceConfiguration()
        (config.levels, config.rate, config.count, config.file) = (["TIMESTAMPS"], 3, 2, temporaryFile())
        let store = TraceSettingsStore(configuration: config)
        let traced = (1...12).map { _ in store.sample(model: "m") != nil }
        #expect(traced == [false, false, true, false, false, true, false, false, false, false, false, false])
        #expect(try store.current(model: "")["trace_count"] == ["0"])
        // A new setting restarts the scope's sampling.
        _ = try store.update(model: "", ["trace_count": ["1"], "trace_rate": ["1"]])
        #expect(store.sample(model: "m") != nil && store.sample(model: "m") == nil)
    }

    @Test func aModelsOwnSettingsTraceItAlone() throws {
        var config = TraceConfiguration()
        (config.rate, config.file) = (1, temporaryFile())
        let store = TraceSettingsStore(configuration: config, knownModel: { ["a", "b"].contains($0) })
        #expect(store.sample(model: "a") == nil)
        _ = try store.update(model: "a", ["trace_level": ["TIMESTAMPS"]])
        #expect(store.sample(model: "a") != nil && store.sample(model: "b") == nil)
        #expect(throws: InferenceError.self) { try store.update(model: "", ["trace_level": ["TENSORS"]]) }
    }

    @Test func aTraceIsTritonsJSONWithItsStagesInOrder() throws {
        let manual = ManualTraceClock()
        var config = TraceConfiguration()
        (config.levels, config.rate, config.file) = (["TIMESTAMPS"], 1, temporaryFile())
        let store = TraceSettingsStore(configuration: config, clock: manual.clock)
        let trace = try #require(store.sample(model: "m", requestID: "req \"7\"", started: 1_000))
        manual.advance(100)
        let handed = manual.clock()   // 1100
        manual.advance(1_000)         // 2100: the response is back
        var timing = RequestTiming()
        (timing.queue, timing.computeInput, timing.computeInfer, timing.computeOutput) = (.nanoseconds(300), .nanoseconds(50), .nanoseconds(400), .nanoseconds(20))
        trace.recordScheduling(handed: handed, returned: manual.clock(), timing: timing)
        manual.advance(5)
        trace.finish(version: 3)
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: config.file))) as? [[String: Any]])
        #expect(entries[0]["model_name"] as? String == "m" && entries[0]["model_version"] as? Int == 3)
        #expect(entries[0]["request_id"] as? String == "req \"7\"")
        let stamps = entries.dropFirst().map { ($0["timestamps"] as! [[String: Any]])[0] }
        #expect(stamps.map { $0["name"] as! String } == ["REQUEST_START", "QUEUE_START", "COMPUTE_START", "COMPUTE_INPUT_END",
                                                         "COMPUTE_OUTPUT_START", "COMPUTE_END", "REQUEST_END"])
        #expect(stamps.map { $0["ns"] as! Int } == [1_000, 1_330, 1_630, 1_680, 2_080, 2_100, 2_105])
    }

    /// Tokenizing (ours) runs from the hand-over and ends before the queue;
    /// stamps never pass the return, however long the measured durations.
    @Test(arguments: [(100, [1_000, 1_100, 1_230, 1_530, 1_580, 1_980, 2_000]), (5_000, [1_000, 2_000, 2_000, 2_000, 2_000, 2_000, 2_000])])
    func tokenizingIsStampedBeforeTheQueue(tokenize: Int, expected: [UInt64]) {
        var timing = RequestTiming()
        (timing.tokenize, timing.queue, timing.computeInput, timing.computeInfer, timing.computeOutput) =
            (.nanoseconds(tokenize), .nanoseconds(300), .nanoseconds(50), .nanoseconds(400), .nanoseconds(20))
        let stamps = SchedulingStamps(handed: 1_000, returned: 2_000, timing: timing)
        let times = [stamps.tokenize?.start, stamps.tokenize?.end, stamps.queueStart, stamps.computeStart, stamps.inputEnd,
                     stamps.outputStart, stamps.computeEnd]
        #expect(times == expected.map { Optional($0) })
        timing.tokenize = .zero
        #expect(SchedulingStamps(handed: 1_000, returned: 2_000, timing: timing).tokenize == nil)
    }

    @Test func aNestedRunIsAChildTraceNamingItsParent() async throws {
        let manual = ManualTraceClock()
        var config = TraceConfiguration()
        (config.levels, config.rate, config.file) = (["TIMESTAMPS"], 1, temporaryFile())
        let store = TraceSettingsStore(configuration: config, clock: manual.clock)
        let trace = try #require(store.sample(model: "ensemble", requestID: "e-1"))
        _ = try await RunTracing.$current.withValue(trace) {
            try await RunTracing.child(model: "step") {
                manual.advance(10)
                return InferenceResponse(id: "", modelName: "step", modelVersion: 2, outputs: [])
            }
        }
        // Outside a traced request a nested run writes nothing.
        _ = try await RunTracing.child(model: "untraced") { InferenceResponse(id: "", modelName: "untraced", modelVersion: 1, outputs: []) }
        trace.finish(version: 1)
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: config.file))) as? [[String: Any]])
        let models = entries.filter { $0["model_name"] != nil }
        #expect(models.map { $0["model_name"] as? String } == ["step", "ensemble"])
        #expect(models[0]["parent_id"] as? Int == models[1]["id"] as? Int && models[1]["parent_id"] == nil)
        #expect(models[0]["model_version"] as? Int == 2 && models[0]["request_id"] as? String == "e-1")
    }

    @Test func durationsLongerThanTheCallAreClampedToIt() throws {
        var config = TraceConfiguration()
        (config.levels, config.rate, config.file) = (["TIMESTAMPS"], 1, temporaryFile())
        let store = TraceSettingsStore(configuration: config, clock: { 500 })
        let trace = try #require(store.sample(model: "m"))
        var timing = RequestTiming()
        timing.queue = .seconds(1)
        trace.recordScheduling(handed: 400, returned: 500, timing: timing)
        trace.finish(version: nil)
        let text = try String(contentsOfFile: config.file, encoding: .utf8)
        #expect(text.contains(#"{"name":"QUEUE_START","ns":400}"#) && text.contains(#""model_version":-1"#))
    }

    @Test func theFileStaysOneJSONArrayAndLogFrequencyRotates() throws {
        let path = temporaryFile()
        let writer = TraceFileWriter(path: path, logger: .init(label: "test"))
        for id in 1...3 { writer.append(#"{"id":\#(id)}"#, logFrequency: 0) }
        let array = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [[String: Int]]
        #expect(array?.map { $0["id"]! } == [1, 2, 3])
        let rotated = temporaryFile()
        let groups = TraceFileWriter(path: rotated, logger: .init(label: "test"))
        for id in 1...5 { groups.append(#"{"id":\#(id)}"#, logFrequency: 2) }
        #expect(FileManager.default.fileExists(atPath: rotated + ".1") && !FileManager.default.fileExists(atPath: rotated + ".2"))
        groups.flush()
        #expect(try String(contentsOfFile: rotated + ".2", encoding: .utf8) == #"[{"id":5}]"#)
    }
}
