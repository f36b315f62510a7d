/// The geometry every kernel in `cuda/` is launched with, and CPU simulations
/// of the reductions they share (`warp_sum`, `warp_max`, `block_sum`), so a
/// twin adds Floats in exactly the order the GPU does.
public enum WarpReduction {
    /// blockDim.x of every kernel (LN_THREADS, SOFTMAX_THREADS, POOL_THREADS, ...).
    public static let threadsPerBlock = EncoderPlan.threadsPerBlock
    public static let warpSize = 32
    public static let warpsPerBlock = threadsPerBlock / warpSize
    /// The `__shfl_xor_sync` offsets of the butterfly, in the order applied.
    public static let butterflyOffsets = [16, 8, 4, 2, 1]

    /// Every lane's value after the kernels' `warp_sum`: at each offset all 32
    /// lanes read their partner's value from before the step (a shuffle is
    /// simultaneous), then add it to their own.
    public static func warpSumLanes(_ lanes: [Float]) -> [Float] {
        precondition(lanes.count == warpSize, "a warp has \(warpSize) lanes, got \(lanes.count)")
        var v = lanes
        for offset in butterflyOffsets {
            let before = v
            for lane in 0..<warpSize { v[lane] = before[lane] + before[lane ^ offset] }
        }
        return v
    }

    /// `warp_sum`: lane 0's result. Float addition commutes, so every lane
    /// ends with the same bits and which lane is read does not matter.
    public static func warpSum(_ lanes: [Float]) -> Float {
        warpSumLanes(lanes)[0]
    }

    /// `warp_max` of attention_softmax.cu (`fmaxf` butterfly). Max is exact, so
    /// only NaN and signed-zero handling could make its order visible.
    public static func warpMax(_ lanes: [Float]) -> Float {
        precondition(lanes.count == warpSize, "a warp has \(warpSize) lanes, got \(lanes.count)")
        var v = lanes
        for offset in butterflyOffsets {
            let before = v
            for lane in 0..<warpSize { v[lane] = cudaFmaxf(before[lane], before[lane ^ offset]) }
        }
        return v[0]
    }

    /// `block_sum` of the LayerNorm and pooling kernels: `warp_sum` in each of
    /// the 8 warps, then ((p0 + p1) + p2) + ... + p7 in warp order.
    /// `threads` holds each thread's partial, indexed by threadIdx.x.
    public static func blockSum(_ threads: [Float]) -> Float {
        precondition(threads.count == threadsPerBlock, "a block has \(threadsPerBlock) threads, got \(threads.count)")
        var total: Float = 0
        for warp in 0..<warpsPerBlock {
            let partial = warpSum(Array(threads[(warp * warpSize)..<((warp + 1) * warpSize)]))
            // The kernel starts from partials[0], not from 0 + partials[0]:
            // the two differ only for a -0 partial, but repeat it exactly.
            total = warp == 0 ? partial : total + partial
        }
        return total
    }

    /// Each thread's partial over its strided slice i = t, t + 256, ... < count,
    /// accumulated in ascending i from 0 with `step(acc, i)`: the loop every
    /// reducing kernel runs before `block_sum`.
    public static func stridedPartials(count: Int, _ step: (Float, Int) -> Float) -> [Float] {
        var partials = [Float](repeating: 0, count: threadsPerBlock)
        for thread in 0..<threadsPerBlock {
            var acc: Float = 0
            for i in stride(from: thread, to: count, by: threadsPerBlock) { acc = step(acc, i) }
            partials[thread] = acc
        }
        return partials
    }

    /// CUDA's `fmaxf`: a NaN operand yields the other one, as C's fmax.
    /// For +0 and -0 it returns +0 (IEEE 754-2019 maximumNumber): an assumption,
    /// the kernels' comments do not say; Swift's `Float.maximum` would return
    /// its second operand. Only `bias_relu_f32` of a -0 sum can observe it.
    @inline(__always)
    public static func cudaFmaxf(_ a: Float, _ b: Float) -> Float {
        if a.isNaN { return b }
        if b.isNaN { return a }
        if a == b { return a.sign == .minus ? b : a }
        return a > b ? a : b
    }
}
