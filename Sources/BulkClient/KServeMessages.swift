import Foundation
import InferenceCore
import SwiftProtobuf
import TritonProto

/// What the client learned of the model from ModelMetadata: how to send a row.
public struct ModelShape: Sendable {
    public var name: String
    public var textInput: String?
    public var idsInput: String?
    public var maskInput: String?
    public var outputs: [String]

    public init(metadata: Inference_ModelMetadataResponse) throws {
        name = metadata.name
        let inputs = Dictionary(metadata.inputs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        textInput = inputs.values.first { $0.datatype == "BYTES" }?.name
        idsInput = inputs["INPUT_IDS"].map(\.name) ?? inputs.values.first { $0.datatype == "INT64" && $0.name != "ATTENTION_MASK" }?.name
        maskInput = inputs["ATTENTION_MASK"]?.name
        outputs = metadata.outputs.map(\.name)
        for output in metadata.outputs where !KServeMessages.writable.contains(output.datatype) {
            throw BulkJobError.server(
                "model '\(name)' output '\(output.name)' is \(output.datatype); the bulk client writes \(KServeMessages.writable.sorted().joined(separator: ", "))")
        }
        if textInput == nil && idsInput == nil {
            throw BulkJobError.server("model '\(name)' has neither a BYTES (text) input nor INPUT_IDS; the bulk client sends one of them")
        }
    }
}

/// Builds one request per row and turns each answer into an output line.
public struct KServeMessages: Sendable {
    public let model: ModelShape
    /// `--classes K`: the classification extension's top K labels on the first output.
    public let classes: Int?
    /// KServe's request priority (1 is the highest level); nil: the model's default.
    public let priority: UInt64?

    public init(model: ModelShape, classes: Int?, priority: UInt64? = nil) {
        self.model = model
        self.classes = classes
        self.priority = priority
    }

    public func request(for row: InputRow) throws -> Inference_ModelInferRequest {
        var request = Inference_ModelInferRequest()
        request.modelName = model.name
        request.id = row.id
        if let priority { request.parameters["priority"] = .with { $0.uint64Param = priority } }
        if let ids = row.inputIDs {
            guard let idsInput = model.idsInput else {
                throw RowProblem(index: row.index, id: row.id, reason: "model '\(model.name)' takes text, and the row has only token ids")
            }
            request.inputs.append(.with {
                $0.name = idsInput
                $0.datatype = "INT64"
                $0.shape = [1, Int64(ids.count)]
            })
            request.rawInputContents.append(ids.withUnsafeBytes { Data($0) })
            if let mask = model.maskInput {
                request.inputs.append(.with {
                    $0.name = mask
                    $0.datatype = "INT64"
                    $0.shape = [1, Int64(ids.count)]
                })
                request.rawInputContents.append([Int64](repeating: 1, count: ids.count).withUnsafeBytes { Data($0) })
            }
        } else if let text = row.text {
            guard let textInput = model.textInput else {
                throw RowProblem(index: row.index, id: row.id, reason: "model '\(model.name)' takes token ids, and the row has only text")
            }
            request.inputs.append(.with {
                $0.name = textInput
                $0.datatype = "BYTES"
                $0.shape = [1, 1]
            })
            request.rawInputContents.append(Data(BytesElements.serialize([Array(text.utf8)])))
        }
        for (position, name) in model.outputs.enumerated() {
            request.outputs.append(.with {
                $0.name = name
                if position == 0, let classes { $0.parameters["classification"] = .with { $0.int64Param = Int64(classes) } }
            })
        }
        return request
    }

    /// `{"id": ..., "<output>": [values...]}`: numbers for numeric outputs,
    /// strings ("score:index:label") for classification results.
    public func line(for row: InputRow, response: Inference_ModelInferResponse) throws -> [UInt8] {
        var object: [String: Any] = ["id": row.id]
        for (position, output) in response.outputs.enumerated() {
            let raw = position < response.rawOutputContents.count ? response.rawOutputContents[position] : Data()
            object[output.name] = try Self.values(output.datatype, raw, name: output.name)
        }
        return Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
    }

    static let writable: Set<String> = ["FP32", "FP64", "INT64", "INT32", "BYTES"]

    static func values(_ datatype: String, _ raw: Data, name: String) throws -> Any {
        func numbers<T: Numeric>(_: T.Type, _ convert: (T) -> Any) -> [Any] {
            raw.withUnsafeBytes { buffer in
                // Protobuf's bytes need not be aligned for T.
                stride(from: 0, to: buffer.count - buffer.count % MemoryLayout<T>.size, by: MemoryLayout<T>.size).map {
                    convert(buffer.loadUnaligned(fromByteOffset: $0, as: T.self))
                }
            }
        }
        switch datatype {
        // JSON has no NaN or infinity: those are written as strings.
        case "FP32": return numbers(Float.self) { value -> Any in value.isFinite ? Double(value) : "\(value)" }
        case "FP64": return numbers(Double.self) { value -> Any in value.isFinite ? value : "\(value)" }
        case "INT64": return numbers(Int64.self) { $0 }
        case "INT32": return numbers(Int32.self) { $0 }
        case "BYTES":
            return try BytesElements.parse([UInt8](raw), tensorName: name).map { String(decoding: $0, as: UTF8.self) }
        default:
            throw BulkJobError.server("output '\(name)' has datatype \(datatype), which the bulk client does not write")
        }
    }
}
