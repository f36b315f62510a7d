// Bias + GELU after the first FFN linear: the GEMM writes x = input W^T
// without bias; this kernel reads and writes it once, in place.
//
// GELU is the erf form, 0.5 * v * (1 + erf(v / sqrt(2))), as DistilBERT and
// BERT ("gelu") and the CPU path (oneDNN eltwise_gelu_erf) compute it.
// cuBLASLt's GELU epilogue is the tanh approximation, so it is not used.
//
// Built with NVRTC and nothing else: no includes. Arithmetic is explicit
// round-to-nearest intrinsics (no contraction); erff is libdevice's
// (max error 2 ulp), the one operation a CPU twin cannot repeat bit for bit.

#define ELEMENTWISE_THREADS 256        // blockDim.x the host launches with

typedef unsigned long long u64;

// x = gelu(x + bias) for every element of a (rows, cols) row-major matrix.
//
// Geometry: grid (rows, 1, 1); block (ELEMENTWISE_THREADS = 256, 1, 1).
// One block per row; thread tid handles columns c = tid, tid + 256, ...
// Each element is independent of the others (no reduction).
// Per element: v = x + bias[c]; y = (0.5 * v) * (1 + erff(v * 0.70710678f)).
extern "C" __global__ void __launch_bounds__(ELEMENTWISE_THREADS)
bias_gelu_f32(float* x,                 // (rows, cols) in place
              const float* bias,        // (cols)
              int cols) {
    float* row = x + (u64)blockIdx.x * (u64)cols;
    for (int c = threadIdx.x; c < cols; c += ELEMENTWISE_THREADS) {
        const float v = __fadd_rn(row[c], bias[c]);
        const float e = erff(__fmul_rn(v, 0.70710678118654752440f));
        row[c] = __fmul_rn(__fmul_rn(0.5f, v), __fadd_rn(1.0f, e));
    }
}
