import Foundation
import GPUKernels
import Testing

/// The attention softmax twin against a float64 softmax, over packed batches.
@Suite struct AttentionSoftmaxTwinTests {
    /// Float exp and a 32-lane Float sum: relative errors of a few ulp.
    static let tolerance = 1e-5

    struct Shape: Sendable, CustomTestStringConvertible {
        var heads: Int, scale: Float, spread: Float, seed: UInt64
        var testDescription: String { "\(heads) heads, scale \(scale), scores ±\(spread)" }
    }

    static let shapes = [
        Shape(heads: 12, scale: 1, spread: 4, seed: 21),
        Shape(heads: 12, scale: 0.125, spread: 30, seed: 22),  // 1/sqrt(64) applied here, not by the GEMM
        Shape(heads: 2, scale: 1, spread: 10, seed: 23),
        Shape(heads: 3, scale: 1, spread: 0.5, seed: 24),
        Shape(heads: 1, scale: 1, spread: 1, seed: 25),
    ]

    static func referenceSoftmax(_ scores: [Float], starts: [Int32], offsets: [Int64], heads: Int, scale: Float) -> [Double] {
        var out = [Double](repeating: .nan, count: scores.count)
        for s in 0..<(starts.count - 1) {
            let length = Int(starts[s + 1] - starts[s])
            for row in 0..<(heads * length) {
                let base = Int(offsets[s]) + row * length
                let x = (0..<length).map { Double(scores[base + $0]) * Double(scale) }
                let m = x.max()!
                let e = x.map { Foundation.exp($0 - m) }
                let sum = e.reduce(0, +)
                for j in 0..<length { out[base + j] = e[j] / sum }
            }
        }
        return out
    }

    @Test(arguments: shapes)
    func matchesFloat64AndRowsSumToOne(_ shape: Shape) {
        var random = SplitMix64(seed: shape.seed)
        for _ in 0..<4 {
            var lengths = random.lengths()
            // Always cover one-token rows and rows longer than a warp's 32 lanes.
            if lengths.count < 3 { lengths += [1, 37] }
            let starts = SplitMix64.starts(lengths)
            let offsets = AttentionSoftmaxTwin.scoreOffsets(starts: starts, heads: shape.heads)
            let scores = random.normals(Int(offsets.last!), scale: shape.spread / 2)

            var out = scores
            AttentionSoftmaxTwin.attentionSoftmax(scores: &out, starts: starts, scoreOffsets: offsets, heads: shape.heads, scale: shape.scale)

            let expected = Self.referenceSoftmax(scores, starts: starts, offsets: offsets, heads: shape.heads, scale: shape.scale)
            #expect(maxRelativeError(out, expected, floor: 1e-30) <= Self.tolerance)

            for s in 0..<lengths.count {
                let length = lengths[s]
                for row in 0..<(shape.heads * length) {
                    let base = Int(offsets[s]) + row * length
                    let sum = (0..<length).reduce(0.0) { $0 + Double(out[base + $1]) }
                    #expect(abs(sum - 1) <= 1e-5, "sequence \(s) row \(row)")
                }
            }
        }
    }

    @Test func offsetsAndGridFollowTheLaunchComment() {
        let starts = SplitMix64.starts([3, 0, 17, 1])
        let third: Int64 = 108 + 12 * 17 * 17
        #expect(AttentionSoftmaxTwin.scoreOffsets(starts: starts, heads: 12) == [0, 108, 108, third, third + 12])
        let grid = AttentionSoftmaxTwin.grid(starts: starts, heads: 12)
        #expect(grid.x == 3 && grid.y == 12 && grid.z == 4)  // ceil(17 / 8) = 3
    }

    /// An empty sequence has no rows; its neighbours are still normalised,
    /// and no element outside the scores is touched.
    @Test func emptySequencesAreSkipped() {
        var random = SplitMix64(seed: 26)
        let starts = SplitMix64.starts([0, 5, 0, 2])
        let offsets = AttentionSoftmaxTwin.scoreOffsets(starts: starts, heads: 2)
        let scores = random.normals(Int(offsets.last!))
        var out = scores + [42]
        AttentionSoftmaxTwin.attentionSoftmax(scores: &out, starts: starts, scoreOffsets: offsets, heads: 2, scale: 1)
        #expect(out.last == 42)
        let expected = Self.referenceSoftmax(scores, starts: starts, offsets: offsets, heads: 2, scale: 1)
        #expect(maxRelativeError(Array(out.dropLast()), expected, floor: 1e-30) <= Self.tolerance)
    }

    /// A one-token row is exp(0) / exp(0): exactly 1, whatever the score.
    @Test func aSingleTokenRowIsExactlyOne() {
        var out: [Float] = [-123.5, 7, 1e30]
        AttentionSoftmaxTwin.attentionSoftmax(scores: &out, starts: [0, 1, 2, 3], scoreOffsets: [0, 1, 2, 3], heads: 1, scale: 1)
        #expect(out == [1, 1, 1])
    }

    /// Equal scores give exactly 1/L only when L is a power of two (the Float
    /// sum of L ones is exact and 1/L is exact); check both the value and the bits.
    @Test(arguments: [1, 2, 4, 8, 16, 32, 64])
    func uniformRowsArePowerOfTwoFractions(_ length: Int) {
        var out = [Float](repeating: 0.75, count: length * length)
        AttentionSoftmaxTwin.attentionSoftmax(scores: &out, starts: [0, Int32(length)], scoreOffsets: [0, Int64(length * length)],
                                              heads: 1, scale: 1)
        #expect(out.allSatisfy { $0 == 1 / Float(length) })
    }
}
