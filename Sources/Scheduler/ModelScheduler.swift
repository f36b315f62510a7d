import Foundation
import InferenceCore
import Synchronization

/// Queues a model version's requests and runs them on its instances.
///
/// Without `dynamic_batching` each request executes alone, as in Triton. With
/// it, a free instance takes every queued request that fits (up to
/// max_batch_size, same shapes): Triton's behaviour with a zero queue delay.
/// Preferred sizes, delays, priorities and queue policies arrive with the
/// batching policy (issue: Scheduler).
public actor ModelScheduler: InferenceRunner {
    private struct Pending {
        let request: ValidatedRequest
        let arrival: ContinuousClock.Instant
        let continuation: CheckedContinuation<InferenceResponse, any Error>
    }

    public nonisolated let spec: ModelSpec
    private let instances: [any ModelInstance]
    private let executors: [InstanceExecutor]
    private var freeInstances: [Int]
    private var queue: [Pending] = []
    private var queueHead = 0
    private var inFlight = 0
    private var draining = false
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []
    private let stats = Mutex(ModelStatistics())

    public init(spec: ModelSpec, instances: [any ModelInstance]) {
        precondition(!instances.isEmpty, "a model needs at least one instance")
        self.spec = spec
        self.instances = instances
        self.executors = instances.indices.map { InstanceExecutor(name: "\(spec.name)-v\(spec.version)-\($0)") }
        self.freeInstances = Array(instances.indices.reversed())
    }

    /// Creates `spec.instanceCount` instances of `backend` and a scheduler over them.
    public static func make(spec: ModelSpec, backend: any ModelBackend) throws -> ModelScheduler {
        let instances = try (0..<max(spec.instanceCount, 1)).map { try backend.makeInstance(for: spec, index: $0) }
        return ModelScheduler(spec: spec, instances: instances)
    }

    public nonisolated func statistics() -> ModelStatistics {
        stats.withLock { $0 }
    }

    public func infer(_ request: ValidatedRequest) async throws -> InferenceResponse {
        guard !draining else {
            throw InferenceError.unavailable("model '\(spec.name)' version \(spec.version) is unloading")
        }
        return try await withCheckedThrowingContinuation { continuation in
            queue.append(Pending(request: request, arrival: .now, continuation: continuation))
            dispatchWhilePossible()
        }
    }

    public func shutdown() async {
        draining = true
        if queuedCount > 0 || inFlight > 0 {
            await withCheckedContinuation { drainWaiters.append($0) }
        }
        for executor in executors { executor.stop() }
    }

    private var queuedCount: Int { queue.count - queueHead }

    private func dispatchWhilePossible() {
        while queuedCount > 0, let instance = freeInstances.popLast() {
            let batch = takeBatch()
            inFlight += 1
            Task { await self.execute(batch, on: instance) }
        }
    }

    /// Removes the next batch from the queue: the oldest request, plus (with
    /// dynamic batching) followers whose shapes match while rows fit.
    private func takeBatch() -> [Pending] {
        let first = queue[queueHead]
        queueHead += 1
        var batch = [first]
        if spec.dynamicBatching != nil {
            var rows = first.request.batchSize
            let shapes = Self.nonBatchShapes(first.request)
            while queueHead < queue.count {
                let next = queue[queueHead]
                guard rows + next.request.batchSize <= spec.maxBatchSize, Self.nonBatchShapes(next.request) == shapes else { break }
                rows += next.request.batchSize
                batch.append(next)
                queueHead += 1
            }
        }
        // Reclaim the consumed prefix once it dominates, keeping appends amortized O(1).
        if queueHead > 64 && queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
        return batch
    }

    private static func nonBatchShapes(_ request: ValidatedRequest) -> [String: ArraySlice<Int>] {
        Dictionary(uniqueKeysWithValues: request.request.inputs.map { ($0.name, $0.shape.dropFirst()) })
    }

    private func execute(_ pending: [Pending], on index: Int) async {
        let started = ContinuousClock.now
        let batch = Batch(items: pending.map(\.request))
        let instance = instances[index]
        let result: Result<[[Tensor]], any Error>
        do {
            result = .success(try await executors[index].run { try instance.execute(batch) })
        } catch {
            result = .failure(error)
        }
        let computed = ContinuousClock.now
        finish(pending, batchSize: batch.batchSize, result: result, started: started, computed: computed)
        freeInstances.append(index)
        inFlight -= 1
        dispatchWhilePossible()
        if draining && queuedCount == 0 && inFlight == 0 {
            for waiter in drainWaiters { waiter.resume() }
            drainWaiters.removeAll()
        }
    }

    private func finish(_ pending: [Pending], batchSize: Int, result: Result<[[Tensor]], any Error>,
                        started: ContinuousClock.Instant, computed: ContinuousClock.Instant) {
        let infer = computed - started
        switch result {
        case .success(let outputs) where outputs.count == pending.count:
            var responses: [InferenceResponse] = []
            for (item, tensors) in zip(pending, outputs) {
                let wanted = Set(item.request.outputs.map(\.name))
                var timing = RequestTiming()
                timing.queue = started - item.arrival
                timing.computeInfer = infer
                timing.computeOutput = ContinuousClock.now - computed
                responses.append(InferenceResponse(
                    id: item.request.request.id, modelName: spec.name, modelVersion: spec.version,
                    outputs: tensors.filter { wanted.contains($0.name) }, timing: timing))
            }
            let finished = ContinuousClock.now
            recordSuccess(pending, responses: responses, batchSize: batchSize, infer: infer,
                          output: finished - computed, finished: finished)
            for (item, response) in zip(pending, responses) { item.continuation.resume(returning: response) }
        case .success(let outputs):
            fail(pending, InferenceError.internal(
                "backend '\(spec.backend)' returned \(outputs.count) results for a batch of \(pending.count) requests"))
        case .failure(let error):
            let wrapped = error as? InferenceError ?? .internal("model '\(spec.name)' failed: \(error)")
            fail(pending, wrapped)
        }
    }

    private func fail(_ pending: [Pending], _ error: InferenceError) {
        let now = ContinuousClock.now
        stats.withLock { stats in
            for item in pending { stats.fail.record(now - item.arrival) }
        }
        for item in pending { item.continuation.resume(throwing: error) }
    }

    private func recordSuccess(_ pending: [Pending], responses: [InferenceResponse], batchSize: Int,
                               infer: Duration, output: Duration, finished: ContinuousClock.Instant) {
        let epochMilliseconds = UInt64(Date().timeIntervalSince1970 * 1000)
        stats.withLock { stats in
            stats.executionCount += 1
            stats.inferenceCount += UInt64(batchSize)
            stats.lastInferenceMilliseconds = epochMilliseconds
            for (item, response) in zip(pending, responses) {
                stats.success.record(finished - item.arrival)
                stats.queue.record(response.timing.queue)
                stats.computeInput.record(response.timing.computeInput)
                stats.computeInfer.record(response.timing.computeInfer)
                stats.computeOutput.record(response.timing.computeOutput)
            }
            var perSize = stats.batches[batchSize] ?? BatchStatistics(batchSize: batchSize)
            perSize.computeInput.record(.zero)
            perSize.computeInfer.record(infer)
            perSize.computeOutput.record(output)
            stats.batches[batchSize] = perSize
        }
    }
}
