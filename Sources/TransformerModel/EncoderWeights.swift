import InferenceCore

/// One transformer layer's parameters, Linear weights as PyTorch stores them:
/// (out, in), row-major.
public struct EncoderLayerWeights: Sendable {
    /// Query, key and value stacked: (3 * hidden, hidden) and (3 * hidden).
    public var qkvWeight: [Float], qkvBias: [Float]
    public var outputWeight: [Float], outputBias: [Float]   // (hidden, hidden)
    public var attentionNormScale: [Float], attentionNormBias: [Float]
    public var ffnInWeight: [Float], ffnInBias: [Float]     // (intermediate, hidden)
    public var ffnOutWeight: [Float], ffnOutBias: [Float]   // (hidden, intermediate)
    public var outputNormScale: [Float], outputNormBias: [Float]
}

/// A sequence classifier on each sequence's first token: DistilBERT's
/// pre_classifier + ReLU or BERT's pooler + tanh, then the classifier.
public struct SequenceClassifier: Sendable {
    public enum Activation: Sendable { case relu, tanh }
    public var preWeight: [Float], preBias: [Float]   // (hidden, hidden)
    public var weight: [Float], bias: [Float]         // (labels, hidden)
    public var activation: Activation
}

/// A masked-language-model head (what SPLADE reads): dense + GELU +
/// LayerNorm, then the decoder onto the vocabulary (the word embeddings
/// where the checkpoint ties them).
public struct MaskedLanguageHead: Sendable {
    public var transformWeight: [Float], transformBias: [Float]   // (hidden, hidden)
    public var normScale: [Float], normBias: [Float]
    public var decoderWeight: [Float], decoderBias: [Float]       // (vocabulary, hidden)
}

/// Every parameter of a DistilBERT or BERT encoder, read by name from a
/// safetensors checkpoint and checked for shape; the same layer code runs both.
public struct EncoderWeights: Sendable {
    public var wordEmbeddings: [Float]        // (vocabulary, hidden)
    public var positionEmbeddings: [Float]    // (maxPositions, hidden)
    /// BERT only: the token type (segment) embeddings, (types, hidden).
    public var tokenTypeEmbedding: [Float]?
    public var embeddingNormScale: [Float], embeddingNormBias: [Float]
    public var layers: [EncoderLayerWeights]
    /// `…ForSequenceClassification` (cross-encoders included).
    public var classifier: SequenceClassifier?
    /// `…ForTokenClassification`: one Linear on every token's state, (labels, hidden) and (labels).
    public var tokenClassifier: (weight: [Float], bias: [Float])?
    /// `…ForMaskedLM`: SPLADE's sparse vectors are read from its logits.
    public var maskedLanguageHead: MaskedLanguageHead?

    /// Weights given directly (tests build small random models with it).
    init(wordEmbeddings: [Float], positionEmbeddings: [Float], tokenTypeEmbedding: [Float]?, embeddingNormScale: [Float],
         embeddingNormBias: [Float], layers: [EncoderLayerWeights],
         classifier: SequenceClassifier?,
         tokenClassifier: (weight: [Float], bias: [Float])? = nil, maskedLanguageHead: MaskedLanguageHead? = nil) {
        self.wordEmbeddings = wordEmbeddings
        self.positionEmbeddings = positionEmbeddings
        self.tokenTypeEmbedding = tokenTypeEmbedding
        self.embeddingNormScale = embeddingNormScale
        self.embeddingNormBias = embeddingNormBias
        self.layers = layers
        self.classifier = classifier
        self.tokenClassifier = tokenClassifier
        self.maskedLanguageHead = maskedLanguageHead
    }

    public init(file: SafeTensorsFile, config: EncoderConfig) throws {
        let h = config.hidden, f = config.intermediate
        switch config.family {
        case .distilbert:
            let p = file.contains("distilbert.embeddings.word_embeddings.weight") ? "distilbert." : ""
            wordEmbeddings = try file.floats("\(p)embeddings.word_embeddings.weight", shape: [config.vocabularySize, h])
            positionEmbeddings = try file.floats("\(p)embeddings.position_embeddings.weight", shape: [config.maxPositions, h])
            tokenTypeEmbedding = nil
            embeddingNormScale = try file.floats("\(p)embeddings.LayerNorm.weight", shape: [h])
            embeddingNormBias = try file.floats("\(p)embeddings.LayerNorm.bias", shape: [h])
            layers = try (0..<config.layers).map { i in
                let l = "\(p)transformer.layer.\(i)."
                return EncoderLayerWeights(
                    qkvWeight: try ["q_lin", "k_lin", "v_lin"].flatMap { try file.floats("\(l)attention.\($0).weight", shape: [h, h]) },
                    qkvBias: try ["q_lin", "k_lin", "v_lin"].flatMap { try file.floats("\(l)attention.\($0).bias", shape: [h]) },
                    outputWeight: try file.floats("\(l)attention.out_lin.weight", shape: [h, h]),
                    outputBias: try file.floats("\(l)attention.out_lin.bias", shape: [h]),
                    attentionNormScale: try file.floats("\(l)sa_layer_norm.weight", shape: [h]),
                    attentionNormBias: try file.floats("\(l)sa_layer_norm.bias", shape: [h]),
                    ffnInWeight: try file.floats("\(l)ffn.lin1.weight", shape: [f, h]),
                    ffnInBias: try file.floats("\(l)ffn.lin1.bias", shape: [f]),
                    ffnOutWeight: try file.floats("\(l)ffn.lin2.weight", shape: [h, f]),
                    ffnOutBias: try file.floats("\(l)ffn.lin2.bias", shape: [h]),
                    outputNormScale: try file.floats("\(l)output_layer_norm.weight", shape: [h]),
                    outputNormBias: try file.floats("\(l)output_layer_norm.bias", shape: [h]))
            }
            if file.contains("pre_classifier.weight") {
                let labels = max(config.labels.count, file.entries["classifier.weight"]?.shape.first ?? 0)
                classifier = SequenceClassifier(
                    preWeight: try file.floats("pre_classifier.weight", shape: [h, h]), preBias: try file.floats("pre_classifier.bias", shape: [h]),
                    weight: try file.floats("classifier.weight", shape: [labels, h]), bias: try file.floats("classifier.bias", shape: [labels]),
                    activation: .relu)
            } else {
                classifier = nil
            }
            tokenClassifier = try Self.tokenHead(file, config: config, whenAbsent: "pre_classifier.weight")
            maskedLanguageHead = try Self.languageHead(file, config: config, words: wordEmbeddings,
                                                       names: ("vocab_transform", "vocab_layer_norm", "vocab_projector.weight", "vocab_projector.bias"))
        case .bert:
            let p = file.contains("bert.embeddings.word_embeddings.weight") ? "bert." : ""
            wordEmbeddings = try file.floats("\(p)embeddings.word_embeddings.weight", shape: [config.vocabularySize, h])
            positionEmbeddings = try file.floats("\(p)embeddings.position_embeddings.weight", shape: [config.maxPositions, h])
            tokenTypeEmbedding = try file.floats("\(p)embeddings.token_type_embeddings.weight", shape: [config.typeVocabularySize, h])
            embeddingNormScale = try file.floats("\(p)embeddings.LayerNorm.weight", shape: [h])
            embeddingNormBias = try file.floats("\(p)embeddings.LayerNorm.bias", shape: [h])
            layers = try (0..<config.layers).map { i in
                let l = "\(p)encoder.layer.\(i)."
                return EncoderLayerWeights(
                    qkvWeight: try ["query", "key", "value"].flatMap { try file.floats("\(l)attention.self.\($0).weight", shape: [h, h]) },
                    qkvBias: try ["query", "key", "value"].flatMap { try file.floats("\(l)attention.self.\($0).bias", shape: [h]) },
                    outputWeight: try file.floats("\(l)attention.output.dense.weight", shape: [h, h]),
                    outputBias: try file.floats("\(l)attention.output.dense.bias", shape: [h]),
                    attentionNormScale: try file.floats("\(l)attention.output.LayerNorm.weight", shape: [h]),
                    attentionNormBias: try file.floats("\(l)attention.output.LayerNorm.bias", shape: [h]),
                    ffnInWeight: try file.floats("\(l)intermediate.dense.weight", shape: [f, h]),
                    ffnInBias: try file.floats("\(l)intermediate.dense.bias", shape: [f]),
                    ffnOutWeight: try file.floats("\(l)output.dense.weight", shape: [h, f]),
                    ffnOutBias: try file.floats("\(l)output.dense.bias", shape: [h]),
                    outputNormScale: try file.floats("\(l)output.LayerNorm.weight", shape: [h]),
                    outputNormBias: try file.floats("\(l)output.LayerNorm.bias", shape: [h]))
            }
            if file.contains("\(p)pooler.dense.weight"), file.contains("classifier.weight") {
                let labels = max(config.labels.count, file.entries["classifier.weight"]?.shape.first ?? 0)
                classifier = SequenceClassifier(
                    preWeight: try file.floats("\(p)pooler.dense.weight", shape: [h, h]), preBias: try file.floats("\(p)pooler.dense.bias", shape: [h]),
                    weight: try file.floats("classifier.weight", shape: [labels, h]), bias: try file.floats("classifier.bias", shape: [labels]),
                    activation: .tanh)
            } else {
                classifier = nil
            }
            tokenClassifier = try Self.tokenHead(file, config: config, whenAbsent: "\(p)pooler.dense.weight")
            maskedLanguageHead = try Self.languageHead(file, config: config, words: wordEmbeddings,
                                                       names: ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm",
                                                               "cls.predictions.decoder.weight", "cls.predictions.bias"))
        }
    }

    /// A masked-language-model head under `names` (transform, its norm,
    /// decoder weight, decoder bias); a decoder the checkpoint omits is tied
    /// to the word embeddings, as `save_pretrained` leaves it.
    static func languageHead(_ file: SafeTensorsFile, config: EncoderConfig, words: [Float],
                             names: (transform: String, norm: String, decoder: String, bias: String)) throws -> MaskedLanguageHead? {
        let h = config.hidden, v = config.vocabularySize
        guard file.contains("\(names.transform).weight") else { return nil }
        return MaskedLanguageHead(
            transformWeight: try file.floats("\(names.transform).weight", shape: [h, h]),
            transformBias: try file.floats("\(names.transform).bias", shape: [h]),
            normScale: try file.floats("\(names.norm).weight", shape: [h]), normBias: try file.floats("\(names.norm).bias", shape: [h]),
            decoderWeight: file.contains(names.decoder) ? try file.floats(names.decoder, shape: [v, h]) : words,
            decoderBias: try file.floats(file.contains(names.bias) ? names.bias : names.decoder.replacingOccurrences(of: "weight", with: "bias"),
                                         shape: [v]))
    }

    /// A token-classification head: `classifier` directly on the encoder's
    /// states. A sequence classifier's `classifier` follows DistilBERT's
    /// pre_classifier or BERT's pooler, whose presence rules this reading out.
    static func tokenHead(_ file: SafeTensorsFile, config: EncoderConfig, whenAbsent other: String) throws -> (weight: [Float], bias: [Float])? {
        guard file.contains("classifier.weight"), !file.contains(other) else { return nil }
        let labels = file.entries["classifier.weight"]?.shape.first ?? 0
        return (try file.floats("classifier.weight", shape: [labels, config.hidden]), try file.floats("classifier.bias", shape: [labels]))
    }
}
