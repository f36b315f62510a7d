import InferenceCore
import Synchronization
import Testing
@testable import Scheduler

/// Sends one response per count of IN (its value), stopping when cancelled.
final class CountingInstance: DecoupledModelInstance, @unchecked Sendable {
    let sent = Mutex(0)
    let gate: Gate?
    init(gate: Gate? = nil) { self.gate = gate }

    func execute(_ request: ValidatedRequest, respond: ([Tensor]) -> Void, isCancelled: () -> Bool) throws {
        let count = try request.request.input(named: "IN")!.values(as: Int32.self)[0]
        for index in 0..<count {
            if index == 1 { gate?.wait() }
            if isCancelled() { return }
            respond([Tensor(name: "OUT", shape: [1], values: [index])])
            sent.withLock { $0 += 1 }
        }
    }
}

func decoupledSpec() -> ModelSpec {
    var spec = ModelSpec(name: "count", version: 1, backend: "test", maxBatchSize: 0,
                         inputs: [TensorSpec(name: "IN", dataType: .int32, dims: [1])],
                         outputs: [TensorSpec(name: "OUT", dataType: .int32, dims: [1])])
    spec.decoupled = true
    return spec
}

@Suite struct DecoupledSchedulerTests {
    func request(_ count: Int32) throws -> ValidatedRequest {
        try decoupledSpec().validate(InferenceRequest(modelName: "count", inputs: [Tensor(name: "IN", shape: [1], values: [count])]))
    }

    @Test func streamsEveryResponseInOrderThenEnds() async throws {
        let scheduler = DecoupledScheduler(spec: decoupledSpec(), instances: [CountingInstance()])
        var values: [Int32] = []
        for try await response in scheduler.inferStream(try request(4)) {
            values.append(try response.outputs[0].values(as: Int32.self)[0])
        }
        #expect(values == [0, 1, 2, 3])
        // Zero responses is an answer too.
        var none = 0
        for try await _ in scheduler.inferStream(try request(0)) { none += 1 }
        #expect(none == 0)
        await #expect(throws: InferenceError.self) { _ = try await scheduler.infer(try request(1)) }
        await scheduler.shutdown()
    }

    @Test func aCallerThatStopsReadingCancelsTheRest() async throws {
        let gate = Gate()
        let instance = CountingInstance(gate: gate)
        let scheduler = DecoupledScheduler(spec: decoupledSpec(), instances: [instance])
        for try await _ in scheduler.inferStream(try request(1000)) {
            break   // the stream ends here: the model must stop
        }
        gate.open()
        // The next request runs: the cancelled one gave its instance back.
        var values: [Int32] = []
        for try await response in scheduler.inferStream(try request(2)) {
            values.append(try response.outputs[0].values(as: Int32.self)[0])
        }
        #expect(values == [0, 1])
        #expect(instance.sent.withLock { $0 } < 10)
        await scheduler.shutdown()
    }
}
