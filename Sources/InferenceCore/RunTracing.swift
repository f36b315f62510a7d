/// How a traced request's nested runs (an ensemble's steps) join its trace
/// without the model repository knowing the trace format: the request
/// pipeline sets `RunTracing.current` around a sampled request, and whoever
/// runs a model for it on the way asks for a child trace.
public protocol RunTrace: Sendable {
    /// Nanoseconds on the trace's clock.
    var now: UInt64 { get }
    /// A trace of a nested run of `model`, whose parent is this one.
    func child(model: String) -> any RunTrace
    /// The scheduler's stages, from when the request was handed to it to
    /// when its response came back, by the durations it measured.
    func recordScheduling(handed: UInt64, returned: UInt64, timing: RequestTiming)
    /// Ends and writes the trace; `version` is the model version that ran.
    func finish(version: Int64?)
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
        let response = try await $current.withValue(trace) { try await body() }
        trace.recordScheduling(handed: handed, returned: trace.now, timing: response.timing)
        version = response.modelVersion
        return response
    }
}
