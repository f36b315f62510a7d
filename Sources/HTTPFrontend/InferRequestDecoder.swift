import Foundation
import InferenceCore

/// How the client wants each output returned over HTTP.
struct OutputEncoding: Sendable {
    /// Per requested output: true for binary data, false for JSON data.
    var binaryByName: [String: Bool] = [:]
    /// The request-level `binary_data_output` default.
    var binaryByDefault = false

    func isBinary(_ name: String) -> Bool { binaryByName[name] ?? binaryByDefault }
}

/// Decodes a KServe v2 HTTP inference body (JSON, optionally followed by the
/// binary tensor data extension's raw section) into an InferenceRequest.
enum InferRequestDecoder {
    struct Decoded {
        var request: InferenceRequest
        var outputs: OutputEncoding
    }

    /// `headerLength` is `Inference-Header-Content-Length`, nil when absent.
    static func decode(body: [UInt8], headerLength: Int?, modelName: String, modelVersion: Int64?,
                       spec: ModelSpec) throws -> Decoded {
        if let headerLength {
            guard headerLength >= 0 else {
                throw InferenceError.invalidArgument("Inference-Header-Content-Length must not be negative, got \(headerLength)")
            }
            guard headerLength <= body.count else {
                throw InferenceError.invalidArgument(
                    "Inference-Header-Content-Length \(headerLength) is larger than the request body of \(body.count) bytes")
            }
            if headerLength == 0 {
                return try decodeRawOnly(body: body, modelName: modelName, modelVersion: modelVersion, spec: spec)
            }
        }
        let jsonEnd = headerLength ?? body.count
        let root: JSONValue
        do {
            root = try JSONDecoder().decode(JSONValue.self, from: Data(body[0..<jsonEnd]))
        } catch {
            throw InferenceError.invalidArgument("malformed JSON in inference request body: \(describe(error))")
        }
        guard case .object = root else {
            throw InferenceError.invalidArgument("inference request body must be a JSON object, got \(root.typeName)")
        }
        var binary = BinarySection(bytes: body, offset: jsonEnd)
        var request = InferenceRequest(modelName: modelName, modelVersion: modelVersion, inputs: [])
        var encoding = OutputEncoding()

        if let id = root["id"] {
            guard case .string(let text) = id else { throw InferenceError.invalidArgument("request 'id' must be a string") }
            request.id = text
        }
        if let parameters = root["parameters"] {
            try applyRequestParameters(parameters, to: &request, encoding: &encoding)
        }
        guard case .array(let inputs)? = root["inputs"] else {
            throw InferenceError.invalidArgument("inference request must have an 'inputs' array")
        }
        for input in inputs {
            let (tensor, region) = try decodeInput(input, binary: &binary)
            request.inputs.append(tensor)
            if let region { request.inputRegions[tensor.name] = region }
        }
        if binary.remaining > 0 {
            throw InferenceError.invalidArgument(
                "request body has \(binary.remaining) bytes of binary data beyond what the inputs' binary_data_size declare")
        }
        if let outputs = root["outputs"] {
            guard case .array(let list) = outputs else { throw InferenceError.invalidArgument("'outputs' must be an array") }
            for output in list {
                let (requested, binaryFlag) = try decodeRequestedOutput(output)
                request.requestedOutputs.append(requested)
                if let binaryFlag { encoding.binaryByName[requested.name] = binaryFlag }
            }
        }
        return Decoded(request: request, outputs: encoding)
    }

    private static func applyRequestParameters(_ value: JSONValue, to request: inout InferenceRequest,
                                               encoding: inout OutputEncoding) throws {
        guard case .object(let members) = value else {
            throw InferenceError.invalidArgument("request 'parameters' must be an object")
        }
        for (key, value) in members {
            switch key {
            case "binary_data_output":
                guard case .bool(let flag) = value else {
                    throw InferenceError.invalidArgument("parameter 'binary_data_output' must be a boolean")
                }
                encoding.binaryByDefault = flag
            case "priority":
                guard let priority = value.nonNegativeInteger else {
                    throw InferenceError.invalidArgument("parameter 'priority' must be a non-negative integer")
                }
                request.priority = priority
            case "timeout":
                guard let micros = value.nonNegativeInteger else {
                    throw InferenceError.invalidArgument("parameter 'timeout' must be a non-negative integer (microseconds)")
                }
                request.timeout = .microseconds(Int64(clamping: micros))
            default:
                request.parameters[key] = try parameterValue(value, name: key)
            }
        }
    }

    private static func parameterValue(_ value: JSONValue, name: String) throws -> ParameterValue {
        switch value {
        case .bool(let flag): return .bool(flag)
        case .int(let number): return .int64(number)
        case .uint(let number): return .uint64(number)
        case .double(let number): return .double(number)
        case .string(let text): return .string(text)
        default: throw InferenceError.invalidArgument("parameter '\(name)' must be a boolean, number or string, got \(value.typeName)")
        }
    }

    private static func decodeInput(_ value: JSONValue, binary: inout BinarySection) throws -> (Tensor, SharedMemoryReference?) {
        guard case .object = value else { throw InferenceError.invalidArgument("each entry of 'inputs' must be an object") }
        guard case .string(let name)? = value["name"] else {
            throw InferenceError.invalidArgument("an input has no 'name' string")
        }
        guard case .string(let typeName)? = value["datatype"] else {
            throw InferenceError.invalidArgument("input '\(name)' has no 'datatype' string")
        }
        guard let dataType = DataType(rawValue: typeName) else {
            throw InferenceError.invalidArgument("input '\(name)' has unknown datatype '\(typeName)'")
        }
        guard case .array(let dims)? = value["shape"] else {
            throw InferenceError.invalidArgument("input '\(name)' has no 'shape' array")
        }
        let shape = try dims.map { dim -> Int in
            guard case .int(let number) = dim, let size = Int(exactly: number), size >= 0 else {
                throw InferenceError.invalidArgument("input '\(name)' shape must hold non-negative integers")
            }
            return size
        }
        let elementCount = try ShapeMath.elementCount(shape, tensorName: name)
        var binarySize: Int?
        if let parameters = value["parameters"],
           let region = try SharedMemoryReference.parse(try tensorParameters(parameters, tensor: name, kind: "input"), tensor: name) {
            let others = [value["data"] != nil ? "data" : nil, parameters["binary_data_size"] != nil ? "binary_data_size" : nil].compactMap { $0 }
            if !others.isEmpty { throw TritonErrors.inputDataConflict(others + ["shared_memory_region"]) }
            return (Tensor(name: name, dataType: dataType, shape: shape, bytes: []), region)
        }
        if case .object(let parameters)? = value["parameters"], let size = parameters["binary_data_size"] {
            guard let declared = size.nonNegativeInteger, let bytes = Int(exactly: declared) else {
                throw InferenceError.invalidArgument("input '\(name)' parameter 'binary_data_size' must be a non-negative integer")
            }
            binarySize = bytes
        }
        if let binarySize {
            if value["data"] != nil { throw TritonErrors.inputDataConflict(["data", "binary_data_size"]) }
            let bytes = try binary.take(binarySize, for: name)
            return (Tensor(name: name, dataType: dataType, shape: shape, bytes: bytes), nil)
        }
        guard let data = value["data"] else {
            throw InferenceError.invalidArgument("input '\(name)' has neither 'data' nor 'binary_data_size'")
        }
        var flat: [JSONValue] = []
        // The shape is the client's claim: reserve no more than a body could
        // hold, or a shape of 2^60 elements would allocate before it is refused.
        flat.reserveCapacity(min(elementCount, 1 << 16))
        try flatten(data, into: &flat, name: name, depth: 0)
        guard flat.count == elementCount else {
            throw InferenceError.invalidArgument(
                "input '\(name)' has \(flat.count) elements in 'data' but shape \(ShapeMath.format(shape)) needs \(elementCount)")
        }
        return (Tensor(name: name, dataType: dataType, shape: shape,
                       bytes: try JSONTensorData.encode(flat, as: dataType, tensorName: name)), nil)
    }

    /// A tensor's `parameters` object as protocol parameter values.
    private static func tensorParameters(_ value: JSONValue, tensor: String, kind: String) throws -> [String: ParameterValue] {
        guard case .object(let members) = value else {
            throw InferenceError.invalidArgument("\(kind) '\(tensor)' 'parameters' must be an object")
        }
        var result: [String: ParameterValue] = [:]
        for (key, member) in members where key.hasPrefix("shared_memory_") {
            result[key] = try parameterValue(member, name: key)
        }
        return result
    }

    /// Accepts row-major data flattened or nested, as Triton does.
    private static func flatten(_ value: JSONValue, into flat: inout [JSONValue], name: String, depth: Int) throws {
        guard depth < 64 else { throw InferenceError.invalidArgument("input '\(name)' data is nested too deeply") }
        if case .array(let items) = value {
            for item in items { try flatten(item, into: &flat, name: name, depth: depth + 1) }
        } else if depth == 0 {
            throw InferenceError.invalidArgument("input '\(name)' 'data' must be an array")
        } else {
            flat.append(value)
        }
    }

    private static func decodeRequestedOutput(_ value: JSONValue) throws -> (RequestedOutput, Bool?) {
        guard case .string(let name)? = value["name"] else {
            throw InferenceError.invalidArgument("each entry of 'outputs' must be an object with a 'name' string")
        }
        var output = RequestedOutput(name: name)
        var binaryFlag: Bool?
        if let parameters = value["parameters"] {
            guard case .object(let members) = parameters else {
                throw InferenceError.invalidArgument("output '\(name)' 'parameters' must be an object")
            }
            if let flag = members["binary_data"] {
                guard case .bool(let binary) = flag else {
                    throw InferenceError.invalidArgument("output '\(name)' parameter 'binary_data' must be a boolean")
                }
                binaryFlag = binary
            }
            output.region = try SharedMemoryReference.parse(try tensorParameters(parameters, tensor: name, kind: "output"), tensor: name)
            if output.region != nil {
                if members["classification"] != nil { throw TritonErrors.outputSharedMemoryConflict("classification") }
                // tritonclient sends binary_data false beside a region; only true conflicts.
                if case .bool(true)? = members["binary_data"] { throw TritonErrors.outputSharedMemoryConflict("binary_data") }
            }
            if let count = members["classification"] {
                guard let classes = count.nonNegativeInteger, classes > 0 else {
                    throw InferenceError.invalidArgument("output '\(name)' parameter 'classification' must be a positive integer")
                }
                output.classificationCount = Int(clamping: classes)
            }
        }
        return (output, binaryFlag)
    }

    /// `Inference-Header-Content-Length: 0`: the whole body is the raw data of
    /// the model's only input, batch 1.
    private static func decodeRawOnly(body: [UInt8], modelName: String, modelVersion: Int64?, spec: ModelSpec) throws -> Decoded {
        guard spec.inputs.count == 1, let input = spec.inputs.first else {
            throw InferenceError.invalidArgument(
                "a request body of raw binary data only (Inference-Header-Content-Length 0) needs a model with exactly one input; '\(spec.name)' has \(spec.inputs.count)")
        }
        var dims = input.dims
        let variable = dims.indices.filter { dims[$0] == -1 }
        if !variable.isEmpty {
            guard variable.count == 1, let size = input.dataType.elementByteSize else {
                throw InferenceError.invalidArgument(
                    "input '\(input.name)' of model '\(spec.name)' has variable dims; its shape cannot be inferred from raw binary data")
            }
            let known = dims.filter { $0 != -1 }.reduce(1, *) * size
            guard known > 0, body.count % known == 0 else {
                throw InferenceError.invalidArgument(
                    "raw binary body of \(body.count) bytes does not fit input '\(input.name)' of model '\(spec.name)'")
            }
            dims[variable[0]] = body.count / known
        }
        let shape = spec.maxBatchSize > 0 ? [1] + dims : dims
        let request = InferenceRequest(modelName: modelName, modelVersion: modelVersion,
                                       inputs: [Tensor(name: input.name, dataType: input.dataType, shape: shape, bytes: body)])
        return Decoded(request: request, outputs: OutputEncoding(binaryByDefault: true))
    }

    static func describe(_ error: any Error) -> String {
        if case DecodingError.dataCorrupted(let context) = error {
            return context.underlyingError.map { "\($0.localizedDescription)" } ?? context.debugDescription
        }
        return "\(error)"
    }
}

/// The raw section after the JSON header, consumed input by input in order.
struct BinarySection {
    let bytes: [UInt8]
    var offset: Int

    var remaining: Int { bytes.count - offset }

    mutating func take(_ count: Int, for name: String) throws -> [UInt8] {
        guard count <= remaining else {
            throw InferenceError.invalidArgument(
                "input '\(name)' declares binary_data_size \(count) but only \(remaining) bytes of binary data remain in the request body")
        }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }
}

extension JSONValue {
    var nonNegativeInteger: UInt64? {
        switch self {
        case .int(let value) where value >= 0: UInt64(value)
        case .uint(let value): value
        default: nil
        }
    }
}
