import DequeModule
import InferenceCore

/// One queued request as the batching policy sees it. `Payload` is whatever
/// the scheduler needs to answer it (tests use plain values).
public struct QueuedRequest<Payload> {
    /// Arrival order, unique per queue; responses are ordered by it under preserve_ordering.
    public let sequence: UInt64
    /// Rows in the batch dimension.
    public let rows: Int
    /// Non-batch shapes of the inputs that must match for requests to share a
    /// batch (variable dims the backend can pad are left out).
    public let shapeKey: [[Int]]
    /// Tokens per row for length-aware batching (1 for fixed-size models):
    /// the longest row where rows differ.
    public let length: Int
    /// Tokens of all rows together, what a packing backend computes on.
    public let tokens: Int
    public let arrival: ContinuousClock.Instant
    public let deadline: ContinuousClock.Instant?
    public let level: Int
    public var payload: Payload

    public init(sequence: UInt64, rows: Int, shapeKey: [[Int]] = [], length: Int = 1, tokens: Int? = nil,
                arrival: ContinuousClock.Instant, deadline: ContinuousClock.Instant? = nil, level: Int = 1, payload: Payload) {
        self.sequence = sequence
        self.rows = rows
        self.shapeKey = shapeKey
        self.length = length
        self.tokens = tokens ?? rows * length
        self.arrival = arrival
        self.deadline = deadline
        self.level = level
        self.payload = payload
    }
}

/// Triton's priority queue: one FIFO per priority level (level 1 first), each
/// with a second FIFO for requests delayed by a DELAY timeout action.
public struct RequestQueue<Payload> {
    struct Level {
        var pending: Deque<QueuedRequest<Payload>> = []
        var delayed: Deque<QueuedRequest<Payload>> = []
        var policy: QueuePolicy
        var count: Int { pending.count + delayed.count }
    }

    private(set) var levels: [Level]

    public init(levels: Int, policy: (Int) -> QueuePolicy) {
        self.levels = (1...max(levels, 1)).map { Level(policy: policy($0)) }
    }

    public var count: Int { levels.reduce(0) { $0 + $1.count } }
    public var isEmpty: Bool { levels.allSatisfy { $0.count == 0 } }

    /// Enqueues, or refuses when the level holds `max_queue_size` requests already.
    public mutating func enqueue(_ request: QueuedRequest<Payload>) throws {
        let index = request.level - 1
        let limit = levels[index].policy.maxQueueSize
        guard limit == 0 || levels[index].count < limit else {
            throw InferenceError.unavailable("Exceeds maximum queue size")
        }
        levels[index].pending.append(request)
    }

    /// Requests in the order the batcher considers them: by level, then
    /// pending before delayed, each FIFO.
    public var inWalkOrder: [QueuedRequest<Payload>] {
        levels.flatMap { Array($0.pending) + Array($0.delayed) }
    }

    /// Applies timeouts at `now`: REJECT requests are removed and returned; DELAY
    /// requests move behind every request of their level that has not expired.
    public mutating func expire(now: ContinuousClock.Instant) -> [QueuedRequest<Payload>] {
        var rejected: [QueuedRequest<Payload>] = []
        for index in levels.indices {
            var keep: Deque<QueuedRequest<Payload>> = []
            for request in levels[index].pending {
                guard let deadline = request.deadline, deadline <= now else { keep.append(request); continue }
                switch levels[index].policy.timeoutAction {
                case .reject: rejected.append(request)
                case .delay: levels[index].delayed.append(request)
                }
            }
            levels[index].pending = keep
            if levels[index].policy.timeoutAction == .reject {
                let expired = levels[index].delayed.filter { ($0.deadline.map { $0 <= now }) ?? false }
                rejected += expired
                levels[index].delayed.removeAll { ($0.deadline.map { $0 <= now }) ?? false }
            }
        }
        return rejected
    }

    /// The earliest deadline of a request that has not expired yet.
    public var nextDeadline: ContinuousClock.Instant? {
        levels.flatMap { $0.pending.compactMap(\.deadline) }.min()
    }

    /// The most urgent level holding a request (1 is the highest), nil when empty.
    public var mostUrgentLevel: Int? {
        levels.firstIndex { $0.count > 0 }.map { $0 + 1 }
    }

    /// Puts requests taken out for a batch back where they were in arrival
    /// order, ahead of anything that arrived after them. (A request that had
    /// been delayed by a DELAY timeout goes back among the pending ones.)
    public mutating func restore(_ requests: [QueuedRequest<Payload>]) {
        for request in requests.sorted(by: { $0.sequence < $1.sequence }) {
            let index = request.level - 1
            let position = levels[index].pending.firstIndex { $0.sequence > request.sequence } ?? levels[index].pending.endIndex
            levels[index].pending.insert(request, at: position)
        }
    }

    /// Removes and returns the requests with these sequence numbers, in the given order.
    public mutating func remove(_ sequences: [UInt64]) -> [QueuedRequest<Payload>] {
        let wanted = Set(sequences)
        var found: [UInt64: QueuedRequest<Payload>] = [:]
        for index in levels.indices {
            for request in levels[index].pending where wanted.contains(request.sequence) { found[request.sequence] = request }
            for request in levels[index].delayed where wanted.contains(request.sequence) { found[request.sequence] = request }
            levels[index].pending.removeAll { wanted.contains($0.sequence) }
            levels[index].delayed.removeAll { wanted.contains($0.sequence) }
        }
        return sequences.compactMap { found[$0] }
    }
}
