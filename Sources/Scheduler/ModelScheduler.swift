import Foundation
import InferenceCore
import Synchronization
import Tracing

/// Queues one model version's requests, forms batches with `BatchingPolicy`
/// and runs them on the model's instances, each on its own executor thread.
///
/// All queue state lives in this actor; the policy decides, this loop only
/// applies decisions: it rejects expired requests, hands batches to free
/// instances, keeps one saturated batch formed while every instance is busy,
/// and sleeps until the next delay or deadline.
public actor ModelScheduler: InferenceRunner {
    /// What the scheduler needs to answer one queued request.
    struct Pending {
        let request: ValidatedRequest
        let continuation: CheckedContinuation<InferenceResponse, any Error>
        /// Whether this entry counts as a client request in the statistics
        /// (the later parts of a split request do not).
        let countsAsRequest: Bool
        /// The request's span, when it is traced (OpenTelemetry mode): the
        /// batch that runs it links to it.
        let traceContext: InstrumentationContext?
    }
    typealias Entry = QueuedRequest<Pending>

    public nonisolated let spec: ModelSpec
    private let batching: DynamicBatchingSpec
    private let policy: BatchingPolicy
    private let variableLengthBatching: TokenCost?
    private nonisolated let pool: InstancePool<any ModelInstance>
    /// The most urgent level in each computing instance's batch, by instance:
    /// a queued request more urgent than all of them may take the urgent lane.
    private var computingLevels: [Int: Int] = [:]
    /// One more instance of the model for batches more urgent than everything
    /// computing, while the others pause (`UrgentWorkGate`); nil without
    /// priority levels or where instances do not yield.
    private let urgentLane: (pool: InstancePool<any ModelInstance>, gate: UrgentWorkGate)?
    private var queue: RequestQueue<Pending>
    /// A batch formed ahead while every instance computes (at most one).
    private var readyBatch: [Entry]?
    /// Batches computing: the instances taken, the urgent lane's included.
    private var inFlight: Int { pool.computing + (urgentLane?.pool.computing ?? 0) }
    private var nextSequence: UInt64 = 0
    private var draining = false
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []
    private var timer: Task<Void, Never>?
    private var timerDeadline: ContinuousClock.Instant?
    /// Exponentially weighted mean time between arrivals, for the adaptive delay.
    private var meanArrivalGap: Double?
    private var lastArrival: ContinuousClock.Instant?
    /// preserve_ordering: finished results wait here until every earlier request is answered.
    private var nextToRelease: UInt64 = 0
    private var finished: [UInt64: (Pending, Result<InferenceResponse, any Error>)] = [:]
    private nonisolated var records: ExecutionRecords { pool.records }
    private nonisolated var metrics: ModelMetrics { pool.records.metrics }
    /// What the loop reads time from and sleeps on (a manual clock in tests).
    private nonisolated let clock: any SchedulerClock

    /// `defaultMaxQueueSize` bounds every priority level whose queue policy
    /// leaves `max_queue_size` at 0 (Triton: unbounded), so memory stays bounded
    /// under overload; 0 keeps such levels unbounded.
    /// `urgentLane` is one more instance for batches more urgent than all that
    /// compute (see `UrgentWorkGate`); it is used only with several priority
    /// levels, `priority_preemption` on and instances that yield.
    /// `tokenCost`: how the instances batch variable lengths (the backend's
    /// `variableLengthBatching`; nil: they cannot).
    public init(spec: ModelSpec, instances: [any ModelInstance], urgentLane: (any ModelInstance)? = nil,
                tokenCost: TokenCost? = nil,
                defaultMaxQueueSize: Int = 0, admissions: [RateLimiter.Admission] = [],
                clock: any SchedulerClock = SystemSchedulerClock()) {
        self.spec = spec
        self.clock = clock
        let pool = InstancePool(spec: spec, instances: instances, admissions: admissions, clock: clock)
        self.pool = pool
        if let lane = urgentLane, Self.preempts(spec, instances: instances) {
            // No admission of its own: it computes only while the instances
            // whose resources it borrows are paused. Its executions count as the model's.
            self.urgentLane = (InstancePool(spec: spec, instances: [lane], clock: clock, records: pool.records, name: "\(spec.name)-urgent"),
                               UrgentWorkGate())
        } else {
            self.urgentLane = nil
        }
        self.variableLengthBatching = tokenCost
        if let dynamic = spec.dynamicBatching {
            batching = dynamic
            policy = BatchingPolicy(
                maxBatchSize: spec.maxBatchSize, preferredBatchSizes: dynamic.preferredBatchSizes,
                maxQueueDelay: dynamic.maxQueueDelay, maxBatchTokens: dynamic.maxBatchTokens,
                tokenCost: tokenCost ?? .padded, adaptiveQueueDelay: dynamic.adaptiveQueueDelay)
        } else {
            // Without dynamic_batching Triton runs every request alone: a policy
            // whose batches hold one request.
            batching = DynamicBatchingSpec(preferredBatchSizes: [1], maxQueueDelay: .zero)
            policy = BatchingPolicy(maxBatchSize: 1, preferredBatchSizes: [1])
        }
        let batching = self.batching
        self.queue = RequestQueue(levels: batching.priorityLevels) { level in
            Self.effectivePolicy(batching.queuePolicy(level: level), defaultMaxQueueSize: defaultMaxQueueSize)
        }
    }

    /// A level's policy with the server's default bound where the model sets none.
    static func effectivePolicy(_ configured: QueuePolicy, defaultMaxQueueSize: Int) -> QueuePolicy {
        var policy = configured
        if policy.maxQueueSize == 0 { policy.maxQueueSize = max(defaultMaxQueueSize, 0) }
        return policy
    }

    /// Creates `spec.instanceCount` instances of `backend` (and the urgent
    /// lane's, where the model preempts) and a scheduler over them.
    public static func make(spec: ModelSpec, backend: any ModelBackend, defaultMaxQueueSize: Int = 0,
                            admissions: [RateLimiter.Admission] = [],
                            clock: any SchedulerClock = SystemSchedulerClock()) throws -> ModelScheduler {
        let count = max(spec.instanceCount, 1)
        let instances = try (0..<count).map { try backend.makeInstance(for: spec, index: $0) }
        let lane = preempts(spec, instances: instances) ? try backend.makeInstance(for: spec, index: count) : nil
        return ModelScheduler(spec: spec, instances: instances, urgentLane: lane, tokenCost: backend.variableLengthBatching,
                              defaultMaxQueueSize: defaultMaxQueueSize, admissions: admissions, clock: clock)
    }

    /// Whether urgent batches overtake computing ones: several priority
    /// levels, `priority_preemption` not turned off, and instances that yield.
    static func preempts(_ spec: ModelSpec, instances: [any ModelInstance]) -> Bool {
        guard let dynamic = spec.dynamicBatching, dynamic.priorityLevels > 1, dynamic.priorityPreemption else { return false }
        return instances.allSatisfy(\.yieldsToUrgentWork)
    }

    /// The runner a model's config asks for: the sequence batcher for
    /// `sequence_batching`, else this scheduler (dynamic batching or none).
    public static func runner(spec: ModelSpec, backend: any ModelBackend, defaultMaxQueueSize: Int = 0,
                              rateLimiter: RateLimiter? = nil,
                              clock: any SchedulerClock = SystemSchedulerClock()) throws -> any InferenceRunner {
        let admissions = try rateLimiter?.register(spec) ?? []
        do {
            return try runner(spec: spec, backend: backend, defaultMaxQueueSize: defaultMaxQueueSize, admissions: admissions, clock: clock)
        } catch {
            for admission in admissions { admission.unregister() }
            throw error
        }
    }

    static func runner(spec: ModelSpec, backend: any ModelBackend, defaultMaxQueueSize: Int,
                       admissions: [RateLimiter.Admission], clock: any SchedulerClock) throws -> any InferenceRunner {
        if spec.decoupled {
            let instances = try (0..<max(spec.instanceCount, 1)).map { index -> any DecoupledModelInstance in
                guard let instance = try backend.makeInstance(for: spec, index: index) as? any DecoupledModelInstance else {
                    throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(backend.name)' cannot serve decoupled models")
                }
                return instance
            }
            return DecoupledScheduler(spec: spec, instances: instances, maxQueueSize: defaultMaxQueueSize, admissions: admissions,
                                      clock: clock)
        }
        guard let sequence = spec.sequenceBatching else {
            return try make(spec: spec, backend: backend, defaultMaxQueueSize: defaultMaxQueueSize, admissions: admissions, clock: clock)
        }
        let instances = try (0..<max(spec.instanceCount, 1)).map { try backend.makeInstance(for: spec, index: $0) }
        return SequenceScheduler(spec: spec, sequence: sequence, instances: instances, maxQueueSize: defaultMaxQueueSize,
                                 admissions: admissions, clock: clock)
    }

    public nonisolated var reportedParameters: [String: String] { pool.instances[0].reportedParameters }

    /// Requests waiting in the queue or in the batch formed ahead (tests wait
    /// on it instead of sleeping).
    public var queuedCount: Int { queue.count + (readyBatch?.count ?? 0) }

    /// Batches executing now (the urgent lane's included).
    public var executingCount: Int { inFlight }

    /// Whether a batch runs on the urgent lane now (tests wait on it).
    public var isUrgentLaneBusy: Bool { (urgentLane?.pool.computing ?? 0) > 0 }

    /// Times a computing batch paused for the urgent lane.
    public nonisolated var urgentPauseCount: Int { urgentLane?.gate.pauseCount ?? 0 }

    /// Requests taken so far, in arrival order (tests wait on it).
    public var admittedCount: UInt64 { nextSequence }

    /// Shutdown has begun: new requests are refused.
    public var isDraining: Bool { draining }

    public nonisolated func statistics() -> ModelStatistics {
        records.statistics.withLock { $0 }
    }

    // MARK: Requests

    /// Queues a request the pipeline has prepared (`ModelSteps.prepare`: its
    /// text tokenized and real token counts in `rowTokens`).
    public func infer(_ request: ValidatedRequest) async throws -> InferenceResponse {
        guard !draining else {
            throw InferenceError.unavailable("model '\(spec.name)' version \(spec.version) is unloading")
        }
        let ranges = try partition(request)
        guard ranges.count > 1 else { return try await enqueue(request, countsAsRequest: true) }
        // Beyond Triton (which rejects a request over max_batch_size): split
        // along the batch dimension so no batch passes max_batch_size or
        // max_batch_tokens, run the parts as ordinary requests, reassemble the
        // outputs in order.
        let parts = ranges.map { request.rows($0) }
        let responses = try await withThrowingTaskGroup(of: (Int, InferenceResponse).self) { group in
            for (index, part) in parts.enumerated() {
                group.addTask { (index, try await self.enqueue(part, countsAsRequest: index == 0)) }
            }
            var results = [InferenceResponse?](repeating: nil, count: parts.count)
            for try await (index, response) in group { results[index] = response }
            return results.map { $0! }
        }
        var merged = responses[0]
        merged.outputs = try merged.outputs.indices.map { index in
            try Tensor.concatenatingRows(responses.map { $0.outputs[index] })
        }
        return merged
    }

    /// The request's rows in parts that each fit one batch: at most
    /// max_batch_size rows and, with a token budget, at most max_batch_tokens
    /// tokens (real counts where the backend gave them, else rows x length).
    nonisolated func partition(_ request: ValidatedRequest) throws -> [Range<Int>] {
        let rows = request.batchSize
        guard spec.maxBatchSize > 0, rows > 0 else { return [0..<max(rows, 1)] }
        let uniform = request.rowTokens == nil ? sequenceLength(request) : 0
        return try Self.partition(rows: rows, tokens: { request.rowTokens?[$0] ?? uniform }, maxRows: spec.maxBatchSize,
                                  maxTokens: policy.maxBatchTokens, cost: policy.tokenCost)
    }

    static func partition(rows: Int, tokens: (Int) -> Int, maxRows: Int, maxTokens: Int?, cost: TokenCost) throws -> [Range<Int>] {
        var parts: [Range<Int>] = []
        var start = 0, sum = 0, longest = 0
        for row in 0..<rows {
            let t = tokens(row)
            if let budget = maxTokens, t > budget {
                throw InferenceError.invalidArgument("row \(row) of the request has \(t) tokens, more than the model's max_batch_tokens of \(budget)")
            }
            let count = row - start
            let over = maxTokens.map { budget in
                cost == .packed ? sum + t > budget : (count + 1) * max(longest, t) > budget
            } ?? false
            if count > 0 && (count == maxRows || over) {
                parts.append(start..<row)
                (start, sum, longest) = (row, 0, 0)
            }
            sum += t
            longest = max(longest, t)
        }
        parts.append(start..<rows)
        return parts
    }

    private func enqueue(_ request: ValidatedRequest, countsAsRequest: Bool) async throws -> InferenceResponse {
        let sequence = nextSequence
        nextSequence += 1
        let now = clock.now
        noteArrival(now)
        let level = batching.level(forPriority: request.request.priority)
        let timeout = batching.queuePolicy(level: level).effectiveTimeout(requested: request.request.timeout)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let pending = Pending(request: request, continuation: continuation, countsAsRequest: countsAsRequest,
                                      traceContext: InstrumentationContext.current)
                let entry = Entry(sequence: sequence, rows: request.batchSize, shapeKey: shapeKey(request),
                                  length: request.rowTokens?.max() ?? sequenceLength(request), tokens: request.rowTokens?.reduce(0, +),
                                  arrival: now, deadline: timeout.map { now + $0 },
                                  level: level, payload: pending)
                do {
                    try queue.enqueue(entry)
                } catch {
                    complete(entry, .failure(error), reason: .rejected)
                    return
                }
                pump()
            }
        } onCancel: {
            Task { await self.cancel(sequence) }
        }
    }

    /// A client that went away before its request was computed: drop it and count it.
    private func cancel(_ sequence: UInt64) {
        for entry in queue.remove([sequence]) {
            complete(entry, .failure(InferenceError(.cancelled, "request cancelled by the client")), reason: .canceled)
        }
        pump()
    }

    // MARK: The loop

    /// Applies the policy until nothing more can happen now.
    private func pump() {
        let now = clock.now
        for entry in queue.expire(now: now) + expireReadyBatch(now: now) {
            complete(entry, .failure(InferenceError.unavailable("Request timeout expired")), reason: .rejected)
        }
        // A more urgent request arrived after the next batch was formed: put the
        // batch back so it is formed again with that request first, instead of
        // the request waiting behind a whole batch of less urgent work.
        if let ready = readyBatch, let urgent = queue.mostUrgentLevel, let formed = ready.map(\.level).min(), urgent < formed {
            queue.restore(ready)
            readyBatch = nil
        }
        dispatching: while let instance = pool.firstFree {
            if let ready = readyBatch {
                readyBatch = nil
                launch(ready, on: instance)
                continue
            }
            switch policy.decide(batchCandidates, now: now, arrivalsPerSecond: arrivalRate) {
            case .dispatch(let sequences, _):
                let entries = queue.remove(sequences)
                guard !entries.isEmpty else { break dispatching }
                launch(entries, on: instance)
            case .wait(let until):
                wake(at: until)
                break dispatching
            case .idle:
                break dispatching
            }
        }
        let allBusy = pool.firstFree == nil
        if allBusy { overtake(now: now) }
        // Every instance is busy: form the next batch now if it cannot grow, so
        // it starts the moment an instance frees.
        if allBusy, readyBatch == nil,
           case .dispatch(let sequences, saturated: true) = policy.decide(batchCandidates, now: now, arrivalsPerSecond: arrivalRate) {
            readyBatch = queue.remove(sequences)
        }
        metrics.pending.record(queue.count + (readyBatch?.count ?? 0))
        // Expired REJECT requests are answered promptly even while instances are busy.
        let readyDeadline = readyBatch?.compactMap { rejectsOnTimeout($0) ? $0.deadline : nil }.min()
        if let deadline = [queue.nextDeadline, readyDeadline].compactMap({ $0 }).min() { wake(at: deadline) }
        resumeDrainWaitersIfIdle()
    }

    /// What the next batch is formed from: the whole queue in walk order
    /// (Triton fills a batch across levels), or, where urgent batches preempt,
    /// the most urgent level alone, so an urgent request never waits for the
    /// less urgent rows a batch would otherwise be filled with.
    private var batchCandidates: [Entry] {
        let all = queue.inWalkOrder
        guard urgentLane != nil, let first = all.first else { return all }
        return all.filter { $0.level == first.level }
    }

    /// Every instance computes: requests more urgent than everything in those
    /// batches run on the urgent lane now, alone (no less urgent request rides
    /// along), while the computing batches pause at their next yield point.
    private func overtake(now: ContinuousClock.Instant) {
        guard let lane = urgentLane, lane.pool.firstFree != nil, let threshold = computingLevels.values.min(),
              let urgent = queue.mostUrgentLevel, urgent < threshold else { return }
        // A batch formed ahead may hold the urgent requests: they go back first.
        if let ready = readyBatch, ready.contains(where: { $0.level < threshold }) {
            queue.restore(ready)
            readyBatch = nil
        }
        let candidates = queue.inWalkOrder.filter { $0.level < threshold }
        switch policy.decide(candidates, now: now, arrivalsPerSecond: arrivalRate) {
        case .dispatch(let sequences, _):
            let entries = queue.remove(sequences)
            guard !entries.isEmpty else { return }
            lane.pool.take(0)
            metrics.urgentExecutions.increment()
            Task { await self.executeUrgent(entries) }
        case .wait(let until):
            wake(at: until)
        case .idle:
            break
        }
    }

    /// A request formed ahead is still the queue's until it runs: its REJECT
    /// timeout applies there too.
    private func expireReadyBatch(now: ContinuousClock.Instant) -> [Entry] {
        guard let ready = readyBatch else { return [] }
        let expired = ready.filter { entry in rejectsOnTimeout(entry) && entry.deadline.map { $0 <= now } == true }
        guard !expired.isEmpty else { return [] }
        let remaining = ready.filter { entry in !expired.contains { $0.sequence == entry.sequence } }
        readyBatch = remaining.isEmpty ? nil : remaining
        return expired
    }

    private func rejectsOnTimeout(_ entry: Entry) -> Bool {
        batching.queuePolicy(level: entry.level).timeoutAction == .reject
    }

    private func wake(at instant: ContinuousClock.Instant) {
        if let current = timerDeadline, current <= instant, timer != nil { return }
        timer?.cancel()
        timerDeadline = instant
        timer = Task {
            try? await clock.sleep(until: instant)
            guard !Task.isCancelled else { return }
            self.timerFired(instant)
        }
    }

    private func timerFired(_ instant: ContinuousClock.Instant) {
        if timerDeadline == instant {
            timerDeadline = nil
            timer = nil
        }
        pump()
    }

    private func launch(_ entries: [Entry], on index: Int) {
        pool.take(index)
        computingLevels[index] = entries.map(\.level).min()
        Task { await self.execute(entries, on: index) }
    }

    private func execute(_ entries: [Entry], on index: Int) async {
        let batch = Batch(items: entries.map(\.payload.request), urgentWork: urgentLane?.gate)
        let outcome = await pool.run(batch, on: index, linking: entries.compactMap(\.payload.traceContext)) { instance, batch in
            try instance.executeEach(batch)
        }
        finishBatch(entries, batchSize: batch.batchSize, outcome: outcome)
        computingLevels[index] = nil
        pool.release(index)
        pump()
    }

    private func executeUrgent(_ entries: [Entry]) async {
        guard let lane = urgentLane else { return }
        let batch = Batch(items: entries.map(\.payload.request))
        let outcome = await lane.pool.run(batch, on: 0, linking: entries.compactMap(\.payload.traceContext)) { instance, batch in
            // The computing instances pause from here until this returns.
            lane.gate.begin()
            defer { lane.gate.end() }
            return try instance.executeEach(batch)
        }
        finishBatch(entries, batchSize: batch.batchSize, outcome: outcome)
        lane.pool.release(0)
        pump()
    }

    /// Answers a batch's requests from what the pool computed.
    private func finishBatch(_ entries: [Entry], batchSize: Int,
                             outcome: (result: Result<[Result<[Tensor], any Error>], InferenceError>,
                                       started: ContinuousClock.Instant, computed: ContinuousClock.Instant)) {
        let (started, computed) = (outcome.started, outcome.computed)
        let infer = computed - started
        let outputs: [Result<[Tensor], any Error>]
        switch outcome.result {
        case .success(let value):
            outputs = value
        case .failure(let error):
            for entry in entries { complete(entry, .failure(error), reason: .backend) }
            return
        }
        var responses: [InferenceResponse] = []
        var answered: [Entry] = []
        for (entry, output) in zip(entries, outputs) {
            let tensors: [Tensor]
            switch output {
            case .success(let value): tensors = value
            case .failure(let error):
                complete(entry, .failure(pool.failure(error)), reason: .backend)
                continue
            }
            let request = entry.payload.request
            let wanted = request.outputs.map(\.name)
            var timing = RequestTiming()
            timing.queue = started - entry.arrival
            timing.computeInfer = infer
            let ordered = wanted.compactMap { name in tensors.first { $0.name == name } }
            timing.computeOutput = clock.now - computed
            responses.append(InferenceResponse(id: request.request.id, modelName: spec.name, modelVersion: spec.version,
                                               outputs: ordered, timing: timing))
            answered.append(entry)
        }
        recordExecution(answered, responses: responses, batchSize: batchSize, infer: infer, output: clock.now - computed)
        for (entry, response) in zip(answered, responses) {
            complete(entry, .success(response), reason: nil)
        }
    }

    /// Answers a request, in arrival order when the model preserves ordering.
    private func complete(_ entry: Entry, _ result: Result<InferenceResponse, any Error>, reason: FailureReason?) {
        if let reason { records.recordFailure(reason, elapsed: clock.now - entry.arrival) }
        guard batching.preserveOrdering else {
            entry.payload.continuation.resume(with: result)
            return
        }
        finished[entry.sequence] = (entry.payload, result)
        while let (pending, result) = finished.removeValue(forKey: nextToRelease) {
            pending.continuation.resume(with: result)
            nextToRelease += 1
        }
    }

    private func recordExecution(_ entries: [Entry], responses: [InferenceResponse], batchSize: Int,
                                 infer: Duration, output: Duration) {
        let finishedAt = clock.now
        let longest = entries.map(\.length).max() ?? 0
        let real = entries.reduce(0) { $0 + $1.rows * $1.length }
        let cost = variableLengthBatching == .packed ? real : batchSize * longest
        records.recordExecution(rows: batchSize, batchTokens: cost, realTokens: real, infer: infer, output: output)
        for (entry, response) in zip(entries, responses) where entry.payload.countsAsRequest {
            records.recordSuccess(total: finishedAt - entry.arrival, timing: response.timing)
        }
    }

    // MARK: Shapes and lengths

    /// Non-batch shapes of the inputs that must match: ragged inputs are left
    /// out; variable dims are blanked when the backend pads or packs them.
    private func shapeKey(_ request: ValidatedRequest) -> [[Int]] {
        spec.inputs.compactMap { input -> [Int]? in
            guard !input.allowRaggedBatch, let tensor = request.request.input(named: input.name) else { return nil }
            let dims = Array(tensor.shape.dropFirst(spec.maxBatchSize > 0 ? 1 : 0))
            guard variableLengthBatching != nil else { return dims }
            return zip(dims, input.dims).map { got, declared in declared == -1 ? -1 : got }
        }
    }

    /// Tokens per row where the backend gave no real counts (`rowTokens`): the
    /// product of the variable dims of the first input that has any, else 1.
    private nonisolated func sequenceLength(_ request: ValidatedRequest) -> Int {
        for input in spec.inputs where input.dims.contains(-1) {
            guard let tensor = request.request.input(named: input.name) else { continue }
            let dims = Array(tensor.shape.dropFirst(spec.maxBatchSize > 0 ? 1 : 0))
            return max(zip(dims, input.dims).filter { $0.1 == -1 }.reduce(1) { $0 * $1.0 }, 1)
        }
        return 1
    }

    private func noteArrival(_ now: ContinuousClock.Instant) {
        if let lastArrival {
            let gap = Double((now - lastArrival).nanosecondsClamped) / 1e9
            meanArrivalGap = meanArrivalGap.map { 0.8 * $0 + 0.2 * gap } ?? gap
        }
        lastArrival = now
    }

    private var arrivalRate: Double {
        guard let gap = meanArrivalGap, gap > 0 else { return 0 }
        return 1 / gap
    }

    // MARK: Shutdown

    public func shutdown() async {
        draining = true
        pump()
        if !isIdle {
            await withCheckedContinuation { drainWaiters.append($0) }
        }
        timer?.cancel()
        await pool.drain()
        await urgentLane?.pool.drain()
    }

    private var isIdle: Bool { queue.isEmpty && readyBatch == nil && inFlight == 0 }

    private func resumeDrainWaitersIfIdle() {
        guard draining, isIdle else { return }
        for waiter in drainWaiters { waiter.resume() }
        drainWaiters.removeAll()
    }
}
