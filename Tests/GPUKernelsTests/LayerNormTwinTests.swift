import CEncoderKernels
import GPUKernels
import Testing
@testable import TransformerEncoder
@testable import TransformerModel

/// The LayerNorm twins against a float64 LayerNorm and against the CPU
/// engine's own (the C row kernel ek_residual_layernorm).
@Suite struct LayerNormTwinTests {
    /// Float sums over at most 1,000 roughly normal values, in the kernel's
    /// tree order: a few ulp, far inside this.
    static let tolerance = 1e-5

    /// LayerNorm in Double of rows given in Double.
    static func reference(_ rows: [[Double]], gamma: [Float], beta: [Float], eps: Float) -> [Double] {
        rows.flatMap { row -> [Double] in
            let n = Double(row.count)
            let mean = row.reduce(0, +) / n
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
            let rstd = 1 / (variance + Double(eps)).squareRoot()
            return row.indices.map { (row[$0] - mean) * rstd * Double(gamma[$0]) + Double(beta[$0]) }
        }
    }

    struct Shape: Sendable, CustomTestStringConvertible {
        var hidden: Int, withType: Bool, eps: Float, seed: UInt64
        var testDescription: String { "hidden \(hidden), type row \(withType), eps \(eps)" }
    }

    static let shapes = [
        Shape(hidden: 768, withType: false, eps: 1e-12, seed: 11),
        Shape(hidden: 768, withType: true, eps: 1e-12, seed: 12),
        Shape(hidden: 100, withType: false, eps: 1e-5, seed: 13),
        Shape(hidden: 1000, withType: true, eps: 1e-5, seed: 14),
        Shape(hidden: 256, withType: false, eps: 1e-12, seed: 15),
        Shape(hidden: 1, withType: false, eps: 1e-5, seed: 16),
    ]

    @Test(arguments: shapes)
    func embeddingLayerNormMatchesFloat64AndTheCPUEngine(_ shape: Shape) {
        var random = SplitMix64(seed: shape.seed)
        let h = shape.hidden, vocab = 50, maxPositions = 64
        let word = random.normals(vocab * h, scale: 0.5)
        let position = random.normals(maxPositions * h, scale: 0.2, offset: 0.05)
        let typeRow = shape.withType ? random.normals(h, scale: 0.1) : nil
        let gamma = random.normals(h, scale: 0.3, offset: 1), beta = random.normals(h, scale: 0.1)
        let lengths = random.lengths()
        let tokenIds = lengths.flatMap { l in (0..<l).map { _ in Int32.random(in: 0..<Int32(vocab), using: &random) } }
        let positions = lengths.flatMap { l in (0..<l).map { Int32($0) } }
        let tokens = tokenIds.count

        var out = [Float](repeating: .nan, count: tokens * h)
        LayerNormTwins.embeddingLayerNorm(out: &out, tokenIds: tokenIds, positions: positions, word: word, position: position,
                                          typeRow: typeRow, gamma: gamma, beta: beta, hidden: h, eps: shape.eps)

        let rows = (0..<tokens).map { t in
            (0..<h).map { i in
                Double(word[Int(tokenIds[t]) * h + i]) + Double(position[Int(positions[t]) * h + i]) + Double(typeRow?[i] ?? 0)
            }
        }
        let expected = Self.reference(rows, gamma: gamma, beta: beta, eps: shape.eps)
        #expect(maxRelativeError(out, expected, floor: 1) <= Self.tolerance)

        // The CPU engine on the same Float row (built in the same order).
        var cpu = (0..<tokens).flatMap { t in
            (0..<h).map { i -> Float in
                var x = word[Int(tokenIds[t]) * h + i] + position[Int(positions[t]) * h + i]
                if let typeRow { x += typeRow[i] }
                return x
            }
        }
        ek_residual_layernorm(&cpu, nil, nil, nil, nil, nil, nil, nil, tokens, h, gamma, beta, shape.eps, nil, nil, nil)
        let cpuAsDouble = cpu.map(Double.init)
        #expect(maxRelativeError(out, cpuAsDouble, floor: 1) <= Self.tolerance)
    }

    @Test(arguments: shapes)
    func biasResidualLayerNormMatchesFloat64AndTheCPUEngine(_ shape: Shape) {
        var random = SplitMix64(seed: shape.seed &+ 100)
        let h = shape.hidden
        let tokens = random.lengths().reduce(0, +)
        let residual = random.normals(tokens * h)
        let x = random.normals(tokens * h, scale: 2)
        let bias = random.normals(h, scale: 0.1)
        let gamma = random.normals(h, scale: 0.3, offset: 1), beta = random.normals(h, scale: 0.1)

        var states = residual
        LayerNormTwins.biasResidualLayerNorm(hiddenStates: &states, x: x, bias: bias, gamma: gamma, beta: beta, hidden: h, eps: shape.eps)

        let rows = (0..<tokens).map { t in
            (0..<h).map { i in Double(residual[t * h + i]) + Double(x[t * h + i]) + Double(bias[i]) }
        }
        let expected = Self.reference(rows, gamma: gamma, beta: beta, eps: shape.eps)
        #expect(maxRelativeError(states, expected, floor: 1) <= Self.tolerance)

        // The CPU path's matmul adds the bias to x; the row kernel then adds the residual.
        let biased = (0..<(tokens * h)).map { x[$0] + bias[$0 % h] }
        var cpu = residual
        ek_residual_layernorm(&cpu, biased, nil, nil, nil, nil, nil, nil, tokens, h, gamma, beta, shape.eps, nil, nil, nil)
        #expect(maxRelativeError(states, cpu.map(Double.init), floor: 1) <= Self.tolerance)
    }

    /// A constant row has zero variance: the output is beta exactly.
    @Test func constantRowGivesBeta() {
        let h = 300
        let row = [Float](repeating: 3.25, count: h)
        let gamma = (0..<h).map { Float($0) }, beta = (0..<h).map { Float($0) * 0.5 - 7 }
        var out = [Float](repeating: .nan, count: h)
        LayerNormTwins.layerNormRow(row, into: &out, at: 0, gamma: gamma, beta: beta, hidden: h, eps: 1e-12)
        #expect(out == beta)
    }

    /// The twin's LayerNorm is a function of the row alone: a token normalised
    /// alone and inside a batch give the same bits.
    @Test func aRowAloneAndInABatchGiveTheSameBits() {
        var random = SplitMix64(seed: 5)
        let h = 768
        let batch = random.normals(4 * h), x = random.normals(4 * h)
        let bias = random.normals(h), gamma = random.normals(h, offset: 1), beta = random.normals(h)
        var all = batch
        LayerNormTwins.biasResidualLayerNorm(hiddenStates: &all, x: x, bias: bias, gamma: gamma, beta: beta, hidden: h, eps: 1e-12)
        var third = Array(batch[(2 * h)..<(3 * h)])
        LayerNormTwins.biasResidualLayerNorm(hiddenStates: &third, x: Array(x[(2 * h)..<(3 * h)]), bias: bias,
                                             gamma: gamma, beta: beta, hidden: h, eps: 1e-12)
        #expect(third.map(\.bitPattern) == all[(2 * h)..<(3 * h)].map(\.bitPattern))
    }
}
