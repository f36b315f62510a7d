import InferenceCore
import Synchronization

/// Triton's rate limiter (`--rate-limit=execution_count`), across every model
/// of the server: an instance whose group names `rate_limiter` resources runs
/// a batch only while those resources are free, and when it must wait, the
/// waiting instance that has executed least (its executions times its
/// priority) goes first, so priority 2 gets half the turns of priority 1.
/// Resources count per device unless `global`; how many copies exist is the
/// most any registered instance asks for, or what `--rate-limit-resource`
/// gives. As in Triton, only the first waiter in that order is considered, so
/// a large request is not starved by small ones. Ours: an instance that names
/// no resources never waits (nothing it holds can run short).
public final class RateLimiter: Sendable {
    /// `--rate-limit-resource NAME:COUNT[:DEVICE]`; no device: every device
    /// (and the global pool).
    public struct ResourceLimit: Sendable, Hashable {
        public var name: String
        public var count: Int
        public var device: Int?

        public init(name: String, count: Int, device: Int? = nil) {
            self.name = name
            self.count = count
            self.device = device
        }

        public init(flag: String) throws {
            let parts = flag.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard (2...3).contains(parts.count), !parts[0].isEmpty, let count = Int(parts[1]), count >= 0,
                  parts.count == 2 || Int(parts[2]).map({ $0 >= 0 }) == true else {
                throw InferenceError.invalidArgument("--rate-limit-resource '\(flag)': expected <resource_name>:<count>:<device> (device optional)")
            }
            self.init(name: parts[0], count: count, device: parts.count == 3 ? Int(parts[2]) : nil)
        }
    }

    /// A resource pool: per device, or the global one (device nil).
    struct Pool: Hashable {
        var name: String
        var device: Int?
    }

    struct Instance {
        var needs: [Pool: Int]
        var priority: Int
        var executions: UInt64 = 0
    }

    struct Waiter {
        var instance: UInt64
        var arrival: UInt64
        var continuation: CheckedContinuation<Void, Never>
    }

    struct State {
        var instances: [UInt64: Instance] = [:]
        var limits: [Pool: Int] = [:]
        var allocated: [Pool: Int] = [:]
        var waiting: [Waiter] = []
        var nextInstance: UInt64 = 0
        var nextArrival: UInt64 = 0
    }

    private let explicit: [ResourceLimit]
    private let state = Mutex(State())

    public init(resources: [ResourceLimit] = []) {
        explicit = resources
    }

    /// One instance's place in the limiter, used around each execution.
    public struct Admission: Sendable {
        let limiter: RateLimiter
        let id: UInt64
        /// Nothing to hold: never waits.
        let free: Bool

        public func acquire() async {
            if !free { await limiter.acquire(id) }
        }

        public func release() {
            if !free { limiter.release(id) }
        }

        public func unregister() { limiter.unregister(id) }
    }

    /// Registers every instance of a model version (in the order they are
    /// made); refuses, with Triton's texts, resources that cannot all be met.
    public func register(_ spec: ModelSpec) throws -> [Admission] {
        let placed = spec.instanceGroupsAndDevices
        let instances = placed.map { group, device in
            var needs: [Pool: Int] = [:]
            for resource in group.rateLimiter?.resources ?? [] where resource.count > 0 {
                needs[Pool(name: resource.name, device: resource.global ? nil : device), default: 0] += resource.count
            }
            return Instance(needs: needs, priority: max(group.rateLimiter?.priority ?? 1, 1))
        }
        return try state.withLock { state in
            var ids: [UInt64] = []
            for instance in instances {
                state.nextInstance += 1
                state.instances[state.nextInstance] = instance
                ids.append(state.nextInstance)
            }
            do {
                state.limits = try limits(for: state.instances.values.map(\.needs))
            } catch {
                for id in ids { state.instances[id] = nil }
                throw error
            }
            return zip(ids, instances).map { Admission(limiter: self, id: $0, free: $1.needs.isEmpty) }
        }
    }

    /// The copies of each pool: the most any instance needs, or the explicit
    /// count, which must cover that.
    func limits(for needs: [[Pool: Int]]) throws -> [Pool: Int] {
        var limits: [Pool: Int] = [:]
        for need in needs {
            for (pool, count) in need { limits[pool] = max(limits[pool] ?? 0, count) }
        }
        let globalNames = Set(limits.keys.filter { $0.device == nil }.map(\.name))
        if let both = limits.keys.first(where: { $0.device != nil && globalNames.contains($0.name) }) {
            throw InferenceError.invalidArgument(
                "Resource \"\(both.name)\" is present as both global and device-specific resource in the model configuration.")
        }
        guard !explicit.isEmpty else { return limits }
        for (pool, needed) in limits {
            let given = explicit.filter { $0.name == pool.name && (pool.device == nil || $0.device == nil || $0.device == pool.device) }
                .map(\.count).max() ?? 0
            guard given >= needed else {
                throw InferenceError.invalidArgument(
                    "Resource count for \"\(pool.name)\" is limited to \(given) which will prevent scheduling of one or more model instances, the minimum required count is \(needed)")
            }
            limits[pool] = given
        }
        return limits
    }

    func unregister(_ id: UInt64) {
        let granted = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.instances[id] = nil
            state.limits = (try? limits(for: state.instances.values.map(\.needs))) ?? state.limits
            return grant(&state)
        }
        for continuation in granted { continuation.resume() }
    }

    func acquire(_ id: UInt64) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.nextArrival += 1
                state.waiting.append(Waiter(instance: id, arrival: state.nextArrival, continuation: continuation))
                return grant(&state)
            }
            for continuation in granted { continuation.resume() }
        }
    }

    func release(_ id: UInt64) {
        let granted = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            if let needs = state.instances[id]?.needs {
                for (pool, count) in needs { state.allocated[pool, default: 0] -= count }
                state.instances[id]?.executions += 1
            }
            return grant(&state)
        }
        for continuation in granted { continuation.resume() }
    }

    /// Grants waiters in order while the first one fits.
    private func grant(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
        var granted: [CheckedContinuation<Void, Never>] = []
        while !state.waiting.isEmpty {
            let instances = state.instances
            func order(_ waiter: Waiter) -> (UInt64, UInt64) {
                let instance = instances[waiter.instance]
                return ((instance?.executions ?? 0) &* UInt64(instance?.priority ?? 1), waiter.arrival)
            }
            let first = state.waiting.indices.min { order(state.waiting[$0]) < order(state.waiting[$1]) }!
            let needs = state.instances[state.waiting[first].instance]?.needs ?? [:]
            guard needs.allSatisfy({ pool, count in (state.allocated[pool] ?? 0) + count <= (state.limits[pool] ?? 0) }) else { break }
            for (pool, count) in needs { state.allocated[pool, default: 0] += count }
            granted.append(state.waiting.remove(at: first).continuation)
        }
        return granted
    }

    /// Pools and what is held now (tests and metrics).
    public func snapshot() -> (limits: [String: Int], allocated: [String: Int], waiting: Int) {
        state.withLock { state in
            func named(_ pools: [Pool: Int]) -> [String: Int] {
                var out: [String: Int] = [:]
                for (pool, count) in pools { out[pool.device.map { "\(pool.name)@\($0)" } ?? pool.name, default: 0] += count }
                return out
            }
            return (named(state.limits), named(state.allocated), state.waiting.count)
        }
    }
}
