import CoreMetrics
import InferenceCore
import Logging
import Synchronization

/// Triton's response cache, one per server: names requests, seals and opens
/// entries, and keeps the global counts Triton's local cache publishes
/// (nv_cache_num_entries, nv_cache_util, nv_cache_num_hits/misses/lookups/
/// evictions, nv_cache_lookup_duration, nv_cache_insertion_duration in µs).
/// A store that fails (Redis down) costs a miss, never the request.
public final class ResponseCache: Sendable {
    let store: any ResponseStore
    let keys: CacheKeys
    let logger: Logger
    private let counts = Mutex(Counts())
    private let gauges: Gauges?
    /// A store that is down fails every lookup and insert: one line per kind
    /// of failure every 10 s, counting those held back, not one per request.
    private let lookupFailures = LogThrottle(interval: .seconds(10))
    private let insertFailures = LogThrottle(interval: .seconds(10))
    private let unreadableEntries = LogThrottle(interval: .seconds(10))

    struct Counts {
        var hits: UInt64 = 0
        var misses: UInt64 = 0
        var lookups: UInt64 = 0
        var lookupNanoseconds: UInt64 = 0
        var insertNanoseconds: UInt64 = 0
    }

    struct Gauges {
        let entries = Gauge(label: "nv_cache_num_entries")
        let utilization = Gauge(label: "nv_cache_util")
        let hits = Gauge(label: "nv_cache_num_hits")
        let misses = Gauge(label: "nv_cache_num_misses")
        let lookups = Gauge(label: "nv_cache_num_lookups")
        let evictions = Gauge(label: "nv_cache_num_evictions")
        let lookupDuration = Gauge(label: "nv_cache_lookup_duration")
        let insertionDuration = Gauge(label: "nv_cache_insertion_duration")
    }

    public init(store: any ResponseStore, keys: CacheKeys, logger: Logger) {
        self.store = store
        self.keys = keys
        self.logger = logger
        // Triton's redis cache publishes no global series; its local one does.
        gauges = store.occupancy() == nil ? nil : Gauges()
    }

    /// The cache `--cache-config` describes; Redis is reached (and must
    /// answer) before the server starts.
    public static func make(_ configuration: CacheConfiguration, logger: Logger) async throws -> ResponseCache {
        switch configuration {
        case .local(let bytes, let keyFile):
            let keys = try keyFile.map(CacheKeys.load(file:)) ?? .random()
            logger.info("response cache: local", metadata: ["cache.bytes": "\(bytes)"])
            return ResponseCache(store: LocalResponseStore(capacity: bytes), keys: keys, logger: logger)
        case .redis(let settings):
            let keys = try CacheKeys.load(file: settings.keyFile)
            let store = RedisResponseStore(settings: settings)
            try await store.connect()
            logger.info("response cache: redis", metadata: ["redis.host": "\(settings.host)", "redis.port": "\(settings.port)",
                                                            "redis.db": "\(settings.database)"])
            return ResponseCache(store: store, keys: keys, logger: logger)
        }
    }

    public func close() async { await store.close() }

    /// The cached answer under `name`, re-addressed to this request.
    func lookup(_ name: String, id: String, model: String, version: Int64) async -> InferenceResponse? {
        let started = ContinuousClock.now
        var found: InferenceResponse?
        do {
            if let sealed = try await store.get(name) {
                if let plain = keys.open(sealed, name: name) {
                    found = CachedResponse.decode(plain, id: id, model: model, version: version)
                }
                if found == nil, let held = unreadableEntries.admit(now: .now) {
                    logger.warning("response cache: an entry did not open or decode; treated as a miss",
                                   metadata: ["cache.key": "\(name.prefix(16))", "log.held_back": "\(held)"])
                }
            }
        } catch {
            if let held = lookupFailures.admit(now: .now) {
                logger.warning("response cache: lookup failed; treated as a miss",
                               metadata: ["error": "\(RedisClient.describe(error))", "log.held_back": "\(held)"])
            }
        }
        let elapsed = (ContinuousClock.now - started).nanosecondsClamped
        counts.withLock {
            $0.lookups += 1
            $0.lookupNanoseconds &+= elapsed
            if found == nil { $0.misses += 1 } else { $0.hits += 1 }
        }
        publish()
        return found
    }

    /// Keeps a successful answer. Failures are logged (by the key's prefix,
    /// an HMAC, never content) and cost nothing else.
    @discardableResult
    func insert(_ name: String, _ response: InferenceResponse) async -> StoreOutcome? {
        let started = ContinuousClock.now
        var outcome: StoreOutcome?
        do {
            outcome = try await store.put(name, try keys.seal(CachedResponse.encode(response), name: name))
        } catch {
            if let held = insertFailures.admit(now: .now) {
                logger.warning("Failed to insert key into response cache",
                               metadata: ["cache.key": "\(name.prefix(16))", "log.held_back": "\(held)",
                                          "error": "\((error as? InferenceError)?.message ?? RedisClient.describe(error))"])
            }
        }
        let elapsed = (ContinuousClock.now - started).nanosecondsClamped
        counts.withLock { $0.insertNanoseconds &+= elapsed }
        publish()
        return outcome
    }

    private func publish() {
        guard let gauges, let occupancy = store.occupancy() else { return }
        let counts = counts.withLock { $0 }
        gauges.entries.record(occupancy.entries)
        gauges.utilization.record(Double(occupancy.bytes) / Double(max(occupancy.capacity, 1)))
        gauges.hits.record(Int64(clamping: counts.hits))
        gauges.misses.record(Int64(clamping: counts.misses))
        gauges.lookups.record(Int64(clamping: counts.lookups))
        gauges.evictions.record(Int64(clamping: occupancy.evictions))
        gauges.lookupDuration.record(Int64(clamping: counts.lookupNanoseconds / 1000))
        gauges.insertionDuration.record(Int64(clamping: counts.insertNanoseconds / 1000))
    }
}

/// Lets a recurring log line through at most once per `interval`.
final class LogThrottle: Sendable {
    private let interval: Duration
    private let state = Mutex<(last: ContinuousClock.Instant?, held: Int)>((nil, 0))

    init(interval: Duration) { self.interval = interval }

    /// nil: hold this line back; otherwise log it, saying how many were held
    /// back since the last one that went out.
    func admit(now: ContinuousClock.Instant) -> Int? {
        state.withLock { state in
            if let last = state.last, now - last < interval {
                state.held += 1
                return nil
            }
            defer { state = (now, 0) }
            return state.held
        }
    }
}
