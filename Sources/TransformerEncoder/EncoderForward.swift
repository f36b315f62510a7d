import CDNNL
import CEncoderKernels
import Dispatch
import Foundation
import InferenceCore
import TransformerModel
import Synchronization

/// One CPU instance's context for a shared `PreparedEncoder`: its oneDNN
/// stream, scratchpad, memory objects (made once, pointed at new rows with
/// set_data_handle) and activation buffers sized for the model's token budget.
/// One batch at a time (the scheduler's executor guarantees it).
///
/// Activations stay in the compute precision between products: the row
/// kernel after each product writes what the next one reads (int8 with its
/// row scales, or bf16) in the same pass as bias, residual and LayerNorm. The
/// residual stream itself, attention and LayerNorm stay float32.
public final class EncoderForward: @unchecked Sendable {
    public let model: PreparedEncoder
    public var config: EncoderConfig { model.config }
    /// Threads the instance computes with (oneDNN's OpenMP team, attention and row kernels).
    let threads: Int
    /// Set to collect a per-operation profile of every forward pass.
    public var profile: EncoderProfile?
    /// Where this batch pauses between steps while a more urgent batch runs
    /// on the model's urgent lane (set per batch by the instance).
    public var urgentWork: UrgentWorkGate?

    private let stream: dnnl_stream_t
    private let scratchpad: AlignedBuffer
    /// Per (product kind, bucket): source, destination and scratchpad memory objects.
    private var bindings: [[(source: dnnl_memory_t, destination: dnnl_memory_t, scratchpad: dnnl_memory_t?)]] = []
    /// Per (layer, product kind): the shared weights and bias as memory objects.
    private var parameters: [[(weights: dnnl_memory_t, bias: dnnl_memory_t?)]] = []

    /// Rows of the row-indexed buffers: the budget rounded up to 32, plus 32.
    /// A product reads and writes whole 32-row blocks from a chunk's first
    /// row, and a QKV group's first row is wherever its first sequence starts,
    /// so its last block may reach up to 31 rows past the last token.
    private let maxRows: Int
    private let hidden: AlignedBuffer          // (rows, hidden) f32: the residual stream
    private let hiddenLow: AlignedBuffer?      // (rows, hidden) s8 or bf16: the next product's input
    private let hiddenScales: AlignedBuffer?   // (rows) f32, int8
    private let qkv: AlignedBuffer             // (qkvRows, 3 * hidden) f32: one group of sequences
    /// Rows of Q, K and V computed at once: a chunk, or the longest sequence if longer.
    private let qkvRows: Int
    private let context: AlignedBuffer         // (rows, hidden) f32
    private let contextLow: AlignedBuffer?     // (rows, hidden) s8 or bf16
    private let contextScales: AlignedBuffer?  // (rows) f32, int8
    /// What the QKV and FFN input products read: the hidden states in the compute precision.
    private var hiddenInput: AlignedBuffer { hiddenLow ?? hidden }
    /// What the attention output product reads: the context in the compute precision.
    private var contextInput: AlignedBuffer { contextLow ?? context }
    private let intermediate: AlignedBuffer    // (chunk, intermediate) f32, bf16 or u8
    private let intermediateScales: AlignedBuffer?  // (chunk) f32, int8
    private let intermediateZeroPoints: AlignedBuffer?  // (chunk) s32, int8 (its rows are u8)
    private let accumulators: AlignedBuffer?   // (chunk, max(3 * hidden, intermediate)) s32, int8
    private let rowTemporaries: AlignedBuffer? // (threads, intermediate) f32, int8 GELU rows
    private let scores: AlignedBuffer          // (threads, longestSequence, longestSequence) f32
    /// The longest sequence a batch may hold: each attention thread's score matrix is this square.
    let longestSequence: Int

    public init(model: PreparedEncoder, threads: Int) throws {
        self.model = model
        self.threads = max(threads, 1)
        let c = model.config, h = c.hidden, f = c.intermediate
        let g = MatmulFamily.rowGranularity
        maxRows = (model.maxTokens + g - 1) / g * g + g
        let chunk = model.chunkRows
        let bytes = model.precision.activationBytes, lowered = model.precision != .fp32
        let int8 = model.precision == .int8
        hidden = AlignedBuffer(bytes: maxRows * h * 4)
        hiddenLow = lowered ? AlignedBuffer(bytes: maxRows * h * bytes) : nil
        hiddenScales = int8 ? AlignedBuffer(bytes: maxRows * 4) : nil
        longestSequence = min(c.maxPositions, model.maxTokens)
        qkvRows = (max(chunk, longestSequence) + g - 1) / g * g
        qkv = AlignedBuffer(bytes: qkvRows * 3 * h * 4)
        context = AlignedBuffer(bytes: maxRows * h * 4)
        contextLow = lowered ? AlignedBuffer(bytes: maxRows * h * bytes) : nil
        contextScales = int8 ? AlignedBuffer(bytes: maxRows * 4) : nil
        intermediate = AlignedBuffer(bytes: chunk * f * bytes)
        intermediateScales = int8 ? AlignedBuffer(bytes: chunk * 4) : nil
        intermediateZeroPoints = int8 ? AlignedBuffer(bytes: chunk * 4) : nil
        accumulators = int8 ? AlignedBuffer(bytes: chunk * max(3 * h, f) * 4) : nil
        rowTemporaries = int8 ? AlignedBuffer(bytes: self.threads * f * 4) : nil
        scores = AlignedBuffer(bytes: self.threads * longestSequence * longestSequence * 4)
        scratchpad = AlignedBuffer(bytes: model.families.map(\.largestScratchpadBytes).max() ?? 0)

        var stream: dnnl_stream_t?
        try OneDNN.check(dnnl_stream_create(&stream, model.engine.handle, UInt32(dnnl_stream_default_flags.rawValue)), "stream_create")
        self.stream = stream!
        try makeMemoryObjects()
    }

    deinit {
        for kind in bindings {
            for binding in kind {
                dnnl_memory_destroy(binding.source)
                dnnl_memory_destroy(binding.destination)
                if let pad = binding.scratchpad { dnnl_memory_destroy(pad) }
            }
        }
        for layer in parameters {
            for p in layer {
                dnnl_memory_destroy(p.weights)
                if let bias = p.bias { dnnl_memory_destroy(bias) }
            }
        }
        dnnl_stream_destroy(stream)
    }

    private func makeMemoryObjects() throws {
        let engine = model.engine.handle
        func memory(_ descriptor: dnnl_memory_desc_t, _ handle: UnsafeMutableRawPointer?) throws -> dnnl_memory_t {
            var d = descriptor
            var made: dnnl_memory_t?
            try OneDNN.check(dnnl_memory_create(&made, &d, engine, handle ?? hidden.pointer), "memory_create")
            return made!
        }
        for family in model.families {
            bindings.append(try family.primitives.map { primitive in
                (try memory(primitive.source, nil), try memory(primitive.destination, nil),
                 primitive.scratchpadBytes > 0 ? try memory(primitive.scratchpad, scratchpad.pointer) : nil)
            })
        }
        for layer in model.layers {
            parameters.append(try LinearKind.allCases.map { kind in
                let family = model.families[kind.rawValue], linear = layer.linear[kind.rawValue]
                return (try memory(family.weights, linear.weights.pointer), family.hasBias ? try memory(family.bias, linear.bias.pointer) : nil)
            })
        }
    }

    // MARK: Products

    /// One product over `rows` rows in chunks of at most `chunkRows`, each on
    /// the smallest bucket that holds it. `source` and `destination` give a
    /// chunk's first row; `epilogue` runs after each chunk on its rows.
    private func product(_ kind: LinearKind, layer: Int, rows: Range<Int>, source: (Int) -> UnsafeMutableRawPointer,
                         destination: (Int) -> UnsafeMutableRawPointer, epilogue: ((Range<Int>) -> Void)? = nil) throws {
        let family = model.families[kind.rawValue]
        let p = parameters[layer][kind.rawValue]
        var start = rows.lowerBound
        while start < rows.upperBound {
            let count = min(model.chunkRows, rows.upperBound - start)
            let bucket = family.bucket(for: count)
            let binding = bindings[kind.rawValue][bucket]
            let began = profile == nil ? nil : ContinuousClock.now
            try OneDNN.check(dnnl_memory_set_data_handle(binding.source, source(start)), "set_data_handle")
            try OneDNN.check(dnnl_memory_set_data_handle(binding.destination, destination(start)), "set_data_handle")
            var arguments = [
                dnnl_exec_arg_t(arg: OneDNN.argSource, memory: binding.source),
                dnnl_exec_arg_t(arg: OneDNN.argWeights, memory: p.weights),
                dnnl_exec_arg_t(arg: OneDNN.argDestination, memory: binding.destination),
            ]
            if let bias = p.bias { arguments.append(dnnl_exec_arg_t(arg: OneDNN.argBias, memory: bias)) }
            if let pad = binding.scratchpad { arguments.append(dnnl_exec_arg_t(arg: OneDNN.argScratchpad, memory: pad)) }
            try OneDNN.check(dnnl_primitive_execute(family.primitives[bucket].handle, stream, Int32(arguments.count), arguments),
                             "execute \(kind.name)")
            try OneDNN.check(dnnl_stream_wait(stream), "stream_wait")
            if let began { profile?.add(kind.name, seconds(since: began)) }
            if let epilogue { timed(kind == .ffnIn ? "gelu_quantize" : kind == .qkv ? "dequantize" : "residual_layernorm") { epilogue(start..<(start + count)) } }
            start += count
        }
    }

    /// Runs every primitive once (on a zeroed scratch buffer; the results are
    /// dropped), so the first request pays no lazy set-up cost. Called before
    /// the model is READY.
    public func warm() throws {
        for kind in LinearKind.allCases {
            let family = model.families[kind.rawValue]
            for rows in family.buckets {
                let buffer = AlignedBuffer(bytes: rows * max(family.inFeatures, family.outFeatures) * 4)
                memset(buffer.pointer, 0, buffer.byteCount)
                try product(kind, layer: 0, rows: 0..<rows, source: { _ in buffer.pointer }, destination: { _ in buffer.pointer })
            }
        }
    }

    // MARK: Forward

    /// Runs the encoder; the final hidden states are left in the instance's
    /// buffer for the heads to read (no copy of the whole (tokens, hidden) matrix).
    private func run(_ batch: PackedSequences) throws {
        let tokens = batch.tokenCount
        guard tokens <= model.maxTokens else {
            throw InferenceError.invalidArgument("a batch of \(tokens) tokens exceeds the \(model.maxTokens) this instance was prepared for")
        }
        // Token ids are input content: the message gives the position, not the id.
        if let bad = batch.tokenIDs.firstIndex(where: { $0 < 0 || Int($0) >= config.vocabularySize }) {
            throw InferenceError.invalidArgument("token \(bad) of the batch is outside the vocabulary of \(config.vocabularySize)")
        }
        for position in batch.positions where Int(position) >= config.maxPositions {
            throw InferenceError.invalidArgument("sequence length exceeds the model's \(config.maxPositions) positions")
        }
        guard tokens > 0 else { return }
        timed("embedding") { embed(batch) }
        for layer in model.layers.indices {
            try attention(layer: layer, batch: batch)
            try feedForward(layer: layer, tokens: tokens)
        }
        profile?.finishForward()
    }

    /// A yield point: between steps that each take a fraction of a layer, so
    /// an urgent batch waits at most one such step (see `UrgentWorkGate`).
    private func yieldToUrgentWork() {
        urgentWork?.yield()
    }

    private func embed(_ batch: PackedSequences) {
        let h = config.hidden
        let out = hidden.typed(Float.self)
        model.wordEmbeddings.withUnsafeBufferPointer { words in
            model.positionEmbeddings.withUnsafeBufferPointer { positions in
                for t in 0..<batch.tokenCount {
                    let word = Int(batch.tokenIDs[t]) * h, position = Int(batch.positions[t]) * h
                    let row = out + t * h
                    for i in 0..<h { row[i] = words[word + i] + positions[position + i] }
                    if let types = model.tokenTypeEmbedding {
                        let type = batch.segment(t) * h
                        for i in 0..<h { row[i] += types[type + i] }
                    }
                }
            }
        }
        normalize(0..<batch.tokenCount, model.embeddingNorm)
    }

    /// Where a LayerNorm's residual input comes from in int8: a product's
    /// int32 sums in `accumulators` (whose row 0 is row `first`), the row
    /// scales of its input (row 0 of which is row `scaleBase`), and, for an
    /// unsigned input, its zero points.
    struct Residual {
        let linear: PreparedEncoder.Linear
        let first: Int
        let rowScales: AlignedBuffer
        var scaleBase = 0
        var zeroPoints: AlignedBuffer? = nil
    }

    /// hidden[rows] = LayerNorm(hidden[rows] + the residual's dequantized sums)
    /// in int8, or LayerNorm(hidden[rows]) (the sum post-op already added the
    /// product), then the next product's input in the compute precision.
    /// Parallel over rows.
    private func normalize(_ rows: Range<Int>, _ norm: PreparedEncoder.Norm, residual: Residual? = nil) {
        let h = config.hidden, epsilon = config.layerNormEpsilon, precision = model.precision
        parallelRows(rows) { range in
            let n = range.lowerBound
            let r = residual
            ek_residual_layernorm(self.hidden.typed(Float.self) + n * h, nil,
                                  r.map { self.accumulators!.typed(Int32.self) + (n - $0.first) * h },
                                  r.map { $0.rowScales.typed(Float.self) + (n - $0.scaleBase) },
                                  r?.linear.columnScales?.typed(Float.self), r?.linear.bias.typed(Float.self),
                                  r?.zeroPoints.map { $0.typed(Int32.self) + (n - r!.scaleBase) },
                                  r?.zeroPoints == nil ? nil : r?.linear.columnSums?.typed(Int32.self),
                                  range.count, h, norm.scale.typed(Float.self), norm.shift.typed(Float.self), epsilon,
                                  precision == .int8 ? self.hiddenLow!.typed(Int8.self) + n * h : nil,
                                  precision == .int8 ? self.hiddenScales!.typed(Float.self) + n : nil,
                                  precision == .bf16 ? self.hiddenLow!.typed(UInt16.self) + n * h : nil)
        }
    }

    private func attention(layer index: Int, batch: PackedSequences) throws {
        let h = config.hidden, tokens = batch.tokenCount
        let layer = model.layers[index]
        // Q, K and V for a group of whole sequences at a time, attended at
        // once: the (rows, 3 * hidden) projection never exists for the whole
        // batch, only for at most `qkvRows` rows.
        var first = 0
        while first < batch.count {
            var last = first + 1
            while last < batch.count && batch.starts[last + 1] - batch.starts[first] <= qkvRows { last += 1 }
            let rows = batch.starts[first]..<batch.starts[last]
            try projectQKV(layer: index, rows: rows)
            let starts = batch.starts[first...last].map { $0 - rows.lowerBound }
            try attend(starts: starts, qkv: qkv.typed(Float.self), context: context.typed(Float.self) + rows.lowerBound * h,
                       scores: scores.typed(Float.self))
            first = last
            yieldToUrgentWork()
        }
        // The output product's input in the compute precision.
        switch model.precision {
        case .fp32: break
        case .bf16:
            timed("quantize") {
                parallelRows(0..<tokens) { r in
                    ek_f32_to_bf16(self.context.typed(Float.self) + r.lowerBound * h, r.count, h, h,
                                   self.contextLow!.typed(UInt16.self) + r.lowerBound * h, h)
                }
            }
        case .int8:
            timed("quantize") {
                parallelRows(0..<tokens) { r in
                    ek_quantize_rows(self.context.typed(Float.self) + r.lowerBound * h, r.count, h, h,
                                     self.contextLow!.typed(Int8.self) + r.lowerBound * h, h,
                                     self.contextScales!.typed(Float.self) + r.lowerBound)
                }
            }
        }
        let input = contextInput, bytes = model.precision.activationBytes
        if model.precision == .int8 {
            try product(.output, layer: index, rows: 0..<tokens, source: { input.pointer + $0 * h * bytes },
                        destination: { _ in self.accumulators!.pointer }) { rows in
                self.normalize(rows, layer.attentionNorm, residual: Residual(
                    linear: layer.linear[LinearKind.output.rawValue], first: rows.lowerBound, rowScales: self.contextScales!))
            }
        } else {
            // The sum post-op adds the product onto the residual in `hidden`.
            try product(.output, layer: index, rows: 0..<tokens, source: { input.pointer + $0 * h * bytes },
                        destination: { self.hidden.pointer + $0 * h * 4 })
            timed("residual_layernorm") { normalize(0..<tokens, layer.attentionNorm) }
        }
    }

    /// qkv (rows relative to `rows.lowerBound`, 3 * hidden) = the QKV product of `rows`, float32.
    private func projectQKV(layer index: Int, rows: Range<Int>) throws {
        let h = config.hidden, base = rows.lowerBound
        switch model.precision {
        case .fp32, .bf16:
            let input = hiddenInput, bytes = model.precision.activationBytes
            try product(.qkv, layer: index, rows: rows, source: { input.pointer + $0 * h * bytes },
                        destination: { self.qkv.pointer + ($0 - base) * 3 * h * 4 })
        case .int8:
            let linear = model.layers[index].linear[LinearKind.qkv.rawValue]
            try product(.qkv, layer: index, rows: rows, source: { self.hiddenLow!.pointer + $0 * h },
                        destination: { _ in self.accumulators!.pointer }) { chunk in
                self.parallelRows(chunk) { range in
                    ek_dequantize_bias(self.accumulators!.typed(Int32.self) + (range.lowerBound - chunk.lowerBound) * 3 * h,
                                       range.count, 3 * h, self.hiddenScales!.typed(Float.self) + range.lowerBound,
                                       linear.columnScales!.typed(Float.self), linear.bias.typed(Float.self),
                                       self.qkv.typed(Float.self) + (range.lowerBound - base) * 3 * h)
                }
            }
        }
    }

    /// The FFN chunk by chunk, so its (tokens, intermediate) activations never
    /// exist whole: input product (bias + GELU fused), output product onto the
    /// residual, LayerNorm.
    private func feedForward(layer index: Int, tokens: Int) throws {
        let h = config.hidden, f = config.intermediate
        let layer = model.layers[index]
        var start = 0
        while start < tokens {
            let rows = start..<min(start + model.chunkRows, tokens)
            switch model.precision {
            case .fp32, .bf16:
                let input = hiddenInput, bytes = model.precision.activationBytes
                try product(.ffnIn, layer: index, rows: rows, source: { input.pointer + $0 * h * bytes },
                            destination: { self.intermediate.pointer + ($0 - rows.lowerBound) * f * bytes })
                try product(.ffnOut, layer: index, rows: rows, source: { self.intermediate.pointer + ($0 - rows.lowerBound) * f * bytes },
                            destination: { self.hidden.pointer + $0 * h * 4 })
                timed("residual_layernorm") { normalize(rows, layer.outputNorm) }
            case .int8:
                let linear = layer.linear[LinearKind.ffnIn.rawValue]
                try product(.ffnIn, layer: index, rows: rows, source: { self.hiddenLow!.pointer + $0 * h },
                            destination: { _ in self.accumulators!.pointer }) { chunk in
                    self.parallelRows(chunk) { range, worker in
                        let row = range.lowerBound - rows.lowerBound
                        ek_bias_gelu_quantize(self.accumulators!.typed(Int32.self) + (range.lowerBound - chunk.lowerBound) * f, range.count, f,
                                              self.hiddenScales!.typed(Float.self) + range.lowerBound,
                                              linear.columnScales!.typed(Float.self), linear.bias.typed(Float.self),
                                              self.rowTemporaries!.typed(Float.self) + worker * f,
                                              self.intermediate.typed(UInt8.self) + row * f,
                                              self.intermediateScales!.typed(Float.self) + row,
                                              self.intermediateZeroPoints!.typed(Int32.self) + row)
                    }
                }
                try product(.ffnOut, layer: index, rows: rows, source: { self.intermediate.pointer + ($0 - rows.lowerBound) * f },
                            destination: { _ in self.accumulators!.pointer }) { chunk in
                    self.normalize(chunk, layer.outputNorm, residual: Residual(
                        linear: layer.linear[LinearKind.ffnOut.rawValue], first: chunk.lowerBound, rowScales: self.intermediateScales!,
                        scaleBase: rows.lowerBound, zeroPoints: self.intermediateZeroPoints!))
                }
            }
            start = rows.upperBound
            yieldToUrgentWork()
        }
    }

    // MARK: Heads

    /// Sequence classification on each sequence's first token: DistilBERT's
    /// pre_classifier + ReLU or BERT's pooler + tanh, then the classifier.
    /// (sequences, labels)
    public func logits(_ batch: PackedSequences) throws -> [Float] {
        guard let head = model.classifier else {
            throw InferenceError.invalidArgument("the checkpoint has no sequence classification head (pre_classifier or pooler, classifier)")
        }
        try run(batch)
        let began = profile == nil ? nil : ContinuousClock.now
        defer { if let began { profile?.add("head", seconds(since: began)) } }
        let h = config.hidden, labels = head.bias.count, n = batch.count
        let states = hidden.typed(Float.self)
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
        switch head.activation {
        case .relu: for s in 0..<n { for i in 0..<h { pre[s * h + i] = max(0, pre[s * h + i] + head.preBias[i]) } }
        case .tanh: for s in 0..<n { for i in 0..<h { pre[s * h + i] = Foundation.tanh(pre[s * h + i] + head.preBias[i]) } }
        }
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

    /// Sentence embeddings: the mean of each sequence's token states
    /// (sequences, hidden), not normalized (the caller normalizes per
    /// request); with `tokenStates`, the states themselves too, (tokens, hidden)
    /// in packed order.
    public func embeddings(_ batch: PackedSequences, tokenStates: Bool = false) throws -> (pooled: [Float], states: [Float]?) {
        try run(batch)
        let began = profile == nil ? nil : ContinuousClock.now
        defer { if let began { profile?.add("head", seconds(since: began)) } }
        let h = config.hidden
        let states = hidden.typed(Float.self)
        var out = [Float](repeating: 0, count: batch.count * h)
        var mean = [Double](repeating: 0, count: h)
        for s in 0..<batch.count {
            let start = batch.starts[s], end = batch.starts[s + 1]
            guard end > start else { continue }
            for i in 0..<h { mean[i] = 0 }
            for t in start..<end { for i in 0..<h { mean[i] += Double(states[t * h + i]) } }
            let count = Double(end - start)
            for i in 0..<h { out[s * h + i] = Float(mean[i] / count) }
        }
        let all = tokenStates ? Array(UnsafeBufferPointer(start: states, count: batch.tokenCount * h)) : nil
        return (out, all)
    }

    /// SPLADE's sparse vectors: the masked-language-model logits of every
    /// token, log(1 + ReLU(x)), max-pooled over each sequence's tokens.
    /// (sequences, vocabulary), mostly zeros.
    public func sparseEmbeddings(_ batch: PackedSequences) throws -> [Float] {
        guard let head = model.maskedLanguageHead else {
            throw InferenceError.invalidArgument("the checkpoint has no masked-language-model head (cls.predictions or vocab_transform)")
        }
        try run(batch)
        let began = profile == nil ? nil : ContinuousClock.now
        defer { if let began { profile?.add("head", seconds(since: began)) } }
        let h = config.hidden, v = head.decoderBias.count, tokens = batch.tokenCount
        var transformed = [Float](repeating: 0, count: tokens * h)
        try head.transformWeight.withUnsafeBufferPointer { w in
            try transformed.withUnsafeMutableBufferPointer { o in
                try CPUMatmul.linear(hidden.typed(Float.self), rows: tokens, inFeatures: h, weight: w.baseAddress!, outFeatures: h, output: o.baseAddress!)
            }
        }
        // Bias + GELU, then the LayerNorm, with the encoder's own row kernels.
        for t in 0..<tokens { for i in 0..<h { transformed[t * h + i] = ek_gelu(transformed[t * h + i] + head.transformBias[i]) } }
        transformed.withUnsafeMutableBufferPointer { rows in
            ek_residual_layernorm(rows.baseAddress!, nil, nil, nil, nil, nil, nil, nil, tokens, h, head.normScale, head.normBias,
                                  config.layerNormEpsilon, nil, nil, nil)
        }
        // Sequence by sequence, so the (tokens, vocabulary) logits never exist whole.
        var out = [Float](repeating: 0, count: batch.count * v)
        var logits = [Float](repeating: 0, count: batch.longest * v)
        for s in 0..<batch.count {
            let start = batch.starts[s], n = batch.starts[s + 1] - start
            guard n > 0 else { continue }
            try transformed.withUnsafeBufferPointer { input in
                try head.decoderWeight.withUnsafeBufferPointer { w in
                    try logits.withUnsafeMutableBufferPointer { o in
                        try CPUMatmul.linear(input.baseAddress! + start * h, rows: n, inFeatures: h, weight: w.baseAddress!, outFeatures: v,
                                             output: o.baseAddress!)
                    }
                }
            }
            for j in 0..<v {
                var best: Float = 0
                for t in 0..<n { best = max(best, logits[t * v + j] + head.decoderBias[j]) }
                out[s * v + j] = log1p(best)
            }
        }
        return out
    }

    /// Token classification: the classifier on every token's state. (tokens, labels), in packed order.
    public func tokenLogits(_ batch: PackedSequences) throws -> [Float] {
        guard let head = model.tokenClassifier else {
            throw InferenceError.invalidArgument("the checkpoint has no token classification head (classifier on the encoder's states)")
        }
        try run(batch)
        let began = profile == nil ? nil : ContinuousClock.now
        defer { if let began { profile?.add("head", seconds(since: began)) } }
        let h = config.hidden, labels = head.bias.count, n = batch.tokenCount
        var out = [Float](repeating: 0, count: n * labels)
        try head.weight.withUnsafeBufferPointer { w in
            try out.withUnsafeMutableBufferPointer { o in
                try CPUMatmul.linear(hidden.typed(Float.self), rows: n, inFeatures: h, weight: w.baseAddress!, outFeatures: labels, output: o.baseAddress!)
            }
        }
        for t in 0..<n { for j in 0..<labels { out[t * labels + j] += head.bias[j] } }
        return out
    }

    /// The final hidden states, (tokens, hidden), in packed order: for tests.
    public func hiddenStates(_ batch: PackedSequences) throws -> [Float] {
        try run(batch)
        return Array(UnsafeBufferPointer(start: hidden.typed(Float.self), count: batch.tokenCount * config.hidden))
    }

    // MARK: Helpers

    private func timed(_ operation: String, _ body: () -> Void) {
        guard profile != nil else { return body() }
        let began = ContinuousClock.now
        body()
        profile?.add(operation, seconds(since: began))
    }

    private func seconds(since instant: ContinuousClock.Instant) -> Double { Self.seconds(ContinuousClock.now - instant) }

    /// Splits rows among the instance's threads, one slice each (the body gets
    /// its slice and worker index); small ranges run inline.
    func parallelRows(_ rows: Range<Int>, _ body: (Range<Int>, Int) -> Void) {
        let count = rows.count
        let workers = min(threads, max(1, count / 8))
        guard workers > 1 else { return body(rows, 0) }
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedBox(body)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let lo = rows.lowerBound + count * w / workers, hi = rows.lowerBound + count * (w + 1) / workers
                shared.value(lo..<hi, w)
            }
        }
    }

    func parallelRows(_ rows: Range<Int>, _ body: (Range<Int>) -> Void) {
        parallelRows(rows) { range, _ in body(range) }
    }
}

/// A value handed to worker threads that each touch only their own rows.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
