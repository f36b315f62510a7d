import Foundation

/// How a batch of a higher priority level overtakes batches already computing.
///
/// Batches cannot be interrupted, and a clinical request that arrives while
/// every instance computes a bulk batch would otherwise wait for the whole
/// batch (seconds at large batch sizes). With priority levels, the scheduler
/// keeps one extra instance of the model (an *urgent lane*, sharing the
/// prepared weights) for batches more urgent than everything computing; while
/// it runs, the busy instances pause at their next yield point (the encoder
/// yields between the steps of each layer), so the urgent batch has the cores
/// to itself and the paused batches resume where they stopped.
public final class UrgentWorkGate: @unchecked Sendable {
    // NSCondition guards `running` and `pauses`; nothing else is mutable.
    private let condition = NSCondition()
    private var running = 0
    private var pauses = 0

    public init() {}

    /// An urgent batch starts: instances that yield pause at their next yield point.
    public func begin() {
        condition.lock()
        running += 1
        condition.unlock()
    }

    /// The urgent batch finished: paused instances resume once no other runs.
    public func end() {
        condition.lock()
        running -= 1
        precondition(running >= 0, "UrgentWorkGate.end without begin")
        if running == 0 { condition.broadcast() }
        condition.unlock()
    }

    /// Called by an instance between steps of a batch: returns at once unless
    /// urgent work runs, else when it has finished.
    public func yield() {
        condition.lock()
        defer { condition.unlock() }
        guard running > 0 else { return }
        pauses += 1
        while running > 0 { condition.wait() }
    }

    /// Times an instance paused for urgent work so far.
    public var pauseCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return pauses
    }

    /// Whether an urgent batch is running now.
    public var isUrgentWorkRunning: Bool {
        condition.lock()
        defer { condition.unlock() }
        return running > 0
    }
}
