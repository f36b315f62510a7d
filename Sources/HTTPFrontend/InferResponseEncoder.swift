import Foundation
import InferenceCore

/// Writes an inference response as KServe v2 JSON, with outputs the client
/// asked for as binary placed after the JSON (binary tensor data extension).
enum InferResponseEncoder {
    /// Returns the body and, when any output is binary, the JSON header's length.
    static func encode(_ response: InferenceResponse, encoding: OutputEncoding) throws -> ([UInt8], Int?) {
        var binary: [[UInt8]] = []
        let outputs = try response.outputs.map { tensor -> HTTPResponseBodies.InferResponseHeader.Output in
            if let region = response.outputRegions[tensor.name] {
                return .init(name: tensor.name, datatype: tensor.dataType.rawValue, shape: tensor.shape,
                             parameters: region.parameters.mapValues(JSONParameter.init), data: nil)
            }
            if encoding.isBinary(tensor.name) {
                binary.append(tensor.bytes)
                return .init(name: tensor.name, datatype: tensor.dataType.rawValue, shape: tensor.shape,
                             parameters: ["binary_data_size": .int(Int64(tensor.bytes.count))], data: nil)
            }
            return .init(name: tensor.name, datatype: tensor.dataType.rawValue, shape: tensor.shape,
                         parameters: nil, data: try JSONTensorData.decode(tensor))
        }
        let header = HTTPResponseBodies.InferResponseHeader(
            model_name: response.modelName, model_version: String(response.modelVersion),
            id: response.id.isEmpty ? nil : response.id, outputs: outputs)
        let encoder = JSONEncoder()
        // Foundation's key order varies from one encoding to the next; the
        // same answer (a cached one included) must be the same bytes.
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        var body = Array(try encoder.encode(header))
        guard !binary.isEmpty else { return (body, nil) }
        let jsonLength = body.count
        body.reserveCapacity(jsonLength + binary.reduce(0) { $0 + $1.count })
        for chunk in binary { body.append(contentsOf: chunk) }
        return (body, jsonLength)
    }
}

/// A response parameter value in JSON.
enum JSONParameter: Encodable {
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case bool(Bool)
    case string(String)

    init(_ value: ParameterValue) {
        switch value {
        case .int64(let number): self = .int(number)
        case .uint64(let number): self = .uint(number)
        case .double(let number): self = .double(number)
        case .bool(let flag): self = .bool(flag)
        case .string(let text): self = .string(text)
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .int(let number): try container.encode(number)
        case .uint(let number): try container.encode(number)
        case .double(let number): try container.encode(number)
        case .bool(let flag): try container.encode(flag)
        case .string(let text): try container.encode(text)
        }
    }
}
