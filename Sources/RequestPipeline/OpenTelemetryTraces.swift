import Foundation
import InferenceCore
import Instrumentation
import Tracing

/// Trace mode `opentelemetry`: a sampled request becomes spans through the
/// process's tracer (swift-distributed-tracing's `InstrumentationSystem`, which
/// the executable bootstraps with swift-otel's OTLP/HTTP exporter): an
/// `InferRequest` server span, a child of the W3C `traceparent` the client
/// sent, with `queue` and `compute` child spans, events for our own steps
/// (PHI_REDACTION_START/END), and `InferRequest` children for ensemble steps.
/// The scheduler adds a `batch` span linked to every sampled request it
/// carries. Attributes name the model, version and request id only: no
/// input text, no tensor values.
public final class OpenTelemetryTraces: Sendable {
    let clock: TraceClock
    /// Wall-clock nanoseconds minus monotonic ones, so span times are in the
    /// Unix epoch OTLP wants while durations come from the monotonic clock.
    let epochOffset: Int64

    public init(clock: @escaping TraceClock = TraceClocks.monotonic) {
        self.clock = clock
        let wall = Int64(Date().timeIntervalSince1970 * 1e9)
        epochOffset = wall - Int64(clamping: clock())
    }

    func instant(_ ns: UInt64) -> DefaultTracerClock.Timestamp {
        DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: UInt64(clamping: Int64(clamping: ns) + epochOffset))
    }

    func request(model: String, requestID: String, started: UInt64, headers: [String: String]) -> OpenTelemetryRequestTrace {
        var parent = InstrumentationContext.topLevel
        if !headers.isEmpty {
            InstrumentationSystem.instrument.extract(headers, into: &parent, using: TraceHeaderExtractor())
        }
        return OpenTelemetryRequestTrace(traces: self, model: model, requestID: requestID, parent: parent, kind: .server, started: started)
    }
}

struct TraceHeaderExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key.lowercased()] }
}

final class OpenTelemetryRequestTrace: RunTrace {
    let traces: OpenTelemetryTraces
    let span: any Span
    let requestID: String

    init(traces: OpenTelemetryTraces, model: String, requestID: String, parent: InstrumentationContext, kind: SpanKind, started: UInt64) {
        self.traces = traces
        self.requestID = requestID
        span = startSpan("InferRequest", at: traces.instant(started), context: parent, ofKind: kind)
        span.attributes["triton.model_name"] = model
        if !requestID.isEmpty { span.attributes["triton.request_id"] = String(requestID.prefix(128)) }
    }

    var now: UInt64 { traces.clock() }

    func record(_ name: String) {
        span.addEvent(SpanEvent(name: name, at: traces.instant(now)))
    }

    func run<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
        try await RunTracing.$current.withValue(self) {
            try await InstrumentationContext.$current.withValue(span.context) { try await body() }
        }
    }

    func child(model: String) -> any RunTrace {
        OpenTelemetryRequestTrace(traces: traces, model: model, requestID: requestID, parent: span.context, kind: .internal, started: now)
    }

    func recordScheduling(handed: UInt64, returned: UInt64, timing: RequestTiming) {
        let stamps = SchedulingStamps(handed: handed, returned: returned, timing: timing)
        if let tokenize = stamps.tokenize {
            startSpan("tokenize", at: traces.instant(tokenize.start), context: span.context).end(at: traces.instant(tokenize.end))
        }
        let queue = startSpan("queue", at: traces.instant(stamps.queueStart), context: span.context)
        queue.end(at: traces.instant(stamps.computeStart))
        let compute = startSpan("compute", at: traces.instant(stamps.computeStart), context: span.context)
        compute.addEvent(SpanEvent(name: "COMPUTE_INPUT_END", at: traces.instant(stamps.inputEnd)))
        compute.addEvent(SpanEvent(name: "COMPUTE_OUTPUT_START", at: traces.instant(stamps.outputStart)))
        compute.end(at: traces.instant(stamps.computeEnd))
    }

    func finish(version: Int64?) {
        if let version { span.attributes["triton.model_version"] = Int(version) }
        span.end(at: traces.instant(now))
    }
}
