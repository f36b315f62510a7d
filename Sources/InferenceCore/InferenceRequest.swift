/// A parameter value as the KServe v2 protocol carries it (`InferParameter`).
public enum ParameterValue: Sendable, Hashable {
    case bool(Bool)
    case int64(Int64)
    case uint64(UInt64)
    case double(Double)
    case string(String)
}

/// An output the client asked for. An empty list in the request means "all".
public struct RequestedOutput: Sendable, Hashable {
    public var name: String
    /// The classification extension: return the top N classes instead of the tensor.
    public var classificationCount: Int?
    /// Where to write the output instead of returning it (system shared memory).
    public var region: SharedMemoryReference?

    public init(name: String, classificationCount: Int? = nil, region: SharedMemoryReference? = nil) {
        self.name = name
        self.classificationCount = classificationCount
        self.region = region
    }
}

/// One inference request after protocol decoding, before validation.
public struct InferenceRequest: Sendable {
    public var id: String
    public var modelName: String
    /// nil selects the model's newest ready version.
    public var modelVersion: Int64?
    public var inputs: [Tensor]
    public var requestedOutputs: [RequestedOutput]
    /// Parameters the server does not interpret itself travel on to the backend.
    public var parameters: [String: ParameterValue]
    /// 0 is the model's default level; 1 is the highest priority.
    public var priority: UInt64
    /// The request's own queue timeout (protocol parameter `timeout`, microseconds).
    public var timeout: Duration?
    /// Inputs whose bytes are in shared memory, by input name; their tensors
    /// hold no bytes until the pipeline reads the region.
    public var inputRegions: [String: SharedMemoryReference] = [:]

    public init(id: String = "", modelName: String, modelVersion: Int64? = nil, inputs: [Tensor],
                requestedOutputs: [RequestedOutput] = [], parameters: [String: ParameterValue] = [:],
                priority: UInt64 = 0, timeout: Duration? = nil) {
        self.id = id
        self.modelName = modelName
        self.modelVersion = modelVersion
        self.inputs = inputs
        self.requestedOutputs = requestedOutputs
        self.parameters = parameters
        self.priority = priority
        self.timeout = timeout
    }

    public func input(named name: String) -> Tensor? {
        inputs.first { $0.name == name }
    }
}

/// How long a request spent in each stage, reported with its response.
public struct RequestTiming: Sendable, Hashable {
    /// Tokenizing the request's text before it was queued (zero where no
    /// text was tokenized).
    public var tokenize: Duration = .zero
    public var queue: Duration = .zero
    public var computeInput: Duration = .zero
    public var computeInfer: Duration = .zero
    public var computeOutput: Duration = .zero
    public init() {}
}

/// The answer to one request.
public struct InferenceResponse: Sendable {
    public var id: String
    public var modelName: String
    public var modelVersion: Int64
    public var outputs: [Tensor]
    public var timing: RequestTiming
    /// Outputs written into shared memory (their tensors hold no bytes), by
    /// name, with the bytes written.
    public var outputRegions: [String: SharedMemoryReference] = [:]
    /// Tokens the backend counted in the request's rows before queuing (text
    /// it tokenized, ids its mask kept); nil where it counts none.
    public var tokenCount: Int?

    public init(id: String, modelName: String, modelVersion: Int64, outputs: [Tensor], timing: RequestTiming = .init()) {
        self.id = id
        self.modelName = modelName
        self.modelVersion = modelVersion
        self.outputs = outputs
        self.timing = timing
    }
}
