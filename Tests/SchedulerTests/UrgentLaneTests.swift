import Foundation
import InferenceCore
import Synchronization
import Testing
@testable import Scheduler

/// An instance that stands for a long computation: it runs step after step,
/// yielding to urgent work between steps, until the test lets it finish.
final class SteppingInstance: ModelInstance {
    private let finishing = Mutex(false)
    /// Each batch's first IN values, as the instance finished them.
    let finished = Mutex<[[Int32]]>([])
    let started = Mutex(0)
    var yieldsToUrgentWork: Bool { true }

    init(finishAtOnce: Bool = false) { finishing.withLock { $0 = finishAtOnce } }

    func finish() { finishing.withLock { $0 = true } }

    func execute(_ batch: Batch) throws -> [[Tensor]] {
        started.withLock { $0 += 1 }
        // The steps of a computation, each followed by a yield point.
        while !finishing.withLock({ $0 }) {
            batch.urgentWork?.yield()
            usleep(200)
        }
        let firsts = batch.items.compactMap { try? $0.request.input(named: "IN")?.values(as: Int32.self).first }
        finished.withLock { $0.append(firsts) }
        return batch.items.map { item in
            var output = item.request.input(named: "IN")!
            output.name = "OUT"
            return [output]
        }
    }
}

@Suite(.serialized) struct UrgentLaneTests {
    func prioritySpec(preemption: Bool = true, levels: Int = 2) -> ModelSpec {
        batchingSpec(maxBatchSize: 4, batching: DynamicBatchingSpec(
            preferredBatchSizes: [4], maxQueueDelay: .zero, priorityLevels: levels, defaultPriorityLevel: levels,
            priorityPreemption: preemption))
    }

    /// A bulk batch computes; a level-1 request runs at once on the urgent lane
    /// (alone: a bulk request queued meanwhile does not ride along) while the
    /// bulk batch pauses, and is answered before the bulk batch finishes.
    @Test func anUrgentRequestOvertakesTheComputingBatch() async throws {
        let spec = prioritySpec()
        let bulk = SteppingInstance(), lane = SteppingInstance()
        let scheduler = ModelScheduler(spec: spec, instances: [bulk], urgentLane: lane)
        let first = Task { try await scheduler.infer(try rowsRequest(spec, values: [1])) }
        await eventually("bulk batch computing") { bulk.started.withLock { $0 } == 1 }
        let queued = Task { try await scheduler.infer(try rowsRequest(spec, values: [2])) }
        await eventually("bulk request 2 queued") { await scheduler.queuedCount == 1 }
        #expect(await !scheduler.isUrgentLaneBusy, "a request of the computing batch's level takes no lane")

        let urgent = Task { try await scheduler.infer(try rowsRequest(spec, values: [99], priority: 1)) }
        await eventually("urgent batch on the lane") { lane.started.withLock { $0 } == 1 }
        await eventually("bulk batch paused") { scheduler.urgentPauseCount >= 1 }
        lane.finish()
        let answer = try await urgent.value
        #expect(try answer.outputs[0].values(as: Int32.self) == [99, 99])
        #expect(bulk.finished.withLock { $0 }.isEmpty, "the urgent request was answered before the bulk batch finished")
        #expect(lane.finished.withLock { $0 } == [[99]])

        bulk.finish()
        _ = try await (first.value, queued.value)
        #expect(bulk.finished.withLock { $0 } == [[1], [2]])
        #expect(scheduler.statistics().success.count == 3)
        await scheduler.shutdown()
    }

    /// While the lane is busy, further urgent requests queue and run there next.
    @Test func urgentRequestsWaitForTheLaneNotForBulk() async throws {
        let spec = prioritySpec()
        let bulk = SteppingInstance(), lane = SteppingInstance()
        let scheduler = ModelScheduler(spec: spec, instances: [bulk], urgentLane: lane)
        let first = Task { try await scheduler.infer(try rowsRequest(spec, values: [1])) }
        await eventually("bulk batch computing") { bulk.started.withLock { $0 } == 1 }
        let a = Task { try await scheduler.infer(try rowsRequest(spec, values: [10], priority: 1)) }
        await eventually("urgent 10 on the lane") { lane.started.withLock { $0 } == 1 }
        let b = Task { try await scheduler.infer(try rowsRequest(spec, values: [11], priority: 1)) }
        await eventually("urgent 11 queued") { await scheduler.queuedCount == 1 }
        lane.finish()
        _ = try await (a.value, b.value)
        #expect(lane.finished.withLock { $0 } == [[10], [11]])
        #expect(bulk.finished.withLock { $0 }.isEmpty)
        bulk.finish()
        _ = try await first.value
        await scheduler.shutdown()
    }

    /// Where urgent batches preempt, a batch holds one level: a free instance
    /// takes the urgent request alone, not filled up with the bulk rows
    /// waiting out the queue delay.
    @Test func batchesHoldOneLevelWhereUrgentBatchesPreempt() async throws {
        let spec = batchingSpec(maxBatchSize: 4, batching: DynamicBatchingSpec(
            preferredBatchSizes: [4], maxQueueDelay: .milliseconds(100), priorityLevels: 2, defaultPriorityLevel: 2))
        let clock = ManualSchedulerClock()
        let instance = SteppingInstance(finishAtOnce: true)
        let scheduler = ModelScheduler(spec: spec, instances: [instance], urgentLane: SteppingInstance(finishAtOnce: true), clock: clock)
        let bulk = Task { try await scheduler.infer(try rowsRequest(spec, values: [2])) }
        await eventually("bulk request queued") { await scheduler.queuedCount == 1 }
        let urgent = Task { try await scheduler.infer(try rowsRequest(spec, values: [99], priority: 1)) }
        await eventually("urgent request queued") { await scheduler.queuedCount == 2 }
        clock.advance(by: .milliseconds(100))
        _ = try await (bulk.value, urgent.value)
        #expect(instance.finished.withLock { $0 } == [[99], [2]])
        await scheduler.shutdown()
    }

    /// The lane exists only with several levels, preemption on, and instances that yield.
    @Test(arguments: [
        (2, true, true, true), (1, true, true, false), (2, false, true, false), (2, true, false, false),
    ])
    func theLaneNeedsLevelsPreemptionAndYieldingInstances(levels: Int, preemption: Bool, yields: Bool, expected: Bool) {
        let spec = prioritySpec(preemption: preemption, levels: levels)
        let instance: any ModelInstance = yields ? SteppingInstance() : RecordingInstance()
        #expect(ModelScheduler.preempts(spec, instances: [instance]) == expected)
    }

    @Test func theGatePausesOnlyWhileUrgentWorkRuns() async {
        let gate = UrgentWorkGate()
        gate.yield()   // nothing urgent: returns at once
        #expect(gate.pauseCount == 0)
        gate.begin()
        let resumed = Mutex(false)
        let paused = Thread {
            gate.yield()
            resumed.withLock { $0 = true }
        }
        paused.start()
        await eventually("paused") { gate.pauseCount == 1 }
        #expect(!resumed.withLock { $0 })
        gate.end()
        await eventually("resumed") { resumed.withLock { $0 } }
        #expect(!gate.isUrgentWorkRunning)
    }
}
