import Foundation
import GPUKernels
import Testing

/// bias + GELU, bias + ReLU and bias add against float64 references.
@Suite struct BiasActivationTwinTests {
    /// Float erf within a couple of ulp; the output scale (|y| or 1, whichever
    /// is larger) is what an error is measured against, because for v << 0
    /// GELU is a tiny difference 1 + erf that Float cannot resolve relatively.
    static let tolerance = 1e-5

    static let widths = [768, 3072, 100, 1000, 1]

    @Test(arguments: widths)
    func biasGeluMatchesFloat64ErfGelu(_ cols: Int) {
        var random = SplitMix64(seed: UInt64(cols) &+ 40)
        let rows = random.lengths().reduce(0, +)
        let x = random.normals(rows * cols, scale: 3), bias = random.normals(cols, scale: 0.5)
        var out = x
        BiasActivationTwins.biasGelu(x: &out, bias: bias, cols: cols)
        let expected = x.indices.map { i -> Double in
            let v = Double(x[i]) + Double(bias[i % cols])
            return 0.5 * v * (1 + erf(v / 2.0.squareRoot()))
        }
        #expect(maxRelativeError(out, expected, floor: 1) <= Self.tolerance)
    }

    @Test func geluAtKnownPoints() {
        #expect(BiasActivationTwins.gelu(0) == 0)
        #expect(BiasActivationTwins.gelu(-20) == 0)  // erf saturates at -1 in Float
        #expect(BiasActivationTwins.gelu(20) == 20)
        #expect(abs(Double(BiasActivationTwins.gelu(1)) - 0.8413447460685429) <= 1e-7)
        #expect(BiasActivationTwins.gelu(.nan).isNaN)
    }

    /// The kernel's literal 0.70710678118654752440f: the Float nearest 1/sqrt(2).
    @Test func inverseSquareRootOfTwoIsTheRoundedLiteral() {
        let c = BiasActivationTwins.inverseSquareRootOfTwo
        #expect(c == Float(0.5).squareRoot())
        let exact = 0.5.squareRoot()
        #expect(abs(Double(c) - exact) <= abs(Double(c.nextUp) - exact))
        #expect(abs(Double(c) - exact) <= abs(Double(c.nextDown) - exact))
    }

    @Test(arguments: widths)
    func biasReluAndAddBiasAreOneRoundedAdd(_ cols: Int) {
        var random = SplitMix64(seed: UInt64(cols) &+ 50)
        let rows = Int.random(in: 1...5, using: &random)
        let x = random.normals(rows * cols), bias = random.normals(cols)
        var relu = x, added = x
        BiasActivationTwins.biasRelu(x: &relu, bias: bias, cols: cols)
        BiasActivationTwins.addBias(x: &added, bias: bias, cols: cols)
        let sums = x.indices.map { Double(x[$0]) + Double(bias[$0 % cols]) }
        // Two Floats' sum is exact in Double here (close exponents), so one
        // Float rounding of it is the correctly rounded Float add.
        #expect(added == sums.map { Float($0) })
        #expect(relu == sums.map { Float(max($0, 0)) })
        #expect(maxRelativeError(added, sums, floor: 1e-30) <= 0x1p-24)
    }

    @Test func reluOfNaNAndNegativeZero() {
        var x: [Float] = [.nan, -0.0, -1, 2]
        BiasActivationTwins.biasRelu(x: &x, bias: [0, -0.0, 0, 0], cols: 4)
        #expect(x == [0, 0, 0, 2])
        #expect(x[1].sign == .plus)  // fmaxf(0, -0) taken as +0
    }
}
