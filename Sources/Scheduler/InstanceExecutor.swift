import Dispatch
import Foundation
import Synchronization

/// A dedicated OS thread that runs one job at a time for one model instance.
/// Backends block while they compute; running them here keeps Swift's
/// cooperative thread pool free for the network and the scheduler, and gives
/// each instance a stable thread for its math library's thread-local state.
public final class InstanceExecutor: Sendable {
    private struct State: ~Copyable {
        var jobs: [@Sendable () -> Void] = []
        var stopped = false
    }
    private let state = Mutex(State())
    private let wakeup = DispatchSemaphore(value: 0)
    public let name: String
    /// The instance's place in the server's rate limiter, when one is on.
    let admission: RateLimiter.Admission?

    public init(name: String, admission: RateLimiter.Admission? = nil) {
        self.name = name
        self.admission = admission
        // The thread holds the executor until `stop()` ends its loop.
        let thread = Thread { [self] in self.loop() }
        thread.start()
    }

    private func loop() {
        // Named from inside: corelibs Foundation ignores a name set before start.
        Thread.current.name = name
        while true {
            wakeup.wait()
            let next: (@Sendable () -> Void)? = state.withLock { state in
                state.jobs.isEmpty ? nil : state.jobs.removeFirst()
            }
            if let next {
                next()
            } else if state.withLock({ $0.stopped }) {
                return
            }
        }
    }

    /// Runs `body` on the executor's thread and returns its result, once the
    /// rate limiter (if any) has granted the instance its resources.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        guard let admission else { return try await runOnThread(body) }
        await admission.acquire()
        defer { admission.release() }
        return try await runOnThread(body)
    }

    private func runOnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let accepted = state.withLock { state -> Bool in
                guard !state.stopped else { return false }
                state.jobs.append {
                    do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
                }
                return true
            }
            if accepted {
                wakeup.signal()
            } else {
                continuation.resume(throwing: CancellationError())
            }
        }
    }

    /// Lets queued jobs finish, then ends the thread.
    public func stop() {
        admission?.unregister()
        state.withLock { $0.stopped = true }
        wakeup.signal()
    }
}
