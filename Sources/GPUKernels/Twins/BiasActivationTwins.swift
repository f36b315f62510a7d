import Foundation

/// CPU twins of the element-wise epilogues after bias-free GEMMs:
/// `bias_gelu_f32` (bias_gelu.cu), `bias_relu_f32` and `add_bias_f32`
/// (classifier_head.cu). No reductions; bit for bit except `erff`.
public enum BiasActivationTwins {
    public static let threadsPerBlock = WarpReduction.threadsPerBlock

    /// The kernel's `0.70710678118654752440f`, 1/sqrt(2) rounded to Float, by
    /// its bits so no literal conversion can round it differently.
    public static let inverseSquareRootOfTwo = Float(bitPattern: 0x3F35_04F3)

    /// GELU (erf form) of one biased value, in the kernel's order:
    /// (0.5 * v) * (1 + erff(v * 0.70710678f)).
    @inline(__always)
    public static func gelu(_ v: Float) -> Float {
        let e = erf(v * inverseSquareRootOfTwo)
        return (0.5 * v) * (1 + e)
    }

    /// `bias_gelu_f32`: x = gelu(x + bias) in place. The grid (rows) is `x.count / cols`.
    public static func biasGelu(x: inout [Float], bias: [Float], cols: Int) {
        forEachElement(of: &x, bias: bias, cols: cols) { gelu($0 + $1) }
    }

    /// `bias_relu_f32`: x = fmaxf(0, x + bias) in place.
    public static func biasRelu(x: inout [Float], bias: [Float], cols: Int) {
        forEachElement(of: &x, bias: bias, cols: cols) { WarpReduction.cudaFmaxf(0, $0 + $1) }
    }

    /// `add_bias_f32`: x = x + bias in place.
    public static func addBias(x: inout [Float], bias: [Float], cols: Int) {
        forEachElement(of: &x, bias: bias, cols: cols) { $0 + $1 }
    }

    /// Rows are blocks and columns c = tid, tid + 256, ... are threads; every
    /// element is independent, so a plain row-major loop gives the same bits.
    private static func forEachElement(of x: inout [Float], bias: [Float], cols: Int, _ f: (Float, Float) -> Float) {
        precondition(cols > 0 && x.count % cols == 0, "x holds \(x.count) floats, not whole rows of \(cols)")
        precondition(bias.count >= cols, "bias needs \(cols) floats")
        for row in 0..<(x.count / cols) {
            for c in 0..<cols { x[row * cols + c] = f(x[row * cols + c], bias[c]) }
        }
    }
}
