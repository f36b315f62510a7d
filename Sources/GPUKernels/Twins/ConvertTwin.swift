/// CPU twin of `convert_f32_to_bf16` (convert.cu): Float32 to bfloat16 bits,
/// round to nearest with ties to even, NaN kept a quiet NaN. Integer
/// arithmetic only, so it matches the GPU bit for bit.
public enum ConvertTwin {
    public static let threadsPerBlock = WarpReduction.threadsPerBlock

    /// The launch grid the host uses: ceil(n / 256) blocks.
    public static func blocks(count n: Int) -> Int { EncoderPlan.convertBlocks(elements: n) }

    /// One element: NaN -> (bits >> 16) | 0x40; otherwise
    /// (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16, wrapping in 32 bits.
    @inline(__always)
    public static func bfloat16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x40) }
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    /// `convert_f32_to_bf16`: out[i] = bfloat16 bits of x[i], i < x.count.
    public static func convertF32ToBF16(out: inout [UInt16],  // (n) bfloat16 bits
                                        x: [Float]) {         // (n)
        precondition(out.count >= x.count, "out needs \(x.count) entries")
        for block in 0..<blocks(count: x.count) {
            for thread in 0..<threadsPerBlock {
                let i = block * threadsPerBlock + thread
                if i >= x.count { break }
                out[i] = bfloat16Bits(x[i])
            }
        }
    }
}
