import AccessControl
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import InferenceCore
import Logging
import NIOCore
import NIOSSL
import TextTasks

/// Settings of the HTTP/REST frontend.
public struct HTTPFrontendConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Largest request body accepted, in bytes (Triton's default: 64 MiB).
    public var maxRequestBytes: Int
    /// TLS for every connection; nil serves plain text.
    public var tls: TLSConfiguration?
    /// A connection that reads no part of a request (head, body chunk) for this
    /// long while it is not waiting on a response is closed: idle keep-alive
    /// connections, and clients that trickle headers or bodies (slowloris).
    public var idleTimeout: Duration?
    /// The model the Presidio routes (/analyze, /anonymize, /deanonymize) run.
    public var deidentifierModel: String

    public init(host: String = "0.0.0.0", port: Int = 8000, maxRequestBytes: Int = 64 << 20, tls: TLSConfiguration? = nil,
                idleTimeout: Duration? = .seconds(60), deidentifierModel: String = "phi_deidentifier") {
        self.deidentifierModel = deidentifierModel
        self.tls = tls
        self.idleTimeout = idleTimeout
        self.host = host
        self.port = port
        self.maxRequestBytes = maxRequestBytes
    }
}

/// The KServe v2 HTTP/REST API, with Triton's routes, JSON and status codes.
/// It turns HTTP into calls on the server core and the answers back into
/// HTTP; what a request means is decided behind `InferenceServer`.
public struct KServeHTTPServer: Sendable {
    let configuration: HTTPFrontendConfiguration
    let server: any InferenceServer
    let access: AccessPolicy
    /// Set with `--audit-log`: one line per request, who and what, never content.
    let audit: Logger?
    let logger: Logger

    public init(configuration: HTTPFrontendConfiguration, server: any InferenceServer, access: AccessPolicy = .open,
                audit: Logger? = nil, logger: Logger) {
        self.configuration = configuration
        self.server = server
        self.access = access
        self.audit = audit
        self.logger = logger
    }

    /// The Hummingbird application, a Service to run in the server's ServiceGroup.
    public func makeApplication() throws -> some ApplicationProtocol {
        let router = Router(context: KServeRequestContext.self)
        router.add(middleware: TritonErrorMiddleware(logger: logger))
        router.add(middleware: AccessMiddleware(access: access, audit: audit))
        addRoutes(to: router)
        let logger = self.logger
        let http1 = HTTP1Channel.Configuration(additionalChannelHandlers: [ClientDisconnectHandler()],
                                               idleTimeout: configuration.idleTimeout.map(TimeAmount.init))
        var server = HTTPServerBuilder.http1(configuration: http1)
        if var tls = configuration.tls {
            tls.applicationProtocols = ["http/1.1"]
            server = try .tls(.http1(configuration: http1), tlsConfiguration: tls)
        }
        return Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port)),
            onServerRunning: { channel in
                logger.info("HTTP frontend listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
            },
            logger: logger)
    }

    func addRoutes(to router: Router<KServeRequestContext>) {
        router.get("/v2") { _, _ in
            try json(HTTPResponseBodies.ServerMetadata(
                name: server.identity.name, version: server.identity.version, extensions: server.identity.extensions))
        }
        router.get("/v2/health/live") { _, _ in Response(status: .ok) }
        router.get("/v2/health/ready") { _, _ in
            Response(status: server.isReady ? .ok : .badRequest)
        }
        router.get("/v2/models/stats") { _, _ in
            try json(HTTPResponseBodies.StatisticsBody(model_stats: try server.statistics("", version: "").map(HTTPResponseBodies.ModelStatisticsBody.init)))
        }
        router.post("/v2/repository/index") { request, _ in
            let readyOnly = try Self.readyFlag(try await body(request))
            return try json(server.repositoryIndex(readyOnly: readyOnly).map(HTTPResponseBodies.IndexEntry.init))
        }
        for prefix in ["/v2/repository/models/:model", "/v2/repository/:repository/models/:model"] {
            router.post(RouterPath(prefix + "/load")) { request, context in
                let parameters = try HTTPAdminBodies.loadParameters(try await body(request))
                try await server.loadModel(try context.parameters.require("model"), configJSON: parameters.config, files: parameters.files)
                return Response(status: .ok)
            }
            router.post(RouterPath(prefix + "/unload")) { request, context in
                _ = try await body(request)
                try await server.unloadModel(try context.parameters.require("model"))
                return Response(status: .ok)
            }
        }
        for prefix in ["/v2/models/:model", "/v2/models/:model/versions/:version"] {
            router.get(RouterPath(prefix)) { _, context in
                let (name, version) = try Self.target(context)
                return try json(HTTPResponseBodies.modelMetadata(try server.modelVersions(name, version: version)))
            }
            router.get(RouterPath(prefix + "/ready")) { _, context in
                let (name, version) = try Self.target(context)
                return Response(status: server.isModelReady(name, version: version) ? .ok : .badRequest)
            }
            router.get(RouterPath(prefix + "/config")) { _, context in
                let (name, version) = try Self.target(context)
                return Self.bytesResponse(try server.model(name, version: version).configJSON(), contentType: "application/json")
            }
            router.get(RouterPath(prefix + "/stats")) { _, context in
                let (name, version) = try Self.target(context)
                return try json(HTTPResponseBodies.StatisticsBody(
                    model_stats: try server.statistics(name, version: version).map(HTTPResponseBodies.ModelStatisticsBody.init)))
            }
            router.postCancellable(RouterPath(prefix + "/infer")) { request, context in
                try await infer(request, context: context)
            }
        }
        addAdministrationRoutes(to: router)
        addEmbeddingRoutes(to: router)
        addRerankRoutes(to: router)
        addPresidioRoutes(to: router)
    }

    /// The request body, inflated where it is compressed, within the size limit.
    func body(_ request: Request) async throws -> ByteBuffer {
        var request = request
        let buffer = try await request.collectBody(upTo: configuration.maxRequestBytes)
        return try HTTPCompression.inflate(buffer, contentEncoding: request.headers[.contentEncoding],
                                           limit: configuration.maxRequestBytes)
    }

    /// The request's `traceparent` and `tracestate` headers.
    static func traceHeaders(_ request: Request) -> [String: String] {
        var headers: [String: String] = [:]
        for field in InferenceCall.traceHeaderNames {
            if let value = request.headers[HTTPField.Name(field)!] { headers[field] = value }
        }
        return headers
    }

    private func infer(_ request: Request, context: KServeRequestContext) async throws -> Response {
        let (name, version) = try Self.target(context)
        let headerLength = try Self.inferenceHeaderLength(request.headers)
        let body = Array(try await body(request).readableBytesView)
        var call = InferenceCall(modelName: name, modelVersion: version, protocolName: "http", requestBytes: body.count)
        call.traceHeaders = Self.traceHeaders(request)
        let (response, encoding) = try await server.infer(call) { spec in
            let decoded = try InferRequestDecoder.decode(
                body: body, headerLength: headerLength, modelName: name, modelVersion: spec.version, spec: spec)
            return (decoded.request, decoded.outputs)
        }
        let (bytes, jsonLength) = try InferResponseEncoder.encode(response, encoding: encoding)
        var headers = HTTPFields()
        if let jsonLength {
            headers[.contentType] = "application/octet-stream"
            headers[HTTPField.Name("Inference-Header-Content-Length")!] = String(jsonLength)
        } else {
            headers[.contentType] = "application/json"
        }
        var payload = ByteBuffer(bytes: bytes)
        if let algorithm = HTTPCompression.responseEncoding(acceptEncoding: request.headers[.acceptEncoding]) {
            payload = try HTTPCompression.deflate(payload, algorithm: algorithm)
            headers[.contentEncoding] = algorithm
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: payload))
    }

    private static func target(_ context: KServeRequestContext) throws -> (String, String) {
        (try context.parameters.require("model"), context.parameters.get("version") ?? "")
    }

    static func inferenceHeaderLength(_ headers: HTTPFields) throws -> Int? {
        guard let text = headers[HTTPField.Name("Inference-Header-Content-Length")!] else { return nil }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)), value >= 0 else {
            throw InferenceError.invalidArgument("Inference-Header-Content-Length must be a non-negative integer")
        }
        return value
    }

    private static func readyFlag(_ body: ByteBuffer) throws -> Bool {
        guard body.readableBytes > 0 else { return false }
        let value = try JSONValue.object(from: body, what: "repository index request")
        guard let ready = value["ready"] else { return false }
        guard case .bool(let flag) = ready else { throw InferenceError.invalidArgument("'ready' must be a boolean") }
        return flag
    }

    static func bytesResponse(_ bytes: [UInt8], contentType: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    return KServeHTTPServer.bytesResponse(Array(try encoder.encode(value)), contentType: "application/json", status: status)
}

/// Turns every error into Triton's `{"error": "..."}` body with the mapped status.
struct TritonErrorMiddleware: RouterMiddleware {
    typealias Context = KServeRequestContext
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let dialect = ErrorDialect.forPath(request.uri.path)
        do {
            return try await next(request, context)
        } catch let error as InferenceError {
            logger.debug("request failed", metadata: [
                "http.path": "\(request.uri.path)", "error.code": "\(error.code)", "http.status": "\(error.code.httpStatus.code)",
            ])
            return try dialect.response(error)
        } catch let error as TextTaskError {
            logger.debug("request failed", metadata: ["http.path": "\(request.uri.path)", "error.kind": "\(error.kind.rawValue)"])
            return try dialect.response(error)
        } catch let error as HTTPError {
            let message: String = switch error.status {
            case .notFound: "no such route: \(request.method) \(request.uri.path)"
            case .contentTooLarge: "request body is larger than the server's limit"
            default: error.body ?? error.status.reasonPhrase
            }
            // Triton answers an oversized body 400; TEI 413.
            let status: HTTPResponse.Status = error.status == .contentTooLarge && dialect != .textEmbeddingsInference ? .badRequest : error.status
            return try dialect.response(status: status, message: message)
        } catch {
            logger.error("unexpected error", metadata: ["http.path": "\(request.uri.path)", "error": "\(type(of: error))"])
            return try dialect.response(InferenceError.internal("internal error"))
        }
    }
}

/// Checks the bearer token against the route's endpoint group (401 / 403 via
/// the error middleware) and, with `--audit-log`, writes who did what.
struct AccessMiddleware: RouterMiddleware {
    typealias Context = KServeRequestContext
    let access: AccessPolicy
    let audit: Logger?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let group = EndpointGroups.forHTTP(path: request.uri.path)
        let started = ContinuousClock.now
        var principal: String?
        var status = "error"
        defer {
            audit?.info("audit", metadata: [
                "audit.principal": "\(principal ?? (access.isEnabled ? "anonymous" : "-"))", "audit.group": "\(group.rawValue)",
                "http.method": "\(request.method)", "http.path": "\(request.uri.path)", "http.status": "\(status)",
                "request.bytes": "\(request.headers[.contentLength] ?? "0")",
                "duration_us": "\((ContinuousClock.now - started).nanosecondsClamped / 1000)",
            ])
        }
        do {
            principal = try access.authorize(request.headers[.authorization], for: group)
            // A token's inference limits (requests/s, in flight) hold per request.
            let permit = group == .inference ? try access.limiter.admit(principal) : .none
            defer { permit.release() }
            let response = try await next(request, context)
            status = "\(response.status.code)"
            return response
        } catch let error as InferenceError {
            status = "\(error.code.httpStatus.code)"
            throw error
        }
    }
}
