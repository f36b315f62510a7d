import Foundation
import InferenceCore
import Logging
import Testing
@testable import ONNXRuntimeBackend

func onnxSpec(maxBatchSize: Int = 8, inputs: [TensorSpec]? = nil, outputs: [TensorSpec]? = nil,
              parameters: [String: String] = [:], groups: [InstanceGroupSpec] = [InstanceGroupSpec()]) -> ModelSpec {
    ModelSpec(name: "m", version: 1, platform: "onnxruntime_onnx", backend: "onnxruntime", maxBatchSize: maxBatchSize,
              inputs: inputs ?? [TensorSpec(name: "INPUT0", dataType: .int32, dims: [16])],
              outputs: outputs ?? [TensorSpec(name: "OUTPUT0", dataType: .int32, dims: [16])],
              parameters: parameters, instanceGroups: groups)
}

func item(_ tensors: [Tensor]) throws -> ValidatedRequest {
    try onnxSpec(inputs: [TensorSpec(name: "INPUT0", dataType: .int32, dims: [-1])]).validate(InferenceRequest(modelName: "m", inputs: tensors))
}

@Suite struct ORTSettingsTests {
    @Test func readsTritonsParameters() throws {
        let settings = try ORTModelSettings(onnxSpec(parameters: [
            "intra_op_thread_count": "2", "inter_op_thread_count": "1", "execution_mode": "1", "enable_mem_arena": "off",
        ])).session
        #expect(settings.intraOpThreads == 2 && settings.interOpThreads == 1)
        #expect(settings.parallelExecution && !settings.memoryArena)
        #expect(settings.graphOptimizationLevel == 99)
        #expect(try ORTModelSettings(onnxSpec(parameters: ["share_session_between_instances": "true"])).shareSession)
        #expect(try !ORTModelSettings(onnxSpec()).shareSession)
    }

    @Test func refusesBadValuesWithTritonsText() {
        #expect(throws: InferenceError.invalidArgument(
            "model 'm': Invalid configuration value provided. Expected values for execution_mode are 0 or 1 but got 2")) {
            try ORTModelSettings(onnxSpec(parameters: ["execution_mode": "2"]))
        }
        #expect(throws: InferenceError.self) { try ORTModelSettings(onnxSpec(parameters: ["intra_op_thread_count": "-1"])) }
        #expect(throws: InferenceError.self) { try ORTModelSettings(onnxSpec(parameters: ["enable_mem_arena": "maybe"])) }
        #expect(throws: InferenceError.self) { try ORTModelSettings(onnxSpec(parameters: ["share_session_between_instances": "2"])) }
    }

    /// Triton's graph levels: -1 basic, 1 extended, 2 disabled, anything else all.
    @Test func mapsGraphOptimizationLevels() throws {
        for (triton, ort) in [(-1, 1), (1, 2), (2, 0), (0, 99), (7, 99)] as [(Int, Int32)] {
            var spec = onnxSpec()
            spec.graphOptimizationLevel = triton
            #expect(try ORTModelSettings(spec).session.graphOptimizationLevel == ort)
        }
    }

    @Test func placesGPUInstancesOnTheirGroupsDevices() {
        let spec = onnxSpec(groups: [InstanceGroupSpec(kind: .cpu, count: 2), InstanceGroupSpec(kind: .gpu, count: 2, gpus: [1, 3])])
        #expect((0..<6).map { ONNXRuntimeBackend.gpuDevice(spec, index: $0) } == [nil, nil, 1, 1, 3, 3])
    }
}

@Suite struct ORTSignatureCheckTests {
    let model = [ModelFileTensor(name: "INPUT0", dataType: .int32, shape: [-1, 16])]
    let out = [ModelFileTensor(name: "OUTPUT0", dataType: .int32, shape: [-1, 16])]

    @Test func acceptsAMatchingConfig() throws {
        try ORTSignatureCheck.check(onnxSpec(), inputs: model, outputs: out)
        // A dynamic model dimension takes any configured size on inputs.
        try ORTSignatureCheck.check(onnxSpec(), inputs: [ModelFileTensor(name: "INPUT0", dataType: .int32, shape: [-1, -1])], outputs: out)
    }

    @Test func namesTheMismatchAsTritonDoes() {
        #expect(throws: InferenceError.invalidArgument(
            "unable to load model 'm', configuration expects datatype TYPE_FP32 for input 'INPUT0', model provides TYPE_INT32")) {
            try ORTSignatureCheck.check(onnxSpec(inputs: [TensorSpec(name: "INPUT0", dataType: .fp32, dims: [16])]), inputs: model, outputs: out)
        }
        #expect(throws: InferenceError.invalidArgument("unexpected inference input 'X', allowed inputs are: INPUT0")) {
            try ORTSignatureCheck.check(onnxSpec(inputs: [TensorSpec(name: "X", dataType: .int32, dims: [16])]), inputs: model, outputs: out)
        }
        #expect(throws: InferenceError.invalidArgument(
            "unable to load model 'm', configuration expects 2 inputs, model provides 1")) {
            try ORTSignatureCheck.check(onnxSpec(inputs: [TensorSpec(name: "INPUT0", dataType: .int32, dims: [16]),
                                                          TensorSpec(name: "INPUT1", dataType: .int32, dims: [16])]),
                                        inputs: model, outputs: out)
        }
        // Batching needs a dynamic first dimension in the model.
        #expect(throws: InferenceError.self) {
            try ORTSignatureCheck.check(onnxSpec(), inputs: [ModelFileTensor(name: "INPUT0", dataType: .int32, shape: [4, 16])], outputs: out)
        }
        // Outputs must match exactly: the model's dynamic dimension is not 16.
        #expect(throws: InferenceError.self) {
            try ORTSignatureCheck.check(onnxSpec(), inputs: model, outputs: [ModelFileTensor(name: "OUTPUT0", dataType: .int32, shape: [-1, -1])])
        }
    }
}

@Suite struct ORTBatchingTests {
    @Test func groupsItemsThatCanShareOneRun() throws {
        let a = try item([Tensor(name: "INPUT0", shape: [1, 4], values: [Int32](repeating: 1, count: 4))])
        let b = try item([Tensor(name: "INPUT0", shape: [2, 4], values: [Int32](repeating: 2, count: 8))])
        let longer = try item([Tensor(name: "INPUT0", shape: [1, 5], values: [Int32](repeating: 3, count: 5))])
        #expect(ONNXRuntimeInstance.runs([a, b, longer, a], batching: true) == [[0, 1], [2], [3]])
        #expect(ONNXRuntimeInstance.runs([a, b], batching: false) == [[0], [1]])
    }
}

@Suite struct ORTLibraryTests {
    @Test func aMissingLibraryIsAReasonNotACrash() {
        guard case .failure(let failure) = ORTRuntime.open(["/nonexistent/libonnxruntime.so.1"]) else {
            Issue.record("a library that does not exist opened")
            return
        }
        #expect(failure.message.contains("ONNX Runtime library not found"))
        #expect(failure.message.contains("/nonexistent/libonnxruntime.so.1"))
        let backend = ONNXRuntimeBackend(library: "/nonexistent/libonnxruntime.so.1", logger: Logger(label: "test"))
        #expect(throws: InferenceError.self) { try backend.signature(ofModelAt: "/nonexistent/model.onnx") }
    }

    /// The wheel's library, where scripts/install-onnxruntime.sh left it.
    static var wheelLibrary: String? {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let lib = root.appendingPathComponent(".venv/lib")
        guard let pythons = try? FileManager.default.contentsOfDirectory(atPath: lib.path) else { return nil }
        for python in pythons {
            let capi = lib.appendingPathComponent("\(python)/site-packages/onnxruntime/capi")
            if let file = (try? FileManager.default.contentsOfDirectory(atPath: capi.path))?.first(where: { $0.hasPrefix("libonnxruntime.so.1.") }) {
                return capi.appendingPathComponent(file).path
            }
        }
        return nil
    }

    @Test(.enabled(if: wheelLibrary != nil, "the onnxruntime wheel is not installed in .venv"))
    func theWheelsLibraryServesOurAPIVersion() throws {
        let runtime = try ORTRuntime.open([Self.wheelLibrary!]).get()
        #expect(runtime.version.split(separator: ".").count == 3)
        // A file that is not a model fails with ORT's reason, as invalid argument.
        let path = NSTemporaryDirectory() + "not-a-model-\(UUID().uuidString).onnx"
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let backend = ONNXRuntimeBackend(library: Self.wheelLibrary!, logger: Logger(label: "test"))
        do {
            _ = try backend.signature(ofModelAt: path)
            Issue.record("garbage loaded as a model")
        } catch let error as InferenceError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains(path))
        }
    }
}
