import GPUKernels
import Testing
@testable import TransformerEncoder
@testable import TransformerModel

/// Float32 -> bfloat16: bit for bit with the weights' host conversion
/// (BFloat16Bits.round), and correctly rounded against a float64 reference.
@Suite struct ConvertTwinTests {
    /// The bfloat16 nearest to a finite x, ties to the even pattern, by
    /// comparing distances in Double. Above the largest bfloat16 the next
    /// value up is taken as 2^128, IEEE's rule for rounding to infinity.
    static func nearestBFloat16(_ x: Float) -> UInt16 {
        precondition(x.isFinite)
        let sign = UInt16(x.bitPattern >> 16) & 0x8000
        let low = UInt16((x.bitPattern & 0x7FFF_FFFF) >> 16), high = low + 1
        func value(_ b: UInt16) -> Double { b == 0x7F80 ? 0x1p128 : Double(Float(bitPattern: UInt32(b) << 16)) }
        let magnitude = Double(abs(x))
        let below = magnitude - value(low), above = value(high) - magnitude
        let chosen = below < above ? low : above < below ? high : (low & 1 == 0 ? low : high)
        return chosen | sign
    }

    /// (input bits, expected bfloat16 bits, why)
    static let specialCases: [(UInt32, UInt16, String)] = [
        (0x0000_0000, 0x0000, "+0"), (0x8000_0000, 0x8000, "-0"),
        (0x7F80_0000, 0x7F80, "+inf"), (0xFF80_0000, 0xFF80, "-inf"),
        (0x7FC0_0000, 0x7FC0, "quiet NaN"), (0xFFC0_0000, 0xFFC0, "negative quiet NaN"),
        (0x7F80_0001, 0x7FC0, "signalling NaN with only a low payload bit stays NaN"),
        (0x7FBF_FFFF, 0x7FFF, "signalling NaN: payload truncated, quiet bit set, no carry into inf"),
        (0xFFFF_FFFF, 0xFFFF, "all ones: NaN, no 32-bit wrap"),
        (0x7F7F_FFFF, 0x7F80, "largest Float rounds up to inf"),
        (0x7F7F_7FFF, 0x7F7F, "just below the tie under inf stays finite"),
        (0x7F7F_8000, 0x7F80, "tie under inf, odd pattern: up to inf"),
        (0x3F80_8000, 0x3F80, "1 + half ulp: tie to even (down)"),
        (0x3F81_8000, 0x3F82, "tie with odd pattern: up"),
        (0x3F80_8001, 0x3F81, "just above a tie: up"),
        (0x3F80_7FFF, 0x3F80, "just below a tie: down"),
        (0xBF81_8000, 0xBF82, "negative tie, odd: away from zero"),
        (0x0000_0001, 0x0000, "smallest subnormal: to zero"),
        (0x0000_8000, 0x0000, "subnormal tie, even: down"),
        (0x0001_8000, 0x0002, "subnormal tie, odd: up"),
        (0x8000_8001, 0x8001, "negative subnormal above a tie"),
        (0x007F_FFFF, 0x0080, "largest subnormal rounds to the smallest normal"),
    ]

    @Test(arguments: specialCases.indices)
    func specialValuesAndTies(_ index: Int) {
        let (bits, expected, why) = Self.specialCases[index]
        let x = Float(bitPattern: bits)
        let got = ConvertTwin.bfloat16Bits(x)
        #expect(got == expected, "\(why): 0x\(String(bits, radix: 16)) -> 0x\(String(got, radix: 16))")
        #expect(got == BFloat16Bits.round(x), "\(why)")
        if x.isFinite { #expect(got == Self.nearestBFloat16(x), "\(why)") }
        if x.isNaN {
            #expect(got & 0x7F80 == 0x7F80 && got & 0x0040 != 0, "\(why): a quiet NaN")
            #expect(got & 0x8000 == UInt16(bits >> 16) & 0x8000, "\(why): sign kept")
        }
    }

    /// Random bit patterns cover every exponent, NaN payloads and subnormals.
    @Test func randomBitPatternsMatchHostConversionAndFloat64() {
        var random = SplitMix64(seed: 70)
        for _ in 0..<200_000 {
            let x = Float(bitPattern: UInt32(truncatingIfNeeded: random.next()))
            let got = ConvertTwin.bfloat16Bits(x)
            if got != BFloat16Bits.round(x) || (x.isFinite && got != Self.nearestBFloat16(x)) {
                Issue.record("0x\(String(x.bitPattern, radix: 16)) -> 0x\(String(got, radix: 16))")
                return
            }
        }
    }

    /// Activations-sized values, where the rounded-off half-word is what matters.
    @Test func roundTripErrorIsAtMostHalfAnUlp() {
        var random = SplitMix64(seed: 71)
        let x = random.normals(1000, scale: 4)
        var out = [UInt16](repeating: 0xDEAD, count: 1003)
        ConvertTwin.convertF32ToBF16(out: &out, x: x)
        #expect(Array(out[1000...]) == [0xDEAD, 0xDEAD, 0xDEAD], "nothing past n is written")
        #expect(Array(out[..<1000]) == BFloat16Bits.convert(x))
        for (value, bits) in zip(x, out) where value != 0 {
            let rounded = Double(Float(bitPattern: UInt32(bits) << 16))
            // bfloat16 keeps 8 significant bits: half an ulp is 2^-8 relative.
            #expect(abs(rounded - Double(value)) <= abs(Double(value)) * 0x1p-8)
        }
    }

    @Test func gridCoversEveryElement() {
        #expect(ConvertTwin.blocks(count: 0) == 0)
        #expect(ConvertTwin.blocks(count: 1) == 1)
        #expect(ConvertTwin.blocks(count: 256) == 1)
        #expect(ConvertTwin.blocks(count: 257) == 2)
    }
}
