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
}

/// Reassembles messages from DATA frames: a message may span many frames and
/// one frame may hold many messages.
public struct GRPCMessageDeframer: Sendable {
    public let maxMessageBytes: Int
    private var buffer = ByteBuffer()

    public init(maxMessageBytes: Int) {
        self.maxMessageBytes = maxMessageBytes
    }

    public mutating func append(_ bytes: ByteBuffer) {
        var bytes = bytes
        buffer.writeBuffer(&bytes)
    }

    /// True when a partial message is buffered (an end of stream here is an error).
    public var hasPartialMessage: Bool { buffer.readableBytes > 0 }

    /// The next complete message, nil if more bytes are needed.
    public mutating func next() throws(GRPCStatus) -> [UInt8]? {
        guard buffer.readableBytes >= 5,
              let flag = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
              let length = buffer.getInteger(at: buffer.readerIndex + 1, endianness: .big, as: UInt32.self) else {
            return nil
        }
        guard flag == 0 else {
            throw GRPCStatus(.unimplemented, "compressed messages are not supported; use identity encoding")
        }
        guard Int(length) <= maxMessageBytes else {
            throw GRPCStatus(.resourceExhausted, "received message of \(length) bytes exceeds the limit of \(maxMessageBytes) bytes")
        }
        guard buffer.readableBytes >= 5 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 5)
        let message = buffer.readBytes(length: Int(length))!
        if buffer.readableBytes == 0 { buffer.clear() } else if buffer.readerIndex > 1 << 20 { buffer.discardReadBytes() }
        return message
    }
}
