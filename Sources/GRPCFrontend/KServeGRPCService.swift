import AccessControl
import Foundation
import GRPCLite
import InferenceCore
import Logging
import ModelRepository
import SwiftProtobuf
import TritonProto

/// `inference.GRPCInferenceService` and `grpc.health.v1.Health` on GRPCLite,
/// answering as Triton does.
public struct KServeGRPCService: Sendable {
    /// Extensions BatchServer implements (perf_analyzer reads "statistics" from here).
    public static let extensions = ServerExtensions.supported
    static let service = "/inference.GRPCInferenceService/"

    let models: ModelManager
    let phase: ServerPhase
    /// Whether the server counts as ready (the executable applies `--strict-readiness`).
    let ready: @Sendable () -> Bool
    let serverName: String
    let serverVersion: String
    let access: AccessPolicy
    let audit: Logger?
    let logger: Logger

    public init(models: ModelManager, phase: ServerPhase, ready: @escaping @Sendable () -> Bool,
                serverName: String = "batchserver", serverVersion: String, access: AccessPolicy = .open,
                audit: Logger? = nil, logger: Logger) {
        self.access = access
        self.audit = audit
        self.models = models
        self.phase = phase
        self.ready = ready
        self.serverName = serverName
        self.serverVersion = serverVersion
        self.logger = logger
    }

    public func router() -> GRPCRouter {
        var router = GRPCRouter()
        unary(&router, "ServerLive") { (_: Inference_ServerLiveRequest) in
            Inference_ServerLiveResponse.with { $0.live = true }
        }
        unary(&router, "ServerReady") { (_: Inference_ServerReadyRequest) in
            Inference_ServerReadyResponse.with { $0.ready = serverReady }
        }
        unary(&router, "ModelReady") { (request: Inference_ModelReadyRequest) in
            let ready = phase.current != .draining && (try? models.resolve(request.name, version: request.version)) != nil
            return Inference_ModelReadyResponse.with { $0.ready = ready }
        }
        unary(&router, "ServerMetadata") { (_: Inference_ServerMetadataRequest) in
            Inference_ServerMetadataResponse.with {
                $0.name = serverName
                $0.version = serverVersion
                $0.extensions = Self.extensions
            }
        }
        unary(&router, "ModelMetadata") { (request: Inference_ModelMetadataRequest) in
            try metadata(request)
        }
        unary(&router, "ModelConfig") { (request: Inference_ModelConfigRequest) in
            let model = try models.resolve(request.name, version: request.version)
            return Inference_ModelConfigResponse.with { $0.config = model.config }
        }
        unary(&router, "ModelStatistics") { (request: Inference_ModelStatisticsRequest) in
            try statistics(request)
        }
        unary(&router, "RepositoryIndex") { (request: Inference_RepositoryIndexRequest) in
            Inference_RepositoryIndexResponse.with {
                $0.models = models.index(readyOnly: request.ready).map { entry in
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
            try models.controlMode.requireExplicitControl()
            var config: Inference_ModelConfig?
            var files: [String: [UInt8]] = [:]
            for (key, parameter) in request.parameters {
                switch (key, parameter.parameterChoice) {
                case ("config", .stringParam(let json)?):
                    do {
                        config = try Inference_ModelConfig(jsonString: json)
                    } catch {
                        throw InferenceError.invalidArgument("load parameter 'config' is not a valid model configuration: \(error)")
                    }
                case (let name, .bytesParam(let bytes)?) where name.hasPrefix("file:"):
                    files[String(name.dropFirst(5))] = Array(bytes)
                default:
                    throw InferenceError.invalidArgument("unknown or mistyped model load parameter '\(key)'")
                }
            }
            try await models.load(request.modelName, configOverride: config, files: files)
            return Inference_RepositoryModelLoadResponse()
        }
        unary(&router, "RepositoryModelUnload") { (request: Inference_RepositoryModelUnloadRequest) in
            try models.controlMode.requireExplicitControl()
            try await models.unload(request.modelName)
            return Inference_RepositoryModelUnloadResponse()
        }
        unary(&router, "ModelInfer") { (request: Inference_ModelInferRequest) in
            GRPCTensorCoding.response(try await infer(request))
        }
        router.register(Self.service + "ModelStreamInfer", .bidirectionalStreaming { requests, responses, context in
            try authorize(context)
            try await streamInfer(requests, responses)
        })
        router.register("/grpc.health.v1.Health/Check", .unary { bytes, context in
            try authorize(context)
            let request = try decode(Grpc_Health_V1_HealthCheckRequest.self, bytes)
            let known = ["", "inference.GRPCInferenceService"].contains(request.service)
            let response = Grpc_Health_V1_HealthCheckResponse.with {
                $0.status = !known ? .serviceUnknown : (serverReady ? .serving : .notServing)
            }
            return try response.serializedBytes()
        })
        return router
    }

    private var serverReady: Bool { ready() }

    /// The call's bearer token against its method's endpoint group; audited with `--audit-log`.
    private func authorize(_ context: GRPCCallContext) throws {
        let group = EndpointGroups.forGRPC(method: context.path)
        let authorization = context.metadata.first { $0.name == "authorization" }?.value
        do {
            let principal = try access.authorize(authorization, for: group)
            audit?.info("audit", metadata: [
                "audit.principal": "\(principal ?? (access.isEnabled ? "anonymous" : "-"))", "audit.group": "\(group.rawValue)",
                "grpc.method": "\(context.path)", "audit.outcome": "allowed",
            ])
        } catch {
            audit?.info("audit", metadata: [
                "audit.principal": "anonymous", "audit.group": "\(group.rawValue)", "grpc.method": "\(context.path)",
                "audit.outcome": "\((error as? InferenceError)?.code.description ?? "refused")",
            ])
            throw GRPCStatus(error)
        }
    }

    private func unary<Request: SwiftProtobuf.Message & Sendable, Response: SwiftProtobuf.Message>(
        _ router: inout GRPCRouter, _ method: String,
        _ body: @escaping @Sendable (Request) async throws -> Response
    ) {
        router.register(Self.service + method, .unary { bytes, context in
            try authorize(context)
            do {
                let response = try await body(try decode(Request.self, bytes))
                return try response.serializedBytes()
            } catch {
                throw GRPCStatus(error)
            }
        })
    }

    private func decode<M: SwiftProtobuf.Message>(_: M.Type, _ bytes: [UInt8]) throws -> M {
        do {
            return try M(serializedBytes: bytes)
        } catch {
            throw GRPCStatus(.invalidArgument, "malformed \(M.protoMessageName) message")
        }
    }

    func infer(_ message: Inference_ModelInferRequest) async throws -> InferenceResponse {
        guard phase.current == .serving else {
            throw InferenceError.unavailable("server is not accepting inference requests (\(phase.current))")
        }
        let (response, validated, model) = try await models.withModel(message.modelName, version: message.modelVersion) { model in
            let request = try GRPCTensorCoding.request(from: message, version: model.spec.version)
            let validated = try model.spec.validate(request)
            return (try await model.runner.infer(validated), validated, model)
        }
        logger.debug("inference", metadata: [
            "request.id": "\(response.id)", "model.name": "\(model.spec.name)", "model.version": "\(model.spec.version)",
            "batch.size": "\(validated.batchSize)", "protocol": "grpc",
            "queue_us": "\(response.timing.queue.nanosecondsClamped / 1000)",
            "compute_us": "\(response.timing.computeInfer.nanosecondsClamped / 1000)",
        ])
        return response
    }

    /// Every request gets one response or an `error_message`, matched by id;
    /// a bad request never ends the stream. Requests run concurrently.
    private func streamInfer(_ requests: GRPCRequestStream, _ responses: GRPCResponseWriter) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            for try await bytes in requests {
                group.addTask {
                    var reply = Inference_ModelStreamInferResponse()
                    do {
                        let message = try decode(Inference_ModelInferRequest.self, bytes)
                        do {
                            reply.inferResponse = GRPCTensorCoding.response(try await infer(message))
                        } catch {
                            reply.errorMessage = GRPCStatus(error).message
                            reply.inferResponse = .with {
                                $0.id = message.id
                                $0.modelName = message.modelName
                                $0.modelVersion = message.modelVersion
                            }
                        }
                    } catch {
                        reply.errorMessage = GRPCStatus(error).message
                    }
                    try await responses.write(try reply.serializedBytes())
                }
            }
        }
    }

    private func metadata(_ request: Inference_ModelMetadataRequest) throws -> Inference_ModelMetadataResponse {
        let versions = request.version.isEmpty
            ? try models.readyVersions(of: request.name)
            : [try models.resolve(request.name, version: request.version)]
        guard let newest = versions.last?.spec else {
            _ = try models.resolve(request.name, version: nil)
            throw InferenceError.unavailable("model '\(request.name)' has no ready version")
        }
        func describe(_ tensors: [TensorSpec]) -> [Inference_ModelMetadataResponse.TensorMetadata] {
            tensors.map { spec in
                .with {
                    $0.name = spec.name
                    $0.datatype = spec.dataType.rawValue
                    $0.shape = newest.protocolShape(spec).map(Int64.init)
                }
            }
        }
        return .with {
            $0.name = newest.name
            $0.versions = versions.map { String($0.spec.version) }
            $0.platform = newest.platform.isEmpty ? newest.backend : newest.platform
            $0.inputs = describe(newest.inputs)
            $0.outputs = describe(newest.outputs)
        }
    }

    private func statistics(_ request: Inference_ModelStatisticsRequest) throws -> Inference_ModelStatisticsResponse {
        let selected: [LoadedModel]
        if request.name.isEmpty {
            selected = models.allReady()
        } else if request.version.isEmpty {
            selected = try models.readyVersions(of: request.name)
        } else {
            selected = [try models.resolve(request.name, version: request.version)]
        }
        return .with { $0.modelStats = selected.map(Self.statistics) }
    }

    static func statistics(_ model: LoadedModel) -> Inference_ModelStatistics {
        let stats = model.runner.statistics()
        func duration(_ value: StatisticDuration) -> Inference_StatisticDuration {
            .with {
                $0.count = value.count
                $0.ns = value.nanoseconds
            }
        }
        return .with {
            $0.name = model.spec.name
            $0.version = String(model.spec.version)
            $0.lastInference = stats.lastInferenceMilliseconds
            $0.inferenceCount = stats.inferenceCount
            $0.executionCount = stats.executionCount
            $0.inferenceStats = .with {
                $0.success = duration(stats.success)
                $0.fail = duration(stats.fail)
                $0.queue = duration(stats.queue)
                $0.computeInput = duration(stats.computeInput)
                $0.computeInfer = duration(stats.computeInfer)
                $0.computeOutput = duration(stats.computeOutput)
                $0.cacheHit = duration(.init())
                $0.cacheMiss = duration(.init())
            }
            $0.batchStats = stats.batches.keys.sorted().map { size in
                let batch = stats.batches[size]!
                return .with {
                    $0.batchSize = UInt64(size)
                    $0.computeInput = duration(batch.computeInput)
                    $0.computeInfer = duration(batch.computeInfer)
                    $0.computeOutput = duration(batch.computeOutput)
                }
            }
        }
    }
}
