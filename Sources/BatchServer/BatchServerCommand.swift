import ArgumentParser
import ExampleBackends
import GRPCFrontend
import GRPCLite
import HTTPFrontend
import Hummingbird
import InferenceCore
import Logging
import ModelRepository
import Scheduler
import ServiceLifecycle

/// `batch-server`: a Triton-compatible batching inference server.
@main
struct BatchServerCommand: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "batch-server",
        abstract: "A Triton-compatible (KServe v2) batching inference server.",
        version: version)

    @Option(name: .customLong("model-repository"), help: "Path of the Triton-layout model repository.")
    var modelRepository: String

    @Option(name: .customLong("host"), help: "Address the frontends listen on.")
    var host = "0.0.0.0"

    @Option(name: .customLong("http-port"), help: "Port of the HTTP/REST frontend.")
    var httpPort = 8000

    @Option(name: .customLong("grpc-port"), help: "Port of the gRPC frontend.")
    var grpcPort = 8001

    @Option(name: .customLong("grpc-max-message-size"), help: "Largest gRPC message received or sent, in bytes.")
    var grpcMaxMessageSize = Int(Int32.max)

    @Option(name: .customLong("grpc-keepalive-time"), help: "Interval of HTTP/2 keepalive pings on gRPC connections, in seconds (0 disables).")
    var grpcKeepaliveTime = 7200

    @Option(name: .customLong("metrics-port"), help: "Port of the Prometheus metrics endpoint (served once metrics land).")
    var metricsPort = 8002

    @Option(name: .customLong("http-max-input-size"), help: "Largest HTTP request body accepted, in bytes.")
    var httpMaxInputSize = 64 << 20

    @Option(name: .customLong("log-verbose"), help: "Verbosity: 0 logs info and above, 1 adds debug, 2 or more adds trace.")
    var logVerbose = 0

    func validate() throws {
        for (name, port) in [("http-port", httpPort), ("grpc-port", grpcPort), ("metrics-port", metricsPort)]
        where !(0...65535).contains(port) {
            throw ValidationError("--\(name) must be within 0...65535, got \(port)")
        }
        guard httpMaxInputSize > 0 else { throw ValidationError("--http-max-input-size must be positive") }
        guard grpcMaxMessageSize > 0 else { throw ValidationError("--grpc-max-message-size must be positive") }
        guard grpcKeepaliveTime >= 0 else { throw ValidationError("--grpc-keepalive-time must not be negative") }
    }

    func run() async throws {
        let level: Logger.Level = switch logVerbose {
        case ...0: .info
        case 1: .debug
        default: .trace
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "batch-server")
        let phase = ServerPhase()
        let models = ModelManager(
            repositoryPath: modelRepository,
            backends: BackendRegistry(ExampleBackends.all),
            logger: logger,
            makeRunner: { spec, backend in try ModelScheduler.make(spec: spec, backend: backend) })
        try models.loadAll()

        let http = KServeHTTPServer(
            configuration: .init(host: host, port: httpPort, maxRequestBytes: httpMaxInputSize, serverVersion: Self.version),
            models: models, phase: phase, logger: logger)
        let grpc = GRPCServer(
            configuration: .init(
                host: host, port: grpcPort, maxReceiveMessageBytes: grpcMaxMessageSize, maxSendMessageBytes: grpcMaxMessageSize,
                keepaliveInterval: grpcKeepaliveTime > 0 ? .seconds(grpcKeepaliveTime) : nil),
            router: KServeGRPCService(models: models, phase: phase, serverVersion: Self.version, logger: logger).router(),
            logger: logger)
        let serving = ServingPhaseService(phase: phase, models: models, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: serving),
                    .init(service: http.makeApplication()),
                    .init(service: GRPCService(server: grpc)),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        logger.info("batch-server stopped")
    }
}

/// Marks the server ready once started; on graceful shutdown turns readiness
/// off at once, then lets queued and in-flight requests finish.
struct ServingPhaseService: Service {
    let phase: ServerPhase
    let models: ModelManager
    let logger: Logger

    func run() async throws {
        phase.set(.serving)
        logger.info("batch-server ready", metadata: ["models.ready": "\(models.allReady().count)"])
        try? await gracefulShutdown()
        phase.set(.draining)
        logger.info("draining: finishing queued and in-flight requests")
        await models.shutdown()
    }
}

/// Runs the gRPC server as a service: on graceful shutdown it stops accepting,
/// sends GOAWAY, and returns once open calls have finished.
struct GRPCService: Service {
    let server: GRPCServer

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.run()
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }
}
