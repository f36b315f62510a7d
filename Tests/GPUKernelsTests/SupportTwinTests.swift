// Shared by the twin tests: a seeded generator, packed-batch shapes, and the
// error measure each twin is judged by against its float64 reference.

/// SplitMix64: deterministic across platforms and runs, unlike the system
/// generator, so a failing shape can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Roughly normal (sum of four uniforms, variance 1), the shape of encoder activations.
    mutating func normal(scale: Float = 1, offset: Float = 0) -> Float {
        var sum = 0.0
        for _ in 0..<4 { sum += Double.random(in: -0.5..<0.5, using: &self) }
        return Float(sum * 3.0.squareRoot()) * scale + offset
    }

    mutating func normals(_ count: Int, scale: Float = 1, offset: Float = 0) -> [Float] {
        (0..<count).map { _ in normal(scale: scale, offset: offset) }
    }

    /// `starts` of a packed batch: `lengths` prefix sums.
    static func starts(_ lengths: [Int]) -> [Int32] {
        var starts: [Int32] = [0]
        for length in lengths { starts.append(starts.last! + Int32(length)) }
        return starts
    }

    /// 1...5 sequences of lengths 1...40.
    mutating func lengths() -> [Int] {
        (0..<Int.random(in: 1...5, using: &self)).map { _ in Int.random(in: 1...40, using: &self) }
    }
}

/// The largest |twin - reference| / max(|reference|, floor) over all elements.
/// The floor keeps values near zero, where a relative error means nothing,
/// judged against the scale of the output instead.
func maxRelativeError(_ twin: [Float], _ reference: [Double], floor: Double) -> Double {
    precondition(twin.count == reference.count)
    var worst = 0.0
    for (a, r) in zip(twin, reference) {
        let error = abs(Double(a) - r) / max(abs(r), floor)
        worst = max(worst, error.isNaN ? .infinity : error)
    }
    return worst
}
