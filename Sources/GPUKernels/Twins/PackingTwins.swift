/// CPU twins of packing.cu: the head split/merge around the per-sequence
/// attention GEMMs and row gather/scatter. Copies and one bias add, so they
/// match the GPU bit for bit.
///
/// Head layout: sequence s (length L_s, first token starts[s]) owns elements
/// [starts[s] * hidden, starts[s+1] * hidden) of a (tokens * hidden) buffer,
/// laid out (heads, L_s, headDim).
public enum PackingTwins {
    public static let threadsPerBlock = WarpReduction.threadsPerBlock

    /// `sequence_of`: the s with starts[s] <= t < starts[s+1], by the kernel's
    /// binary search, which skips empty sequences.
    public static func sequenceOf(starts: [Int32], sequences: Int, token t: Int) -> Int {
        var lo = 0, hi = sequences
        while hi - lo > 1 {
            let mid = (lo + hi) >> 1
            if Int(starts[mid]) <= t { lo = mid } else { hi = mid }
        }
        return lo
    }

    /// Index in a head-layout buffer of (token t, head, e): the address both
    /// split and merge use.
    public static func headLayoutIndex(starts: [Int32], sequences: Int, token t: Int,
                                       head: Int, e: Int, hidden: Int, headDim: Int) -> Int {
        let s = sequenceOf(starts: starts, sequences: sequences, token: t)
        let start = Int(starts[s]), length = Int(starts[s + 1]) - start
        return start * hidden + (head * length + (t - start)) * headDim + e
    }

    /// `split_qkv_heads_f32`: q, k, v (head layout) = qkv + bias, split by head.
    /// The grid (tokens) is starts[sequences].
    public static func splitQKVHeads(q: inout [Float], k: inout [Float], v: inout [Float], // (tokens * hidden) head layout
                                     qkv: [Float],       // (tokens, 3 * hidden) [q | k | v] without bias
                                     bias: [Float],      // (3 * hidden)
                                     starts: [Int32],    // (sequences + 1)
                                     sequences: Int, hidden: Int, headDim: Int) {
        let tokens = checkedTokens(starts: starts, sequences: sequences, hidden: hidden, headDim: headDim)
        precondition(qkv.count >= tokens * 3 * hidden && bias.count >= 3 * hidden, "qkv needs (\(tokens), \(3 * hidden)), bias \(3 * hidden)")
        precondition(q.count >= tokens * hidden && k.count >= tokens * hidden && v.count >= tokens * hidden,
                     "q, k and v need \(tokens * hidden) floats each")
        for t in 0..<tokens {
            let input = t * 3 * hidden
            for c in 0..<hidden {
                let destination = headLayoutIndex(starts: starts, sequences: sequences, token: t,
                                                  head: c / headDim, e: c % headDim, hidden: hidden, headDim: headDim)
                q[destination] = qkv[input + c] + bias[c]
                k[destination] = qkv[input + hidden + c] + bias[hidden + c]
                v[destination] = qkv[input + 2 * hidden + c] + bias[2 * hidden + c]
            }
        }
    }

    /// `merge_heads_f32`: context (tokens, hidden) from a head-layout buffer.
    /// The grid (tokens) is starts[sequences].
    public static func mergeHeads(context: inout [Float],  // (tokens, hidden)
                                  headsIn: [Float],        // (tokens * hidden) head layout
                                  starts: [Int32],         // (sequences + 1)
                                  sequences: Int, hidden: Int, headDim: Int) {
        let tokens = checkedTokens(starts: starts, sequences: sequences, hidden: hidden, headDim: headDim)
        precondition(context.count >= tokens * hidden && headsIn.count >= tokens * hidden, "context and headsIn need \(tokens * hidden) floats")
        for t in 0..<tokens {
            for c in 0..<hidden {
                context[t * hidden + c] = headsIn[headLayoutIndex(starts: starts, sequences: sequences, token: t,
                                                                  head: c / headDim, e: c % headDim, hidden: hidden, headDim: headDim)]
            }
        }
    }

    /// `gather_rows_f32`: out[i] = in[rows[i]], zeros where rows[i] < 0.
    /// The grid (n) is `rows.count`.
    public static func gatherRows(out: inout [Float],  // (n, width)
                                  input: [Float],      // (m, width)
                                  rows: [Int32],       // (n) source row in [0, m), or -1
                                  width: Int) {
        precondition(out.count >= rows.count * width, "out needs \(rows.count * width) floats")
        for (i, source) in rows.enumerated() {
            let o = i * width
            if source < 0 {
                for c in 0..<width { out[o + c] = 0 }
                continue
            }
            let r = Int(source) * width
            precondition(r + width <= input.count, "row \(source) is outside input")
            for c in 0..<width { out[o + c] = input[r + c] }
        }
    }

    /// `scatter_rows_f32`: out[rows[i]] = in[i]; rows no i names keep their
    /// contents. The grid (n) is `rows.count`; rows are distinct and in range.
    public static func scatterRows(out: inout [Float],  // (m, width)
                                   input: [Float],      // (n, width)
                                   rows: [Int32],       // (n) destination row in [0, m), distinct
                                   width: Int) {
        precondition(input.count >= rows.count * width, "input needs \(rows.count * width) floats")
        precondition(Set(rows).count == rows.count, "rows must be distinct: two blocks would race on one row")
        for (i, destination) in rows.enumerated() {
            let o = Int(destination) * width
            precondition(destination >= 0 && o + width <= out.count, "row \(destination) is outside out")
            for c in 0..<width { out[o + c] = input[i * width + c] }
        }
    }

    private static func checkedTokens(starts: [Int32], sequences: Int, hidden: Int, headDim: Int) -> Int {
        precondition(sequences >= 1 && starts.count >= sequences + 1, "starts needs sequences + 1 entries")
        precondition(headDim > 0 && hidden % headDim == 0, "hidden \(hidden) is not whole heads of \(headDim)")
        precondition(starts[0] == 0 && zip(starts, starts.dropFirst()).allSatisfy { $0 <= $1 }, "starts must rise from 0")
        return Int(starts[sequences])
    }
}
