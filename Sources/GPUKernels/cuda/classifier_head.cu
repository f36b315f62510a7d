// Epilogues of the sequence-classification head (DistilBERT):
//   first  = gather_rows(hidden_states, rows = starts[s])       (packing.cu)
//   pre    = first pre_classifier.W^T     (cuBLAS, no bias)  -> bias_relu_f32
//   logits = pre classifier.W^T           (cuBLAS, no bias)  -> add_bias_f32
// Element-wise, no reductions: a CPU twin matches bit for bit.
//
// Built with NVRTC and nothing else: no includes. Arithmetic is explicit
// round-to-nearest intrinsics.

#define ELEMENTWISE_THREADS 256        // blockDim.x the host launches with

typedef unsigned long long u64;

// x = max(0, x + bias), in place. (The CPU path computes max(0, x + b) too.)
//
// Geometry: grid (rows, 1, 1); block (ELEMENTWISE_THREADS = 256, 1, 1).
// One block per row; thread tid handles columns c = tid, tid + 256, ...
extern "C" __global__ void __launch_bounds__(ELEMENTWISE_THREADS)
bias_relu_f32(float* x,                 // (rows, cols) in place: (sequences, hidden)
              const float* bias,        // (cols)
              int cols) {
    float* row = x + (u64)blockIdx.x * (u64)cols;
    for (int c = threadIdx.x; c < cols; c += ELEMENTWISE_THREADS) {
        row[c] = fmaxf(0.0f, __fadd_rn(row[c], bias[c]));
    }
}

// x = x + bias, in place.
//
// Geometry: grid (rows, 1, 1); block (ELEMENTWISE_THREADS = 256, 1, 1).
// One block per row; thread tid handles columns c = tid, tid + 256, ...
extern "C" __global__ void __launch_bounds__(ELEMENTWISE_THREADS)
add_bias_f32(float* x,                  // (rows, cols) in place: (sequences, labels)
             const float* bias,         // (cols)
             int cols) {
    float* row = x + (u64)blockIdx.x * (u64)cols;
    for (int c = threadIdx.x; c < cols; c += ELEMENTWISE_THREADS) {
        row[c] = __fadd_rn(row[c], bias[c]);
    }
}
