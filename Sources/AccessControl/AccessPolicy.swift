import Foundation
import InferenceCore

/// What a client may call, by endpoint group.
public enum EndpointGroup: String, Sendable, CaseIterable, Codable {
    /// Liveness and readiness (server and model); can stay open for probes.
    case health
    /// Server and model metadata, model configuration, the repository index.
    case metadata
    /// Inference (HTTP infer, gRPC ModelInfer and ModelStreamInfer).
    case inference
    /// Model statistics.
    case statistics
    /// Model load and unload.
    case modelControl = "model-control"
    /// System and CUDA shared memory: register, status, unregister (a region
    /// registered is readable and writable through inference).
    case sharedMemory = "shared-memory"
    /// Log settings (LogSettings, /v2/logging).
    case logging
    /// Trace settings (TraceSetting, …/trace/setting).
    case trace
    /// The Prometheus endpoint.
    case metrics
    /// Re-identification: restoring encrypted identifiers (POST /deanonymize).
    /// Granted apart from `inference`, to the few who may see patient data again.
    case reidentify
}

/// Bearer-token access control shared by every endpoint. Tokens come from a
/// file or an environment variable, never the command line (where `ps` shows
/// them); each names the groups it grants. Comparison takes the same time
/// whatever the token, so timing reveals nothing about valid tokens.
public struct AccessPolicy: Sendable {
    struct Credential: Sendable {
        let name: String
        let token: [UInt8]
        let groups: Set<EndpointGroup>
    }

    private let credentials: [Credential]
    /// nil: access control is off and everything is allowed.
    private let enabled: Bool
    public let openHealth: Bool
    /// Each token's inference limits (those whose entry sets `limits`).
    public let limiter: PrincipalLimiter

    /// No access control: every request is allowed (the default, as in Triton).
    public static let open = AccessPolicy(credentials: [], enabled: false, openHealth: true)

    init(credentials: [Credential], enabled: Bool, openHealth: Bool, limiter: PrincipalLimiter = PrincipalLimiter(limits: [:])) {
        self.credentials = credentials
        self.enabled = enabled
        self.openHealth = openHealth
        self.limiter = limiter
    }

    struct TokenFile: Decodable {
        struct Entry: Decodable {
            let name: String
            let token: String
            let groups: [EndpointGroup]
            let limits: PrincipalLimit?
        }
        let tokens: [Entry]
    }

    /// `{"tokens": [{"name": "pipeline", "token": "…", "groups": ["inference", "metadata"]}]}`.
    /// `source` names the file or variable in error messages (the text is never echoed).
    public init(json: Data, source: String, openHealth: Bool) throws {
        let file: TokenFile
        do {
            file = try JSONDecoder().decode(TokenFile.self, from: json)
        } catch {
            throw InferenceError.invalidArgument(
                "\(source): expected {\"tokens\": [{\"name\", \"token\", \"groups\", \"limits\"?}]} with groups among \(EndpointGroup.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard !file.tokens.isEmpty else { throw InferenceError.invalidArgument("\(source): no tokens") }
        for entry in file.tokens where entry.token.utf8.count < 16 {
            throw InferenceError.invalidArgument("\(source): token '\(entry.name)' is shorter than 16 characters")
        }
        guard Set(file.tokens.map(\.token)).count == file.tokens.count else {
            throw InferenceError.invalidArgument("\(source): two entries share one token")
        }
        var limits: [String: PrincipalLimit] = [:]
        for entry in file.tokens {
            guard let limit = entry.limits else { continue }
            do { try limit.check(name: entry.name) } catch let error as InferenceError {
                throw InferenceError.invalidArgument("\(source): \(error.message)")
            }
            limits[entry.name] = limit
        }
        self.init(credentials: file.tokens.map { Credential(name: $0.name, token: Array($0.token.utf8), groups: Set($0.groups)) },
                  enabled: true, openHealth: openHealth, limiter: PrincipalLimiter(limits: limits))
    }

    public var isEnabled: Bool { enabled }

    /// The caller's name when `authorization` (an `Authorization` header or
    /// gRPC metadata value) grants `group`; nil when access control is off or
    /// the group is open. Throws UNAUTHENTICATED for a missing or unknown
    /// token, PERMISSION_DENIED for a token without the group.
    public func authorize(_ authorization: String?, for group: EndpointGroup) throws -> String? {
        guard enabled else { return nil }
        if group == .health && openHealth { return nil }
        guard let authorization, authorization.count > 7, authorization.prefix(7).lowercased() == "bearer " else {
            throw InferenceError(.unauthenticated, "missing bearer token (Authorization: Bearer <token>)")
        }
        let presented = Array(authorization.dropFirst(7).utf8)
        var match: Credential?
        for credential in credentials where Self.constantTimeEqual(credential.token, presented) {
            match = credential
        }
        guard let match else { throw InferenceError(.unauthenticated, "invalid bearer token") }
        guard match.groups.contains(group) else {
            throw InferenceError(.permissionDenied, "token '\(match.name)' does not grant '\(group.rawValue)'")
        }
        return match.name
    }

    /// Compares every byte of the longer input, so the time depends only on lengths.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }
}

/// Which group each KServe v2 route and gRPC method belongs to.
public enum EndpointGroups {
    /// The OpenAI, TEI, Cohere/vLLM and Presidio routes: they run inferences.
    static let inferencePaths: Set = [
        "/v1/embeddings", "/embed", "/embed_all", "/embed_sparse", "/predict", "/rerank", "/similarity", "/tokenize", "/decode",
        "/v1/rerank", "/v2/rerank", "/score", "/v1/score", "/pooling", "/", "/invocations", "/analyze", "/anonymize",
    ]

    public static func forHTTP(path: String) -> EndpointGroup {
        let parts = path.split(separator: "/")
        if path.hasPrefix("/v2/health/") { return .health }
        // The OpenAI and text-embeddings-inference routes run inferences.
        if inferencePaths.contains(path) { return .inference }
        if path == "/info" { return .metadata }
        if path == "/deanonymize" { return .reidentify }
        if path == "/metrics" { return .metrics }
        if path.hasPrefix("/v2/systemsharedmemory") || path.hasPrefix("/v2/cudasharedmemory") { return .sharedMemory }
        if path == "/v2/logging" { return .logging }
        if path.hasSuffix("/trace/setting") { return .trace }
        if path.hasPrefix("/v2/repository") {
            return parts.last == "load" || parts.last == "unload" ? .modelControl : .metadata
        }
        switch parts.last {
        case "infer": return .inference
        case "stats": return .statistics
        case "ready": return .health
        default: return .metadata
        }
    }

    public static func forGRPC(method: String) -> EndpointGroup {
        switch method.split(separator: "/").last.map(String.init) ?? "" {
        case "ServerLive", "ServerReady", "ModelReady", "Check": return .health
        case "ModelInfer", "ModelStreamInfer": return .inference
        // text-embeddings-inference's gRPC methods (tei.v1); its Info is metadata.
        case let name where method.hasPrefix("/tei.v1.") && name != "Info": return .inference
        case "ModelStatistics": return .statistics
        case "RepositoryModelLoad", "RepositoryModelUnload": return .modelControl
        case let name where name.hasPrefix("SystemSharedMemory") || name.hasPrefix("CudaSharedMemory"): return .sharedMemory
        case "LogSettings": return .logging
        case "TraceSetting": return .trace
        default: return .metadata
        }
    }
}
