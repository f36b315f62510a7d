import CDNNL
import InferenceCore
import TransformerModel

/// The arithmetic an encoder's matrix products run in on the CPU.
public enum EncoderPrecision: String, Sendable, CaseIterable {
    /// float32 throughout.
    case fp32
    /// bfloat16 products (AVX512_BF16 or AMX), float32 accumulation, LayerNorm and softmax.
    case bf16
    /// int8 products: weights symmetric per output channel, activations per
    /// row, int32 accumulation; scales, bias and what follows in float32.
    case int8

    /// Bytes of one element of a product's input (an activation) in this precision.
    var activationBytes: Int {
        switch self {
        case .fp32: 4
        case .bf16: 2
        case .int8: 1
        }
    }

    var sourceType: dnnl_data_type_t {
        switch self {
        case .fp32: dnnl_f32
        case .bf16: dnnl_bf16
        case .int8: dnnl_s8
        }
    }
}

/// What the model's `precision` parameter resolved to on this CPU, and why.
public struct PrecisionChoice: Sendable, Equatable {
    public var precision: EncoderPrecision
    /// One line for the load log: the rule that chose it.
    public var reason: String

    /// The CPU's relevant abilities, as oneDNN sees them.
    public struct CPU: Sendable, Equatable {
        public var amx: Bool, bf16: Bool, vnni: Bool
        public init(amx: Bool, bf16: Bool, vnni: Bool) { (self.amx, self.bf16, self.vnni) = (amx, bf16, vnni) }
        public static var current: CPU { CPU(amx: OneDNN.hasAMX, bf16: OneDNN.hasBF16, vnni: OneDNN.hasVNNI) }
    }

    /// A pure function of the requested value and the CPU's features: two
    /// servers on the same CPU model always serve the same precision (an
    /// earlier load-time timing race could split a fleet between fp32 and bf16).
    /// `auto` takes bf16 wherever the CPU has native bf16 dot products (AMX or
    /// AVX512_BF16): on a Zen 4 VM oneDNN's bf16 DistilBERT ran 1.9x its fp32.
    public static func resolve(_ requested: String?, cpu: CPU) throws -> PrecisionChoice {
        switch requested ?? "auto" {
        case "auto":
            if cpu.amx { return PrecisionChoice(precision: .bf16, reason: "auto: the CPU has AMX") }
            if cpu.bf16 { return PrecisionChoice(precision: .bf16, reason: "auto: the CPU has bf16 dot products (AVX512_BF16)") }
            return PrecisionChoice(precision: .fp32, reason: "auto: the CPU has no bf16 dot products")
        case "fp32":
            return PrecisionChoice(precision: .fp32, reason: "requested")
        case "bf16":
            // Without native bf16 oneDNN emulates it far slower than fp32.
            return cpu.bf16 ? PrecisionChoice(precision: .bf16, reason: "requested")
                : PrecisionChoice(precision: .fp32, reason: "bf16 requested, but the CPU has no bf16 dot products: fp32")
        case "int8":
            return PrecisionChoice(precision: .int8, reason: cpu.vnni ? "requested" : "requested (no VNNI: 7-bit weights, so oneDNN's int16 pair sums cannot overflow)")
        case let other:
            throw InferenceError.invalidArgument("parameters.precision must be auto, fp32, bf16 or int8, got '\(other)'")
        }
    }
}
