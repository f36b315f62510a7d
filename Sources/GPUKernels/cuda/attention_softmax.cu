// Row softmax of the attention scores of a packed batch, in place.
//
// Sequences are packed without padding, so there is no mask to apply: each
// sequence s of length L_s has its own (heads, L_s, L_s) block of scores,
// written by one cublasGemmStridedBatchedEx per sequence (batch = heads), and
// a row is exactly L_s long. One launch covers every sequence of the batch.
//
// Built with NVRTC and nothing else: no includes. Arithmetic is explicit
// round-to-nearest intrinsics (no contraction); expf is libdevice's accurate
// one (max error 2 ulp; not __expf, whose error grows with |x|), the one
// operation a CPU twin cannot repeat bit for bit.

#define SOFTMAX_THREADS 256                          // blockDim.x the host launches with
#define SOFTMAX_ROWS_PER_BLOCK (SOFTMAX_THREADS / 32)  // one warp per row: 8 rows a block

typedef long long i64;

__device__ __forceinline__ float warp_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 16));
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 8));
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 4));
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return v;
}

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

// p = softmax(scale * scores) along each row, for every sequence and head.
//
// Geometry: grid (ceil(max_len / 8), heads, sequences); block (SOFTMAX_THREADS = 256, 1, 1);
//           no dynamic shared memory. Warp w of block (bx, head, s) owns row
//           r = bx * 8 + w of head `head` of sequence s; warps with
//           r >= L_s return at once (there are no block barriers).
// Per row, lane l visits j = l, l + 32, l + 64, ... (< L) in ascending order:
//   1. m = max over j of (x_j * scale) per lane from -inf, then warp_max
//      (max is exact, so its order does not matter).
//   2. e_j = expf(x_j * scale - m), stored in place; each lane sums its e_j
//      in ascending j from 0, then warp_sum (xor 16, 8, 4, 2, 1).
//   3. inv = 1 / sum; p_j = e_j * inv.
// With the scale folded into the GEMM's alpha (as the CPU path does),
// pass scale = 1: x * 1 is exact.
extern "C" __global__ void __launch_bounds__(SOFTMAX_THREADS)
attention_softmax_f32(float* scores,                 // sequence s: (heads, L_s, L_s) at score_offsets[s]
                      const int* starts,             // (sequences + 1) first token of each sequence; L_s = starts[s+1] - starts[s]
                      const i64* score_offsets,      // (sequences + 1) element offsets: offsets[s+1] - offsets[s] = heads * L_s * L_s
                      float scale) {
    const int s = blockIdx.z;
    const int head = blockIdx.y;
    const int lane = threadIdx.x & 31;
    const int length = starts[s + 1] - starts[s];
    const int r = blockIdx.x * SOFTMAX_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (r >= length) return;
    float* row = scores + score_offsets[s] + ((i64)head * length + r) * length;

    float m = __int_as_float(0xff800000);  // -inf
    for (int j = lane; j < length; j += 32) m = fmaxf(m, __fmul_rn(row[j], scale));
    m = warp_max(m);

    float sum = 0.0f;
    for (int j = lane; j < length; j += 32) {
        const float e = expf(__fsub_rn(__fmul_rn(row[j], scale), m));
        row[j] = e;
        sum = __fadd_rn(sum, e);
    }
    sum = warp_sum(sum);

    const float inv = __fdiv_rn(1.0f, sum);
    for (int j = lane; j < length; j += 32) row[j] = __fmul_rn(row[j], inv);
}
