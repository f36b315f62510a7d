import GPUKernels
import Testing

/// Mean pooling + L2 normalisation against the float64 recipe the CPU path
/// uses (EncoderForward.embeddings).
@Suite struct PoolingTwinTests {
    /// Float sums of at most 40 tokens, a tree of 1,000 squares.
    static let tolerance = 1e-5

    /// The CPU path's formula, in Double throughout.
    static func reference(_ states: [Float], starts: [Int32], hidden h: Int) -> [Double] {
        var out = [Double](repeating: 0, count: (starts.count - 1) * h)
        for s in 0..<(starts.count - 1) {
            let start = Int(starts[s]), end = Int(starts[s + 1])
            guard end > start else { continue }
            var mean = [Double](repeating: 0, count: h)
            for t in start..<end { for i in 0..<h { mean[i] += Double(states[t * h + i]) } }
            let norm = mean.reduce(0) { $0 + ($1 / Double(end - start)) * ($1 / Double(end - start)) }.squareRoot()
            for i in 0..<h { out[s * h + i] = mean[i] / Double(end - start) / max(norm, 1e-12) }
        }
        return out
    }

    @Test(arguments: [768, 384, 100, 1000, 1])
    func matchesFloat64AndHasUnitNorm(_ hidden: Int) {
        var random = SplitMix64(seed: UInt64(hidden) &+ 60)
        for _ in 0..<3 {
            var lengths = random.lengths()
            lengths.insert(0, at: Int.random(in: 0...lengths.count, using: &random))
            let starts = SplitMix64.starts(lengths)
            let states = random.normals(Int(starts.last!) * hidden, scale: 1, offset: 0.1)
            var out = [Float](repeating: .nan, count: lengths.count * hidden)
            PoolingTwin.meanPoolL2Norm(out: &out, states: states, starts: starts, hidden: hidden)
            #expect(maxRelativeError(out, Self.reference(states, starts: starts, hidden: hidden), floor: 1 / Double(hidden).squareRoot())
                    <= Self.tolerance)
            for (s, length) in lengths.enumerated() {
                let row = out[(s * hidden)..<((s + 1) * hidden)]
                let norm = row.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                if length == 0 {
                    #expect(row.allSatisfy { $0 == 0 }, "empty sequence \(s) is zeros")
                } else {
                    #expect(abs(norm - 1) <= 1e-6, "sequence \(s)")
                }
            }
        }
    }

    /// A sequence whose mean is exactly zero divides by the 1e-12 floor, not by 0.
    @Test func zeroMeanGivesZerosNotNaN() {
        let h = 300
        let states = (0..<(2 * h)).map { i in i < h ? Float(i) : -Float(i - h) }
        var out = [Float](repeating: .nan, count: h)
        PoolingTwin.meanPoolL2Norm(out: &out, states: states, starts: [0, 2], hidden: h)
        #expect(out.allSatisfy { $0 == 0 })
    }

    /// One token: the output is that token's state scaled to unit length.
    @Test func oneTokenIsItsOwnDirection() {
        let states: [Float] = [3, 4]
        var out: [Float] = [.nan, .nan]
        PoolingTwin.meanPoolL2Norm(out: &out, states: states, starts: [0, 1], hidden: 2)
        // |mean| = 5 exactly, so the output is each state times Float(1/5).
        #expect(out == [3 * (1 / Float(5)), 4 * (1 / Float(5))])
        #expect(out == [0.6, 0.8])
    }
}
