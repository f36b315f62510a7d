import GPUKernels
import Testing

/// The packing twins: where split puts each element, that merge undoes it,
/// and that gather/scatter handle -1 rows and untouched rows.
@Suite struct PackingTwinTests {
    struct Shape: Sendable, CustomTestStringConvertible {
        var hidden: Int, headDim: Int, lengths: [Int]
        var testDescription: String { "hidden \(hidden), heads of \(headDim), lengths \(lengths)" }
    }

    static let shapes = [
        Shape(hidden: 768, headDim: 64, lengths: [5, 40, 1]),
        Shape(hidden: 100, headDim: 25, lengths: [3]),
        Shape(hidden: 1000, headDim: 8, lengths: [2, 0, 7, 1, 0]),  // empty sequences too
        Shape(hidden: 12, headDim: 4, lengths: [1, 1, 1, 1, 1]),
        Shape(hidden: 6, headDim: 6, lengths: [0, 9]),
    ]

    /// (sequence, position) of every token, straight from the lengths.
    static func tokens(_ lengths: [Int]) -> [(s: Int, position: Int)] {
        lengths.enumerated().flatMap { s, length in (0..<length).map { (s: s, position: $0) } }
    }

    @Test(arguments: shapes)
    func splitPutsEachElementWhereTheKernelCommentSays(_ shape: Shape) {
        var random = SplitMix64(seed: UInt64(shape.hidden))
        let h = shape.hidden, d = shape.headDim, starts = SplitMix64.starts(shape.lengths)
        let tokenList = Self.tokens(shape.lengths), t = tokenList.count
        let qkv = random.normals(t * 3 * h), bias = random.normals(3 * h)
        var q = [Float](repeating: .nan, count: t * h), k = q, v = q
        PackingTwins.splitQKVHeads(q: &q, k: &k, v: &v, qkv: qkv, bias: bias, starts: starts,
                                   sequences: shape.lengths.count, hidden: h, headDim: d)
        let parts = [q, k, v]
        for (token, (s, position)) in tokenList.enumerated() {
            let start = Int(starts[s]), length = shape.lengths[s]
            for which in 0..<3 {
                for head in 0..<(h / d) {
                    for e in 0..<d {
                        let column = which * h + head * d + e
                        // Sequence s's block is (heads, L_s, d) starting at start * hidden.
                        let index = start * h + head * length * d + position * d + e
                        let expected = qkv[token * 3 * h + column] + bias[column]
                        if parts[which][index] != expected {
                            Issue.record("token \(token) part \(which) head \(head) e \(e): \(parts[which][index]) != \(expected)")
                            return
                        }
                    }
                }
            }
        }
        #expect(parts.allSatisfy { !$0.contains { $0.isNaN } }, "every element of q, k, v is written")
    }

    @Test(arguments: shapes)
    func mergeOfSplitIsTheIdentity(_ shape: Shape) {
        var random = SplitMix64(seed: UInt64(shape.hidden) &+ 7)
        let h = shape.hidden, starts = SplitMix64.starts(shape.lengths), t = Int(starts.last!)
        let qkv = random.normals(t * 3 * h), zero = [Float](repeating: 0, count: 3 * h)
        var q = [Float](repeating: 0, count: t * h), k = q, v = q
        PackingTwins.splitQKVHeads(q: &q, k: &k, v: &v, qkv: qkv, bias: zero, starts: starts,
                                   sequences: shape.lengths.count, hidden: h, headDim: shape.headDim)
        for (which, part) in [q, k, v].enumerated() {
            var context = [Float](repeating: .nan, count: t * h)
            PackingTwins.mergeHeads(context: &context, headsIn: part, starts: starts,
                                    sequences: shape.lengths.count, hidden: h, headDim: shape.headDim)
            let original: [Float] = (0..<t).flatMap { token -> ArraySlice<Float> in
                let row = token * 3 + which
                return qkv[(row * h)..<((row + 1) * h)]
            }
            #expect(context.map(\.bitPattern) == original.map(\.bitPattern), "part \(which)")
        }
    }

    @Test func sequenceOfSkipsEmptySequences() {
        let starts = SplitMix64.starts([0, 2, 0, 0, 3, 0])
        let owners = (0..<5).map { PackingTwins.sequenceOf(starts: starts, sequences: 6, token: $0) }
        #expect(owners == [1, 1, 4, 4, 4])
    }

    @Test func gatherCopiesRowsAndZeroesMinusOne() {
        var random = SplitMix64(seed: 31)
        let width = 300
        let input = random.normals(6 * width)
        let rows: [Int32] = [4, -1, 0, 4, 5, -1]
        var out = [Float](repeating: .nan, count: rows.count * width)
        PackingTwins.gatherRows(out: &out, input: input, rows: rows, width: width)
        for (i, row) in rows.enumerated() {
            let got = Array(out[(i * width)..<((i + 1) * width)])
            let want = row < 0 ? [Float](repeating: 0, count: width) : Array(input[(Int(row) * width)..<((Int(row) + 1) * width)])
            #expect(got.map(\.bitPattern) == want.map(\.bitPattern), "row \(i)")
        }
    }

    /// Padding removal and back: scatter into a cleared padded buffer, gather
    /// with the same rows, and the packed rows come back; padding stays as it was.
    @Test func gatherOfScatterIsTheIdentity() {
        var random = SplitMix64(seed: 32)
        let width = 100, maxLength = 7, lengths = [3, 7, 1]
        let rows = lengths.enumerated().flatMap { s, l in (0..<l).map { Int32(s * maxLength + $0) } }
        let packed = random.normals(rows.count * width)
        var padded = [Float](repeating: -9, count: lengths.count * maxLength * width)
        PackingTwins.scatterRows(out: &padded, input: packed, rows: rows, width: width)
        let named = Set(rows.map(Int.init))
        for r in 0..<(lengths.count * maxLength) where !named.contains(r) {
            #expect(padded[(r * width)..<((r + 1) * width)].allSatisfy { $0 == -9 }, "unnamed row \(r) keeps its contents")
        }
        var back = [Float](repeating: .nan, count: packed.count)
        PackingTwins.gatherRows(out: &back, input: padded, rows: rows, width: width)
        #expect(back.map(\.bitPattern) == packed.map(\.bitPattern))
    }

    /// The classifier's first-token rows: rows[s] = starts[s], -1 for an empty sequence.
    @Test func firstTokenRowsOfAPackedBatch() {
        let width = 768, lengths = [4, 0, 2]
        let starts = SplitMix64.starts(lengths)
        let states = (0..<(6 * width)).map { Float($0) }
        let rows = lengths.indices.map { lengths[$0] == 0 ? -1 : starts[$0] }
        var first = [Float](repeating: .nan, count: 3 * width)
        PackingTwins.gatherRows(out: &first, input: states, rows: rows, width: width)
        #expect(Array(first[0..<width]) == Array(states[0..<width]))
        #expect(first[width..<(2 * width)].allSatisfy { $0 == 0 })
        #expect(Array(first[(2 * width)...]) == Array(states[(4 * width)..<(5 * width)]))
    }
}
