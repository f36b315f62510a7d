import AsyncAlgorithms
import NIOCore
import NIOHPACK
import NIOHTTP2

/// The request messages of a call, in order; ends when the client half-closes
/// and throws if the stream is reset. Backpressured: the connection reads the
/// next message only as the handler takes them.
public struct GRPCRequestStream: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    let channel: AsyncThrowingChannel<GRPCInboundMessage, any Error>
    /// The call's `grpc-encoding`, and the most a message may inflate to.
    let compression: GRPCCompression?
    let inflateLimit: Int

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingChannel<GRPCInboundMessage, any Error>.AsyncIterator
        let compression: GRPCCompression?
        let inflateLimit: Int

        public mutating func next() async throws -> [UInt8]? {
            guard let message = try await base.next() else { return nil }
            return try message.payload(compression: compression, inflateLimit: inflateLimit)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: channel.makeAsyncIterator(), compression: compression, inflateLimit: inflateLimit)
    }
}

/// Writes a call's response: headers before the first message, framed
/// messages, then the status in trailers (or a trailers-only response when no
/// message was sent). Safe to use from several tasks; writes are serialized.
public actor GRPCResponseWriter {
    private let outbound: NIOAsyncChannelOutboundWriter<HTTP2Frame.FramePayload>
    private let maxMessageBytes: Int
    /// Set once the request's headers are read: the encoding of response messages.
    private var compression: GRPCCompression?
    private var headersSent = false
    private var finished = false

    init(outbound: NIOAsyncChannelOutboundWriter<HTTP2Frame.FramePayload>, maxMessageBytes: Int) {
        self.outbound = outbound
        self.maxMessageBytes = maxMessageBytes
    }

    func compressResponses(with compression: GRPCCompression?) { self.compression = compression }

    private var responseHeaders: HPACKHeaders {
        var headers = Self.responseHeaders
        if let compression { headers.add(name: "grpc-encoding", value: compression.rawValue) }
        return headers
    }

    /// Sends one response message.
    public func write(_ message: [UInt8]) async throws {
        guard !finished else { throw GRPCStatus(.internal, "response already finished") }
        guard message.count <= maxMessageBytes else {
            throw GRPCStatus(.resourceExhausted, "response message of \(message.count) bytes exceeds the limit of \(maxMessageBytes) bytes")
        }
        if !headersSent {
            headersSent = true
            try await outbound.write(.headers(.init(headers: responseHeaders, endStream: false)))
        }
        var buffer = ByteBuffer()
        if let compression {
            GRPCMessageFramer.frame(compressed: try compression.deflate(message), into: &buffer)
        } else {
            buffer.reserveCapacity(message.count + 5)
            GRPCMessageFramer.frame(message, into: &buffer)
        }
        try await outbound.write(.data(.init(data: .byteBuffer(buffer), endStream: false)))
    }

    /// Ends the call with `status`. Later calls do nothing.
    func finish(_ status: GRPCStatus) async {
        guard !finished else { return }
        finished = true
        var trailers = headersSent ? HPACKHeaders() : Self.responseHeaders
        trailers.add(name: "grpc-status", value: String(status.code.rawValue))
        if !status.message.isEmpty {
            trailers.add(name: "grpc-message", value: GRPCStatus.percentEncode(status.message))
        }
        try? await outbound.write(.headers(.init(headers: trailers, endStream: true)))
    }

    /// Answers a request that is not gRPC with a bare HTTP status.
    func reject(httpStatus: Int) async {
        guard !finished else { return }
        finished = true
        try? await outbound.write(.headers(.init(headers: [":status": String(httpStatus)], endStream: true)))
    }

    static let responseHeaders: HPACKHeaders = [
        ":status": "200", "content-type": "application/grpc", "grpc-accept-encoding": GRPCCompression.acceptEncoding,
    ]
}
