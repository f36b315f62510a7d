import CDNNL
import Dispatch
import InferenceCore
import Synchronization

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
    /// Tokens in the longest sequence.
    public var longest: Int { (0..<count).map { starts[$0 + 1] - starts[$0] }.max() ?? 0 }

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

/// Pointers into the instance's buffers, handed to the attention threads, each
/// of which writes only its own pairs' scores and context columns.
private struct AttentionBuffers: @unchecked Sendable {
    let qkv: UnsafeMutablePointer<Float>
    let scores: UnsafeMutablePointer<Float>
    let context: UnsafeMutablePointer<Float>
}

/// The next (sequence, head) pair to compute, and the first error seen.
private final class AttentionWork: Sendable {
    private let state = Mutex<(next: Int, error: (any Error)?)>((0, nil))

    func take(below count: Int) -> Int? {
        state.withLock { state in
            guard state.error == nil, state.next < count else { return nil }
            defer { state.next += 1 }
            return state.next
        }
    }

    func fail(_ error: any Error) { state.withLock { if $0.error == nil { $0.error = error } } }
    var error: (any Error)? { state.withLock { $0.error } }
}

/// The encoder's forward pass on the CPU for one model instance. Holds
/// scratch buffers, so one instance serves one batch at a time (the
/// scheduler's executor guarantees it).
public final class EncoderForward: @unchecked Sendable {
    public let config: EncoderConfig
    let weights: EncoderWeights
    let matmul: OneDNNMatmul
    /// Linear weights in the instance's precision: per layer qkv, output, ffn in, ffn out.
    private let linearWeights: [[LinearWeight]]

    /// A Linear layer's weight as the matmul reads it: Float, or bfloat16 bits.
    enum LinearWeight: Sendable {
        case fp32([Float])
        case bf16([UInt16])

        init(_ values: [Float], precision: OneDNNMatmul.Precision) {
            self = precision == .fp32 ? .fp32(values) : .bf16(BFloat16Bits.convert(values))
        }

        func withPointer<T>(_ body: (UnsafeRawPointer) throws -> T) rethrows -> T {
            switch self {
            case .fp32(let values): try values.withUnsafeBytes { try body($0.baseAddress!) }
            case .bf16(let values): try values.withUnsafeBytes { try body($0.baseAddress!) }
            }
        }
    }
    // Scratch buffers, grown to the largest batch seen. Separate stored
    // properties, so nested access to two of them is not an exclusivity conflict.
    private var hidden: [Float] = []        // (tokens, hidden)
    private var qkv: [Float] = []           // (tokens, 3 * hidden)
    private var context: [Float] = []       // (tokens, hidden)
    private var projected: [Float] = []     // (tokens, hidden)
    private var intermediate: [Float] = []  // (tokens, intermediate)
    private var scores: [Float] = []        // (threads, longest, longest): one score matrix per attention thread
    /// Threads the instance computes with; attention runs (sequence, head)
    /// pairs on this many threads, each pair's products single-threaded.
    let threads: Int

    private func reserve(tokens unpadded: Int, longest: Int) {
        // The matmul runs on whole blocks of rows; the extra rows are scratch.
        let tokens = OneDNNMatmul.paddedRows(unpadded)
        func size(_ buffer: inout [Float], _ count: Int) {
            if buffer.count < count { buffer = [Float](repeating: 0, count: count) }
        }
        size(&hidden, tokens * config.hidden)
        size(&qkv, tokens * 3 * config.hidden)
        size(&context, tokens * config.hidden)
        size(&projected, tokens * config.hidden)
        size(&intermediate, tokens * config.intermediate)
        size(&scores, max(threads, 1) * longest * longest)
    }

    public init(config: EncoderConfig, weights: EncoderWeights, precision: String = "fp32", threads: Int = 1) throws {
        self.threads = max(threads, 1)
        guard let chosen = OneDNNMatmul.Precision(rawValue: precision) else {
            throw InferenceError.invalidArgument("precision '\(precision)' is not supported (fp32 or bf16)")
        }
        self.config = config
        self.weights = weights
        self.matmul = try OneDNNMatmul(precision: chosen)
        self.linearWeights = weights.layers.map { layer in
            [layer.qkvWeight, layer.outputWeight, layer.ffnInWeight, layer.ffnOutWeight].map { LinearWeight($0, precision: chosen) }
        }
    }

    /// Whether this CPU runs bf16 matrix products natively; without it the
    /// backend falls back to fp32.
    public static var bf16Available: Bool { OneDNNMatmul.cpuHasBF16 }

    /// x (rows, out) = epilogue(input (rows, in) W^T + b) in the instance's precision.
    private func linear(_ input: UnsafePointer<Float>, rows: Int, inFeatures: Int, weight: LinearWeight, bias: [Float],
                        outFeatures: Int, epilogue: OneDNNMatmul.Epilogue = .none, output: UnsafeMutablePointer<Float>) throws {
        try weight.withPointer { w in
            try bias.withUnsafeBufferPointer { b in
                try matmul.linear(input, rows: rows, inFeatures: inFeatures, weight: w, bias: b.baseAddress!,
                                  outFeatures: outFeatures, epilogue: epilogue, output: output)
            }
        }
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
        let longest = batch.longest
        reserve(tokens: tokens, longest: longest)
        try embed(batch)
        for (index, layer) in weights.layers.enumerated() {
            try attention(layer, weights: linearWeights[index], batch: batch, longest: longest)
            try feedForward(layer, weights: linearWeights[index], tokens: tokens)
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
    private func attention(_ layer: EncoderLayerWeights, weights linear: [LinearWeight], batch: PackedSequences,
                           longest: Int) throws {
        let h = config.hidden, tokens = batch.tokenCount
        try hidden.withUnsafeMutableBufferPointer { hidden in
            try qkv.withUnsafeMutableBufferPointer { qkv in
                try context.withUnsafeMutableBufferPointer { context in
                    try scores.withUnsafeMutableBufferPointer { scores in
                        try projected.withUnsafeMutableBufferPointer { projected in
                            try self.linear(hidden.baseAddress!, rows: tokens, inFeatures: h, weight: linear[0], bias: layer.qkvBias,
                                            outFeatures: 3 * h, output: qkv.baseAddress!)
                            try attendPerHead(batch: batch, qkv: qkv.baseAddress!, scores: scores.baseAddress!,
                                              context: context.baseAddress!, longest: longest)
                            try self.linear(context.baseAddress!, rows: tokens, inFeatures: h, weight: linear[1], bias: layer.outputBias,
                                            outFeatures: h, output: projected.baseAddress!)
                            layer.attentionNormScale.withUnsafeBufferPointer { g in
                                layer.attentionNormBias.withUnsafeBufferPointer { beta in
                                    VectorMath.residualLayerNorm(projected.baseAddress!, residual: hidden.baseAddress!, rows: tokens, width: h,
                                                                 scale: g.baseAddress!, shift: beta.baseAddress!, epsilon: config.layerNormEpsilon)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// context (tokens, hidden) = softmax(Q K^T / sqrt(d)) V for every sequence
    /// and head of the packed QKV rows. The (sequence, head) pairs are shared
    /// out among `threads` threads, each running its pairs' products
    /// single-threaded: small products split across OpenMP threads spend more
    /// on fork and barrier than on arithmetic.
    private func attendPerHead(batch: PackedSequences, qkv: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>,
                               context: UnsafeMutablePointer<Float>, longest: Int) throws {
        let h = config.hidden, heads = config.heads, d = config.headDimension
        let scale = 1 / Float(d).squareRoot()
        let pairs = batch.count * heads
        let workers = min(threads, pairs)
        let buffers = AttentionBuffers(qkv: qkv, scores: scores, context: context)
        @Sendable func attend(pair: Int, scores: UnsafeMutablePointer<Float>) throws {
            let s = pair / heads, head = pair % heads
            let start = batch.starts[s], length = batch.starts[s + 1] - start
            guard length > 0 else { return }
            let rows = buffers.qkv + start * 3 * h
            let q = rows + head * d, k = rows + h + head * d, v = rows + 2 * h + head * d
            // scores (L x L) = Q K^T / sqrt(d)
            try CPUMatmul.gemm(m: length, n: length, k: d, alpha: scale, a: q, lda: 3 * h, b: k, ldb: 3 * h,
                               transposeB: true, c: scores, ldc: length)
            VectorMath.softmax(scores, rows: length, width: length, stride: length)
            // context (L x d) = P V, written into this head's columns.
            try CPUMatmul.gemm(m: length, n: d, k: length, a: scores, lda: length, b: v, ldb: 3 * h,
                               transposeB: false, c: buffers.context + start * h + head * d, ldc: h)
        }
        guard workers > 1 else {
            for pair in 0..<pairs { try attend(pair: pair, scores: scores) }
            return
        }
        let next = AttentionWork()
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            // OpenMP's thread count is per calling thread (libgomp keeps a copy
            // per foreign thread), so this leaves other threads' settings alone;
            // the executor thread, which runs one worker, gets its own back.
            omp_set_num_threads(1)
            defer { omp_set_num_threads(Int32(threads)) }
            let own = buffers.scores + worker * longest * longest
            while let pair = next.take(below: pairs) {
                do { try attend(pair: pair, scores: own) } catch { next.fail(error) }
            }
        }
        if let error = next.error { throw error }
    }

    /// FFN: linear with bias and GELU fused into the matmul, linear with bias,
    /// then residual + LayerNorm in one pass.
    private func feedForward(_ layer: EncoderLayerWeights, weights linear: [LinearWeight], tokens: Int) throws {
        let h = config.hidden, f = config.intermediate
        try hidden.withUnsafeMutableBufferPointer { hidden in
            try intermediate.withUnsafeMutableBufferPointer { intermediate in
                try projected.withUnsafeMutableBufferPointer { projected in
                    try self.linear(hidden.baseAddress!, rows: tokens, inFeatures: h, weight: linear[2], bias: layer.ffnInBias,
                                    outFeatures: f, epilogue: .gelu, output: intermediate.baseAddress!)
                    try self.linear(intermediate.baseAddress!, rows: tokens, inFeatures: f, weight: linear[3], bias: layer.ffnOutBias,
                                    outFeatures: h, output: projected.baseAddress!)
                    layer.outputNormScale.withUnsafeBufferPointer { g in
                        layer.outputNormBias.withUnsafeBufferPointer { beta in
                            VectorMath.residualLayerNorm(projected.baseAddress!, residual: hidden.baseAddress!, rows: tokens, width: h,
                                                         scale: g.baseAddress!, shift: beta.baseAddress!, epsilon: config.layerNormEpsilon)
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
