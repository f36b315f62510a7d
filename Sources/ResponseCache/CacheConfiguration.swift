import Foundation
import InferenceCore

/// `--cache-config NAME,SETTING=VALUE` flags, grouped by cache as Triton
/// groups them (split at the first `,`, then the first `=`; repeatable), and
/// the one cache they describe.
public enum CacheConfiguration: Sendable, Equatable {
    /// An in-process LRU bounded by `bytes` (Triton's `local` cache).
    case local(bytes: Int, keyFile: String?)
    /// A Redis server shared by every pod (Triton's `redis` cache settings).
    case redis(RedisSettings)

    public struct RedisSettings: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var user: String
        public var password: String?
        public var database: Int
        public var connectTimeout: Duration?
        public var socketTimeout: Duration?
        /// Ours: the secret every server sharing the cache holds, from which
        /// the entry keys (HMAC) and the entry encryption key are derived.
        public var keyFile: String
        /// Ours: entries expire after this long (Redis `EX`); nil keeps them
        /// until Redis evicts them.
        public var timeToLive: Duration?
    }

    /// nil when no `--cache-config` is given: the cache is off.
    public static func parse(_ flags: [String], environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> CacheConfiguration? {
        var groups: [(name: String, settings: [String: String])] = []
        for flag in flags {
            guard let comma = flag.firstIndex(of: ","), comma != flag.startIndex else {
                throw InferenceError.invalidArgument(
                    "No cache specified. --cache-config option format is <cache name>,<setting>=<value>. Got \(flag)")
            }
            let name = String(flag[..<comma])
            let rest = flag[flag.index(after: comma)...]
            guard let equals = rest.firstIndex(of: "="), equals != rest.startIndex, rest.index(after: equals) != rest.endIndex else {
                throw InferenceError.invalidArgument(
                    "--cache-config option format is '<cache name>,<setting>=<value>'. Got \(flag)")
            }
            let (key, value) = (String(rest[..<equals]), String(rest[rest.index(after: equals)...]))
            if let index = groups.firstIndex(where: { $0.name == name }) {
                groups[index].settings[key] = value
            } else {
                groups.append((name, [key: value]))
            }
        }
        guard let group = groups.first else { return nil }
        guard groups.count == 1 else {
            throw InferenceError.invalidArgument("found multiple cache configurations, but only a single cache is currently supported")
        }
        switch group.name {
        case "local": return try local(group.settings)
        case "redis": return .redis(try redis(group.settings, environment: environment))
        default:
            throw InferenceError.invalidArgument("unknown cache '\(group.name)': this server has the 'local' and 'redis' caches")
        }
    }

    static func local(_ settings: [String: String]) throws -> CacheConfiguration {
        try refuseUnknown(settings, known: ["size", "key_file"], cache: "local")
        guard let text = settings["size"] else {
            throw InferenceError.invalidArgument("Failed to initialize LocalCache: config didn't contain a valid 'size' field.")
        }
        guard let bytes = Int(text), bytes > 0 else {
            throw InferenceError.invalidArgument("Failed to initialize LocalCache: 'size' must be a positive number of bytes, got '\(text)'")
        }
        return .local(bytes: bytes, keyFile: settings["key_file"])
    }

    static func redis(_ settings: [String: String], environment: [String: String]) throws -> RedisSettings {
        try refuseUnknown(settings, known: ["host", "port", "user", "password", "db", "connect_timeout", "socket_timeout",
                                            "pool_size", "wait_timeout", "tls_enabled", "key_file", "ttl"], cache: "redis")
        guard let host = settings["host"], let portText = settings["port"] else {
            throw InferenceError.invalidArgument(
                "Failed to initialize RedisCache, didn't specify address. Must at a minimum specify 'host' and 'port' in the configuration - e.g. tritonserver --cache-config redis,host=redis --cache-config redis,port=6379 --model-repository=/models ...")
        }
        guard let port = Int(portText), (1...65535).contains(port) else {
            throw InferenceError.invalidArgument("Failed to initialize RedisCache: 'port' must be a TCP port, got '\(portText)'")
        }
        if settings["tls_enabled"] == "true" {
            throw InferenceError.invalidArgument("Failed to initialize RedisCache: tls_enabled is not supported by this server yet; reach Redis over a private network or a TLS sidecar")
        }
        guard let keyFile = settings["key_file"] else {
            throw InferenceError.invalidArgument(
                "Failed to initialize RedisCache: 'key_file' is required: entries are encrypted and keyed under a secret that every server sharing the cache reads from that file")
        }
        func number(_ key: String) throws -> Int? {
            guard let text = settings[key] else { return nil }
            guard let value = Int(text), value >= 0 else {
                throw InferenceError.invalidArgument("Failed to initialize RedisCache: '\(key)' must be a non-negative integer, got '\(text)'")
            }
            return value
        }
        let milliseconds = { (key: String) throws -> Duration? in try number(key).flatMap { $0 > 0 ? .milliseconds($0) : nil } }
        return RedisSettings(
            host: host, port: port,
            user: settings["user"] ?? environment["TRITONCACHE_REDIS_USERNAME"] ?? "default",
            password: settings["password"] ?? environment["TRITONCACHE_REDIS_PASSWORD"],
            database: try number("db") ?? 0,
            connectTimeout: try milliseconds("connect_timeout"),
            socketTimeout: try milliseconds("socket_timeout") ?? .seconds(1),
            keyFile: keyFile,
            timeToLive: try number("ttl").flatMap { $0 > 0 ? .seconds($0) : nil })
    }

    static func refuseUnknown(_ settings: [String: String], known: Set<String>, cache: String) throws {
        if let unknown = settings.keys.sorted().first(where: { !known.contains($0) }) {
            throw InferenceError.invalidArgument("--cache-config \(cache): unknown setting '\(unknown)' (known: \(known.sorted().joined(separator: ", ")))")
        }
    }
}
