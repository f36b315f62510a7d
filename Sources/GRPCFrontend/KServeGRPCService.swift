import AccessControl
import GRPCLite
import InferenceCore
import Logging
import SwiftProtobuf
import Synchronization
import TritonProto

/// `inference.GRPCInferenceService` and `grpc.health.v1.Health` on GRPCLite,
/// answering as Triton does. It turns protobuf messages into calls on the
/// server core and the answers back into messages.
public struct KServeGRPCService: Sendable {
    static let service = "/inference.GRPCInferenceService/"

    let server: any InferenceServer
    let access: AccessPolicy
    let audit: Logger?
    let logger: Logger

    public init(server: any InferenceServer, access: AccessPolicy = .open, audit: Logger? = nil, logger: Logger) {
        self.server = server
        self.access = access
        self.audit = audit
        self.logger = logger
    }

    public func router() -> GRPCRouter {
        var router = GRPCRouter()
        unary(&router, "ServerLive") { (_: Inference_ServerLiveRequest) in
            Inference_ServerLiveResponse.with { $0.live = true }
        }
        unary(&router, "ServerReady") { (_: Inference_ServerReadyRequest) in
            Inference_ServerReadyResponse.with { $0.ready = server.isReady }
        }
        unary(&router, "ModelReady") { (request: Inference_ModelReadyRequest) in
            Inference_ModelReadyResponse.with { $0.ready = server.isModelReady(request.name, version: request.version) }
        }
        unary(&router, "ServerMetadata") { (_: Inference_ServerMetadataRequest) in
            Inference_ServerMetadataResponse.with {
                $0.name = server.identity.name
                $0.version = server.identity.version
                $0.extensions = server.identity.extensions
            }
        }
        unary(&router, "ModelMetadata") { (request: Inference_ModelMetadataRequest) in
            GRPCAdminMessages.metadata(try server.modelVersions(request.name, version: request.version))
        }
        unary(&router, "ModelConfig") { (request: Inference_ModelConfigRequest) in
            let config = try server.model(request.name, version: request.version).configProtobuf()
            let message = try Inference_ModelConfig(serializedBytes: config)
            return Inference_ModelConfigResponse.with { $0.config = message }
        }
        unary(&router, "ModelStatistics") { (request: Inference_ModelStatisticsRequest) in
            let selected = try server.statistics(request.name, version: request.version)
            return Inference_ModelStatisticsResponse.with { $0.modelStats = selected.map(GRPCAdminMessages.statistics) }
        }
        unary(&router, "RepositoryIndex") { (request: Inference_RepositoryIndexRequest) in
            Inference_RepositoryIndexResponse.with {
                $0.models = server.repositoryIndex(readyOnly: request.ready).map { entry in
                    .with {
                        $0.name = entry.name
                        $0.version = entry.version
                        $0.state = entry.state.rawValue
                        $0.reason = entry.reason
                    }
                }
            }
        }
        unary(&router, "RepositoryModelLoad") { (request: Inference_RepositoryModelLoadRequest) in
            let (config, files) = try GRPCAdminMessages.loadParameters(request)
            try await server.loadModel(request.modelName, configJSON: config, files: files)
            return Inference_RepositoryModelLoadResponse()
        }
        unary(&router, "RepositoryModelUnload") { (request: Inference_RepositoryModelUnloadRequest) in
            try await server.unloadModel(request.modelName)
            return Inference_RepositoryModelUnloadResponse()
        }
        unary(&router, "ModelInfer") { (request: Inference_ModelInferRequest) in
            GRPCTensorCoding.response(try await infer(request))
        }
        router.register(Self.service + "ModelStreamInfer", .bidirectionalStreaming { requests, responses, context in
            let principal = try authorize(context)
            try await IncomingTraceContext.$headers.withValue(IncomingTraceContext.headers(context)) {
                try await streamInfer(requests, responses, principal: principal)
            }
        })
        addAdministrationMethods(to: &router)
        addTextEmbeddingsInferenceMethods(to: &router)
        router.register("/grpc.health.v1.Health/Check", .unary { bytes, context in
            try authorize(context)
            let request = try decode(Grpc_Health_V1_HealthCheckRequest.self, bytes)
            let known = ["", "inference.GRPCInferenceService"].contains(request.service)
            let response = Grpc_Health_V1_HealthCheckResponse.with {
                $0.status = !known ? .serviceUnknown : (server.isReady ? .serving : .notServing)
            }
            return try response.serializedBytes()
        })
        return router
    }

    /// The call's bearer token against its method's endpoint group; audited with `--audit-log`.
    @discardableResult
    func authorize(_ context: GRPCCallContext) throws -> String? {
        let group = EndpointGroups.forGRPC(method: context.path)
        let authorization = context.metadata.first { $0.name == "authorization" }?.value
        do {
            let principal = try access.authorize(authorization, for: group)
            audit?.info("audit", metadata: [
                "audit.principal": "\(principal ?? (access.isEnabled ? "anonymous" : "-"))", "audit.group": "\(group.rawValue)",
                "grpc.method": "\(context.path)", "audit.outcome": "allowed",
            ])
            return principal
        } catch {
            audit?.info("audit", metadata: [
                "audit.principal": "anonymous", "audit.group": "\(group.rawValue)", "grpc.method": "\(context.path)",
                "audit.outcome": "\((error as? InferenceError)?.code.description ?? "refused")",
            ])
            throw GRPCStatus(error)
        }
    }

    func unary<Request: SwiftProtobuf.Message & Sendable, Response: SwiftProtobuf.Message>(
        _ router: inout GRPCRouter, _ method: String, service: String = Self.service,
        _ body: @escaping @Sendable (Request) async throws -> Response
    ) {
        unary(&router, method, service: service) { (request: Request, _) in try await body(request) }
    }

    /// A unary method whose body also reads the call's context (its metadata).
    func unary<Request: SwiftProtobuf.Message & Sendable, Response: SwiftProtobuf.Message>(
        _ router: inout GRPCRouter, _ method: String, service: String = Self.service,
        _ body: @escaping @Sendable (Request, GRPCCallContext) async throws -> Response
    ) {
        router.register(service + method, .unary { bytes, context in
            let principal = try authorize(context)
            // A token's inference limits (requests/s, in flight) hold per call.
            let permit = try EndpointGroups.forGRPC(method: context.path) == .inference
                ? mapped { try access.limiter.admit(principal) } : .none
            defer { permit.release() }
            do {
                let response = try await IncomingTraceContext.$headers.withValue(IncomingTraceContext.headers(context)) {
                    try await body(try decode(Request.self, bytes), context)
                }
                return try response.serializedBytes()
            } catch {
                throw GRPCStatus(error)
            }
        })
    }

    /// Runs `body`, its InferenceError turned into the gRPC status.
    func mapped<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch { throw GRPCStatus(error) }
    }

    func decode<M: SwiftProtobuf.Message>(_: M.Type, _ bytes: [UInt8]) throws -> M {
        do {
            return try M(serializedBytes: bytes)
        } catch {
            throw GRPCStatus(.invalidArgument, "malformed \(M.protoMessageName) message")
        }
    }

    func infer(_ message: Inference_ModelInferRequest) async throws -> InferenceResponse {
        var call = InferenceCall(modelName: message.modelName, modelVersion: message.modelVersion, protocolName: "grpc",
                                 requestBytes: message.rawInputContents.reduce(0) { $0 + $1.count })
        call.traceHeaders = IncomingTraceContext.headers
        return try await server.infer(call) { spec in
            (try GRPCTensorCoding.request(from: message, version: spec.version, model: spec.name), ())
        }.0
    }

    /// Every request gets one response or an `error_message`, matched by id;
    /// a bad request never ends the stream. Requests run concurrently, except
    /// those of one sequence (`sequence_id`), which run in the order they
    /// came, as a sequence's requests must.
    private func streamInfer(_ requests: GRPCRequestStream, _ responses: GRPCResponseWriter, principal: String?) async throws {
        let lanes = SequenceLanes()
        try await withThrowingDiscardingTaskGroup { (group: inout ThrowingDiscardingTaskGroup<any Error>) in
            for try await bytes in requests {
                let message = try? decode(Inference_ModelInferRequest.self, bytes)
                let work: @Sendable () async throws -> Void = {
                    // Each message of a stream counts against the token's limits.
                    let permit: PrincipalLimiter.Permit
                    do { permit = try access.limiter.admit(principal) } catch {
                        if let message { try await responses.write(try Self.errorReply(error, to: message).serializedBytes()) }
                        return
                    }
                    defer { permit.release() }
                    try await streamReplies(message) { reply in try await responses.write(try reply.serializedBytes()) }
                }
                if let message, let lane = Self.sequenceLane(message) {
                    let task = lanes.chain(lane, work)
                    // The lane's task is unstructured: cancel it with the stream.
                    group.addTask { try await withTaskCancellationHandler { try await task.value } onCancel: { task.cancel() } }
                } else {
                    group.addTask { try await work() }
                }
            }
        }
    }

    /// The replies to one stream message: one for an ordinary model; for a
    /// decoupled model each response as the model sends it (not final), then,
    /// if the request set `triton_enable_empty_final_response`, an empty final
    /// one. A write that fails (the client closed the stream) cancels the
    /// model's remaining responses.
    private func streamReplies(_ message: Inference_ModelInferRequest?,
                               write: (Inference_ModelStreamInferResponse) async throws -> Void) async throws {
        guard let message, (try? server.model(message.modelName, version: message.modelVersion).spec.decoupled) == true else {
            try await write(await streamReply(message))
            return
        }
        func failure(_ error: any Error) -> Inference_ModelStreamInferResponse { Self.errorReply(error, to: message) }
        var emptyFinal = false
        if let flag = message.parameters["triton_enable_empty_final_response"] {
            guard case .boolParam(let value)? = flag.parameterChoice else {
                try await write(failure(InferenceError.invalidArgument(
                    "invalid value type for 'triton_enable_empty_final_response' parameter, expected bool_param.")))
                return
            }
            emptyFinal = value
        }
        var call = InferenceCall(modelName: message.modelName, modelVersion: message.modelVersion, protocolName: "grpc",
                                 requestBytes: message.rawInputContents.reduce(0) { $0 + $1.count })
        call.traceHeaders = IncomingTraceContext.headers
        var version = message.modelVersion
        do {
            try await server.inferStream(call, decode: { spec in
                try GRPCTensorCoding.request(from: message, version: spec.version, model: spec.name)
            }, each: { response in
                var reply = Inference_ModelStreamInferResponse()
                reply.inferResponse = GRPCTensorCoding.response(response)
                reply.inferResponse.parameters["triton_final_response"] = .with { $0.boolParam = false }
                version = reply.inferResponse.modelVersion
                try await write(reply)
            })
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // Any failure of this request is its own error reply; only a failed
            // write (the client is gone) ends the stream, from the write below.
            try await write(failure(error))
            return
        }
        guard emptyFinal else { return }
        var final = Inference_ModelStreamInferResponse()
        final.inferResponse = .with {
            $0.id = message.id
            $0.modelName = message.modelName
            $0.modelVersion = version
            $0.parameters["triton_final_response"] = .with { $0.boolParam = true }
        }
        try await write(final)
    }

    /// The reply to one stream message; `triton_final_response` marks it the
    /// request's last (a model that is not decoupled sends one response).
    private func streamReply(_ message: Inference_ModelInferRequest?) async -> Inference_ModelStreamInferResponse {
        var reply = Inference_ModelStreamInferResponse()
        guard let message else {
            reply.errorMessage = GRPCStatus(.invalidArgument, "malformed \(Inference_ModelInferRequest.protoMessageName) message").message
            return reply
        }
        do {
            reply.inferResponse = GRPCTensorCoding.response(try await infer(message))
            reply.inferResponse.parameters["triton_final_response"] = .with { $0.boolParam = true }
        } catch {
            return Self.errorReply(error, to: message)
        }
        return reply
    }

    /// A stream reply carrying an error, matched to its request by id.
    static func errorReply(_ error: any Error, to message: Inference_ModelInferRequest) -> Inference_ModelStreamInferResponse {
        var reply = Inference_ModelStreamInferResponse()
        reply.errorMessage = GRPCStatus(error).message
        reply.inferResponse = .with {
            $0.id = message.id
            $0.modelName = message.modelName
            $0.modelVersion = message.modelVersion
        }
        return reply
    }

    /// Requests of one sequence share a lane: model and correlation id.
    static func sequenceLane(_ message: Inference_ModelInferRequest) -> String? {
        guard let id = message.parameters["sequence_id"]?.parameterChoice else { return nil }
        switch id {
        case .int64Param(let value): return "\(message.modelName)#\(value)"
        case .uint64Param(let value): return "\(message.modelName)#\(value)"
        case .stringParam(let value): return "\(message.modelName)$\(value)"
        default: return nil
        }
    }
}

/// One stream's sequence lanes: a lane's requests run one after another, in
/// the order they arrived; a lane is forgotten once its last request is done.
final class SequenceLanes: Sendable {
    private struct Lane { let serial: Int; let task: Task<Void, any Error> }
    private let lanes = Mutex<(serial: Int, byName: [String: Lane])>((0, [:]))

    func chain(_ name: String, _ work: @escaping @Sendable () async throws -> Void) -> Task<Void, any Error> {
        lanes.withLock { state in
            state.serial += 1
            let serial = state.serial
            let previous = state.byName[name]?.task
            let task = Task {
                _ = await previous?.result
                defer { self.finished(name, serial) }
                try Task.checkCancellation()
                try await work()
            }
            state.byName[name] = Lane(serial: serial, task: task)
            return task
        }
    }

    private func finished(_ name: String, _ serial: Int) {
        lanes.withLock { state in
            if state.byName[name]?.serial == serial { state.byName[name] = nil }
        }
    }
}

extension IncomingTraceContext {
    /// The call's `traceparent` and `tracestate` metadata.
    static func headers(_ context: GRPCCallContext) -> [String: String] {
        var headers: [String: String] = [:]
        for entry in context.metadata where InferenceCall.traceHeaderNames.contains(entry.name) {
            headers[entry.name] = entry.value
        }
        return headers
    }
}
