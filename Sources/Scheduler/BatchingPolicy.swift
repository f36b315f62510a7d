import InferenceCore

/// What the batcher should do now.
public enum BatchDecision: Sendable, Equatable {
    /// Send these requests (by sequence number, in batch order) to a free instance.
    /// `saturated`: the batch cannot grow, so it may be formed ahead of a free instance.
    case dispatch([UInt64], saturated: Bool)
    /// Nothing to send yet; decide again at this instant or on the next arrival.
    case wait(until: ContinuousClock.Instant)
    /// The queue is empty.
    case idle
}

/// The dynamic batcher's decision, as a pure function of the queue and the
/// time: Triton's dynamic_batch_scheduler rules, plus a token budget with
/// length grouping and an adaptive delay. The loop that sleeps and dispatches
/// lives in `ModelScheduler`; everything it decides comes from here.
public struct BatchingPolicy: Sendable, Equatable {
    public var maxBatchSize: Int
    /// Sorted ascending; never empty (Triton fills in max_batch_size).
    public var preferredBatchSizes: [Int]
    public var maxQueueDelay: Duration
    public var maxBatchTokens: Int?
    public var tokenCost: TokenCost
    public var adaptiveQueueDelay: Bool

    public init(maxBatchSize: Int, preferredBatchSizes: [Int] = [], maxQueueDelay: Duration = .zero,
                maxBatchTokens: Int? = nil, tokenCost: TokenCost = .padded, adaptiveQueueDelay: Bool = false) {
        let largest = max(maxBatchSize, 1)
        self.maxBatchSize = largest
        let preferred = preferredBatchSizes.filter { $0 >= 1 && $0 <= largest }.sorted()
        self.preferredBatchSizes = preferred.isEmpty ? [largest] : preferred
        self.maxQueueDelay = maxQueueDelay
        self.maxBatchTokens = maxBatchTokens
        self.tokenCost = tokenCost
        self.adaptiveQueueDelay = adaptiveQueueDelay
    }

    var largestPreferred: Int { preferredBatchSizes.last! }

    /// - Parameters:
    ///   - queue: requests in walk order (priority level, then FIFO), expired ones already removed.
    ///   - arrivalsPerSecond: recent arrival rate, used only with `adaptiveQueueDelay`.
    public func decide<P>(_ queue: [QueuedRequest<P>], now: ContinuousClock.Instant,
                          arrivalsPerSecond: Double = 0) -> BatchDecision {
        guard let first = queue.first else { return .idle }
        let candidates = maxBatchTokens == nil ? queue : groupedByLength(queue, around: first)

        var chosen: [UInt64] = []
        var rows = 0
        var longest = 0
        var packedTokens = 0
        var bestPreferredCount = 0
        var stoppedEarly = false
        for request in candidates {
            if !chosen.isEmpty {
                // Adding this request would pass every preferred size: remember the
                // batch so far, but keep walking to see whether the delay lets us
                // send more (Triton marks the cursor here).
                if rows + request.rows > largestPreferred && bestPreferredCount == 0 {
                    bestPreferredCount = chosen.count
                }
                // Requests are never split across batches, and a batch never
                // passes max_batch_size: send what we have.
                if rows + request.rows > maxBatchSize { stoppedEarly = true; break }
                // Inputs whose shapes must match cannot share a batch otherwise.
                if request.shapeKey != first.shapeKey { stoppedEarly = true; break }
                if let budget = maxBatchTokens,
                   cost(rows: rows + request.rows, longest: max(longest, request.length),
                        packed: packedTokens + request.tokens) > budget {
                    stoppedEarly = true
                    break
                }
            }
            chosen.append(request.sequence)
            rows += request.rows
            longest = max(longest, request.length)
            packedTokens += request.tokens
            if preferredBatchSizes.contains(rows) { bestPreferredCount = chosen.count }
        }

        let oldest = candidates.prefix(chosen.count).map(\.arrival).min() ?? first.arrival
        let delayExceeded = maxQueueDelay > .zero && now - oldest >= maxQueueDelay

        // A preferred size is reached and the oldest request may still wait:
        // send exactly that batch; later requests start the next one.
        if bestPreferredCount > 0 && !delayExceeded {
            let preferredRows = candidates.prefix(bestPreferredCount).reduce(0) { $0 + $1.rows }
            // It cannot grow if it is the largest preferred size, or if the
            // requests after it would not fit below the largest preferred size.
            let saturated = preferredRows == largestPreferred || bestPreferredCount < chosen.count || stoppedEarly
            return .dispatch(Array(chosen.prefix(bestPreferredCount)), saturated: saturated)
        }
        // The batch cannot grow (next request does not fit, or the largest
        // preferred size is reached): waiting gains nothing.
        if stoppedEarly || rows >= largestPreferred {
            return .dispatch(chosen, saturated: true)
        }
        // Triton's default delay of 0, or the oldest request has waited long
        // enough: send everything pending, even past a preferred size.
        if maxQueueDelay == .zero || delayExceeded {
            return .dispatch(chosen, saturated: false)
        }
        let waitUntil = oldest + maxQueueDelay
        // Adaptive delay: waiting is only worth it if another request is
        // expected before the delay runs out.
        if adaptiveQueueDelay {
            let remaining = Double((waitUntil - now).nanosecondsClamped) / 1e9
            if arrivalsPerSecond * remaining < 1 {
                return .dispatch(chosen, saturated: false)
            }
        }
        return .wait(until: waitUntil)
    }

    private func cost(rows: Int, longest: Int, packed: Int) -> Int {
        switch tokenCost {
        case .padded: rows * longest
        case .packed: packed
        }
    }

    /// The oldest request first, then the rest of the same level ordered by how
    /// close their length is to it (stable, so equal lengths stay FIFO), then
    /// lower levels likewise. Padding waste stays low; nobody overtakes the oldest.
    private func groupedByLength<P>(_ queue: [QueuedRequest<P>], around first: QueuedRequest<P>) -> [QueuedRequest<P>] {
        let rest = queue.dropFirst().enumerated().sorted { a, b in
            let keyA = (a.element.level, abs(a.element.length - first.length), a.offset)
            let keyB = (b.element.level, abs(b.element.length - first.length), b.offset)
            return keyA < keyB
        }.map(\.element)
        return [first] + rest
    }
}
