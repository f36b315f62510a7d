/// What a model's tensor looks like, as its configuration declares it
/// (dims exclude the batch dimension when the model batches; -1 is variable).
public struct TensorSpec: Sendable, Hashable {
    public var name: String
    public var dataType: DataType
    public var dims: [Int]
    public var isOptional: Bool
    public var allowRaggedBatch: Bool
    /// Class labels for the classification extension, from `label_filename`.
    public var labels: [String]

    public init(name: String, dataType: DataType, dims: [Int], isOptional: Bool = false,
                allowRaggedBatch: Bool = false, labels: [String] = []) {
        self.name = name
        self.dataType = dataType
        self.dims = dims
        self.isOptional = isOptional
        self.allowRaggedBatch = allowRaggedBatch
        self.labels = labels
    }
}

/// One of a model's instance groups (Triton's `instance_group`): how many
/// instances, on which kind of device.
public struct InstanceGroupSpec: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable { case cpu, gpu, model }

    public var kind: Kind
    /// Instances per listed GPU (or in all, when no GPU is listed).
    public var count: Int
    /// GPU indices for KIND_GPU; empty: instances are spread over the visible GPUs.
    public var gpus: [Int]
    /// `rate_limiter`: what each instance of the group holds while it
    /// executes, and its priority, under `--rate-limit=execution_count`.
    public var rateLimiter: RateLimiterSpec?

    public init(kind: Kind = .cpu, count: Int = 1, gpus: [Int] = [], rateLimiter: RateLimiterSpec? = nil) {
        self.kind = kind
        self.count = count
        self.gpus = gpus
        self.rateLimiter = rateLimiter
    }

    /// Instances the group creates: `count` on each listed GPU.
    public var instanceCount: Int { count * max(gpus.count, 1) }
}

/// Triton's ModelRateLimiter: resources an instance needs free before it may
/// execute (per device, or `global`: one pool for the server), and a priority
/// (1 or more; an instance with priority 2 gets half the turns of one with 1).
public struct RateLimiterSpec: Sendable, Hashable {
    public struct Resource: Sendable, Hashable {
        public var name: String
        public var global: Bool
        public var count: Int
        public init(name: String, global: Bool = false, count: Int) {
            self.name = name
            self.global = global
            self.count = count
        }
    }
    public var resources: [Resource]
    public var priority: Int

    public init(resources: [Resource] = [], priority: Int = 0) {
        self.resources = resources
        self.priority = priority
    }
}

/// What happens to a request whose queue timeout expires (Triton's ModelQueuePolicy).
public struct QueuePolicy: Sendable, Hashable {
    public enum TimeoutAction: Sendable, Hashable {
        /// Answer UNAVAILABLE "Request timeout expired" at once.
        case reject
        /// Move behind every request at its level that has not expired.
        case delay
    }

    public var timeoutAction: TimeoutAction
    /// nil: requests never time out unless they set their own (when allowed).
    public var defaultTimeout: Duration?
    /// A request may lower (never raise) its timeout with the `timeout` parameter.
    public var allowTimeoutOverride: Bool
    /// 0: unlimited.
    public var maxQueueSize: Int

    public init(timeoutAction: TimeoutAction = .reject, defaultTimeout: Duration? = nil,
                allowTimeoutOverride: Bool = false, maxQueueSize: Int = 0) {
        self.timeoutAction = timeoutAction
        self.defaultTimeout = defaultTimeout
        self.allowTimeoutOverride = allowTimeoutOverride
        self.maxQueueSize = maxQueueSize
    }

    /// The timeout a request gets: the default, or its own where it may lower it.
    public func effectiveTimeout(requested: Duration?) -> Duration? {
        guard allowTimeoutOverride, let requested, requested > .zero else { return defaultTimeout }
        guard let defaultTimeout else { return requested }
        return min(requested, defaultTimeout)
    }
}

/// Dynamic batching settings in scheduler units (normalized from config.pbtxt).
public struct DynamicBatchingSpec: Sendable, Hashable {
    public var preferredBatchSizes: [Int]
    public var maxQueueDelay: Duration
    public var preserveOrdering: Bool
    /// At least 1; level 1 is served first.
    public var priorityLevels: Int
    /// The level of requests that give no priority (or an out-of-range one).
    public var defaultPriorityLevel: Int
    public var defaultQueuePolicy: QueuePolicy
    public var priorityQueuePolicies: [Int: QueuePolicy]
    /// Beyond Triton (model parameter `max_batch_tokens`): the most tokens one
    /// batch may cost, counting padding unless the backend packs sequences.
    public var maxBatchTokens: Int?
    /// Beyond Triton (model parameter `adaptive_queue_delay`): wait for the
    /// delay only while the recent arrival rate predicts another request in time.
    public var adaptiveQueueDelay: Bool
    /// Beyond Triton (model parameter `priority_preemption`, default true):
    /// with several priority levels and a backend whose instances yield, a
    /// batch more urgent than every batch computing runs at once on an urgent
    /// lane while those pause (`UrgentWorkGate`).
    public var priorityPreemption: Bool

    public init(preferredBatchSizes: [Int], maxQueueDelay: Duration, preserveOrdering: Bool = false,
                priorityLevels: Int = 1, defaultPriorityLevel: Int = 1, defaultQueuePolicy: QueuePolicy = QueuePolicy(),
                priorityQueuePolicies: [Int: QueuePolicy] = [:], maxBatchTokens: Int? = nil, adaptiveQueueDelay: Bool = false,
                priorityPreemption: Bool = true) {
        self.preferredBatchSizes = preferredBatchSizes
        self.maxQueueDelay = maxQueueDelay
        self.preserveOrdering = preserveOrdering
        self.priorityLevels = max(priorityLevels, 1)
        self.defaultPriorityLevel = defaultPriorityLevel
        self.defaultQueuePolicy = defaultQueuePolicy
        self.priorityQueuePolicies = priorityQueuePolicies
        self.maxBatchTokens = maxBatchTokens
        self.adaptiveQueueDelay = adaptiveQueueDelay
        self.priorityPreemption = priorityPreemption
    }

    public func queuePolicy(level: Int) -> QueuePolicy {
        priorityQueuePolicies[level] ?? defaultQueuePolicy
    }

    /// Triton's rule: 0 or a level beyond `priorityLevels` means the default level.
    public func level(forPriority priority: UInt64) -> Int {
        guard priority >= 1, priority <= UInt64(priorityLevels) else { return defaultPriorityLevel }
        return Int(priority)
    }
}

/// One model version as the server core sees it: normalized and validated
/// configuration, independent of the config file format.
public struct ModelSpec: Sendable {
    public var name: String
    public var version: Int64
    public var platform: String
    public var backend: String
    /// 0: the model does not batch and tensors carry no batch dimension.
    public var maxBatchSize: Int
    public var inputs: [TensorSpec]
    public var outputs: [TensorSpec]
    public var parameters: [String: String]
    public var instanceCount: Int
    /// Where the instances run; their counts add up to `instanceCount`.
    public var instanceGroups: [InstanceGroupSpec]

    /// Each instance's group and device, in the order instances are made
    /// (group by group, `count` per listed GPU; CPU instances on device 0).
    public var instanceGroupsAndDevices: [(group: InstanceGroupSpec, device: Int)] {
        instanceGroups.flatMap { group in
            (group.gpus.isEmpty ? [0] : group.gpus).flatMap { device in
                Array(repeating: (group: group, device: device), count: group.count)
            }
        }
    }
    /// nil: each request runs alone, as Triton does without `dynamic_batching`.
    public var dynamicBatching: DynamicBatchingSpec?
    /// The version directory holding the model's files.
    public var versionPath: String
    /// config.pbtxt's `default_model_filename`; empty: the backend's default.
    public var modelFileName: String = ""
    /// config.pbtxt's `optimization { graph { level } }` (Triton's values), if set.
    public var graphOptimizationLevel: Int?
    /// Names in `optimization { execution_accelerators { gpu_execution_accelerator } }`.
    public var gpuExecutionAccelerators: [String] = []
    /// `sequence_batching`: set for stateful models (then `dynamicBatching` is nil).
    public var sequenceBatching: SequenceBatchingSpec?
    /// `model_transaction_policy { decoupled: true }`: zero, one or many
    /// responses per request, over ModelStreamInfer only.
    public var decoupled = false
    /// `response_cache { enable: true }`: answers are kept in the server's
    /// response cache, where the server has one.
    public var responseCache = false

    public init(name: String, version: Int64, platform: String = "", backend: String, maxBatchSize: Int,
                inputs: [TensorSpec], outputs: [TensorSpec], parameters: [String: String] = [:],
                instanceCount: Int? = nil, instanceGroups: [InstanceGroupSpec] = [InstanceGroupSpec()],
                dynamicBatching: DynamicBatchingSpec? = nil, versionPath: String = "") {
        self.name = name
        self.version = version
        self.platform = platform
        self.backend = backend
        self.maxBatchSize = maxBatchSize
        self.inputs = inputs
        self.outputs = outputs
        self.parameters = parameters
        self.instanceGroups = instanceGroups
        self.instanceCount = instanceCount ?? instanceGroups.reduce(0) { $0 + $1.instanceCount }
        self.dynamicBatching = dynamicBatching
        self.versionPath = versionPath
    }

    /// The shape a client sees: with the batch dimension (-1) when the model batches.
    public func protocolShape(_ spec: TensorSpec) -> [Int] {
        maxBatchSize > 0 ? [-1] + spec.dims : spec.dims
    }
}
