import InferenceCore
import TransformerModel

/// Device copies of the checkpoint; linear weights in bf16 for `.bf16`.
struct DeviceWeights {
    struct Layer { var qkv, qkvBias, output, outputBias, norm1Scale, norm1Bias, ffnIn, ffnInBias, ffnOut, ffnOutBias, norm2Scale, norm2Bias: RawPointer }
    var words, positions: RawPointer
    var tokenType: RawPointer?
    var normScale, normBias: RawPointer
    var layers: [Layer]
    var preClassifier, preClassifierBias, classifier, classifierBias: RawPointer?
}

/// One model version's weights on one device, uploaded once and shared by
/// every instance of the version on that device (`CUDAEncoderAccelerator`
/// keeps them in a `SharedCache` by model files, device and math): a second
/// instance costs its activations and workspace, not another copy of the
/// weights. Freed with the last instance that holds it.
final class DeviceWeightCopy: @unchecked Sendable {
    let device: Int
    let weights: DeviceWeights
    /// Bytes of device memory the weights take.
    let bytes: Int
    private let memory: DeviceAllocations

    init(platform: CUDAPlatform, device: Int, checkpoint: EncoderWeights, bf16: Bool) throws {
        self.device = device
        try platform.check(platform.runtime.cudaSetDevice(Int32(device)), "cudaSetDevice(\(device))")
        memory = DeviceAllocations(platform: platform, device: device)
        // The default stream, synchronized after each upload: the copy is
        // complete before any instance's stream reads it.
        weights = try Self.upload(checkpoint, memory: memory, stream: nil, bf16: bf16)
        bytes = memory.deviceBytes
    }

    private static func upload(_ w: EncoderWeights, memory: DeviceAllocations, stream: RawPointer?, bf16: Bool) throws -> DeviceWeights {
        func floats(_ values: [Float], _ what: String) throws -> RawPointer { try memory.upload(values, what, stream: stream) }
        func linear(_ values: [Float], _ what: String) throws -> RawPointer {
            bf16 ? try memory.upload(BFloat16Bits.convert(values), what, stream: stream) : try floats(values, what)
        }
        let layers = try w.layers.enumerated().map { index, l in
            DeviceWeights.Layer(
                qkv: try linear(l.qkvWeight, "layer \(index) qkv"), qkvBias: try floats(l.qkvBias, "layer \(index) qkv bias"),
                output: try linear(l.outputWeight, "layer \(index) output"), outputBias: try floats(l.outputBias, "layer \(index) output bias"),
                norm1Scale: try floats(l.attentionNormScale, "layer \(index) norm 1"), norm1Bias: try floats(l.attentionNormBias, "layer \(index) norm 1 bias"),
                ffnIn: try linear(l.ffnInWeight, "layer \(index) ffn in"), ffnInBias: try floats(l.ffnInBias, "layer \(index) ffn in bias"),
                ffnOut: try linear(l.ffnOutWeight, "layer \(index) ffn out"), ffnOutBias: try floats(l.ffnOutBias, "layer \(index) ffn out bias"),
                norm2Scale: try floats(l.outputNormScale, "layer \(index) norm 2"), norm2Bias: try floats(l.outputNormBias, "layer \(index) norm 2 bias"))
        }
        // The classifier head is small and runs on (sequences, hidden): fp32 always.
        if w.classifier?.activation == .tanh {
            throw InferenceError.invalidArgument("a BERT sequence classifier (pooler + tanh) runs on KIND_CPU instances only")
        }
        return DeviceWeights(
            words: try floats(w.wordEmbeddings, "word embeddings"), positions: try floats(w.positionEmbeddings, "position embeddings"),
            tokenType: try w.tokenTypeEmbedding.map { try floats(Array($0.prefix(w.embeddingNormScale.count)), "token type embedding") },
            normScale: try floats(w.embeddingNormScale, "embedding norm"), normBias: try floats(w.embeddingNormBias, "embedding norm bias"),
            layers: layers,
            preClassifier: try w.classifier.map { try floats($0.preWeight, "pre_classifier") },
            preClassifierBias: try w.classifier.map { try floats($0.preBias, "pre_classifier bias") },
            classifier: try w.classifier.map { try floats($0.weight, "classifier") },
            classifierBias: try w.classifier.map { try floats($0.bias, "classifier bias") })
    }
}
