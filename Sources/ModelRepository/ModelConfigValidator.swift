import InferenceCore
import TritonProto

/// Checks a normalized config against Triton's rules; every message names the
/// model, the field and the offending value.
public enum ModelConfigValidator {
    public static func validate(_ config: Inference_ModelConfig, directoryName: String) throws {
        let model = config.name
        func fail(_ message: String) -> InferenceError {
            .invalidArgument("model '\(model)': \(message)")
        }
        guard config.name == directoryName else {
            throw fail("name '\(config.name)' does not match its directory '\(directoryName)'")
        }
        guard config.maxBatchSize >= 0 else {
            throw fail("max_batch_size must be >= 0, got \(config.maxBatchSize)")
        }
        if config.modelTransactionPolicy.decoupled, config.schedulingChoice != nil {
            throw fail("a decoupled model runs each request alone: dynamic_batching and sequence_batching are not supported with decoupled: true")
        }
        // Triton's refusals, in its words: a cached answer cannot stand in
        // for a step of a stateful sequence or for a stream of responses.
        if config.responseCache.enable, case .sequenceBatching? = config.schedulingChoice {
            throw InferenceError.invalidArgument(
                "Response Cache does not currently support model \(model) with sequence batching scheduler. Please disable the response cache.")
        }
        if config.responseCache.enable, config.modelTransactionPolicy.decoupled {
            throw InferenceError.invalidArgument(
                "Response Cache does not currently support model \(model) with 'decoupled' transaction policy. Please disable the response cache.")
        }
        guard !config.input.isEmpty else { throw fail("input: at least one input is required") }
        guard !config.output.isEmpty else { throw fail("output: at least one output is required") }
        var names = Set<String>()
        for input in config.input {
            try checkTensor(name: input.name, dataType: input.dataType, dims: input.dims, field: "input", fail: fail)
            guard names.insert(input.name).inserted else { throw fail("input: duplicate name '\(input.name)'") }
        }
        names.removeAll()
        for output in config.output {
            try checkTensor(name: output.name, dataType: output.dataType, dims: output.dims, field: "output", fail: fail)
            guard names.insert(output.name).inserted else { throw fail("output: duplicate name '\(output.name)'") }
        }
        if case .dynamicBatching(let batching)? = config.schedulingChoice {
            guard config.maxBatchSize > 0 else {
                throw fail("dynamic_batching requires max_batch_size > 0, got \(config.maxBatchSize)")
            }
            for size in batching.preferredBatchSize where size < 1 || size > config.maxBatchSize {
                throw fail("dynamic_batching.preferred_batch_size \(size) must be within 1...\(config.maxBatchSize) (max_batch_size)")
            }
            if batching.priorityLevels > 0 {
                guard batching.defaultPriorityLevel >= 1, batching.defaultPriorityLevel <= batching.priorityLevels else {
                    throw fail("dynamic_batching.default_priority_level \(batching.defaultPriorityLevel) must be within 1...\(batching.priorityLevels) (priority_levels)")
                }
            } else if batching.defaultPriorityLevel > 1 {
                throw fail("dynamic_batching.default_priority_level \(batching.defaultPriorityLevel) needs priority_levels >= \(batching.defaultPriorityLevel), got 0")
            }
            for level in batching.priorityQueuePolicy.keys where level < 1 || level > max(batching.priorityLevels, 1) {
                throw fail("dynamic_batching.priority_queue_policy level \(level) must be within 1...\(max(batching.priorityLevels, 1)) (priority_levels)")
            }
            if batching.preserveOrdering {
                if batching.priorityLevels > 1 {
                    throw fail("dynamic_batching.preserve_ordering cannot be combined with priority_levels \(batching.priorityLevels)")
                }
                let policies = [batching.defaultQueuePolicy] + Array(batching.priorityQueuePolicy.values)
                if policies.contains(where: { $0.timeoutAction == .delay }) {
                    throw fail("dynamic_batching.preserve_ordering cannot be combined with timeout_action DELAY")
                }
            }
        }
        for group in config.instanceGroup where group.count < 1 {
            throw fail("instance_group '\(group.name)': count must be >= 1, got \(group.count)")
        }
        for group in config.instanceGroup {
            if let gpu = group.gpus.first(where: { $0 < 0 }) {
                throw fail("instance_group '\(group.name)': gpus must be device indices >= 0, got \(gpu)")
            }
            if group.kind != .gpu && !group.gpus.isEmpty {
                throw fail("instance_group '\(group.name)': gpus is only valid with kind KIND_GPU")
            }
        }
    }

    private static func checkTensor(name: String, dataType: Inference_DataType, dims: [Int64], field: String,
                                    fail: (String) -> InferenceError) throws {
        guard !name.isEmpty else { throw fail("\(field): a tensor has an empty name") }
        guard dataType != .typeInvalid, DataType(protoType: dataType) != nil else {
            throw fail("\(field) '\(name)': data_type \(dataType) is not supported")
        }
        for dim in dims where dim == 0 || dim < -1 {
            throw fail("\(field) '\(name)': dims must be positive or -1, got \(dim)")
        }
    }
}

extension DataType {
    /// Maps config.pbtxt's enum onto the protocol's datatype.
    public init?(protoType: Inference_DataType) {
        switch protoType {
        case .typeBool: self = .bool
        case .typeUint8: self = .uint8
        case .typeUint16: self = .uint16
        case .typeUint32: self = .uint32
        case .typeUint64: self = .uint64
        case .typeInt8: self = .int8
        case .typeInt16: self = .int16
        case .typeInt32: self = .int32
        case .typeInt64: self = .int64
        case .typeFp16: self = .fp16
        case .typeFp32: self = .fp32
        case .typeFp64: self = .fp64
        case .typeString: self = .bytes
        case .typeBf16: self = .bf16
        default: return nil
        }
    }
}
