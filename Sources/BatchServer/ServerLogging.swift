import Foundation
import Logging

/// Log output for operators: text or one JSON object per line, to stderr.
/// Metadata carries ids, sizes and timings only; callers never log tensor
/// contents or input text.
enum ServerLogging {
    static func bootstrap(format: LogFormat, verbosity: Int) {
        let level: Logger.Level = switch verbosity {
        case ...0: .info
        case 1: .debug
        default: .trace
        }
        LoggingSystem.bootstrap { label in
            switch format {
            case .default:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            case .json:
                return JSONLogHandler(label: label, logLevel: level)
            }
        }
    }
}

/// Writes `{"timestamp", "level", "label", "message", ...metadata}` lines.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    init(label: String, logLevel: Logger.Level) {
        self.label = label
        self.logLevel = logLevel
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
