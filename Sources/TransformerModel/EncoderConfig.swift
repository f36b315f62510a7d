import Foundation
import InferenceCore

/// The architecture of a DistilBERT or BERT checkpoint, from its Hugging Face
/// `config.json`.
public struct EncoderConfig: Sendable, Equatable {
    public enum Family: String, Sendable { case distilbert, bert }

    public var family: Family
    public var hidden: Int
    public var layers: Int
    public var heads: Int
    public var intermediate: Int
    public var vocabularySize: Int
    public var maxPositions: Int
    public var typeVocabularySize: Int
    public var layerNormEpsilon: Float
    /// Class names in id order (from `id2label`); empty for embedding models.
    public var labels: [String]

    public var headDimension: Int { hidden / heads }

    public init(family: Family, hidden: Int, layers: Int, heads: Int, intermediate: Int, vocabularySize: Int,
                maxPositions: Int, typeVocabularySize: Int = 0, layerNormEpsilon: Float = 1e-12, labels: [String] = []) {
        self.family = family
        self.hidden = hidden
        self.layers = layers
        self.heads = heads
        self.intermediate = intermediate
        self.vocabularySize = vocabularySize
        self.maxPositions = maxPositions
        self.typeVocabularySize = typeVocabularySize
        self.layerNormEpsilon = layerNormEpsilon
        self.labels = labels
    }

    public init(file path: String) throws {
        guard let data = FileManager.default.contents(atPath: path),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw InferenceError.invalidArgument("cannot read model config \(path)")
        }
        func int(_ keys: String...) throws -> Int {
            for key in keys { if let value = json[key] as? NSNumber { return value.intValue } }
            throw InferenceError.invalidArgument("\(path): missing '\(keys[0])'")
        }
        guard let type = json["model_type"] as? String, let family = Family(rawValue: type) else {
            throw InferenceError.invalidArgument("\(path): model_type must be 'distilbert' or 'bert', got '\(json["model_type"] ?? "nothing")'")
        }
        let activation = (json["activation"] ?? json["hidden_act"]) as? String ?? "gelu"
        guard activation == "gelu" else {
            throw InferenceError.invalidArgument("\(path): activation '\(activation)' is not supported (gelu only)")
        }
        var labels: [String] = []
        if let id2label = json["id2label"] as? [String: String] {
            labels = id2label.compactMap { key, value in Int(key).map { ($0, value) } }.sorted { $0.0 < $1.0 }.map(\.1)
        }
        self.init(
            family: family,
            hidden: try int("dim", "hidden_size"),
            layers: try int("n_layers", "num_hidden_layers"),
            heads: try int("n_heads", "num_attention_heads"),
            intermediate: try int("hidden_dim", "intermediate_size"),
            vocabularySize: try int("vocab_size"),
            maxPositions: try int("max_position_embeddings"),
            typeVocabularySize: family == .bert ? (try? int("type_vocab_size")) ?? 2 : 0,
            layerNormEpsilon: Float((json["layer_norm_eps"] as? NSNumber)?.doubleValue ?? 1e-12),
            labels: labels)
        guard hidden > 0, heads > 0, hidden % heads == 0, layers > 0, intermediate > 0, maxPositions > 0 else {
            throw InferenceError.invalidArgument("\(path): inconsistent dimensions (hidden \(hidden), heads \(heads))")
        }
    }
}
