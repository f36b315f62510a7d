// Float32 -> bfloat16 for the BF16 GEMM option: cublasGemmEx wants A and B
// in the same type, so activations feeding a BF16 GEMM (with FP32 compute)
// are converted first. Weights are converted once on the host at load
// (BFloat16Bits.round in TransformerEncoder), with the same rounding as here.
//
// Built with NVRTC and nothing else: no includes, so no __nv_bfloat16 type:
// the result is the bfloat16's 16 bits in an unsigned short.
// Rounding: to nearest, ties to even, on the bits; NaN stays a (quiet) NaN.
// Exact, so a CPU twin matches bit for bit.

#define CONVERT_THREADS 256            // blockDim.x the host launches with

typedef unsigned long long u64;

// out[i] = bfloat16 bits of x[i].
//
// Geometry: grid (ceil(n / 256), 1, 1); block (CONVERT_THREADS = 256, 1, 1).
// Thread i = blockIdx.x * 256 + threadIdx.x converts element i (if i < n).
// Per element: bits = float bits of x; NaN -> (bits >> 16) | 0x40;
// otherwise (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16, wrapping in 32 bits.
extern "C" __global__ void __launch_bounds__(CONVERT_THREADS)
convert_f32_to_bf16(unsigned short* out,       // (n) bfloat16 bits
                    const float* x,            // (n)
                    u64 n) {
    const u64 i = (u64)blockIdx.x * CONVERT_THREADS + threadIdx.x;
    if (i >= n) return;
    const float value = x[i];
    const unsigned int bits = __float_as_uint(value);
    if (value != value) {
        out[i] = (unsigned short)((bits >> 16) | 0x40u);
        return;
    }
    out[i] = (unsigned short)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}
