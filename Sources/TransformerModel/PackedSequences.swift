/// Sequences packed back to back without padding: work scales with real
/// tokens, not with the longest sequence.
public struct PackedSequences: Sendable, Equatable {
    /// (tokens) token ids.
    public var tokenIDs: [Int32] = []
    /// (tokens) position of each token in its own sequence.
    public var positions: [Int32] = []
    /// (tokens) segment (token type) of each token; empty while all are 0.
    public var segments: [Int32] = []
    /// (sequences + 1) offset of each sequence's first token; the last is the total.
    public var starts: [Int] = [0]

    public init() {}

    public var count: Int { starts.count - 1 }
    public var tokenCount: Int { tokenIDs.count }
    /// Tokens in the longest sequence.
    public var longest: Int { (0..<count).map { starts[$0 + 1] - starts[$0] }.max() ?? 0 }

    /// Adds a sequence, keeping only tokens whose mask is non-zero at their
    /// original positions, which is what an attention mask means to the model.
    /// `segments` (token type ids, one per id) are kept the same way.
    public mutating func append(ids: some Collection<Int64>, mask: (some Collection<Int64>)?,
                                segments types: (some Collection<Int64>)? = [Int64]?.none) {
        let first = tokenIDs.count
        var kept: [Int32] = []
        var position: Int32 = 0
        var typeIterator = types?.makeIterator()
        var maskIterator = mask?.makeIterator()
        for id in ids {
            let type = typeIterator?.next() ?? 0
            if (maskIterator?.next() ?? 1) != 0 {
                tokenIDs.append(Int32(truncatingIfNeeded: id))
                positions.append(position)
                kept.append(Int32(truncatingIfNeeded: type))
            }
            position += 1
        }
        appendSegments(types == nil ? nil : kept, first: first)
        starts.append(tokenIDs.count)
    }

    /// Adds a sequence of token ids at positions 0, 1, ... (and their segments).
    public mutating func append(tokens: some Collection<Int32>, segments types: (some Collection<Int32>)? = [Int32]?.none) {
        let first = tokenIDs.count
        tokenIDs.append(contentsOf: tokens)
        positions.append(contentsOf: (0..<Int32(tokens.count)))
        appendSegments(types.map(Array.init), first: first)
        starts.append(tokenIDs.count)
    }

    /// Segment of token `t`.
    @inline(__always) public func segment(_ t: Int) -> Int { segments.isEmpty ? 0 : Int(segments[t]) }

    private mutating func appendSegments(_ types: [Int32]?, first: Int) {
        if let types, types.contains(where: { $0 != 0 }) {
            if segments.isEmpty { segments = Array(repeating: 0, count: first) }
            segments.append(contentsOf: types)
        } else if !segments.isEmpty {
            segments.append(contentsOf: repeatElement(0, count: tokenIDs.count - first))
        }
    }
}
