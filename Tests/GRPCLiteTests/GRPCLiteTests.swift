import NIOCore
import NIOHPACK
import Testing
@testable import GRPCLite

@Suite struct GRPCMessageDeframerTests {
    func framed(_ messages: [[UInt8]]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for message in messages { GRPCMessageFramer.frame(message, into: &buffer) }
        return buffer
    }

    @Test func messageSplitAcrossManyFrames() throws {
        let message = [UInt8](0..<200)
        let bytes = framed([message])
        var deframer = GRPCMessageDeframer(maxMessageBytes: 1024)
        var received: [[UInt8]] = []
        for offset in stride(from: 0, to: bytes.readableBytes, by: 3) {
            deframer.append(bytes.getSlice(at: offset, length: min(3, bytes.readableBytes - offset))!)
            while let next = try deframer.next() { received.append(next) }
        }
        #expect(received == [message])
        #expect(!deframer.hasPartialMessage)
    }

    @Test func manyMessagesInOneFrame() throws {
        let messages: [[UInt8]] = [[1], [], [2, 3], [UInt8](repeating: 9, count: 100)]
        var deframer = GRPCMessageDeframer(maxMessageBytes: 1024)
        deframer.append(framed(messages))
        var received: [[UInt8]] = []
        while let next = try deframer.next() { received.append(next) }
        #expect(received == messages)
    }

    @Test func oversizeMessageIsResourceExhausted() {
        var deframer = GRPCMessageDeframer(maxMessageBytes: 10)
        deframer.append(framed([[UInt8](repeating: 0, count: 11)]))
        #expect(throws: GRPCStatus(.resourceExhausted, "received message of 11 bytes exceeds the limit of 10 bytes")) {
            _ = try deframer.next()
        }
    }

    @Test func partialMessageIsReported() throws {
        var deframer = GRPCMessageDeframer(maxMessageBytes: 10)
        deframer.append(framed([[1, 2, 3]]).getSlice(at: 0, length: 6)!)
        #expect(try deframer.next() == nil)
        #expect(deframer.hasPartialMessage)
    }
}

@Suite struct GRPCHeadTests {
    let good: HPACKHeaders = [":method": "POST", ":path": "/inference.GRPCInferenceService/ModelInfer",
                              "content-type": "application/grpc", "te": "trailers", "authorization": "Bearer x"]

    @Test func acceptsAGRPCRequest() throws {
        var headers = good
        headers.add(name: "grpc-timeout", value: "250m")
        let accepted = try GRPCRequestHead.validate(headers).get()
        #expect(accepted.path == "/inference.GRPCInferenceService/ModelInfer")
        #expect(accepted.timeout == .milliseconds(250))
        #expect(GRPCRequestHead.metadata(headers).map(\.name) == ["authorization"])
    }

    @Test func acceptsGzipAndDeflateAndAnswersInKind() throws {
        for encoding in GRPCCompression.allCases {
            var headers = good
            headers.add(name: "grpc-encoding", value: encoding.rawValue)
            headers.add(name: "grpc-accept-encoding", value: "identity, deflate, gzip")
            let accepted = try GRPCRequestHead.validate(headers).get()
            #expect(accepted.compression == encoding)
            #expect(accepted.responseCompression == encoding)
        }
        var plain = good
        plain.add(name: "grpc-accept-encoding", value: "gzip")
        #expect(try GRPCRequestHead.validate(plain).get().responseCompression == nil)
    }

    @Test func rejectsUnknownCompression() {
        var headers = good
        headers.add(name: "grpc-encoding", value: "snappy")
        guard case .failure(.grpc(let status)) = GRPCRequestHead.validate(headers) else {
            Issue.record("expected UNIMPLEMENTED")
            return
        }
        #expect(status.code == .unimplemented)
    }

    @Test func compressedMessagesInflateWithinTheLimit() throws {
        for encoding in GRPCCompression.allCases {
            let message = [UInt8](repeating: 7, count: 10_000)
            var frame = ByteBuffer()
            GRPCMessageFramer.frame(compressed: try encoding.deflate(message), into: &frame)
            var deframer = GRPCMessageDeframer(maxMessageBytes: 20_000, compression: encoding)
            deframer.append(frame)
            #expect(try deframer.next() == message)

            // A bomb: a small frame inflating past the limit is refused while inflating.
            var bomb = ByteBuffer()
            GRPCMessageFramer.frame(compressed: try encoding.deflate([UInt8](repeating: 0, count: 1 << 20)), into: &bomb)
            #expect(bomb.readableBytes < 20_000)
            var limited = GRPCMessageDeframer(maxMessageBytes: 20_000, compression: encoding)
            limited.append(bomb)
            #expect(throws: GRPCStatus.self) { _ = try limited.next() }
        }
    }

    @Test func compressedFlagWithoutEncodingIsAnError() {
        var frame = ByteBuffer()
        frame.writeInteger(UInt8(1))
        frame.writeInteger(UInt32(1), endianness: .big)
        frame.writeInteger(UInt8(0))
        var deframer = GRPCMessageDeframer(maxMessageBytes: 100)
        deframer.append(frame)
        #expect(throws: GRPCStatus.self) { _ = try deframer.next() }
    }

    @Test func nonGRPCRequestsGetHTTPStatuses() {
        var headers = good
        headers.replaceOrAdd(name: "content-type", value: "application/json")
        #expect(GRPCRequestHead.validate(headers) == .failure(.http(status: 415)))
        headers = good
        headers.replaceOrAdd(name: ":method", value: "GET")
        #expect(GRPCRequestHead.validate(headers) == .failure(.http(status: 405)))
    }

    @Test(arguments: [("1H", Duration.seconds(3600)), ("2M", .seconds(120)), ("3S", .seconds(3)), ("4m", .milliseconds(4)),
                      ("5u", .microseconds(5)), ("6n", .nanoseconds(6)), ("99999999S", .seconds(99_999_999))])
    func parsesTimeouts(text: String, expected: Duration) {
        #expect(GRPCTimeout.parse(text) == expected)
    }

    @Test(arguments: ["", "S", "1x", "123456789S", "-1S", "1.5S"])
    func rejectsMalformedTimeouts(text: String) {
        #expect(GRPCTimeout.parse(text) == nil)
    }

    @Test func statusMessagesArePercentEncoded() {
        let message = "bad 100% café\nline"
        let encoded = GRPCStatus.percentEncode(message)
        #expect(encoded == "bad 100%25 caf%C3%A9%0Aline")
        #expect(GRPCStatus.percentDecode(encoded) == message)
    }
}
