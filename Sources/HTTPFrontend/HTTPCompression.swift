import CompressNIO
import Foundation
import InferenceCore
import NIOCore

/// `Content-Encoding` / `Accept-Encoding` gzip and deflate, as Triton's HTTP
/// endpoint and tritonclient's `request_compression_algorithm` /
/// `response_compression_algorithm` use them. "deflate" is the zlib format
/// (RFC 1950), which is what HTTP and tritonclient mean by it.
enum HTTPCompression {
    /// The body inflated per `contentEncoding`, refused as soon as it would
    /// pass `limit` bytes (a small body that inflates past the limit is never
    /// allocated whole).
    static func inflate(_ body: ByteBuffer, contentEncoding: String?, limit: Int) throws -> ByteBuffer {
        guard let encoding = contentEncoding?.trimmingCharacters(in: .whitespaces).lowercased(), !encoding.isEmpty, encoding != "identity" else {
            return body
        }
        guard let algorithm = algorithm(encoding) else {
            throw TritonErrors.unsupportedContentEncoding()
        }
        var input = body
        do {
            return try input.decompress(with: algorithm, maxSize: limit)
        } catch let error as CompressNIOError where error == .bufferOverflow {
            throw InferenceError(.resourceExhausted,
                                 "request body inflates past the server's limit of \(limit) bytes (--http-max-input-size)")
        } catch {
            throw InferenceError.invalidArgument("request body is not valid \(encoding) data")
        }
    }

    /// The encoding to answer with: the first of gzip, deflate the client accepts.
    static func responseEncoding(acceptEncoding: String?) -> String? {
        guard let header = acceptEncoding?.lowercased() else { return nil }
        let accepted = header.split(separator: ",").compactMap { item -> String? in
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let name = parts.first else { return nil }
            // `q=0` (or 0.0, 0.000) refuses an encoding.
            for parameter in parts.dropFirst() where parameter.hasPrefix("q=") {
                if let weight = Double(parameter.dropFirst(2)), weight <= 0 { return nil }
            }
            return String(name)
        }
        return ["gzip", "deflate"].first(where: accepted.contains)
    }

    static func deflate(_ body: ByteBuffer, algorithm name: String) throws -> ByteBuffer {
        guard let algorithm = algorithm(name) else { return body }
        var input = body
        return try input.compress(with: algorithm)
    }

    private static func algorithm(_ name: String) -> CompressionAlgorithm? {
        switch name {
        case "gzip", "x-gzip": .gzip()
        case "deflate": .zlib()
        default: nil
        }
    }
}
