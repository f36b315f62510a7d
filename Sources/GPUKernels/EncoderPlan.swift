import InferenceCore

/// One kernel launch's geometry.
public struct LaunchGeometry: Sendable, Equatable {
    public var grid: (x: Int, y: Int, z: Int)
    public var block: Int
    public var sharedBytes: Int

    public init(grid: (x: Int, y: Int, z: Int), block: Int = EncoderPlan.threadsPerBlock, sharedBytes: Int = 0) {
        self.grid = grid
        self.block = block
        self.sharedBytes = sharedBytes
    }

    public static func == (a: LaunchGeometry, b: LaunchGeometry) -> Bool {
        a.grid == b.grid && a.block == b.block && a.sharedBytes == b.sharedBytes
    }
}

/// The shapes one encoder instance works with.
public struct EncoderShape: Sendable, Equatable {
    public var hidden: Int
    public var heads: Int
    public var intermediate: Int
    public var layers: Int
    public var vocabulary: Int
    public var maxPositions: Int
    /// Classifier labels; 0 for an embedding model.
    public var labels: Int
    /// BERT adds token type 0's embedding row; DistilBERT has none.
    public var tokenTypeRow: Bool

    public init(hidden: Int, heads: Int, intermediate: Int, layers: Int, vocabulary: Int, maxPositions: Int, labels: Int,
                tokenTypeRow: Bool = false) {
        self.tokenTypeRow = tokenTypeRow
        self.hidden = hidden
        self.heads = heads
        self.intermediate = intermediate
        self.layers = layers
        self.vocabulary = vocabulary
        self.maxPositions = maxPositions
        self.labels = labels
    }

    public var headDimension: Int { hidden / heads }
}

/// Device buffers and launch geometry of one GPU encoder instance, worked out
/// on the host from the model's shapes and the configuration's limits. Buffers
/// are sized once at load for the largest batch the scheduler can form, so
/// serving never allocates. Pure values: tested without a GPU.
public struct EncoderPlan: Sendable, Equatable {
    /// blockDim.x of every kernel (the `*_THREADS` defines in cuda/).
    public static let threadsPerBlock = 256
    /// Softmax rows per block: one warp per row.
    public static let softmaxRowsPerBlock = threadsPerBlock / 32

    public struct Buffer: Sendable, Equatable {
        public let name: String
        public let bytes: Int
    }

    public let shape: EncoderShape
    /// Most sequences in a batch: max_batch_size.
    public let maxSequences: Int
    /// Most tokens in a batch: max_batch_size × max positions, or the
    /// scheduler's `max_batch_tokens` when smaller.
    public let maxTokens: Int
    /// Most attention-score floats a batch can need: heads × Σ L_s².
    public let maxScoreElements: Int
    public let bf16: Bool
    /// cuBLAS workspace per instance (cuBLAS recommends 32 MiB on Hopper).
    public static let cublasWorkspaceBytes = 32 << 20

    public init(shape: EncoderShape, maxBatchSize: Int, maxBatchTokens: Int? = nil, bf16: Bool = false) throws {
        guard shape.heads > 0, shape.hidden % shape.heads == 0 else {
            throw InferenceError.invalidArgument("hidden size \(shape.hidden) is not a multiple of \(shape.heads) heads")
        }
        guard maxBatchSize > 0 else { throw InferenceError.invalidArgument("the GPU encoder needs max_batch_size > 0") }
        self.shape = shape
        self.bf16 = bf16
        maxSequences = maxBatchSize
        let (product, overflow) = maxBatchSize.multipliedReportingOverflow(by: shape.maxPositions)
        maxTokens = min(overflow ? Int.max : product, maxBatchTokens ?? .max)
        maxScoreElements = shape.heads * Self.largestSumOfSquares(tokens: maxTokens, longest: shape.maxPositions, sequences: maxSequences)
    }

    /// The largest Σ L_s² over at most `sequences` lengths of at most `longest`
    /// adding up to at most `tokens`: as many full-length sequences as fit, then the rest.
    public static func largestSumOfSquares(tokens: Int, longest: Int, sequences: Int) -> Int {
        let full = min(tokens / longest, sequences)
        let rest = full < sequences ? min(tokens - full * longest, longest) : 0
        return full * longest * longest + rest * rest
    }

    /// Every device buffer, in allocation order, with the shape it holds.
    public var buffers: [Buffer] {
        let t = maxTokens, s = maxSequences, h = shape.hidden, f = shape.intermediate
        let float = MemoryLayout<Float>.size, int32 = MemoryLayout<Int32>.size
        var list: [Buffer] = [
            Buffer(name: "token_ids", bytes: t * int32),                 // (tokens)
            Buffer(name: "positions", bytes: t * int32),                 // (tokens)
            Buffer(name: "starts", bytes: (s + 1) * int32),              // (sequences + 1)
            Buffer(name: "score_offsets", bytes: (s + 1) * MemoryLayout<Int64>.size),  // (sequences + 1)
            Buffer(name: "hidden", bytes: t * h * float),                // (tokens, hidden)
            Buffer(name: "qkv", bytes: t * 3 * h * float),               // (tokens, 3 * hidden)
            Buffer(name: "q", bytes: t * h * float),                     // per sequence (heads, L, head_dim)
            Buffer(name: "k", bytes: t * h * float),                     // per sequence (heads, L, head_dim)
            Buffer(name: "v", bytes: t * h * float),                     // per sequence (heads, L, head_dim)
            Buffer(name: "scores", bytes: maxScoreElements * float),     // per sequence (heads, L, L)
            Buffer(name: "context_heads", bytes: t * h * float),         // per sequence (heads, L, head_dim)
            Buffer(name: "context", bytes: t * h * float),               // (tokens, hidden)
            Buffer(name: "projected", bytes: t * h * float),             // (tokens, hidden)
            Buffer(name: "intermediate", bytes: t * f * float),          // (tokens, intermediate)
            Buffer(name: "pooled", bytes: s * h * float),                // (sequences, hidden)
            Buffer(name: "pre_classifier", bytes: s * h * float),        // (sequences, hidden)
            Buffer(name: "output", bytes: s * max(shape.labels, h) * float),  // (sequences, labels or hidden)
            Buffer(name: "cublas_workspace", bytes: Self.cublasWorkspaceBytes),
        ]
        if bf16 {
            // The activations of the widest linear input, converted before each product.
            list.append(Buffer(name: "bf16_activations", bytes: t * max(h, f) * MemoryLayout<UInt16>.size))  // (tokens, max(hidden, intermediate))
        }
        return list
    }

    public var activationBytes: Int { buffers.reduce(0) { $0 + $1.bytes } }

    /// Bytes of the weights on the device: every layer's four linear layers, the
    /// embeddings, norms and head (linear weights in bf16 when chosen).
    public var weightBytes: Int {
        let h = shape.hidden, f = shape.intermediate
        let linear = shape.layers * (3 * h * h + h * h + 2 * h * f)
        let linearBytes = linear * (bf16 ? 2 : 4)
        let vectors = shape.layers * (3 * h + h + f + h + 4 * h)
        let embeddings = (shape.vocabulary + shape.maxPositions + (shape.tokenTypeRow ? 1 : 0)) * h + 2 * h
        let head = shape.labels > 0 ? h * h + h + shape.labels * h + shape.labels : 0
        return linearBytes + (vectors + embeddings + head) * 4
    }

    /// Pinned host staging: ids, positions, starts and score offsets up; outputs down.
    public var pinnedBytes: Int {
        (2 * maxTokens + maxSequences + 1) * 4 + (maxSequences + 1) * 8 + maxSequences * max(shape.labels, shape.hidden) * 4
    }

    // MARK: Per-batch values

    /// Element offsets of each sequence's (heads, L, L) scores; the last is the total.
    public static func scoreOffsets(starts: [Int], heads: Int) -> [Int64] {
        var offsets: [Int64] = [0]
        offsets.reserveCapacity(starts.count)
        for s in 0..<(starts.count - 1) {
            let length = Int64(starts[s + 1] - starts[s])
            offsets.append(offsets[s] + Int64(heads) * length * length)
        }
        return offsets
    }

    /// Checks a packed batch fits the buffers planned at load.
    public func check(starts: [Int]) throws {
        let sequences = starts.count - 1, tokens = starts.last ?? 0
        guard sequences <= maxSequences, tokens <= maxTokens else {
            throw InferenceError.internal("batch of \(sequences) sequences and \(tokens) tokens exceeds the GPU plan (\(maxSequences), \(maxTokens))")
        }
        let scores = Self.scoreOffsets(starts: starts, heads: shape.heads).last ?? 0
        guard scores <= Int64(maxScoreElements) else {
            throw InferenceError.internal("batch needs \(scores) attention scores, the GPU plan holds \(maxScoreElements)")
        }
    }

    // MARK: Launch geometry (see each kernel's header comment in cuda/)

    /// embedding_layernorm_f32 and bias_residual_layernorm_f32: a block per token, the row in shared memory.
    public func layerNorm(tokens: Int) -> LaunchGeometry {
        LaunchGeometry(grid: (tokens, 1, 1), sharedBytes: shape.hidden * MemoryLayout<Float>.size)
    }

    /// Row-wise element kernels (bias_gelu, bias_relu, add_bias, packing, gather/scatter): a block per row.
    public func rows(_ count: Int) -> LaunchGeometry {
        LaunchGeometry(grid: (count, 1, 1))
    }

    /// attention_softmax_f32: a warp per score row, every head and sequence in one launch.
    public func softmax(longest: Int, sequences: Int) -> LaunchGeometry {
        LaunchGeometry(grid: Self.softmaxGrid(longest: longest, heads: shape.heads, sequences: sequences))
    }

    /// attention_softmax_f32's grid: (ceil(longest / 8), heads, sequences).
    public static func softmaxGrid(longest: Int, heads: Int, sequences: Int) -> (x: Int, y: Int, z: Int) {
        ((longest + softmaxRowsPerBlock - 1) / softmaxRowsPerBlock, heads, sequences)
    }

    /// mean_pool_l2norm_f32: a block per sequence.
    public func pooling(sequences: Int) -> LaunchGeometry {
        LaunchGeometry(grid: (sequences, 1, 1))
    }

    /// convert_f32_to_bf16: one element per thread.
    public func convert(elements: Int) -> LaunchGeometry {
        LaunchGeometry(grid: (Self.convertBlocks(elements: elements), 1, 1))
    }

    /// convert_f32_to_bf16's grid: ceil(elements / 256) blocks.
    public static func convertBlocks(elements: Int) -> Int {
        (elements + threadsPerBlock - 1) / threadsPerBlock
    }
}

/// Where each of a model's instances runs.
public enum InstancePlacement: Sendable, Equatable {
    case cpu
    case gpu(device: Int)

    /// Instance i in the order the scheduler creates them: groups in config
    /// order; within a KIND_GPU group, `count` instances on each listed GPU in
    /// turn, or spread round-robin over the visible devices when none is listed.
    public static func assign(groups: [InstanceGroupSpec], visibleDevices: [Int]) throws -> [InstancePlacement] {
        var placements: [InstancePlacement] = []
        for group in groups {
            switch group.kind {
            case .cpu, .model:
                placements += Array(repeating: .cpu, count: group.count)
            case .gpu:
                if group.gpus.isEmpty {
                    guard !visibleDevices.isEmpty else { throw InferenceError.unavailable("no usable CUDA device") }
                    placements += (0..<group.count).map { .gpu(device: visibleDevices[$0 % visibleDevices.count]) }
                } else {
                    for gpu in group.gpus {
                        guard visibleDevices.contains(gpu) else {
                            throw InferenceError.unavailable(
                                "instance_group asks for GPU \(gpu) but the usable devices are [\(visibleDevices.map(String.init).joined(separator: ", "))]")
                        }
                        placements += Array(repeating: .gpu(device: gpu), count: group.count)
                    }
                }
            }
        }
        return placements
    }
}
