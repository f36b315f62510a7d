import Foundation
import DequeModule
import InferenceCore
import Synchronization
import Tracing

/// Runs a decoupled model (`model_transaction_policy { decoupled: true }`):
/// each request runs alone on a free instance, which sends zero, one or many
/// responses as it goes; they reach the caller's stream in order. A caller
/// that stops reading (the client closed its stream) cancels the request: the
/// model sees `isCancelled` and its later responses are dropped.
public actor DecoupledScheduler: InferenceRunner {
    struct Pending {
        let request: ValidatedRequest
        let stream: AsyncThrowingStream<InferenceResponse, any Error>.Continuation
        let cancelled: CancellationFlag
        let arrival: ContinuousClock.Instant
        /// The request's span, when it is traced (OpenTelemetry mode).
        let traceContext: InstrumentationContext?
    }

    public nonisolated let spec: ModelSpec
    private nonisolated let pool: InstancePool<any DecoupledModelInstance>
    private var queue: Deque<Pending> = []
    private var draining = false
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []
    private nonisolated var records: ExecutionRecords { pool.records }
    /// Requests that may wait for an instance (0: unbounded).
    private let maxQueued: Int
    /// The cancellation flags of the requests running, by instance.
    private var running: [Int: CancellationFlag] = [:]

    private nonisolated let clock: any SchedulerClock

    public init(spec: ModelSpec, instances: [any DecoupledModelInstance], maxQueueSize: Int = 0,
                admissions: [RateLimiter.Admission] = [], clock: any SchedulerClock = SystemSchedulerClock()) {
        self.clock = clock
        maxQueued = max(maxQueueSize, 0)
        self.spec = spec
        pool = InstancePool(spec: spec, instances: instances, admissions: admissions, clock: clock)
    }

    public nonisolated var reportedParameters: [String: String] { pool.instances[0].reportedParameters }
    public nonisolated func statistics() -> ModelStatistics { records.statistics.withLock { $0 } }

    /// A decoupled model has no single answer: unary calls are refused (the
    /// pipeline says so first, with Triton's text).
    public nonisolated func infer(_ request: ValidatedRequest) async throws -> InferenceResponse {
        throw InferenceError.unsupported("model '\(spec.name)' is decoupled: use a response stream (ModelStreamInfer)")
    }

    public nonisolated func inferStream(_ request: ValidatedRequest) -> AsyncThrowingStream<InferenceResponse, any Error> {
        let cancelled = CancellationFlag()
        let (stream, continuation) = AsyncThrowingStream<InferenceResponse, any Error>.makeStream()
        continuation.onTermination = { _ in cancelled.set() }
        let pending = Pending(request: request, stream: continuation, cancelled: cancelled, arrival: clock.now,
                              traceContext: InstrumentationContext.current)
        Task { await self.enqueue(pending) }
        return stream
    }

    private func enqueue(_ pending: Pending) {
        guard !draining else {
            pending.stream.finish(throwing: InferenceError.unavailable("model '\(spec.name)' version \(spec.version) is unloading"))
            return
        }
        if maxQueued > 0 && queue.count >= maxQueued {
            pending.stream.finish(throwing: InferenceError.unavailable("Exceeds maximum queue size"))
            return
        }
        queue.append(pending)
        pump()
    }

    private func pump() {
        while let index = pool.firstFree, let next = queue.popFirst() {
            if next.cancelled.isSet {
                next.stream.finish()
                continue
            }
            pool.take(index)
            running[index] = next.cancelled
            Task { await self.execute(next, on: index) }
        }
        if draining, queue.isEmpty, pool.computing == 0 {
            for waiter in drainWaiters { waiter.resume() }
            drainWaiters.removeAll()
        }
    }

    private func execute(_ pending: Pending, on index: Int) async {
        let spec = self.spec
        let request = pending.request
        let began = clock.now
        let span = InstancePool<any DecoupledModelInstance>.batchSpan(model: spec.name, rows: request.batchSize,
                                                                      linking: [pending.traceContext].compactMap { $0 })
        let (outcome, started, finished) = await pool.run(on: index) { instance in
            try instance.execute(request, respond: { outputs in
                guard !pending.cancelled.isSet else { return }
                let wanted = request.outputs.compactMap { want in outputs.first { $0.name == want.name } }
                var response = InferenceResponse(id: request.request.id, modelName: spec.name, modelVersion: spec.version, outputs: wanted)
                response.timing.queue = began - pending.arrival
                pending.stream.yield(response)
            }, isCancelled: { pending.cancelled.isSet })
        }
        span?.end()
        records.recordExecution(rows: 1, batchTokens: 1, realTokens: 1, infer: finished - started, output: .zero)
        switch outcome {
        case .success:
            var timing = RequestTiming()
            (timing.queue, timing.computeInfer) = (started - pending.arrival, finished - started)
            records.recordSuccess(total: finished - pending.arrival, timing: timing)
            pending.stream.finish()
        case .failure(let error):
            records.recordFailure(.backend, elapsed: finished - pending.arrival)
            pending.stream.finish(throwing: pool.failure(error))
        }
        running[index] = nil
        pool.release(index)
        pump()
    }

    /// Stops taking requests; queued ones are refused and running ones
    /// cancelled (a response stream could otherwise hold the unload for as
    /// long as a client's request asks).
    public func shutdown() async {
        draining = true
        while let queued = queue.popFirst() {
            queued.stream.finish(throwing: InferenceError.unavailable("model '\(spec.name)' version \(spec.version) is unloading"))
        }
        for flag in running.values { flag.set() }
        if !(queue.isEmpty && pool.computing == 0) {
            await withCheckedContinuation { drainWaiters.append($0) }
        }
        await pool.drain()
    }
}

/// Set once, read from any thread.
final class CancellationFlag: Sendable {
    private let value = Atomic(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
