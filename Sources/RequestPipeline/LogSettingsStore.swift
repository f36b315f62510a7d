import Foundation
import InferenceCore
import Logging
import Synchronization

/// The server's log settings, changed at run time through LogSettings and
/// `/v2/logging`, read by the log handlers on every message.
public final class LogSettingsStore: LogSettingsControl {
    public enum Format: String, Sendable, CaseIterable {
        /// Text lines with the timestamp as swift-log writes it.
        case `default`
        /// Text lines (Triton's ISO8601 format; swift-log's timestamps are ISO 8601 already).
        case iso8601 = "ISO8601"
        /// One JSON object per line.
        case json
    }

    public struct Snapshot: Sendable {
        public var info = true
        public var warning = true
        public var error = true
        public var verboseLevel: UInt32 = 0
        public var format = Format.default

        /// Whether a message of `level` is written.
        public func allows(_ level: Logger.Level) -> Bool {
            switch level {
            case .trace: verboseLevel >= 2
            case .debug: verboseLevel >= 1
            case .info, .notice: info
            case .warning: warning
            case .error, .critical: error
            }
        }

        /// The lowest level written (swift-log's Logger checks it before formatting).
        public var lowestLevel: Logger.Level {
            Logger.Level.allCases.first(where: allows) ?? .critical
        }
    }

    private let state: Mutex<Snapshot>

    public init(verboseLevel: UInt32 = 0, format: Format = .default) {
        var snapshot = Snapshot()
        snapshot.verboseLevel = verboseLevel
        snapshot.format = format
        state = Mutex(snapshot)
    }

    public var snapshot: Snapshot { state.withLock { $0 } }

    public func current() -> [String: LogSettingValue] {
        let now = snapshot
        return [
            "log_file": .string(""), "log_info": .bool(now.info), "log_warning": .bool(now.warning),
            "log_error": .bool(now.error), "log_verbose_level": .uint32(now.verboseLevel),
            "log_format": .string(now.format.rawValue),
        ]
    }

    /// Applies every change or none (Triton applies them one by one and keeps
    /// those before an error); keys it does not know are ignored, as in Triton.
    public func update(_ changes: [String: LogSettingValue]) throws -> [String: LogSettingValue] {
        var next = snapshot
        for (key, value) in changes.sorted(by: { $0.key < $1.key }) {
            switch (key, value) {
            case ("log_info", .bool(let flag)): next.info = flag
            case ("log_warning", .bool(let flag)): next.warning = flag
            case ("log_error", .bool(let flag)): next.error = flag
            case ("log_verbose_level", .uint32(let level)): next.verboseLevel = level
            case ("log_format", .string(let text)):
                guard let format = Format(rawValue: text) else { throw TritonErrors.logFormatInvalid(text) }
                next.format = format
            case ("log_file", _): throw TritonErrors.logFileNotSettable()
            case ("log_info", _), ("log_warning", _), ("log_error", _): throw TritonErrors.logSettingType(key, expected: "boolean")
            case ("log_verbose_level", _): throw TritonErrors.logSettingType(key, expected: "int32")
            case ("log_format", _): throw TritonErrors.logSettingType(key, expected: "string")
            default: continue
            }
        }
        state.withLock { $0 = next }
        return current()
    }
}
