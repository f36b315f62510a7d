import CompressNIO
import NIOCore

/// gRPC message compression (`grpc-encoding`): gzip and deflate, where
/// gRPC's "deflate" is the zlib format (RFC 1950), as grpc-core writes it.
public enum GRPCCompression: String, Sendable, CaseIterable {
    case gzip
    case deflate

    /// What the server lists in `grpc-accept-encoding`.
    public static let acceptEncoding = "identity,deflate,gzip"

    /// The encoding a request names; nil for identity. Throws for others.
    static func requestEncoding(_ header: String?) throws(GRPCStatus) -> GRPCCompression? {
        guard let header, header != "identity" else { return nil }
        guard let encoding = GRPCCompression(rawValue: header) else {
            throw GRPCStatus(.unimplemented, "grpc-encoding '\(header)' is not supported; use identity, deflate or gzip")
        }
        return encoding
    }

    /// The encoding for responses: the request's own, where the client lists
    /// it in `grpc-accept-encoding` (a client that compresses can inflate).
    static func responseEncoding(request: GRPCCompression?, acceptEncoding: String?) -> GRPCCompression? {
        guard let request, let acceptEncoding else { return nil }
        let accepted = acceptEncoding.split(separator: ",").map { String($0.filter { !$0.isWhitespace }) }
        return accepted.contains(request.rawValue) ? request : nil
    }

    private var algorithm: CompressionAlgorithm {
        switch self {
        case .gzip: .gzip()
        case .deflate: .zlib()
        }
    }

    /// Inflates one message, refusing it as soon as it passes `limit` bytes.
    func inflate(_ message: ByteBuffer, limit: Int) throws(GRPCStatus) -> [UInt8] {
        var input = message
        do {
            var output = try input.decompress(with: algorithm, maxSize: limit)
            return output.readBytes(length: output.readableBytes) ?? []
        } catch let error as CompressNIOError where error == .bufferOverflow {
            throw GRPCStatus(.resourceExhausted, "received message inflates past the limit of \(limit) bytes")
        } catch {
            throw GRPCStatus(.internal, "received message is not valid \(rawValue) data")
        }
    }

    func deflate(_ message: [UInt8]) throws -> ByteBuffer {
        var input = ByteBuffer(bytes: message)
        return try input.compress(with: algorithm)
    }
}
