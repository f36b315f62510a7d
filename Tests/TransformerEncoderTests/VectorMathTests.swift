import Foundation
import Testing
@testable import TransformerEncoder

/// Each vector kernel against its scalar twin in Double precision.
@Suite struct VectorMathTests {
    @Test func expMatchesFoundation() {
        let xs = stride(from: -80.0, through: 80.0, by: 0.37).map { Float($0) }
        for chunk in stride(from: 0, to: xs.count - 16, by: 16) {
            let v = SIMD16<Float>(xs[chunk..<(chunk + 16)])
            let e = VectorMath.exp(v)
            for i in 0..<16 {
                let expected = Foundation.exp(Double(v[i]))
                #expect(abs(Double(e[i]) - expected) <= 4e-7 * expected, "exp(\(v[i]))")
            }
        }
    }

    @Test func residualLayerNormAndSoftmaxMatchDoubleReferences() {
        let width = 37, rows = 3
        let original = (0..<(rows * width)).map { Float(sin(Double($0) * 0.7) * 3) }
        let residual = (0..<(rows * width)).map { Float(cos(Double($0) * 0.3)) }
        var y = residual
        let scale = [Float](repeating: 1.5, count: width), shift = [Float](repeating: -0.25, count: width)
        y.withUnsafeMutableBufferPointer { p in
            VectorMath.residualLayerNorm(original, residual: p.baseAddress!, rows: rows, width: width, scale: scale, shift: shift, epsilon: 1e-12)
        }
        for r in 0..<rows {
            let row = (0..<width).map { Double(original[r * width + $0]) + Double(residual[r * width + $0]) }
            let mean = row.reduce(0, +) / Double(width)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(width)
            for i in 0..<width {
                let expected = (row[i] - mean) / (variance + 1e-12).squareRoot() * 1.5 - 0.25
                #expect(abs(Double(y[r * width + i]) - expected) <= 1e-5)
            }
        }
        var z = original
        z.withUnsafeMutableBufferPointer { p in VectorMath.softmax(p.baseAddress!, rows: rows, width: width, stride: width) }
        for r in 0..<rows {
            let row = original[(r * width)..<((r + 1) * width)].map(Double.init)
            let top = row.max()!
            let total = row.map { Foundation.exp($0 - top) }.reduce(0, +)
            for i in 0..<width { #expect(abs(Double(z[r * width + i]) - Foundation.exp(row[i] - top) / total) <= 1e-6) }
        }
    }
}

@Suite struct TokenizerUnitTests {
    let tokenizer = try! WordPieceTokenizer(vocabulary: Dictionary(uniqueKeysWithValues: [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "un", "##aff", "##able", ",", "!", "cafe", "的",
    ].enumerated().map { (Array($0.element.utf8), Int32($0.offset)) }))

    @Test func basicTokenizationAndWordPieces() {
        #expect(tokenizer.encode("Hello, WORLD!", maxLength: 512) == [2, 4, 9, 5, 10, 3])
        #expect(tokenizer.encode("unaffable", maxLength: 512) == [2, 6, 7, 8, 3])
        #expect(tokenizer.encode("Café", maxLength: 512) == [2, 11, 3])   // accents stripped
        #expect(tokenizer.encode("hello的world", maxLength: 512) == [2, 4, 12, 5, 3])   // CJK spaced out
        #expect(tokenizer.encode("xyz", maxLength: 512) == [2, 1, 3])
        #expect(tokenizer.encode("hello\u{0}\u{200B} world\u{7}", maxLength: 512) == [2, 4, 5, 3])   // control and format chars dropped
    }

    @Test func truncationKeepsClassifierAndSeparator() {
        let ids = tokenizer.encode(String(repeating: "hello ", count: 100), maxLength: 8)
        #expect(ids.count == 8)
        #expect(ids.first == 2 && ids.last == 3)
    }

    @Test func overlongWordsAreUnknown() {
        #expect(tokenizer.encode(String(repeating: "a", count: 101), maxLength: 512) == [2, 1, 3])
    }
}

@Suite struct BFloat16Tests {
    @Test func roundsToNearestEven() {
        #expect(BFloat16Bits.round(1.0) == 0x3F80)
        #expect(BFloat16Bits.round(Float(bitPattern: 0x3F80_8000)) == 0x3F80)   // tie, even stays
        #expect(BFloat16Bits.round(Float(bitPattern: 0x3F81_8000)) == 0x3F82)   // tie, odd rounds up
        #expect(BFloat16Bits.round(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(BFloat16Bits.round(-2.5) == 0xC020)
        #expect(BFloat16Bits.round(.nan) & 0x7FC0 == 0x7FC0)
    }
}
