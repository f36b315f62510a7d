import CONNXRuntime
import Foundation
import InferenceCore

/// How one session is set up, from config.pbtxt (Triton's ORT backend names).
struct SessionSettings: Sendable, Hashable {
    /// 0: ONNX Runtime's default (one thread per core).
    var intraOpThreads = 0
    var interOpThreads = 0
    var parallelExecution = false
    /// ORT's GraphOptimizationLevel: 0 none, 1 basic, 2 extended, 99 all.
    var graphOptimizationLevel: Int32 = 99
    var memoryArena = true
    /// Run on ORT's CUDA execution provider, on this device.
    var cudaDevice: Int?
}

/// One ONNX Runtime session on one model file, with the tensors it declares.
/// `run` is called from one instance thread at a time.
final class ORTSession: @unchecked Sendable {
    let runtime: ORTRuntime
    let path: String
    private let handle: OpaquePointer
    let inputs: [ModelFileTensor]
    let outputs: [ModelFileTensor]
    /// Whether the CUDA provider was asked for and taken.
    let onCUDA: Bool

    init(runtime: ORTRuntime, path: String, settings: SessionSettings) throws {
        self.runtime = runtime
        self.path = path
        let api = runtime.api.pointee
        var options: OpaquePointer?
        try runtime.check(api.CreateSessionOptions(&options), "ONNX Runtime: CreateSessionOptions")
        guard let options else { throw InferenceError.internal("ONNX Runtime returned no session options") }
        defer { api.ReleaseSessionOptions(options) }
        try runtime.check(api.SetIntraOpNumThreads(options, Int32(settings.intraOpThreads)), "ONNX Runtime: intra_op_thread_count")
        try runtime.check(api.SetInterOpNumThreads(options, Int32(settings.interOpThreads)), "ONNX Runtime: inter_op_thread_count")
        try runtime.check(api.SetSessionExecutionMode(options, settings.parallelExecution ? ORT_PARALLEL : ORT_SEQUENTIAL),
                          "ONNX Runtime: execution_mode")
        try runtime.check(api.SetSessionGraphOptimizationLevel(options, GraphOptimizationLevel(rawValue: UInt32(settings.graphOptimizationLevel))),
                          "ONNX Runtime: graph optimization level")
        if !settings.memoryArena { try runtime.check(api.DisableCpuMemArena(options), "ONNX Runtime: enable_mem_arena") }
        var cuda = false
        if let device = settings.cudaDevice {
            cuda = try Self.appendCUDA(device: device, options: options, runtime: runtime)
        }
        onCUDA = cuda
        var session: OpaquePointer?
        try runtime.check(api.CreateSession(runtime.env, path, options, &session), "ONNX Runtime cannot load \(path)")
        guard let session else { throw InferenceError.internal("ONNX Runtime returned no session for \(path)") }
        handle = session
        do {
            inputs = try Self.tensors(session, runtime: runtime, output: false)
            outputs = try Self.tensors(session, runtime: runtime, output: true)
        } catch {
            api.ReleaseSession(session)
            throw error
        }
    }

    deinit { runtime.api.pointee.ReleaseSession(handle) }

    /// Adds ORT's CUDA provider; false (not an error) where this ORT build has
    /// none, so the caller can fall back to the CPU as the encoder does.
    private static func appendCUDA(device: Int, options: OpaquePointer, runtime: ORTRuntime) throws -> Bool {
        let api = runtime.api.pointee
        var cudaOptions: OpaquePointer?
        guard api.CreateCUDAProviderOptions(&cudaOptions).map({ ORTRuntime.consume($0, api: runtime.api) }) == nil,
              let cudaOptions else { return false }
        defer { api.ReleaseCUDAProviderOptions(cudaOptions) }
        let keys = ["device_id"], values = [String(device)]
        let status = withCStrings(keys) { keyPointers in
            withCStrings(values) { valuePointers in
                api.UpdateCUDAProviderOptions(cudaOptions, keyPointers, valuePointers, 1)
            }
        }
        if let status { throw ORTRuntime.consume(status, api: runtime.api).inferenceError(context: "ONNX Runtime CUDA options") }
        if let status = api.SessionOptionsAppendExecutionProvider_CUDA_V2(options, cudaOptions) {
            _ = ORTRuntime.consume(status, api: runtime.api)
            return false
        }
        return true
    }

    private static func tensors(_ session: OpaquePointer, runtime: ORTRuntime, output: Bool) throws -> [ModelFileTensor] {
        let api = runtime.api.pointee
        var count = 0
        try runtime.check(output ? api.SessionGetOutputCount(session, &count) : api.SessionGetInputCount(session, &count),
                          "ONNX Runtime: tensor count")
        return try (0..<count).map { index in
            var name: UnsafeMutablePointer<CChar>?
            try runtime.check(output ? api.SessionGetOutputName(session, index, runtime.allocator, &name)
                                     : api.SessionGetInputName(session, index, runtime.allocator, &name),
                              "ONNX Runtime: tensor name")
            let tensorName = runtime.takeString(name)
            var typeInfo: OpaquePointer?
            try runtime.check(output ? api.SessionGetOutputTypeInfo(session, index, &typeInfo)
                                     : api.SessionGetInputTypeInfo(session, index, &typeInfo),
                              "ONNX Runtime: type of '\(tensorName)'")
            defer { api.ReleaseTypeInfo(typeInfo) }
            var kind = ONNX_TYPE_UNKNOWN
            try runtime.check(api.GetOnnxTypeFromTypeInfo(typeInfo, &kind), "ONNX Runtime: type of '\(tensorName)'")
            guard kind == ONNX_TYPE_TENSOR else {
                throw InferenceError.unsupported(
                    "\(output ? "output" : "input") '\(tensorName)' is not a tensor (ONNX type \(kind.rawValue)): sequences, maps and optionals are not supported")
            }
            var info: OpaquePointer?
            try runtime.check(api.CastTypeInfoToTensorInfo(typeInfo, &info), "ONNX Runtime: tensor info of '\(tensorName)'")
            let (element, shape) = try shapeAndType(info, runtime: runtime, name: tensorName)
            guard let dataType = ORTTypes.dataType(element) else {
                throw InferenceError.unsupported(
                    "\(output ? "output" : "input") '\(tensorName)': ONNX element type \(element.rawValue) has no Triton datatype")
            }
            return ModelFileTensor(name: tensorName, dataType: dataType, shape: shape.map { $0 < 0 ? -1 : Int($0) })
        }
    }

    static func shapeAndType(_ info: OpaquePointer?, runtime: ORTRuntime, name: String) throws -> (ONNXTensorElementDataType, [Int64]) {
        let api = runtime.api.pointee
        var element = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED
        try runtime.check(api.GetTensorElementType(info, &element), "ONNX Runtime: element type of '\(name)'")
        var rank = 0
        try runtime.check(api.GetDimensionsCount(info, &rank), "ONNX Runtime: rank of '\(name)'")
        var dims = [Int64](repeating: 0, count: rank)
        try runtime.check(api.GetDimensions(info, &dims, rank), "ONNX Runtime: dims of '\(name)'")
        return (element, dims)
    }

    /// Runs the session on `inputs` (whole batches, already concatenated) and
    /// returns `outputNames` in that order.
    func run(_ inputs: [Tensor], outputNames: [String]) throws -> [Tensor] {
        let api = runtime.api.pointee
        var values: [OpaquePointer?] = []
        var buffers: [UnsafeMutableRawPointer] = []
        defer {
            for value in values { api.ReleaseValue(value) }
            for buffer in buffers { buffer.deallocate() }
        }
        for tensor in inputs {
            values.append(try makeValue(tensor, buffers: &buffers))
        }
        var results = [OpaquePointer?](repeating: nil, count: outputNames.count)
        defer { for value in results { api.ReleaseValue(value) } }
        let status = withCStrings(inputs.map(\.name)) { inputNames in
            withCStrings(outputNames) { outputPointers in
                values.withUnsafeBufferPointer { valuePointers in
                    valuePointers.withMemoryRebound(to: Optional<OpaquePointer>.self) { rebound in
                        api.Run(handle, nil, inputNames, rebound.baseAddress, inputs.count, outputPointers, outputNames.count, &results)
                    }
                }
            }
        }
        try runtime.check(status, "onnxruntime")
        return try zip(outputNames, results).map { name, value in try readValue(value, name: name) }
    }

    private func makeValue(_ tensor: Tensor, buffers: inout [UnsafeMutableRawPointer]) throws -> OpaquePointer? {
        let api = runtime.api.pointee
        let shape = tensor.shape.map(Int64.init)
        var value: OpaquePointer?
        if tensor.dataType == .bytes {
            let elements = try tensor.elements()
            if let index = elements.firstIndex(where: { $0.contains(0) }) {
                throw InferenceError.invalidArgument(
                    "input '\(tensor.name)' element \(index) holds a NUL byte, which ONNX Runtime string tensors cannot carry")
            }
            try runtime.check(api.CreateTensorAsOrtValue(runtime.allocator, shape, shape.count, ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING, &value),
                              "ONNX Runtime: input '\(tensor.name)'")
            // The bytes as given (not decoded as UTF-8), each NUL-terminated.
            let status = withCStrings(elements) { api.FillStringTensor(value, $0, elements.count) }
            if let status {
                api.ReleaseValue(value)
                throw ORTRuntime.consume(status, api: runtime.api).inferenceError(context: "ONNX Runtime: input '\(tensor.name)'")
            }
            return value
        }
        // ORT reads our bytes in place: they live in a buffer freed after Run.
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(tensor.bytes.count, 1), alignment: 64)
        buffers.append(buffer)
        tensor.bytes.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress { buffer.copyMemory(from: base, byteCount: bytes.count) }
        }
        try runtime.check(api.CreateTensorWithDataAsOrtValue(runtime.cpuMemory, buffer, tensor.bytes.count, shape, shape.count,
                                                             ORTTypes.elementType(tensor.dataType), &value),
                          "onnxruntime: input '\(tensor.name)'")
        return value
    }

    private func readValue(_ value: OpaquePointer?, name: String) throws -> Tensor {
        let api = runtime.api.pointee
        var info: OpaquePointer?
        try runtime.check(api.GetTensorTypeAndShape(value, &info), "onnxruntime: output '\(name)'")
        defer { api.ReleaseTensorTypeAndShapeInfo(info) }
        let (element, dims) = try Self.shapeAndType(info, runtime: runtime, name: name)
        guard let dataType = ORTTypes.dataType(element) else {
            throw InferenceError.internal("output '\(name)': ONNX element type \(element.rawValue) has no Triton datatype")
        }
        let shape = dims.map { Int($0) }
        let count = try ShapeMath.elementCount(shape, tensorName: name)
        if dataType == .bytes {
            var length = 0
            try runtime.check(api.GetStringTensorDataLength(value, &length), "onnxruntime: output '\(name)'")
            var content = [UInt8](repeating: 0, count: max(length, 1))
            var offsets = [Int](repeating: 0, count: max(count, 1))
            try runtime.check(api.GetStringTensorContent(value, &content, length, &offsets, count), "onnxruntime: output '\(name)'")
            let elements = (0..<count).map { index in
                Array(content[offsets[index]..<(index + 1 < count ? offsets[index + 1] : length)])
            }
            return Tensor(name: name, shape: shape, elements: elements)
        }
        var data: UnsafeMutableRawPointer?
        try runtime.check(api.GetTensorMutableData(value, &data), "onnxruntime: output '\(name)'")
        let byteCount = count * (dataType.elementByteSize ?? 0)
        let bytes = data.map { Array(UnsafeRawBufferPointer(start: $0, count: byteCount)) } ?? []
        return Tensor(name: name, dataType: dataType, shape: shape, bytes: bytes)
    }
}

/// Calls `body` with NUL-terminated copies of `strings`, as `const char* const*`.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    withCStrings(strings.map { Array($0.utf8) }, body)
}

/// The same for raw byte strings (none may hold a NUL: callers check).
func withCStrings<R>(_ strings: [[UInt8]], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies: [UnsafeMutablePointer<CChar>] = strings.map { bytes in
        let copy = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
        for (index, byte) in bytes.enumerated() { copy[index] = CChar(bitPattern: byte) }
        copy[bytes.count] = 0
        return copy
    }
    defer { for copy in copies { copy.deallocate() } }
    // One slot at least: an empty list still passes a valid pointer.
    let pointers: [UnsafePointer<CChar>?] = copies.isEmpty ? [nil] : copies.map { UnsafePointer<CChar>($0) }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// ONNX element types and the protocol's datatypes.
enum ORTTypes {
    static func dataType(_ element: ONNXTensorElementDataType) -> DataType? {
        switch element {
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: .fp32
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: .uint8
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: .int8
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16: .uint16
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16: .int16
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: .int32
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: .int64
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING: .bytes
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: .bool
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: .fp16
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: .fp64
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32: .uint32
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64: .uint64
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: .bf16
        default: nil
        }
    }

    static func elementType(_ dataType: DataType) -> ONNXTensorElementDataType {
        switch dataType {
        case .fp32: ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
        case .uint8: ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8
        case .int8: ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8
        case .uint16: ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16
        case .int16: ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16
        case .int32: ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32
        case .int64: ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64
        case .bytes: ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING
        case .bool: ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL
        case .fp16: ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16
        case .fp64: ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE
        case .uint32: ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32
        case .uint64: ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64
        case .bf16: ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16
        }
    }
}
