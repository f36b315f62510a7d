import Synchronization

/// Where the server is in its life; frontends read it for health answers and
/// refuse new inference once draining.
public final class ServerPhase: Sendable {
    public enum Phase: Sendable, Equatable {
        /// Models are still loading: live, not ready.
        case starting
        case serving
        /// Shutdown began: live, not ready, new requests get UNAVAILABLE.
        case draining
    }

    private let phase = Mutex(Phase.starting)

    public init() {}

    public var current: Phase { phase.withLock { $0 } }

    public func set(_ newPhase: Phase) { phase.withLock { $0 = newPhase } }
}
