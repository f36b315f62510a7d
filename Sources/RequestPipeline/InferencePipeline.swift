import Foundation
import InferenceCore
import Logging
import ModelRepository
import SwiftProtobuf
import TritonProto

/// The one request pipeline both frontends call, written once, in this order:
///
/// 1. phase check, model lease, trace sampling (`TraceSettingsStore`)
/// 2. the frontend's decode
/// 3. shared-memory inputs
/// 4. re-identification grant, PHI redaction of text inputs (`PHIRedaction`):
///    nothing after this step sees the identifiers
/// 5. validation against the model's config
/// 6. prepare (`ModelSteps.prepare`: the backend tokenizes text, checks
///    and counts token ids, once), traced as TOKENIZE_START/END
/// 7. the runner: the response cache (`CachingRunner`, wrapped around the
///    scheduler at load: it sees the request after redaction, and ensemble
///    steps find it too), then the scheduler's queue and batch
/// 8. finish (`ModelSteps.finish`: Triton's classification extension)
/// 9. shared-memory outputs, the log line; the trace is written
///
/// Paths that run a model without a client request (ensemble steps,
/// warm-up, the de-identifier behind redaction) take steps 6-8 through
/// `ModelSteps.run`.
public final class InferencePipeline: InferenceServer {
    public let identity: ServerIdentity
    private let models: ModelManager
    private let phase: ServerPhase
    private let ready: @Sendable () -> Bool
    private let logger: Logger
    private let regions: SystemSharedMemory
    private let redaction: PHIRedaction
    public let cudaSharedMemory: any CUDASharedMemoryRegistry
    public let logSettings: any LogSettingsControl
    public let traces: TraceSettingsStore
    public var traceSettings: any TraceSettingsControl { traces }

    public init(identity: ServerIdentity, models: ModelManager, phase: ServerPhase, ready: @escaping @Sendable () -> Bool,
                logSettings: any LogSettingsControl, traceConfiguration: TraceConfiguration = .init(),
                traceClock: @escaping TraceClock = TraceClocks.monotonic, openTelemetry: OpenTelemetryTraces? = nil,
                systemSharedMemory: SystemSharedMemory = SystemSharedMemory(),
                cudaSharedMemory: any CUDASharedMemoryRegistry = UnavailableCUDASharedMemory(), logger: Logger) {
        self.identity = identity
        self.models = models
        self.phase = phase
        self.ready = ready
        self.logSettings = logSettings
        self.traces = TraceSettingsStore(configuration: traceConfiguration,
                                         knownModel: { name in (try? models.resolve(name, version: nil)) != nil },
                                         clock: traceClock, openTelemetry: openTelemetry, logger: logger)
        self.regions = systemSharedMemory
        self.redaction = PHIRedaction(models: models, logger: logger)
        self.cudaSharedMemory = cudaSharedMemory
        self.logger = logger
    }

    public var systemSharedMemory: any SharedMemoryRegistry { regions }
    public var isReady: Bool { ready() }

    public func isModelReady(_ name: String, version: String) -> Bool {
        phase.current != .draining && (try? models.resolve(name, version: version)) != nil
    }

    public func modelVersions(_ name: String, version: String) throws -> [ModelView] {
        if !version.isEmpty { return [try model(name, version: version)] }
        let versions = try models.readyVersions(of: name)
        // None ready: resolve says why (or, if one became ready meanwhile, gives it).
        if versions.isEmpty { return [Self.view(try models.resolve(name, version: nil))] }
        return versions.map(Self.view)
    }

    public func model(_ name: String, version: String) throws -> ModelView {
        Self.view(try models.resolve(name, version: version))
    }

    public func statistics(_ name: String, version: String) throws -> [ModelView] {
        if name.isEmpty { return models.allReady().map(Self.view) }
        if version.isEmpty { return try models.readyVersions(of: name).map(Self.view) }
        return [try model(name, version: version)]
    }

    public func repositoryIndex(readyOnly: Bool) -> [ModelIndexEntry] { models.index(readyOnly: readyOnly) }

    public func loadModel(_ name: String, configJSON: String?, files: [String: [UInt8]]) async throws {
        try models.controlMode.requireExplicitControl()
        try await models.load(name, configOverride: try configJSON.map(ModelConfigJSON.decode), files: files)
    }

    public func unloadModel(_ name: String) async throws {
        try models.controlMode.requireExplicitControl()
        try await models.unload(name)
    }

    public func infer<Wire: Sendable>(_ call: InferenceCall, decode: (ModelSpec) throws -> (InferenceRequest, Wire))
        async throws -> (InferenceResponse, Wire) {
        guard phase.current == .serving else {
            throw InferenceError.unavailable("server is not accepting inference requests (\(phase.current))")
        }
        let started = traces.clock()
        var trace: (any RunTrace)?
        var version: Int64?
        defer { trace?.finish(version: version) }
        let (response, wire, batchSize, spec) = try await models.withModel(call.modelName, version: call.modelVersion) { model in
            if model.spec.decoupled { throw Self.decoupledRefusal(call.protocolName) }
            var (request, wire) = try decode(model.spec)
            trace = traces.sample(model: model.spec.name, requestID: request.id, started: started, headers: call.traceHeaders)
            version = model.spec.version
            // The regions stay mapped while this request holds them, even if
            // a client unregisters them meanwhile.
            var held: [MappedRegion] = []
            var read = Set<String>()
            for (index, tensor) in request.inputs.enumerated() {
                // Only inputs the model has, once each, of the size their shape
                // needs, are read: validation refuses the rest without copying.
                guard let reference = request.inputRegions[tensor.name], read.insert(tensor.name).inserted,
                      let spec = model.spec.inputs.first(where: { $0.name == tensor.name }), spec.dataType == tensor.dataType else { continue }
                let region = try regions.region(for: reference)
                if let expected = try ShapeMath.byteSize(tensor.shape, dataType: tensor.dataType, tensorName: tensor.name),
                   expected != reference.byteSize {
                    throw TritonErrors.inputByteSizeMismatch(input: tensor.name, model: model.spec.name, expected: expected, got: reference.byteSize)
                }
                held.append(region)
                request.inputs[index].bytes = region.read(offset: reference.offset, count: reference.byteSize)
            }
            let outputRegions = try request.requestedOutputs.compactMap { output -> (String, SharedMemoryReference, MappedRegion)? in
                guard let reference = output.region else { return nil }
                return (output.name, reference, try regions.region(for: reference))
            }
            try PHIRedaction.checkGrant(request, call: call)
            request = try await redact(request, for: model.spec, trace: trace)
            var validated = try model.spec.validate(request)
            // After redaction: a tensor trace holds what the model saw.
            trace?.recordTensors("TENSOR_QUEUE_INPUT", validated.request.inputs)
            let handed = traces.clock()
            let tokenize = try model.steps.prepare(&validated)
            let prepared = validated
            var response = try await Self.within(trace) { try await model.runner.infer(prepared) }
            try model.steps.finish(&response, for: prepared, tokenize: tokenize)
            trace?.recordScheduling(handed: handed, returned: traces.clock(), timing: response.timing)
            trace?.recordTensors("TENSOR_BACKEND_OUTPUT", response.outputs)
            // Every output is checked against its region before any is written.
            let writes = try outputRegions.compactMap { name, reference, region -> (Int, SharedMemoryReference, MappedRegion)? in
                guard let index = response.outputs.firstIndex(where: { $0.name == name }) else { return nil }
                let count = response.outputs[index].bytes.count
                guard count <= reference.byteSize else {
                    throw TritonErrors.sharedMemoryOutputTooSmall(name, given: reference.byteSize, needed: count)
                }
                return (index, reference, region)
            }
            for (index, reference, region) in writes {
                let output = response.outputs[index]
                region.write(output.bytes, offset: reference.offset)
                response.outputs[index].bytes = []
                response.outputRegions[output.name] = SharedMemoryReference(region: reference.region, offset: reference.offset,
                                                                            byteSize: output.bytes.count)
            }
            withExtendedLifetime(held) {}
            return (response, wire, validated.batchSize, model.spec)
        }
        logger.debug("inference", metadata: [
            "request.id": "\(response.id)", "model.name": "\(spec.name)", "model.version": "\(spec.version)",
            "batch.size": "\(batchSize)", "request.bytes": "\(call.requestBytes)", "protocol": "\(call.protocolName)",
            "queue_us": "\(response.timing.queue.nanosecondsClamped / 1000)",
            "compute_us": "\(response.timing.computeInfer.nanosecondsClamped / 1000)",
        ])
        return (response, wire)
    }

    public func inferStream(_ call: InferenceCall, decode: (ModelSpec) throws -> InferenceRequest,
                            each: (InferenceResponse) async throws -> Void) async throws {
        guard phase.current == .serving else {
            throw InferenceError.unavailable("server is not accepting inference requests (\(phase.current))")
        }
        let started = traces.clock()
        var trace: (any RunTrace)?
        var version: Int64?
        defer { trace?.finish(version: version) }
        try await models.withModel(call.modelName, version: call.modelVersion) { model in
            var request = try decode(model.spec)
            trace = traces.sample(model: model.spec.name, requestID: request.id, started: started, headers: call.traceHeaders)
            version = model.spec.version
            try PHIRedaction.checkGrant(request, call: call)
            request = try await redact(request, for: model.spec, trace: trace)
            guard request.inputRegions.isEmpty, !request.requestedOutputs.contains(where: { $0.region != nil }) else {
                throw InferenceError.unsupported("model '\(model.spec.name)': shared memory is not supported on a response stream of a decoupled model")
            }
            var validated = try model.spec.validate(request)
            let tokenize = try model.steps.prepare(&validated)
            let prepared = validated
            var responses = 0
            // Leaving this loop early (an error from `each`) ends the stream,
            // which cancels the model's remaining responses.
            trace?.record("QUEUE_START")
            // Inside the trace: the scheduler links its execution's span to the request's.
            let stream = try await Self.within(trace) { model.runner.inferStream(prepared) }
            for try await answer in stream {
                var response = answer
                try model.steps.finish(&response, for: prepared, tokenize: tokenize)
                try await each(response)
                trace?.record("INFER_RESPONSE_COMPLETE")
                responses += 1
            }
            logger.debug("inference", metadata: [
                "request.id": "\(request.id)", "model.name": "\(model.spec.name)", "model.version": "\(model.spec.version)",
                "responses": "\(responses)", "request.bytes": "\(call.requestBytes)", "protocol": "\(call.protocolName)",
            ])
        }
    }

    /// Runs `body` inside the request's trace, when it is sampled.
    static func within<T: Sendable>(_ trace: (any RunTrace)?, _ body: () async throws -> T) async throws -> T {
        guard let trace else { return try await body() }
        return try await trace.run { try await body() }
    }

    /// The redaction step, timed in the trace (ours: PHI_REDACTION_START/END)
    /// where the model names a de-identifier.
    private func redact(_ request: InferenceRequest, for spec: ModelSpec, trace: (any RunTrace)?) async throws -> InferenceRequest {
        guard spec.parameters[PHIRedaction.parameter] != nil else { return request }
        trace?.record("PHI_REDACTION_START")
        defer { trace?.record("PHI_REDACTION_END") }
        return try await redaction.redact(request, for: spec)
    }

    /// Triton's answer to a decoupled model called without a response stream.
    static func decoupledRefusal(_ protocolName: String) -> InferenceError {
        protocolName == "grpc"
            ? .unsupported("ModelInfer RPC doesn't support models with decoupled transaction policy")
            : .unsupported("HTTP end point doesn't support models with decoupled transaction policy")
    }

    static func view(_ model: LoadedModel) -> ModelView {
        let config = model.config
        return ModelView(spec: model.spec, runner: model.runner, steps: model.steps,
                         configProtobuf: { try config.serializedBytes() },
                         configJSON: { try ModelConfigJSON.encode(config) })
    }
}
