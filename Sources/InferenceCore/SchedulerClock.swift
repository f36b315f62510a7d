import Synchronization

/// The time schedulers, runners and the model manager read and sleep on.
/// Injected so tests drive them with a manual clock instead of sleeping; it
/// lives here, in the shared vocabulary, because the model repository's
/// ensemble runner takes it too and imports no scheduler.
public protocol SchedulerClock: Sendable {
    var now: ContinuousClock.Instant { get }
    func sleep(until deadline: ContinuousClock.Instant) async throws
}

/// The process's continuous clock.
public struct SystemSchedulerClock: SchedulerClock {
    public init() {}
    public var now: ContinuousClock.Instant { ContinuousClock.now }
    public func sleep(until deadline: ContinuousClock.Instant) async throws {
        try await Task.sleep(until: deadline, clock: .continuous)
    }
}

/// A clock that moves only when a test advances it; sleepers wake when it
/// passes their deadline (or when cancelled).
public final class ManualSchedulerClock: SchedulerClock {
    private struct State {
        var now: ContinuousClock.Instant
        var sleepers: [Int: (deadline: ContinuousClock.Instant, continuation: CheckedContinuation<Void, any Error>)] = [:]
        var nextID = 0
    }
    private let state: Mutex<State>

    public init(start: ContinuousClock.Instant = .now) { state = Mutex(State(now: start)) }

    public var now: ContinuousClock.Instant { state.withLock { $0.now } }

    /// Sleepers waiting now (a test waits for the loop to go to sleep).
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    public func advance(by duration: Duration) {
        let due: [CheckedContinuation<Void, any Error>] = state.withLock { state in
            state.now += duration
            let now = state.now
            let ready = state.sleepers.filter { $0.value.deadline <= now }
            for key in ready.keys { state.sleepers[key] = nil }
            return ready.values.map(\.continuation)
        }
        for continuation in due { continuation.resume() }
    }

    public func sleep(until deadline: ContinuousClock.Instant) async throws {
        let id: Int = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow: Bool = state.withLock { state in
                    if deadline <= state.now || Task.isCancelled { return true }
                    state.sleepers[id] = (deadline, continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLock { $0.sleepers.removeValue(forKey: id)?.continuation }
            continuation?.resume(throwing: CancellationError())
        }
        try Task.checkCancellation()
    }
}
