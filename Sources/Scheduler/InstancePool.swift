import Foundation
import InferenceCore
import Synchronization
import Tracing

/// A model version's statistics and Prometheus series, shared by the pools
/// that execute for it (its instances and its urgent lane).
final class ExecutionRecords: Sendable {
    let statistics = Mutex(ModelStatistics())
    let metrics: ModelMetrics

    init(spec: ModelSpec) { metrics = ModelMetrics(model: spec.name, version: spec.version) }

    /// One execution: Triton's execution and inference counts, the time of
    /// the last inference, the per-batch-size times, the token counts.
    func recordExecution(rows: Int, batchTokens: Int, realTokens: Int, infer: Duration, output: Duration) {
        metrics.recordExecution(rows: rows, batchTokens: batchTokens, realTokens: realTokens)
        let epochMilliseconds = UInt64(Date().timeIntervalSince1970 * 1000)
        statistics.withLock { stats in
            stats.executionCount += 1
            stats.inferenceCount += UInt64(rows)
            stats.lastInferenceMilliseconds = epochMilliseconds
            stats.batchTokens += UInt64(batchTokens)
            stats.realTokens += UInt64(realTokens)
            var perSize = stats.batches[rows] ?? BatchStatistics(batchSize: rows)
            perSize.computeInput.record(.zero)
            perSize.computeInfer.record(infer)
            perSize.computeOutput.record(output)
            stats.batches[rows] = perSize
        }
    }

    /// A request answered: its end-to-end time and stages.
    func recordSuccess(total: Duration, timing: RequestTiming) {
        metrics.recordSuccess(total: total, timing: timing)
        statistics.withLock { stats in
            stats.success.record(total)
            stats.queue.record(timing.queue)
            stats.computeInput.record(timing.computeInput)
            stats.computeInfer.record(timing.computeInfer)
            stats.computeOutput.record(timing.computeOutput)
        }
    }

    /// A request that failed, after `elapsed`, for `reason`.
    func recordFailure(_ reason: FailureReason, elapsed: Duration) {
        metrics.recordFailure(reason)
        statistics.withLock { stats in
            stats.fail.record(elapsed)
            stats.failures[reason, default: 0] += 1
        }
    }
}

/// The instances of one model version and what every scheduler does with
/// them alike: one executor thread per instance, which instances compute,
/// running work there (timed, with the `batch` span linked to the traced
/// requests, a batch's results checked against its size), and stopping the
/// threads once nothing computes. The schedulers decide what runs where;
/// the pool runs it. Its state is locked, so a scheduler actor may read it
/// from its own methods without awaiting.
final class InstancePool<Instance: Sendable>: Sendable {
    let spec: ModelSpec
    let instances: [Instance]
    let records: ExecutionRecords
    private let executors: [InstanceExecutor]
    private let clock: any SchedulerClock
    private struct State {
        var busy: Set<Int> = []
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    /// `records`: the statistics to record into (a lane shares its model's);
    /// `name`: the executor threads' name prefix.
    init(spec: ModelSpec, instances: [Instance], admissions: [RateLimiter.Admission] = [], clock: any SchedulerClock,
         records: ExecutionRecords? = nil, name: String? = nil) {
        precondition(!instances.isEmpty, "a model needs at least one instance")
        self.spec = spec
        self.instances = instances
        self.clock = clock
        self.records = records ?? ExecutionRecords(spec: spec)
        let prefix = name ?? spec.name
        executors = instances.indices.map { index in
            InstanceExecutor(name: instances.count == 1 && name != nil ? prefix : "\(prefix)-\(index)",
                             admission: index < admissions.count ? admissions[index] : nil)
        }
    }

    var count: Int { instances.count }

    /// The first instance not computing, if any.
    var firstFree: Int? { state.withLock { state in instances.indices.first { !state.busy.contains($0) } } }

    func isBusy(_ index: Int) -> Bool { state.withLock { $0.busy.contains(index) } }

    /// Instances computing now.
    var computing: Int { state.withLock { $0.busy.count } }

    /// A drain waits for the instances computing (tests wait on it).
    var isWaitingToDrain: Bool { state.withLock { !$0.idleWaiters.isEmpty } }

    /// Marks an instance as computing; the scheduler decided it runs this work.
    func take(_ index: Int) {
        state.withLock { state in
            precondition(!state.busy.contains(index), "instance \(index) of '\(spec.name)' taken twice")
            state.busy.insert(index)
        }
    }

    /// The instance is free again: drain waiters resume once none computes.
    func release(_ index: Int) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.busy.remove(index)
            guard state.busy.isEmpty else { return [] }
            defer { state.idleWaiters = [] }
            return state.idleWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Runs `body` with a taken instance on its executor thread; returns its
    /// result and when it started and ended (the scheduler's clock).
    func run<T: Sendable>(on index: Int, _ body: @escaping @Sendable (Instance) throws -> T) async
        -> (result: Result<T, any Error>, started: ContinuousClock.Instant, computed: ContinuousClock.Instant) {
        let instance = instances[index]
        let started = clock.now
        let result: Result<T, any Error>
        do {
            result = .success(try await executors[index].run { try body(instance) })
        } catch {
            result = .failure(error)
        }
        return (result, started, clock.now)
    }

    /// Runs a batch on a taken instance: each request's outputs, or why it
    /// failed; the batch fails whole if the backend throws or answers for a
    /// different number of requests. Traced requests are linked from one
    /// `batch` span (a batch has many parents, so it is a root of its own).
    func run(_ batch: Batch, on index: Int, linking contexts: [InstrumentationContext],
             _ compute: @escaping @Sendable (Instance, Batch) throws -> [Result<[Tensor], any Error>]) async
        -> (result: Result<[Result<[Tensor], any Error>], InferenceError>, started: ContinuousClock.Instant, computed: ContinuousClock.Instant) {
        let span = Self.batchSpan(model: spec.name, rows: batch.batchSize, linking: contexts)
        let (outcome, started, computed) = await run(on: index) { instance in try compute(instance, batch) }
        span?.end()
        switch outcome {
        case .success(let results) where results.count == batch.items.count:
            return (.success(results), started, computed)
        case .success(let results):
            return (.failure(.internal("backend '\(spec.backend)' returned \(results.count) results for a batch of \(batch.items.count) requests")),
                    started, computed)
        case .failure(let error):
            return (.failure(failure(error)), started, computed)
        }
    }

    /// What a backend's error tells the client: its own InferenceError, or
    /// that the model failed.
    func failure(_ error: any Error) -> InferenceError {
        error as? InferenceError ?? .internal("model '\(spec.name)' failed: \(error)")
    }

    static func batchSpan(model: String, rows: Int, linking contexts: [InstrumentationContext]) -> (any Span)? {
        guard !contexts.isEmpty else { return nil }
        let span = startSpan("batch", context: .topLevel, ofKind: .internal)
        span.attributes["triton.model_name"] = model
        span.attributes["triton.batch_size"] = rows
        for context in contexts { span.addLink(SpanLink(context: context, attributes: [:])) }
        return span
    }

    /// Waits until no instance computes, then ends the executor threads
    /// (work queued on them finishes first).
    func drain() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { state -> Bool in
                guard !state.busy.isEmpty else { return true }
                state.idleWaiters.append(waiter)
                return false
            }
            if idle { waiter.resume() }
        }
        for executor in executors { executor.stop() }
    }
}
