import Foundation
import InferenceCore

/// Triton's decoupled example "repeat_int32": for each element of IN, after
/// waiting DELAY[i] milliseconds, one response with OUT = IN[i] and IDX = i;
/// then the request ends (the final flag, with no response of its own).
/// WAIT is how long the request holds the instance at least, in milliseconds
/// (Triton's repeat releases the request after WAIT while its responses go on;
/// here the instance is held until both are done).
public struct RepeatBackend: ModelBackend {
    public let name = "repeat"
    public init() {}

    public func validate(_ spec: ModelSpec) throws {
        guard spec.decoupled else {
            throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(name)' needs model_transaction_policy { decoupled: true }")
        }
        let inputs = Dictionary(uniqueKeysWithValues: spec.inputs.map { ($0.name, $0.dataType) })
        let outputs = Dictionary(uniqueKeysWithValues: spec.outputs.map { ($0.name, $0.dataType) })
        guard inputs["IN"] == .int32, inputs["DELAY"] == .uint32, inputs["WAIT"] == .uint32,
              outputs["OUT"] == .int32, outputs["IDX"] == .uint32 else {
            throw InferenceError.invalidArgument(
                "model '\(spec.name)': backend '\(name)' needs inputs IN (INT32), DELAY (UINT32), WAIT (UINT32) and outputs OUT (INT32), IDX (UINT32)")
        }
    }

    public func makeInstance(for spec: ModelSpec, index: Int) throws -> any ModelInstance { RepeatInstance() }
}

final class RepeatInstance: DecoupledModelInstance {
    func execute(_ request: ValidatedRequest, respond: ([Tensor]) -> Void, isCancelled: () -> Bool) throws {
        let began = ContinuousClock.now
        guard let input = request.request.input(named: "IN"), let delay = request.request.input(named: "DELAY") else {
            throw InferenceError.invalidArgument("repeat: IN and DELAY are required")
        }
        guard input.shape == delay.shape else {
            throw InferenceError.invalidArgument(
                "expected IN and DELAY shape to match, got \(ShapeMath.format(input.shape)) and \(ShapeMath.format(delay.shape))")
        }
        let values = try input.values(as: Int32.self)
        let delays = try delay.values(as: UInt32.self)
        let wait = try request.request.input(named: "WAIT")?.values(as: UInt32.self).first ?? 0
        // A test model: a request may not hold its instance for hours.
        guard delays.allSatisfy({ $0 <= 60_000 }), wait <= 60_000 else {
            throw InferenceError.invalidArgument("repeat: DELAY and WAIT values must be at most 60000 ms")
        }
        for (index, value) in values.enumerated() {
            // Sleep in short steps so a cancelled request stops promptly.
            let due = ContinuousClock.now + .milliseconds(Int64(delays[index]))
            while ContinuousClock.now < due, !isCancelled() { Thread.sleep(forTimeInterval: 0.002) }
            if isCancelled() { return }
            respond([Tensor(name: "OUT", shape: [1], values: [value]), Tensor(name: "IDX", shape: [1], values: [UInt32(index)])])
        }
        let held = began + .milliseconds(Int64(wait))
        while ContinuousClock.now < held, !isCancelled() { Thread.sleep(forTimeInterval: 0.002) }
    }
}
