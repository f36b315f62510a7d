/// CPU twin of `mean_pool_l2norm_f32` (pooling.cu): sentence embeddings, the
/// L2-normalised mean of each sequence's token states, in Float in the
/// kernel's order (the CPU path accumulates in Double instead).
public enum PoolingTwin {
    public static let threadsPerBlock = WarpReduction.threadsPerBlock
    /// The floor under the norm, so a zero mean divides by 1e-12, not by 0.
    public static let normFloor: Float = 1e-12

    /// out[s] = mean / max(|mean|_2, 1e-12); an empty sequence gets zeros.
    /// The grid (sequences) is `starts.count - 1`.
    public static func meanPoolL2Norm(out: inout [Float],  // (sequences, hidden)
                                      states: [Float],     // (tokens, hidden)
                                      starts: [Int32],     // (sequences + 1)
                                      hidden: Int) {
        let sequences = starts.count - 1
        precondition(sequences >= 0 && hidden > 0, "starts needs sequences + 1 entries; hidden must be positive")
        precondition(out.count >= sequences * hidden, "out needs \(sequences * hidden) floats")
        for s in 0..<sequences {
            let start = Int(starts[s]), end = Int(starts[s + 1])
            let o = s * hidden
            if end <= start {
                for c in 0..<hidden { out[o + c] = 0 }
                continue
            }
            precondition(end * hidden <= states.count, "states too short for sequence \(s)")
            let count = Float(end - start)
            // Each thread's columns, ascending; the mean goes to out and is read
            // back by the same thread after the block sum.
            let partials = WarpReduction.stridedPartials(count: hidden) { sq, c in
                var acc: Float = 0
                for t in start..<end { acc = acc + states[t * hidden + c] }
                let mean = acc / count
                out[o + c] = mean
                return sq.addingProduct(mean, mean)
            }
            let norm = WarpReduction.blockSum(partials).squareRoot()
            let inv = 1 / WarpReduction.cudaFmaxf(norm, normFloor)
            for c in 0..<hidden { out[o + c] = out[o + c] * inv }
        }
    }
}
