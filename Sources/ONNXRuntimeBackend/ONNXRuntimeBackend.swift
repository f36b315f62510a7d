import Foundation
import InferenceCore
import Logging
import Synchronization

/// Triton's `onnxruntime` backend (`platform: "onnxruntime_onnx"`): ONNX
/// models through ONNX Runtime's C API, the library opened at run time. One
/// ORT session per instance, as Triton's backend makes them; each instance
/// runs whole batches (the scheduler's requests concatenated along the batch
/// dimension) in one `Run`.
public struct ONNXRuntimeBackend: ModelBackend {
    public let name = "onnxruntime"
    let libraryCandidates: [String]
    let requireGPU: Bool
    let logger: Logger
    private let fallbackLogged = OnceKeys()
    private let sharedSessions = SharedSessions()

    /// `library`: a path given by the operator (`--onnxruntime-library`);
    /// otherwise the dynamic linker's search for ORT's SONAME.
    public init(library: String? = nil, requireGPU: Bool = false, logger: Logger) {
        libraryCandidates = library.map { [$0] } ?? ["libonnxruntime.so.1", "libonnxruntime.so"]
        self.requireGPU = requireGPU
        self.logger = logger
    }

    public var defaultModelFileName: String? { "model.onnx" }

    func runtime() throws -> ORTRuntime {
        switch ORTRuntime.open(libraryCandidates) {
        case .success(let runtime): return runtime
        case .failure(let failure): throw InferenceError.unavailable(failure.message)
        }
    }

    /// The model file of a version; model.onnx may also be a directory that
    /// holds model.onnx beside its external weights, as Triton accepts.
    func modelFile(_ spec: ModelSpec) throws -> String {
        let fileName = spec.modelFileName.isEmpty ? "model.onnx" : spec.modelFileName
        var path = (spec.versionPath as NSString).appendingPathComponent(fileName)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw InferenceError.invalidArgument("unable to find '\(path)' for model '\(spec.name)'")
        }
        if isDirectory.boolValue { path = (path as NSString).appendingPathComponent("model.onnx") }
        return path
    }

    public func signature(ofModelAt path: String) throws -> ModelSignature? {
        var isDirectory: ObjCBool = false
        var file = path
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            file = (path as NSString).appendingPathComponent("model.onnx")
        }
        // Reading the declared tensors needs a session; an unoptimized one on
        // one thread is the cheapest ORT offers.
        let session = try ORTSession(runtime: runtime(), path: file,
                                     settings: SessionSettings(intraOpThreads: 1, interOpThreads: 1, graphOptimizationLevel: 0))
        return ModelSignature(inputs: session.inputs, outputs: session.outputs)
    }

    public func validate(_ spec: ModelSpec) throws {
        _ = try ORTModelSettings(spec)
        for accelerator in spec.gpuExecutionAccelerators where accelerator != "cuda" && accelerator != "tensorrt" {
            throw InferenceError.invalidArgument("model '\(spec.name)': unknown Execution Accelerator '\(accelerator)' is requested")
        }
        _ = try modelFile(spec)
    }

    public func makeInstance(for spec: ModelSpec, index: Int) throws -> any ModelInstance {
        let model = try ORTModelSettings(spec)
        var settings = model.session
        let gpu = Self.gpuDevice(spec, index: index)
        settings.cudaDevice = gpu
        let runtime = try runtime()
        let path = try modelFile(spec)
        // Triton's share_session_between_instances: the instances of one
        // version and placement run on one session (ORT's Run is thread-safe),
        // which holds the weights once.
        let session = model.shareSession
            ? try sharedSessions.session(key: "\(path)|\(Self.fingerprint(path))|\(spec.version)|\(settings.hashValue)") {
                try ORTSession(runtime: runtime, path: path, settings: settings)
            }
            : try ORTSession(runtime: runtime, path: path, settings: settings)
        if gpu != nil && !session.onCUDA {
            let reason = "ONNX Runtime \(runtime.version) in \(runtime.libraryName) has no CUDA execution provider"
            if requireGPU {
                throw InferenceError.unavailable("model '\(spec.name)' asks for KIND_GPU and --require-gpu is set, but \(reason)")
            }
            if fallbackLogged.first("\(spec.name)/\(spec.version)") {
                logger.warning("KIND_GPU instances run on the CPU: \(reason)", metadata: [
                    "model.name": "\(spec.name)", "model.version": "\(spec.version)",
                ])
            }
        }
        try ORTSignatureCheck.check(spec, inputs: session.inputs, outputs: session.outputs)
        return ONNXRuntimeInstance(spec: spec, session: session)
    }

    /// A model file's size and modification time: a file replaced in place
    /// and reloaded gets a new shared session, not the old one.
    static func fingerprint(_ path: String) -> String {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return "\(attributes?[.size] ?? 0)@\(modified)"
    }

    /// The CUDA device of instance `index`, if its group is KIND_GPU: the
    /// group's listed GPUs in turn (`count` on each), else device 0.
    static func gpuDevice(_ spec: ModelSpec, index: Int) -> Int? {
        var first = 0
        for group in spec.instanceGroups {
            let instances = group.instanceCount
            if index < first + instances {
                guard group.kind == .gpu else { return nil }
                return group.gpus.isEmpty ? 0 : group.gpus[(index - first) / max(group.count, 1)]
            }
            first += instances
        }
        return nil
    }
}

/// Triton's ORT backend parameters (config.pbtxt `parameters`, string values)
/// and `optimization { graph { level } }`.
struct ORTModelSettings {
    var session = SessionSettings()
    var shareSession = false

    init(_ spec: ModelSpec) throws {
        func integer(_ key: String) throws -> Int? {
            guard let text = spec.parameters[key] else { return nil }
            guard let value = Int(text.trimmingCharacters(in: .whitespaces)), (0...4096).contains(value) else {
                throw InferenceError.invalidArgument("model '\(spec.name)': parameters.\(key) must be an integer within 0...4096, got '\(text)'")
            }
            return value
        }
        if let threads = try integer("intra_op_thread_count") { session.intraOpThreads = threads }
        if let threads = try integer("inter_op_thread_count") { session.interOpThreads = threads }
        if let mode = spec.parameters["execution_mode"] {
            guard mode == "0" || mode == "1" else {
                throw InferenceError.invalidArgument(
                    "model '\(spec.name)': Invalid configuration value provided. Expected values for execution_mode are 0 or 1 but got \(mode)")
            }
            session.parallelExecution = mode == "1"
        }
        if let share = spec.parameters["share_session_between_instances"] {
            switch share.lowercased() {
            case "true", "on", "1": shareSession = true
            case "false", "off", "0": shareSession = false
            default:
                throw InferenceError.invalidArgument(
                    "model '\(spec.name)': parameters.share_session_between_instances must be true or false, got '\(share)'")
            }
        }
        if let arena = spec.parameters["enable_mem_arena"] {
            switch arena.lowercased() {
            case "true", "on", "1": session.memoryArena = true
            case "false", "off", "0": session.memoryArena = false
            default: throw InferenceError.invalidArgument("model '\(spec.name)': parameters.enable_mem_arena must be true or false, got '\(arena)'")
            }
        }
        // Triton's levels: -1 basic, 1 extended, 2 none; anything else all.
        switch spec.graphOptimizationLevel {
        case .some(-1): session.graphOptimizationLevel = 1
        case 1?: session.graphOptimizationLevel = 2
        case 2?: session.graphOptimizationLevel = 0
        default: session.graphOptimizationLevel = 99
        }
    }
}

/// A model's config checked against what its ONNX file declares, with the
/// texts Triton's ORT backend gives, so a wrong config fails at load rather
/// than on the first request.
enum ORTSignatureCheck {
    static func check(_ spec: ModelSpec, inputs: [ModelFileTensor], outputs: [ModelFileTensor]) throws {
        let model = spec.name
        // Sequence control inputs and implicit state are inputs of the model
        // too, filled by the server (Triton counts them alike).
        let filled = (spec.sequenceBatching?.controls.count ?? 0) + (spec.sequenceBatching?.states.count ?? 0)
        let required = spec.inputs.filter { !$0.isOptional }.count + filled
        let configured = spec.inputs.count + filled
        if required != inputs.count && configured != inputs.count {
            throw InferenceError.invalidArgument(
                "unable to load model '\(model)', configuration expects \(configured) inputs, model provides \(inputs.count)")
        }
        for (configured, declared, kind) in try pairs(spec.inputs, inputs, kind: "input")
                                          + pairs(spec.outputs, outputs, kind: "output") {
            guard configured.dataType == declared.dataType else {
                throw InferenceError.invalidArgument(
                    "unable to load model '\(model)', configuration expects datatype \(configured.dataType.configName) for \(kind) '\(configured.name)', model provides \(declared.dataType.configName)")
            }
            try compareDims(spec, configured, declared, wildcard: kind == "input")
        }
    }

    private static func pairs(_ configured: [TensorSpec], _ declared: [ModelFileTensor], kind: String) throws
        -> [(TensorSpec, ModelFileTensor, String)] {
        try configured.map { tensor in
            guard let match = declared.first(where: { $0.name == tensor.name }) else {
                throw InferenceError.invalidArgument(
                    "unexpected inference \(kind) '\(tensor.name)', allowed \(kind)s are: \(declared.map(\.name).joined(separator: ", "))")
            }
            return (tensor, match, kind)
        }
    }

    /// Inputs take the model's -1 as a wildcard; outputs must match it.
    private static func compareDims(_ spec: ModelSpec, _ configured: TensorSpec, _ declared: ModelFileTensor, wildcard: Bool) throws {
        let prefix = "model '\(spec.name)', tensor '\(configured.name)':"
        var full = configured.dims
        if spec.maxBatchSize > 0 {
            guard let first = declared.shape.first, first == -1 else {
                throw InferenceError.invalidArgument(
                    "\(prefix) for the model to support batching the shape should have at least 1 dimension and the first dimension must be -1; but shape expected by the model is \(ShapeMath.format(declared.shape))")
            }
            full = [-1] + full
        }
        // Triton's dims [1] with an empty reshape stands for a scalar tensor.
        if declared.shape.count + 1 == full.count, full.last == 1 { full.removeLast() }
        let mismatch = declared.shape.count != full.count
            || zip(declared.shape, full).contains { model, config in
                model != config && !(wildcard && model == -1) && !(model == -1 && config == -1)
            }
        guard mismatch else { return }
        let configuredText = spec.maxBatchSize > 0
            ? "an initial batch dimension because max_batch_size > 0 followed by the explicit tensor shape, making complete shape \(ShapeMath.format([-1] + configured.dims))"
            : "shape \(ShapeMath.format(configured.dims))"
        throw InferenceError.invalidArgument(
            "\(prefix) the model expects \(declared.shape.count) dimensions (shape \(ShapeMath.format(declared.shape))) but the model configuration specifies \(spec.maxBatchSize > 0 ? configured.dims.count + 1 : configured.dims.count) dimensions (\(configuredText))")
    }
}

/// Sessions shared by the instances of one model version, held weakly: the
/// instances keep theirs alive and it is released with the last of them.
final class SharedSessions: Sendable {
    private struct Weak: @unchecked Sendable { weak var session: ORTSession? }
    private let sessions = Mutex<[String: Weak]>([:])

    func session(key: String, make: () throws -> ORTSession) throws -> ORTSession {
        try sessions.withLock { sessions in
            if let existing = sessions[key]?.session { return existing }
            let made = try make()
            sessions[key] = Weak(session: made)
            return made
        }
    }
}

