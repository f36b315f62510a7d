// The HTTP inference body: JSON, the binary tensor data extension and the
// Inference-Header-Content-Length split, then validation against a model and
// the response encoder. Every input must end in a value or an InferenceError.
@testable import HTTPFrontend
import InferenceCore

/// A model with every kind of input the decoder treats differently: fixed and
/// variable dims, BYTES, a non-batching shape inside a batching model.
let model = ModelSpec(
    name: "fuzz", version: 1, backend: "identity", maxBatchSize: 8,
    inputs: [
        TensorSpec(name: "F", dataType: .fp32, dims: [4]),
        TensorSpec(name: "I", dataType: .int64, dims: [-1]),
        TensorSpec(name: "S", dataType: .bytes, dims: [-1], isOptional: true),
        TensorSpec(name: "B", dataType: .bool, dims: [2, -1], isOptional: true),
    ],
    outputs: [
        TensorSpec(name: "F", dataType: .fp32, dims: [4]),
        TensorSpec(name: "S", dataType: .bytes, dims: [-1]),
    ])

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPInferBody(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start, count > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: start, count: count))
    // Byte 0 odd: bytes 1-2 are Inference-Header-Content-Length (big endian,
    // negative when byte 0 is 0xff) and the body follows; even: no header.
    let headerLength: Int?
    let body: [UInt8]
    if bytes[0] & 1 == 1, count >= 3 {
        let length = Int(bytes[1]) << 8 | Int(bytes[2])
        headerLength = bytes[0] == 0xff ? -length : length
        body = Array(bytes[3...])
    } else {
        headerLength = nil
        body = Array(bytes.dropFirst())
    }
    do {
        let decoded = try InferRequestDecoder.decode(body: body, headerLength: headerLength, modelName: "fuzz",
                                                     modelVersion: 1, spec: model)
        let validated = try model.validate(decoded.request)
        for tensor in validated.request.inputs where tensor.dataType == .bytes {
            _ = try tensor.elements()
        }
        // Echo the inputs as outputs through the response encoder.
        let outputs = validated.request.inputs.filter { input in model.outputs.contains { $0.name == input.name } }
        let response = InferenceResponse(id: validated.request.id, modelName: "fuzz", modelVersion: 1, outputs: outputs)
        _ = try InferResponseEncoder.encode(response, encoding: decoded.outputs)
    } catch is InferenceError {
        // Refusing bad input with our error type is the expected outcome.
    } catch {
        fatalError("unexpected error type \(type(of: error)): \(error)")
    }
    return 0
}
