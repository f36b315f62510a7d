import CDNNL
import InferenceCore
import TransformerModel

/// Small row-major matrix products (the classification head) through oneDNN's `dnnl_sgemm`
/// (Debian's libdnnl, AVX-512 kernels where the CPU has them).
enum CPUMatmul {
    /// C (m x n) = alpha * A (m x k) * op(B) + beta * C, where op(B) is B (k x n)
    /// or, with `transposeB`, the transpose of B stored as (n x k).
    static func gemm(m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                     b: UnsafePointer<Float>, ldb: Int, transposeB: Bool, beta: Float = 0,
                     c: UnsafeMutablePointer<Float>, ldc: Int) throws {
        guard m > 0, n > 0, k > 0 else { return }
        let status = dnnl_sgemm(CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: transposeB ? "T" : "N")),
                                dnnl_dim_t(m), dnnl_dim_t(n), dnnl_dim_t(k), alpha, a, dnnl_dim_t(lda),
                                b, dnnl_dim_t(ldb), beta, c, dnnl_dim_t(ldc))
        guard status == dnnl_success else {
            throw InferenceError.internal("oneDNN sgemm failed with status \(status.rawValue) (m \(m), n \(n), k \(k))")
        }
    }

    /// output (rows x out) = input (rows x in) * weight^T, weight stored (out x in)
    /// as PyTorch's Linear keeps it. Bias is added by the caller's fused pass.
    static func linear(_ input: UnsafePointer<Float>, rows: Int, inFeatures: Int, weight: UnsafePointer<Float>,
                       outFeatures: Int, output: UnsafeMutablePointer<Float>) throws {
        try gemm(m: rows, n: outFeatures, k: inFeatures, a: input, lda: inFeatures, b: weight, ldb: inFeatures,
                 transposeB: true, c: output, ldc: outFeatures)
    }
}
