import Testing
@testable import InferenceCore

@Suite struct DataTypeTests {
    @Test(arguments: DataType.allCases)
    func configNameRoundTrips(_ type: DataType) {
        #expect(DataType(configName: type.configName) == type)
    }

    @Test func bytesIsStringInConfig() {
        #expect(DataType.bytes.configName == "TYPE_STRING")
        #expect(DataType(configName: "TYPE_BYTES") == nil)
        #expect(DataType(configName: "INT32") == nil)
    }

    @Test func elementSizes() {
        #expect(DataType.bool.elementByteSize == 1)
        #expect(DataType.bf16.elementByteSize == 2)
        #expect(DataType.fp32.elementByteSize == 4)
        #expect(DataType.uint64.elementByteSize == 8)
        #expect(DataType.bytes.elementByteSize == nil)
    }
}

@Suite struct TensorTests {
    @Test func valuesRoundTrip() throws {
        let tensor = Tensor(name: "x", shape: [2, 2], values: [Int32(1), -2, 3, Int32.max])
        #expect(tensor.dataType == .int32)
        #expect(tensor.bytes.count == 16)
        #expect(try tensor.values(as: Int32.self) == [1, -2, 3, Int32.max])
        #expect(throws: InferenceError.self) { try tensor.values(as: Float.self) }
    }

    @Test func bytesElementsRoundTrip() throws {
        let elements: [[UInt8]] = [Array("alpha".utf8), [], [0, 255, 7]]
        let tensor = Tensor(name: "s", shape: [3], elements: elements)
        #expect(tensor.bytes.count == 4 * 3 + 5 + 0 + 3)
        #expect(try tensor.elements() == elements)
        #expect(try BytesElements.count(tensor.bytes, tensorName: "s") == 3)
    }

    @Test func truncatedBytesElementsAreRejected() {
        #expect(throws: InferenceError.self) { try BytesElements.parse([5, 0, 0, 0, 1, 2], tensorName: "s") }
        #expect(throws: InferenceError.self) { try BytesElements.count([1, 0], tensorName: "s") }
    }

    @Test func shapeMathDetectsOverflowAndNegatives() throws {
        #expect(try ShapeMath.elementCount([2, 3, 4], tensorName: "t") == 24)
        #expect(try ShapeMath.elementCount([], tensorName: "t") == 1)
        #expect(throws: InferenceError.self) { try ShapeMath.elementCount([1 << 40, 1 << 40], tensorName: "t") }
        #expect(throws: InferenceError.self) { try ShapeMath.elementCount([2, -1], tensorName: "t") }
        #expect(throws: InferenceError.self) { try ShapeMath.byteSize([1 << 31, 1 << 31], dataType: .fp64, tensorName: "t") }
        #expect(try ShapeMath.byteSize([3], dataType: .bytes, tensorName: "t") == nil)
    }

    @Test func durationNanoseconds() {
        #expect(Duration.microseconds(1500).nanosecondsClamped == 1_500_000)
        #expect(Duration.seconds(-1).nanosecondsClamped == 0)
    }

    @Test func rowsOfDifferentLengthsConcatenateZeroPadded() throws {
        // Token states of two parts of one request: 2 rows of 1 token, 1 row of 2 tokens; hidden 2.
        let a = Tensor(name: "S", shape: [2, 1, 2], values: [Float]([1, 2, 3, 4]))
        let b = Tensor(name: "S", shape: [1, 2, 2], values: [Float]([5, 6, 7, 8]))
        let joined = try Tensor.concatenatingRows([a, b])
        #expect(joined.shape == [3, 2, 2])
        #expect(try joined.values(as: Float.self) == [1, 2, 0, 0, 3, 4, 0, 0, 5, 6, 7, 8])
        // Rows of one width never pad; other shape mismatches still fail.
        #expect(try Tensor.concatenatingRows([a, a]).shape == [4, 1, 2])
        #expect(throws: InferenceError.self) {
            try Tensor.concatenatingRows([Tensor(name: "E", shape: [1, 2], values: [Float]([1, 2])), Tensor(name: "E", shape: [1, 3], values: [Float]([1, 2, 3]))])
        }
    }
}
