import Foundation

/// CPU twin of `attention_softmax_f32` (attention_softmax.cu): in-place row
/// softmax of every sequence's (heads, L_s, L_s) scores, one warp per row.
/// Bit for bit except `expf`, which is the host libm's here and libdevice's
/// on the GPU (each within 2 ulp).
public enum AttentionSoftmaxTwin {
    public static let threadsPerBlock = WarpReduction.threadsPerBlock
    /// SOFTMAX_ROWS_PER_BLOCK: one warp per row.
    public static let rowsPerBlock = EncoderPlan.softmaxRowsPerBlock

    /// The launch grid the host uses: (ceil(longest / 8), heads, sequences).
    public static func grid(starts: [Int32], heads: Int) -> (x: Int, y: Int, z: Int) {
        let sequences = max(starts.count - 1, 0)
        let longest = (0..<sequences).map { Int(starts[$0 + 1] - starts[$0]) }.max() ?? 0
        return EncoderPlan.softmaxGrid(longest: longest, heads: heads, sequences: sequences)
    }

    /// `score_offsets` as the host stages them: (sequences + 1) prefix sums of heads * L_s * L_s.
    public static func scoreOffsets(starts: [Int32], heads: Int) -> [Int64] {
        EncoderPlan.scoreOffsets(starts: starts.map(Int.init), heads: heads)
    }

    /// p = softmax(scale * scores) along each row. `heads` is the grid's y
    /// dimension; the sequences are `starts.count - 1` (the grid's z).
    public static func attentionSoftmax(scores: inout [Float],    // sequence s: (heads, L_s, L_s) at scoreOffsets[s]
                                        starts: [Int32],          // (sequences + 1)
                                        scoreOffsets: [Int64],    // (sequences + 1)
                                        heads: Int, scale: Float) {
        precondition(!starts.isEmpty && scoreOffsets.count == starts.count, "starts and scoreOffsets need sequences + 1 entries each")
        let (gridX, gridY, gridZ) = grid(starts: starts, heads: heads)
        let warp = WarpReduction.warpSize
        var lanes = [Float](repeating: 0, count: warp)
        for s in 0..<gridZ {
            let length = Int(starts[s + 1] - starts[s])
            precondition(length >= 0, "starts must not decrease (sequence \(s))")
            precondition(Int(scoreOffsets[s]) + heads * length * length <= scores.count, "scores too short for sequence \(s)")
            for head in 0..<gridY {
                for bx in 0..<gridX {
                    for w in 0..<rowsPerBlock {
                        let r = bx * rowsPerBlock + w
                        if r >= length { continue }  // the warp returns at once
                        let row = Int(scoreOffsets[s]) + (head * length + r) * length

                        for lane in 0..<warp {
                            var m = -Float.infinity
                            for j in stride(from: lane, to: length, by: warp) {
                                m = WarpReduction.cudaFmaxf(m, scores[row + j] * scale)
                            }
                            lanes[lane] = m
                        }
                        let m = WarpReduction.warpMax(lanes)

                        for lane in 0..<warp {
                            var sum: Float = 0
                            for j in stride(from: lane, to: length, by: warp) {
                                let e = exp(scores[row + j] * scale - m)
                                scores[row + j] = e
                                sum = sum + e
                            }
                            lanes[lane] = sum
                        }
                        let inv = 1 / WarpReduction.warpSum(lanes)
                        for j in 0..<length { scores[row + j] = scores[row + j] * inv }
                    }
                }
            }
        }
    }
}
