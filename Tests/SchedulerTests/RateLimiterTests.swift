import InferenceCore
import Synchronization
import Testing
@testable import Scheduler

@Suite struct RateLimiterTests {
    func spec(_ name: String, count: Int = 1, resources: [RateLimiterSpec.Resource], priority: Int = 1) -> ModelSpec {
        ModelSpec(name: name, version: 1, backend: "identity", maxBatchSize: 0,
                  inputs: [TensorSpec(name: "IN", dataType: .int32, dims: [1])], outputs: [TensorSpec(name: "OUT", dataType: .int32, dims: [1])],
                  instanceGroups: [InstanceGroupSpec(count: count, rateLimiter: RateLimiterSpec(resources: resources, priority: priority))])
    }

    @Test func copiesAreTheMostAnyInstanceAsksForOrWhatTheFlagGives() throws {
        let limiter = RateLimiter()
        _ = try limiter.register(spec("a", resources: [.init(name: "R1", count: 4), .init(name: "R2", count: 4)]))
        _ = try limiter.register(spec("b", resources: [.init(name: "R2", count: 5), .init(name: "G", global: true, count: 3)]))
        #expect(limiter.snapshot().limits == ["R1@0": 4, "R2@0": 5, "G": 3])
        #expect(throws: InferenceError.self) { try limiter.register(spec("c", resources: [.init(name: "G", count: 1)])) }
        let explicit = RateLimiter(resources: [try .init(flag: "R1:2")])
        do {
            _ = try explicit.register(spec("a", resources: [.init(name: "R1", count: 4)]))
            Issue.record("registered beyond the explicit count")
        } catch let error as InferenceError {
            #expect(error.message == "Resource count for \"R1\" is limited to 2 which will prevent scheduling of one or more model instances, the minimum required count is 4")
        }
        #expect(explicit.snapshot().limits.isEmpty)
        #expect(throws: InferenceError.self) { try RateLimiter.ResourceLimit(flag: "R1") }
        #expect(try RateLimiter.ResourceLimit(flag: "R2:8:1") == .init(name: "R2", count: 8, device: 1))
    }

    @Test func aWaiterRunsWhenTheResourceIsReleased() async throws {
        let limiter = RateLimiter()
        let a = try limiter.register(spec("a", resources: [.init(name: "R", count: 1)]))[0]
        let b = try limiter.register(spec("b", resources: [.init(name: "R", count: 1)]))[0]
        await a.acquire()
        let granted = Locked(false)
        let waiting = Task { await b.acquire(); granted.value.withLock { $0 = true } }
        while limiter.snapshot().waiting == 0 { await Task.yield() }
        #expect(!granted.value.withLock { $0 })
        a.release()
        await waiting.value
        #expect(granted.value.withLock { $0 } && limiter.snapshot().allocated == ["R@0": 1])
        b.release()
        #expect(limiter.snapshot().allocated == ["R@0": 0])
    }

    @Test func theWaiterThatRanLeastTimesItsPriorityGoesFirst() async throws {
        let limiter = RateLimiter()
        let holder = try limiter.register(spec("holder", resources: [.init(name: "R", count: 1)]))[0]
        let bulk = try limiter.register(spec("bulk", resources: [.init(name: "R", count: 1)], priority: 4))[0]
        let clinical = try limiter.register(spec("clinical", resources: [.init(name: "R", count: 1)], priority: 1))[0]
        // bulk has run once (1 x 4 = 4), clinical three times (3 x 1 = 3): clinical first.
        await bulk.acquire(); bulk.release()
        for _ in 0..<3 { await clinical.acquire(); clinical.release() }
        await holder.acquire()
        let order = Locked<[String]>([])
        let first = Task { await bulk.acquire(); order.value.withLock { $0.append("bulk") }; bulk.release() }
        while limiter.snapshot().waiting < 1 { await Task.yield() }
        let second = Task { await clinical.acquire(); order.value.withLock { $0.append("clinical") }; clinical.release() }
        while limiter.snapshot().waiting < 2 { await Task.yield() }
        holder.release()
        await first.value
        await second.value
        #expect(order.value.withLock { $0 } == ["clinical", "bulk"])
    }

    @Test func instancesWithoutResourcesNeverWait() async throws {
        let limiter = RateLimiter()
        let admissions = try limiter.register(spec("free", count: 2, resources: []))
        #expect(admissions.count == 2)
        for admission in admissions { await admission.acquire() }
        #expect(limiter.snapshot().waiting == 0)
    }
}

final class Locked<T: Sendable>: Sendable {
    let value: Mutex<T>
    init(_ initial: T) { value = Mutex(initial) }
}
