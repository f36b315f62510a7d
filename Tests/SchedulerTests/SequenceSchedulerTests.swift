import InferenceCore
import Synchronization
import Testing
@testable import Scheduler

/// Returns the control inputs the scheduler filled and the state it carried:
/// OUT = [START, END, READY, CORRID, STATE + IN], NEXT_STATE = STATE + IN.
final class ControlEchoInstance: ModelInstance, @unchecked Sendable {
    let slots = Mutex<[Int]>([])
    func execute(_ batch: Batch) throws -> [[Tensor]] {
        try batch.items.map { item in
            func value(_ name: String) throws -> Int32 {
                guard let tensor = item.request.input(named: name) else { throw InferenceError.internal("no \(name)") }
                return tensor.dataType == .uint64 ? Int32(try tensor.values(as: UInt64.self)[0]) : try tensor.values(as: Int32.self)[0]
            }
            slots.withLock { $0.append(item.sequenceSlot ?? -1) }
            let next = try value("STATE") + value("IN")
            return [Tensor(name: "OUT", shape: [1, 5], values: [try value("START"), try value("END"), try value("READY"), try value("CORRID"), next]),
                    Tensor(name: "NEXT_STATE", shape: [1, 1], values: [next])]
        }
    }
}

func sequenceSpec(idle: Duration = .seconds(1)) -> (ModelSpec, SequenceBatchingSpec) {
    let sequence = SequenceBatchingSpec(
        strategy: .direct, maxSequenceIdle: idle,
        controls: [SequenceControl(kind: .start, tensorName: "START", values: .int32(0, 1), dataType: .int32),
                   SequenceControl(kind: .end, tensorName: "END", values: .int32(0, 1), dataType: .int32),
                   SequenceControl(kind: .ready, tensorName: "READY", values: .int32(0, 1), dataType: .int32),
                   SequenceControl(kind: .correlationID, tensorName: "CORRID", values: nil, dataType: .uint64)],
        states: [SequenceState(inputName: "STATE", outputName: "NEXT_STATE", dataType: .int32, dims: [1],
                               initialBytes: [100, 0, 0, 0])])
    var spec = ModelSpec(name: "seq", version: 1, backend: "test", maxBatchSize: 2,
                         inputs: [TensorSpec(name: "IN", dataType: .int32, dims: [1])],
                         outputs: [TensorSpec(name: "OUT", dataType: .int32, dims: [5])])
    spec.sequenceBatching = sequence
    return (spec, sequence)
}

func step(_ spec: ModelSpec, _ id: UInt64, _ value: Int32, start: Bool = false, end: Bool = false) throws -> ValidatedRequest {
    try spec.validate(InferenceRequest(modelName: spec.name, inputs: [Tensor(name: "IN", shape: [1, 1], values: [value])],
                                       parameters: ["sequence_id": .uint64(id), "sequence_start": .bool(start), "sequence_end": .bool(end)]))
}

@Suite struct SequenceSchedulerTests {
    @Test func fillsControlsAndCarriesStateBetweenRequests() async throws {
        let (spec, sequence) = sequenceSpec()
        let scheduler = SequenceScheduler(spec: spec, sequence: sequence, instances: [ControlEchoInstance()], clock: ManualSchedulerClock())
        func out(_ request: ValidatedRequest) async throws -> [Int32] {
            try await scheduler.infer(request).outputs[0].values(as: Int32.self)
        }
        // START, the initial state 100, then the state each response left.
        #expect(try await out(step(spec, 42, 1, start: true)) == [1, 0, 1, 42, 101])
        #expect(try await out(step(spec, 42, 2)) == [0, 0, 1, 42, 103])
        #expect(try await out(step(spec, 42, 3, end: true)) == [0, 1, 1, 42, 106])
        // Ended: a new START begins from the initial state again.
        #expect(try await out(step(spec, 42, 5, start: true)) == [1, 0, 1, 42, 105])
        await scheduler.shutdown()
    }

    @Test func anIdleSequenceIsReleasedByTheClockNotBySleeping() async throws {
        let (spec, sequence) = sequenceSpec(idle: .seconds(1))
        let clock = ManualSchedulerClock()
        let scheduler = SequenceScheduler(spec: spec, sequence: sequence, instances: [ControlEchoInstance()], clock: clock)
        _ = try await scheduler.infer(step(spec, 7, 1, start: true))
        clock.advance(by: .milliseconds(999))
        _ = try await scheduler.infer(step(spec, 7, 1))
        clock.advance(by: .seconds(1))
        await #expect(throws: InferenceError.invalidArgument(
            "inference request for sequence 7 to model 'seq' must specify the START flag on the first request of the sequence")) {
            _ = try await scheduler.infer(step(spec, 7, 1))
        }
        await scheduler.shutdown()
    }

    @Test func refusesTritonsBadSequenceRequests() async throws {
        let (spec, sequence) = sequenceSpec()
        let scheduler = SequenceScheduler(spec: spec, sequence: sequence, instances: [ControlEchoInstance()], clock: ManualSchedulerClock())
        await #expect(throws: InferenceError.invalidArgument(
            "inference request to model 'seq' must specify a non-zero or non-empty correlation ID")) {
            _ = try await scheduler.infer(try spec.validate(InferenceRequest(modelName: "seq", inputs: [Tensor(name: "IN", shape: [1, 1], values: [Int32(1)])])))
        }
        let stringID = try spec.validate(InferenceRequest(modelName: "seq", inputs: [Tensor(name: "IN", shape: [1, 1], values: [Int32(1)])],
                                                          parameters: ["sequence_id": .string("abc"), "sequence_start": .bool(true)]))
        await #expect(throws: InferenceError.invalidArgument(
            "sequence batching control 'CORRID' data-type is 'BYTES', but model 'seq' expects 'UINT64'")) {
            _ = try await scheduler.infer(stringID)
        }
        await scheduler.shutdown()
    }
}
