import Foundation
import InferenceCore
import Synchronization
import Testing
@testable import Scheduler

/// A backend over `RecordingInstance`s, optionally able to pad variable lengths.
struct RecordingBackend: ModelBackend {
    let name = "recording"
    let variableLengthBatching: TokenCost?
    let gate: Gate?
    func validate(_ spec: ModelSpec) throws {}
    func makeInstance(for spec: ModelSpec, index: Int) throws -> any ModelInstance { RecordingInstance(gate: gate) }
}

/// Collects values from concurrent tasks.
final class Recorder: Sendable {
    private let storage = Mutex<[Int32]>([])
    func append(_ value: Int32) { storage.withLock { $0.append(value) } }
    var values: [Int32] { storage.withLock { $0 } }
}

func batchingSpec(maxBatchSize: Int = 4, dims: [Int] = [2], instances: Int = 1, batching: DynamicBatchingSpec?) -> ModelSpec {
    ModelSpec(name: "echo", version: 1, backend: "recording", maxBatchSize: maxBatchSize,
              inputs: [TensorSpec(name: "IN", dataType: .int32, dims: dims)],
              outputs: [TensorSpec(name: "OUT", dataType: .int32, dims: dims)],
              instanceCount: instances, dynamicBatching: batching)
}

func rowsRequest(_ spec: ModelSpec, values: [Int32], width: Int = 2, priority: UInt64 = 0, timeout: Duration? = nil) throws -> ValidatedRequest {
    let rows = values.count
    let data = values.flatMap { [Int32](repeating: $0, count: width) }
    return try spec.validate(InferenceRequest(id: "\(values.first ?? 0)", modelName: spec.name,
                                              inputs: [Tensor(name: "IN", shape: [rows, width], values: data)],
                                              priority: priority, timeout: timeout))
}

@Suite(.serialized) struct SchedulerBehaviourTests {
    @Test func oversizeRequestsAreSplitAndReassembledInOrder() async throws {
        let spec = batchingSpec(maxBatchSize: 4, batching: DynamicBatchingSpec(preferredBatchSizes: [4], maxQueueDelay: .zero))
        let instance = RecordingInstance()
        let scheduler = ModelScheduler(spec: spec, instances: [instance])
        let values = (0..<10).map(Int32.init)
        let response = try await scheduler.infer(try rowsRequest(spec, values: values))
        #expect(response.outputs[0].shape == [10, 2])
        #expect(try response.outputs[0].values(as: Int32.self) == values.flatMap { [$0, $0] })
        let stats = scheduler.statistics()
        #expect(stats.inferenceCount == 10)
        #expect(stats.batches.keys.allSatisfy { $0 <= 4 })
        #expect(stats.success.count == 1)
    }

    /// Preferred size 4: the waiting request stays queued; preferred size 1: it
    /// is formed ahead as the next batch. Its timeout applies in both places.
    @Test(arguments: [4, 1])
    func expiredRejectRequestsAreAnsweredWhileEveryInstanceIsBusy(preferred: Int) async throws {
        let policy = QueuePolicy(timeoutAction: .reject, defaultTimeout: .milliseconds(30))
        let spec = batchingSpec(batching: DynamicBatchingSpec(preferredBatchSizes: [preferred], maxQueueDelay: .zero, defaultQueuePolicy: policy))
        let gate = Gate()
        let clock = ManualSchedulerClock()
        let scheduler = ModelScheduler(spec: spec, instances: [RecordingInstance(gate: gate)], clock: clock)
        // The first request occupies the only instance (blocked on the gate) ...
        let first = Task { try await scheduler.infer(try rowsRequest(spec, values: [1, 1, 1, 1])) }
        await eventually("the first request runs") { await scheduler.executingCount == 1 }
        // ... so the second waits until its 30 ms timeout passes on the clock.
        let second = Task { try await scheduler.infer(try rowsRequest(spec, values: [2])) }
        await eventually("the second request waits") { await scheduler.queuedCount == 1 }
        clock.advance(by: .milliseconds(29))
        #expect(await scheduler.queuedCount == 1)
        clock.advance(by: .milliseconds(1))
        await #expect(throws: InferenceError.unavailable("Request timeout expired")) { _ = try await second.value }
        gate.open()
        _ = try await first.value
        #expect(scheduler.statistics().failures[.rejected] == 1)
    }

    @Test func preserveOrderingAnswersInArrivalOrder() async throws {
        let spec = batchingSpec(instances: 2, batching: DynamicBatchingSpec(preferredBatchSizes: [1], maxQueueDelay: .zero, preserveOrdering: true))
        let slowGate = Gate()
        // Instance 0 blocks until released; instance 1 is free, so request 2
        // finishes first but must not be answered before request 1.
        let fast = RecordingInstance()
        let scheduler = ModelScheduler(spec: spec, instances: [RecordingInstance(gate: slowGate), fast])
        let order = Recorder()
        let a = Task { _ = try await scheduler.infer(try rowsRequest(spec, values: [1])); order.append(1) }
        await eventually("request 1 runs") { await scheduler.executingCount == 1 }
        let b = Task { _ = try await scheduler.infer(try rowsRequest(spec, values: [2])); order.append(2) }
        await eventually("request 2 computed") { fast.batches.withLock { $0.count } == 1 }
        await eventually("request 2 finished") { await scheduler.executingCount == 1 }
        // Request 2 is computed but held: nothing is answered before request 1.
        #expect(order.values.isEmpty)
        slowGate.open()
        _ = try await (a.value, b.value)
        #expect(order.values.sorted() == [1, 2])
    }

    /// Sends bulk requests 1...4 (default level 2) to a blocked instance, then a
    /// priority-1 request 99, opens the instance and returns the order the
    /// instance computed them in. (Not the order the callers resumed in: the
    /// tasks of answered requests wake in any order.)
    func answerOrder(maxBatchSize: Int) async throws -> [Int32] {
        let spec = batchingSpec(maxBatchSize: maxBatchSize, batching: DynamicBatchingSpec(
            preferredBatchSizes: [maxBatchSize], maxQueueDelay: .zero, priorityLevels: 2, defaultPriorityLevel: 2))
        let gate = Gate()
        let instance = RecordingInstance(gate: gate)
        let scheduler = ModelScheduler(spec: spec, instances: [instance])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for value in Int32(1)...4 {
                group.addTask { _ = try await scheduler.infer(try rowsRequest(spec, values: [value])) }
                await eventually("request \(value) taken") { await scheduler.admittedCount == UInt64(value) }
            }
            group.addTask { _ = try await scheduler.infer(try rowsRequest(spec, values: [99], priority: 1)) }
            await eventually("request 99 taken") { await scheduler.admittedCount == 5 }
            gate.open()
            try await group.waitForAll()
        }
        #expect(scheduler.statistics().success.count == 5)
        return instance.computed.withLock { $0 }
    }

    @Test func higherPriorityRequestsOvertakeQueuedBulk() async throws {
        // Request 1 was already running; 2 had been formed ahead and is put back: 99 overtakes 2, 3 and 4.
        let answered = try await answerOrder(maxBatchSize: 1)
        #expect(answered.firstIndex(of: 99)! < answered.firstIndex(of: 2)!, "\(answered)")
        #expect(answered.firstIndex(of: 99)! < answered.firstIndex(of: 3)!, "\(answered)")
    }

    /// The batch formed ahead holds bulk work; a priority request arriving then
    /// must run next, not after that batch.
    @Test func aPriorityRequestReformsTheBatchFormedAhead() async throws {
        // 1 and 2 run (blocked at the gate); 3 and 4 were formed ahead, then put back.
        let answered = try await answerOrder(maxBatchSize: 2)
        #expect(answered.firstIndex(of: 99)! < answered.firstIndex(of: 4)!, "\(answered)")
        // Re-formed in arrival order: 99 with 3, then 4.
        #expect(answered.firstIndex(of: 3)! < answered.firstIndex(of: 4)!, "\(answered)")
    }

    @Test func cancelledQueuedRequestsAreNeverComputed() async throws {
        let spec = batchingSpec(maxBatchSize: 1, batching: nil)
        let gate = Gate()
        let instance = RecordingInstance(gate: gate)
        let scheduler = ModelScheduler(spec: spec, instances: [instance])
        let running = Task { try await scheduler.infer(try rowsRequest(spec, values: [1])) }
        await eventually("request 1 taken") { await scheduler.admittedCount == 1 }
        let formedAhead = Task { try await scheduler.infer(try rowsRequest(spec, values: [2])) }
        await eventually("request 2 taken") { await scheduler.admittedCount == 2 }
        let doomed = Task { try await scheduler.infer(try rowsRequest(spec, values: [3])) }
        await eventually("request 3 taken") { await scheduler.admittedCount == 3 }
        doomed.cancel()
        await #expect(throws: InferenceError.self) { _ = try await doomed.value }
        gate.open()
        _ = try await (running.value, formedAhead.value)
        #expect(instance.batches.withLock { $0.count } == 2)
        #expect(scheduler.statistics().failures[.canceled] == 1)
    }

    @Test func variableLengthsShareABatchOnlyWhenTheBackendPads() async throws {
        for padding in [nil, TokenCost.padded] {
            let spec = batchingSpec(maxBatchSize: 4, dims: [-1], batching: DynamicBatchingSpec(preferredBatchSizes: [4], maxQueueDelay: .milliseconds(200)))
            let backend = RecordingBackend(variableLengthBatching: padding, gate: nil)
            let clock = ManualSchedulerClock()
            let scheduler = try ModelScheduler.make(spec: spec, backend: backend, clock: clock)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, width) in [3, 5, 3, 7].enumerated() {
                    group.addTask { _ = try await scheduler.infer(try rowsRequest(spec, values: [Int32(index)], width: width)) }
                }
                // Batches that cannot fill wait out the 200 ms delay: on the clock, not in real time.
                await eventually("4 requests taken") { await scheduler.admittedCount == 4 }
                clock.advance(by: .milliseconds(200))
                try await group.waitForAll()
            }
            let stats = scheduler.statistics()
            if padding == nil {
                #expect(stats.batches[4] == nil, "different lengths must not share a batch without padding")
            } else {
                #expect(stats.batches[4]?.computeInfer.count == 1)
                // Padded to 7: 4 x 7 = 28 token slots for 18 real tokens.
                #expect(stats.batchTokens == 28 && stats.realTokens == 18)
            }
            await scheduler.shutdown()
        }
    }

    @Test func raggedInputsShareABatchWithoutPadding() async throws {
        let gate = Gate()
        let spec = ModelSpec(name: "echo", version: 1, backend: "recording", maxBatchSize: 4,
                             inputs: [TensorSpec(name: "IN", dataType: .int32, dims: [-1], allowRaggedBatch: true)],
                             outputs: [TensorSpec(name: "OUT", dataType: .int32, dims: [-1])],
                             dynamicBatching: DynamicBatchingSpec(preferredBatchSizes: [3], maxQueueDelay: .seconds(1)))
        let instance = RecordingInstance(gate: gate)
        let scheduler = ModelScheduler(spec: spec, instances: [instance])
        gate.open()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, width) in [2, 5, 9].enumerated() {
                group.addTask { _ = try await scheduler.infer(try rowsRequest(spec, values: [Int32(index)], width: width)) }
            }
            try await group.waitForAll()
        }
        // allow_ragged_batch: different lengths, one batch, reaching the preferred size 3 at once.
        #expect(instance.batches.withLock { $0 } == [3])
    }
}
