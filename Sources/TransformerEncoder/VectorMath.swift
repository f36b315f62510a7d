/// Element-wise kernels of the encoder on the CPU: exp, residual + LayerNorm
/// and softmax, written over SIMD16<Float> so the compiler emits vector code
/// (bias and GELU are fused into oneDNN's matmul). exp uses a range reduction
/// to 2^k * e^r with |r| <= ln2/2 and a degree-6 polynomial (relative error
/// below 2e-7). Each kernel has a scalar twin test in Double precision.
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
        // 2^k through the exponent bits. Adding 2^23 puts the integer k + 127
        // in the low mantissa bits, which avoids a (scalarized) float-to-int
        // conversion: bits(k + 127 + 2^23) - bits(2^23) = k + 127.
        let biased = unsafeBitCast(k + (127 + 8_388_608), to: SIMD16<Int32>.self) &- 0x4B00_0000
        return p * unsafeBitCast(biased &<< 23, to: V.self)
    }

    /// residual = LayerNorm(residual + x): the residual connection and the
    /// normalization in one pass over memory (the matmul already added the bias).
    static func residualLayerNorm(_ x: UnsafePointer<Float>, residual: UnsafeMutablePointer<Float>, rows: Int, width: Int,
                                  scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, epsilon: Float) {
        for row in 0..<rows {
            let r = residual + row * width
            let s = x + row * width
            var i = 0
            while i + 16 <= width {
                store(load(r + i) + load(s + i), r + i)
                i += 16
            }
            while i < width { r[i] += s[i]; i += 1 }
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
@inline(__always) func expScalar(_ x: Double) -> Double { Glibc.exp(x) }
#else
import Foundation
@inline(__always) func expScalar(_ x: Double) -> Double { Foundation.exp(x) }
#endif
