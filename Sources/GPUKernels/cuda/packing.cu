// Data movement for packed sequences: gather/scatter of rows (padding
// removal, first-token rows for the classifier) and the head split/merge
// around the per-sequence attention GEMMs. Pure copies and one bias add: no
// reductions, so every result is exact and a CPU twin matches bit for bit.
//
// Head layout ("per-sequence head-major"): sequence s of length L_s starting
// at token starts[s] owns elements [starts[s] * hidden, starts[s+1] * hidden)
// of a (tokens * hidden) buffer, laid out (heads, L_s, head_dim). Within a
// sequence, head h's (L_s, head_dim) matrix is contiguous, so one
// cublasGemmStridedBatchedEx per sequence (batch = heads, stride L_s * head_dim)
// covers all heads. No padding anywhere.
//
// Built with NVRTC and nothing else: no includes.

#define PACK_THREADS 256               // blockDim.x the host launches with

typedef unsigned long long u64;

// The sequence that holds token t: the s with starts[s] <= t < starts[s+1]
// (binary search; empty sequences, starts[s] == starts[s+1], are skipped).
__device__ __forceinline__ int sequence_of(const int* starts, int sequences, int t) {
    int lo = 0, hi = sequences;  // starts[lo] <= t < starts[hi]
    while (hi - lo > 1) {
        const int mid = (lo + hi) >> 1;
        if (starts[mid] <= t) lo = mid; else hi = mid;
    }
    return lo;
}

// q, k, v (head layout) = qkv + bias, split by head.
//
// Geometry: grid (tokens, 1, 1); block (PACK_THREADS = 256, 1, 1).
// Block t copies token t's row: for part in q, k, v, thread tid handles
// columns c = tid, tid + 256, ... < hidden; head = c / head_dim,
// e = c % head_dim; value = qkv[t, part * hidden + c] + bias[part * hidden + c]
// goes to out_part[starts[s] * hidden + (head * L_s + (t - starts[s])) * head_dim + e].
// The scale 1/sqrt(head_dim) is not applied here: it is the scores GEMM's alpha.
extern "C" __global__ void __launch_bounds__(PACK_THREADS)
split_qkv_heads_f32(float* q,                  // (tokens * hidden) head layout
                    float* k,                  // (tokens * hidden) head layout
                    float* v,                  // (tokens * hidden) head layout
                    const float* qkv,          // (tokens, 3 * hidden) GEMM output without bias: [q | k | v]
                    const float* bias,         // (3 * hidden)
                    const int* starts,         // (sequences + 1)
                    int sequences, int hidden, int head_dim) {
    const int t = blockIdx.x;
    const int s = sequence_of(starts, sequences, t);
    const int start = starts[s];
    const int length = starts[s + 1] - start;
    const int position = t - start;
    const float* in = qkv + (u64)t * (u64)(3 * hidden);
    const u64 base = (u64)start * (u64)hidden;
    float* outs[3] = {q, k, v};
#pragma unroll
    for (int part = 0; part < 3; ++part) {
        float* out = outs[part] + base;
        for (int c = threadIdx.x; c < hidden; c += PACK_THREADS) {
            const int head = c / head_dim, e = c - head * head_dim;
            const int j = part * hidden + c;
            out[((u64)head * length + position) * head_dim + e] = __fadd_rn(in[j], bias[j]);
        }
    }
}

// context (tokens, hidden) = merge of the per-head attention outputs.
//
// Geometry: grid (tokens, 1, 1); block (PACK_THREADS = 256, 1, 1).
// Block t writes token t's row; thread tid handles columns c = tid, tid + 256, ...:
// context[t, c] = heads_in[starts[s] * hidden + (head * L_s + (t - starts[s])) * head_dim + e]
// with head = c / head_dim, e = c % head_dim.
extern "C" __global__ void __launch_bounds__(PACK_THREADS)
merge_heads_f32(float* context,                // (tokens, hidden)
                const float* heads_in,         // (tokens * hidden) head layout, the P V GEMM's output
                const int* starts,             // (sequences + 1)
                int sequences, int hidden, int head_dim) {
    const int t = blockIdx.x;
    const int s = sequence_of(starts, sequences, t);
    const int start = starts[s];
    const int length = starts[s + 1] - start;
    const int position = t - start;
    const float* in = heads_in + (u64)start * (u64)hidden;
    float* out = context + (u64)t * (u64)hidden;
    for (int c = threadIdx.x; c < hidden; c += PACK_THREADS) {
        const int head = c / head_dim, e = c - head * head_dim;
        out[c] = in[((u64)head * length + position) * head_dim + e];
    }
}

// out[i] = in[rows[i]], or zeros where rows[i] < 0.
// Uses: padding removal (padded (sequences * max_len, width) -> packed
// (tokens, width) with rows[t] = s * max_len + original position), and the
// classifier's first-token rows (rows[s] = starts[s], -1 for an empty sequence).
//
// Geometry: grid (n, 1, 1); block (PACK_THREADS = 256, 1, 1).
// Block i copies one row; thread tid handles columns c = tid, tid + 256, ...
extern "C" __global__ void __launch_bounds__(PACK_THREADS)
gather_rows_f32(float* out,                    // (n, width)
                const float* in,               // (m, width)
                const int* rows,               // (n) source row in [0, m), or -1 for a row of zeros
                int width) {
    const int source = rows[blockIdx.x];
    float* o = out + (u64)blockIdx.x * (u64)width;
    if (source < 0) {
        for (int c = threadIdx.x; c < width; c += PACK_THREADS) o[c] = 0.0f;
        return;
    }
    const float* r = in + (u64)source * (u64)width;
    for (int c = threadIdx.x; c < width; c += PACK_THREADS) o[c] = r[c];
}

// out[rows[i]] = in[i]: the inverse of gather_rows (packed -> padded).
// Rows of out that no i names keep their contents: the host clears out
// first (cudaMemsetAsync) when padding must read as zeros. rows holds no
// duplicates, so no two blocks write the same row.
//
// Geometry: grid (n, 1, 1); block (PACK_THREADS = 256, 1, 1).
// Block i copies one row; thread tid handles columns c = tid, tid + 256, ...
extern "C" __global__ void __launch_bounds__(PACK_THREADS)
scatter_rows_f32(float* out,                   // (m, width)
                 const float* in,              // (n, width)
                 const int* rows,              // (n) destination row in [0, m), distinct
                 int width) {
    float* o = out + (u64)rows[blockIdx.x] * (u64)width;
    const float* r = in + (u64)blockIdx.x * (u64)width;
    for (int c = threadIdx.x; c < width; c += PACK_THREADS) o[c] = r[c];
}
