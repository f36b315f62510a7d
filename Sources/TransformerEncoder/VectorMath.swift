/// Element-wise kernels of the encoder on the CPU: exp, erf-based GELU,
/// LayerNorm and softmax, written over SIMD16<Float> so the compiler emits
/// vector code. exp uses a range reduction to 2^k * e^r with |r| <= ln2/2 and
/// a degree-6 polynomial (relative error below 2e-7); erf uses Abramowitz and
/// Stegun 7.1.26 (absolute error below 1.5e-7). Each has a scalar twin test
/// against Foundation's exp and erf.
enum VectorMath {
    typealias V = SIMD16<Float>

    @inline(__always)
    static func exp(_ x: V) -> V {
        let clamped = x.clamped(lowerBound: V(repeating: -87.3), upperBound: V(repeating: 88.7))
        let k = (clamped * 1.442695041 + 0.5).rounded(.down)
        let r = clamped - k * 0.693359375 + k * 2.12194440e-4
        var p = V(repeating: 1.0 / 720)
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        // 2^k through the exponent bits.
        let bits = (SIMD16<Int32>(k, rounding: .towardZero) &+ 127) &<< 23
        return p * unsafeBitCast(bits, to: V.self)
    }

    @inline(__always)
    static func erf(_ x: V) -> V {
        let sign = V(repeating: 1).replacing(with: -1, where: x .< 0)
        let a = x.replacing(with: -x, where: x .< 0)
        let t = 1 / (1 + 0.3275911 * a)
        var y = V(repeating: 1.061405429)
        y = y * t - 1.453152027
        y = y * t + 1.421413741
        y = y * t - 0.284496736
        y = y * t + 0.254829592
        y = y * t
        return sign * (1 - y * exp(-a * a))
    }

    /// x = GELU(x + bias) over rows of `width`, erf form: 0.5 x (1 + erf(x / sqrt 2)).
    static func biasGELU(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, bias: UnsafePointer<Float>) {
        for row in 0..<rows {
            let base = x + row * width
            var i = 0
            while i + 16 <= width {
                let v = load(base + i) + load(bias + i)
                store(0.5 * v * (1 + erf(v * 0.70710678118654752)), base + i)
                i += 16
            }
            while i < width {
                let v = base[i] + bias[i]
                base[i] = 0.5 * v * (1 + Float(erfScalar(Double(v) * 0.70710678118654752)))
                i += 1
            }
        }
    }

    /// x += bias, per row.
    static func addBias(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, bias: UnsafePointer<Float>) {
        for row in 0..<rows {
            let base = x + row * width
            var i = 0
            while i + 16 <= width {
                store(load(base + i) + load(bias + i), base + i)
                i += 16
            }
            while i < width { base[i] += bias[i]; i += 1 }
        }
    }

    /// residual = LayerNorm(residual + x + bias): the sublayer's output bias,
    /// the residual connection and the normalization in one pass over memory.
    static func biasResidualLayerNorm(_ x: UnsafePointer<Float>, bias: UnsafePointer<Float>, residual: UnsafeMutablePointer<Float>,
                                      rows: Int, width: Int, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, epsilon: Float) {
        for row in 0..<rows {
            let r = residual + row * width
            let s = x + row * width
            for i in 0..<width { r[i] += s[i] + bias[i] }
        }
        layerNorm(residual, rows: rows, width: width, scale: scale, shift: shift, epsilon: epsilon)
    }

    /// In-place LayerNorm over rows; mean and variance accumulate in Double
    /// so long rows lose no precision.
    static func layerNorm(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, scale: UnsafePointer<Float>,
                          shift: UnsafePointer<Float>, epsilon: Float) {
        for row in 0..<rows {
            let base = x + row * width
            var sum = 0.0
            for i in 0..<width { sum += Double(base[i]) }
            let mean = sum / Double(width)
            var squares = 0.0
            for i in 0..<width {
                let d = Double(base[i]) - mean
                squares += d * d
            }
            let inverse = Float(1 / (squares / Double(width) + Double(epsilon)).squareRoot())
            let m = Float(mean)
            for i in 0..<width { base[i] = (base[i] - m) * inverse * scale[i] + shift[i] }
        }
    }

    /// Row-wise softmax of `rows` rows of `width`, in place.
    static func softmax(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, stride: Int) {
        for row in 0..<rows {
            let base = x + row * stride
            var maximum = -Float.infinity
            for i in 0..<width { maximum = max(maximum, base[i]) }
            var sum: Float = 0
            var i = 0
            while i + 16 <= width {
                let e = exp(load(base + i) - maximum)
                store(e, base + i)
                sum += e.sum()
                i += 16
            }
            while i < width {
                let e = Float(expScalar(Double(base[i] - maximum)))
                base[i] = e
                sum += e
                i += 1
            }
            let inverse = 1 / sum
            for j in 0..<width { base[j] *= inverse }
        }
    }

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }

    @inline(__always) static func load(_ p: UnsafeMutablePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }

    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func erfScalar(_ x: Double) -> Double { Glibc.erf(x) }
@inline(__always) func expScalar(_ x: Double) -> Double { Glibc.exp(x) }
#else
import Foundation
@inline(__always) func erfScalar(_ x: Double) -> Double { Foundation.erf(x) }
@inline(__always) func expScalar(_ x: Double) -> Double { Foundation.exp(x) }
#endif
