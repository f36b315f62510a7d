import CEncoderKernels
import Foundation
import Testing

/// Each C row kernel against its twin in Double precision.
@Suite struct RowKernelTests {
    static func values(_ count: Int, seed: Double, scale: Double = 3) -> [Float] {
        (0..<count).map { (i: Int) -> Float in
            let t = Double(i)
            let wave: Double = sin(t * 0.71 + seed) * scale
            return Float(wave + cos(t * 0.13) * 0.5)
        }
    }

    static func erf(_ x: Double) -> Double { Foundation.erf(x) }
    static func gelu(_ x: Double) -> Double { 0.5 * x * (1 + erf(x / 2.0.squareRoot())) }

    @Test func geluMatchesTheErfForm() {
        for x in stride(from: -8.0, through: 8.0, by: 0.013) {
            #expect(abs(Double(ek_gelu(Float(x))) - Self.gelu(x)) <= 2e-6 * max(1, abs(x)), "gelu(\(x))")
        }
    }

    @Test(arguments: [1, 5, 37, 768])
    func quantizeRowsIsSymmetricPerRow(width: Int) {
        let rows = 3
        var x = Self.values(rows * width, seed: 0.3)
        x[width] = 0   // a row with a zero entry still quantizes
        if width > 1 { for i in 0..<width { x[2 * width + i] = 0 } }   // an all-zero row
        var q = [Int8](repeating: 99, count: rows * width), scales = [Float](repeating: 0, count: rows)
        ek_quantize_rows(x, rows, width, width, &q, width, &scales)
        for r in 0..<rows {
            let row = x[(r * width)..<((r + 1) * width)].map(Double.init)
            let largest = row.map(abs).max()!
            let scale = largest > 0 ? largest / 127 : 1
            #expect(abs(Double(scales[r]) - scale) <= 1e-7 * max(scale, 1))
            for i in 0..<width {
                let want = max(-127, min(127, (row[i] / scale).rounded(.toNearestOrEven)))
                // The kernel multiplies by a float reciprocal: a value within a
                // hair of a .5 tie may round either way.
                let exact = row[i] / scale
                let nearTie = abs(abs(exact - exact.rounded(.down)) - 0.5) < 1e-4
                #expect(abs(Double(q[r * width + i]) - want) <= (nearTie ? 1 : 0))
            }
        }
    }

    @Test func dequantizeAppliesRowAndColumnScalesThenBias() {
        let rows = 4, cols = 19
        let acc = (0..<(rows * cols)).map { Int32(($0 * 7919) % 2001 - 1000) }
        let rowScale = (0..<rows).map { Float(0.01 + Double($0) * 0.003) }
        let colScale = (0..<cols).map { Float(0.02 + Double($0) * 0.001) }
        let bias = Self.values(cols, seed: 1)
        var out = [Float](repeating: 0, count: rows * cols)
        ek_dequantize_bias(acc, rows, cols, rowScale, colScale, bias, &out)
        for r in 0..<rows {
            for c in 0..<cols {
                let want = Double(acc[r * cols + c]) * Double(rowScale[r]) * Double(colScale[c]) + Double(bias[c])
                #expect(abs(Double(out[r * cols + c]) - want) <= 1e-5 * max(1, abs(want)))
            }
        }
    }

    @Test func biasGeluQuantizeEqualsGeluThenUnsignedQuantize() {
        let rows = 3, cols = 70
        let acc = (0..<(rows * cols)).map { Int32(($0 * 104_729) % 4001 - 2000) }
        let rowScale: [Float] = [0.002, 0.001, 0.0005], colScale = (0..<cols).map { Float(0.5 + Double($0) * 0.01) }
        let bias = Self.values(cols, seed: 2, scale: 0.5)
        var q = [UInt8](repeating: 0, count: rows * cols), scales = [Float](repeating: 0, count: rows)
        var zeros = [Int32](repeating: -1, count: rows)
        var tmp = [Float](repeating: 0, count: cols)
        ek_bias_gelu_quantize(acc, rows, cols, rowScale, colScale, bias, &tmp, &q, &scales, &zeros)
        for r in 0..<rows {
            let activated = (0..<cols).map { c in
                Self.gelu(Double(acc[r * cols + c]) * Double(rowScale[r]) * Double(colScale[c]) + Double(bias[c]))
            }
            let lo = min(activated.min()!, 0), hi = max(activated.max()!, 0)
            let scale = (hi - lo) / 255
            #expect(abs(Double(scales[r]) - scale) <= 1e-5 * scale)
            #expect(zeros[r] == Int32((-lo / scale).rounded()))
            for c in 0..<cols {
                // Dequantized values sit within half a step (plus the float error) of the truth.
                #expect(abs(Double(Int32(q[r * cols + c]) - zeros[r]) * scale - activated[c]) <= 0.5 * scale + 1e-5)
            }
        }
    }

    @Test(arguments: [false, true])
    func residualLayerNormMatchesDouble(fromAccumulators: Bool) {
        let rows = 3, width = 37
        let x = Self.values(rows * width, seed: 0.7)
        let residual = Self.values(rows * width, seed: 1.9, scale: 1)
        let gamma = (0..<width).map { Float(1 + Double($0) * 0.01) }, beta = (0..<width).map { Float(-0.25 + Double($0) * 0.005) }
        // As int32 sums with scales that give back x exactly enough: x = acc * 1e-3 (+ bias 0).
        let acc = x.map { Int32(($0 * 1000).rounded()) }
        let rowScale = [Float](repeating: 1e-3, count: rows), colScale = [Float](repeating: 1, count: width)
        let zero = [Float](repeating: 0, count: width)
        var hidden = residual
        var q = [Int8](repeating: 0, count: rows * width), scales = [Float](repeating: 0, count: rows)
        var bf16 = [UInt16](repeating: 0, count: rows * width)
        if fromAccumulators {
            // With a zero point: sums over inputs shifted by z per row, which the
            // column sums (here all 3) take back out.
            let zeroPoints = (0..<rows).map { Int32($0 * 5 + 1) }, columnSums = [Int32](repeating: 3, count: width)
            let shifted = (0..<(rows * width)).map { acc[$0] + zeroPoints[$0 / width] * 3 }
            ek_residual_layernorm(&hidden, nil, shifted, rowScale, colScale, zero, zeroPoints, columnSums, rows, width, gamma, beta,
                                  1e-12, &q, &scales, &bf16)
        } else {
            ek_residual_layernorm(&hidden, x, nil, nil, nil, nil, nil, nil, rows, width, gamma, beta, 1e-12, &q, &scales, &bf16)
        }
        for r in 0..<rows {
            let row = (0..<width).map { i in
                (fromAccumulators ? Double(acc[r * width + i]) * 1e-3 : Double(x[r * width + i])) + Double(residual[r * width + i])
            }
            let mean = row.reduce(0, +) / Double(width)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(width)
            let want = (0..<width).map { (row[$0] - mean) / (variance + 1e-12).squareRoot() * Double(gamma[$0]) + Double(beta[$0]) }
            let scale = want.map(abs).max()! / 127
            for i in 0..<width {
                #expect(abs(Double(hidden[r * width + i]) - want[i]) <= 1e-5)
                #expect(abs(Double(q[r * width + i]) * scale - want[i]) <= 0.5 * scale + 1e-5)
                #expect(abs(Double(Float(bitPattern: UInt32(bf16[r * width + i]) << 16)) - want[i]) <= abs(want[i]) / 256 + 1e-7)
            }
        }
    }

    @Test func softmaxMatchesDouble() {
        let rows = 3, width = 37, stride = 40
        var x = [Float](repeating: 0, count: rows * stride)
        let source = Self.values(rows * stride, seed: 0.2, scale: 20)
        for i in 0..<x.count { x[i] = source[i] }
        ek_softmax_rows(&x, rows, width, stride)
        for r in 0..<rows {
            let row = (0..<width).map { Double(source[r * stride + $0]) }
            let top = row.max()!
            let total = row.map { Foundation.exp($0 - top) }.reduce(0, +)
            for i in 0..<width { #expect(abs(Double(x[r * stride + i]) - Foundation.exp(row[i] - top) / total) <= 1e-6) }
            for i in width..<stride { #expect(x[r * stride + i] == source[r * stride + i]) }   // padding untouched
        }
    }

    @Test func bf16ConversionRoundsToNearestEvenAndBack() {
        let x: [Float] = [1, Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), -2.5, 3.14159]
        var bits = [UInt16](repeating: 0, count: x.count)
        ek_f32_to_bf16(x, 1, x.count, x.count, &bits, x.count)
        #expect(bits[0...3] == [0x3F80, 0x3F80, 0x3F82, 0xC020])
        var back = [Float](repeating: 0, count: x.count)
        ek_bf16_to_f32(bits, 1, x.count, x.count, &back, x.count)
        for (a, b) in zip(x, back) { #expect(abs(a - b) <= abs(a) / 128) }
    }

    @Test func variantNamesAnX86Level() {
        #expect(["x86-64-v4", "x86-64-v3", "x86-64", "generic"].contains(String(cString: ek_variant())))
    }
}
