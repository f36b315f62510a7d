// Sentence embeddings: the mean of each sequence's token states,
// L2-normalised (the all-MiniLM / sentence-transformers recipe; the CPU path
// is EncoderForward.embeddings, which accumulates in Double: this kernel
// accumulates in Float, so the two agree to rounding, not bit for bit).
//
// Built with NVRTC and nothing else: no includes. Arithmetic is explicit
// round-to-nearest intrinsics, so a Float CPU twin in the same order matches
// bit for bit.

#define POOL_THREADS 256               // blockDim.x the host launches with
#define POOL_WARPS (POOL_THREADS / 32)

typedef unsigned long long u64;

// Xor butterfly, offsets 16, 8, 4, 2, 1: lane l computes v[l] + v[l ^ offset];
// all 32 lanes end with the same bits.
__device__ __forceinline__ float warp_sum(float v) {
    v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, 16));
    v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, 8));
    v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, 4));
    v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, 2));
    v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return v;
}

// Block sum: warp_sum in each warp, lane 0 stores its warp's partial, then
// every thread adds the POOL_WARPS partials in warp order ((p0 + p1) + p2) ... + p7.
__device__ __forceinline__ float block_sum(float v, float* partials /* (POOL_WARPS) */) {
    v = warp_sum(v);
    if ((threadIdx.x & 31u) == 0u) partials[threadIdx.x >> 5] = v;
    __syncthreads();
    float total = partials[0];
#pragma unroll
    for (int w = 1; w < POOL_WARPS; ++w) total = __fadd_rn(total, partials[w]);
    __syncthreads();
    return total;
}

// out[s] = mean * (1 / max(|mean|_2, 1e-12)), mean = average of states[starts[s] ..< starts[s+1]].
//
// Geometry: grid (sequences, 1, 1); block (POOL_THREADS = 256, 1, 1);
//           no dynamic shared memory.
// Block s, thread tid, for its columns c = tid, tid + 256, ... (ascending):
//   acc = 0; for t = starts[s] ..< starts[s+1] ascending: acc = acc + states[t, c]
//   mean_c = acc / L_s, written to out[s, c] (read back by the same thread)
//   sq = 0; per column in the same order: sq = fma(mean_c, mean_c, sq)
// total = block_sum(sq); inv = 1 / max(sqrt(total), 1e-12); out[s, c] = mean_c * inv.
// An empty sequence (L_s = 0) gets a row of zeros, like the CPU path.
extern "C" __global__ void __launch_bounds__(POOL_THREADS)
mean_pool_l2norm_f32(float* out,                // (sequences, hidden)
                     const float* states,       // (tokens, hidden) final hidden states, packed
                     const int* starts,         // (sequences + 1)
                     int hidden) {
    __shared__ float partials[POOL_WARPS];
    const int start = starts[blockIdx.x], end = starts[blockIdx.x + 1];
    float* o = out + (u64)blockIdx.x * (u64)hidden;
    if (end <= start) {  // the whole block takes this branch: no barrier is skipped by part of it
        for (int c = threadIdx.x; c < hidden; c += POOL_THREADS) o[c] = 0.0f;
        return;
    }
    const float count = (float)(end - start);
    float sq = 0.0f;
    for (int c = threadIdx.x; c < hidden; c += POOL_THREADS) {
        float acc = 0.0f;
        for (int t = start; t < end; ++t) acc = __fadd_rn(acc, states[(u64)t * (u64)hidden + c]);
        const float mean = __fdiv_rn(acc, count);
        o[c] = mean;
        sq = __fmaf_rn(mean, mean, sq);
    }
    const float norm = __fsqrt_rn(block_sum(sq, partials));
    const float inv = __fdiv_rn(1.0f, fmaxf(norm, 1e-12f));
    for (int c = threadIdx.x; c < hidden; c += POOL_THREADS) o[c] = __fmul_rn(o[c], inv);
}
