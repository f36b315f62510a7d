import Foundation
import InferenceCore

/// Input tensor names of an encoder model, configurable with the parameters
/// `input_ids_tensor`, `attention_mask_tensor`, `token_type_ids_tensor`,
/// `text_tensor` and `text_pair_tensor`.
public struct EncoderInputNames: Sendable {
    public var ids = "INPUT_IDS", mask = "ATTENTION_MASK", tokenTypes = "TOKEN_TYPE_IDS"
    public var text = "TEXT", pair = "TEXT_PAIR"

    public init(_ spec: ModelSpec) {
        ids = spec.parameters["input_ids_tensor"] ?? ids
        mask = spec.parameters["attention_mask_tensor"] ?? mask
        tokenTypes = spec.parameters["token_type_ids_tensor"] ?? tokenTypes
        text = spec.parameters["text_tensor"] ?? text
        pair = spec.parameters["text_pair_tensor"] ?? pair
    }
}

/// Output tensor names of an encoder model.
public enum EncoderOutputNames {
    public static let logits = "LOGITS", embedding = "EMBEDDING", sparseEmbedding = "SPARSE_EMBEDDING"
    /// Every token's final state, (rows, longest row, hidden), zero past each row's end.
    public static let tokenStates = "LAST_HIDDEN_STATE"
}

/// What every encoder instance needs whichever device runs it: the checkpoint's
/// architecture from the version directory, and the conversions between a
/// batch of requests and packed sequences. (Text is tokenized before queuing,
/// by `EncoderBackend.prepare`.)
public struct EncoderModel: Sendable {
    public enum Head: Sendable { case logits, embedding, tokenClassification, sparseEmbedding }

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
        outputWidth = spec.outputs[0].dims.last ?? 0
        switch outputName {
        case EncoderOutputNames.logits:
            head = .logits
            guard let labels = weights.classifier?.bias.count else {
                throw InferenceError.invalidArgument(
                    "model '\(spec.name)': output LOGITS needs a sequence classification checkpoint (pre_classifier or pooler, classifier)")
            }
            guard outputWidth == labels else {
                throw InferenceError.invalidArgument("model '\(spec.name)': output LOGITS has dims [\(outputWidth)] but the checkpoint has \(labels) labels")
            }
        case EncoderOutputNames.sparseEmbedding:
            head = .sparseEmbedding
            guard let vocabulary = weights.maskedLanguageHead?.decoderBias.count else {
                throw InferenceError.invalidArgument(
                    "model '\(spec.name)': output SPARSE_EMBEDDING needs a masked-language-model checkpoint (cls.predictions or vocab_transform)")
            }
            guard outputWidth == vocabulary else {
                throw InferenceError.invalidArgument(
                    "model '\(spec.name)': output SPARSE_EMBEDDING has dims [\(outputWidth)] but the checkpoint's vocabulary is \(vocabulary)")
            }
        default:
            head = .embedding
            guard spec.outputs.allSatisfy({ $0.dims.last == config.hidden }) else {
                throw InferenceError.invalidArgument(
                    "model '\(spec.name)': outputs EMBEDDING and LAST_HIDDEN_STATE must end in the checkpoint's hidden size \(config.hidden)")
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
            for row in 0..<tokens.count { packed.append(tokens: tokens.row(row), segments: tokens.rowSegments(row)) }
            return
        }
        guard request.input(named: names.text) == nil else {
            throw InferenceError.internal("model '\(spec.name)': input '\(names.text)' reached the instance untokenized")
        }
        guard let ids = request.input(named: names.ids) else {
            throw InferenceError.invalidArgument("model '\(spec.name)' needs input '\(names.ids)' or '\(names.text)'")
        }
        let (values, maskValues, _) = try Self.checkedIDs(ids, mask: request.input(named: names.mask), names: names, config: config)
        let types = try Self.checkedTokenTypes(request.input(named: names.tokenTypes), ids: ids, names: names, config: config)
        let rows = ids.shape[0], length = ids.shape[1]
        for row in 0..<rows {
            let span = (row * length)..<((row + 1) * length)
            packed.append(ids: values[span], mask: maskValues.map { $0[span] }, segments: types.map { $0[span] })
        }
    }

    /// TOKEN_TYPE_IDS: the shape of INPUT_IDS, each id one of the checkpoint's
    /// token types (DistilBERT has none: only 0).
    public static func checkedTokenTypes(_ types: Tensor?, ids: Tensor, names: EncoderInputNames, config: EncoderConfig) throws -> [Int64]? {
        guard let types else { return nil }
        guard types.shape == ids.shape else {
            throw InferenceError.invalidArgument(
                "input '\(names.tokenTypes)' has shape \(ShapeMath.format(types.shape)) but '\(names.ids)' has \(ShapeMath.format(ids.shape))")
        }
        let values = try types.values(as: Int64.self)
        let limit = Int64(max(config.typeVocabularySize, 1))
        if values.contains(where: { $0 < 0 || $0 >= limit }) {
            throw InferenceError.invalidArgument("input '\(names.tokenTypes)' holds a token type outside 0..<\(limit)")
        }
        return values
    }

    /// The embedding outputs of each request: EMBEDDING (the pooled rows,
    /// L2-normalized unless the request's parameter `normalize` is false) and
    /// LAST_HIDDEN_STATE (each row's token states, zero-padded to the
    /// request's longest row), whichever the request asked for.
    public func splitEmbeddings(_ pooled: [Float], states: [Float]?, batch: Batch, packed: PackedSequences) -> [[Tensor]] {
        let h = config.hidden
        var sequence = 0
        return batch.items.map { item in
            defer { sequence += item.batchSize }
            let rows = sequence..<(sequence + item.batchSize)
            var tensors: [Tensor] = []
            if item.outputs.contains(where: { $0.name == EncoderOutputNames.embedding }) {
                let normalize = item.request.parameters["normalize"] != .bool(false)
                var values = Array(pooled[(rows.lowerBound * h)..<(rows.upperBound * h)])
                if normalize {
                    for r in 0..<rows.count {
                        var norm: Double = 0
                        for i in 0..<h { norm += Double(values[r * h + i]) * Double(values[r * h + i]) }
                        let inverse = Float(1 / max(norm.squareRoot(), 1e-12))
                        for i in 0..<h { values[r * h + i] *= inverse }
                    }
                }
                tensors.append(Tensor(name: EncoderOutputNames.embedding, shape: [rows.count, h], values: values))
            }
            if let states, item.outputs.contains(where: { $0.name == EncoderOutputNames.tokenStates }) {
                let longest = rows.map { packed.starts[$0 + 1] - packed.starts[$0] }.max() ?? 0
                var values = [Float](repeating: 0, count: rows.count * longest * h)
                for (r, s) in rows.enumerated() {
                    let first = packed.starts[s], count = packed.starts[s + 1] - first
                    values.replaceSubrange((r * longest * h)..<((r * longest + count) * h), with: states[(first * h)..<((first + count) * h)])
                }
                tensors.append(Tensor(name: EncoderOutputNames.tokenStates, shape: [rows.count, longest, h], values: values))
            }
            return tensors
        }
    }

    /// INPUT_IDS (and ATTENTION_MASK) checked against the model: shapes agree,
    /// rows are non-empty and within the positions, ids within the
    /// vocabulary, no row masks every token. Returns the values and the
    /// tokens each row keeps.
    public static func checkedIDs(_ ids: Tensor, mask: Tensor?, names: EncoderInputNames, config: EncoderConfig)
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
