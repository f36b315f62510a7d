import Foundation
import InferenceCore
import TritonProto

/// Converts between protobuf inference messages and the server core's types.
enum GRPCTensorCoding {
    static func request(from message: Inference_ModelInferRequest, version: Int64, model: String) throws -> InferenceRequest {
        let raw = message.rawInputContents
        // Inputs in shared memory carry no raw contents; the others take them in order.
        let regions = try message.inputs.map { input in
            try SharedMemoryReference.parse(input.parameters.compactMapValues(\.value), tensor: input.name)
        }
        if !raw.isEmpty {
            if let typed = message.inputs.first(where: { $0.hasContents }) {
                throw TritonErrors.contentsWithRawContents(input: typed.name, model: model)
            }
            let expected = regions.filter { $0 == nil }.count
            guard raw.count == expected else {
                throw InferenceError.invalidArgument(
                    "raw_input_contents has \(raw.count) entries but the request has \(expected) inputs not in shared memory for model '\(model)'")
            }
        }
        var request = InferenceRequest(id: message.id, modelName: message.modelName, modelVersion: version, inputs: [])
        var rawIndex = 0
        for (index, input) in message.inputs.enumerated() {
            guard let dataType = DataType(rawValue: input.datatype) else {
                throw InferenceError.invalidArgument("input '\(input.name)' has unknown datatype '\(input.datatype)'")
            }
            let shape = try input.shape.map { dim -> Int in
                guard dim >= 0, let size = Int(exactly: dim) else {
                    throw InferenceError.invalidArgument("input '\(input.name)' has negative dimension \(dim)")
                }
                return size
            }
            var bytes: [UInt8] = []
            if let region = regions[index] {
                if input.hasContents { throw TritonErrors.contentsWithSharedMemory(input: input.name, model: model) }
                request.inputRegions[input.name] = region
            } else if raw.isEmpty {
                bytes = try contents(input, dataType: dataType)
            } else {
                bytes = Array(raw[rawIndex])
                rawIndex += 1
            }
            request.inputs.append(Tensor(name: input.name, dataType: dataType, shape: shape, bytes: bytes))
        }
        for output in message.outputs {
            var requested = RequestedOutput(name: output.name)
            requested.region = try SharedMemoryReference.parse(output.parameters.compactMapValues(\.value), tensor: output.name)
            if requested.region != nil, output.parameters["classification"] != nil {
                throw TritonErrors.outputSharedMemoryConflict("classification")
            }
            if let classes = output.parameters["classification"] {
                guard let count = classes.integer, count > 0 else {
                    throw InferenceError.invalidArgument("output '\(output.name)' parameter 'classification' must be a positive integer")
                }
                requested.classificationCount = Int(clamping: count)
            }
            request.requestedOutputs.append(requested)
        }
        for (key, parameter) in message.parameters {
            switch key {
            case "priority":
                guard let priority = parameter.integer, priority >= 0 else {
                    throw InferenceError.invalidArgument("parameter 'priority' must be a non-negative integer")
                }
                request.priority = UInt64(priority)
            case "timeout":
                guard let micros = parameter.integer, micros >= 0 else {
                    throw InferenceError.invalidArgument("parameter 'timeout' must be a non-negative integer (microseconds)")
                }
                request.timeout = .microseconds(micros)
            default:
                if let value = parameter.value { request.parameters[key] = value }
            }
        }
        return request
    }

    /// Typed `contents`, converted to the protocol's raw bytes.
    private static func contents(_ input: Inference_ModelInferRequest.InferInputTensor, dataType: DataType) throws -> [UInt8] {
        let c = input.contents
        func narrow<T: FixedWidthInteger, S: BinaryInteger>(_ values: [S], _: T.Type) throws -> [UInt8] {
            let converted: [T] = try values.enumerated().map { index, value in
                guard let narrowed = T(exactly: value) else {
                    throw InferenceError.invalidArgument("input '\(input.name)' element \(index) is out of range for \(dataType.rawValue)")
                }
                return narrowed
            }
            return converted.withUnsafeBytes { Array($0) }
        }
        switch dataType {
        case .bool: return c.boolContents.map { $0 ? 1 : 0 }
        case .int8: return try narrow(c.intContents, Int8.self)
        case .int16: return try narrow(c.intContents, Int16.self)
        case .int32: return c.intContents.withUnsafeBytes { Array($0) }
        case .int64: return c.int64Contents.withUnsafeBytes { Array($0) }
        case .uint8: return try narrow(c.uintContents, UInt8.self)
        case .uint16: return try narrow(c.uintContents, UInt16.self)
        case .uint32: return c.uintContents.withUnsafeBytes { Array($0) }
        case .uint64: return c.uint64Contents.withUnsafeBytes { Array($0) }
        case .fp32: return c.fp32Contents.withUnsafeBytes { Array($0) }
        case .fp64: return c.fp64Contents.withUnsafeBytes { Array($0) }
        case .bytes: return BytesElements.serialize(c.bytesContents.map { Array($0) })
        case .fp16, .bf16:
            throw InferenceError.invalidArgument("input '\(input.name)' is \(dataType.rawValue): send it in raw_input_contents")
        }
    }

    /// Outputs go in raw_output_contents, as Triton returns them.
    static func response(_ response: InferenceResponse) -> Inference_ModelInferResponse {
        var message = Inference_ModelInferResponse()
        message.modelName = response.modelName
        message.modelVersion = String(response.modelVersion)
        message.id = response.id
        for tensor in response.outputs {
            var output = Inference_ModelInferResponse.InferOutputTensor()
            output.name = tensor.name
            output.datatype = tensor.dataType.rawValue
            output.shape = tensor.shape.map(Int64.init)
            if let region = response.outputRegions[tensor.name] {
                output.parameters = region.parameters.mapValues(Inference_InferParameter.init)
            }
            message.outputs.append(output)
            // An output in shared memory keeps an empty entry so that every
            // output's raw contents stay at its own index.
            message.rawOutputContents.append(Data(tensor.bytes))
        }
        return message
    }
}

extension Inference_InferParameter {
    var integer: Int64? {
        switch parameterChoice {
        case .int64Param(let value)?: value
        case .uint64Param(let value)?: Int64(exactly: value)
        default: nil
        }
    }

    init(_ value: ParameterValue) {
        self.init()
        switch value {
        case .bool(let flag): boolParam = flag
        case .int64(let number): int64Param = number
        case .uint64(let number): uint64Param = number
        case .double(let number): doubleParam = number
        case .string(let text): stringParam = text
        }
    }

    var value: ParameterValue? {
        switch parameterChoice {
        case .boolParam(let value)?: .bool(value)
        case .int64Param(let value)?: .int64(value)
        case .uint64Param(let value)?: .uint64(value)
        case .doubleParam(let value)?: .double(value)
        case .stringParam(let value)?: .string(value)
        case nil: nil
        }
    }
}
