/// CPU twins of `embedding_layernorm_f32` and `bias_residual_layernorm_f32`
/// (layernorm.cu), which share `layernorm_row`.
public enum LayerNormTwins {
    public static let threadsPerBlock = WarpReduction.threadsPerBlock

    /// `layernorm_row`: LayerNorm of `row` (hidden) written to
    /// out[offset ..< offset + hidden], in the kernel's Float order:
    ///   mean = block_sum(strided sums) / hidden
    ///   var  = block_sum(strided fma(d, d, acc), d = x - mean) / hidden
    ///   out  = fma((x - mean) * (1 / sqrt(var + eps)), gamma, beta)
    public static func layerNormRow(_ row: [Float], into out: inout [Float], at offset: Int,
                                    gamma: [Float], beta: [Float], hidden: Int, eps: Float) {
        precondition(row.count >= hidden && gamma.count >= hidden && beta.count >= hidden, "row, gamma and beta need \(hidden) floats")
        precondition(offset >= 0 && out.count >= offset + hidden, "out has no room for a row at \(offset)")
        // (float)hidden: exact below 2^24, and rounded the same way above.
        let count = Float(hidden)
        let sum = WarpReduction.blockSum(WarpReduction.stridedPartials(count: hidden) { acc, i in acc + row[i] })
        let mean = sum / count
        let squares = WarpReduction.blockSum(WarpReduction.stridedPartials(count: hidden) { acc, i in
            let d = row[i] - mean
            return acc.addingProduct(d, d)
        })
        let variance = squares / count
        let rstd = 1 / (variance + eps).squareRoot()
        // Each element is independent here, so thread order does not matter.
        for i in 0..<hidden {
            let normalised = (row[i] - mean) * rstd
            out[offset + i] = beta[i].addingProduct(normalised, gamma[i])
        }
    }

    /// `embedding_layernorm_f32`: out[t] = LayerNorm(word[ids[t]] + position[positions[t]] (+ typeRow)).
    /// The grid (tokens) is `tokenIds.count`. Ids and positions must be in
    /// range, as the host validates them before upload.
    public static func embeddingLayerNorm(out: inout [Float],          // (tokens, hidden)
                                          tokenIds: [Int32],           // (tokens)
                                          positions: [Int32],          // (tokens)
                                          word: [Float],               // (vocab, hidden)
                                          position: [Float],           // (max_positions, hidden)
                                          typeRow: [Float]?,           // (hidden) or nil (DistilBERT)
                                          gamma: [Float], beta: [Float], // (hidden)
                                          hidden: Int, eps: Float) {
        let tokens = tokenIds.count
        precondition(hidden > 0, "hidden must be positive, got \(hidden)")
        precondition(positions.count == tokens, "positions has \(positions.count) entries for \(tokens) tokens")
        precondition(out.count >= tokens * hidden, "out holds \(out.count) floats, needs \(tokens * hidden)")
        precondition(typeRow.map { $0.count >= hidden } ?? true, "typeRow needs \(hidden) floats")
        var row = [Float](repeating: 0, count: hidden)
        for t in 0..<tokens {
            let w = Int(tokenIds[t]) * hidden, p = Int(positions[t]) * hidden
            precondition(w >= 0 && w + hidden <= word.count, "token id \(tokenIds[t]) is outside word")
            precondition(p >= 0 && p + hidden <= position.count, "position \(positions[t]) is outside position")
            for i in 0..<hidden {
                var x = word[w + i] + position[p + i]
                if let typeRow { x = x + typeRow[i] }
                row[i] = x
            }
            layerNormRow(row, into: &out, at: t * hidden, gamma: gamma, beta: beta, hidden: hidden, eps: eps)
        }
    }

    /// `bias_residual_layernorm_f32`: hiddenStates[t] = LayerNorm(hiddenStates[t] + (x[t] + bias)),
    /// in place. The grid (tokens) is `x.count / hidden`.
    public static func biasResidualLayerNorm(hiddenStates: inout [Float], // (tokens, hidden) residual in, normalised out
                                             x: [Float],                  // (tokens, hidden) GEMM output without bias
                                             bias: [Float],               // (hidden)
                                             gamma: [Float], beta: [Float], // (hidden)
                                             hidden: Int, eps: Float) {
        precondition(hidden > 0 && x.count % hidden == 0, "x holds \(x.count) floats, not whole rows of \(hidden)")
        let tokens = x.count / hidden
        precondition(hiddenStates.count >= tokens * hidden, "hiddenStates holds \(hiddenStates.count) floats, needs \(tokens * hidden)")
        precondition(bias.count >= hidden, "bias needs \(hidden) floats")
        var row = [Float](repeating: 0, count: hidden)
        for t in 0..<tokens {
            let base = t * hidden
            for i in 0..<hidden { row[i] = hiddenStates[base + i] + (x[base + i] + bias[i]) }
            layerNormRow(row, into: &hiddenStates, at: base, gamma: gamma, beta: beta, hidden: hidden, eps: eps)
        }
    }
}
