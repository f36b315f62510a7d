import Foundation
import Hummingbird
import InferenceCore
import NIOCore

/// Shared memory, logging and trace routes, with Triton's JSON shapes.
extension KServeHTTPServer {
    func addAdministrationRoutes(to router: Router<KServeRequestContext>) {
        let system = server.systemSharedMemory
        for prefix in ["/v2/systemsharedmemory", "/v2/systemsharedmemory/region/:region"] {
            router.get(RouterPath(prefix + "/status")) { _, context in
                try json(try system.status(name: context.parameters.get("region") ?? "").map(HTTPAdminBodies.SystemRegion.init))
            }
            router.post(RouterPath(prefix + "/unregister")) { request, context in
                _ = try await body(request)
                try system.unregister(name: context.parameters.get("region") ?? "")
                return Response(status: .ok)
            }
        }
        router.post("/v2/systemsharedmemory/region/:region/register") { request, context in
            let registration = try HTTPAdminBodies.systemRegistration(try await body(request))
            try system.register(name: try context.parameters.require("region"), key: registration.key,
                                offset: registration.offset, byteSize: registration.byteSize)
            return Response(status: .ok)
        }

        let cuda = server.cudaSharedMemory
        for prefix in ["/v2/cudasharedmemory", "/v2/cudasharedmemory/region/:region"] {
            router.get(RouterPath(prefix + "/status")) { _, context in
                try json(try cuda.status(name: context.parameters.get("region") ?? "").map(HTTPAdminBodies.CUDARegion.init))
            }
            router.post(RouterPath(prefix + "/unregister")) { request, context in
                _ = try await body(request)
                try cuda.unregister(name: context.parameters.get("region") ?? "")
                return Response(status: .ok)
            }
        }
        router.post("/v2/cudasharedmemory/region/:region/register") { request, context in
            let name = try context.parameters.require("region")
            guard cuda.isAvailable else { throw TritonErrors.cudaSharedMemoryUnsupported(name) }
            let registration = try HTTPAdminBodies.cudaRegistration(try await body(request))
            try cuda.register(name: name, rawHandle: registration.handle,
                              deviceID: registration.deviceID, byteSize: registration.byteSize)
            return Response(status: .ok)
        }

        let logs = server.logSettings
        router.get("/v2/logging") { _, _ in try HTTPAdminBodies.logSettings(logs.current()) }
        router.post("/v2/logging") { request, _ in
            try HTTPAdminBodies.logSettings(try logs.update(try HTTPAdminBodies.logChanges(try await body(request))))
        }

        let traces = server.traceSettings
        for (path, modelParameter) in [("/v2/trace/setting", false), ("/v2/models/:model/trace/setting", true)] {
            router.get(RouterPath(path)) { _, context in
                let model = modelParameter ? try context.parameters.require("model") : ""
                return try HTTPAdminBodies.traceSettings(try traces.current(model: model))
            }
            router.post(RouterPath(path)) { request, context in
                let model = modelParameter ? try context.parameters.require("model") : ""
                let changes = try HTTPAdminBodies.traceChanges(try await body(request))
                return try HTTPAdminBodies.traceSettings(try traces.update(model: model, changes))
            }
        }
    }
}

/// Request and response bodies of the model control, shared memory, logging
/// and trace routes.
enum HTTPAdminBodies {
    struct LoadParameters {
        var config: String?
        var files: [String: [UInt8]] = [:]
    }

    /// `{"parameters": {"config": "<model config JSON>", "file:<path>": "<base64>"}}`, all optional.
    static func loadParameters(_ body: ByteBuffer) throws -> LoadParameters {
        var result = LoadParameters()
        guard body.readableBytes > 0 else { return result }
        let root = try JSONValue.object(from: body, what: "model load request")
        guard let parameters = root["parameters"] else { return result }
        guard case .object(let members) = parameters else {
            throw InferenceError.invalidArgument("model load 'parameters' must be an object")
        }
        for (key, value) in members {
            if key == "config" {
                guard case .string(let json) = value else {
                    throw InferenceError.invalidArgument("load parameter 'config' must be a string holding the model configuration as JSON")
                }
                result.config = json
            } else if key.hasPrefix("file:") {
                guard case .string(let base64) = value, let data = Data(base64Encoded: base64) else {
                    throw InferenceError.invalidArgument("load parameter '\(key)' must be base64-encoded file contents")
                }
                result.files[String(key.dropFirst(5))] = Array(data)
            } else {
                throw InferenceError.invalidArgument("unknown model load parameter '\(key)'")
            }
        }
        return result
    }

    struct SystemRegion: Encodable {
        let name: String
        let key: String
        let offset: UInt64
        let byte_size: UInt64
        init(_ status: SharedMemoryRegionStatus) {
            name = status.name
            key = status.key
            offset = status.offset
            byte_size = status.byteSize
        }
    }

    struct CUDARegion: Encodable {
        let name: String
        let device_id: UInt64
        let byte_size: UInt64
        init(_ status: CUDASharedMemoryRegionStatus) {
            name = status.name
            device_id = status.deviceID
            byte_size = status.byteSize
        }
    }

    /// `{"key": "/shm", "offset": 0, "byte_size": 64}`.
    static func systemRegistration(_ body: ByteBuffer) throws -> (key: String, offset: UInt64, byteSize: UInt64) {
        let root = try JSONValue.object(from: body, what: "system shared memory register request")
        guard case .string(let key)? = root["key"] else {
            throw InferenceError.invalidArgument("system shared memory register request needs a 'key' string")
        }
        return (key, try unsigned(root, "offset", default: 0), try unsigned(root, "byte_size", default: nil))
    }

    /// `{"raw_handle": {"b64": "..."}, "device_id": 0, "byte_size": 64}`.
    static func cudaRegistration(_ body: ByteBuffer) throws -> (handle: [UInt8], deviceID: Int64, byteSize: UInt64) {
        let root = try JSONValue.object(from: body, what: "CUDA shared memory register request")
        guard case .string(let encoded)? = root["raw_handle"]?["b64"], let handle = Data(base64Encoded: encoded) else {
            throw InferenceError.invalidArgument("CUDA shared memory register request needs 'raw_handle': {'b64': <base64>}")
        }
        let device = try unsigned(root, "device_id", default: 0)
        return (Array(handle), Int64(clamping: device), try unsigned(root, "byte_size", default: nil))
    }

    private static func unsigned(_ root: JSONValue, _ key: String, default fallback: UInt64?) throws -> UInt64 {
        guard let value = root[key] else {
            guard let fallback else { throw InferenceError.invalidArgument("shared memory register request needs '\(key)'") }
            return fallback
        }
        guard let number = value.nonNegativeInteger else {
            throw InferenceError.invalidArgument("shared memory register request '\(key)' must be a non-negative integer")
        }
        return number
    }

    static func logChanges(_ body: ByteBuffer) throws -> [String: LogSettingValue] {
        guard case .object(let members) = try JSONValue.object(from: body, what: "log settings request") else { return [:] }
        return try members.mapValues { value -> LogSettingValue in
            switch value {
            case .bool(let flag): return .bool(flag)
            case .int(let number) where number >= 0 && number <= Int64(UInt32.max): return .uint32(UInt32(number))
            case .uint(let number) where number <= UInt64(UInt32.max): return .uint32(UInt32(number))
            case .string(let text): return .string(text)
            // A number that no UInt32 holds: the store names the setting and the type it expects.
            case .int, .uint, .double: return .string("\(value)")
            default: throw InferenceError.invalidArgument("log setting values must be booleans, unsigned integers or strings, got \(value.typeName)")
            }
        }
    }

    static func logSettings(_ settings: [String: LogSettingValue]) throws -> Response {
        var object: [String: Any] = [:]
        for (key, value) in settings {
            switch value {
            case .bool(let flag): object[key] = flag
            case .uint32(let number): object[key] = Int(number)
            case .string(let text): object[key] = text
            }
        }
        return KServeHTTPServer.bytesResponse(Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])),
                                              contentType: "application/json")
    }

    /// Values are a string, a list of strings, or null (clear a model's own setting).
    static func traceChanges(_ body: ByteBuffer) throws -> [String: [String]?] {
        guard case .object(let members) = try JSONValue.object(from: body, what: "trace setting request") else { return [:] }
        var changes: [String: [String]?] = [:]
        for (key, value) in members {
            switch value {
            case .null: changes[key] = .some(nil)
            case .string(let text): changes[key] = [text]
            case .array(let items):
                changes[key] = try items.map { item in
                    guard case .string(let text) = item else {
                        throw InferenceError.invalidArgument("trace setting '\(key)' must be a string or a list of strings")
                    }
                    return text
                }
            default: throw InferenceError.invalidArgument("trace setting '\(key)' must be a string or a list of strings")
            }
        }
        return changes
    }

    static func traceSettings(_ settings: [String: [String]]) throws -> Response {
        var object: [String: Any] = [:]
        for (key, value) in settings {
            object[key] = TraceSettingKeys.listValued.contains(key) ? value : (value.first ?? "")
        }
        return KServeHTTPServer.bytesResponse(Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])),
                                              contentType: "application/json")
    }
}
