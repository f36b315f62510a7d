import Testing
@testable import InferenceCore

/// A model shaped like Triton's "simple": two INT32 [16] inputs, batching to 8.
let simpleSpec = ModelSpec(
    name: "simple", version: 1, backend: "add_sub", maxBatchSize: 8,
    inputs: [TensorSpec(name: "INPUT0", dataType: .int32, dims: [16]), TensorSpec(name: "INPUT1", dataType: .int32, dims: [16])],
    outputs: [TensorSpec(name: "OUTPUT0", dataType: .int32, dims: [16]), TensorSpec(name: "OUTPUT1", dataType: .int32, dims: [16])])

func row(_ name: String, batch: Int = 1, count: Int = 16) -> Tensor {
    Tensor(name: name, shape: [batch, count], values: [Int32](repeating: 1, count: batch * count))
}

@Suite struct RequestValidationTests {
    @Test func acceptsAWellFormedRequest() throws {
        let validated = try simpleSpec.validate(InferenceRequest(modelName: "simple", inputs: [row("INPUT0", batch: 3), row("INPUT1", batch: 3)]))
        #expect(validated.batchSize == 3)
        #expect(validated.outputs.map(\.name) == ["OUTPUT0", "OUTPUT1"])
    }

    @Test(arguments: [
        ([row("INPUT0")], "missing input 'INPUT1'"),
        ([row("INPUT0"), row("INPUT1"), row("INPUT2")], "unexpected inference input 'INPUT2'"),
        ([row("INPUT0", count: 15), row("INPUT1")], "Expected [-1,16], got [1,15]"),
        ([row("INPUT0", batch: 2), row("INPUT1", batch: 3)], "has batch size 3 but other inputs"),
        ([row("INPUT0", batch: 0), row("INPUT1", batch: 0)], "batch size 0"),
        ([Tensor(name: "INPUT0", shape: [1, 16], values: [Float](repeating: 0, count: 16)), row("INPUT1")], "data-type is 'FP32'"),
        ([Tensor(name: "INPUT0", dataType: .int32, shape: [1, 16], bytes: [0, 0]), row("INPUT1")], "input byte size mismatch for input 'INPUT0' for model"),
        ([row("INPUT0"), row("INPUT0"), row("INPUT1")], "given more than once"),
    ] as [([Tensor], String)])
    func rejectsWithAMessageNamingTheProblem(inputs: [Tensor], message: String) {
        let error = #expect(throws: InferenceError.self) {
            try simpleSpec.validate(InferenceRequest(modelName: "simple", inputs: inputs))
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
    }

    @Test func acceptsABatchLargerThanMaxBatchSizeForTheSchedulerToSplit() throws {
        let validated = try simpleSpec.validate(InferenceRequest(modelName: "simple", inputs: [row("INPUT0", batch: 9), row("INPUT1", batch: 9)]))
        #expect(validated.batchSize == 9)
    }

    @Test func rejectsUnknownRequestedOutput() {
        let request = InferenceRequest(modelName: "simple", inputs: [row("INPUT0"), row("INPUT1")],
                                       requestedOutputs: [RequestedOutput(name: "OUTPUT7")])
        #expect(throws: InferenceError.invalidArgument("unexpected inference output 'OUTPUT7' for model 'simple'")) {
            try simpleSpec.validate(request)
        }
    }

    @Test func nonBatchingModelHasNoBatchDimension() throws {
        var spec = simpleSpec
        spec.maxBatchSize = 0
        let ok = try spec.validate(InferenceRequest(modelName: "simple", inputs: [
            Tensor(name: "INPUT0", shape: [16], values: [Int32](repeating: 0, count: 16)),
            Tensor(name: "INPUT1", shape: [16], values: [Int32](repeating: 0, count: 16)),
        ]))
        #expect(ok.batchSize == 1)
        #expect(throws: InferenceError.self) { try spec.validate(InferenceRequest(modelName: "simple", inputs: [row("INPUT0"), row("INPUT1")])) }
    }

    @Test func bytesElementCountMustMatchShape() {
        let spec = ModelSpec(name: "id", version: 1, backend: "identity", maxBatchSize: 4,
                             inputs: [TensorSpec(name: "IN", dataType: .bytes, dims: [-1])],
                             outputs: [TensorSpec(name: "OUT", dataType: .bytes, dims: [-1])])
        let tensor = Tensor(name: "IN", shape: [1, 3], elements: [[1], [2]])
        #expect(throws: InferenceError.self) { try spec.validate(InferenceRequest(modelName: "id", inputs: [tensor])) }
    }
}
