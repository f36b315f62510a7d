import Foundation
import InferenceCore
import Logging
import Synchronization
import TritonProto

/// Readiness of one model version, as Triton's repository index reports it.
public enum ModelVersionState: String, Sendable {
    case loading = "LOADING"
    case ready = "READY"
    case unloading = "UNLOADING"
    case unavailable = "UNAVAILABLE"
}

/// One row of the repository index.
public struct ModelIndexEntry: Sendable, Hashable {
    public var name: String
    /// Empty when the model failed before any version was known.
    public var version: String
    public var state: ModelVersionState
    public var reason: String
}

/// A ready model version: its spec, its normalized config and its runner.
public struct LoadedModel: Sendable {
    public let spec: ModelSpec
    public let config: Inference_ModelConfig
    public let runner: any InferenceRunner
}

/// Creates the runner (scheduler plus instances) for a model version. Injected
/// by the executable so this module does not depend on the scheduler.
public typealias RunnerFactory = @Sendable (ModelSpec, any ModelBackend) throws -> any InferenceRunner

/// Owns the models of one repository and their lifecycle. Frontends resolve
/// (name, version) to a ready model through it.
public final class ModelManager: Sendable {
    private struct VersionEntry: Sendable {
        var state: ModelVersionState
        var reason: String
        var model: LoadedModel?
    }
    private struct ModelEntry: Sendable {
        var versions: [Int64: VersionEntry] = [:]
        /// Set when the model failed before versions were known (bad config).
        var failure: String?
        var config: Inference_ModelConfig?
    }

    public let repositoryPath: String
    private let backends: BackendRegistry
    private let makeRunner: RunnerFactory
    private let logger: Logger
    private let models = Mutex<[String: ModelEntry]>([:])

    public init(repositoryPath: String, backends: BackendRegistry, logger: Logger, makeRunner: @escaping RunnerFactory) {
        self.repositoryPath = repositoryPath
        self.backends = backends
        self.makeRunner = makeRunner
        self.logger = logger
    }

    /// Model directory names in the repository, sorted.
    public func modelNames() throws -> [String] {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: repositoryPath, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw InferenceError.notFound("model repository '\(repositoryPath)' is not a directory")
        }
        return try fm.contentsOfDirectory(atPath: repositoryPath).filter { name in
            var dir: ObjCBool = false
            return !name.hasPrefix(".")
                && fm.fileExists(atPath: (repositoryPath as NSString).appendingPathComponent(name), isDirectory: &dir)
                && dir.boolValue
        }.sorted()
    }

    /// Loads every model in the repository. A broken model is recorded as
    /// UNAVAILABLE with its reason; it never stops the others.
    public func loadAll() throws {
        for name in try modelNames() { load(name) }
    }

    /// Loads (or reloads) one model from its directory.
    public func load(_ name: String) {
        let modelPath = (repositoryPath as NSString).appendingPathComponent(name)
        let configPath = (modelPath as NSString).appendingPathComponent(ModelConfigFile.fileName)
        let started = ContinuousClock.now
        let config: Inference_ModelConfig
        do {
            let parsed = try ModelConfigFile.load(path: configPath)
            config = ModelConfigNormalizer.normalize(parsed, directoryName: name)
            try ModelConfigValidator.validate(config, directoryName: name)
            guard let backend = backends.backend(named: config.backend) else {
                throw InferenceError.invalidArgument(
                    "\(configPath): model '\(name)': unknown backend '\(config.backend)'; known backends: \(backends.names.joined(separator: ", "))")
            }
            let versions = VersionSelector.select(VersionSelector.availableVersions(modelPath: modelPath), policy: config.versionPolicy)
            guard !versions.isEmpty else {
                throw InferenceError.invalidArgument("model '\(name)': no version directory matches its version_policy in \(modelPath)")
            }
            models.withLock { $0[name] = ModelEntry(versions: Dictionary(uniqueKeysWithValues: versions.map {
                ($0, VersionEntry(state: .loading, reason: "", model: nil))
            }), failure: nil, config: config) }
            for version in versions {
                loadVersion(version, of: name, config: config, backend: backend, modelPath: modelPath)
            }
        } catch {
            let reason = (error as? InferenceError)?.message ?? "\(error)"
            logger.error("model failed to load", metadata: ["model.name": "\(name)", "reason": "\(reason)"])
            models.withLock { $0[name] = ModelEntry(versions: [:], failure: reason, config: nil) }
            return
        }
        logger.info("model loaded", metadata: [
            "model.name": "\(name)", "duration_ms": "\((ContinuousClock.now - started).milliseconds)",
        ])
    }

    private func loadVersion(_ version: Int64, of name: String, config: Inference_ModelConfig,
                             backend: any ModelBackend, modelPath: String) {
        let entry: VersionEntry
        do {
            let spec = try ModelSpecBuilder.build(config: config, version: version, modelPath: modelPath)
            try backend.validate(spec)
            let runner = try makeRunner(spec, backend)
            entry = VersionEntry(state: .ready, reason: "", model: LoadedModel(spec: spec, config: config, runner: runner))
        } catch {
            let reason = (error as? InferenceError)?.message ?? "\(error)"
            logger.error("model version failed to load", metadata: [
                "model.name": "\(name)", "model.version": "\(version)", "reason": "\(reason)",
            ])
            entry = VersionEntry(state: .unavailable, reason: reason, model: nil)
        }
        models.withLock { $0[name]?.versions[version] = entry }
    }

    /// The ready model for (name, version); version nil or empty picks the newest ready one.
    public func resolve(_ name: String, version: String?) throws -> LoadedModel {
        let requested: Int64?
        if let version, !version.isEmpty {
            guard let number = Int64(version), number > 0 else {
                throw InferenceError.invalidArgument("model version '\(version)' for model '\(name)' is not a positive integer")
            }
            requested = number
        } else {
            requested = nil
        }
        return try models.withLock { models in
            guard let entry = models[name] else {
                throw InferenceError.notFound("unknown model: '\(name)'")
            }
            if let failure = entry.failure {
                throw InferenceError.unavailable("model '\(name)' is not ready: \(failure)")
            }
            if let requested {
                guard let versionEntry = entry.versions[requested] else {
                    throw InferenceError.notFound("unknown version \(requested) of model '\(name)'")
                }
                guard let model = versionEntry.model, versionEntry.state == .ready else {
                    throw InferenceError.unavailable("model '\(name)' version \(requested) is not ready: \(versionEntry.state.rawValue) \(versionEntry.reason)")
                }
                return model
            }
            guard let newest = entry.versions.filter({ $0.value.state == .ready }).max(by: { $0.key < $1.key }),
                  let model = newest.value.model else {
                throw InferenceError.unavailable("model '\(name)' has no ready version")
            }
            return model
        }
    }

    /// Every ready version of a model, newest last (for metadata and statistics).
    public func readyVersions(of name: String) throws -> [LoadedModel] {
        try models.withLock { models in
            guard let entry = models[name] else { throw InferenceError.notFound("unknown model: '\(name)'") }
            return entry.versions.sorted { $0.key < $1.key }.compactMap { $0.value.model }
        }
    }

    /// All ready models, sorted by name then version.
    public func allReady() -> [LoadedModel] {
        models.withLock { models in
            models.keys.sorted().flatMap { name in
                models[name]!.versions.sorted { $0.key < $1.key }.compactMap { $0.value.model }
            }
        }
    }

    /// The repository index: every model directory, with state and reason.
    public func index(readyOnly: Bool = false) -> [ModelIndexEntry] {
        let known = models.withLock { $0 }
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

    /// True when every loaded model has all its selected versions ready.
    public var allModelsReady: Bool {
        models.withLock { models in
            models.values.allSatisfy { $0.failure == nil && $0.versions.values.allSatisfy { $0.state == .ready } }
        }
    }

    /// Drains and stops every runner (queued and in-flight requests finish).
    public func shutdown() async {
        let runners = models.withLock { models -> [any InferenceRunner] in
            var runners: [any InferenceRunner] = []
            for name in models.keys {
                for version in models[name]!.versions.keys {
                    if let runner = models[name]!.versions[version]!.model?.runner { runners.append(runner) }
                    models[name]!.versions[version]!.state = .unloading
                }
            }
            return runners
        }
        await withTaskGroup(of: Void.self) { group in
            for runner in runners { group.addTask { await runner.shutdown() } }
        }
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
