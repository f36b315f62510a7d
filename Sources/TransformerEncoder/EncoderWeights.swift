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

/// Every parameter of a DistilBERT or BERT encoder, read by name from a
/// safetensors checkpoint and checked for shape; the same layer code runs both.
public struct EncoderWeights: Sendable {
    public var wordEmbeddings: [Float]        // (vocabulary, hidden)
    public var positionEmbeddings: [Float]    // (maxPositions, hidden)
    /// BERT only: the embedding of token type 0, (hidden).
    public var tokenTypeEmbedding: [Float]?
    public var embeddingNormScale: [Float], embeddingNormBias: [Float]
    public var layers: [EncoderLayerWeights]
    /// DistilBERT sequence classification: pre_classifier (hidden, hidden) + ReLU, classifier (labels, hidden).
    public var classifier: (preWeight: [Float], preBias: [Float], weight: [Float], bias: [Float])?
    /// `…ForTokenClassification`: one Linear on every token's state, (labels, hidden) and (labels).
    public var tokenClassifier: (weight: [Float], bias: [Float])?

    /// Weights given directly (tests build small random models with it).
    init(wordEmbeddings: [Float], positionEmbeddings: [Float], tokenTypeEmbedding: [Float]?, embeddingNormScale: [Float],
         embeddingNormBias: [Float], layers: [EncoderLayerWeights],
         classifier: (preWeight: [Float], preBias: [Float], weight: [Float], bias: [Float])?,
         tokenClassifier: (weight: [Float], bias: [Float])? = nil) {
        self.wordEmbeddings = wordEmbeddings
        self.positionEmbeddings = positionEmbeddings
        self.tokenTypeEmbedding = tokenTypeEmbedding
        self.embeddingNormScale = embeddingNormScale
        self.embeddingNormBias = embeddingNormBias
        self.layers = layers
        self.classifier = classifier
        self.tokenClassifier = tokenClassifier
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
                classifier = (try file.floats("pre_classifier.weight", shape: [h, h]), try file.floats("pre_classifier.bias", shape: [h]),
                              try file.floats("classifier.weight", shape: [labels, h]), try file.floats("classifier.bias", shape: [labels]))
            } else {
                classifier = nil
            }
            tokenClassifier = try Self.tokenHead(file, config: config, whenAbsent: "pre_classifier.weight")
        case .bert:
            let p = file.contains("bert.embeddings.word_embeddings.weight") ? "bert." : ""
            wordEmbeddings = try file.floats("\(p)embeddings.word_embeddings.weight", shape: [config.vocabularySize, h])
            positionEmbeddings = try file.floats("\(p)embeddings.position_embeddings.weight", shape: [config.maxPositions, h])
            tokenTypeEmbedding = Array(try file.floats("\(p)embeddings.token_type_embeddings.weight",
                                                       shape: [config.typeVocabularySize, h]).prefix(h))
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
            classifier = nil
            tokenClassifier = try Self.tokenHead(file, config: config, whenAbsent: "\(p)pooler.dense.weight")
        }
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
