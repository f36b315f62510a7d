import Foundation
import InferenceCore
import Synchronization
import Testing
@testable import Scheduler

/// The pool every scheduler executes through: which instances compute, a
/// batch's timing on the injected clock and its result checks, the drain.
@Suite struct InstancePoolTests {
    let spec = batchingSpec(maxBatchSize: 4, batching: nil)

    @Test func aBatchIsTimedOnTheInjectedClockAndItsResultsChecked() async throws {
        let clock = ManualSchedulerClock()
        let pool = InstancePool<any ModelInstance>(spec: spec, instances: [RecordingInstance()], clock: clock)
        let batch = Batch(items: [try rowsRequest(spec, values: [1]), try rowsRequest(spec, values: [2])])
        pool.take(0)
        let began = clock.now
        let outcome = await pool.run(batch, on: 0, linking: []) { instance, batch in
            clock.advance(by: .milliseconds(7))   // the computation's time, on the test's clock
            return try instance.executeEach(batch)
        }
        pool.release(0)
        #expect(outcome.started == began && outcome.computed - outcome.started == .milliseconds(7))
        #expect(try outcome.result.get().count == 2)
        // A backend answering for another number of requests fails the batch, saying so.
        pool.take(0)
        let short = await pool.run(batch, on: 0, linking: []) { instance, batch in
            Array(try instance.executeEach(batch).prefix(1))
        }
        pool.release(0)
        guard case .failure(let error) = short.result else { Issue.record("a short answer was accepted"); return }
        #expect(error.message.contains("returned 1 results for a batch of 2 requests"))
    }

    @Test func instancesAreTakenAndReleasedOneAtATime() {
        let pool = InstancePool<any ModelInstance>(spec: spec, instances: [RecordingInstance(), RecordingInstance()],
                                                   clock: ManualSchedulerClock())
        #expect(pool.firstFree == 0)
        pool.take(0)
        #expect(pool.firstFree == 1 && pool.isBusy(0) && pool.computing == 1)
        pool.take(1)
        #expect(pool.firstFree == nil)
        pool.release(0)
        #expect(pool.firstFree == 0 && pool.computing == 1)
    }

    /// The drain waits for the instance computing, then ends the threads: a
    /// job sent afterwards is refused.
    @Test func theDrainWaitsForComputingInstancesThenStopsTheThreads() async throws {
        let gate = Gate()
        let pool = InstancePool<any ModelInstance>(spec: spec, instances: [RecordingInstance(gate: gate)], clock: ManualSchedulerClock())
        let batch = Batch(items: [try rowsRequest(spec, values: [3])])
        pool.take(0)
        let running = Task { await pool.run(batch, on: 0, linking: []) { instance, batch in try instance.executeEach(batch) } }
        let drained = Mutex(false)
        let drain = Task {
            await pool.drain()
            drained.withLock { $0 = true }
        }
        await eventually("the drain waits") { pool.isWaitingToDrain }
        #expect(!drained.withLock { $0 }, "the drain ended while an instance computed")
        gate.open()
        let outcome = await running.value
        #expect(try outcome.result.get().count == 1)
        pool.release(0)
        await drain.value
        #expect(drained.withLock { $0 })
        pool.take(0)
        let refused = await pool.run(on: 0) { _ in 1 }
        #expect(throws: CancellationError.self) { try refused.result.get() }
    }
}
