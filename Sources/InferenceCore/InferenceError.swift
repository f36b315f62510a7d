/// The one error type every layer throws. Its code maps once to an HTTP status
/// (HTTPFrontend) and once to a gRPC status; its message names what was wrong
/// (model, tensor, field, value) but never echoes tensor contents.
public struct InferenceError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is. Opaque so new codes do not break callers.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Kind: String, Sendable, Hashable {
            case invalidArgument, notFound, unavailable, `internal`, unsupported, alreadyExists,
                 cancelled, deadlineExceeded, resourceExhausted, unauthenticated, permissionDenied
        }
        let kind: Kind
        public var description: String { kind.rawValue }

        /// The request is malformed or does not fit the model.
        public static let invalidArgument = Code(kind: .invalidArgument)
        /// The model, version or route does not exist.
        public static let notFound = Code(kind: .notFound)
        /// The server or model cannot take the request now (not ready, queue full, draining).
        public static let unavailable = Code(kind: .unavailable)
        /// A fault inside the server or a backend.
        public static let `internal` = Code(kind: .internal)
        /// The feature exists in the protocol but BatchServer does not provide it.
        public static let unsupported = Code(kind: .unsupported)
        public static let alreadyExists = Code(kind: .alreadyExists)
        /// The client went away or cancelled.
        public static let cancelled = Code(kind: .cancelled)
        public static let deadlineExceeded = Code(kind: .deadlineExceeded)
        /// A size limit was exceeded.
        public static let resourceExhausted = Code(kind: .resourceExhausted)
        public static let unauthenticated = Code(kind: .unauthenticated)
        public static let permissionDenied = Code(kind: .permissionDenied)
    }

    public var code: Code
    public var message: String
    /// When the client may try again (a rate limit): HTTP answers 429 with
    /// `Retry-After`, gRPC RESOURCE_EXHAUSTED.
    public var retryAfter: Duration?

    public init(_ code: Code, _ message: String, retryAfter: Duration? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "\(code): \(message)" }

    public static func invalidArgument(_ message: String) -> InferenceError { .init(.invalidArgument, message) }
    public static func notFound(_ message: String) -> InferenceError { .init(.notFound, message) }
    public static func unavailable(_ message: String) -> InferenceError { .init(.unavailable, message) }
    public static func `internal`(_ message: String) -> InferenceError { .init(.internal, message) }
    public static func unsupported(_ message: String) -> InferenceError { .init(.unsupported, message) }
}
