import CoreMetrics
import InferenceCore
import Synchronization

/// What one token may spend on inference, from its entry in the tokens file:
/// `"limits": {"requests_per_second": 20, "burst": 40, "max_concurrent": 4}`.
/// A bulk job's token can then not starve a clinical application's.
public struct PrincipalLimit: Sendable, Hashable, Decodable {
    /// Sustained rate (a token bucket refilled at this rate).
    public var requests_per_second: Double?
    /// Requests allowed at once above the rate (the bucket's size; default:
    /// one second's worth, at least 1).
    public var burst: Double?
    /// Inference requests in flight at once.
    public var max_concurrent: Int?

    public init(requests_per_second: Double? = nil, burst: Double? = nil, max_concurrent: Int? = nil) {
        self.requests_per_second = requests_per_second
        self.burst = burst
        self.max_concurrent = max_concurrent
    }

    var capacity: Double { burst ?? max(requests_per_second ?? 1, 1) }

    func check(name: String) throws {
        if let rate = requests_per_second, !(rate > 0) {
            throw InferenceError.invalidArgument("token '\(name)': limits.requests_per_second must be positive")
        }
        if let burst, !(burst >= 1) { throw InferenceError.invalidArgument("token '\(name)': limits.burst must be at least 1") }
        if let concurrent = max_concurrent, concurrent < 1 {
            throw InferenceError.invalidArgument("token '\(name)': limits.max_concurrent must be at least 1")
        }
    }
}

/// Enforces each principal's limits on inference requests: refusals are
/// RESOURCE_EXHAUSTED with when to retry (HTTP 429 with `Retry-After`), counted
/// in `batchserver_rate_limited_total{principal, reason}`.
public final class PrincipalLimiter: Sendable {
    struct Usage {
        var tokens: Double
        var refilled: Duration
        var inFlight = 0
    }

    let limits: [String: PrincipalLimit]
    /// Time since a fixed point (injected: tests move it by hand).
    let now: @Sendable () -> Duration
    private let usage = Mutex<[String: Usage]>([:])

    public init(limits: [String: PrincipalLimit], now: @escaping @Sendable () -> Duration = PrincipalLimiter.monotonic()) {
        self.limits = limits
        self.now = now
    }

    public static func monotonic() -> @Sendable () -> Duration {
        let origin = ContinuousClock.now
        return { ContinuousClock.now - origin }
    }

    /// Held while the request runs; `release()` when it ends.
    public struct Permit: Sendable {
        let limiter: PrincipalLimiter?
        let principal: String
        let counted: Bool

        public func release() {
            guard counted, let limiter else { return }
            limiter.usage.withLock { $0[principal]?.inFlight -= 1 }
        }

        public static let none = Permit(limiter: nil, principal: "", counted: false)
    }

    /// Admits one inference request of `principal` (nil: access control off
    /// or anonymous: no limits), or throws why not and when to retry.
    public func admit(_ principal: String?) throws -> Permit {
        guard let principal, let limit = limits[principal] else { return .none }
        let time = now()
        let refusal: (reason: String, message: String, retry: Duration)? = usage.withLock { usage in
            var entry = usage[principal] ?? Usage(tokens: limit.capacity, refilled: time)
            defer { usage[principal] = entry }
            // `time` was read before the lock: a concurrent request may have
            // refilled at a later instant. The bucket never moves back.
            if let rate = limit.requests_per_second, time > entry.refilled {
                let elapsed = Double((time - entry.refilled).nanosecondsClamped) / 1e9
                entry.tokens = min(limit.capacity, entry.tokens + elapsed * rate)
                entry.refilled = time
            }
            if let concurrent = limit.max_concurrent, entry.inFlight >= concurrent {
                return ("concurrency", "token '\(principal)' has \(entry.inFlight) inference requests in flight, its limit", .seconds(1))
            }
            if let rate = limit.requests_per_second {
                guard entry.tokens >= 1 else {
                    let wait = (1 - entry.tokens) / rate
                    return ("rate", "token '\(principal)' is limited to \(Self.format(rate)) inference requests per second",
                            .nanoseconds(Int64(wait * 1e9)))
                }
                entry.tokens -= 1
            }
            entry.inFlight += 1
            return nil
        }
        if let refusal {
            Counter(label: "batchserver_rate_limited_total", dimensions: [("principal", principal), ("reason", refusal.reason)]).increment()
            throw InferenceError(.resourceExhausted, "rate limit: \(refusal.message); retry later", retryAfter: refusal.retry)
        }
        return Permit(limiter: self, principal: principal, counted: true)
    }

    static func format(_ rate: Double) -> String {
        rate == rate.rounded() ? String(Int(rate)) : String(rate)
    }
}
