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
    private let instances: [any DecoupledModelInstance]
    private let executors: [InstanceExecutor]
    private var free: [Int]
    private var queue: Deque<Pending> = []
    private var draining = false
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []
    private let stats = Mutex(ModelStatistics())
    /// Requests that may wait for an instance (0: unbounded).
    private let maxQueued: Int
    /// The cancellation flags of the requests running, by instance.
    private var running: [Int: CancellationFlag] = [:]

    private nonisolated let clock: any SchedulerClock

    public init(spec: ModelSpec, instances: [any DecoupledModelInstance], maxQueueSize: Int = 0,
                admissions: [RateLimiter.Admission] = [], clock: any SchedulerClock = SystemSchedulerClock()) {
        precondition(!instances.isEmpty, "a model needs at least one instance")
        self.clock = clock
        maxQueued = max(maxQueueSize, 0)
        self.spec = spec
        self.instances = instances
        executors = InstanceExecutor.forInstances(instances.count, model: spec.name, admissions: admissions)
        free = Array(instances.indices.reversed())
    }

    public nonisolated var reportedParameters: [String: String] { instances.first?.reportedParameters ?? [:] }
    public nonisolated func statistics() -> ModelStatistics { stats.withLock { $0 } }

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
        while let index = free.last, let next = queue.popFirst() {
            free.removeLast()
            if next.cancelled.isSet {
                next.stream.finish()
                free.append(index)
                continue
            }
            running[index] = next.cancelled
            Task { await self.execute(next, on: index) }
        }
        if draining, queue.isEmpty, free.count == instances.count {
            for waiter in drainWaiters { waiter.resume() }
            drainWaiters.removeAll()
        }
    }

    private func execute(_ pending: Pending, on index: Int) async {
        let instance = instances[index]
        let started = clock.now
        let spec = self.spec
        let request = pending.request
        let sent = Mutex(0)
        let outcome: Result<Void, any Error>
        let span = ModelScheduler.batchSpan(model: spec.name, rows: request.batchSize, linking: [pending.traceContext].compactMap { $0 })
        defer { span?.end() }
        do {
            try await executors[index].run {
                try instance.execute(request, respond: { outputs in
                    guard !pending.cancelled.isSet else { return }
                    let wanted = request.outputs.compactMap { want in outputs.first { $0.name == want.name } }
                    var response = InferenceResponse(id: request.request.id, modelName: spec.name, modelVersion: spec.version, outputs: wanted)
                    response.timing.queue = started - pending.arrival
                    sent.withLock { $0 += 1 }
                    pending.stream.yield(response)
                }, isCancelled: { pending.cancelled.isSet })
            }
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        let finished = clock.now
        stats.withLock { stats in
            stats.executionCount += 1
            stats.inferenceCount += 1
            stats.lastInferenceMilliseconds = UInt64(Date().timeIntervalSince1970 * 1000)
            switch outcome {
            case .success: stats.success.record(finished - pending.arrival)
            case .failure:
                stats.fail.record(finished - pending.arrival)
                stats.failures[.backend, default: 0] += 1
            }
            stats.queue.record(started - pending.arrival)
            stats.computeInfer.record(finished - started)
        }
        switch outcome {
        case .success: pending.stream.finish()
        case .failure(let error): pending.stream.finish(throwing: error as? InferenceError ?? .internal("model '\(spec.name)' failed: \(error)"))
        }
        running[index] = nil
        free.append(index)
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
        if !(queue.isEmpty && free.count == instances.count) {
            await withCheckedContinuation { drainWaiters.append($0) }
        }
        for executor in executors { executor.stop() }
    }
}

/// Set once, read from any thread.
final class CancellationFlag: Sendable {
    private let value = Atomic(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
