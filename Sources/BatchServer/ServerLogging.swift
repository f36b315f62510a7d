import Foundation
import Logging
import RequestPipeline

/// Log output for operators: text or one JSON object per line, to stderr.
/// Metadata carries ids, sizes and timings only; callers never log tensor
/// contents or input text.
enum ServerLogging {
    /// Every handler reads `settings` on each message, so LogSettings and
    /// `/v2/logging` change levels and format at run time.
    static func bootstrap(settings: LogSettingsStore) {
        LoggingSystem.bootstrap { label in
            // The audit trail (--audit-log) is not a log level to turn down at run time.
            SettingsLogHandler(label: label, settings: settings, text: StreamLogHandler.standardError(label: label),
                               unfiltered: label == "audit")
        }
    }
}

/// Filters by the current log settings (log_info, log_warning, log_error,
/// log_verbose_level), then writes text or JSON as log_format says.
struct SettingsLogHandler: LogHandler {
    let label: String
    let settings: LogSettingsStore
    var text: StreamLogHandler
    var metadata: Logger.Metadata = [:]
    let unfiltered: Bool

    init(label: String, settings: LogSettingsStore, text: StreamLogHandler, unfiltered: Bool = false) {
        self.label = label
        self.settings = settings
        self.text = text
        self.unfiltered = unfiltered
        self.text.logLevel = .trace
    }

    var logLevel: Logger.Level {
        get { unfiltered ? .trace : settings.snapshot.lowestLevel }
        // The level comes from the settings; a Logger's own setter is ignored.
        set {}
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let current = settings.snapshot
        guard unfiltered || current.allows(event.level) else { return }
        switch current.format {
        case .default, .iso8601:
            var handler = text
            handler.metadata = metadata
            handler.log(event: event)
        case .json:
            JSONLogHandler(label: label, logLevel: .trace, metadata: metadata).log(event: event)
        }
    }
}

/// Writes `{"timestamp", "level", "label", "message", ...metadata}` lines.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    init(label: String, logLevel: Logger.Level, metadata: Logger.Metadata = [:]) {
        self.label = label
        self.logLevel = logLevel
        self.metadata = metadata
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var object: [String: Any] = [
            "timestamp": ISO8601DateFormatter.string(from: Date(), timeZone: .gmt,
                                                     formatOptions: [.withInternetDateTime, .withFractionalSeconds]),
            "level": event.level.rawValue,
            "label": label,
            "message": event.message.description,
            "source": event.source,
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            object[key] = value.description
        }
        guard var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        line.append(0x0A)
        FileHandle.standardError.write(line)
    }
}
