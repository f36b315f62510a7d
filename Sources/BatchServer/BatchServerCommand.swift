import AccessControl
import ArgumentParser
import Deidentifier
import ExampleBackends
import ONNXRuntimeBackend
import Foundation
import GPUKernels
import GRPCFrontend
import GRPCLite
import HTTPFrontend
import Hummingbird
import InferenceCore
import Logging
import MetricsExporter
import ModelRepository
import RequestPipeline
import ResponseCache
import NIOSSL
import Scheduler
import ServiceLifecycle
import OTel
import Instrumentation
import Tracing
import TransformerEncoder
import TransformerModel
import UnixSignals

/// `batch-server`: a Triton-compatible batching inference server.
@main
struct BatchServerCommand: AsyncParsableCommand {
    static let version = "0.2.0"

    static let configuration = CommandConfiguration(
        commandName: "batch-server",
        abstract: "A Triton-compatible (KServe v2) batching inference server.",
        discussion: "Flags keep Triton's names where they mean the same thing.",
        version: version)

    @Option(name: .customLong("model-repository"), help: "Path of the Triton-layout model repository.")
    var modelRepository: String

    @Option(name: .customLong("model-control-mode"),
            help: "none: load every model at start; explicit: load --load-model models and allow the load/unload API; poll: follow the repository on disk.")
    var modelControlMode: ModelControlMode = .none

    @Option(name: .customLong("load-model"), help: "In explicit mode, a model to load at start (repeatable; '*' loads all).")
    var loadModel: [String] = []

    @Option(name: .customLong("repository-poll-secs"), help: "In poll mode, the interval between repository scans, in seconds.")
    var repositoryPollSecs = 15

    @Option(name: .customLong("host"), help: "Address the HTTP, gRPC and metrics endpoints listen on.")
    var host = "0.0.0.0"

    @Option(name: .customLong("http-port"), help: "Port of the HTTP/REST endpoint.")
    var httpPort = 8000

    @Option(name: .customLong("allow-http"), help: "Serve the HTTP/REST endpoint (true or false).")
    var allowHTTP = true

    @Option(name: .customLong("http-max-input-size"), help: "Largest HTTP request body accepted, in bytes.")
    var httpMaxInputSize = 64 << 20

    @Option(name: .customLong("grpc-port"), help: "Port of the gRPC endpoint.")
    var grpcPort = 8001

    @Option(name: .customLong("allow-grpc"), help: "Serve the gRPC endpoint (true or false).")
    var allowGRPC = true

    @Option(name: .customLong("grpc-max-message-size"), help: "Largest gRPC message received or sent, in bytes.")
    var grpcMaxMessageSize = Int(Int32.max)

    @Option(name: .customLong("grpc-max-inflated-size"),
            help: "Largest size a compressed gRPC request message may inflate to, in bytes (at most --grpc-max-message-size).")
    var grpcMaxInflatedSize = 64 << 20

    @Option(name: .customLong("grpc-keepalive-time"), help: "Interval of HTTP/2 keepalive pings on gRPC connections, in seconds (0 disables).")
    var grpcKeepaliveTime = 7200

    @Option(name: .customLong("grpc-use-ssl"), help: "Serve gRPC over TLS 1.2+ (true or false).")
    var grpcUseSSL = false

    @Option(name: .customLong("grpc-use-ssl-mutual"), help: "Require client certificates signed by --grpc-root-cert (true or false).")
    var grpcUseSSLMutual = false

    @Option(name: .customLong("grpc-server-cert"), help: "PEM certificate chain of the gRPC endpoint.")
    var grpcServerCert: String?

    @Option(name: .customLong("grpc-server-key"), help: "PEM private key of the gRPC endpoint.")
    var grpcServerKey: String?

    @Option(name: .customLong("grpc-root-cert"), help: "PEM CA certificates that sign gRPC client certificates (mutual TLS).")
    var grpcRootCert: String?

    @Option(name: .customLong("http-use-ssl"), help: "Serve HTTP/REST over TLS 1.2+ (true or false).")
    var httpUseSSL = false

    @Option(name: .customLong("http-use-ssl-mutual"), help: "Require client certificates signed by --http-root-cert (true or false).")
    var httpUseSSLMutual = false

    @Option(name: .customLong("http-server-cert"), help: "PEM certificate chain of the HTTP endpoint.")
    var httpServerCert: String?

    @Option(name: .customLong("http-server-key"), help: "PEM private key of the HTTP endpoint.")
    var httpServerKey: String?

    @Option(name: .customLong("http-root-cert"), help: "PEM CA certificates that sign HTTP client certificates (mutual TLS).")
    var httpRootCert: String?

    @Option(name: .customLong("metrics-port"), help: "Port of the Prometheus endpoint (/metrics).")
    var metricsPort = 8002

    @Option(name: .customLong("metrics-use-ssl"), help: "Serve /metrics over TLS 1.2+ (true or false).")
    var metricsUseSSL = false

    @Option(name: .customLong("metrics-use-ssl-mutual"), help: "Require metrics scrapers to present a certificate signed by --metrics-root-cert.")
    var metricsUseSSLMutual = false

    @Option(name: .customLong("metrics-server-cert"), help: "PEM certificate chain of the metrics endpoint.")
    var metricsServerCert: String?

    @Option(name: .customLong("metrics-server-key"), help: "PEM private key of the metrics endpoint.")
    var metricsServerKey: String?

    @Option(name: .customLong("metrics-root-cert"), help: "PEM CA certificates that sign scrapers' client certificates (mutual TLS).")
    var metricsRootCert: String?

    @Option(name: .customLong("default-max-queue-size"),
            help: "Requests a model's priority level may hold when its config.pbtxt leaves max_queue_size at 0; more are refused with UNAVAILABLE / 503. 0: unbounded, as Triton.")
    var defaultMaxQueueSize = 4096

    @Option(name: .customLong("require-gpu"),
            help: "Fail to load a model whose instance_group asks for KIND_GPU when no usable CUDA device exists, instead of running it on the CPU (true or false).")
    var requireGPU = false

    @Option(name: .customLong("http-idle-timeout-secs"),
            help: "Close an HTTP connection that sends no part of a request for this long while no response is pending (idle keep-alive, trickled headers or bodies); 0: never.")
    var httpIdleTimeoutSecs = 60

    @Option(name: .customLong("grpc-idle-timeout-secs"),
            help: "Close a gRPC connection with no open call for this long, counted from accept (so a stalled handshake is closed too); 0: never.")
    var grpcIdleTimeoutSecs = 300

    @Option(name: .customLong("allow-metrics"), help: "Serve Prometheus metrics (true or false).")
    var allowMetrics = true

    @Option(name: .customLong("strict-readiness"),
            help: "true: /v2/health/ready is 200 only when every model is ready; false: when the server is up.")
    var strictReadiness = true

    @Option(name: .customLong("exit-timeout-secs"),
            help: "On SIGTERM or SIGINT, how long queued and in-flight requests may take to finish, in seconds.")
    var exitTimeoutSecs = 30

    @Option(name: .customLong("auth-tokens-file"),
            help: "JSON file of bearer tokens and the endpoint groups each grants; also read from $BATCHSERVER_AUTH_TOKENS. Unset: no authentication.")
    var authTokensFile: String?

    @Option(name: .customLong("auth-open-health"), help: "With tokens, leave the health endpoints open for probes (true or false).")
    var authOpenHealth = true

    @Option(name: .customLong("audit-log"), help: "Log one line per request: who, which endpoint and model, outcome, sizes; never content (true or false).")
    var auditLog = false

    @Option(name: .customLong("log-verbose"), help: "Log verbosity: 0 logs info and above, 1 adds debug (one line per request), 2 or more adds trace.")
    var logVerbose = 0

    @Option(name: .customLong("log-format"), help: "Log line format: default (text) or json (one object per line).")
    var logFormat: LogFormat = .default

    @Flag(name: .customLong("disable-auto-complete-config"),
          help: "Serve configs as written: no config.pbtxt is completed from its model file (inputs, outputs, max_batch_size) and a model without one fails.")
    var disableAutoCompleteConfig = false

    @Option(name: .customLong("strict-model-config"),
            help: "Deprecated spelling of --disable-auto-complete-config (true or false), as in Triton.")
    var strictModelConfig: Bool?

    @Option(name: .customLong("backend-config"),
            help: "Triton's backend setting [BACKEND,]default-max-batch-size=N: the max_batch_size auto-complete gives a model that batches (default 4).")
    var backendConfig: [String] = []

    @Option(name: .customLong("onnxruntime-library"),
            help: "Path of libonnxruntime.so (the onnxruntime wheel's onnxruntime/capi/libonnxruntime.so.*); also read from $BATCHSERVER_ONNXRUNTIME_LIBRARY. Unset: the dynamic linker's search for libonnxruntime.so.1.")
    var onnxruntimeLibrary: String?

    @Option(name: .customLong("deidentifier-model"),
            help: "The model the Presidio routes (/analyze, /anonymize, /deanonymize) run: a phi_deidentifier model of the repository.")
    var deidentifierModel = "phi_deidentifier"

    @Option(name: .customLong("trace-config"),
            help: ArgumentHelp("Triton's trace settings, repeatable: level=OFF|TIMESTAMPS, rate=N (every N-th request), count=N (-1: no limit), mode=triton|opentelemetry, triton,file=PATH, triton,log-frequency=N (a new PATH.<i> every N traces), opentelemetry,url=HOST:4318/v1/traces, opentelemetry,resource=KEY=VALUE, opentelemetry,bsp_schedule_delay=MS|bsp_max_queue_size=N|bsp_max_export_batch_size=N. Traces hold timestamps and names only; level=TENSORS is refused unless --trace-allow-tensors is given.",
                               valueName: "[MODE,]SETTING=VALUE"))
    var traceConfig: [String] = []

    @Flag(name: .customLong("trace-allow-tensors"),
          help: "Accept trace level TENSORS (flag and trace APIs): Triton-mode trace files then hold request and response tensors, which can be patient data. Off by default.")
    var traceAllowTensors = false

    /// The --trace-config flags, checked.
    func traceConfiguration() throws -> TraceConfiguration {
        let configuration: TraceConfiguration
        do { configuration = try TraceConfiguration(flags: traceConfig, allowTensors: traceAllowTensors) } catch let error as InferenceError {
            throw ValidationError(error.message)
        }
        _ = try openTelemetryConfiguration(configuration)
        return configuration
    }

    /// swift-otel's configuration for mode=opentelemetry (nil otherwise):
    /// spans over OTLP/HTTP protobuf to `opentelemetry,url`, every span the
    /// server's own rate and count sampled kept, W3C trace context.
    func openTelemetryConfiguration(_ trace: TraceConfiguration) throws -> OTel.Configuration? {
        guard trace.mode == "opentelemetry" else { return nil }
        let known: Set = ["url", "resource", "bsp_schedule_delay", "bsp_max_queue_size", "bsp_max_export_batch_size"]
        if let unknown = trace.openTelemetry.keys.sorted().first(where: { !known.contains($0) }) {
            throw ValidationError("--trace-config opentelemetry,\(unknown): unknown setting (known: \(known.sorted().joined(separator: ", ")))")
        }
        var config = OTel.Configuration.default
        config.logs.enabled = false
        config.metrics.enabled = false
        config.traces.exporter = .otlp
        config.traces.otlpExporter.protocol = .httpProtobuf
        config.traces.sampler = .alwaysOn
        config.propagators = [.traceContext]
        config.serviceName = "triton-inference-server"
        var url = trace.openTelemetry["url"]?.last ?? "http://localhost:4318/v1/traces"
        if !url.contains("://") { url = "http://" + url }
        config.traces.otlpExporter.endpoint = url
        for resource in trace.openTelemetry["resource"] ?? [] {
            let parts = resource.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ValidationError("--trace-config opentelemetry,resource='\(resource)': expected KEY=VALUE")
            }
            if parts[0] == "service.name" { config.serviceName = parts[1] } else { config.resourceAttributes[parts[0]] = parts[1] }
        }
        func number(_ key: String) throws -> Int? {
            guard let text = trace.openTelemetry[key]?.last else { return nil }
            guard let value = Int(text), value > 0 else {
                throw ValidationError("--trace-config opentelemetry,\(key)=\(text): expected a positive integer")
            }
            return value
        }
        if let delay = try number("bsp_schedule_delay") { config.traces.batchSpanProcessor.scheduleDelay = .milliseconds(delay) }
        if let size = try number("bsp_max_queue_size") { config.traces.batchSpanProcessor.maxQueueSize = size }
        if let size = try number("bsp_max_export_batch_size") { config.traces.batchSpanProcessor.maxExportBatchSize = size }
        return config
    }

    @Option(name: .customLong("rate-limit"),
            help: "Triton's rate limiter: off, or execution_count (instances whose instance_group names rate_limiter resources run only while those are free; priority orders the waiting).")
    var rateLimit: RateLimitMode = .off

    @Option(name: .customLong("rate-limit-resource"),
            help: ArgumentHelp("Copies of a rate-limiter resource, repeatable (default: the most any instance asks for); without DEVICE, on every device.",
                               valueName: "NAME:COUNT[:DEVICE]"))
    var rateLimitResource: [String] = []

    /// The rate limiter the flags ask for; nil when it is off.
    func rateLimiter() throws -> RateLimiter? {
        let resources: [RateLimiter.ResourceLimit]
        do { resources = try rateLimitResource.map(RateLimiter.ResourceLimit.init(flag:)) } catch let error as InferenceError {
            throw ValidationError(error.message)
        }
        return rateLimit == .executionCount ? RateLimiter(resources: resources) : nil
    }

    @Option(name: .customLong("cache-config"),
            help: ArgumentHelp("Triton's response cache, repeatable: local,size=BYTES (an LRU in this process) or redis,host=H plus redis,port=P and redis,key_file=PATH (a shared Redis; the file's secret, the same on every server, names and encrypts entries), redis,user/password/db/connect_timeout/socket_timeout/ttl. Models opt in with response_cache { enable: true }.",
                               valueName: "CACHE,SETTING=VALUE"))
    var cacheConfig: [String] = []

    @Option(name: .customLong("response-cache-byte-size"),
            help: ArgumentHelp("Deprecated (Triton's): the same as --cache-config local,size=BYTES.", visibility: .hidden))
    var responseCacheByteSize: Int?

    /// The --cache-config flags (or the deprecated byte size), checked.
    func cacheConfiguration() throws -> CacheConfiguration? {
        if responseCacheByteSize != nil && !cacheConfig.isEmpty {
            throw ValidationError("Error: Incompatible flags --response-cache-byte-size and --cache-config both provided. Please provide one or the other.")
        }
        let flags = responseCacheByteSize.map { ["local,size=\($0)"] } ?? cacheConfig
        do { return try CacheConfiguration.parse(flags) } catch let error as InferenceError {
            throw ValidationError(error.message)
        }
    }

    @Option(name: .customLong("server-name"),
            help: "The name server metadata reports (GET /v2, ServerMetadata); clients written for Triton check for 'triton'.")
    var serverName = "triton"

    /// --disable-auto-complete-config wins over the deprecated --strict-model-config=false, as in Triton.
    func autoCompleteSettings() throws -> AutoCompleteSettings {
        var settings = AutoCompleteSettings(enabled: !(disableAutoCompleteConfig || strictModelConfig == true))
        for entry in backendConfig {
            let setting = entry.split(separator: ",").last.map(String.init) ?? entry
            let parts = setting.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[0] == "default-max-batch-size", let size = Int(parts[1]), size >= 0 else {
                throw ValidationError("--backend-config '\(entry)': only [BACKEND,]default-max-batch-size=N (N >= 0) is understood")
            }
            settings.defaultMaxBatchSize = size
        }
        return settings
    }

    func validate() throws {
        _ = try autoCompleteSettings()
        _ = try traceConfiguration()
        _ = try cacheConfiguration()
        _ = try rateLimiter()
        for (name, port) in [("http-port", httpPort), ("grpc-port", grpcPort), ("metrics-port", metricsPort)]
        where !(0...65535).contains(port) {
            throw ValidationError("--\(name) must be within 0...65535, got \(port)")
        }
        guard httpMaxInputSize > 0 else { throw ValidationError("--http-max-input-size must be positive") }
        guard grpcMaxMessageSize > 0 else { throw ValidationError("--grpc-max-message-size must be positive") }
        guard grpcMaxInflatedSize > 0 else { throw ValidationError("--grpc-max-inflated-size must be positive") }
        guard grpcKeepaliveTime >= 0 else { throw ValidationError("--grpc-keepalive-time must not be negative") }
        guard exitTimeoutSecs >= 0 else { throw ValidationError("--exit-timeout-secs must not be negative") }
        guard defaultMaxQueueSize >= 0 else { throw ValidationError("--default-max-queue-size must not be negative") }
        guard httpIdleTimeoutSecs >= 0 else { throw ValidationError("--http-idle-timeout-secs must not be negative") }
        guard grpcIdleTimeoutSecs >= 0 else { throw ValidationError("--grpc-idle-timeout-secs must not be negative") }
        guard repositoryPollSecs > 0 else { throw ValidationError("--repository-poll-secs must be positive") }
        if !loadModel.isEmpty && modelControlMode != .explicit {
            throw ValidationError("--load-model needs --model-control-mode explicit")
        }
    }

    func run() async throws {
        // oneDNN's OpenMP threads must not spin between batches and starve the
        // network threads (an operator's own setting wins).
        setenv("OMP_WAIT_POLICY", "PASSIVE", 0)
        let logSettings = LogSettingsStore(verboseLevel: UInt32(clamping: max(logVerbose, 0)), format: logFormat == .json ? .json : .default)
        ServerLogging.bootstrap(settings: logSettings)
        let registry = MetricsExporter.bootstrap()
        let logger = Logger(label: "batch-server")
        let phase = ServerPhase()
        if let strictModelConfig {
            logger.warning("'--strict-model-config' has been deprecated! Please use '--disable-auto-complete-config' instead.",
                           metadata: ["strict_model_config": "\(strictModelConfig)"])
        }
        if let bytes = responseCacheByteSize {
            logger.warning("'--response-cache-byte-size' has been deprecated! This will default to the 'local' cache implementation with the provided byte size for its config. Please use '--cache-config' instead. The equivalent --cache-config CLI args would be: '--cache-config=local,size=\(bytes)'")
        }
        var responseCache: ResponseCache?
        if let cache = try cacheConfiguration() { responseCache = try await ResponseCache.make(cache, logger: logger) }
        let onnxLibrary = onnxruntimeLibrary ?? ProcessInfo.processInfo.environment["BATCHSERVER_ONNXRUNTIME_LIBRARY"]
        let models = ModelManager(
            repositoryPath: modelRepository,
            backends: BackendRegistry(ExampleBackends.all + [
                // The CPU engine's backend, asking the CUDA engine first for KIND_GPU instances.
                EncoderBackend(accelerator: CUDAEncoderAccelerator(requireGPU: requireGPU, logger: logger), logger: logger),
                ONNXRuntimeBackend(library: onnxLibrary, requireGPU: requireGPU, logger: logger),
                PHIDeidentifierBackend(),
            ]),
            controlMode: modelControlMode,
            autoComplete: try autoCompleteSettings(),
            responseCache: responseCache,
            logger: logger,
            makeRunner: { [defaultMaxQueueSize, rateLimiter = try rateLimiter()] spec, backend in
                try ModelScheduler.runner(spec: spec, backend: backend, defaultMaxQueueSize: defaultMaxQueueSize, rateLimiter: rateLimiter)
            })
        try await models.loadAll(only: modelControlMode == .explicit ? loadModel : nil)
        let readiness = Readiness(phase: phase, models: models, strict: strictReadiness)
        let access = try accessPolicy()
        let audit = auditLog ? Logger(label: "audit") : nil
        // Mode opentelemetry: swift-otel's tracer becomes the process's, and
        // its exporter runs (and flushes at shutdown) in the service group.
        let traces = try traceConfiguration()
        var openTelemetry: (traces: OpenTelemetryTraces, service: any Service)?
        if let config = try openTelemetryConfiguration(traces) {
            let backend = try OTel.makeTracingBackend(configuration: config)
            InstrumentationSystem.bootstrap(backend.factory)
            openTelemetry = (OpenTelemetryTraces(), backend.service)
            logger.info("OpenTelemetry traces", metadata: ["otlp.endpoint": "\(config.traces.otlpExporter.endpoint)"])
        }
        let server = InferencePipeline(
            identity: ServerIdentity(name: serverName, version: Self.version, extensions: ServerExtensions.supported),
            models: models, phase: phase, ready: readiness.isReady, logSettings: logSettings,
            traceConfiguration: traces, openTelemetry: openTelemetry?.traces, logger: logger)
        if access.isEnabled { logger.info("bearer-token authentication on", metadata: ["health.open": "\(authOpenHealth)"]) }
        if traceAllowTensors {
            logger.warning("trace level TENSORS allowed: sampled requests' tensors (which can hold patient data) are written to the trace file")
        }

        // ServiceGroup shuts services down in reverse order: the serving phase
        // first (readiness off at once, queues drain), then the endpoints.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        // First, so it stops last: spans of draining requests are exported.
        if let openTelemetry { services.append(.init(service: openTelemetry.service)) }
        if allowGRPC {
            let grpc = GRPCServer(
                configuration: .init(
                    host: host, port: grpcPort, maxReceiveMessageBytes: grpcMaxMessageSize, maxInflatedMessageBytes: grpcMaxInflatedSize,
                    maxSendMessageBytes: grpcMaxMessageSize,
                    keepaliveInterval: Self.timeout(seconds: grpcKeepaliveTime),
                    drainTimeout: .seconds(exitTimeoutSecs),
                    tls: try tlsConfiguration(enabled: grpcUseSSL, mutual: grpcUseSSLMutual, certificate: grpcServerCert,
                                              key: grpcServerKey, clientCA: grpcRootCert, flag: "grpc"),
                    idleTimeout: Self.timeout(seconds: grpcIdleTimeoutSecs)),
                router: KServeGRPCService(server: server, access: access, audit: audit, logger: logger).router(),
                logger: logger)
            services.append(.init(service: GRPCService(server: grpc)))
        }
        if allowHTTP {
            let http = KServeHTTPServer(
                configuration: .init(host: host, port: httpPort, maxRequestBytes: httpMaxInputSize,
                                     tls: try tlsConfiguration(enabled: httpUseSSL, mutual: httpUseSSLMutual, certificate: httpServerCert,
                                                               key: httpServerKey, clientCA: httpRootCert, flag: "http"),
                                     idleTimeout: Self.timeout(seconds: httpIdleTimeoutSecs), deidentifierModel: deidentifierModel),
                server: server, access: access, audit: audit, logger: logger)
            services.append(.init(service: try http.makeApplication()))
        }
        if allowMetrics {
            let exporter = MetricsExporter(
                registry: registry, host: host, port: metricsPort, access: access,
                tls: try tlsConfiguration(enabled: metricsUseSSL, mutual: metricsUseSSLMutual, certificate: metricsServerCert,
                                          key: metricsServerKey, clientCA: metricsRootCert, flag: "metrics"),
                idleTimeout: Self.timeout(seconds: httpIdleTimeoutSecs),
                samplers: GPUMetricsSampler.make().map { sampler in [{ sampler.sample() }] } ?? [], logger: logger)
            services.append(.init(service: try exporter.makeApplication()))
        }
        if modelControlMode == .poll {
            services.append(.init(service: RepositoryPollService(models: models, interval: .seconds(repositoryPollSecs))))
        }
        services.append(.init(service: ServingPhaseService(phase: phase, models: models, logger: logger)))

        SecondSignal.exitImmediately(logger: logger)
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(exitTimeoutSecs)
        try await ServiceGroup(configuration: configuration).run()
        server.traces.flush()
        await responseCache?.close()
        logger.info("batch-server stopped")
    }
}

extension ModelControlMode: ExpressibleByArgument {}

/// `--rate-limit`, Triton's values.
enum RateLimitMode: String, ExpressibleByArgument, CaseIterable {
    case off
    case executionCount = "execution_count"
}

/// Poll mode: rescans the repository until shutdown.
struct RepositoryPollService: Service {
    let models: ModelManager
    let interval: Duration

    func run() async throws {
        while !Task.isShuttingDownGracefully {
            // Sleeping ends early on graceful shutdown.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            if Task.isShuttingDownGracefully || Task.isCancelled { break }
            await models.poll()
        }
    }
}

extension BatchServerCommand {
    /// A seconds flag whose 0 means "never" (timeouts, keepalive) as a Duration.
    static func timeout(seconds: Int) -> Duration? {
        seconds > 0 ? .seconds(seconds) : nil
    }

    /// TLS 1.2 or later from PEM files; with `mutual`, clients must present a
    /// certificate signed by `clientCA`.
    func tlsConfiguration(enabled: Bool, mutual: Bool, certificate: String?, key: String?, clientCA: String?,
                          flag: String) throws -> TLSConfiguration? {
        guard enabled || mutual else { return nil }
        guard let certificate, let key else {
            throw ValidationError("--\(flag)-use-ssl needs --\(flag)-server-cert and --\(flag)-server-key")
        }
        let chain: [NIOSSLCertificate]
        let privateKey: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificate)
            privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
        } catch {
            throw ValidationError("--\(flag)-server-cert / --\(flag)-server-key: cannot read the PEM files (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = .tlsv12
        if mutual {
            guard let clientCA else { throw ValidationError("--\(flag)-use-ssl-mutual needs --\(flag)-root-cert") }
            configuration.trustRoots = .file(clientCA)
            configuration.certificateVerification = .noHostnameVerification
        }
        return configuration
    }

    /// Tokens from `--auth-tokens-file` or $BATCHSERVER_AUTH_TOKENS; never from the command line.
    func accessPolicy() throws -> AccessPolicy {
        if let path = authTokensFile {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("--auth-tokens-file: cannot read \(path)")
            }
            return try AccessPolicy(json: data, source: path, openHealth: authOpenHealth)
        }
        if let text = ProcessInfo.processInfo.environment["BATCHSERVER_AUTH_TOKENS"], !text.isEmpty {
            return try AccessPolicy(json: Data(text.utf8), source: "$BATCHSERVER_AUTH_TOKENS", openHealth: authOpenHealth)
        }
        return .open
    }
}

enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    case `default`, json
}

/// Readiness as `--strict-readiness` defines it.
struct Readiness: Sendable {
    let phase: ServerPhase
    let models: ModelManager
    let strict: Bool

    var isReady: @Sendable () -> Bool {
        { [phase, models, strict] in phase.current == .serving && (!strict || models.allModelsReady) }
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
        logger.info("drained")
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

/// The first SIGTERM or SIGINT drains; a second one ends the process at once.
enum SecondSignal {
    static func exitImmediately(logger: Logger) {
        Task.detached {
            var seen = 0
            for await signal in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                seen += 1
                if seen >= 2 {
                    logger.warning("second \(signal) signal: exiting without waiting for requests to finish")
                    exit(1)
                }
            }
        }
    }
}
