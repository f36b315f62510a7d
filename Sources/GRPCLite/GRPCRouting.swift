import AsyncAlgorithms
import NIOHPACK

/// What a handler knows about its call.
public struct GRPCCallContext: Sendable {
    /// `/package.Service/Method`.
    public let path: String
    /// Request headers other than the HTTP/2 pseudo-headers and gRPC's own.
    public let metadata: [(name: String, value: String)]
    /// From `grpc-timeout`; the server cancels the handler when it passes.
    public let timeout: Duration?
}


/// A handler for one method. Handlers receive and return serialized messages;
/// the protocol layer above decodes them. Throw `GRPCStatus` to end the call.
public enum GRPCMethodHandler: Sendable {
    case unary(@Sendable (_ request: [UInt8], _ context: GRPCCallContext) async throws -> [UInt8])
    case bidirectionalStreaming(@Sendable (_ requests: GRPCRequestStream, _ responses: GRPCResponseWriter,
                                           _ context: GRPCCallContext) async throws -> Void)
}

/// Routes `:path` to handlers.
public struct GRPCRouter: Sendable {
    private var handlers: [String: GRPCMethodHandler] = [:]

    public init() {}

    public mutating func register(_ path: String, _ handler: GRPCMethodHandler) {
        handlers[path] = handler
    }

    public func handler(for path: String) -> GRPCMethodHandler? { handlers[path] }
}

/// Checks a request's headers before any handler runs.
public enum GRPCRequestHead {
    public struct Accepted: Sendable, Equatable {
        public let path: String
        public let timeout: Duration?
        /// The request's message encoding (`grpc-encoding`), nil for identity.
        public var compression: GRPCCompression? = nil
        /// The encoding for response messages, nil for identity.
        public var responseCompression: GRPCCompression? = nil
    }

    public enum Rejection: Error, Equatable {
        /// Not a gRPC request: answer with this HTTP status and no gRPC status.
        case http(status: Int)
        /// A gRPC request refused with this status (every answer lists
        /// `grpc-accept-encoding`).
        case grpc(GRPCStatus)
    }

    public static func validate(_ headers: HPACKHeaders) -> Result<Accepted, Rejection> {
        guard headers.first(name: ":method") == "POST" else { return .failure(.http(status: 405)) }
        guard let contentType = headers.first(name: "content-type"), contentType.hasPrefix("application/grpc") else {
            return .failure(.http(status: 415))
        }
        guard let path = headers.first(name: ":path"), path.hasPrefix("/") else {
            return .failure(.grpc(GRPCStatus(.unimplemented, "missing :path")))
        }
        let compression: GRPCCompression?
        do {
            compression = try GRPCCompression.requestEncoding(headers.first(name: "grpc-encoding"))
        } catch {
            return .failure(.grpc(error))
        }
        var timeout: Duration?
        if let text = headers.first(name: "grpc-timeout") {
            guard let parsed = GRPCTimeout.parse(text) else {
                return .failure(.grpc(GRPCStatus(.invalidArgument, "malformed grpc-timeout '\(text)'")))
            }
            timeout = parsed
        }
        return .success(Accepted(
            path: path, timeout: timeout, compression: compression,
            responseCompression: GRPCCompression.responseEncoding(request: compression, acceptEncoding: headers.first(name: "grpc-accept-encoding"))))
    }

    static let reserved: Set<String> = ["te", "content-type", "grpc-encoding", "grpc-accept-encoding", "grpc-timeout", "user-agent"]

    static func metadata(_ headers: HPACKHeaders) -> [(name: String, value: String)] {
        headers.filter { !$0.name.hasPrefix(":") && !reserved.contains($0.name) }.map { ($0.name, $0.value) }
    }
}
