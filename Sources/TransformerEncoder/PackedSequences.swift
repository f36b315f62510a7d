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

    /// Adds a sequence of token ids at positions 0, 1, ...
    public mutating func append(tokens: some Collection<Int32>) {
        tokenIDs.append(contentsOf: tokens)
        positions.append(contentsOf: (0..<Int32(tokens.count)))
        starts.append(tokenIDs.count)
    }
}
