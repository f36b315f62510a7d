/// What a frontend asks of the server. Frontends turn their wire format into
/// these calls and the answers back into their wire format; everything else
/// (phase, model lease, shared memory, validation, scheduling, logging) happens
/// once, behind this protocol, for every protocol.
public protocol InferenceServer: Sendable {
    var identity: ServerIdentity { get }
    /// Server readiness as `/v2/health/ready` and ServerReady report it.
    var isReady: Bool { get }
    func isModelReady(_ name: String, version: String) -> Bool

    /// Every ready version of `name` (version empty) or the one named, oldest first.
    func modelVersions(_ name: String, version: String) throws -> [ModelView]
    /// The one version (empty: the newest ready) of `name`.
    func model(_ name: String, version: String) throws -> ModelView
    /// Ready versions for statistics: every model when `name` is empty.
    func statistics(_ name: String, version: String) throws -> [ModelView]

    func repositoryIndex(readyOnly: Bool) -> [ModelIndexEntry]
    /// `configJSON` is the load API's `config` parameter (Triton's ModelConfig as JSON).
    func loadModel(_ name: String, configJSON: String?, files: [String: [UInt8]]) async throws
    func unloadModel(_ name: String) async throws

    /// One inference. `decode` turns the wire request into the shared request
    /// once the model is known (it may need the model's spec) and returns what
    /// the frontend needs to encode the answer (`Wire`).
    func infer<Wire: Sendable>(_ call: InferenceCall, decode: (ModelSpec) throws -> (InferenceRequest, Wire))
        async throws -> (InferenceResponse, Wire)

    /// Every response to one request, each handed to `each` as the model sends
    /// it (decoupled models send zero or more); the model stays leased until
    /// the last. An error thrown by `each` (the client went away) cancels the rest.
    func inferStream(_ call: InferenceCall, decode: (ModelSpec) throws -> InferenceRequest,
                     each: (InferenceResponse) async throws -> Void) async throws

    var systemSharedMemory: any SharedMemoryRegistry { get }
    var cudaSharedMemory: any CUDASharedMemoryRegistry { get }
    var logSettings: any LogSettingsControl { get }
    var traceSettings: any TraceSettingsControl { get }
}

/// Where an inference call came from, for the pipeline's log line and errors.
public struct InferenceCall: Sendable {
    public var modelName: String
    /// The protocol's version string; empty selects the newest ready version.
    public var modelVersion: String
    /// "http" or "grpc".
    public var protocolName: String
    /// Size of the request on the wire after decompression, for the log line.
    public var requestBytes: Int
    /// Whether the caller was granted re-identification (the `reidentify`
    /// endpoint group): only /deanonymize sets it.
    public var grantsReidentification: Bool
    /// W3C trace context the client sent (`traceparent`, `tracestate`; HTTP
    /// headers or gRPC metadata, names lowercased), for OpenTelemetry traces.
    public var traceHeaders: [String: String] = [:]
    /// The W3C trace-context fields the frontends read into `traceHeaders`.
    public static let traceHeaderNames = ["traceparent", "tracestate"]

    public init(modelName: String, modelVersion: String, protocolName: String, requestBytes: Int = 0,
                grantsReidentification: Bool = false) {
        self.modelName = modelName
        self.modelVersion = modelVersion
        self.protocolName = protocolName
        self.requestBytes = requestBytes
        self.grantsReidentification = grantsReidentification
    }
}

/// The W3C trace context (`traceparent`, `tracestate`) of the call being
/// served, bound by the frontend for the length of the call, for code that
/// builds its `InferenceCall`s away from the wire (the text APIs' requests).
public enum IncomingTraceContext {
    @TaskLocal public static var headers: [String: String] = [:]
}

/// Server metadata: the name clients check (`triton` by default), the
/// product's version, and the protocol extensions implemented.
public struct ServerIdentity: Sendable, Hashable {
    public var name: String
    public var version: String
    public var extensions: [String]

    public init(name: String, version: String, extensions: [String]) {
        self.name = name
        self.version = version
        self.extensions = extensions
    }
}

/// A ready model version as frontends see it.
public struct ModelView: Sendable {
    public let spec: ModelSpec
    public let runner: any InferenceRunner
    /// The model's steps around its runner; its tokenizer for the text routes.
    public let steps: ModelSteps
    /// The model configuration as Triton's ModelConfig message (protobuf binary).
    public let configProtobuf: @Sendable () throws -> [UInt8]
    /// The model configuration as Triton's `/config` route returns it (JSON).
    public let configJSON: @Sendable () throws -> [UInt8]

    public init(spec: ModelSpec, runner: any InferenceRunner, steps: ModelSteps, configProtobuf: @escaping @Sendable () throws -> [UInt8],
                configJSON: @escaping @Sendable () throws -> [UInt8]) {
        self.spec = spec
        self.runner = runner
        self.steps = steps
        self.configProtobuf = configProtobuf
        self.configJSON = configJSON
    }

    /// `platform` as model metadata reports it (the backend where no platform is set).
    public var platform: String { spec.platform.isEmpty ? spec.backend : spec.platform }
}

/// Readiness of one model version, as Triton's repository index reports it.
public enum ModelVersionState: String, Sendable {
    case loading = "LOADING"
    case ready = "READY"
    case unloading = "UNLOADING"
    case unavailable = "UNAVAILABLE"
}

/// One row of the repository index.
public struct ModelIndexEntry: Sendable, Hashable {
    public var name: String
    /// Empty when the model failed before any version was known.
    public var version: String
    public var state: ModelVersionState
    public var reason: String

    public init(name: String, version: String, state: ModelVersionState, reason: String) {
        self.name = name
        self.version = version
        self.state = state
        self.reason = reason
    }
}

/// The KServe v2 protocol extensions BatchServer implements, in the order
/// Triton lists them (perf_analyzer and clients read this list).
/// `cuda_shared_memory` is absent: not implemented here.
public enum ServerExtensions {
    public static let supported = [
        "classification", "sequence", "model_repository", "schedule_policy", "model_configuration", "system_shared_memory",
        "binary_tensor_data", "parameters", "statistics", "trace", "logging",
    ]
}
