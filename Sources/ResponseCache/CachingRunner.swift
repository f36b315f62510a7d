import CoreMetrics
import Foundation
import InferenceCore
import Synchronization

/// A model version with `response_cache { enable: true }` on a server with a
/// cache: a request whose answer is cached is answered without queuing;
/// otherwise it runs and its successful answer is kept. As in Triton, the
/// lookup sees the request the model would (after the pipeline's redaction),
/// requests writing outputs to shared memory bypass the cache, a hit counts
/// in `success` and `queue` but not in inference or execution counts, and a
/// miss's lookup and insert time is added to the request's.
public final class CachingRunner: InferenceRunner {
    let inner: any InferenceRunner
    let cache: ResponseCache
    let model: String
    let version: Int64
    /// Time since some fixed point (injected: tests move it by hand).
    let now: @Sendable () -> Duration
    private let counts = Mutex(Counts())
    private let metrics: Metrics

    struct Counts {
        var hit = StatisticDuration()
        var miss = StatisticDuration()
        var lastHitMilliseconds: UInt64 = 0
    }

    /// Triton's per-model cache counters (durations in µs) and the request
    /// series a hit adds to.
    struct Metrics {
        let hits, hitDuration, misses, missDuration, success, requestDuration: Counter
        init(model: String, version: Int64) {
            let labels = [("model", model), ("version", String(version))]
            hits = Counter(label: "nv_cache_num_hits_per_model", dimensions: labels)
            hitDuration = Counter(label: "nv_cache_hit_duration_per_model", dimensions: labels)
            misses = Counter(label: "nv_cache_num_misses_per_model", dimensions: labels)
            missDuration = Counter(label: "nv_cache_miss_duration_per_model", dimensions: labels)
            success = Counter(label: "nv_inference_request_success", dimensions: labels)
            requestDuration = Counter(label: "nv_inference_request_duration_us", dimensions: labels)
        }
    }

    public init(inner: any InferenceRunner, cache: ResponseCache, model: String, version: Int64,
                now: @escaping @Sendable () -> Duration = CachingRunner.monotonic()) {
        self.inner = inner
        self.cache = cache
        self.model = model
        self.version = version
        self.now = now
        metrics = Metrics(model: model, version: version)
    }

    public static func monotonic() -> @Sendable () -> Duration {
        let origin = ContinuousClock.now
        return { ContinuousClock.now - origin }
    }

    public func infer(_ request: ValidatedRequest) async throws -> InferenceResponse {
        if request.request.requestedOutputs.contains(where: { $0.region != nil }) { return try await inner.infer(request) }
        let started = now()
        let name = cache.keys.name(of: request, model: model, version: version)
        if let hit = await cache.lookup(name, id: request.request.id, model: model, version: version) {
            let took = now() - started
            counts.withLock {
                $0.hit.record(took)
                $0.lastHitMilliseconds = UInt64(Date().timeIntervalSince1970 * 1000)
            }
            metrics.hits.increment()
            metrics.hitDuration.increment(by: Int64(clamping: took.nanosecondsClamped / 1000))
            metrics.success.increment()
            metrics.requestDuration.increment(by: Int64(clamping: took.nanosecondsClamped / 1000))
            return hit
        }
        let lookedUp = now() - started
        let response = try await inner.infer(request)
        let inserting = now()
        let outcome = await cache.insert(name, response)
        // Another request kept this answer first: Triton counts no miss then.
        if outcome != .alreadyExists {
            let took = lookedUp + (now() - inserting)
            counts.withLock { $0.miss.record(took) }
            metrics.misses.increment()
            metrics.missDuration.increment(by: Int64(clamping: took.nanosecondsClamped / 1000))
            metrics.requestDuration.increment(by: Int64(clamping: took.nanosecondsClamped / 1000))
        }
        return response
    }

    public func statistics() -> ModelStatistics {
        var statistics = inner.statistics()
        let counts = counts.withLock { $0 }
        statistics.success.count += counts.hit.count
        statistics.success.nanoseconds &+= counts.hit.nanoseconds &+ counts.miss.nanoseconds
        statistics.queue.count += counts.hit.count
        statistics.cacheHit = counts.hit
        statistics.cacheMiss = counts.miss
        statistics.lastInferenceMilliseconds = max(statistics.lastInferenceMilliseconds, counts.lastHitMilliseconds)
        return statistics
    }

    public func shutdown() async { await inner.shutdown() }
    public var reportedParameters: [String: String] { inner.reportedParameters }
}
