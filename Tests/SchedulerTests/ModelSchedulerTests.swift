import Dispatch
import Foundation
import InferenceCore
import Synchronization
import Testing
@testable import Scheduler

/// Echoes its input and records the batch sizes it executed; can block until released.
final class RecordingInstance: ModelInstance {
    let batches = Mutex<[Int]>([])
    /// Each request's first IN value, in the order the instance computed them.
    let computed = Mutex<[Int32]>([])
    let gate: Gate?
    init(gate: Gate? = nil) { self.gate = gate }

    func execute(_ batch: Batch) throws -> [[Tensor]] {
        gate?.wait()
        batches.withLock { $0.append(batch.items.count) }
        let firsts = batch.items.compactMap { try? $0.request.input(named: "IN")?.values(as: Int32.self).first }
        computed.withLock { $0.append(contentsOf: firsts) }
        return try batch.items.map { item in
            guard let input = item.request.input(named: "IN") else { throw InferenceError.internal("no IN") }
            if try input.values(as: Int32.self).first == -1 { throw InferenceError.invalidArgument("poisoned") }
            var output = input
            output.name = "OUT"
            return [output]
        }
    }
}

/// Errors tasks saw, by request value, shared with the test body.
final class Refusals: Sendable {
    let errors = Mutex<[Int32: InferenceError]>([:])
}

/// A one-shot latch a test opens to let blocked executions proceed (they
/// block on it, nothing polls).
final class Gate: Sendable {
    private let group = DispatchGroup()
    private let opened = Mutex(false)
    init() { group.enter() }
    // A group may not be freed while entered.
    deinit { open() }
    func open() {
        let first = opened.withLock { opened in defer { opened = true }; return !opened }
        if first { group.leave() }
    }
    func wait() { group.wait() }
}

/// Waits, without sleeping, until `condition` holds: it yields so the
/// scheduler's actor and the instance threads move meanwhile. Time in the
/// scheduler itself comes from a ManualSchedulerClock where a test needs it.
func eventually(_ what: String, _ condition: @Sendable () async -> Bool) async {
    let giveUp = ContinuousClock.now + .seconds(20)
    while !(await condition()) {
        if ContinuousClock.now > giveUp {
            Issue.record("never happened: \(what)")
            return
        }
        await Task.yield()
    }
}

func echoSpec(batching: Bool) -> ModelSpec {
    ModelSpec(name: "echo", version: 1, backend: "test", maxBatchSize: 4,
              inputs: [TensorSpec(name: "IN", dataType: .int32, dims: [2])],
              outputs: [TensorSpec(name: "OUT", dataType: .int32, dims: [2])],
              dynamicBatching: batching ? DynamicBatchingSpec(preferredBatchSizes: [4], maxQueueDelay: .zero) : nil)
}

func request(_ spec: ModelSpec, value: Int32, rows: Int = 1) throws -> ValidatedRequest {
    try spec.validate(InferenceRequest(id: "r\(value)", modelName: spec.name,
                                       inputs: [Tensor(name: "IN", shape: [rows, 2], values: [Int32](repeating: value, count: 2 * rows))]))
}

@Suite struct ModelSchedulerTests {
    @Test func answersEachRequestWithItsOwnOutputs() async throws {
        let spec = echoSpec(batching: true)
        let scheduler = ModelScheduler(spec: spec, instances: [RecordingInstance()])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for value in Int32(0)..<20 {
                group.addTask {
                    let response = try await scheduler.infer(try request(spec, value: value))
                    #expect(response.id == "r\(value)")
                    #expect(try response.outputs[0].values(as: Int32.self) == [value, value])
                }
            }
            try await group.waitForAll()
        }
        let stats = scheduler.statistics()
        #expect(stats.success.count == 20)
        #expect(stats.inferenceCount == 20)
        await scheduler.shutdown()
    }

    @Test func withoutDynamicBatchingEachRequestRunsAlone() async throws {
        let spec = echoSpec(batching: false)
        let gate = Gate()
        let instance = RecordingInstance(gate: gate)
        let scheduler = ModelScheduler(spec: spec, instances: [instance])
        async let all: Void = withThrowingTaskGroup(of: Void.self) { group in
            for value in Int32(0)..<6 { group.addTask { _ = try await scheduler.infer(try request(spec, value: value)) } }
            try await group.waitForAll()
        }
        // One runs (blocked on the gate), five wait.
        await eventually("5 requests queued") { await scheduler.queuedCount == 5 }
        gate.open()
        try await all
        #expect(instance.batches.withLock { $0 }.allSatisfy { $0 == 1 })
        #expect(scheduler.statistics().executionCount == 6)
    }

    @Test func withDynamicBatchingQueuedRequestsShareABatch() async throws {
        let spec = echoSpec(batching: true)
        let gate = Gate()
        let instance = RecordingInstance(gate: gate)
        let scheduler = ModelScheduler(spec: spec, instances: [instance])
        async let all: Void = withThrowingTaskGroup(of: Void.self) { group in
            for value in Int32(0)..<9 { group.addTask { _ = try await scheduler.infer(try request(spec, value: value)) } }
            try await group.waitForAll()
        }
        await eventually("8 requests queued") { await scheduler.queuedCount == 8 }
        gate.open()
        try await all
        let batches = instance.batches.withLock { $0 }
        // The first request runs alone while the rest queue; then batches fill to max_batch_size (4).
        #expect(batches.reduce(0, +) == 9)
        #expect(batches.max() == 4)
        #expect(scheduler.statistics().batches[4] != nil)
    }

    @Test func aFailingBatchFailsOnlyItsRequests() async throws {
        let spec = echoSpec(batching: false)
        let scheduler = ModelScheduler(spec: spec, instances: [RecordingInstance()])
        await #expect(throws: InferenceError.invalidArgument("poisoned")) {
            _ = try await scheduler.infer(try request(spec, value: -1))
        }
        let ok = try await scheduler.infer(try request(spec, value: 3))
        #expect(try ok.outputs[0].values(as: Int32.self) == [3, 3])
        #expect(scheduler.statistics().fail.count == 1)
    }

    @Test func defaultMaxQueueSizeBoundsAnUnboundedQueue() async throws {
        let spec = echoSpec(batching: false)
        let gate = Gate()
        let scheduler = ModelScheduler(spec: spec, instances: [RecordingInstance(gate: gate)], defaultMaxQueueSize: 2)
        // The instance is blocked: requests pile up until the queue refuses one.
        let refusals = Refusals()
        var admitted: [Task<InferenceResponse, any Error>] = []
        var refused = false
        for value in Int32(0)..<10 where !refused {
            let task = Task {
                do { return try await scheduler.infer(try request(spec, value: value)) } catch let error as InferenceError {
                    refusals.errors.withLock { $0[value] = error }
                    throw error
                }
            }
            let held = admitted.count + 1
            await eventually("request \(value) queued or refused") {
                if refusals.errors.withLock({ $0[value] }) != nil { return true }
                return await scheduler.queuedCount + scheduler.executingCount == held
            }
            if let error = refusals.errors.withLock({ $0[value] }) {
                #expect(error == .unavailable("Exceeds maximum queue size"))
                refused = true
            } else {
                admitted.append(task)
            }
        }
        #expect(refused)
        // Two queued, plus at most the one executing and the one batch formed ahead.
        #expect((2...4).contains(admitted.count))
        gate.open()
        for task in admitted { _ = try await task.value }
        #expect(scheduler.statistics().success.count == UInt64(admitted.count))
        await scheduler.shutdown()
    }

    @Test func configuredMaxQueueSizeWinsOverTheDefault() {
        #expect(ModelScheduler.effectivePolicy(QueuePolicy(maxQueueSize: 5), defaultMaxQueueSize: 1).maxQueueSize == 5)
        #expect(ModelScheduler.effectivePolicy(QueuePolicy(), defaultMaxQueueSize: 7).maxQueueSize == 7)
        #expect(ModelScheduler.effectivePolicy(QueuePolicy(), defaultMaxQueueSize: 0).maxQueueSize == 0)
    }

    @Test func shutdownFinishesQueuedWorkThenRefusesNewRequests() async throws {
        let spec = echoSpec(batching: false)
        let gate = Gate()
        let scheduler = ModelScheduler(spec: spec, instances: [RecordingInstance(gate: gate)])
        let pending = Task { try await scheduler.infer(try request(spec, value: 5)) }
        await eventually("the request runs") { await scheduler.executingCount == 1 }
        async let stopped: Void = scheduler.shutdown()
        await eventually("shutdown began") { await scheduler.isDraining }
        gate.open()
        await stopped
        #expect(try await pending.value.outputs[0].values(as: Int32.self) == [5, 5])
        await #expect(throws: InferenceError.self) { _ = try await scheduler.infer(try request(spec, value: 1)) }
    }
}

@Suite struct InstanceExecutorTests {
    @Test func runsJobsInOrderOnItsOwnThread() async throws {
        let executor = InstanceExecutor(name: "test-executor")
        // Every job runs on the executor's one thread, never the caller's.
        let caller = pthread_self()
        var threads: [pthread_t] = []
        for _ in 0..<5 { threads.append(try await executor.run { pthread_self() }) }
        #expect(threads.allSatisfy { pthread_equal($0, threads[0]) != 0 })
        #expect(pthread_equal(threads[0], caller) == 0)
        var results: [Int] = []
        for i in 0..<10 { results.append(try await executor.run { i * i }) }
        #expect(results == (0..<10).map { $0 * $0 })
        executor.stop()
        await #expect(throws: CancellationError.self) { _ = try await executor.run { 1 } }
    }
}
