/// bfloat16 as its 16 bits: round to nearest even, NaN kept quiet. The GPU
/// path converts its weights with the same function.
public enum BFloat16Bits {
    @inline(__always)
    public static func round(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(bits >> 16) | 0x40 }
        let rounding = ((bits >> 16) & 1) + 0x7FFF
        return UInt16((bits &+ rounding) >> 16)
    }

    public static func convert(_ values: [Float]) -> [UInt16] { values.map(round) }
}