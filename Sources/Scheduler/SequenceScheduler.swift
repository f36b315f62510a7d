import Foundation
import InferenceCore
import Synchronization
import Tracing

/// Runs a `sequence_batching` model: requests tied by a correlation id go to
/// their sequence's slot (`SequencePolicy` decides), get the control inputs
/// and implicit state the config names, and run in order, one at a time per
/// sequence. A sequence idle past `max_sequence_idle_microseconds` is
/// released; its next request needs START again.
public actor SequenceScheduler: InferenceRunner {
    struct Pending {
        let request: ValidatedRequest
        let continuation: CheckedContinuation<InferenceResponse, any Error>
        /// The request's span, when it is traced (OpenTelemetry mode).
        let traceContext: InstrumentationContext?
    }
    typealias Policy = SequencePolicy<Pending>

    public nonisolated let spec: ModelSpec
    private let sequence: SequenceBatchingSpec
    private nonisolated let pool: InstancePool<any ModelInstance>
    private let clock: any SchedulerClock
    private var policy: Policy
    private var nextSerial: UInt64 = 0
    /// Implicit state of each running sequence, by the policy's sequence id.
    private var states: [Int: [Tensor]] = [:]
    private var timer: Task<Void, Never>?
    private var timerDeadline: ContinuousClock.Instant?
    private var draining = false
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []
    private nonisolated var records: ExecutionRecords { pool.records }
    /// Requests that may wait, in slots and the backlog (0: unbounded).
    private let maxQueued: Int

    public init(spec: ModelSpec, sequence: SequenceBatchingSpec, instances: [any ModelInstance],
                maxQueueSize: Int = 0, admissions: [RateLimiter.Admission] = [],
                clock: any SchedulerClock = SystemSchedulerClock()) {
        self.maxQueued = max(maxQueueSize, 0)
        self.spec = spec
        self.sequence = sequence
        self.clock = clock
        pool = InstancePool(spec: spec, instances: instances, admissions: admissions, clock: clock)
        policy = Policy(strategy: sequence.strategy, instances: instances.count, maxBatchSize: spec.maxBatchSize,
                        idleTimeout: sequence.maxSequenceIdle)
    }

    public nonisolated var reportedParameters: [String: String] { pool.instances[0].reportedParameters }
    public nonisolated func statistics() -> ModelStatistics { records.statistics.withLock { $0 } }

    /// Requests queued or waiting in the backlog (tests watch it instead of sleeping).
    public var queuedCount: Int { policy.queuedCount }

    // MARK: Requests

    public nonisolated func infer(_ request: ValidatedRequest) async throws -> InferenceResponse {
        var request = request
        request.sequence = try SequenceFlags.of(request.request, spec: spec, sequence: sequence)
        if spec.maxBatchSize > 0 && request.batchSize != 1 {
            throw InferenceError.invalidArgument(
                "inference request to model '\(spec.name)' must specify batch-size 1 due to requirements of sequence batcher")
        }
        return try await enqueue(request)
    }

    private func enqueue(_ request: ValidatedRequest) async throws -> InferenceResponse {
        guard !draining else {
            throw InferenceError.unavailable("Server is stopping, scheduler for model has stopped accepting new inference requests")
        }
        let now = clock.now
        // Release what went idle first, so a late request after the timeout
        // finds its sequence gone, as Triton's reaper would have left it
        // (their states go in the pump that follows).
        _ = policy.expireIdle(now: now)
        if maxQueued > 0 && policy.queuedCount >= maxQueued {
            throw InferenceError.unavailable("Exceeds maximum queue size")
        }
        return try await withCheckedThrowingContinuation { continuation in
            let serial = nextSerial
            nextSerial += 1
            do {
                try policy.submit(Policy.Request(serial: serial, flags: request.sequence!, arrival: now,
                                                 payload: Pending(request: request, continuation: continuation,
                                                                  traceContext: InstrumentationContext.current)),
                                  now: now, model: spec.name)
            } catch {
                fail(continuation, error)
                return
            }
            pump()
        }
    }

    // MARK: The loop

    private func pump() {
        let now = clock.now
        _ = policy.expireIdle(now: now)
        dropFinishedStates()
        var wakeAt = policy.nextIdleDeadline
        for instance in 0..<pool.count where !pool.isBusy(instance) {
            switch policy.decide(instance: instance, now: now) {
            case .dispatch(let serials):
                let taken = policy.take(serials)
                guard !taken.isEmpty else { continue }
                pool.take(instance)
                Task { await self.execute(taken, on: instance) }
            case .wait(let until):
                wakeAt = [wakeAt, until].compactMap { $0 }.min()
            case .idle:
                break
            }
        }
        if let wakeAt { wake(at: wakeAt) }
        resumeDrainWaitersIfIdle()
    }

    private func wake(at instant: ContinuousClock.Instant) {
        if let current = timerDeadline, current <= instant, timer != nil { return }
        timer?.cancel()
        timerDeadline = instant
        let clock = self.clock
        timer = Task {
            try? await clock.sleep(until: instant)
            guard !Task.isCancelled else { return }
            await self.timerFired(instant)
        }
    }

    private func timerFired(_ instant: ContinuousClock.Instant) {
        if timerDeadline == instant {
            timerDeadline = nil
            timer = nil
        }
        pump()
    }

    /// The request as the backend sees it: control inputs and state added.
    private func withControls(_ pending: Pending, sequenceID: Int, slot: Policy.Slot) -> ValidatedRequest {
        var request = pending.request
        let flags = request.sequence!
        let batched = spec.maxBatchSize > 0
        for control in sequence.controls {
            switch control.kind {
            case .start: request.request.inputs.append(control.tensor(flag: flags.start, batched: batched))
            case .end: request.request.inputs.append(control.tensor(flag: flags.end, batched: batched))
            case .ready: request.request.inputs.append(control.tensor(flag: true, batched: batched))
            case .correlationID: request.request.inputs.append(control.tensor(correlation: flags.correlation, batched: batched))
            }
        }
        if flags.start || states[sequenceID] == nil {
            states[sequenceID] = sequence.states.map { state in
                Tensor(name: state.inputName, dataType: state.dataType, shape: (batched ? [1] : []) + state.dims, bytes: state.initialBytes)
            }
        }
        request.request.inputs.append(contentsOf: states[sequenceID] ?? [])
        request.sequenceSlot = slot.index
        return request
    }

    private func execute(_ taken: [(request: Policy.Request, slot: Policy.Slot, sequence: Int)], on instance: Int) async {
        let items = taken.map { withControls($0.request.payload, sequenceID: $0.sequence, slot: $0.slot) }
        let batch = Batch(items: items)
        let outcome = await pool.run(batch, on: instance, linking: taken.compactMap(\.request.payload.traceContext)) { model, batch in
            try model.executeEach(batch)
        }
        finish(taken, result: outcome.result, batchSize: batch.batchSize, started: outcome.started, computed: outcome.computed)
        pool.release(instance)
        pump()
    }

    private func finish(_ taken: [(request: Policy.Request, slot: Policy.Slot, sequence: Int)],
                        result: Result<[Result<[Tensor], any Error>], InferenceError>,
                        batchSize: Int, started: ContinuousClock.Instant, computed: ContinuousClock.Instant) {
        let outputs: [Result<[Tensor], any Error>]
        switch result {
        case .success(let value):
            outputs = value
            records.recordExecution(rows: batchSize, batchTokens: batchSize, realTokens: batchSize, infer: computed - started, output: .zero)
        case .failure(let error):
            outputs = []
            for item in taken { fail(item.request.payload.continuation, error) }
        }
        for (index, item) in taken.enumerated() {
            defer { policy.finished(sequence: item.sequence, now: computed) }
            guard index < outputs.count else { continue }
            let tensors: [Tensor]
            switch outputs[index] {
            case .success(let value): tensors = value
            case .failure(let error):
                fail(item.request.payload.continuation, pool.failure(error))
                continue
            }
            // Implicit state: this request's state outputs are the next one's inputs.
            if !sequence.states.isEmpty {
                states[item.sequence] = sequence.states.map { state in
                    var next = tensors.first { $0.name == state.outputName }
                        ?? Tensor(name: state.inputName, dataType: state.dataType,
                                  shape: (spec.maxBatchSize > 0 ? [1] : []) + state.dims, bytes: state.initialBytes)
                    next.name = state.inputName
                    return next
                }
            }
            let request = item.request.payload.request
            var timing = RequestTiming()
            timing.queue = started - item.request.arrival
            timing.computeInfer = computed - started
            let wanted = request.outputs.map(\.name).compactMap { name in tensors.first { $0.name == name } }
            let response = InferenceResponse(id: request.request.id, modelName: spec.name, modelVersion: spec.version,
                                             outputs: wanted, timing: timing)
            let total = clock.now - item.request.arrival
            records.recordSuccess(total: total, timing: timing)
            item.request.payload.continuation.resume(returning: response)
        }
        dropFinishedStates()
    }

    private func fail(_ continuation: CheckedContinuation<InferenceResponse, any Error>, _ error: any Error) {
        records.recordFailure(.other, elapsed: .zero)
        continuation.resume(throwing: error)
    }

    /// State of sequences the policy no longer holds (ended or idle) is dropped.
    private func dropFinishedStates() {
        guard !states.isEmpty else { return }
        states = states.filter { policy.sequences[$0.key] != nil }
    }

    // MARK: Shutdown

    public func shutdown() async {
        draining = true
        pump()
        if !(policy.isEmpty && pool.computing == 0) {
            await withCheckedContinuation { drainWaiters.append($0) }
        }
        timer?.cancel()
        await pool.drain()
    }

    private func resumeDrainWaitersIfIdle() {
        guard draining, policy.isEmpty, pool.computing == 0 else { return }
        for waiter in drainWaiters { waiter.resume() }
        drainWaiters.removeAll()
    }
}
