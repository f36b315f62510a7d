import InferenceCore
import Testing
@testable import Scheduler

/// The decision function, driven with a manual clock: every instant is t0 plus
/// an offset the test chooses, and nothing sleeps.
let t0 = ContinuousClock.now

func at(_ milliseconds: Int) -> ContinuousClock.Instant { t0 + .milliseconds(milliseconds) }

func queued(_ sequence: UInt64, rows: Int = 1, shape: [[Int]] = [[16]], length: Int = 1,
            arrivedAt ms: Int = 0, level: Int = 1) -> QueuedRequest<Void> {
    QueuedRequest(sequence: sequence, rows: rows, shapeKey: shape, length: length, arrival: at(ms), level: level, payload: ())
}

func ones(_ count: Int, arrivedAt ms: Int = 0) -> [QueuedRequest<Void>] {
    (0..<count).map { queued(UInt64($0), arrivedAt: ms) }
}

@Suite struct BatchingPolicyTests {
    @Test func emptyQueueIsIdle() {
        #expect(BatchingPolicy(maxBatchSize: 8).decide([QueuedRequest<Void>](), now: t0) == .idle)
    }

    @Test func biggestReachablePreferredSizeIsChosen() {
        let policy = BatchingPolicy(maxBatchSize: 8, preferredBatchSizes: [2, 4, 6], maxQueueDelay: .milliseconds(10))
        // Five single-row requests reach 2 and 4; 6 is out of reach, so 4 wins.
        #expect(policy.decide(ones(5), now: at(1)) == .dispatch([0, 1, 2, 3], saturated: true))
    }

    @Test func preferredSizeReachedEarlyIsSentWithoutWaitingForTheDelay() {
        let policy = BatchingPolicy(maxBatchSize: 8, preferredBatchSizes: [4], maxQueueDelay: .seconds(1))
        #expect(policy.decide(ones(4), now: at(1)) == .dispatch([0, 1, 2, 3], saturated: true))
    }

    @Test func belowPreferredSizeTheBatcherWaitsForTheOldestRequestsDelay() {
        let policy = BatchingPolicy(maxBatchSize: 8, preferredBatchSizes: [4], maxQueueDelay: .milliseconds(10))
        let queue = [queued(0, arrivedAt: 0), queued(1, arrivedAt: 3), queued(2, arrivedAt: 6)]
        #expect(policy.decide(queue, now: at(7)) == .wait(until: at(10)))
    }

    @Test func afterTheDelayEverythingPendingIsSent() {
        let policy = BatchingPolicy(maxBatchSize: 8, preferredBatchSizes: [4], maxQueueDelay: .milliseconds(10))
        #expect(policy.decide(ones(3), now: at(10)) == .dispatch([0, 1, 2], saturated: false))
    }

    @Test func afterTheDelayABatchMayPassThePreferredSizeUpToTheMaximum() {
        let policy = BatchingPolicy(maxBatchSize: 8, preferredBatchSizes: [4], maxQueueDelay: .milliseconds(10))
        // Rows 3 + 3 pass the preferred 4; before the delay the first request goes alone,
        // after it both go (Triton PR #2125).
        let queue = [queued(0, rows: 3), queued(1, rows: 3)]
        #expect(policy.decide(queue, now: at(1)) == .dispatch([0], saturated: true))
        #expect(policy.decide(queue, now: at(10)) == .dispatch([0, 1], saturated: true))
    }

    @Test func zeroDelaySendsWhateverIsQueued() {
        let policy = BatchingPolicy(maxBatchSize: 8)
        #expect(policy.decide(ones(3), now: t0) == .dispatch([0, 1, 2], saturated: false))
    }

    @Test func batchesNeverPassMaxBatchSizeNorSplitRequests() {
        let policy = BatchingPolicy(maxBatchSize: 8, maxQueueDelay: .milliseconds(10))
        let queue = [queued(0, rows: 5), queued(1, rows: 4), queued(2, rows: 1)]
        #expect(policy.decide(queue, now: t0) == .dispatch([0], saturated: true))
    }

    @Test func differentShapesAreNotBatched() {
        let policy = BatchingPolicy(maxBatchSize: 8)
        let queue = [queued(0, shape: [[12]]), queued(1, shape: [[12]]), queued(2, shape: [[30]]), queued(3, shape: [[12]])]
        #expect(policy.decide(queue, now: t0) == .dispatch([0, 1], saturated: true))
    }

    @Test func equalShapeKeysAreBatched() {
        // The scheduler blanks variable dims when the backend pads or the input is
        // ragged, so those requests arrive here with equal keys.
        let policy = BatchingPolicy(maxBatchSize: 8)
        let queue = [queued(0, shape: [[-1]], length: 12), queued(1, shape: [[-1]], length: 30)]
        #expect(policy.decide(queue, now: t0) == .dispatch([0, 1], saturated: false))
    }

    @Test func higherPriorityIsServedFirst() {
        var queue = RequestQueue<Void>(levels: 2) { _ in QueuePolicy() }
        try? queue.enqueue(queued(0, level: 2))
        try? queue.enqueue(queued(1, level: 2))
        try? queue.enqueue(queued(2, level: 1))
        let policy = BatchingPolicy(maxBatchSize: 2, maxQueueDelay: .milliseconds(5))
        #expect(queue.inWalkOrder.map(\.sequence) == [2, 0, 1])
        #expect(policy.decide(queue.inWalkOrder, now: t0) == .dispatch([2, 0], saturated: true))
    }

    @Test func tokenBudgetCountsPaddingAndGroupsByLength() {
        let policy = BatchingPolicy(maxBatchSize: 8, maxBatchTokens: 256, tokenCost: .padded)
        // Oldest first (length 30), then the closest lengths: 32 and 28; 120 would
        // pad the batch past the budget (4 x 120 > 256).
        let queue = [queued(0, length: 30), queued(1, length: 120), queued(2, length: 32), queued(3, length: 28)]
        #expect(policy.decide(queue, now: t0) == .dispatch([0, 2, 3], saturated: true))
    }

    @Test func packedTokenBudgetCountsRealTokens() {
        let policy = BatchingPolicy(maxBatchSize: 8, maxBatchTokens: 200, tokenCost: .packed)
        let queue = [queued(0, length: 30), queued(1, length: 120), queued(2, length: 60)]
        // 30 + 60 + 120 = 210 > 200: the longest waits.
        #expect(policy.decide(queue, now: t0) == .dispatch([0, 2], saturated: true))
    }

    @Test func theOldestRequestAlwaysGoesEvenOverBudget() {
        let policy = BatchingPolicy(maxBatchSize: 8, maxBatchTokens: 64)
        #expect(policy.decide([queued(0, length: 500)], now: t0) == .dispatch([0], saturated: false))
    }

    @Test func adaptiveDelayWaitsOnlyWhenAnotherArrivalIsExpected() {
        let policy = BatchingPolicy(maxBatchSize: 8, maxQueueDelay: .milliseconds(10), adaptiveQueueDelay: true)
        // 10 requests/s: another arrival within the 10 ms left is unlikely.
        #expect(policy.decide(ones(1), now: t0, arrivalsPerSecond: 10) == .dispatch([0], saturated: false))
        // 2,000 requests/s: about 20 more are expected, so waiting pays.
        #expect(policy.decide(ones(1), now: t0, arrivalsPerSecond: 2000) == .wait(until: at(10)))
    }
}

@Suite struct RequestQueueTests {
    @Test func restoredRequestsGoBackInArrivalOrder() throws {
        let now = ContinuousClock.now
        var queue = RequestQueue<Void>(levels: 2) { _ in QueuePolicy() }
        for (sequence, level) in [(1, 2), (2, 2), (3, 2), (4, 1), (5, 2)] {
            try queue.enqueue(QueuedRequest(sequence: UInt64(sequence), rows: 1, arrival: now, level: level, payload: ()))
        }
        #expect(queue.mostUrgentLevel == 1)
        let taken = queue.remove([2, 3])
        queue.restore(taken)
        #expect(queue.inWalkOrder.map(\.sequence) == [4, 1, 2, 3, 5])
        _ = queue.remove([4])
        #expect(queue.mostUrgentLevel == 2)
        _ = queue.remove([1, 2, 3, 5])
        #expect(queue.mostUrgentLevel == nil)
    }

    @Test func maxQueueSizeRejectsExactlyTheOverflow() {
        var queue = RequestQueue<Void>(levels: 1) { _ in QueuePolicy(maxQueueSize: 3) }
        var refused = 0
        for sequence in 0..<5 {
            do { try queue.enqueue(queued(UInt64(sequence))) } catch let error as InferenceError {
                #expect(error == .unavailable("Exceeds maximum queue size"))
                refused += 1
            } catch {}
        }
        #expect(queue.count == 3)
        #expect(refused == 2)
    }

    @Test func rejectTimeoutsAreRemovedAndReturned() {
        var queue = RequestQueue<Void>(levels: 1) { _ in QueuePolicy(timeoutAction: .reject) }
        try? queue.enqueue(QueuedRequest(sequence: 0, rows: 1, arrival: t0, deadline: at(5), payload: ()))
        try? queue.enqueue(QueuedRequest(sequence: 1, rows: 1, arrival: t0, deadline: at(50), payload: ()))
        #expect(queue.nextDeadline == at(5))
        #expect(queue.expire(now: at(4)).isEmpty)
        #expect(queue.expire(now: at(5)).map(\.sequence) == [0])
        #expect(queue.inWalkOrder.map(\.sequence) == [1])
        #expect(queue.nextDeadline == at(50))
    }

    @Test func delayTimeoutsMoveBehindRequestsThatHaveNotExpired() {
        var queue = RequestQueue<Void>(levels: 1) { _ in QueuePolicy(timeoutAction: .delay) }
        try? queue.enqueue(QueuedRequest(sequence: 0, rows: 1, arrival: t0, deadline: at(5), payload: ()))
        try? queue.enqueue(QueuedRequest(sequence: 1, rows: 1, arrival: t0, payload: ()))
        #expect(queue.expire(now: at(6)).isEmpty)
        #expect(queue.inWalkOrder.map(\.sequence) == [1, 0])
    }

    @Test func effectiveTimeoutMayOnlyBeLowered() {
        let policy = QueuePolicy(defaultTimeout: .milliseconds(100), allowTimeoutOverride: true)
        #expect(policy.effectiveTimeout(requested: .milliseconds(10)) == .milliseconds(10))
        #expect(policy.effectiveTimeout(requested: .seconds(5)) == .milliseconds(100))
        #expect(QueuePolicy(defaultTimeout: .milliseconds(100)).effectiveTimeout(requested: .milliseconds(10)) == .milliseconds(100))
        #expect(QueuePolicy(allowTimeoutOverride: true).effectiveTimeout(requested: .milliseconds(7)) == .milliseconds(7))
    }

    @Test func priorityZeroOrOutOfRangeMeansTheDefaultLevel() {
        let spec = DynamicBatchingSpec(preferredBatchSizes: [], maxQueueDelay: .zero, priorityLevels: 3, defaultPriorityLevel: 2)
        #expect(spec.level(forPriority: 0) == 2)
        #expect(spec.level(forPriority: 1) == 1)
        #expect(spec.level(forPriority: 3) == 3)
        #expect(spec.level(forPriority: 9) == 2)
    }
}
