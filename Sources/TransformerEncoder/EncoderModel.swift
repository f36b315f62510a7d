import Foundation
import InferenceCore

/// Input tensor names of an encoder model, configurable with the parameters
/// `input_ids_tensor`, `attention_mask_tensor` and `text_tensor`.
public struct EncoderInputNames: Sendable {
    public var ids = "INPUT_IDS", mask = "ATTENTION_MASK", text = "TEXT"

    public init(_ spec: ModelSpec) {
        ids = spec.parameters["input_ids_tensor"] ?? ids
        mask = spec.parameters["attention_mask_tensor"] ?? mask
        text = spec.parameters["text_tensor"] ?? text
    }
}

/// What every encoder instance needs whichever device runs it: the checkpoint's
/// architecture from the version directory, and the conversions between a
/// batch of requests and packed sequences. (Text is tokenized before queuing,
/// by `EncoderBackend.prepare`.)
public struct EncoderModel: Sendable {
    public enum Head: Sendable { case logits, embedding, tokenClassification }

    public let spec: ModelSpec
    public let names: EncoderInputNames
    public let config: EncoderConfig
    public let head: Head
    public let outputName: String
    /// Values per row of the output: labels or hidden size.
    public let outputWidth: Int
    /// The checkpoint has BERT's token-type embedding.
    public let hasTokenTypeEmbedding: Bool
    /// `task: token_classification`: the labels and how they merge into spans.
    public let tokenHead: TokenClassificationHead?

    /// Loads `config.json` and `model.safetensors`
    /// from the spec's version directory and checks the output against them.
    public init(spec: ModelSpec) throws {
        let config = try EncoderConfig(file: (spec.versionPath as NSString).appendingPathComponent("config.json"))
        try self.init(spec: spec, config: config, weights: Self.loadWeights(spec: spec, config: config))
    }

    /// The model and its checkpoint's float32 weights, read once, for an
    /// engine to convert into its own layout (the caller drops them after).
    public static func load(spec: ModelSpec) throws -> (model: EncoderModel, weights: EncoderWeights) {
        let config = try EncoderConfig(file: (spec.versionPath as NSString).appendingPathComponent("config.json"))
        let weights = try loadWeights(spec: spec, config: config)
        return (try EncoderModel(spec: spec, config: config, weights: weights), weights)
    }

    private init(spec: ModelSpec, config: EncoderConfig, weights: EncoderWeights) throws {
        self.spec = spec
        self.config = config
        let names = EncoderInputNames(spec)
        self.names = names
        hasTokenTypeEmbedding = weights.tokenTypeEmbedding != nil
        outputName = spec.outputs[0].name
        if spec.parameters["task"] == TokenClassificationHead.task {
            head = .tokenClassification
            guard let labels = weights.tokenClassifier?.bias.count else {
                throw InferenceError.invalidArgument(
                    "model '\(spec.name)': task '\(TokenClassificationHead.task)' needs a token classification checkpoint (classifier on the encoder's states)")
            }
            guard config.labels.count == labels else {
                throw InferenceError.invalidArgument(
                    "model '\(spec.name)': config.json's id2label names \(config.labels.count) labels but the checkpoint's classifier has \(labels)")
            }
            try TokenClassificationHead.validateOutputs(spec, labels: labels)
            tokenHead = TokenClassificationHead(labels: config.labels)
            outputWidth = labels
            return
        }
        tokenHead = nil
        outputWidth = spec.outputs[0].dims[0]
        if outputName == "LOGITS" {
            head = .logits
            guard let labels = weights.classifier?.bias.count else {
                throw InferenceError.invalidArgument("model '\(spec.name)': output LOGITS needs a classification checkpoint (pre_classifier, classifier)")
            }
            guard outputWidth == labels else {
                throw InferenceError.invalidArgument("model '\(spec.name)': output LOGITS has dims [\(outputWidth)] but the checkpoint has \(labels) labels")
            }
        } else {
            head = .embedding
            guard outputWidth == config.hidden else {
                throw InferenceError.invalidArgument("model '\(spec.name)': output EMBEDDING has dims [\(outputWidth)] but the checkpoint's hidden size is \(config.hidden)")
            }
        }
    }

    static func loadWeights(spec: ModelSpec, config: EncoderConfig) throws -> EncoderWeights {
        let file = try SafeTensorsFile(path: (spec.versionPath as NSString).appendingPathComponent("model.safetensors"))
        return try EncoderWeights(file: file, config: config)
    }

    /// Every row of every request in the batch, packed without padding, and the
    /// number of rows each request contributed.
    public func pack(_ batch: Batch) throws -> (sequences: PackedSequences, rowsPerItem: [Int]) {
        var packed = PackedSequences()
        var rows: [Int] = []
        for item in batch.items {
            try pack(item, into: &packed)
            rows.append(item.batchSize)
        }
        return (packed, rows)
    }

    /// Splits (sequences, outputWidth) values back into one output tensor per request.
    public func split(_ values: [Float], rowsPerItem: [Int]) -> [[Tensor]] {
        var offset = 0
        return rowsPerItem.map { rows in
            defer { offset += rows * outputWidth }
            return [Tensor(name: outputName, shape: [rows, outputWidth], values: Array(values[offset..<(offset + rows * outputWidth)]))]
        }
    }

    /// One request's rows, checked by the backend's `prepare` before it was
    /// queued: TEXT arrives tokenized, INPUT_IDS are checked again here (a
    /// cheap pass) because the engines index embeddings by them.
    private func pack(_ item: ValidatedRequest, into packed: inout PackedSequences) throws {
        let request = item.request
        if let tokens = item.tokenized {
            for row in 0..<tokens.count { packed.append(tokens: tokens.row(row)) }
            return
        }
        guard request.input(named: names.text) == nil else {
            throw InferenceError.internal("model '\(spec.name)': input '\(names.text)' reached the instance untokenized")
        }
        guard let ids = request.input(named: names.ids) else {
            throw InferenceError.invalidArgument("model '\(spec.name)' needs input '\(names.ids)' or '\(names.text)'")
        }
        let (values, maskValues, _) = try Self.checkedIDs(ids, mask: request.input(named: names.mask), names: names, config: config)
        let rows = ids.shape[0], length = ids.shape[1]
        for row in 0..<rows {
            let slice = values[(row * length)..<((row + 1) * length)]
            packed.append(ids: slice, mask: maskValues.map { $0[(row * length)..<((row + 1) * length)] })
        }
    }

    /// INPUT_IDS (and ATTENTION_MASK) checked against the model: shapes agree,
    /// rows are non-empty and within the positions, ids within the
    /// vocabulary, no row masks every token. Returns the values and the
    /// tokens each row keeps.
    static func checkedIDs(_ ids: Tensor, mask: Tensor?, names: EncoderInputNames, config: EncoderConfig)
        throws -> (ids: [Int64], mask: [Int64]?, rowTokens: [Int]) {
        if let mask, mask.shape != ids.shape {
            throw InferenceError.invalidArgument(
                "input '\(names.mask)' has shape \(ShapeMath.format(mask.shape)) but '\(names.ids)' has \(ShapeMath.format(ids.shape))")
        }
        let rows = ids.shape[0], length = ids.shape[1]
        guard length > 0 else { throw InferenceError.invalidArgument("input '\(names.ids)' is empty") }
        guard length <= config.maxPositions else {
            throw InferenceError.invalidArgument("input '\(names.ids)' length \(length) exceeds the model's \(config.maxPositions) positions")
        }
        let values = try ids.values(as: Int64.self)
        let vocabulary = Int64(config.vocabularySize)
        if values.contains(where: { $0 < 0 || $0 >= vocabulary }) {
            throw InferenceError.invalidArgument("input '\(names.ids)' holds a token id outside the vocabulary of \(vocabulary)")
        }
        let maskValues = try mask?.values(as: Int64.self)
        let rowTokens = (0..<rows).map { row in
            maskValues.map { $0[(row * length)..<((row + 1) * length)].reduce(0) { $0 + ($1 != 0 ? 1 : 0) } } ?? length
        }
        if let row = rowTokens.firstIndex(of: 0) {
            throw InferenceError.invalidArgument("input '\(names.mask)' row \(row) masks every token")
        }
        return (values, maskValues, rowTokens)
    }
}
