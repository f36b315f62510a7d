import InferenceCore
import Logging
import Synchronization
import TransformerModel

/// The CUDA kind of `transformer_encoder` instance: claims the instances of
/// KIND_GPU instance groups and runs them on CUDA with their own stream,
/// cuBLAS handle and device buffers. The backend itself (EncoderBackend) is
/// the one registered; the CPU instances it makes share one prepared model.
/// Where no usable GPU exists, GPU instances fall back to the CPU with one log
/// line per model, unless `requireGPU`, which fails the load with the reason.
public struct CUDAEncoderAccelerator: EncoderAccelerator {
    let availability: @Sendable () -> CUDAAvailability
    let requireGPU: Bool
    let logger: Logger
    let compilerCache: String?
    /// Models whose fallback was already logged: one line per model version.
    private let fallbackLogged = OnceKeys()
    /// Each model version's config and device weights, by files, device and math.
    private let deviceModels = SharedCache<DeviceModel>()

    public init(requireGPU: Bool = false, logger: Logger,
                availability: @escaping @Sendable () -> CUDAAvailability = { CUDALoader.shared }) {
        self.requireGPU = requireGPU
        self.logger = logger
        self.availability = availability
        self.compilerCache = KernelCompiler.defaultCacheDirectory()
    }

    public func validate(_ spec: ModelSpec) throws {
        if spec.parameters["task"] == TokenClassificationHead.task, spec.instanceGroups.contains(where: { $0.kind == .gpu }) {
            throw InferenceError.invalidArgument(
                "model '\(spec.name)': task '\(TokenClassificationHead.task)' runs on KIND_CPU instances only (the CUDA engine has no per-token head yet)")
        }
        let names = EncoderInputNames(spec)
        let cpuOnly = spec.inputs.contains { [names.pair, names.tokenTypes].contains($0.name) }
            || spec.outputs.contains { [EncoderOutputNames.sparseEmbedding, EncoderOutputNames.tokenStates].contains($0.name) }
        if cpuOnly, spec.instanceGroups.contains(where: { $0.kind == .gpu }) {
            throw InferenceError.invalidArgument(
                "model '\(spec.name)': sentence pairs, SPARSE_EMBEDDING and LAST_HIDDEN_STATE run on KIND_CPU instances only (the CUDA engine has one segment and pooled heads)")
        }
        if let math = spec.parameters["gpu_math"], CUDAEncoderForward.MatrixMath(rawValue: math) == nil || math == "bf16" {
            throw InferenceError.invalidArgument("model '\(spec.name)': parameters.gpu_math must be tf32 or fp32, got '\(math)'")
        }
    }

    public func makeInstance(for spec: ModelSpec, index: Int) throws -> (any ModelInstance)? {
        guard spec.instanceGroups.contains(where: { $0.kind == .gpu }) else { return nil }
        switch availability() {
        case .unavailable(let reason):
            if requireGPU {
                throw InferenceError.unavailable("model '\(spec.name)' asks for KIND_GPU and --require-gpu is set, but \(reason)")
            }
            let key = "\(spec.name)/\(spec.version)"
            if fallbackLogged.first(key) {
                logger.warning("KIND_GPU instances run on the CPU: \(reason)", metadata: [
                    "model.name": "\(spec.name)", "model.version": "\(spec.version)",
                ])
            }
            return nil
        case .available(let platform):
            let placements = try InstancePlacement.assign(groups: spec.instanceGroups, visibleDevices: platform.devices.map(\.index))
            guard index < placements.count, case .gpu(let device) = placements[index] else { return nil }
            let precision = spec.parameters["precision"] ?? "fp32"
            let math: CUDAEncoderForward.MatrixMath = precision == "bf16" ? .bf16 : CUDAEncoderForward.MatrixMath(rawValue: spec.parameters["gpu_math"] ?? "tf32") ?? .tf32
            // One read of the checkpoint and one device copy of the weights per
            // (model files, device, math): later instances on the device share it.
            var uploaded = false
            let shared = try deviceModels.value(for: "\(spec)|\(ModelFiles.fingerprint(spec))|gpu \(device)|\(math.rawValue)") {
                uploaded = true
                let (model, weights) = try EncoderModel.load(spec: spec)
                return DeviceModel(model: model, weights: try DeviceWeightCopy(platform: platform, device: device, checkpoint: weights,
                                                                              bf16: math == .bf16))
            }
            let compiler = KernelCompiler(platform: platform, cacheDirectory: compilerCache, logger: logger)
            let forward = try CUDAEncoderForward(platform: platform, device: device, model: shared.model, weights: shared.weights,
                                                 math: math, compiler: compiler)
            logger.info("model instance on GPU", metadata: [
                "model.name": "\(spec.name)", "model.version": "\(spec.version)", "instance": "\(index)", "gpu": "\(device)",
                "gpu.math": "\(math.rawValue)", "gpu.activation_bytes": "\(forward.plan.activationBytes)",
                "gpu.weight_bytes": "\(shared.weights.bytes)", "gpu.weights": "\(uploaded ? "uploaded" : "shared")",
            ])
            return CUDAEncoderInstance(shared: shared, forward: forward)
        }
    }
}

/// A model version on one device: its packing and splitting, and the one
/// device copy of its weights its instances there share.
final class DeviceModel: Sendable {
    let model: EncoderModel
    let weights: DeviceWeightCopy
    init(model: EncoderModel, weights: DeviceWeightCopy) {
        self.model = model
        self.weights = weights
    }
}

/// One GPU instance: packs the batch, runs it on the instance's stream, splits the outputs.
final class CUDAEncoderInstance: ModelInstance, @unchecked Sendable {
    /// Held so the cache's weak reference lives as long as any instance on
    /// the device does (the next instance then shares the weights).
    let shared: DeviceModel
    var model: EncoderModel { shared.model }
    let forward: CUDAEncoderForward

    init(shared: DeviceModel, forward: CUDAEncoderForward) {
        self.shared = shared
        self.forward = forward
    }

    func execute(_ batch: Batch) throws -> [[Tensor]] {
        // Its pooling kernel normalizes; an unnormalized vector cannot be had back.
        if model.head == .embedding, batch.items.contains(where: { $0.request.parameters["normalize"] == .bool(false) }) {
            throw InferenceError.invalidArgument("'normalize: false' is served by KIND_CPU instances only (the CUDA pooling kernel normalizes)")
        }
        let (packed, rows) = try model.pack(batch)
        return model.split(try forward.run(packed, head: model.head), rowsPerItem: rows)
    }
}
