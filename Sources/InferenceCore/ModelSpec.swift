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

/// Dynamic batching settings in scheduler units (normalized from config.pbtxt).
public struct DynamicBatchingSpec: Sendable, Hashable {
    public var preferredBatchSizes: [Int]
    public var maxQueueDelay: Duration

    public init(preferredBatchSizes: [Int], maxQueueDelay: Duration) {
        self.preferredBatchSizes = preferredBatchSizes
        self.maxQueueDelay = maxQueueDelay
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
    /// nil: each request runs alone, as Triton does without `dynamic_batching`.
    public var dynamicBatching: DynamicBatchingSpec?
    /// The version directory holding the model's files.
    public var versionPath: String

    public init(name: String, version: Int64, platform: String = "", backend: String, maxBatchSize: Int,
                inputs: [TensorSpec], outputs: [TensorSpec], parameters: [String: String] = [:],
                instanceCount: Int = 1, dynamicBatching: DynamicBatchingSpec? = nil, versionPath: String = "") {
        self.name = name
        self.version = version
        self.platform = platform
        self.backend = backend
        self.maxBatchSize = maxBatchSize
        self.inputs = inputs
        self.outputs = outputs
        self.parameters = parameters
        self.instanceCount = instanceCount
        self.dynamicBatching = dynamicBatching
        self.versionPath = versionPath
    }

    /// The shape a client sees: with the batch dimension (-1) when the model batches.
    public func protocolShape(_ spec: TensorSpec) -> [Int] {
        maxBatchSize > 0 ? [-1] + spec.dims : spec.dims
    }
}
