#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The progress line: rewritten in place on a terminal, a plain line every
/// few seconds otherwise (logs of cron jobs and Airflow tasks). Counts and
/// rates only, never row contents.
public final class ProgressReporter {
    public struct Snapshot: Sendable {
        public var done: Int
        public var total: Int?
        public var errors: Int
        public var retries: Int
        public var inFlight: Int
        public var window: Int
        public var elapsed: Double
    }

    public enum Mode: String, Sendable, CaseIterable {
        case auto, terminal, lines, off
    }

    private let terminal: Bool
    private let enabled: Bool
    private let interval: Double
    private var lastPrinted = -Double.infinity
    private var firstDone: Int?

    public init(mode: Mode, interval: Double = 5) {
        switch mode {
        case .auto: terminal = isatty(STDERR_FILENO) != 0; enabled = true
        case .terminal: terminal = true; enabled = true
        case .lines: terminal = false; enabled = true
        case .off: terminal = false; enabled = false
        }
        self.interval = interval
    }

    public func update(_ snapshot: Snapshot) {
        guard enabled else { return }
        if firstDone == nil { firstDone = snapshot.done }
        guard terminal || snapshot.elapsed - lastPrinted >= interval else { return }
        lastPrinted = snapshot.elapsed
        write(Self.line(snapshot, since: firstDone ?? 0), final: false)
    }

    public func finish(_ snapshot: Snapshot) {
        guard enabled else { return }
        write(Self.line(snapshot, since: firstDone ?? snapshot.done), final: true)
    }

    /// `1200/5000 rows (24.0%) 85.3 rows/s ETA 44s errors 2 retries 0 in flight 16/16`.
    static func line(_ snapshot: Snapshot, since resumed: Int) -> String {
        let rate = snapshot.elapsed > 0 ? Double(snapshot.done - resumed) / snapshot.elapsed : 0
        var text = "\(snapshot.done)"
        if let total = snapshot.total, total > 0 {
            text += "/\(total) rows (\(String(format: "%.1f", 100 * Double(snapshot.done) / Double(total)))%)"
        } else {
            text += " rows"
        }
        text += " \(String(format: "%.1f", rate)) rows/s"
        if let total = snapshot.total, rate > 0, total > snapshot.done {
            text += " ETA \(Self.duration(Double(total - snapshot.done) / rate))"
        }
        text += " errors \(snapshot.errors) retries \(snapshot.retries) in flight \(snapshot.inFlight)/\(snapshot.window)"
        return text
    }

    static func duration(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded())
        if whole >= 3600 { return "\(whole / 3600)h\(String(format: "%02d", whole % 3600 / 60))m" }
        if whole >= 60 { return "\(whole / 60)m\(String(format: "%02d", whole % 60))s" }
        return "\(whole)s"
    }

    private func write(_ line: String, final: Bool) {
        let text = terminal ? "\r\u{1B}[2K" + line + (final ? "\n" : "") : line + "\n"
        FileHandle.standardError.write(Data(text.utf8))
    }
}
