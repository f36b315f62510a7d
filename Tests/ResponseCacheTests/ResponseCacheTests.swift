import Foundation
import InferenceCore
import Logging
import NIOCore
import Synchronization
import Testing
@testable import ResponseCache

@Suite struct ResponseCacheTests {
    let spec = ModelSpec(name: "m", version: 1, backend: "identity", maxBatchSize: 8,
                         inputs: [TensorSpec(name: "TEXT", dataType: .bytes, dims: [1])],
                         outputs: [TensorSpec(name: "OUT", dataType: .fp32, dims: [2])])

    func request(_ text: String, outputs: [RequestedOutput] = []) -> ValidatedRequest {
        let input = Tensor(name: "TEXT", shape: [1, 1], elements: [Array(text.utf8)])
        return try! spec.validate(InferenceRequest(id: "r", modelName: "m", inputs: [input], requestedOutputs: outputs))
    }

    @Test func aRecurringFailureIsLoggedOncePerIntervalCountingWhatWasHeldBack() {
        let throttle = LogThrottle(interval: .seconds(10))
        let start = ContinuousClock.now
        #expect(throttle.admit(now: start) == 0)
        #expect(throttle.admit(now: start + .seconds(1)) == nil)
        #expect(throttle.admit(now: start + .seconds(9)) == nil)
        #expect(throttle.admit(now: start + .seconds(10)) == 2)
        #expect(throttle.admit(now: start + .milliseconds(10_500)) == nil)
        #expect(throttle.admit(now: start + .seconds(25)) == 1)
    }

    @Test func cacheConfigFlagsAsTritonGroupsThem() throws {
        #expect(try CacheConfiguration.parse([]) == nil)
        #expect(try CacheConfiguration.parse(["local,size=1048576"]) == .local(bytes: 1_048_576, keyFile: nil))
        let redis = try CacheConfiguration.parse(["redis,host=cache", "redis,port=6380", "redis,key_file=/k", "redis,db=2", "redis,ttl=60"],
                                                 environment: ["TRITONCACHE_REDIS_PASSWORD": "pw"])
        guard case .redis(let settings)? = redis else { Issue.record("not redis"); return }
        #expect(settings.host == "cache" && settings.port == 6380 && settings.database == 2 && settings.password == "pw")
        #expect(settings.user == "default" && settings.timeToLive == .seconds(60) && settings.keyFile == "/k")
        func message(_ flags: [String]) -> String? {
            do { _ = try CacheConfiguration.parse(flags); return nil } catch { return (error as? InferenceError)?.message }
        }
        #expect(message(["local"])?.hasPrefix("No cache specified.") == true)
        #expect(message(["local,size"])?.hasPrefix("--cache-config option format is") == true)
        #expect(message(["local,size=1", "redis,host=x"]) == "found multiple cache configurations, but only a single cache is currently supported")
        #expect(message(["local,key_file=/k"]) == "Failed to initialize LocalCache: config didn't contain a valid 'size' field.")
        #expect(message(["redis,host=x"])?.hasPrefix("Failed to initialize RedisCache, didn't specify address.") == true)
        #expect(message(["redis,host=x", "redis,port=1"])?.contains("'key_file' is required") == true)
        #expect(message(["local,size=1", "local,sise=2"])?.contains("unknown setting 'sise'") == true)
    }

    @Test func everyPartOfTheRequestNamesTheEntry() {
        let keys = CacheKeys.random()
        let base = keys.name(of: request("note"), model: "m", version: 1)
        #expect(base == keys.name(of: request("note"), model: "m", version: 1))
        #expect(base.count == 64 && !base.contains("note"))
        #expect(base != keys.name(of: request("note!"), model: "m", version: 1))
        #expect(base != keys.name(of: request("note"), model: "m", version: 2))
        #expect(base != keys.name(of: request("note"), model: "n", version: 1))
        #expect(base != keys.name(of: request("note", outputs: [RequestedOutput(name: "OUT", classificationCount: 2)]), model: "m", version: 1))
        var withParameter = request("note")
        withParameter.request.parameters["operator"] = .string("hash")
        #expect(base != keys.name(of: withParameter, model: "m", version: 1))
        // Another server's key names the same request differently.
        #expect(base != CacheKeys.random().name(of: request("note"), model: "m", version: 1))
    }

    @Test func entriesOpenOnlyUnderTheirNameAndKey() throws {
        let keys = CacheKeys.random()
        let sealed = try keys.seal(Array("Jane Doe 555-0100".utf8), name: "a")
        #expect(!String(decoding: sealed, as: UTF8.self).contains("Jane"))
        #expect(keys.open(sealed, name: "a") == Array("Jane Doe 555-0100".utf8))
        #expect(keys.open(sealed, name: "b") == nil)
        #expect(CacheKeys.random().open(sealed, name: "a") == nil)
        var damaged = sealed
        damaged[damaged.count / 2] ^= 1
        #expect(keys.open(damaged, name: "a") == nil)
    }

    @Test func aResponseSurvivesTheRoundTrip() {
        var response = InferenceResponse(id: "x", modelName: "m", modelVersion: 3, outputs: [
            Tensor(name: "LOGITS", shape: [2, 2], values: [Float(1), 2, 3, 4]),
            Tensor(name: "LABEL", shape: [1], elements: [Array("positive".utf8)]),
        ])
        response.tokenCount = 7
        let decoded = CachedResponse.decode(CachedResponse.encode(response), id: "y", model: "m", version: 3)
        #expect(decoded?.outputs == response.outputs && decoded?.tokenCount == 7 && decoded?.id == "y")
        #expect(CachedResponse.decode(Array(CachedResponse.encode(response).dropLast()), id: "y", model: "m", version: 3) == nil)
    }

    @Test func theLeastRecentlyUsedGoFirstAtTheByteBound() throws {
        let entry = LocalResponseStore.LRU.size("a", [UInt8](repeating: 0, count: 100))
        let store = LocalResponseStore(capacity: 3 * entry)
        for name in ["a", "b", "c"] { #expect(try store.put(name, [UInt8](repeating: 1, count: 100)) == .stored) }
        #expect(store.get("a") != nil)           // a is now the most recent
        #expect(try store.put("d", [UInt8](repeating: 2, count: 100)) == .stored)
        #expect(store.get("b") == nil && store.get("a") != nil && store.get("c") != nil && store.get("d") != nil)
        #expect(store.occupancy() == StoreOccupancy(entries: 3, bytes: 3 * entry, capacity: 3 * entry, evictions: 1))
        #expect(try store.put("d", [1]) == .alreadyExists)
        #expect(throws: InferenceError.self) { try store.put("huge", [UInt8](repeating: 0, count: 4 * entry)) }
        #expect(store.occupancy()?.entries == 3)
        // A big entry evicts as many as it needs.
        #expect(try store.put("e", [UInt8](repeating: 3, count: 2 * entry)) == .stored)
        #expect(store.occupancy()?.entries == 1 && store.get("e") != nil)
    }

    @Test func respRepliesParseWholeOrWait() throws {
        var buffer = ByteBuffer(string: "+OK\r\n$5\r\nhello\r\n$-1\r\n*2\r\n:7\r\n-ERR no\r\n$3\r\nab")
        #expect(try RESPValue.parse(&buffer) == .simple("OK"))
        #expect(try RESPValue.parse(&buffer) == .bulk(Array("hello".utf8)))
        #expect(try RESPValue.parse(&buffer) == .bulk(nil))
        #expect(try RESPValue.parse(&buffer) == .array([.integer(7), .error("ERR no")]))
        var partial = buffer
        #expect(try RESPValue.parse(&partial) == nil)
        var command = ByteBuffer()
        RESPValue.encode([Array("GET".utf8), Array("k".utf8)], into: &command)
        #expect(String(buffer: command) == "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
    }

    @Test func aHitSkipsTheModelAndCountsAsTritonDoes() async throws {
        let time = ManualTime()
        let inner = CountingRunner(time: time)
        let cache = ResponseCache(store: LocalResponseStore(capacity: 1 << 20), keys: .random(), logger: Logger(label: "test"))
        let runner = CachingRunner(inner: inner, cache: cache, model: "m", version: 1, now: time.now)
        let first = try await runner.infer(request("note"))
        time.advance(.microseconds(3))
        var second = try await runner.infer(request("note"))
        #expect(inner.calls.withLock { $0 } == 1)
        #expect(second.outputs == first.outputs && second.id == "r")
        second = try await runner.infer(request("other"))
        #expect(inner.calls.withLock { $0 } == 2)
        let statistics = runner.statistics()
        #expect(statistics.cacheHit.count == 1 && statistics.cacheMiss.count == 2)
        #expect(statistics.success.count == 3 && statistics.queue.count == 3 && statistics.executionCount == 2)
        // The model's runs take 1 ms each on the manual clock; lookups take none.
        #expect(statistics.cacheHit.nanoseconds == 0 && statistics.cacheMiss.nanoseconds == 0)
        #expect(statistics.success.nanoseconds == 2_000_000)
        // Shared-memory outputs bypass the cache entirely.
        var shared = request("note")
        shared.request.requestedOutputs = [RequestedOutput(name: "OUT", region: SharedMemoryReference(region: "r", offset: 0, byteSize: 8))]
        _ = try await runner.infer(shared)
        #expect(inner.calls.withLock { $0 } == 3 && runner.statistics().cacheHit.count == 1)
    }
}

final class ManualTime: Sendable {
    private let value = Mutex(Duration.zero)
    func advance(_ by: Duration) { value.withLock { $0 += by } }
    var now: @Sendable () -> Duration { { [self] in value.withLock { $0 } } }
}

/// A model that answers OUT = [1, 2] in 1 ms of manual time and counts its runs.
final class CountingRunner: InferenceRunner {
    let calls = Mutex(0)
    let stats = Mutex(ModelStatistics())
    let time: ManualTime
    init(time: ManualTime) { self.time = time }

    func infer(_ request: ValidatedRequest) async throws -> InferenceResponse {
        calls.withLock { $0 += 1 }
        time.advance(.milliseconds(1))
        stats.withLock {
            $0.success.record(.milliseconds(1))
            $0.queue.record(.zero)
            $0.executionCount += 1
        }
        return InferenceResponse(id: request.request.id, modelName: "m", modelVersion: 1,
                                 outputs: [Tensor(name: "OUT", shape: [1, 2], values: [Float(1), 2])])
    }
    func statistics() -> ModelStatistics { stats.withLock { $0 } }
    func shutdown() async {}
}
