#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// One `--server` value, `host:port`. A name is looked up again while a job
/// runs, since the pods behind a headless Service change address during a
/// rolling restart; an address literal stands for itself.
public struct ServerName: Sendable, Hashable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(parsing server: String) throws {
        guard let colon = server.lastIndex(of: ":"), let port = Int(server[server.index(after: colon)...]), (1...65535).contains(port) else {
            throw BulkJobError.usage("--server '\(server)' must be host:port")
        }
        var host = String(server[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw BulkJobError.usage("--server '\(server)' must be host:port") }
        self.host = host
        self.port = port
    }

    public var description: String { Self.endpoint(host, port: port) }

    /// `host:port`, with an IPv6 address in brackets.
    public static func endpoint(_ host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// An IPv4 or IPv6 address, not a name: never looked up again.
    public var isAddressLiteral: Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// The addresses the name resolves to now, in the resolver's order,
    /// without repeats; an address literal gives itself.
    public static func addresses(of host: String) throws -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &result)
        guard status == 0, let first = result else {
            throw BulkJobError.server("cannot resolve '\(host)': \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(first) }
        var addresses: [String] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(entry.pointee.ai_addr, entry.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                let address = String(cString: buffer)
                if !addresses.contains(address) { addresses.append(address) }
            }
            cursor = entry.pointee.ai_next
        }
        return addresses
    }
}

/// Looks names up off the concurrency pool's threads: getaddrinfo blocks,
/// for seconds when a DNS server is slow.
public struct AddressLookup: Sendable {
    let resolve: @Sendable (String) throws -> [String]

    public init(resolve: @escaping @Sendable (String) throws -> [String] = ServerName.addresses(of:)) {
        self.resolve = resolve
    }

    /// The current addresses of every name; nil for a name that failed to
    /// resolve or resolved to nothing (its endpoints are kept as they are).
    func addresses(of names: [ServerName]) async -> [ServerName: [String]?] {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var found: [ServerName: [String]?] = [:]
                for name in names {
                    let addresses = try? resolve(name.host)
                    found[name] = addresses?.isEmpty == false ? addresses : nil
                }
                continuation.resume(returning: found)
            }
        }
    }
}
