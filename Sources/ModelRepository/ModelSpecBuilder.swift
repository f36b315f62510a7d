import Foundation
import InferenceCore
import TritonProto

/// Turns a normalized, validated config into the server core's ModelSpec.
enum ModelSpecBuilder {
    static func build(config: Inference_ModelConfig, version: Int64, modelPath: String) throws -> ModelSpec {
        let versionPath = (modelPath as NSString).appendingPathComponent(String(version))
        let inputs = config.input.map { input in
            TensorSpec(name: input.name, dataType: DataType(protoType: input.dataType)!, dims: input.dims.map(Int.init),
                       isOptional: input.optional, allowRaggedBatch: input.allowRaggedBatch)
        }
        let outputs = try config.output.map { output in
            TensorSpec(name: output.name, dataType: DataType(protoType: output.dataType)!, dims: output.dims.map(Int.init),
                       labels: try labels(output.labelFilename, modelPath: modelPath, model: config.name))
        }
        var batching: DynamicBatchingSpec?
        if case .dynamicBatching(let settings)? = config.schedulingChoice {
            batching = try dynamicBatching(settings, parameters: config.parameters, model: config.name)
        }
        var spec = ModelSpec(
            name: config.name, version: version, platform: config.platform, backend: config.backend,
            maxBatchSize: Int(config.maxBatchSize), inputs: inputs, outputs: outputs,
            parameters: config.parameters.mapValues(\.stringValue),
            instanceGroups: config.instanceGroup.map { group in
                InstanceGroupSpec(kind: group.kind == .gpu ? .gpu : group.kind == .model ? .model : .cpu,
                                  count: Int(group.count), gpus: group.gpus.map(Int.init),
                                  rateLimiter: group.hasRateLimiter ? RateLimiterSpec(
                                      resources: group.rateLimiter.resources.map {
                                          .init(name: $0.name, global: $0.global, count: Int($0.count))
                                      },
                                      priority: Int(group.rateLimiter.priority)) : nil)
            },
            dynamicBatching: batching, versionPath: versionPath)
        spec.modelFileName = config.defaultModelFilename
        spec.decoupled = config.modelTransactionPolicy.decoupled
        spec.responseCache = config.responseCache.enable
        if case .sequenceBatching(let sequence)? = config.schedulingChoice {
            spec.sequenceBatching = try SequenceBatchingConfig.build(sequence, model: config.name, maxBatchSize: Int(config.maxBatchSize),
                                                                    modelPath: modelPath)
        }
        if config.hasOptimization && config.optimization.hasGraph {
            spec.graphOptimizationLevel = Int(config.optimization.graph.level)
        }
        spec.gpuExecutionAccelerators = config.optimization.executionAccelerators.gpuExecutionAccelerator.map(\.name)
        return spec
    }

    static func dynamicBatching(_ settings: Inference_ModelDynamicBatching,
                                parameters: [String: Inference_ModelParameter], model: String) throws -> DynamicBatchingSpec {
        func policy(_ proto: Inference_ModelQueuePolicy) -> QueuePolicy {
            QueuePolicy(
                timeoutAction: proto.timeoutAction == .delay ? .delay : .reject,
                defaultTimeout: proto.defaultTimeoutMicroseconds == 0 ? nil : .microseconds(Int64(clamping: proto.defaultTimeoutMicroseconds)),
                allowTimeoutOverride: proto.allowTimeoutOverride,
                maxQueueSize: Int(proto.maxQueueSize))
        }
        var maxBatchTokens: Int?
        if let text = parameters["max_batch_tokens"]?.stringValue {
            guard let tokens = Int(text), tokens > 0 else {
                throw InferenceError.invalidArgument("model '\(model)': parameters.max_batch_tokens must be a positive integer, got '\(text)'")
            }
            maxBatchTokens = tokens
        }
        func flag(_ name: String, default value: Bool) throws -> Bool {
            guard let text = parameters[name]?.stringValue else { return value }
            guard let flag = Bool(text.lowercased()) else {
                throw InferenceError.invalidArgument("model '\(model)': parameters.\(name) must be true or false, got '\(text)'")
            }
            return flag
        }
        let levels = max(Int(clamping: settings.priorityLevels), 1)
        return DynamicBatchingSpec(
            preferredBatchSizes: settings.preferredBatchSize.map(Int.init),
            maxQueueDelay: .microseconds(Int64(clamping: settings.maxQueueDelayMicroseconds)),
            preserveOrdering: settings.preserveOrdering,
            priorityLevels: levels,
            defaultPriorityLevel: settings.defaultPriorityLevel == 0 ? 1 : Int(clamping: settings.defaultPriorityLevel),
            defaultQueuePolicy: policy(settings.defaultQueuePolicy),
            priorityQueuePolicies: Dictionary(uniqueKeysWithValues: settings.priorityQueuePolicy.map { (Int(clamping: $0.key), policy($0.value)) }),
            maxBatchTokens: maxBatchTokens,
            adaptiveQueueDelay: try flag("adaptive_queue_delay", default: false),
            priorityPreemption: try flag("priority_preemption", default: true))
    }

    private static func labels(_ fileName: String, modelPath: String, model: String) throws -> [String] {
        guard !fileName.isEmpty else { return [] }
        guard !fileName.contains("/"), fileName != "..", fileName != "." else {
            throw InferenceError.invalidArgument("model '\(model)': label_filename '\(fileName)' must name a file in the model directory")
        }
        let path = (modelPath as NSString).appendingPathComponent(fileName)
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw InferenceError.invalidArgument("model '\(model)': label_filename '\(fileName)' cannot be read at \(path)")
        }
        return text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { String($0).trimmingCharacters(in: .whitespaces) }
            .reversed().drop { $0.isEmpty }.reversed()
    }
}

/// Version directories of a model and which of them the policy serves.
enum VersionSelector {
    /// Numeric directory names; zero-prefixed names are ignored as Triton does.
    static func availableVersions(modelPath: String) -> [Int64] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: modelPath)) ?? []
        return names.compactMap { name -> Int64? in
            guard !name.hasPrefix("0"), name.allSatisfy(\.isASCII), let version = Int64(name), version > 0 else { return nil }
            var isDirectory: ObjCBool = false
            let path = (modelPath as NSString).appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return nil }
            return version
        }.sorted()
    }

    static func select(_ available: [Int64], policy: Inference_ModelVersionPolicy) -> [Int64] {
        switch policy.policyChoice {
        case .all?: return available
        case .specific(let specific)?: return available.filter { specific.versions.contains($0) }
        case .latest(let latest)?: return Array(available.suffix(Int(max(latest.numVersions, 1))))
        case nil: return Array(available.suffix(1))
        }
    }
}
