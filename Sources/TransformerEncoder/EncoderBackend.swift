import CDNNL
import CEncoderKernels
import Foundation
import InferenceCore
import TransformerModel
import Logging
import Synchronization

/// The `transformer_encoder` backend: a DistilBERT or BERT checkpoint in
/// Hugging Face's layout (`config.json`, `model.safetensors`, `vocab.txt`) in
/// the model's version directory.
///
/// Inputs (names configurable with the parameters `input_ids_tensor`,
/// `attention_mask_tensor`, `text_tensor`): INPUT_IDS and ATTENTION_MASK
/// (INT64 [-1]) as Triton deployments of DistilBERT use them, or TEXT (BYTES
/// [1], tokenized in the server). Output: LOGITS (FP32 [labels], sequence
/// classification) or EMBEDDING (FP32 [hidden], mean-pooled and L2-normalized);
/// with `task: token_classification`, ENTITIES and TOKEN_LOGITS
/// (`TokenClassificationHead`).
/// Requests of any lengths share a batch: tokens are packed without padding.
///
/// CPU instances of one model version share one `PreparedEncoder`; an
/// accelerator (GPUKernels' CUDA one, where wired) may claim instances of
/// KIND_GPU groups, which then run there with their own device context.
public struct EncoderBackend: ModelBackend {
    public let name = "transformer_encoder"
    public let variableLengthBatching: TokenCost? = .packed
    let accelerator: (any EncoderAccelerator)?
    let logger: Logger
    private let prepared = PreparedModels()
    private let modelFacts = ModelFacts()

    public init(accelerator: (any EncoderAccelerator)? = nil, logger: Logger = Logger(label: "batch-server")) {
        self.accelerator = accelerator
        self.logger = logger
    }

    public func validate(_ spec: ModelSpec) throws {
        let names = EncoderInputNames(spec)
        guard spec.maxBatchSize > 0 else {
            throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(name)' needs max_batch_size > 0")
        }
        for input in spec.inputs {
            switch input.name {
            case names.ids, names.mask, names.tokenTypes:
                guard input.dataType == .int64, input.dims == [-1] else {
                    throw InferenceError.invalidArgument("model '\(spec.name)': input '\(input.name)' must be TYPE_INT64 with dims [ -1 ]")
                }
            case names.text, names.pair:
                guard input.dataType == .bytes, input.dims == [1] else {
                    throw InferenceError.invalidArgument("model '\(spec.name)': input '\(input.name)' must be TYPE_STRING with dims [ 1 ]")
                }
            default:
                throw InferenceError.invalidArgument(
                    "model '\(spec.name)': backend '\(name)' does not know input '\(input.name)' (expected \(names.ids), \(names.mask), "
                    + "\(names.tokenTypes), \(names.text) or \(names.pair))")
            }
        }
        guard spec.inputs.contains(where: { $0.name == names.ids || $0.name == names.text }) else {
            throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(name)' needs input '\(names.ids)' or '\(names.text)'")
        }
        if spec.inputs.contains(where: { $0.name == names.pair }), !spec.inputs.contains(where: { $0.name == names.text }) {
            throw InferenceError.invalidArgument("model '\(spec.name)': input '\(names.pair)' needs input '\(names.text)' (the pair's first text)")
        }
        if spec.parameters["task"] == TokenClassificationHead.task {
            // The labels come from the checkpoint, checked at load.
            try TokenClassificationHead.validateOutputs(spec, labels: -1)
            guard !spec.outputs.isEmpty else {
                throw InferenceError.invalidArgument("model '\(spec.name)': task '\(TokenClassificationHead.task)' needs output ENTITIES or TOKEN_LOGITS")
            }
            if spec.outputs.contains(where: { $0.name == TokenClassificationHead.entitiesOutput }),
               !spec.inputs.contains(where: { $0.name == names.text }) {
                throw InferenceError.invalidArgument(
                    "model '\(spec.name)': output 'ENTITIES' needs input '\(names.text)' (spans are offsets into the text)")
            }
        } else {
            try Self.validateOutputs(spec)
        }
        if let requested = spec.parameters["precision"], !["auto", "fp32", "bf16", "int8"].contains(requested) {
            throw InferenceError.invalidArgument("model '\(spec.name)': parameters.precision must be auto, fp32, bf16 or int8, got '\(requested)'")
        }
        if let tokens = spec.dynamicBatching?.maxBatchTokens, tokens < 1 {
            throw InferenceError.invalidArgument("model '\(spec.name)': max_batch_tokens must be at least 1, got \(tokens)")
        }
        try accelerator?.validate(spec)
    }

    /// One of: LOGITS [labels]; SPARSE_EMBEDDING [vocabulary]; EMBEDDING
    /// [hidden] and/or LAST_HIDDEN_STATE [-1, hidden]. All TYPE_FP32; sizes
    /// are checked against the checkpoint at load.
    static func validateOutputs(_ spec: ModelSpec) throws {
        typealias O = EncoderOutputNames
        let names = Set(spec.outputs.map(\.name))
        let shapes: [String: Int] = [O.logits: 1, O.sparseEmbedding: 1, O.embedding: 1, O.tokenStates: 2]
        let allowed = names == [O.logits] || names == [O.sparseEmbedding]
            || (!names.isEmpty && names.isSubset(of: [O.embedding, O.tokenStates]))
        guard allowed, spec.outputs.count == names.count,
              spec.outputs.allSatisfy({ $0.dataType == .fp32 && $0.dims.count == shapes[$0.name] && ($0.dims.count == 1 || $0.dims[0] == -1) }) else {
            throw InferenceError.invalidArgument(
                "model '\(spec.name)': backend 'transformer_encoder' outputs LOGITS [labels], SPARSE_EMBEDDING [vocabulary], "
                + "or EMBEDDING [hidden] and/or LAST_HIDDEN_STATE [-1, hidden], TYPE_FP32")
        }
    }

    public func makeInstance(for spec: ModelSpec, index: Int) throws -> any ModelInstance {
        let accelerated = try accelerator?.makeInstance(for: spec, index: index)
        // Read at load, so a missing or broken vocab.txt fails the model, not its first request.
        let facts = try modelFacts.facts(for: spec)
        if let accelerated { return accelerated }
        let shared = try prepared.model(for: spec) { try prepare(spec) }
        let threads = Int(spec.parameters["threads"] ?? "") ?? ProcessInfo.processInfo.activeProcessorCount
        let forward = try EncoderForward(model: shared.encoder, threads: threads)
        omp_set_num_threads(Int32(max(threads, 1)))   // warm on this (loading) thread with the instance's team
        try forward.warm()
        return EncoderInstance(shared: shared, forward: forward, threads: threads, tokenizer: facts.tokenizer, reported: [
            "precision_in_effect": shared.encoder.precision.rawValue,
            "precision_reason": shared.reason,
            "cpu_isa": PreparedEncoder.isa,
        ])
    }

    /// The most tokens one batch of this model may hold: `max_batch_tokens`,
    /// or every row at the model's longest length.
    public static func tokenBudget(_ spec: ModelSpec, maxPositions: Int) -> Int {
        spec.dynamicBatching?.maxBatchTokens ?? max(spec.maxBatchSize, 1) * maxPositions
    }

    private func prepare(_ spec: ModelSpec) throws -> (model: EncoderModel, encoder: PreparedEncoder, reason: String) {
        let began = ContinuousClock.now
        let (model, weights) = try EncoderModel.load(spec: spec)
        let cpu = PrecisionChoice.CPU.current
        let choice = try PrecisionChoice.resolve(spec.parameters["precision"], cpu: cpu)
        let budget = Self.tokenBudget(spec, maxPositions: model.config.maxPositions)
        let encoder = try PreparedEncoder(config: model.config, weights: weights, precision: choice.precision, maxTokens: budget)
        logger.info("encoder prepared", metadata: [
            "model.name": "\(spec.name)", "model.version": "\(spec.version)",
            "encoder.precision": "\(choice.precision.rawValue)", "encoder.precision_reason": "\(choice.reason)",
            "encoder.isa": "\(PreparedEncoder.isa)", "encoder.row_kernels": "\(String(cString: ek_variant()))",
            "encoder.kernels": "\(encoder.implementations.joined(separator: ", "))",
            "encoder.max_tokens": "\(budget)", "encoder.weight_bytes": "\(encoder.packedWeightBytes)",
            "encoder.load_ms": "\(Int(EncoderForward.seconds(ContinuousClock.now - began) * 1000))",
        ])
        return (model, encoder, choice.reason)
    }

    /// Checks the request and counts each row's real tokens before queuing,
    /// so a bad request fails alone (not the batch it would have joined) and
    /// the scheduler keeps every batch within the budget the instances were
    /// prepared for: TEXT is tokenized here (and not again on the instance),
    /// INPUT_IDS rows count the tokens their mask keeps.
    public func tokenizer(for spec: ModelSpec) throws -> (any TextTokenizer)? {
        let facts = try modelFacts.facts(for: spec)
        return facts.tokenizer.map { EncoderTextTokenizer(tokenizer: $0, maxTokens: facts.maxTokens, prompts: facts.sentenceConfig.prompts) }
    }

    public func prepare(_ request: inout ValidatedRequest, spec: ModelSpec) throws {
        let names = EncoderInputNames(spec)
        let facts = try modelFacts.facts(for: spec)
        if let text = request.request.input(named: names.text) {
            guard let tokenizer = facts.tokenizer else { throw InferenceError.internal("model '\(spec.name)' has no tokenizer") }
            var rows = TokenRows()
            // Parameter `truncate: false` (the TEI and OpenAI routes send it)
            // refuses a text longer than the model instead of cutting it;
            // `truncation_direction: left` cuts its start instead of its end.
            let truncate = request.request.parameters["truncate"] != .bool(false)
            let direction: WordPieceTokenizer.TruncationDirection
            switch request.request.parameters["truncation_direction"] {
            case nil: direction = .right
            case .string(let value)?:
                guard let known = WordPieceTokenizer.TruncationDirection(rawValue: value.lowercased()) else {
                    throw InferenceError.invalidArgument("parameter 'truncation_direction' must be 'left' or 'right', got '\(value)'")
                }
                direction = known
            default: throw InferenceError.invalidArgument("parameter 'truncation_direction' must be a string")
            }
            let limit = facts.maxTokens
            let prompt = try facts.sentenceConfig.prompt(named: request.request.parameters["prompt_name"], pairs: request.request.input(named: names.pair) != nil)
            func string(_ element: [UInt8], _ input: String, _ index: Int) throws -> String {
                guard let string = String(validating: element, as: UTF8.self) else {
                    throw InferenceError.invalidArgument("input '\(input)' element \(index) is not valid UTF-8")
                }
                guard !string.isEmpty else { throw InferenceError.invalidArgument("input '\(input)' element \(index) is empty") }
                return string
            }
            let pairs = try request.request.input(named: names.pair)?.elements()
            for (index, element) in try text.elements().enumerated() {
                let first = try string(element, names.text, index)
                if let pairs {
                    guard index < pairs.count else {
                        throw InferenceError.invalidArgument("input '\(names.pair)' has \(pairs.count) elements but '\(names.text)' has more")
                    }
                    let second = try string(pairs[index], names.pair, index)
                    let (ids, segments) = tokenizer.encodePair(first, second, maxLength: truncate ? limit : Int.max, direction: direction)
                    guard ids.count <= limit else {
                        throw InferenceError.invalidArgument(
                            "inputs '\(names.text)' and '\(names.pair)' element \(index) must have at most \(limit) tokens together, given \(ids.count) (truncate is false)")
                    }
                    rows.append(ids, segments: segments)
                    continue
                }
                let ids = tokenizer.encode(prompt.map { $0 + first } ?? first, maxLength: truncate ? limit : Int.max, direction: direction)
                guard ids.count <= limit else {
                    throw InferenceError.invalidArgument(
                        "input '\(names.text)' element \(index) must have at most \(limit) tokens, given \(ids.count) (truncate is false)")
                }
                rows.append(ids)
            }
            // vocab.txt may hold more entries than the checkpoint's embeddings.
            // The message names the element, never its text or token ids.
            if let bad = (0..<rows.count).first(where: { rows.row($0).contains { Int($0) >= facts.config.vocabularySize } }) {
                throw InferenceError.invalidArgument(
                    "input '\(names.text)' element \(bad) has a token outside the checkpoint's vocabulary of \(facts.config.vocabularySize) (vocab.txt is larger)")
            }
            request.rowTokens = (0..<rows.count).map { rows.row($0).count }
            request.tokenized = rows
        } else if let ids = request.request.input(named: names.ids), ids.shape.count == 2 {
            request.rowTokens = try EncoderModel.checkedIDs(ids, mask: request.request.input(named: names.mask), names: names,
                                                            config: facts.config).rowTokens
            _ = try EncoderModel.checkedTokenTypes(request.request.input(named: names.tokenTypes), ids: ids, names: names, config: facts.config)
        }
    }
}

/// A model's WordPiece tokenizer with its token limit and prompts, for the routes.
struct EncoderTextTokenizer: TextTokenizer {
    let tokenizer: WordPieceTokenizer
    let maxTokens: Int
    let prompts: [String: String]
    func tokens(_ text: String, addSpecialTokens: Bool) -> [TextToken] {
        tokenizer.tokens(text, addSpecialTokens: addSpecialTokens)
    }
    func decode(_ ids: [Int64], skipSpecialTokens: Bool) throws -> String {
        // The message names the position, never the id: ids can spell out the text.
        if let bad = ids.firstIndex(where: { $0 < 0 || $0 >= tokenizer.idCount }) {
            throw InferenceError.invalidArgument("token id at position \(bad) is outside the vocabulary of \(tokenizer.idCount)")
        }
        return tokenizer.decode(ids.map { Int32($0) }, skipSpecialTokens: skipSpecialTokens)
    }
}

/// What sentence-transformers' files beside the checkpoint say:
/// `sentence_bert_config.json`'s `max_seq_length` (texts are cut there, not
/// at the model's positions) and `config_sentence_transformers.json`'s
/// `prompts` and `default_prompt_name`. Both files are optional.
struct SentenceTransformersConfig: Sendable, Equatable {
    var maxSequenceLength: Int?
    var prompts: [String: String] = [:]
    var defaultPromptName: String?

    init(directory: String) throws {
        func json(_ name: String) throws -> [String: Any]? {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: path) else { return nil }
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw InferenceError.invalidArgument("\(path) is not a JSON object")
            }
            return object
        }
        maxSequenceLength = (try json("sentence_bert_config.json")?["max_seq_length"] as? NSNumber)?.intValue
        let config = try json("config_sentence_transformers.json")
        prompts = config?["prompts"] as? [String: String] ?? [:]
        defaultPromptName = config?["default_prompt_name"] as? String
        if let name = defaultPromptName, prompts[name] == nil {
            throw InferenceError.invalidArgument("config_sentence_transformers.json: default_prompt_name '\(name)' is not among its prompts")
        }
    }

    /// The prompt text a request's `prompt_name` (else the default) selects;
    /// none for sentence pairs, which take no prompt.
    func prompt(named parameter: ParameterValue?, pairs: Bool) throws -> String? {
        let name: String?
        switch parameter {
        case nil: name = pairs ? nil : defaultPromptName
        case .string(let value)?:
            guard !pairs else { throw InferenceError.invalidArgument("`prompt_name` cannot be set with dual inputs") }
            name = value
        default: throw InferenceError.invalidArgument("parameter 'prompt_name' must be a string")
        }
        return try name.map { try SentencePrompts.text(named: $0, in: prompts) }
    }
}

/// The config and tokenizer of a model version, read once and shared by the
/// requests' preparation (off the instances), by a fingerprint of its files:
/// a model reloaded from the same directory with new files is read anew.
final class ModelFacts: Sendable {
    struct Facts: Sendable {
        let config: EncoderConfig
        let tokenizer: WordPieceTokenizer?
        let sentenceConfig: SentenceTransformersConfig
        /// The longest token sequence served: the positions, or fewer where
        /// sentence-transformers' max_seq_length says so.
        var maxTokens: Int { min(config.maxPositions, sentenceConfig.maxSequenceLength ?? .max) }
    }
    private let loaded = Mutex<[String: Facts]>([:])

    func facts(for spec: ModelSpec) throws -> Facts {
        let key = "\(spec.versionPath)|\(ModelFiles.fingerprint(spec))"
        if let found = loaded.withLock({ $0[key] }) { return found }
        let directory = spec.versionPath as NSString
        let config = try EncoderConfig(file: directory.appendingPathComponent("config.json"))
        let names = EncoderInputNames(spec)
        let tokenizer = spec.inputs.contains(where: { $0.name == names.text })
            ? try WordPieceTokenizer(vocabularyFile: directory.appendingPathComponent("vocab.txt")) : nil
        let made = Facts(config: config, tokenizer: tokenizer, sentenceConfig: try SentenceTransformersConfig(directory: spec.versionPath))
        loaded.withLock { $0[key] = made }
        return made
    }
}


/// Prepared models by version directory and settings, held weakly: the
/// instances keep theirs alive, and it is freed when the last one goes.
final class PreparedModels: Sendable {
    final class Entry: Sendable {
        let model: EncoderModel
        let encoder: PreparedEncoder
        /// Why the precision was chosen, for the config's parameters.
        let reason: String
        init(_ made: (model: EncoderModel, encoder: PreparedEncoder, reason: String)) { (model, encoder, reason) = made }
    }
    private let entries = SharedCache<Entry>()

    func model(for spec: ModelSpec, make: () throws -> (model: EncoderModel, encoder: PreparedEncoder, reason: String)) throws -> Entry {
        // The key holds everything the prepared model is made from: the spec
        // (a reloaded config prepares anew) and the files (a model reloaded
        // from the same directory with a new checkpoint too).
        try entries.value(for: "\(spec)|\(ModelFiles.fingerprint(spec))") { Entry(try make()) }
    }
}

/// One CPU instance: the shared model and this instance's context.
final class EncoderInstance: ModelInstance, @unchecked Sendable {
    /// Held so the cache's weak reference lives as long as any instance does.
    let shared: PreparedModels.Entry
    var model: EncoderModel { shared.model }
    let forward: EncoderForward
    let threads: Int
    /// Token classification: cuts the text again for the spans' offsets.
    let tokenizer: WordPieceTokenizer?
    let reportedParameters: [String: String]
    private var threadsApplied = false

    init(shared: PreparedModels.Entry, forward: EncoderForward, threads: Int, tokenizer: WordPieceTokenizer?, reported: [String: String]) {
        self.shared = shared
        self.forward = forward
        self.threads = threads
        self.tokenizer = tokenizer
        self.reportedParameters = reported
    }

    /// The forward pass yields between the steps of each layer.
    var yieldsToUrgentWork: Bool { true }

    func execute(_ batch: Batch) throws -> [[Tensor]] {
        if !threadsApplied {
            omp_set_num_threads(Int32(max(threads, 1)))
            threadsApplied = true
        }
        forward.urgentWork = batch.urgentWork
        defer { forward.urgentWork = nil }
        let (packed, rows) = try model.pack(batch)
        switch model.head {
        case .logits: return model.split(try forward.logits(packed), rowsPerItem: rows)
        case .sparseEmbedding: return model.split(try forward.sparseEmbeddings(packed), rowsPerItem: rows)
        case .embedding:
            let states = batch.items.contains { $0.outputs.contains { $0.name == EncoderOutputNames.tokenStates } }
            let (pooled, tokenStates) = try forward.embeddings(packed, tokenStates: states)
            return model.splitEmbeddings(pooled, states: tokenStates, batch: batch, packed: packed)
        case .tokenClassification:
            return try model.splitTokens(try forward.tokenLogits(packed), batch: batch, packed: packed, tokenizer: tokenizer)
        }
    }
}
