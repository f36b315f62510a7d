import Foundation
import InferenceCore
import Testing
@testable import HTTPFrontend

let spec = ModelSpec(
    name: "simple", version: 1, backend: "add_sub", maxBatchSize: 8,
    inputs: [TensorSpec(name: "INPUT0", dataType: .int32, dims: [2]), TensorSpec(name: "INPUT1", dataType: .int32, dims: [2])],
    outputs: [TensorSpec(name: "OUTPUT0", dataType: .int32, dims: [2])])

func decode(_ json: String, binary: [UInt8] = [], headerLength: Int?? = .none) throws -> InferRequestDecoder.Decoded {
    let header = Array(json.utf8)
    let length: Int? = headerLength ?? (binary.isEmpty ? nil : header.count)
    return try InferRequestDecoder.decode(body: header + binary, headerLength: length, modelName: "simple", modelVersion: 1, spec: spec)
}

@Suite struct InferRequestDecoderTests {
    @Test func decodesJSONTensorsFlatOrNested() throws {
        let decoded = try decode("""
            {"id":"a","inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"INT32","data":[[1,2]]},
             {"name":"INPUT1","shape":[1,2],"datatype":"INT32","data":[3,-4]}],
             "outputs":[{"name":"OUTPUT0","parameters":{"binary_data":true}}],
             "parameters":{"priority":2,"timeout":1500,"custom":"x"}}
            """)
        #expect(decoded.request.id == "a")
        #expect(try decoded.request.inputs[0].values(as: Int32.self) == [1, 2])
        #expect(try decoded.request.inputs[1].values(as: Int32.self) == [3, -4])
        #expect(decoded.outputs.isBinary("OUTPUT0"))
        #expect(decoded.request.priority == 2)
        #expect(decoded.request.timeout == .microseconds(1500))
        #expect(decoded.request.parameters["custom"] == .string("x"))
    }

    @Test func decodesBinaryTensorsInOrder() throws {
        let a = [Int32(7), 8].withUnsafeBytes { Array($0) }
        let b = [Int32(9), 10].withUnsafeBytes { Array($0) }
        let decoded = try decode("""
            {"inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"INT32","parameters":{"binary_data_size":8}},
             {"name":"INPUT1","shape":[1,2],"datatype":"INT32","parameters":{"binary_data_size":8}}],
             "parameters":{"binary_data_output":true}}
            """, binary: a + b)
        #expect(try decoded.request.inputs[0].values(as: Int32.self) == [7, 8])
        #expect(try decoded.request.inputs[1].values(as: Int32.self) == [9, 10])
        #expect(decoded.outputs.isBinary("OUTPUT0"))
    }

    @Test(arguments: [
        (#"{"inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"INT32","parameters":{"binary_data_size":16}}]}"#, 8, "only 8 bytes"),
        (#"{"inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"INT32","parameters":{"binary_data_size":4}}]}"#, 8, "4 bytes of binary data beyond"),
        (#"{"inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"NOPE","data":[1,2]}]}"#, 0, "unknown datatype 'NOPE'"),
        (#"{"inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"INT32","data":[1,true]}]}"#, 0, "element 1 must be an integer"),
        (#"{"inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"INT32"}]}"#, 0, "neither 'data' nor 'binary_data_size'"),
        (#"{"inputs":{}}"#, 0, "'inputs' array"),
        (#"{"inputs":[], "parameters":{"priority":-1}}"#, 0, "'priority' must be a non-negative integer"),
        (#"{"inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"FP16","data":[1,2]}]}"#, 0, "send it as binary data"),
    ])
    func rejects(json: String, binaryBytes: Int, message: String) {
        let error = #expect(throws: InferenceError.self) {
            _ = try decode(json, binary: [UInt8](repeating: 0, count: binaryBytes))
        }
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
    }

    /// Found by FuzzHTTPInferBody (fuzz/regressions/FuzzHTTPInferBody/huge-shape-json-data):
    /// a shape claiming 2^63 elements made the decoder reserve them before counting the data.
    @Test func aHugeShapeWithJSONDataIsRefusedWithoutAllocatingIt() {
        let error = #expect(throws: InferenceError.self) {
            _ = try decode(#"{"inputs":[{"name":"INPUT0","shape":[922334073709551614,2],"datatype":"INT32","data":[1,2]}]}"#)
        }
        #expect(error?.message.contains("has 2 elements in 'data' but shape") == true, "\(error?.message ?? "")")
    }

    @Test func rejectsHeaderLengthBeyondBody() {
        let error = #expect(throws: InferenceError.self) { _ = try decode("{}", headerLength: .some(100)) }
        #expect(error?.message.contains("larger than the request body") == true)
    }

    @Test func rejectsDeeplyNestedJSON() {
        let nested = String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
        #expect(throws: InferenceError.self) { _ = try decode(#"{"inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"INT32","data":"# + nested + "}]}") }
    }
}

@Suite struct InferResponseEncoderTests {
    @Test func binaryOutputsFollowTheJSONHeader() throws {
        let response = InferenceResponse(id: "x", modelName: "simple", modelVersion: 1, outputs: [
            Tensor(name: "A", shape: [1, 2], values: [Int32(1), 2]),
            Tensor(name: "B", shape: [1, 2], values: [Int32(3), 4]),
        ])
        let (body, headerLength) = try InferResponseEncoder.encode(response, encoding: OutputEncoding(binaryByName: ["B": true]))
        let length = try #require(headerLength)
        let header = try JSONSerialization.jsonObject(with: Data(body[0..<length])) as! [String: Any]
        let outputs = header["outputs"] as! [[String: Any]]
        #expect(outputs[0]["data"] as? [Int] == [1, 2])
        #expect((outputs[1]["parameters"] as? [String: Int])?["binary_data_size"] == 8)
        #expect(Array(body[length...]) == [Int32(3), 4].withUnsafeBytes { Array($0) })
    }

    @Test func allJSONWhenNothingIsBinary() throws {
        let response = InferenceResponse(id: "", modelName: "m", modelVersion: 2, outputs: [Tensor(name: "S", shape: [1], elements: [Array("hi".utf8)])])
        let (body, headerLength) = try InferResponseEncoder.encode(response, encoding: OutputEncoding())
        #expect(headerLength == nil)
        let header = try JSONSerialization.jsonObject(with: Data(body)) as! [String: Any]
        #expect(header["id"] == nil)
        #expect(header["model_version"] as? String == "2")
        #expect((header["outputs"] as! [[String: Any]])[0]["data"] as? [String] == ["hi"])
    }
}
