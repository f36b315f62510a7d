/// Requests the scheduler hands to one model instance in one execution. Each
/// item is a whole validated request, or rows of one the scheduler split to
/// keep within `max_batch_size` or `max_batch_tokens`.
public struct Batch: Sendable {
    public var items: [ValidatedRequest]
    /// Where an instance that yields (`yieldsToUrgentWork`) pauses between
    /// steps while a more urgent batch runs; nil for the urgent batch itself.
    public var urgentWork: UrgentWorkGate?

    public init(items: [ValidatedRequest], urgentWork: UrgentWorkGate? = nil) {
        self.items = items
        self.urgentWork = urgentWork
    }

    /// Rows across all items, the batch size Triton's statistics report.
    public var batchSize: Int { items.reduce(0) { $0 + $1.batchSize } }
}

/// One executing copy of a model (Triton's "model instance"). The scheduler
/// calls `execute` from the instance's own thread, one batch at a time, so an
/// instance may keep scratch buffers without locking.
public protocol ModelInstance: AnyObject, Sendable {
    /// Returns, for each item of the batch in order, every output the model declares.
    func execute(_ batch: Batch) throws -> [[Tensor]]
    /// Per request: its outputs, or why that request alone failed, so one
    /// client's bad input does not fail the others batched with it. The
    /// default runs `execute`, whose error fails the whole batch.
    func executeEach(_ batch: Batch) throws -> [Result<[Tensor], any Error>]
    /// What the instance resolved at load that an operator should see in the
    /// model's config `parameters` (say, the precision and instruction set in effect).
    var reportedParameters: [String: String] { get }
    /// Whether `execute` calls `batch.urgentWork?.yield()` between its steps,
    /// so that a batch of a higher priority level can overtake it on an urgent
    /// lane (`UrgentWorkGate`). Instances that do not yield get no lane: an
    /// urgent batch beside them would share the cores rather than take them.
    var yieldsToUrgentWork: Bool { get }
}

extension ModelInstance {
    public var reportedParameters: [String: String] { [:] }
    public var yieldsToUrgentWork: Bool { false }

    public func executeEach(_ batch: Batch) throws -> [Result<[Tensor], any Error>] {
        try execute(batch).map { .success($0) }
    }
}

/// An instance of a decoupled model: it answers one request with zero, one
/// or many responses, each sent through `respond` as it is ready; returning
/// ends the request. `isCancelled` turns true once the client is gone, so the
/// model can stop early. Called from the instance's own thread.
public protocol DecoupledModelInstance: ModelInstance {
    func execute(_ request: ValidatedRequest, respond: (_ outputs: [Tensor]) -> Void, isCancelled: () -> Bool) throws
}

extension DecoupledModelInstance {
    public func execute(_ batch: Batch) throws -> [[Tensor]] {
        throw InferenceError.internal("a decoupled model runs one request at a time through its response stream")
    }
}

/// Builds instances of one kind of model; named by config.pbtxt's `backend`.
public protocol ModelBackend: Sendable {
    var name: String { get }
    /// Checks that the model's declared inputs and outputs are ones this backend
    /// computes; throws an error naming the tensor otherwise.
    func validate(_ spec: ModelSpec) throws
    func makeInstance(for spec: ModelSpec, index: Int) throws -> any ModelInstance
    /// How the backend batches requests whose variable dimensions differ:
    /// nil if it cannot (Triton's rule: such requests never share a batch),
    /// `.padded` if it pads to the longest, `.packed` if it packs without padding.
    var variableLengthBatching: TokenCost? { get }
    /// Runs before the request is queued, off the scheduler: may count each
    /// row's real tokens (`rowTokens`, which the scheduler then holds to
    /// `max_batch_tokens`) and tokenize text inputs (`tokenized`). Errors here
    /// fail the request alone.
    func prepare(_ request: inout ValidatedRequest, spec: ModelSpec) throws
    /// The file a version directory holds when config.pbtxt names none
    /// (Triton's `default_model_filename`), if the backend reads one file.
    var defaultModelFileName: String? { get }
    /// The tensors a model file declares, for config auto-complete; nil where
    /// the backend cannot read them from the file.
    func signature(ofModelAt path: String) throws -> ModelSignature?
    /// The tokenizer the model's text inputs go through, for routes that
    /// tokenize or count tokens (TEI's /tokenize); nil if it has none.
    func tokenizer(for spec: ModelSpec) throws -> (any TextTokenizer)?
}

extension ModelBackend {
    public var variableLengthBatching: TokenCost? { nil }
    public func prepare(_ request: inout ValidatedRequest, spec: ModelSpec) throws {}
    public var defaultModelFileName: String? { nil }
    public func signature(ofModelAt path: String) throws -> ModelSignature? { nil }
    public func tokenizer(for spec: ModelSpec) throws -> (any TextTokenizer)? { nil }
}

/// One token of a text as a model's tokenizer cuts it.
public struct TextToken: Sendable, Hashable {
    public var id: Int32
    /// The input's text the token covers, or the token itself where it covers none.
    public var text: String
    /// Added by the tokenizer ([CLS], [SEP]), not read from the input.
    public var special: Bool
    /// Offsets into the input in Unicode scalars (Rust chars), nil for special tokens.
    public var start: Int?
    public var stop: Int?

    public init(id: Int32, text: String, special: Bool, start: Int?, stop: Int?) {
        self.id = id
        self.text = text
        self.special = special
        self.start = start
        self.stop = stop
    }
}

/// A model's text tokenizer as the server's routes use it.
public protocol TextTokenizer: Sendable {
    /// The longest sequence the model takes, special tokens included.
    var maxTokens: Int { get }
    /// The tokens of `text`, untruncated.
    func tokens(_ text: String, addSpecialTokens: Bool) -> [TextToken]
    /// The text of token ids; an id outside the vocabulary is an invalid argument.
    func decode(_ ids: [Int64], skipSpecialTokens: Bool) throws -> String
    /// Prompts by name (sentence-transformers' `prompts`), prepended to a
    /// text when a request names one (parameter `prompt_name`).
    var prompts: [String: String] { get }
}

extension TextTokenizer {
    /// The text of the prompt `name` names.
    public func prompt(named name: String) throws -> String { try SentencePrompts.text(named: name, in: prompts) }
}

/// sentence-transformers' prompts (`config_sentence_transformers.json`).
public enum SentencePrompts {
    /// The prompt `name` names; an unknown name is refused, listing the names
    /// there are, in TEI's words.
    public static func text(named name: String, in prompts: [String: String]) throws -> String {
        guard let text = prompts[name] else {
            throw InferenceError.invalidArgument(prompts.isEmpty
                ? "`prompt_name` is set to `\(name)` but no prompts were found in the Sentence Transformers configuration"
                : "`prompt_name` is set to `\(name)` but it was not found in the Sentence Transformers prompts. Available prompts: [\(prompts.keys.sorted().joined(separator: ", "))]")
        }
        return text
    }
}

/// A tensor as a model file declares it; -1 marks a dynamic dimension.
public struct ModelFileTensor: Sendable, Hashable {
    public var name: String
    public var dataType: DataType
    public var shape: [Int]

    public init(name: String, dataType: DataType, shape: [Int]) {
        self.name = name
        self.dataType = dataType
        self.shape = shape
    }
}

/// What a model file declares it takes and returns.
public struct ModelSignature: Sendable, Hashable {
    public var inputs: [ModelFileTensor]
    public var outputs: [ModelFileTensor]

    public init(inputs: [ModelFileTensor], outputs: [ModelFileTensor]) {
        self.inputs = inputs
        self.outputs = outputs
    }
}

/// How a batch's token cost is counted for `max_batch_tokens`.
public enum TokenCost: Sendable, Equatable {
    /// Every row is padded to the longest: rows x longest length.
    case padded
    /// The backend packs sequences without padding: the sum of real lengths.
    case packed
}

/// The backends a server knows, by name.
public struct BackendRegistry: Sendable {
    private var backends: [String: any ModelBackend] = [:]

    public init(_ backends: [any ModelBackend] = []) {
        for backend in backends { register(backend) }
    }

    public mutating func register(_ backend: any ModelBackend) {
        backends[backend.name] = backend
    }

    public func backend(named name: String) -> (any ModelBackend)? { backends[name] }

    public var names: [String] { backends.keys.sorted() }
}

/// A loaded model version as frontends use it: takes validated requests,
/// answers with statistics, and drains on unload.
public protocol InferenceRunner: Sendable {
    func infer(_ request: ValidatedRequest) async throws -> InferenceResponse
    func statistics() -> ModelStatistics
    /// Stops taking requests, lets queued and in-flight ones finish.
    func shutdown() async
    /// Parameters resolved at load (see `ModelInstance.reportedParameters`).
    var reportedParameters: [String: String] { get }
    /// Every response to one request, in order: one for ordinary models,
    /// zero or more for decoupled ones. Ending the stream early cancels the rest.
    func inferStream(_ request: ValidatedRequest) -> AsyncThrowingStream<InferenceResponse, any Error>
}

extension InferenceRunner {
    public var reportedParameters: [String: String] { [:] }
    public func inferStream(_ request: ValidatedRequest) -> AsyncThrowingStream<InferenceResponse, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    continuation.yield(try await infer(request))
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
