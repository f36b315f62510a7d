import GRPCCore
import GRPCNIOTransportHTTP2Posix
import GRPCProtobuf
import SwiftProtobuf
import TritonProto

/// One endpoint's gRPC client (grpc-swift-2): KServe v2 calls without
/// generated stubs. The client reconnects on its own after the server goes
/// away; `run()` keeps its connections until `stop()`.
public final class KServeConnection: Sendable {
    static let service = "inference.GRPCInferenceService"
    static let modelInfer = MethodDescriptor(fullyQualifiedService: service, method: "ModelInfer", type: .unary)
    static let modelMetadata = MethodDescriptor(fullyQualifiedService: service, method: "ModelMetadata", type: .unary)
    static let modelStatistics = MethodDescriptor(fullyQualifiedService: service, method: "ModelStatistics", type: .unary)

    public let address: String
    let client: GRPCClient<HTTP2ClientTransport.Posix>
    let timeout: Duration
    let compression: CompressionAlgorithm
    let metadata: Metadata

    /// `host` is an IP address or a name; `timeout` bounds each call;
    /// `token` goes with every call as `authorization: Bearer`.
    public init(host: String, port: Int, timeout: Duration, compress: Bool, token: String? = nil,
                maxMessageBytes: Int = 64 << 20) throws {
        address = ServerName.endpoint(host, port: port)
        self.timeout = timeout
        var metadata = Metadata()
        if let token { metadata.addString("Bearer \(token)", forKey: "authorization") }
        self.metadata = metadata
        compression = compress ? .gzip : .none
        let serviceConfig = ServiceConfig(methodConfig: [
            MethodConfig(names: [MethodConfig.Name(service: "")],
                         // The transport reads its receive limit from the request-size field.
                         maxRequestMessageBytes: maxMessageBytes, maxResponseMessageBytes: maxMessageBytes),
        ])
        let transport = try HTTP2ClientTransport.Posix(
            target: .dns(host: host, port: port),
            transportSecurity: .plaintext,
            config: .defaults { config in
                // A restarted pod is back within seconds: retry the connection soon.
                config.backoff = .init(initial: .milliseconds(100), max: .seconds(2), multiplier: 1.6, jitter: 0.2)
                config.compression = .init(algorithm: .none, enabledAlgorithms: [.gzip, .deflate])
            },
            serviceConfig: serviceConfig)
        client = GRPCClient(transport: transport)
    }

    /// Runs the client's connections until `stop()` (call once, in a task).
    public func run() async throws { try await client.runConnections() }

    public func stop() { client.beginGracefulShutdown() }

    private var options: CallOptions {
        var options = CallOptions.defaults
        options.timeout = timeout
        options.compression = compression
        return options
    }

    public func infer(_ request: Inference_ModelInferRequest) async throws -> Inference_ModelInferResponse {
        try await unary(Self.modelInfer, request)
    }

    public func metadata(model: String) async throws -> Inference_ModelMetadataResponse {
        try await unary(Self.modelMetadata, Inference_ModelMetadataRequest.with { $0.name = model })
    }

    public func statistics(model: String) async throws -> Inference_ModelStatisticsResponse {
        try await unary(Self.modelStatistics, Inference_ModelStatisticsRequest.with { $0.name = model })
    }

    private func unary<Request: SwiftProtobuf.Message & Sendable, Response: SwiftProtobuf.Message & Sendable>(
        _ method: MethodDescriptor, _ message: Request
    ) async throws -> Response {
        try await client.unary(
            request: ClientRequest(message: message, metadata: metadata), descriptor: method,
            serializer: ProtobufSerializer<Request>(), deserializer: ProtobufDeserializer<Response>(), options: options
        ) { try $0.message }
    }
}

/// Which failures may be retried: the request may not have run, or running
/// it again is harmless because each id is written once.
public enum RetryPolicy {
    public enum Verdict: Equatable, Sendable {
        /// Send again. `endpointSuspect`: the endpoint backs off (it may be
        /// down); `maxAttempts`: a tighter bound than the job's, if any.
        case retry(endpointSuspect: Bool, maxAttempts: Int?)
        /// A rate limit: send again after the wait the server asked for, in
        /// seconds; not a failure (no attempt is used up).
        case wait(Double)
        /// The row's own error: into the errors file.
        case rowError(String)
        /// Nothing will succeed until someone acts (model gone, token refused):
        /// the job stops, resumable; the row is not written.
        case stopJob(String)
    }

    public static func verdict(for error: any Error) -> Verdict {
        if let rpc = error as? RPCError {
            switch rpc.code {
            case .unavailable, .cancelled, .aborted, .unknown:
                return .retry(endpointSuspect: true, maxAttempts: nil)
            case .deadlineExceeded:
                return .retry(endpointSuspect: false, maxAttempts: nil)
            case .resourceExhausted:
                if let seconds = retryAfter(rpc.message) { return .wait(seconds) }
                // A request over the server's size limit stays over it.
                return .retry(endpointSuspect: false, maxAttempts: 3)
            case .notFound, .unauthenticated, .permissionDenied, .unimplemented, .failedPrecondition:
                return .stopJob("\(rpc.code): \(rpc.message)")
            default:
                return .rowError("\(rpc.code): \(rpc.message)")
            }
        }
        if let problem = error as? RowProblem { return .rowError(problem.reason) }
        // Connection-level failures (RuntimeError, NIO errors) mean the endpoint, not the row.
        return .retry(endpointSuspect: true, maxAttempts: nil)
    }

    /// The wait in a rate-limited answer ("...; retry after 0.5 s"), at most 30 s.
    static func retryAfter(_ message: String) -> Double? {
        guard let range = message.range(of: "retry after ", options: .backwards) else { return nil }
        let number = message[range.upperBound...].prefix { $0.isNumber || $0 == "." }
        guard let seconds = Double(number), seconds >= 0 else { return nil }
        return min(seconds, 30)
    }
}
