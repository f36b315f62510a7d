import CONNXRuntime
import InferenceCore
import Synchronization

/// ONNX Runtime opened at run time: the library, its API table and the one
/// `OrtEnv` a process may have. Opened once, on the first ONNX model, and
/// kept for the life of the process (ORT's environment is process-wide).
final class ORTRuntime: @unchecked Sendable {
    /// The API version of the header we compile against; a newer library
    /// answers it (ORT keeps older API tables).
    static let apiVersion = UInt32(ORT_API_VERSION)

    let api: UnsafePointer<OrtApi>
    let env: OpaquePointer
    let libraryName: String
    let version: String
    /// ORT's default CPU allocator (names and string outputs are freed through it).
    let allocator: UnsafeMutablePointer<OrtAllocator>
    /// CPU memory description for tensors that wrap our own buffers.
    let cpuMemory: OpaquePointer

    private init(library: DynamicLibrary) throws(ORTLoadFailure) {
        let base: UnsafeMutableRawPointer
        do {
            base = try library.function("OrtGetApiBase", as: UnsafeMutableRawPointer.self)
        } catch {
            throw ORTLoadFailure("\(library.name) does not export OrtGetApiBase: not an ONNX Runtime library")
        }
        version = String(cString: bs_ort_version(base))
        guard let api = bs_ort_api(base, Self.apiVersion) else {
            throw ORTLoadFailure("ONNX Runtime \(version) in \(library.name) does not serve API version \(Self.apiVersion); 1.21 or later is needed")
        }
        self.api = api
        libraryName = library.name
        var env: OpaquePointer?
        var allocator: UnsafeMutablePointer<OrtAllocator>?
        var memory: OpaquePointer?
        // ORT prints its own log lines to stderr, and its error lines can quote
        // values from a failing node (a token id out of range): fatal only.
        // The errors themselves reach the client through the call's status.
        if let status = api.pointee.CreateEnv(ORT_LOGGING_LEVEL_FATAL, "batch-server", &env) {
            throw ORTLoadFailure("ONNX Runtime \(version): CreateEnv failed: \(Self.consume(status, api: api).message)")
        }
        if let status = api.pointee.GetAllocatorWithDefaultOptions(&allocator) {
            throw ORTLoadFailure("ONNX Runtime \(version): no default allocator: \(Self.consume(status, api: api).message)")
        }
        if let status = api.pointee.CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory) {
            throw ORTLoadFailure("ONNX Runtime \(version): CreateCpuMemoryInfo failed: \(Self.consume(status, api: api).message)")
        }
        guard let env, let allocator, let memory else { throw ORTLoadFailure("ONNX Runtime \(version) returned no environment") }
        self.env = env
        self.allocator = allocator
        self.cpuMemory = memory
    }

    private static let opened = Mutex<[String: Result<ORTRuntime, ORTLoadFailure>]>([:])

    /// The runtime from the first of `candidates` that loads; the answer is
    /// remembered per candidate list, so a missing library is looked for once.
    static func open(_ candidates: [String]) -> Result<ORTRuntime, ORTLoadFailure> {
        let key = candidates.joined(separator: "\n")
        return opened.withLock { opened in
            if let known = opened[key] { return known }
            let result: Result<ORTRuntime, ORTLoadFailure>
            switch DynamicLibrary.open(candidates) {
            case .failure(let failure):
                result = .failure(ORTLoadFailure(
                    "ONNX Runtime library not found (tried \(candidates.joined(separator: ", ")): \(failure.message)); "
                    + "install the onnxruntime wheel and pass --onnxruntime-library PATH"))
            case .success(let library):
                // One environment per process: a runtime already open serves.
                if case .success(let runtime)? = opened.values.first(where: { if case .success = $0 { true } else { false } }) {
                    result = .success(runtime)
                } else {
                    do throws(ORTLoadFailure) { result = .success(try ORTRuntime(library: library)) } catch { result = .failure(error) }
                }
            }
            opened[key] = result
            return result
        }
    }

    /// Throws the status's error (and releases it) when a call failed.
    func check(_ status: OpaquePointer?, _ what: @autoclosure () -> String) throws {
        guard let status else { return }
        let error = Self.consume(status, api: api)
        throw error.inferenceError(context: what())
    }

    static func consume(_ status: OpaquePointer, api: UnsafePointer<OrtApi>) -> ORTCallError {
        let message = api.pointee.GetErrorMessage(status).map { String(cString: $0) } ?? "unknown error"
        let code = api.pointee.GetErrorCode(status)
        api.pointee.ReleaseStatus(status)
        return ORTCallError(code: code, message: message)
    }

    /// Copies a C string ORT allocated, then frees it with ORT's allocator.
    func takeString(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
        guard let pointer else { return "" }
        let text = String(cString: pointer)
        _ = api.pointee.AllocatorFree(allocator, pointer)
        return text
    }
}

struct ORTLoadFailure: Error, Sendable, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// An error status of one ORT call.
struct ORTCallError: Error {
    let code: OrtErrorCode
    let message: String

    /// Invalid-argument statuses are the caller's fault (shapes, types, a
    /// file that is not a model); the rest are faults of the model or runtime.
    func inferenceError(context: String) -> InferenceError {
        let text = "\(context): \(message)"
        switch code {
        case ORT_INVALID_ARGUMENT, ORT_INVALID_PROTOBUF, ORT_NO_SUCHFILE, ORT_NO_MODEL, ORT_INVALID_GRAPH:
            return .invalidArgument(text)
        case ORT_NOT_IMPLEMENTED:
            return .unsupported(text)
        default:
            return .internal(text)
        }
    }
}
