// LayerNorm kernels of the encoder on packed sequences (no padding): the
// embedding lookup + LayerNorm that starts the forward pass, and the bias +
// residual + LayerNorm after the attention output projection and after the
// second FFN linear (post-LayerNorm layers; the GEMM writes x = input W^T
// without bias, and this kernel reads it once). Both share layernorm_row.
//
// Built with NVRTC and nothing else: no includes, only built-in intrinsics.
// Every floating-point operation that reaches the output is an explicit
// round-to-nearest intrinsic (__fadd_rn, __fsub_rn, __fmul_rn, __fdiv_rn,
// __fsqrt_rn, __fmaf_rn), so results do not depend on --fmad or --prec-div,
// and the CPU twin can repeat the same operations in the same order bit for bit.

#define LN_THREADS 256                 // blockDim.x the host must launch with
#define LN_WARPS (LN_THREADS / 32)

typedef unsigned long long u64;

// Warp sum, xor butterfly with offsets 16, 8, 4, 2, 1: at each step every
// lane l computes v[l] + v[l ^ offset]. Float addition is commutative, so all
// 32 lanes end with the same bits.
__device__ __forceinline__ float warp_sum(float v) {
    v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, 16));
    v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, 8));
    v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, 4));
    v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, 2));
    v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return v;
}

// Block sum over LN_THREADS threads: warp_sum in each warp, lane 0 stores
// its warp's partial, then every thread adds the LN_WARPS partials in warp
// order: ((p0 + p1) + p2) + ... + p7. Every thread returns the same bits.
__device__ __forceinline__ float block_sum(float v, float* partials /* (LN_WARPS) */) {
    v = warp_sum(v);
    if ((threadIdx.x & 31u) == 0u) partials[threadIdx.x >> 5] = v;
    __syncthreads();
    float total = partials[0];
#pragma unroll
    for (int w = 1; w < LN_WARPS; ++w) total = __fadd_rn(total, partials[w]);
    __syncthreads();  // partials is reused by the next call
    return total;
}

// LayerNorm of one row held in shared memory, written to out.
// Each thread only touches indices i = tid, tid + LN_THREADS, ..., so the
// row needs no barrier between being written by the caller and read here.
//   sum   = block_sum(strided slice summed in ascending i, starting at 0)
//   mean  = sum / hidden
//   sq    = block_sum(slice of fma(d, d, acc), d = x - mean, ascending i)
//   var   = sq / hidden
//   rstd  = 1 / sqrt(var + eps)
//   out   = fma((x - mean) * rstd, gamma, beta)
__device__ __forceinline__ void layernorm_row(const float* row /* (hidden), shared */, float* out /* (hidden) */,
                                              const float* gamma /* (hidden) */, const float* beta /* (hidden) */,
                                              int hidden, float eps, float* partials /* (LN_WARPS) */) {
    float s = 0.0f;
    for (int i = threadIdx.x; i < hidden; i += LN_THREADS) s = __fadd_rn(s, row[i]);
    const float mean = __fdiv_rn(block_sum(s, partials), (float)hidden);
    float q = 0.0f;
    for (int i = threadIdx.x; i < hidden; i += LN_THREADS) {
        const float d = __fsub_rn(row[i], mean);
        q = __fmaf_rn(d, d, q);
    }
    const float variance = __fdiv_rn(block_sum(q, partials), (float)hidden);
    const float rstd = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(variance, eps)));
    for (int i = threadIdx.x; i < hidden; i += LN_THREADS) {
        const float n = __fmul_rn(__fsub_rn(row[i], mean), rstd);
        out[i] = __fmaf_rn(n, gamma[i], beta[i]);
    }
}

// out[t] = LayerNorm(word[token_ids[t]] + position[positions[t]] (+ type_row)).
//
// Geometry: grid (tokens, 1, 1); block (LN_THREADS = 256, 1, 1);
//           dynamic shared memory hidden * sizeof(float) bytes.
// One block per token row. Per element: x = word + position, then
// x = x + type_row when type_row is not NULL (the order of the CPU path).
// LayerNorm as layernorm_row above. Token ids and positions are validated by
// the host (id < vocab, position < max_positions) before upload.
extern "C" __global__ void __launch_bounds__(LN_THREADS)
embedding_layernorm_f32(float* out,                 // (tokens, hidden)
                        const int* token_ids,       // (tokens)
                        const int* positions,       // (tokens) position of each token in its sequence
                        const float* word,          // (vocab, hidden)
                        const float* position,      // (max_positions, hidden)
                        const float* type_row,      // (hidden) token type 0's row (BERT), or NULL (DistilBERT)
                        const float* gamma,         // (hidden)
                        const float* beta,          // (hidden)
                        int hidden, float eps) {
    extern __shared__ float row[];                  // (hidden)
    __shared__ float partials[LN_WARPS];
    const u64 t = blockIdx.x;
    const float* w = word + (u64)token_ids[t] * (u64)hidden;
    const float* p = position + (u64)positions[t] * (u64)hidden;
    for (int i = threadIdx.x; i < hidden; i += LN_THREADS) {
        float x = __fadd_rn(w[i], p[i]);
        if (type_row != 0) x = __fadd_rn(x, type_row[i]);
        row[i] = x;
    }
    layernorm_row(row, out + t * (u64)hidden, gamma, beta, hidden, eps, partials);
}

// hidden_states[t] = LayerNorm(hidden_states[t] + (x[t] + bias)), in place.
//
// Geometry: grid (tokens, 1, 1); block (LN_THREADS = 256, 1, 1);
//           dynamic shared memory hidden * sizeof(float) bytes.
// One block per token row. Per element: v = residual + (x + bias), the
// CPU path's order (its matmul adds the bias, then the residual is added).
extern "C" __global__ void __launch_bounds__(LN_THREADS)
bias_residual_layernorm_f32(float* hidden_states,   // (tokens, hidden) residual in, normalised out
                            const float* x,         // (tokens, hidden) GEMM output without bias
                            const float* bias,      // (hidden)
                            const float* gamma,     // (hidden)
                            const float* beta,      // (hidden)
                            int hidden, float eps) {
    extern __shared__ float row[];                  // (hidden)
    __shared__ float partials[LN_WARPS];
    const u64 base = (u64)blockIdx.x * (u64)hidden;
    float* residual = hidden_states + base;
    const float* product = x + base;
    for (int i = threadIdx.x; i < hidden; i += LN_THREADS) {
        row[i] = __fadd_rn(residual[i], __fadd_rn(product[i], bias[i]));
    }
    layernorm_row(row, residual, gamma, beta, hidden, eps, partials);
}
