/// Where a forward pass spends its time, by operation: the matrix products,
/// attention's products and softmax, and the row kernels around them. Filled
/// only when an `EncoderForward` is asked to profile (the engine benchmark).
public struct EncoderProfile: Sendable, Equatable {
    public private(set) var seconds: [String: Double] = [:]
    public private(set) var forwards = 0

    /// The operations that are matrix products.
    public static let products: Set<String> = ["qkv", "attention_output", "ffn_in", "ffn_out", "attention_products"]

    public init() {}

    mutating func add(_ operation: String, _ elapsed: Double) { seconds[operation, default: 0] += elapsed }
    mutating func finishForward() { forwards += 1 }

    public var total: Double { seconds.values.reduce(0, +) }
    /// The products' share of the profiled time.
    public var productShare: Double {
        let total = self.total
        return total > 0 ? seconds.filter { Self.products.contains($0.key) }.values.reduce(0, +) / total : 0
    }
}
