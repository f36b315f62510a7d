import CDNNL
import InferenceCore
import TransformerModel

/// An encoder model ready to serve: loaded once per model version and shared,
/// read-only, by all its CPU instances. The linear weights are converted to the
/// served precision and reordered once into the layout oneDNN's kernels read
/// (no float32 copy is kept for bf16 or int8), and every matmul primitive the
/// instances will run is made here, one per (product, row bucket), before the
/// model turns READY. Instances add only what is theirs: a stream, scratchpad
/// and activation buffers (`EncoderForward`).
public final class PreparedEncoder: @unchecked Sendable {
    public let config: EncoderConfig
    public let precision: EncoderPrecision
    /// The most tokens one forward pass takes (the scheduler keeps batches within it).
    public let maxTokens: Int
    /// Rows a product handles at once: larger batches run in chunks of this many.
    let chunkRows: Int
    let engine: OneDNNEngine
    /// By `LinearKind.rawValue`.
    let families: [MatmulFamily]
    let layers: [Layer]

    let wordEmbeddings: [Float]        // (vocabulary, hidden)
    let positionEmbeddings: [Float]    // (maxPositions, hidden)
    let tokenTypeEmbedding: [Float]?   // (types, hidden), BERT only
    let embeddingNorm: Norm
    let classifier: SequenceClassifier?
    /// Token classification: classifier (labels, hidden) on every token.
    let tokenClassifier: (weight: [Float], bias: [Float])?
    let maskedLanguageHead: MaskedLanguageHead?

    /// One layer's product: what oneDNN and the row kernels read, at fixed
    /// addresses for the model's lifetime.
    struct Linear {
        let weights: AlignedBuffer
        let bias: AlignedBuffer                  // (out) f32
        /// int8: each output channel's weight scale, (out) f32.
        let columnScales: AlignedBuffer?
        /// int8: each output channel's sum of quantized weights (for a zero point), (out) s32.
        let columnSums: AlignedBuffer?
    }

    /// A LayerNorm's scale (gamma) and shift (beta), (hidden) f32 each.
    struct Norm {
        let scale: AlignedBuffer, shift: AlignedBuffer
        init(scale: [Float], shift: [Float]) { (self.scale, self.shift) = (AlignedBuffer(copying: scale), AlignedBuffer(copying: shift)) }
    }

    struct Layer {
        let linear: [Linear]   // by LinearKind.rawValue
        let attentionNorm: Norm, outputNorm: Norm
    }

    /// Row buckets for a model that takes at most `maxTokens` tokens a pass:
    /// every multiple of 32 up to the chunk size (at most 256), so a batch
    /// pads fewer than 32 rows and a model has at most 8 shapes per product.
    /// 256 rows keep oneDNN's kernels near their peak (measured: within 5% of
    /// M = 1024) while the per-instance activations of a chunk stay small.
    static func rowBuckets(maxTokens: Int) -> (buckets: [Int], chunk: Int) {
        let g = MatmulFamily.rowGranularity
        let chunk = min(256, max(g, (maxTokens + g - 1) / g * g))
        return (Array(stride(from: g, through: chunk, by: g)), chunk)
    }

    /// Consumes the checkpoint's float32 weights: what the precision does not
    /// need is dropped when `weights` goes out of scope at the caller.
    public init(config: EncoderConfig, weights: EncoderWeights, precision: EncoderPrecision, maxTokens: Int) throws {
        self.config = config
        self.precision = precision
        self.maxTokens = max(maxTokens, 1)
        engine = try OneDNNEngine()
        let (buckets, chunk) = Self.rowBuckets(maxTokens: self.maxTokens)
        chunkRows = chunk
        let h = config.hidden, f = config.intermediate
        let shapes: [(LinearKind, Int, Int)] = [(.qkv, h, 3 * h), (.output, h, h), (.ffnIn, h, f), (.ffnOut, f, h)]
        let engine = self.engine
        families = try shapes.map { kind, inFeatures, outFeatures in
            try MatmulFamily(engine: engine, kind: kind, inFeatures: inFeatures, outFeatures: outFeatures,
                             precision: precision, buckets: buckets)
        }
        let families = self.families
        layers = try weights.layers.map { layer in
            let values = [layer.qkvWeight, layer.outputWeight, layer.ffnInWeight, layer.ffnOutWeight]
            let biases = [layer.qkvBias, layer.outputBias, layer.ffnInBias, layer.ffnOutBias]
            let linear = try LinearKind.allCases.map { kind in
                let packed = try families[kind.rawValue].pack(values[kind.rawValue], engine: engine)
                return Linear(weights: packed.data, bias: AlignedBuffer(copying: biases[kind.rawValue]),
                              columnScales: packed.columnScales.map { AlignedBuffer(copying: $0) },
                              columnSums: packed.columnSums.map { AlignedBuffer(copying: $0) })
            }
            return Layer(linear: linear, attentionNorm: Norm(scale: layer.attentionNormScale, shift: layer.attentionNormBias),
                         outputNorm: Norm(scale: layer.outputNormScale, shift: layer.outputNormBias))
        }
        wordEmbeddings = weights.wordEmbeddings
        positionEmbeddings = weights.positionEmbeddings
        tokenTypeEmbedding = weights.tokenTypeEmbedding
        embeddingNorm = Norm(scale: weights.embeddingNormScale, shift: weights.embeddingNormBias)
        classifier = weights.classifier
        tokenClassifier = weights.tokenClassifier
        maskedLanguageHead = weights.maskedLanguageHead
    }

    /// oneDNN's kernel for each product, e.g. `qkv: brg:avx512_core_vnni`.
    public var implementations: [String] {
        families.map { "\($0.kind.name): \($0.primitives.last!.implementation)" }
    }

    /// Bytes of linear weights as served (packed, in the served precision).
    public var packedWeightBytes: Int { layers.reduce(0) { $0 + $1.linear.reduce(0) { $0 + $1.weights.byteCount } } }

    /// The instruction set oneDNN runs on here.
    public static var isa: String { OneDNN.effectiveISA }
}
