import InferenceCore
import Logging
import TransformerModel

/// The encoder's forward pass on one CUDA device for one model instance: its
/// own stream, cuBLAS handle and workspace, weights and activation buffers
/// sized by an EncoderPlan, pinned staging. One batch at a time (the
/// scheduler's executor guarantees it). The launch sequence is the table in
/// docs/gpu.md; the CPU path (EncoderForward) is its oracle.
final class CUDAEncoderForward: @unchecked Sendable {
    enum MatrixMath: String { case tf32, fp32, bf16 }

    let platform: CUDAPlatform
    let device: Int
    let plan: EncoderPlan
    let config: EncoderConfig
    let math: MatrixMath
    private let memory: DeviceAllocations
    private let kernels: KernelModules
    private let handles: StreamContext
    private var stream: RawPointer? { handles.stream }
    private var cublas: RawPointer? { handles.cublas }
    /// The model version's weights on this device, shared with its other instances there.
    private let shared: DeviceWeightCopy
    private var weights: DeviceWeights { shared.weights }
    private let buffers: [String: RawPointer]
    private let staging: RawPointer


    init(platform: CUDAPlatform, device: Int, model: EncoderModel, weights: DeviceWeightCopy, math: MatrixMath,
         compiler: KernelCompiler) throws {
        shared = weights
        self.platform = platform
        self.device = device
        self.config = model.config
        self.math = math
        let computeCapability = platform.devices.first { $0.index == device }?.computeCapability ?? CUDAPlatform.minimumComputeCapability
        guard math != .bf16 || computeCapability >= 80 else {
            throw InferenceError.unsupported("GPU \(device) (sm_\(computeCapability)) has no bf16 tensor cores; use precision fp32")
        }
        let c = model.config
        let batchTokens = model.spec.dynamicBatching?.maxBatchTokens
        plan = try EncoderPlan(
            shape: EncoderShape(hidden: c.hidden, heads: c.heads, intermediate: c.intermediate, layers: c.layers,
                                vocabulary: c.vocabularySize, maxPositions: c.maxPositions,
                                labels: model.head == .logits ? model.outputWidth : 0,
                                tokenTypeRow: model.hasTokenTypeEmbedding),
            maxBatchSize: model.spec.maxBatchSize, maxBatchTokens: batchTokens, bf16: math == .bf16)

        handles = try StreamContext(platform: platform, device: device)
        memory = DeviceAllocations(platform: platform, device: device)
        kernels = try KernelModules(platform: platform, compiler: compiler, computeCapability: computeCapability)

        var allocated: [String: RawPointer] = [:]
        for buffer in plan.buffers { allocated[buffer.name] = try memory.device(bytes: buffer.bytes, buffer.name) }
        buffers = allocated
        try platform.checkBLAS(platform.cublas.cublasSetWorkspace(handles.cublas, allocated["cublas_workspace"], EncoderPlan.cublasWorkspaceBytes),
                               "cublasSetWorkspace")
        staging = try memory.pinned(bytes: plan.pinnedBytes, "staging")
    }

    deinit {
        // Runs before the members release their device memory, modules, stream
        // and handle: all of them on this instance's device, whichever thread
        // tears it down.
        _ = platform.runtime.cudaSetDevice(Int32(device))
    }

    // MARK: Forward

    /// Logits (sequences, labels) or embeddings (sequences, hidden) of a packed batch.
    func run(_ batch: PackedSequences, head: EncoderModel.Head) throws -> [Float] {
        let tokens = batch.tokenCount, sequences = batch.count
        guard tokens > 0 else { return [] }
        try plan.check(starts: batch.starts)
        try platform.check(platform.runtime.cudaSetDevice(Int32(device)), "cudaSetDevice(\(device))")
        let h = config.hidden, d = config.headDimension, heads = config.heads, f = config.intermediate
        let lengths = (0..<sequences).map { batch.starts[$0 + 1] - batch.starts[$0] }
        let offsets = EncoderPlan.scoreOffsets(starts: batch.starts, heads: heads)
        let softmaxGeometry = plan.softmax(longest: batch.longest, sequences: sequences)
        let ids = buffer("token_ids"), positions = buffer("positions"), starts = buffer("starts"), scoreOffsets = buffer("score_offsets")
        let hidden = buffer("hidden"), qkv = buffer("qkv"), q = buffer("q"), k = buffer("k"), v = buffer("v")
        let scores = buffer("scores"), contextHeads = buffer("context_heads"), context = buffer("context")
        let projected = buffer("projected"), intermediate = buffer("intermediate"), output = buffer("output")

        // Stage (tokens) ids, (tokens) positions, (sequences + 1) starts and score offsets in pinned memory, then one copy each.
        var cursor = staging
        func stage<T>(_ values: [T], to destination: RawPointer) throws {
            let bytes = values.count * MemoryLayout<T>.stride
            values.withUnsafeBytes { cursor.copyMemory(from: $0.baseAddress!, byteCount: bytes) }
            try platform.check(platform.runtime.cudaMemcpyAsync(destination, cursor, bytes, RuntimeFunctions.hostToDevice, stream),
                               "cudaMemcpyAsync(staging, \(bytes) bytes)")
            cursor += (bytes + 7) & ~7
        }
        try stage(batch.tokenIDs, to: ids)
        try stage(batch.positions, to: positions)
        try stage(batch.starts.map(Int32.init), to: starts)
        try stage(offsets, to: scoreOffsets)

        var embed = KernelArguments()
        embed.pointer(hidden); embed.pointer(ids); embed.pointer(positions); embed.pointer(weights.words); embed.pointer(weights.positions)
        embed.pointer(weights.tokenType); embed.pointer(weights.normScale); embed.pointer(weights.normBias)
        embed.int32(h); embed.float(config.layerNormEpsilon)
        try launch("embedding_layernorm_f32", plan.layerNorm(tokens: tokens), embed)

        for layer in weights.layers {
            try linear(input: hidden, rows: tokens, inFeatures: h, weight: layer.qkv, outFeatures: 3 * h, output: qkv)
            var split = KernelArguments()
            split.pointer(q); split.pointer(k); split.pointer(v); split.pointer(qkv); split.pointer(layer.qkvBias); split.pointer(starts)
            split.int32(sequences); split.int32(h); split.int32(d)
            try launch("split_qkv_heads_f32", plan.rows(tokens), split)
            // scores_s (heads, L, L) = Q_s K_s^T / sqrt(d), one strided batch over heads per sequence.
            for s in 0..<sequences where lengths[s] > 0 {
                let L = lengths[s], base = batch.starts[s] * h * 4
                try attentionProduct(transposeA: true, m: L, n: L, k: d, alpha: 1 / Float(d).squareRoot(),
                                     a: k + base, lda: d, strideA: L * d, b: q + base, ldb: d, strideB: L * d,
                                     c: scores + Int(offsets[s]) * 4, ldc: L, strideC: L * L, batch: heads)
            }
            var softmax = KernelArguments()
            softmax.pointer(scores); softmax.pointer(starts); softmax.pointer(scoreOffsets); softmax.float(1)
            try launch("attention_softmax_f32", softmaxGeometry, softmax)
            // context_s (heads, L, d) = P_s V_s.
            for s in 0..<sequences where lengths[s] > 0 {
                let L = lengths[s], base = batch.starts[s] * h * 4
                try attentionProduct(transposeA: false, m: d, n: L, k: L, alpha: 1,
                                     a: v + base, lda: d, strideA: L * d, b: scores + Int(offsets[s]) * 4, ldb: L, strideB: L * L,
                                     c: contextHeads + base, ldc: d, strideC: L * d, batch: heads)
            }
            var merge = KernelArguments()
            merge.pointer(context); merge.pointer(contextHeads); merge.pointer(starts); merge.int32(sequences); merge.int32(h); merge.int32(d)
            try launch("merge_heads_f32", plan.rows(tokens), merge)
            try linear(input: context, rows: tokens, inFeatures: h, weight: layer.output, outFeatures: h, output: projected)
            try biasResidualLayerNorm(hidden: hidden, x: projected, bias: layer.outputBias, scale: layer.norm1Scale, shift: layer.norm1Bias, tokens: tokens)
            try linear(input: hidden, rows: tokens, inFeatures: h, weight: layer.ffnIn, outFeatures: f, output: intermediate)
            var gelu = KernelArguments()
            gelu.pointer(intermediate); gelu.pointer(layer.ffnInBias); gelu.int32(f)
            try launch("bias_gelu_f32", plan.rows(tokens), gelu)
            try linear(input: intermediate, rows: tokens, inFeatures: f, weight: layer.ffnOut, outFeatures: h, output: projected)
            try biasResidualLayerNorm(hidden: hidden, x: projected, bias: layer.ffnOutBias, scale: layer.norm2Scale, shift: layer.norm2Bias, tokens: tokens)
        }

        let width: Int
        switch head {
        case .embedding:
            width = h
            var pool = KernelArguments()
            pool.pointer(output); pool.pointer(hidden); pool.pointer(starts); pool.int32(h)
            try launch("mean_pool_l2norm_f32", plan.pooling(sequences: sequences), pool)
        case .logits:
            guard let pre = weights.preClassifier, let preBias = weights.preClassifierBias,
                  let classifier = weights.classifier, let classifierBias = weights.classifierBias else {
                throw InferenceError.invalidArgument("the checkpoint has no classification head (pre_classifier, classifier)")
            }
            width = plan.shape.labels
            let first = buffer("pooled"), preOut = buffer("pre_classifier")
            var gather = KernelArguments()  // each sequence's first token: rows = starts[0..<sequences]
            gather.pointer(first); gather.pointer(hidden); gather.pointer(starts); gather.int32(h)
            try launch("gather_rows_f32", plan.rows(sequences), gather)
            try gemm(m: h, n: sequences, k: h, a: pre, aType: CUBLASFunctions.realFloat, b: first, bType: CUBLASFunctions.realFloat, c: preOut)
            var relu = KernelArguments()
            relu.pointer(preOut); relu.pointer(preBias); relu.int32(h)
            try launch("bias_relu_f32", plan.rows(sequences), relu)
            try gemm(m: width, n: sequences, k: h, a: classifier, aType: CUBLASFunctions.realFloat, b: preOut, bType: CUBLASFunctions.realFloat, c: output)
            var bias = KernelArguments()
            bias.pointer(output); bias.pointer(classifierBias); bias.int32(width)
            try launch("add_bias_f32", plan.rows(sequences), bias)
        case .tokenClassification, .sparseEmbedding:
            // Refused at load (CUDAEncoderAccelerator.validate); kept exhaustive.
            throw InferenceError.invalidArgument("token classification and sparse embeddings run on KIND_CPU instances only")
        }

        let bytes = sequences * width * 4
        try platform.check(platform.runtime.cudaMemcpyAsync(staging, output, bytes, RuntimeFunctions.deviceToHost, stream),
                           "cudaMemcpyAsync(output, \(bytes) bytes)")
        try platform.check(platform.runtime.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        return Array(UnsafeBufferPointer(start: staging.assumingMemoryBound(to: Float.self), count: sequences * width))
    }

    private func buffer(_ name: String) -> RawPointer { buffers[name]! }

    private func launch(_ kernel: String, _ geometry: LaunchGeometry, _ arguments: borrowing KernelArguments) throws {
        let function = try kernels.function(kernel)
        try platform.checkDriver(
            platform.driver.cuLaunchKernel(function, UInt32(geometry.grid.x), UInt32(geometry.grid.y), UInt32(geometry.grid.z),
                                           UInt32(geometry.block), 1, 1, UInt32(geometry.sharedBytes), stream, arguments.list, nil),
            "cuLaunchKernel(\(kernel), grid \(geometry.grid), block \(geometry.block))")
    }

    private func biasResidualLayerNorm(hidden: RawPointer, x: RawPointer, bias: RawPointer, scale: RawPointer, shift: RawPointer,
                                       tokens: Int) throws {
        var arguments = KernelArguments()
        arguments.pointer(hidden); arguments.pointer(x); arguments.pointer(bias); arguments.pointer(scale); arguments.pointer(shift)
        arguments.int32(config.hidden); arguments.float(config.layerNormEpsilon)
        try launch("bias_residual_layernorm_f32", plan.layerNorm(tokens: tokens), arguments)
    }

    /// output (rows, outFeatures) = input (rows, inFeatures) W^T, W (outFeatures, inFeatures), no bias
    /// (the next kernel adds it). In bf16 mode the input is converted first.
    private func linear(input: RawPointer, rows: Int, inFeatures: Int, weight: RawPointer, outFeatures: Int, output: RawPointer) throws {
        if math == .bf16 {
            let converted = buffer("bf16_activations")
            var convert = KernelArguments()
            convert.pointer(converted); convert.pointer(input); convert.uint64(rows * inFeatures)
            try launch("convert_f32_to_bf16", plan.convert(elements: rows * inFeatures), convert)
            try gemm(m: outFeatures, n: rows, k: inFeatures, a: weight, aType: CUBLASFunctions.realBFloat16,
                     b: converted, bType: CUBLASFunctions.realBFloat16, c: output)
        } else {
            try gemm(m: outFeatures, n: rows, k: inFeatures, a: weight, aType: CUBLASFunctions.realFloat,
                     b: input, bType: CUBLASFunctions.realFloat, c: output)
        }
    }

    /// Row-major Y (n, m) = X (n, k) W^T with W (m, k): column-major C (m, n) = op_T(A) B.
    private func gemm(m: Int, n: Int, k: Int, a: RawPointer, aType: Int32, b: RawPointer, bType: Int32, c: RawPointer) throws {
        var one: Float = 1, zero: Float = 0
        let status = platform.cublas.cublasGemmEx(cublas, CUBLASFunctions.opT, CUBLASFunctions.opN, Int32(m), Int32(n), Int32(k),
                                                  &one, a, aType, Int32(k), b, bType, Int32(k), &zero, c, CUBLASFunctions.realFloat,
                                                  Int32(m), computeType, CUBLASFunctions.defaultAlgorithm)
        try platform.checkBLAS(status, "cublasGemmEx(m \(m), n \(n), k \(k))")
    }

    private func attentionProduct(transposeA: Bool, m: Int, n: Int, k: Int, alpha: Float, a: RawPointer, lda: Int, strideA: Int,
                                  b: RawPointer, ldb: Int, strideB: Int, c: RawPointer, ldc: Int, strideC: Int, batch: Int) throws {
        var alpha = alpha, zero: Float = 0
        let f = CUBLASFunctions.realFloat
        let status = platform.cublas.cublasGemmStridedBatchedEx(
            cublas, transposeA ? CUBLASFunctions.opT : CUBLASFunctions.opN, CUBLASFunctions.opN, Int32(m), Int32(n), Int32(k), &alpha,
            a, f, Int32(lda), Int64(strideA), b, f, Int32(ldb), Int64(strideB), &zero, c, f, Int32(ldc), Int64(strideC), Int32(batch),
            math == .fp32 ? CUBLASFunctions.computeFloat : CUBLASFunctions.computeFloatFastTF32, CUBLASFunctions.defaultAlgorithm)
        try platform.checkBLAS(status, "cublasGemmStridedBatchedEx(m \(m), n \(n), k \(k), batch \(batch))")
    }

    private var computeType: Int32 {
        switch math {
        case .tf32: CUBLASFunctions.computeFloatFastTF32
        case .fp32, .bf16: CUBLASFunctions.computeFloat  // bf16 inputs accumulate in fp32
        }
    }
}
