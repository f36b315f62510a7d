import Foundation
import InferenceCore
import ResponseCache
import Logging
import Synchronization
import TritonProto

/// Triton's `--model-control-mode`.
public enum ModelControlMode: String, Sendable, CaseIterable {
    /// Load every model at start; the repository is fixed afterwards.
    case none
    /// Load what `--load-model` names; load and unload through the API.
    case explicit
    /// Load every model and follow the repository on disk.
    case poll
}

extension ModelControlMode {
    /// Triton allows the load and unload API only in explicit mode.
    public func requireExplicitControl() throws {
        switch self {
        case .explicit: return
        case .poll: throw InferenceError.unavailable("explicit model load / unload is not allowed if polling is enabled")
        case .none: throw InferenceError.unavailable("explicit model load / unload is not allowed: the model control mode is 'none'")
        }
    }
}

/// A ready model version: its spec, its normalized config and its runner.
public struct LoadedModel: Sendable {
    public let spec: ModelSpec
    public let config: Inference_ModelConfig
    public let runner: any InferenceRunner
    /// The model's steps around its runner (prepare, classification).
    public let steps: ModelSteps
    /// Identifies this loaded copy, for leases while requests use it.
    let serial: Int
}

/// Creates the runner (scheduler plus instances) for a model version. Injected
/// by the executable so this module does not depend on the scheduler.
public typealias RunnerFactory = @Sendable (ModelSpec, any ModelBackend) throws -> any InferenceRunner

/// Owns the models of one repository and their lifecycle: loading (parse,
/// normalize, validate, instantiate, warm up), swapping a changed model in
/// only once the new copy is ready, and unloading once in-flight requests
/// have finished. Frontends resolve (name, version) through it.
public final class ModelManager: Sendable {
    struct VersionEntry: Sendable {
        var state: ModelVersionState
        var reason: String
        var model: LoadedModel?
    }

    struct ModelEntry: Sendable {
        var versions: [Int64: VersionEntry] = [:]
        /// Set when the model failed before versions were known, or was unloaded.
        var failure: String?
        var unloaded = false
        /// What was on disk when it was loaded (poll mode compares it).
        var fingerprint = ""
    }

    struct State: Sendable {
        var models: [String: ModelEntry] = [:]
        /// Requests using each loaded copy, by serial.
        var leases: [Int: Int] = [:]
        /// Drains waiting for a copy's last lease to end, by serial.
        var drains: [Int: [CheckedContinuation<Void, Never>]] = [:]
        var nextSerial = 0
        var retiring: [Task<Void, Never>] = []
    }

    public let repositoryPath: String
    public let controlMode: ModelControlMode
    private let backends: BackendRegistry
    private let autoComplete: AutoCompleteSettings
    private let makeRunner: RunnerFactory
    private let logger: Logger
    private let clock: any SchedulerClock
    /// The server's response cache (`--cache-config`); nil: no model caches.
    private let responseCache: ResponseCache?
    private let state = Mutex(State())
    /// Loads and unloads of one model never overlap.
    private let loading = ModelOperationLocks()

    public init(repositoryPath: String, backends: BackendRegistry, controlMode: ModelControlMode = .none,
                autoComplete: AutoCompleteSettings = AutoCompleteSettings(), responseCache: ResponseCache? = nil,
                logger: Logger, clock: any SchedulerClock = SystemSchedulerClock(), makeRunner: @escaping RunnerFactory) {
        self.repositoryPath = repositoryPath
        self.clock = clock
        self.responseCache = responseCache
        self.controlMode = controlMode
        self.backends = backends
        self.autoComplete = autoComplete
        self.makeRunner = makeRunner
        self.logger = logger
    }

    /// Model directory names in the repository, sorted.
    public func modelNames() throws -> [String] {
        try RepositoryScan.modelNames(repositoryPath)
    }

    /// Loads every model in the repository (or, in explicit mode, those named;
    /// "*" names all). A broken model is recorded as UNAVAILABLE with its
    /// reason; it never stops the others.
    public func loadAll(only names: [String]? = nil) async throws {
        let all = try modelNames()
        let selected = names.map { names in names.contains("*") ? all : names } ?? all
        for name in selected {
            try? await load(name)
        }
    }

    // MARK: Load

    /// Loads (or reloads) one model. With `configOverride` (the load API's
    /// `config`) that config replaces config.pbtxt; with `files` (the load
    /// API's `file:<path>`) the model is loaded from a private directory
    /// holding exactly those files. Throws the reason when no version is ready.
    public func load(_ name: String, configOverride: Inference_ModelConfig? = nil, files: [String: [UInt8]] = [:]) async throws {
        try RepositoryScan.checkModelName(name)
        try await loading.serialized(name) {
            try await loadSerialized(name, configOverride: configOverride, files: files)
        }
    }

    private func loadSerialized(_ name: String, configOverride: Inference_ModelConfig?, files: [String: [UInt8]]) async throws {
        let started = clock.now
        var modelPath = (repositoryPath as NSString).appendingPathComponent(name)
        if !files.isEmpty {
            guard configOverride != nil else {
                throw InferenceError.invalidArgument("model '\(name)': loading with file: parameters needs the 'config' parameter too")
            }
            modelPath = try PrivateModelDirectory.write(model: name, files: files)
        }
        let configPath = (modelPath as NSString).appendingPathComponent(ModelConfigFile.fileName)
        let fingerprint = RepositoryScan.fingerprint(modelPath)
        let config: Inference_ModelConfig
        let backend: (any ModelBackend)?
        let ensemble: [EnsembleStep]?
        let versions: [Int64]
        do {
            var parsed: Inference_ModelConfig
            if let configOverride {
                parsed = configOverride
            } else if FileManager.default.fileExists(atPath: configPath) {
                parsed = try ModelConfigFile.load(path: configPath)
            } else if !autoComplete.enabled {
                throw InferenceError.invalidArgument("failed to open text file for read \(configPath): No such file or directory")
            } else {
                // Triton serves a model directory without config.pbtxt when the
                // backend can complete the config from the model file.
                parsed = Inference_ModelConfig()
            }
            if parsed.name.isEmpty { parsed.name = name }
            ModelConfigAutoComplete.completeBackendFields(&parsed, modelPath: modelPath)
            ensemble = try EnsembleConfig.steps(parsed)
            let known = backends.backend(named: parsed.backend)
            guard known != nil || ensemble != nil else {
                throw ModelConfigAutoComplete.unknownBackend(parsed, model: name, configPath: configPath, known: backends.names)
            }
            backend = known
            var normalized = ModelConfigNormalizer.normalize(parsed, directoryName: name)
            versions = VersionSelector.select(VersionSelector.availableVersions(modelPath: modelPath), policy: normalized.versionPolicy)
            guard !versions.isEmpty else {
                throw InferenceError.invalidArgument("model '\(name)': no version directory matches its version_policy in \(modelPath)")
            }
            if autoComplete.enabled, let known,
               let fileName = normalized.defaultModelFilename.isEmpty ? known.defaultModelFileName : normalized.defaultModelFilename {
                let file = ((modelPath as NSString).appendingPathComponent(String(versions.max()!)) as NSString)
                    .appendingPathComponent(fileName)
                if FileManager.default.fileExists(atPath: file), let signature = try known.signature(ofModelAt: file) {
                    try ModelConfigAutoComplete.completeFromModel(&parsed, signature: signature, settings: autoComplete)
                    normalized = ModelConfigNormalizer.normalize(parsed, directoryName: name)
                }
            }
            config = normalized
            try ModelConfigValidator.validate(config, directoryName: name)
        } catch {
            let reason = (error as? InferenceError)?.message ?? "\(error)"
            logger.error("model failed to load", metadata: ["model.name": "\(name)", "reason": "\(reason)"])
            recordFailure(name, reason: reason, fingerprint: fingerprint)
            throw InferenceError.invalidArgument("failed to load '\(name)': \(reason)")
        }

        // Show the new versions as LOADING only where nothing serves yet.
        state.withLock { state in
            var entry = state.models[name] ?? ModelEntry()
            if entry.versions.values.allSatisfy({ $0.model == nil }) {
                entry = ModelEntry(versions: Dictionary(uniqueKeysWithValues: versions.map { ($0, VersionEntry(state: .loading, reason: "")) }))
                state.models[name] = entry
            }
        }
        var loaded: [Int64: VersionEntry] = [:]
        for version in versions {
            loaded[version] = await loadVersion(version, of: name, config: config, backend: backend, ensemble: ensemble, modelPath: modelPath)
        }
        let anyReady = loaded.values.contains { $0.state == .ready }
        let retired: [LoadedModel] = state.withLock { state in
            let old = state.models[name]
            let oldReady = old?.versions.values.contains { $0.state == .ready } ?? false
            // A failed reload keeps the copy that serves; nothing fails because of it.
            if !anyReady && oldReady { return [] }
            state.models[name] = ModelEntry(versions: loaded, failure: nil, unloaded: false, fingerprint: fingerprint)
            return old?.versions.values.compactMap(\.model) ?? []
        }
        retire(retired)
        guard anyReady else {
            let reason = loaded.values.map(\.reason).first { !$0.isEmpty } ?? "no version could be loaded"
            throw InferenceError.invalidArgument("failed to load '\(name)': \(reason)")
        }
        logger.info("model loaded", metadata: [
            "model.name": "\(name)", "model.versions": "\(loaded.keys.sorted())",
            "duration_ms": "\((clock.now - started).nanosecondsClamped / 1_000_000)",
        ])
    }

    private func loadVersion(_ version: Int64, of name: String, config: Inference_ModelConfig,
                             backend: (any ModelBackend)?, ensemble: [EnsembleStep]?, modelPath: String) async -> VersionEntry {
        do {
            let spec = try ModelSpecBuilder.build(config: config, version: version, modelPath: modelPath)
            let steps = ModelSteps(spec: spec, backend: backend, clock: clock)
            var runner: any InferenceRunner
            if let ensemble {
                runner = EnsembleRunner(spec: spec, steps: ensemble, clock: clock) { [weak self] step, request in
                    guard let self else { throw InferenceError.unavailable("the server is shutting down") }
                    return try await self.withModel(step.modelName, version: step.modelVersion.map(String.init)) { model in
                        if model.spec.decoupled {
                            throw InferenceError.unsupported("model '\(model.spec.name)' is decoupled; decoupled steps are not supported")
                        }
                        // Redaction is a step of the request pipeline, which a step call does not pass
                        // through: refuse rather than let text reach the model unredacted.
                        if model.spec.parameters[DeidentificationParameters.redaction] != nil {
                            throw InferenceError.unsupported(
                                "model '\(model.spec.name)' names \(DeidentificationParameters.redaction), which applies to requests sent to it, not to ensemble steps: put \(DeidentificationParameters.redaction) on the ensemble, or a de-identifier step before this one")
                        }
                        // A de-identifier step runs as the ensemble's author configured it: a caller's
                        // parameters (operators, thresholds, spans) must not weaken it.
                        var request = request
                        if model.spec.backend == DeidentificationParameters.backend { request.parameters = [:] }
                        let validated = try model.spec.validate(request)
                        return try await RunTracing.child(model: model.spec.name) { try await model.steps.run(validated, on: model.runner) }
                    }
                }
            } else if let backend {
                try backend.validate(spec)
                runner = try makeRunner(spec, backend)
            } else {
                throw InferenceError.internal("model '\(name)' has neither a backend nor ensemble steps")
            }
            do {
                try await ModelWarmupRunner.run(config.modelWarmup, steps: steps, runner: runner, modelPath: modelPath)
            } catch {
                await runner.shutdown()
                throw error
            }
            // After warm-up, whose samples are not answers to keep. As in
            // Triton, a model that enables the cache on a server without one
            // runs uncached; composing models of an ensemble cache their own.
            if spec.responseCache, let responseCache {
                runner = CachingRunner(inner: runner, cache: responseCache, model: spec.name, version: spec.version)
            }
            let serial = state.withLock { state in
                state.nextSerial += 1
                return state.nextSerial
            }
            // What the backend resolved at load (precision, instruction set)
            // shows in this version's config, next to what was asked for.
            var reported = config
            for (key, value) in runner.reportedParameters where reported.parameters[key] == nil {
                reported.parameters[key] = Inference_ModelParameter.with { $0.stringValue = value }
            }
            return VersionEntry(state: .ready, reason: "", model: LoadedModel(spec: spec, config: reported, runner: runner, steps: steps, serial: serial))
        } catch {
            let reason = (error as? InferenceError)?.message ?? "\(error)"
            logger.error("model version failed to load", metadata: [
                "model.name": "\(name)", "model.version": "\(version)", "reason": "\(reason)",
            ])
            return VersionEntry(state: .unavailable, reason: reason)
        }
    }

    private func recordFailure(_ name: String, reason: String, fingerprint: String) {
        state.withLock { state in
            let serving = state.models[name]?.versions.values.contains { $0.state == .ready } ?? false
            // A broken edit of a serving model leaves the serving copy alone.
            guard !serving else { return }
            state.models[name] = ModelEntry(versions: [:], failure: reason, unloaded: false, fingerprint: fingerprint)
        }
    }

    // MARK: Unload

    /// Unloads a model: new requests get UNAVAILABLE at once; requests already
    /// accepted finish; then its instances stop.
    public func unload(_ name: String) async throws {
        try RepositoryScan.checkModelName(name)
        try await loading.serialized(name) {
            let models: [LoadedModel] = try state.withLock { state in
                guard var entry = state.models[name], !entry.unloaded else {
                    throw InferenceError.notFound("failed to unload '\(name)': the model is not loaded")
                }
                for version in entry.versions.keys { entry.versions[version]?.state = .unloading }
                state.models[name] = entry
                return entry.versions.values.compactMap(\.model)
            }
            for model in models { await drainAndStop(model) }
            state.withLock { state in
                state.models[name] = ModelEntry(versions: [:], failure: "unloaded", unloaded: true, fingerprint: "")
            }
            logger.info("model unloaded", metadata: ["model.name": "\(name)"])
        }
    }

    /// Stops replaced copies once the requests using them are done.
    private func retire(_ models: [LoadedModel]) {
        guard !models.isEmpty else { return }
        let task = Task { for model in models { await self.drainAndStop(model) } }
        state.withLock { $0.retiring.append(task) }
    }

    private func drainAndStop(_ model: LoadedModel) async {
        // A request that resolved this copy holds a lease until it is answered;
        // the last one to end resumes this wait (see `withModel`).
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { state -> Bool in
                guard (state.leases[model.serial] ?? 0) > 0 else { return true }
                state.drains[model.serial, default: []].append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
        await model.runner.shutdown()
    }

    // MARK: Poll

    /// One poll of the repository: new models load, changed ones are swapped
    /// in once ready, removed ones unload.
    public func poll() async {
        guard let onDisk = try? modelNames() else { return }
        let known = state.withLock { state in state.models.filter { !$0.value.unloaded }.mapValues(\.fingerprint) }
        for name in onDisk {
            let fingerprint = RepositoryScan.fingerprint((repositoryPath as NSString).appendingPathComponent(name))
            if known[name] != fingerprint {
                logger.info("model changed on disk", metadata: ["model.name": "\(name)"])
                try? await load(name)
            }
        }
        for name in Set(known.keys).subtracting(onDisk) {
            logger.info("model removed from disk", metadata: ["model.name": "\(name)"])
            try? await unload(name)
        }
    }

    // MARK: Lookup

    /// Runs `body` with the ready model for (name, version), holding a lease
    /// so an unload or swap waits for it. Inference goes through here.
    public func withModel<T: Sendable>(_ name: String, version: String?,
                                       _ body: (LoadedModel) async throws -> T) async throws -> T {
        let model = try state.withLock { state -> LoadedModel in
            let model = try Self.resolve(name, version: version, in: state)
            state.leases[model.serial, default: 0] += 1
            return model
        }
        defer {
            let drains = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.leases[model.serial, default: 1] -= 1
                guard state.leases[model.serial] == 0 else { return [] }
                state.leases[model.serial] = nil
                return state.drains.removeValue(forKey: model.serial) ?? []
            }
            for drain in drains { drain.resume() }
        }
        return try await body(model)
    }

    /// The ready model for (name, version); version nil or empty picks the newest ready one.
    public func resolve(_ name: String, version: String?) throws -> LoadedModel {
        try state.withLock { try Self.resolve(name, version: version, in: $0) }
    }

    private static func resolve(_ name: String, version: String?, in state: State) throws -> LoadedModel {
        var requested: Int64?
        if let version, !version.isEmpty {
            guard let number = Int64(version) else { throw TritonErrors.malformedVersion(version) }
            guard number >= 0 else { throw TritonErrors.negativeVersion(version) }
            requested = number
        }
        guard let entry = state.models[name] else { throw TritonErrors.unknownModel(name) }
        // Triton keeps a failed or unloaded model known, with no version available.
        if entry.unloaded { throw TritonErrors.noAvailableVersion(name) }
        if let failure = entry.failure { throw TritonErrors.noAvailableVersion(name, reason: "failed to load: \(failure)") }
        if let requested {
            guard let versionEntry = entry.versions[requested] else { throw TritonErrors.unknownVersion(name, version: requested) }
            guard let model = versionEntry.model, versionEntry.state == .ready else {
                throw TritonErrors.versionNotReady(name, version: requested)
            }
            return model
        }
        guard let newest = entry.versions.filter({ $0.value.state == .ready }).max(by: { $0.key < $1.key }),
              let model = newest.value.model else { throw TritonErrors.noAvailableVersion(name) }
        return model
    }

    /// Every ready version of a model, oldest first (for metadata and statistics).
    public func readyVersions(of name: String) throws -> [LoadedModel] {
        try state.withLock { state in
            guard let entry = state.models[name] else { throw TritonErrors.unknownModel(name) }
            return entry.versions.sorted { $0.key < $1.key }.compactMap { $0.value.state == .ready ? $0.value.model : nil }
        }
    }

    /// All ready models, sorted by name then version.
    public func allReady() -> [LoadedModel] {
        state.withLock { state in
            state.models.keys.sorted().flatMap { name in
                state.models[name]!.versions.sorted { $0.key < $1.key }.compactMap { $0.value.state == .ready ? $0.value.model : nil }
            }
        }
    }

    /// The repository index: every model directory, with state and reason.
    public func index(readyOnly: Bool = false) -> [ModelIndexEntry] {
        let known = state.withLock { $0.models }
        var names = Set(known.keys)
        if let onDisk = try? modelNames() { names.formUnion(onDisk) }
        var rows: [ModelIndexEntry] = []
        for name in names.sorted() {
            guard let entry = known[name] else {
                if !readyOnly { rows.append(ModelIndexEntry(name: name, version: "", state: .unavailable, reason: "unloaded")) }
                continue
            }
            if let failure = entry.failure {
                if !readyOnly { rows.append(ModelIndexEntry(name: name, version: "", state: .unavailable, reason: failure)) }
                continue
            }
            for (version, versionEntry) in entry.versions.sorted(by: { $0.key < $1.key })
            where !readyOnly || versionEntry.state == .ready {
                rows.append(ModelIndexEntry(name: name, version: String(version), state: versionEntry.state, reason: versionEntry.reason))
            }
        }
        return rows
    }

    /// True when every model that should be loaded has all its selected versions ready.
    public var allModelsReady: Bool {
        state.withLock { state in
            state.models.values.allSatisfy { entry in
                entry.unloaded || (entry.failure == nil && entry.versions.values.allSatisfy { $0.state == .ready })
            }
        }
    }

    /// Drains and stops every runner (queued and in-flight requests finish).
    public func shutdown() async {
        let (models, retiring) = state.withLock { state -> ([LoadedModel], [Task<Void, Never>]) in
            var models: [LoadedModel] = []
            for name in state.models.keys {
                for version in state.models[name]!.versions.keys {
                    if let model = state.models[name]!.versions[version]!.model { models.append(model) }
                    state.models[name]!.versions[version]!.state = .unloading
                }
            }
            return (models, state.retiring)
        }
        await withTaskGroup(of: Void.self) { group in
            for model in models { group.addTask { await self.drainAndStop(model) } }
            for task in retiring { group.addTask { await task.value } }
        }
    }
}

/// Serializes operations per model name (a load and an unload of the same
/// model never interleave; different models proceed in parallel).
final class ModelOperationLocks: Sendable {
    private struct State {
        var busy: Set<String> = []
        /// Operations waiting for a name, first come first served.
        var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]
    }
    private let state = Mutex(State())

    func serialized<T: Sendable>(_ name: String, _ body: () async throws -> T) async throws -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = state.withLock { state -> Bool in
                if state.busy.insert(name).inserted { return true }
                state.waiting[name, default: []].append(continuation)
                return false
            }
            if acquired { continuation.resume() }
        }
        defer { release(name) }
        return try await body()
    }

    /// Hands the name to the next waiter (it stays busy), or frees it.
    private func release(_ name: String) {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard var queue = state.waiting[name], !queue.isEmpty else {
                state.busy.remove(name)
                return nil
            }
            let first = queue.removeFirst()
            state.waiting[name] = queue.isEmpty ? nil : queue
            return first
        }
        next?.resume()
    }
}
