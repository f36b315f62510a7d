import CDNNL
import CEncoderKernels
import Foundation
import InferenceCore
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
            case names.ids, names.mask:
                guard input.dataType == .int64, input.dims == [-1] else {
                    throw InferenceError.invalidArgument("model '\(spec.name)': input '\(input.name)' must be TYPE_INT64 with dims [ -1 ]")
                }
            case names.text:
                guard input.dataType == .bytes, input.dims == [1] else {
                    throw InferenceError.invalidArgument("model '\(spec.name)': input '\(input.name)' must be TYPE_STRING with dims [ 1 ]")
                }
            default:
                throw InferenceError.invalidArgument(
                    "model '\(spec.name)': backend '\(name)' does not know input '\(input.name)' (expected \(names.ids), \(names.mask) or \(names.text))")
            }
        }
        guard spec.inputs.contains(where: { $0.name == names.ids || $0.name == names.text }) else {
            throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(name)' needs input '\(names.ids)' or '\(names.text)'")
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
            guard spec.outputs.count == 1, let output = spec.outputs.first, ["LOGITS", "EMBEDDING"].contains(output.name),
                  output.dataType == .fp32, output.dims.count == 1 else {
                throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(name)' has one output, LOGITS or EMBEDDING, TYPE_FP32 with one dim")
            }
        }
        if let requested = spec.parameters["precision"], !["auto", "fp32", "bf16", "int8"].contains(requested) {
            throw InferenceError.invalidArgument("model '\(spec.name)': parameters.precision must be auto, fp32, bf16 or int8, got '\(requested)'")
        }
        if let tokens = spec.dynamicBatching?.maxBatchTokens, tokens < 1 {
            throw InferenceError.invalidArgument("model '\(spec.name)': max_batch_tokens must be at least 1, got \(tokens)")
        }
        try accelerator?.validate(spec)
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
        return facts.tokenizer.map { EncoderTextTokenizer(tokenizer: $0, maxTokens: facts.config.maxPositions) }
    }

    public func prepare(_ request: inout ValidatedRequest, spec: ModelSpec) throws {
        let names = EncoderInputNames(spec)
        let facts = try modelFacts.facts(for: spec)
        if let text = request.request.input(named: names.text) {
            guard let tokenizer = facts.tokenizer else { throw InferenceError.internal("model '\(spec.name)' has no tokenizer") }
            var rows = TokenRows()
            // Parameter `truncate: false` (the TEI and OpenAI routes send it)
            // refuses a text longer than the model instead of cutting it.
            let truncate = request.request.parameters["truncate"] != .bool(false)
            let limit = facts.config.maxPositions
            for (index, element) in try text.elements().enumerated() {
                guard let string = String(validating: element, as: UTF8.self) else {
                    throw InferenceError.invalidArgument("input '\(names.text)' element \(index) is not valid UTF-8")
                }
                guard !string.isEmpty else {
                    throw InferenceError.invalidArgument("input '\(names.text)' element \(index) is empty")
                }
                let ids = tokenizer.encode(string, maxLength: truncate ? limit : Int.max)
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
        }
    }
}

/// What one model version's files say, by a fingerprint of those files: a
/// model reloaded from the same directory with new files is read anew.
enum ModelFiles {
    static func fingerprint(_ spec: ModelSpec) -> String {
        let directory = spec.versionPath as NSString
        return ["config.json", "model.safetensors", "vocab.txt"].map { name in
            let attributes = try? FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent(name))
            return "\((attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0):\(attributes?[.size] ?? 0)"
        }.joined(separator: ",")
    }
}

/// A model's WordPiece tokenizer with its position limit, for the routes.
struct EncoderTextTokenizer: TextTokenizer {
    let tokenizer: WordPieceTokenizer
    let maxTokens: Int
    func tokens(_ text: String, addSpecialTokens: Bool) -> [TextToken] {
        tokenizer.tokens(text, addSpecialTokens: addSpecialTokens)
    }
}

/// The config and tokenizer of a model version, read once and shared by the
/// requests' preparation (off the instances).
final class ModelFacts: Sendable {
    struct Facts: Sendable { let config: EncoderConfig; let tokenizer: WordPieceTokenizer? }
    private let loaded = Mutex<[String: Facts]>([:])

    func facts(for spec: ModelSpec) throws -> Facts {
        let key = "\(spec.versionPath)|\(ModelFiles.fingerprint(spec))"
        if let found = loaded.withLock({ $0[key] }) { return found }
        let directory = spec.versionPath as NSString
        let config = try EncoderConfig(file: directory.appendingPathComponent("config.json"))
        let names = EncoderInputNames(spec)
        let tokenizer = spec.inputs.contains(where: { $0.name == names.text })
            ? try WordPieceTokenizer(vocabularyFile: directory.appendingPathComponent("vocab.txt")) : nil
        let made = Facts(config: config, tokenizer: tokenizer)
        loaded.withLock { $0[key] = made }
        return made
    }
}

/// Makes encoder instances on an accelerator. Returns nil for an instance it
/// does not claim, which then runs on the CPU.
public protocol EncoderAccelerator: Sendable {
    func validate(_ spec: ModelSpec) throws
    func makeInstance(for spec: ModelSpec, index: Int) throws -> (any ModelInstance)?
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
    private struct Weak: @unchecked Sendable { weak var entry: Entry? }
    private let entries = Mutex<[String: Weak]>([:])

    func model(for spec: ModelSpec, make: () throws -> (model: EncoderModel, encoder: PreparedEncoder, reason: String)) throws -> Entry {
        // The key holds everything the prepared model is made from: the spec
        // (a reloaded config prepares anew) and the files (a model reloaded
        // from the same directory with a new checkpoint too).
        let key = "\(spec)|\(ModelFiles.fingerprint(spec))"
        if let existing = entries.withLock({ $0[key]?.entry }) { return existing }
        let made = Entry(try make())
        entries.withLock { entries in
            entries = entries.filter { $0.value.entry != nil }
            entries[key] = Weak(entry: made)
        }
        return made
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

    func execute(_ batch: Batch) throws -> [[Tensor]] {
        if !threadsApplied {
            omp_set_num_threads(Int32(max(threads, 1)))
            threadsApplied = true
        }
        let (packed, rows) = try model.pack(batch)
        switch model.head {
        case .logits: return model.split(try forward.logits(packed), rowsPerItem: rows)
        case .embedding: return model.split(try forward.embeddings(packed), rowsPerItem: rows)
        case .tokenClassification:
            return try model.splitTokens(try forward.tokenLogits(packed), batch: batch, packed: packed, tokenizer: tokenizer)
        }
    }
}
