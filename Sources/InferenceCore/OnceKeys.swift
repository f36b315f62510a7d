import Synchronization

/// Remembers keys across calls: true the first time a key is seen (one log
/// line per model for a condition every instance meets).
public final class OnceKeys: Sendable {
    private let seen = Mutex<Set<String>>([])
    public init() {}
    public func first(_ key: String) -> Bool { seen.withLock { $0.insert(key).inserted } }
}
