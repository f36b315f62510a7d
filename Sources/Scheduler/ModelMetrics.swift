import CoreMetrics
import InferenceCore

/// The Prometheus series of one model version, with Triton's names and labels
/// (model, version), recorded next to `ModelStatistics` so the two agree.
/// Backed by whatever metrics system the executable bootstraps.
struct ModelMetrics: Sendable {
    let success: Counter
    let failures: [FailureReason: Counter]
    let inferenceCount: Counter
    let executionCount: Counter
    let pending: Gauge
    let requestDuration: Counter
    let queueDuration: Counter
    let computeInputDuration: Counter
    let computeInferDuration: Counter
    let computeOutputDuration: Counter
    let requestLatency: Timer
    let batchSize: Recorder
    let batchTokens: Recorder
    let paddingRatio: Recorder
    /// Ours: executions on the urgent lane (batches that overtook computing ones).
    let urgentExecutions: Counter

    init(model: String, version: Int64) {
        let labels = [("model", model), ("version", String(version))]
        success = Counter(label: "nv_inference_request_success", dimensions: labels)
        failures = Dictionary(uniqueKeysWithValues: FailureReason.allCases.map {
            ($0, Counter(label: "nv_inference_request_failure", dimensions: labels + [("reason", $0.rawValue)]))
        })
        inferenceCount = Counter(label: "nv_inference_count", dimensions: labels)
        executionCount = Counter(label: "nv_inference_exec_count", dimensions: labels)
        pending = Gauge(label: "nv_inference_pending_request_count", dimensions: labels)
        requestDuration = Counter(label: "nv_inference_request_duration_us", dimensions: labels)
        queueDuration = Counter(label: "nv_inference_queue_duration_us", dimensions: labels)
        computeInputDuration = Counter(label: "nv_inference_compute_input_duration_us", dimensions: labels)
        computeInferDuration = Counter(label: "nv_inference_compute_infer_duration_us", dimensions: labels)
        computeOutputDuration = Counter(label: "nv_inference_compute_output_duration_us", dimensions: labels)
        requestLatency = Timer(label: "batchserver_request_latency", dimensions: labels)
        batchSize = Recorder(label: "batchserver_batch_size", dimensions: labels, aggregate: true)
        batchTokens = Recorder(label: "batchserver_batch_tokens", dimensions: labels, aggregate: true)
        paddingRatio = Recorder(label: "batchserver_padding_ratio", dimensions: labels, aggregate: true)
        urgentExecutions = Counter(label: "batchserver_urgent_executions_total", dimensions: labels)
    }

    func recordSuccess(total: Duration, timing: RequestTiming) {
        success.increment()
        requestDuration.increment(by: Int64(clamping: total.nanosecondsClamped / 1000))
        queueDuration.increment(by: Int64(clamping: timing.queue.nanosecondsClamped / 1000))
        computeInputDuration.increment(by: Int64(clamping: timing.computeInput.nanosecondsClamped / 1000))
        computeInferDuration.increment(by: Int64(clamping: timing.computeInfer.nanosecondsClamped / 1000))
        computeOutputDuration.increment(by: Int64(clamping: timing.computeOutput.nanosecondsClamped / 1000))
        requestLatency.recordNanoseconds(Int64(clamping: total.nanosecondsClamped))
    }

    func recordFailure(_ reason: FailureReason) {
        failures[reason]?.increment()
    }

    func recordExecution(rows: Int, batchTokens tokens: Int, realTokens: Int) {
        executionCount.increment()
        inferenceCount.increment(by: Int64(rows))
        batchSize.record(rows)
        batchTokens.record(tokens)
        paddingRatio.record(tokens > 0 ? Double(tokens - realTokens) / Double(tokens) : 0)
    }
}
