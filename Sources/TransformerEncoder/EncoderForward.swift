import InferenceCore

/// Sequences packed back to back without padding: work scales with real
/// tokens, not with the longest sequence.
public struct PackedSequences: Sendable, Equatable {
    /// (tokens) token ids.
    public var tokenIDs: [Int32] = []
    /// (tokens) position of each token in its own sequence.
    public var positions: [Int32] = []
    /// (sequences + 1) offset of each sequence's first token; the last is the total.
    public var starts: [Int] = [0]

    public init() {}

    public var count: Int { starts.count - 1 }
    public var tokenCount: Int { tokenIDs.count }

    /// Adds a sequence, keeping only tokens whose mask is non-zero at their
    /// original positions, which is what an attention mask means to the model.
    public mutating func append(ids: some Collection<Int64>, mask: (some Collection<Int64>)?) {
        var position: Int32 = 0
        if let mask {
            for (id, keep) in zip(ids, mask) {
                if keep != 0 {
                    tokenIDs.append(Int32(truncatingIfNeeded: id))
                    positions.append(position)
                }
                position += 1
            }
        } else {
            for id in ids {
                tokenIDs.append(Int32(truncatingIfNeeded: id))
                positions.append(position)
                position += 1
            }
        }
        starts.append(tokenIDs.count)
    }
}

/// The encoder's forward pass on the CPU for one model instance. Holds
/// scratch buffers, so one instance serves one batch at a time (the
/// scheduler's executor guarantees it).
public final class EncoderForward: @unchecked Sendable {
    public let config: EncoderConfig
    let weights: EncoderWeights
    // Scratch buffers, grown to the largest batch seen. Separate stored
    // properties, so nested access to two of them is not an exclusivity conflict.
    private var hidden: [Float] = []        // (tokens, hidden)
    private var qkv: [Float] = []           // (tokens, 3 * hidden)
    private var context: [Float] = []       // (tokens, hidden)
    private var projected: [Float] = []     // (tokens, hidden)
    private var intermediate: [Float] = []  // (tokens, intermediate)
    private var scores: [Float] = []        // (longest, longest)

    private func reserve(tokens: Int, longest: Int) {
        func size(_ buffer: inout [Float], _ count: Int) {
            if buffer.count < count { buffer = [Float](repeating: 0, count: count) }
        }
        size(&hidden, tokens * config.hidden)
        size(&qkv, tokens * 3 * config.hidden)
        size(&context, tokens * config.hidden)
        size(&projected, tokens * config.hidden)
        size(&intermediate, tokens * config.intermediate)
        size(&scores, longest * longest)
    }

    public init(config: EncoderConfig, weights: EncoderWeights) {
        self.config = config
        self.weights = weights
    }

    /// Final hidden states, (tokens, hidden), in packed order.
    public func hiddenStates(_ batch: PackedSequences) throws -> [Float] {
        let tokens = batch.tokenCount
        let h = config.hidden
        guard tokens > 0 else { return [] }
        for id in batch.tokenIDs where id < 0 || Int(id) >= config.vocabularySize {
            throw InferenceError.invalidArgument("token id \(id) is outside the vocabulary of \(config.vocabularySize)")
        }
        for position in batch.positions where Int(position) >= config.maxPositions {
            throw InferenceError.invalidArgument("sequence length exceeds the model's \(config.maxPositions) positions")
        }
        let longest = (0..<batch.count).map { batch.starts[$0 + 1] - batch.starts[$0] }.max() ?? 0
        reserve(tokens: tokens, longest: longest)
        try embed(batch)
        for layer in weights.layers {
            try attention(layer, batch: batch)
            try feedForward(layer, tokens: tokens)
        }
        return Array(hidden[0..<(tokens * h)])
    }

    private func embed(_ batch: PackedSequences) throws {
        let h = config.hidden
        hidden.withUnsafeMutableBufferPointer { hidden in
            weights.wordEmbeddings.withUnsafeBufferPointer { words in
                weights.positionEmbeddings.withUnsafeBufferPointer { positions in
                    for t in 0..<batch.tokenCount {
                        let word = Int(batch.tokenIDs[t]) * h, position = Int(batch.positions[t]) * h
                        for i in 0..<h { hidden[t * h + i] = words[word + i] + positions[position + i] }
                        if let type = weights.tokenTypeEmbedding {
                            for i in 0..<h { hidden[t * h + i] += type[i] }
                        }
                    }
                }
            }
            weights.embeddingNormScale.withUnsafeBufferPointer { scale in
                weights.embeddingNormBias.withUnsafeBufferPointer { shift in
                    VectorMath.layerNorm(hidden.baseAddress!, rows: batch.tokenCount, width: h, scale: scale.baseAddress!,
                                         shift: shift.baseAddress!, epsilon: config.layerNormEpsilon)
                }
            }
        }
    }

    /// Self-attention, one sequence and head at a time on the packed QKV
    /// projection, then the output projection with bias, residual and LayerNorm fused.
    private func attention(_ layer: EncoderLayerWeights, batch: PackedSequences) throws {
        let h = config.hidden, heads = config.heads, d = config.headDimension, tokens = batch.tokenCount
        let scale = 1 / Float(d).squareRoot()
        try hidden.withUnsafeMutableBufferPointer { hidden in
            try qkv.withUnsafeMutableBufferPointer { qkv in
                try context.withUnsafeMutableBufferPointer { context in
                    try scores.withUnsafeMutableBufferPointer { scores in
                        try projected.withUnsafeMutableBufferPointer { projected in
                            try layer.qkvWeight.withUnsafeBufferPointer { w in
                                try CPUMatmul.linear(hidden.baseAddress!, rows: tokens, inFeatures: h, weight: w.baseAddress!,
                                                     outFeatures: 3 * h, output: qkv.baseAddress!)
                            }
                            layer.qkvBias.withUnsafeBufferPointer { b in
                                VectorMath.addBias(qkv.baseAddress!, rows: tokens, width: 3 * h, bias: b.baseAddress!)
                            }
                            for s in 0..<batch.count {
                                let start = batch.starts[s], length = batch.starts[s + 1] - start
                                guard length > 0 else { continue }
                                let rows = qkv.baseAddress! + start * 3 * h
                                for head in 0..<heads {
                                    let q = rows + head * d, k = rows + h + head * d, v = rows + 2 * h + head * d
                                    // scores (L x L) = Q K^T / sqrt(d)
                                    try CPUMatmul.gemm(m: length, n: length, k: d, alpha: scale, a: q, lda: 3 * h, b: k, ldb: 3 * h,
                                                       transposeB: true, c: scores.baseAddress!, ldc: length)
                                    VectorMath.softmax(scores.baseAddress!, rows: length, width: length, stride: length)
                                    // context (L x d) = P V, written into this head's columns.
                                    try CPUMatmul.gemm(m: length, n: d, k: length, a: scores.baseAddress!, lda: length, b: v, ldb: 3 * h,
                                                       transposeB: false, c: context.baseAddress! + start * h + head * d, ldc: h)
                                }
                            }
                            try layer.outputWeight.withUnsafeBufferPointer { w in
                                try CPUMatmul.linear(context.baseAddress!, rows: tokens, inFeatures: h, weight: w.baseAddress!,
                                                     outFeatures: h, output: projected.baseAddress!)
                            }
                            layer.outputBias.withUnsafeBufferPointer { b in
                                layer.attentionNormScale.withUnsafeBufferPointer { g in
                                    layer.attentionNormBias.withUnsafeBufferPointer { beta in
                                        VectorMath.biasResidualLayerNorm(projected.baseAddress!, bias: b.baseAddress!, residual: hidden.baseAddress!,
                                                                         rows: tokens, width: h, scale: g.baseAddress!, shift: beta.baseAddress!,
                                                                         epsilon: config.layerNormEpsilon)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// FFN: linear, bias + GELU fused, linear, bias + residual + LayerNorm fused.
    private func feedForward(_ layer: EncoderLayerWeights, tokens: Int) throws {
        let h = config.hidden, f = config.intermediate
        try hidden.withUnsafeMutableBufferPointer { hidden in
            try intermediate.withUnsafeMutableBufferPointer { intermediate in
                try projected.withUnsafeMutableBufferPointer { projected in
                    try layer.ffnInWeight.withUnsafeBufferPointer { w in
                        try CPUMatmul.linear(hidden.baseAddress!, rows: tokens, inFeatures: h, weight: w.baseAddress!,
                                             outFeatures: f, output: intermediate.baseAddress!)
                    }
                    layer.ffnInBias.withUnsafeBufferPointer { b in
                        VectorMath.biasGELU(intermediate.baseAddress!, rows: tokens, width: f, bias: b.baseAddress!)
                    }
                    try layer.ffnOutWeight.withUnsafeBufferPointer { w in
                        try CPUMatmul.linear(intermediate.baseAddress!, rows: tokens, inFeatures: f, weight: w.baseAddress!,
                                             outFeatures: h, output: projected.baseAddress!)
                    }
                    layer.ffnOutBias.withUnsafeBufferPointer { b in
                        layer.outputNormScale.withUnsafeBufferPointer { g in
                            layer.outputNormBias.withUnsafeBufferPointer { beta in
                                VectorMath.biasResidualLayerNorm(projected.baseAddress!, bias: b.baseAddress!, residual: hidden.baseAddress!,
                                                                 rows: tokens, width: h, scale: g.baseAddress!, shift: beta.baseAddress!,
                                                                 epsilon: config.layerNormEpsilon)
                            }
                        }
                    }
                }
            }
        }
    }

    // MARK: Heads

    /// DistilBERT sequence classification on each sequence's first token:
    /// pre_classifier, ReLU, classifier. (sequences, labels)
    public func logits(_ batch: PackedSequences) throws -> [Float] {
        guard let head = weights.classifier else {
            throw InferenceError.invalidArgument("the checkpoint has no classification head (pre_classifier, classifier)")
        }
        let states = try hiddenStates(batch)
        let h = config.hidden, labels = head.bias.count, n = batch.count
        var first = [Float](repeating: 0, count: n * h)
        for s in 0..<n where batch.starts[s + 1] > batch.starts[s] {
            for i in 0..<h { first[s * h + i] = states[batch.starts[s] * h + i] }
        }
        var pre = [Float](repeating: 0, count: n * h)
        try first.withUnsafeBufferPointer { input in
            try head.preWeight.withUnsafeBufferPointer { w in
                try pre.withUnsafeMutableBufferPointer { out in
                    try CPUMatmul.linear(input.baseAddress!, rows: n, inFeatures: h, weight: w.baseAddress!, outFeatures: h, output: out.baseAddress!)
                }
            }
        }
        for s in 0..<n { for i in 0..<h { pre[s * h + i] = max(0, pre[s * h + i] + head.preBias[i]) } }
        var out = [Float](repeating: 0, count: n * labels)
        try pre.withUnsafeBufferPointer { input in
            try head.weight.withUnsafeBufferPointer { w in
                try out.withUnsafeMutableBufferPointer { o in
                    try CPUMatmul.linear(input.baseAddress!, rows: n, inFeatures: h, weight: w.baseAddress!, outFeatures: labels, output: o.baseAddress!)
                }
            }
        }
        for s in 0..<n { for j in 0..<labels { out[s * labels + j] += head.bias[j] } }
        return out
    }

    /// Sentence embeddings: the mean of each sequence's token states, L2-normalized. (sequences, hidden)
    public func embeddings(_ batch: PackedSequences) throws -> [Float] {
        let states = try hiddenStates(batch)
        let h = config.hidden
        var out = [Float](repeating: 0, count: batch.count * h)
        for s in 0..<batch.count {
            let start = batch.starts[s], end = batch.starts[s + 1]
            guard end > start else { continue }
            var mean = [Double](repeating: 0, count: h)
            for t in start..<end { for i in 0..<h { mean[i] += Double(states[t * h + i]) } }
            let count = Double(end - start)
            var norm = 0.0
            for i in 0..<h {
                mean[i] /= count
                norm += mean[i] * mean[i]
            }
            let inverse = 1 / max(norm.squareRoot(), 1e-12)
            for i in 0..<h { out[s * h + i] = Float(mean[i] * inverse) }
        }
        return out
    }
}
