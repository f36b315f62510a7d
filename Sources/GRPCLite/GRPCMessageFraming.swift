import NIOCore

/// gRPC's length-prefixed message framing (a 1-byte compressed flag, a 4-byte
/// big-endian length, the message), as values with no I/O.
public enum GRPCMessageFramer {
    /// Frames one uncompressed message.
    public static func frame(_ message: [UInt8], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(message.count), endianness: .big)
        buffer.writeBytes(message)
    }

    /// Frames one message compressed with the call's encoding.
    static func frame(compressed message: ByteBuffer, into buffer: inout ByteBuffer) {
        var message = message
        buffer.writeInteger(UInt8(1))
        buffer.writeInteger(UInt32(message.readableBytes), endianness: .big)
        buffer.writeBuffer(&message)
    }
}

/// Reassembles messages from DATA frames: a message may span many frames and
/// one frame may hold many messages.
public struct GRPCMessageDeframer: Sendable {
    public let maxMessageBytes: Int
    /// The call's `grpc-encoding`; messages flagged compressed use it.
    public let compression: GRPCCompression?
    private var buffer = ByteBuffer()

    public init(maxMessageBytes: Int, compression: GRPCCompression? = nil) {
        self.maxMessageBytes = maxMessageBytes
        self.compression = compression
    }

    public mutating func append(_ bytes: ByteBuffer) {
        var bytes = bytes
        buffer.writeBuffer(&bytes)
    }

    /// True when a partial message is buffered (an end of stream here is an error).
    public var hasPartialMessage: Bool { buffer.readableBytes > 0 }

    /// The next complete message, inflated, nil if more bytes are needed.
    public mutating func next() throws(GRPCStatus) -> [UInt8]? {
        try nextMessage()?.payload(compression: compression, inflateLimit: maxMessageBytes)
    }

    /// The next complete message as it came (compressed or not).
    public mutating func nextMessage() throws(GRPCStatus) -> GRPCInboundMessage? {
        guard buffer.readableBytes >= 5,
              let flag = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
              let length = buffer.getInteger(at: buffer.readerIndex + 1, endianness: .big, as: UInt32.self) else {
            return nil
        }
        guard flag == 0 || flag == 1 else {
            throw GRPCStatus(.internal, "message has an unknown compressed flag \(flag)")
        }
        if flag == 1, compression == nil {
            throw GRPCStatus(.internal, "compressed message on a call without grpc-encoding")
        }
        guard Int(length) <= maxMessageBytes else {
            throw GRPCStatus(.resourceExhausted, "received message of \(length) bytes exceeds the limit of \(maxMessageBytes) bytes")
        }
        guard buffer.readableBytes >= 5 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 5)
        let message = GRPCInboundMessage(compressed: flag == 1, bytes: buffer.readSlice(length: Int(length))!)
        if buffer.readableBytes == 0 { buffer.clear() } else if buffer.readerIndex > 1 << 20 { buffer.discardReadBytes() }
        return message
    }
}

/// One received message, still compressed if its flag says so.
public struct GRPCInboundMessage: Sendable {
    public let compressed: Bool
    let bytes: ByteBuffer

    /// The message's bytes, inflated with the call's encoding within `inflateLimit`.
    func payload(compression: GRPCCompression?, inflateLimit: Int) throws(GRPCStatus) -> [UInt8] {
        if compressed, let compression {
            return try compression.inflate(bytes, limit: inflateLimit)
        }
        return Array(bytes.readableBytesView)
    }
}
