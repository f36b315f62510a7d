import DequeModule
import InferenceCore

/// Triton's sequence batcher as pure state: which slot each sequence holds,
/// the backlog of sequences waiting for one, idle release, and which requests
/// form an instance's next batch. Time comes in as arguments, so tests drive
/// it with a manual clock and nothing sleeps.
struct SequencePolicy<Payload> {
    struct Request {
        /// Arrival order, unique per request.
        let serial: UInt64
        let flags: SequenceFlags
        let arrival: ContinuousClock.Instant
        let payload: Payload
    }

    /// A batch slot: instance, and index within it.
    struct Slot: Hashable, Comparable {
        let instance: Int
        let index: Int
        static func < (a: Slot, b: Slot) -> Bool { (a.index, a.instance) < (b.index, b.instance) }
    }

    /// One sequence from START to END (or idle release).
    struct Sequence {
        let id: Int
        let correlation: CorrelationID
        var slot: Slot?
        var pending: Deque<Request> = []
        var inFlight = false
        /// END was submitted: the correlation id no longer takes requests.
        var closed = false
        var lastActivity: ContinuousClock.Instant
    }

    enum Decision: Equatable {
        case dispatch([UInt64])
        case wait(until: ContinuousClock.Instant)
        case idle
    }

    let strategy: SequenceBatchingSpec.Strategy
    let instances: Int
    let slotsPerInstance: Int
    let maxBatchSize: Int
    let idleTimeout: Duration
    private(set) var sequences: [Int: Sequence] = [:]
    /// Sequences taking requests, by correlation id.
    private(set) var open: [CorrelationID: Int] = [:]
    /// Sequences waiting for a slot, in the order they started.
    private(set) var backlog: Deque<Int> = []
    private var freeSlots: [Slot]
    private var nextSequenceID = 0

    init(strategy: SequenceBatchingSpec.Strategy, instances: Int, maxBatchSize: Int, idleTimeout: Duration) {
        self.strategy = strategy
        self.instances = instances
        self.maxBatchSize = max(maxBatchSize, 1)
        self.idleTimeout = idleTimeout
        let slots: Int = switch strategy {
        case .direct: max(maxBatchSize, 1)
        case .oldest(let candidates, _, _): candidates > 0 ? candidates : max(maxBatchSize, 1)
        }
        slotsPerInstance = slots
        // Lowest slot index first across instances: slot 0 of every instance
        // fills before any slot 1, spreading sequences over instances.
        freeSlots = (0..<instances).flatMap { instance in (0..<slots).map { Slot(instance: instance, index: $0) } }
            .sorted(by: >)
    }

    // MARK: Requests in

    /// Takes a request into its sequence; throws Triton's error for one that
    /// continues no open sequence. A START on an open sequence restarts it in
    /// its slot, behind its queued requests, as Triton does (the START flag
    /// tells the model, and the implicit state, to begin again).
    mutating func submit(_ request: Request, now: ContinuousClock.Instant, model: String) throws {
        let correlation = request.flags.correlation
        let id: Int
        if let existing = open[correlation] {
            id = existing
        } else {
            guard request.flags.start else {
                throw InferenceError.invalidArgument(
                    "inference request for sequence \(correlation) to model '\(model)' must specify the START flag on the first request of the sequence")
            }
            id = nextSequenceID
            nextSequenceID += 1
            sequences[id] = Sequence(id: id, correlation: correlation, lastActivity: now)
            open[correlation] = id
            if let slot = freeSlots.popLast() {
                sequences[id]?.slot = slot
            } else {
                backlog.append(id)
            }
        }
        sequences[id]?.pending.append(request)
        sequences[id]?.lastActivity = now
        if request.flags.end {
            sequences[id]?.closed = true
            open[correlation] = nil
        }
    }

    // MARK: Batches out

    /// The next batch for a free instance: direct, the head request of each of
    /// its slots; oldest, the oldest heads of distinct sequences on it, waiting
    /// up to the delay for a preferred size.
    func decide(instance: Int, now: ContinuousClock.Instant) -> Decision {
        let heads = sequences.values
            .filter { $0.slot?.instance == instance && !$0.inFlight }
            .compactMap { sequence in sequence.pending.first.map { (sequence.slot!, $0) } }
        guard !heads.isEmpty else { return .idle }
        switch strategy {
        case .direct:
            return .dispatch(heads.sorted { $0.0.index < $1.0.index }.map(\.1.serial))
        case .oldest(_, let preferred, let delay):
            let oldest = heads.map(\.1).sorted { $0.serial < $1.serial }
            let batch = Array(oldest.prefix(maxBatchSize))
            // Full at the largest preferred size; otherwise the oldest waits
            // at most the delay for more sequences to join.
            if batch.count >= min(preferred.max() ?? maxBatchSize, maxBatchSize) { return .dispatch(batch.map(\.serial)) }
            let due = batch[0].arrival + delay
            return due <= now ? .dispatch(batch.map(\.serial)) : .wait(until: due)
        }
    }

    /// Removes the requests of a dispatched batch from their sequences and
    /// marks those sequences busy; returns each with its slot and sequence.
    mutating func take(_ serials: [UInt64]) -> [(request: Request, slot: Slot, sequence: Int)] {
        var taken: [(request: Request, slot: Slot, sequence: Int)] = []
        for serial in serials {
            guard let id = sequences.values.first(where: { $0.pending.first?.serial == serial })?.id,
                  let request = sequences[id]?.pending.popFirst(), let slot = sequences[id]?.slot else { continue }
            sequences[id]?.inFlight = true
            taken.append((request, slot, id))
        }
        return taken
    }

    /// A dispatched request of `sequence` finished: the sequence may run its
    /// next, and one that has ended frees its slot for the backlog.
    mutating func finished(sequence id: Int, now: ContinuousClock.Instant) {
        sequences[id]?.inFlight = false
        sequences[id]?.lastActivity = now
        releaseIfDone(id)
    }

    /// Sequences idle longer than the timeout with nothing queued: released,
    /// so their next request needs START again. Returns their correlation ids.
    mutating func expireIdle(now: ContinuousClock.Instant) -> [CorrelationID] {
        var released: [CorrelationID] = []
        for sequence in sequences.values where !sequence.closed && !sequence.inFlight && sequence.pending.isEmpty
            && sequence.lastActivity + idleTimeout <= now {
            sequences[sequence.id]?.closed = true
            if open[sequence.correlation] == sequence.id { open[sequence.correlation] = nil }
            releaseIfDone(sequence.id)
            released.append(sequence.correlation)
        }
        return released
    }

    /// When the next idle release is due, if any sequence could go idle.
    var nextIdleDeadline: ContinuousClock.Instant? {
        sequences.values.filter { !$0.closed && !$0.inFlight && $0.pending.isEmpty }.map { $0.lastActivity + idleTimeout }.min()
    }

    /// Instances with a request that could run now.
    var instancesWithWork: [Int] {
        Array(Set(sequences.values.filter { !$0.inFlight && !$0.pending.isEmpty }.compactMap(\.slot?.instance))).sorted()
    }

    var isEmpty: Bool { sequences.values.allSatisfy { $0.pending.isEmpty && !$0.inFlight } }

    /// Queued requests, in slots and in the backlog.
    var queuedCount: Int { sequences.values.reduce(0) { $0 + $1.pending.count } }

    /// A closed sequence with nothing left to run gives its slot to the oldest
    /// backlogged sequence.
    private mutating func releaseIfDone(_ id: Int) {
        guard let sequence = sequences[id], sequence.closed, !sequence.inFlight, sequence.pending.isEmpty else { return }
        sequences[id] = nil
        if let index = backlog.firstIndex(of: id) { backlog.remove(at: index) }
        guard let slot = sequence.slot else { return }
        if let next = backlog.popFirst() {
            sequences[next]?.slot = slot
        } else {
            freeSlots.append(slot)
            freeSlots.sort(by: >)
        }
    }
}
