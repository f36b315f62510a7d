// The gRPC path before the scheduler: the length-prefixed deframer fed in
// arbitrary chunks (compressed messages inflated within the limit), protobuf decoding of ModelInferRequest, conversion to the
// core request and validation against a model.
@testable import GRPCFrontend
import GRPCLite
import InferenceCore
import NIOCore
import TritonProto

let model = ModelSpec(
    name: "fuzz", version: 1, backend: "identity", maxBatchSize: 8,
    inputs: [
        TensorSpec(name: "F", dataType: .fp32, dims: [4]),
        TensorSpec(name: "I", dataType: .int64, dims: [-1]),
        TensorSpec(name: "S", dataType: .bytes, dims: [-1], isOptional: true),
    ],
    outputs: [TensorSpec(name: "F", dataType: .fp32, dims: [4])])

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGRPCInfer(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start, count > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: start, count: count))
    // First byte: the chunk size DATA frames are cut into (low 6 bits), and the
    // call's grpc-encoding (identity, gzip, deflate: compressed frames inflate).
    let chunk = Int(bytes[0] & 0x3F) * 4 + 1
    let compression: GRPCCompression? = [nil, .gzip, .deflate, nil][Int(bytes[0] >> 6)]
    let stream = bytes.dropFirst()
    var deframer = GRPCMessageDeframer(maxMessageBytes: 1 << 20, compression: compression)
    var offset = stream.startIndex
    do {
        while offset < stream.endIndex {
            let end = min(offset + chunk, stream.endIndex)
            deframer.append(ByteBuffer(bytes: stream[offset..<end]))
            offset = end
            while let message = try deframer.next() {
                handle(message)
            }
        }
    } catch {
        // A malformed frame ends the stream with a status, as the server does.
    }
    return 0
}

func handle(_ message: [UInt8]) {
    do {
        let proto = try Inference_ModelInferRequest(serializedBytes: message)
        let request = try GRPCTensorCoding.request(from: proto, version: 1, model: "fuzz")
        let validated = try model.validate(request)
        for tensor in validated.request.inputs where tensor.dataType == .bytes {
            _ = try tensor.elements()
        }
        let response = InferenceResponse(id: request.id, modelName: "fuzz", modelVersion: 1,
                                          outputs: validated.request.inputs.filter { $0.name == "F" })
        _ = try GRPCTensorCoding.response(response).serializedBytes() as [UInt8]
    } catch is InferenceError {
    } catch {
        // swift-protobuf's decoding errors: the server answers INVALID_ARGUMENT.
    }
}
