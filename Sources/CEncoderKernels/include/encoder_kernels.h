// Row-wise element kernels of the CPU encoder: the epilogues that sit between
// oneDNN's matrix products (dequantize + bias, GELU, residual + LayerNorm,
// per-row quantization, bf16 conversion) and the attention softmax. Written in
// C so the compiler vectorizes them reliably; each is built for AVX-512, AVX2
// and baseline x86-64 and the loader picks one for the CPU at run time
// (target_clones). Each has a Swift twin test in Double precision.
#ifndef ENCODER_KERNELS_H
#define ENCODER_KERNELS_H

#include <stdint.h>

/// The variant the loader picked for this CPU: "x86-64-v4" (AVX-512), "x86-64-v3" (AVX2) or "x86-64".
const char *ek_variant(void);

/// q (rows, cols; row stride ldq) = round(x / s[r]) with s[r] = max|x[r]| / 127
/// (symmetric int8 per row); x has row stride ldx. A row of zeros gets scale 1.
void ek_quantize_rows(const float *x, long rows, long cols, long ldx, int8_t *q, long ldq, float *scales);

/// out (rows, cols) = acc * (row_scale[r] * col_scale[c]) + bias[c].
void ek_dequantize_bias(const int32_t *acc, long rows, long cols, const float *row_scale, const float *col_scale,
                        const float *bias, float *out);

/// For each row: t = GELU(acc * row_scale[r] * col_scale + bias) (erf form), then
/// q[r] = round(t / s[r]) + z[r] as unsigned 8-bit, asymmetric per row: s[r] =
/// (max - min) / 255 over the row with 0 in the range, z[r] = round(-min / s[r]).
/// GELU's output is nearly one-sided (>= -0.17), so this spends all 256 levels
/// on it where a symmetric scale would waste half. tmp holds one row (cols floats).
void ek_bias_gelu_quantize(const int32_t *acc, long rows, long cols, const float *row_scale, const float *col_scale,
                           const float *bias, float *tmp, uint8_t *q, float *q_scales, int32_t *q_zero_points);

/// hidden[r] = LayerNorm(hidden[r] + x[r]) with gamma, beta, eps, where x is
/// the f32 rows `x` if non-null, else (acc - zero_point[r] * col_sum) *
/// row_scale[r] * col_scale + bias (zero_points and col_sums null: no zero point);
/// with x and acc both null, hidden[r] = LayerNorm(hidden[r]). Then, where the
/// pointers are non-null: q/q_scales = the new rows quantized per row, bf16 =
/// the new rows in bfloat16 (round to nearest even).
void ek_residual_layernorm(float *hidden, const float *x, const int32_t *acc, const float *row_scale,
                           const float *col_scale, const float *bias, const int32_t *zero_points, const int32_t *col_sums,
                           long rows, long width, const float *gamma, const float *beta, float eps, int8_t *q,
                           float *q_scales, uint16_t *bf16);

/// In place, row-wise softmax of rows x width (row stride `stride`).
void ek_softmax_rows(float *x, long rows, long width, long stride);

/// out (rows, cols; stride ldo) = bf16(x (rows, cols; stride ldx)), round to nearest even.
void ek_f32_to_bf16(const float *x, long rows, long cols, long ldx, uint16_t *out, long ldo);

/// out (rows, cols; stride ldo) = float(x (rows, cols; stride ldx)).
void ek_bf16_to_f32(const uint16_t *x, long rows, long cols, long ldx, float *out, long ldo);

/// GELU (erf form) of one value with this file's erf: the twin tests' handle on it.
float ek_gelu(float x);

#endif
