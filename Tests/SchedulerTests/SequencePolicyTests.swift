import InferenceCore
import Testing
@testable import Scheduler

/// The sequence batcher's decisions, driven with explicit instants.
@Suite struct SequencePolicyTests {
    typealias Policy = SequencePolicy<String>
    var serial: UInt64 = 0

    mutating func request(_ id: UInt64, start: Bool = false, end: Bool = false, at ms: Int = 0) -> Policy.Request {
        serial += 1
        return Policy.Request(serial: serial, flags: SequenceFlags(correlation: .number(id), start: start, end: end),
                              arrival: at(ms), payload: "\(id)")
    }

    @Test mutating func directGivesEachSequenceItsOwnSlotAndBacklogsTheRest() throws {
        // 2 instances x 1 slot (max_batch_size 1): two sequences run, the third waits.
        var policy = Policy(strategy: .direct, instances: 2, maxBatchSize: 1, idleTimeout: .seconds(1))
        try policy.submit(request(1, start: true), now: at(0), model: "m")
        try policy.submit(request(2, start: true), now: at(0), model: "m")
        try policy.submit(request(3, start: true), now: at(0), model: "m")
        #expect(policy.backlog.count == 1)
        #expect(Set(policy.sequences.values.compactMap(\.slot?.instance)) == [0, 1])
        guard case .dispatch(let first) = policy.decide(instance: 0, now: at(0)) else { Issue.record("nothing to run"); return }
        let taken = policy.take(first)
        #expect(taken.count == 1)
        // Sequence 1 ends: its slot passes to the backlogged sequence 3.
        try policy.submit(request(taken[0].request.flags.correlation == .number(1) ? 1 : 2, end: true), now: at(1), model: "m")
        policy.finished(sequence: taken[0].sequence, now: at(2))
        guard case .dispatch(let second) = policy.decide(instance: 0, now: at(2)) else { Issue.record("the END did not run"); return }
        let end = policy.take(second)
        policy.finished(sequence: end[0].sequence, now: at(3))
        #expect(policy.backlog.isEmpty)
        #expect(policy.sequences.values.contains { $0.correlation == .number(3) && $0.slot?.instance == 0 })
    }

    @Test mutating func directBatchesOneRequestPerSlotInSlotOrder() throws {
        var policy = Policy(strategy: .direct, instances: 1, maxBatchSize: 4, idleTimeout: .seconds(1))
        for id in 1...3 { try policy.submit(request(UInt64(id), start: true), now: at(0), model: "m") }
        try policy.submit(request(1), now: at(0), model: "m")
        guard case .dispatch(let serials) = policy.decide(instance: 0, now: at(0)) else { Issue.record("no batch"); return }
        let taken = policy.take(serials)
        // Never two requests of one sequence in a batch.
        #expect(taken.map(\.request.flags.correlation) == [.number(1), .number(2), .number(3)])
        #expect(taken.map(\.slot.index) == [0, 1, 2])
        // The second request of sequence 1 waits for its first to finish.
        #expect(policy.decide(instance: 0, now: at(0)) == .idle)
        policy.finished(sequence: taken[0].sequence, now: at(1))
        guard case .dispatch(let next) = policy.decide(instance: 0, now: at(1)) else { Issue.record("no next"); return }
        #expect(policy.take(next).map(\.request.flags.correlation) == [.number(1)])
    }

    @Test mutating func aRequestWithoutStartForAnUnknownSequenceIsRefused() throws {
        var policy = Policy(strategy: .direct, instances: 1, maxBatchSize: 2, idleTimeout: .seconds(1))
        #expect(throws: InferenceError.invalidArgument(
            "inference request for sequence 7 to model 'm' must specify the START flag on the first request of the sequence")) {
            try policy.submit(request(7), now: at(0), model: "m")
        }
        // END closes the sequence at once: a second END finds no sequence.
        try policy.submit(request(8, start: true, end: true), now: at(0), model: "m")
        #expect(throws: InferenceError.self) { try policy.submit(request(8, end: true), now: at(0), model: "m") }
    }

    @Test mutating func aStartOnAnOpenSequenceRestartsItInItsSlot() throws {
        var policy = Policy(strategy: .direct, instances: 2, maxBatchSize: 1, idleTimeout: .seconds(1))
        try policy.submit(request(1, start: true), now: at(0), model: "m")
        let slot = policy.sequences.values.first?.slot
        try policy.submit(request(1, start: true), now: at(1), model: "m")
        // Same sequence, same slot, queued behind its first request: never two at once.
        #expect(policy.sequences.count == 1 && policy.sequences.values.first?.slot == slot)
        #expect(policy.sequences.values.first?.pending.count == 2)
    }

    @Test mutating func anIdleSequenceIsReleasedAndItsSlotReused() throws {
        var policy = Policy(strategy: .direct, instances: 1, maxBatchSize: 1, idleTimeout: .milliseconds(100))
        try policy.submit(request(1, start: true), now: at(0), model: "m")
        guard case .dispatch(let serials) = policy.decide(instance: 0, now: at(0)) else { Issue.record("no batch"); return }
        let taken = policy.take(serials)
        policy.finished(sequence: taken[0].sequence, now: at(10))
        try policy.submit(request(2, start: true), now: at(20), model: "m")
        #expect(policy.backlog.count == 1)
        #expect(policy.nextIdleDeadline == at(110))
        #expect(policy.expireIdle(now: at(109)).isEmpty)
        #expect(policy.expireIdle(now: at(110)) == [.number(1)])
        // The backlogged sequence took the slot; sequence 1 needs START again.
        #expect(policy.backlog.isEmpty)
        #expect(throws: InferenceError.self) { try policy.submit(request(1), now: at(111), model: "m") }
    }

    @Test mutating func oldestTakesTheOldestHeadsOfDistinctSequencesAndWaitsForMore() throws {
        let strategy = SequenceBatchingSpec.Strategy.oldest(maxCandidateSequences: 8, preferredBatchSizes: [3], maxQueueDelay: .milliseconds(10))
        var policy = Policy(strategy: strategy, instances: 1, maxBatchSize: 4, idleTimeout: .seconds(1))
        try policy.submit(request(1, start: true, at: 0), now: at(0), model: "m")
        try policy.submit(request(1, at: 1), now: at(1), model: "m")
        try policy.submit(request(2, start: true, at: 2), now: at(2), model: "m")
        // Two sequences ready, preferred 3: wait until the oldest has waited 10 ms.
        #expect(policy.decide(instance: 0, now: at(5)) == .wait(until: at(10)))
        try policy.submit(request(3, start: true, at: 6), now: at(6), model: "m")
        guard case .dispatch(let serials) = policy.decide(instance: 0, now: at(6)) else { Issue.record("no batch"); return }
        let taken = policy.take(serials)
        #expect(taken.map(\.request.flags.correlation) == [.number(1), .number(2), .number(3)])
        // Past the delay a smaller batch goes.
        for item in taken { policy.finished(sequence: item.sequence, now: at(7)) }
        #expect(policy.decide(instance: 0, now: at(7)) == .wait(until: at(11)))
        guard case .dispatch(let late) = policy.decide(instance: 0, now: at(11)) else { Issue.record("no late batch"); return }
        #expect(policy.take(late).map(\.request.flags.correlation) == [.number(1)])
    }
}
