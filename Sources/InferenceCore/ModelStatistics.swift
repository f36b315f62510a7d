/// A count of events and their summed duration (Triton's StatisticDuration).
public struct StatisticDuration: Sendable, Hashable {
    public var count: UInt64 = 0
    public var nanoseconds: UInt64 = 0

    public init(count: UInt64 = 0, nanoseconds: UInt64 = 0) {
        self.count = count
        self.nanoseconds = nanoseconds
    }

    public mutating func record(_ duration: Duration) {
        count += 1
        nanoseconds &+= duration.nanosecondsClamped
    }
}

/// Why a request failed, with Triton's metric label values.
public enum FailureReason: String, Sendable, Hashable, CaseIterable {
    /// Refused by the queue: full, or its timeout expired under REJECT.
    case rejected = "REJECTED"
    /// The client went away before the request was computed.
    case canceled = "CANCELED"
    /// The backend failed while executing it.
    case backend = "BACKEND"
    case other = "OTHER"
}

/// Per-batch-size execution statistics (Triton's InferBatchStatistics).
public struct BatchStatistics: Sendable, Hashable {
    public var batchSize: Int
    public var computeInput = StatisticDuration()
    public var computeInfer = StatisticDuration()
    public var computeOutput = StatisticDuration()

    public init(batchSize: Int) { self.batchSize = batchSize }
}

/// Statistics of one model version with Triton's meaning: `inferenceCount`
/// counts batch rows inferred, `executionCount` counts executions, so their
/// ratio is the average batch size.
public struct ModelStatistics: Sendable, Hashable {
    /// Milliseconds since the Unix epoch of the last inference; 0 if none.
    public var lastInferenceMilliseconds: UInt64 = 0
    public var inferenceCount: UInt64 = 0
    public var executionCount: UInt64 = 0
    public var success = StatisticDuration()
    public var fail = StatisticDuration()
    public var queue = StatisticDuration()
    public var computeInput = StatisticDuration()
    public var computeInfer = StatisticDuration()
    public var computeOutput = StatisticDuration()
    /// Response cache hits (lookup time) and misses (lookup and insert time).
    public var cacheHit = StatisticDuration()
    public var cacheMiss = StatisticDuration()
    /// Keyed by batch size.
    public var batches: [Int: BatchStatistics] = [:]
    /// Failed requests by reason (the label of nv_inference_request_failure).
    public var failures: [FailureReason: UInt64] = [:]
    /// Token cost of executed batches, padding included (length-aware models).
    public var batchTokens: UInt64 = 0
    /// Real tokens in executed batches; `1 - realTokens / batchTokens` is the padding waste.
    public var realTokens: UInt64 = 0

    public init() {}
}

extension Duration {
    /// Whole nanoseconds, clamped to UInt64's range (a negative duration is 0).
    public var nanosecondsClamped: UInt64 {
        // Both components carry the sign: under a second below zero, only the attoseconds do.
        let (seconds, attoseconds) = components
        if seconds < 0 || attoseconds < 0 { return 0 }
        let (scaled, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        return scaled &+ UInt64(attoseconds / 1_000_000_000)
    }
}
