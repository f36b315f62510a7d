import InferenceCore
import Synchronization

/// Where sealed entries live, by name.
public protocol ResponseStore: Sendable {
    func get(_ name: String) async throws -> [UInt8]?
    func put(_ name: String, _ value: [UInt8]) async throws -> StoreOutcome
    /// Entries held, bytes held and the bound, evictions so far (nil where
    /// the store cannot tell, as for Redis).
    func occupancy() -> StoreOccupancy?
    /// Lets go of connections at shutdown.
    func close() async
}

extension ResponseStore {
    public func close() async {}
}

public enum StoreOutcome: Sendable, Equatable {
    case stored
    /// Another request stored this name first (Triton counts no miss then).
    case alreadyExists
}

public struct StoreOccupancy: Sendable, Equatable {
    public var entries: Int
    public var bytes: Int
    public var capacity: Int
    public var evictions: UInt64
}

/// Triton's `local` cache: least recently used entries go first once the
/// bytes held would pass the bound. An entry counts its value, its name and
/// a fixed overhead for its bookkeeping.
public final class LocalResponseStore: ResponseStore {
    static let overhead = 96

    /// A doubly linked list over array slots: a lookup or insert moves an
    /// entry to the front in O(1); eviction takes from the back.
    struct LRU {
        struct Node {
            var name: String
            var value: [UInt8]
            var previous: Int?
            var next: Int?
        }
        var nodes: [Node?] = []
        var free: [Int] = []
        var slots: [String: Int] = [:]
        var head: Int?
        var tail: Int?
        var bytes = 0
        var evictions: UInt64 = 0

        static func size(_ name: String, _ value: [UInt8]) -> Int { value.count + name.utf8.count + LocalResponseStore.overhead }

        mutating func unlink(_ slot: Int) {
            let node = nodes[slot]!
            if let previous = node.previous { nodes[previous]!.next = node.next } else { head = node.next }
            if let next = node.next { nodes[next]!.previous = node.previous } else { tail = node.previous }
            nodes[slot]!.previous = nil
            nodes[slot]!.next = nil
        }

        mutating func pushFront(_ slot: Int) {
            nodes[slot]!.next = head
            nodes[slot]!.previous = nil
            if let head { nodes[head]!.previous = slot }
            head = slot
            if tail == nil { tail = slot }
        }

        mutating func get(_ name: String) -> [UInt8]? {
            guard let slot = slots[name] else { return nil }
            unlink(slot)
            pushFront(slot)
            return nodes[slot]!.value
        }

        mutating func insert(_ name: String, _ value: [UInt8], capacity: Int) -> StoreOutcome {
            if slots[name] != nil { return .alreadyExists }
            let size = Self.size(name, value)
            while bytes + size > capacity, let last = tail {
                remove(last)
                evictions += 1
            }
            let node = Node(name: name, value: value)
            let slot: Int
            if let reused = free.popLast() {
                slot = reused
                nodes[slot] = node
            } else {
                slot = nodes.count
                nodes.append(node)
            }
            slots[name] = slot
            bytes += size
            pushFront(slot)
            return .stored
        }

        mutating func remove(_ slot: Int) {
            unlink(slot)
            let node = nodes[slot]!
            bytes -= Self.size(node.name, node.value)
            slots[node.name] = nil
            nodes[slot] = nil
            free.append(slot)
        }
    }

    public let capacity: Int
    private let lru = Mutex(LRU())

    public init(capacity: Int) {
        self.capacity = capacity
    }

    public func get(_ name: String) -> [UInt8]? {
        lru.withLock { $0.get(name) }
    }

    /// An entry larger than the whole cache is refused with Triton's text and
    /// evicts nothing.
    public func put(_ name: String, _ value: [UInt8]) throws -> StoreOutcome {
        let size = LRU.size(name, value)
        guard size <= capacity else {
            throw InferenceError.internal("Requested byte_size: \(size) is greater than total cache size: \(capacity)")
        }
        return lru.withLock { $0.insert(name, value, capacity: capacity) }
    }

    public func occupancy() -> StoreOccupancy? {
        lru.withLock { StoreOccupancy(entries: $0.slots.count, bytes: $0.bytes, capacity: capacity, evictions: $0.evictions) }
    }
}
