/// How a traced request's nested runs (an ensemble's steps) join its trace
/// without the model repository knowing the trace format: the request
/// pipeline sets `RunTracing.current` around a sampled request, and whoever
/// runs a model for it on the way asks for a child trace.
public protocol RunTrace: Sendable {
    /// Nanoseconds on the trace's clock.
    var now: UInt64 { get }
    /// A named moment of the request (ours: PHI_REDACTION_START/END; a
    /// stream's INFER_RESPONSE_COMPLETE).
    func record(_ name: String)
    /// Runs `body` inside this trace: `RunTracing.current` and whatever
    /// task-local context the trace's format carries (an OpenTelemetry span's).
    func run<T: Sendable>(_ body: () async throws -> T) async rethrows -> T
    /// A trace of a nested run of `model`, whose parent is this one.
    func child(model: String) -> any RunTrace
    /// The scheduler's stages, from when the request was handed to it to
    /// when its response came back, by the durations it measured.
    func recordScheduling(handed: UInt64, returned: UInt64, timing: RequestTiming)
    /// Ends and writes the trace; `version` is the model version that ran.
    func finish(version: Int64?)
    /// Tensors at a named point (Triton's TENSOR_QUEUE_INPUT,
    /// TENSOR_BACKEND_OUTPUT), kept only by traces at level TENSORS, which
    /// the server refuses unless started with `--trace-allow-tensors`.
    func recordTensors(_ activity: String, _ tensors: [Tensor])
}

extension RunTrace {
    public func recordTensors(_ activity: String, _ tensors: [Tensor]) {}

    public func run<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
        try await RunTracing.$current.withValue(self) { try await body() }
    }
}

public enum RunTracing {
    @TaskLocal public static var current: (any RunTrace)?

    /// Runs `body` (a model's scheduler call) in a child trace of the
    /// current one, if there is one.
    public static func child(model: String, _ body: () async throws -> InferenceResponse) async throws -> InferenceResponse {
        guard let parent = current else { return try await body() }
        let trace = parent.child(model: model)
        let handed = trace.now
        var version: Int64?
        defer { trace.finish(version: version) }
        let response = try await trace.run { try await body() }
        trace.recordScheduling(handed: handed, returned: trace.now, timing: response.timing)
        version = response.modelVersion
        return response
    }
}
