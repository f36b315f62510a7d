#include "encoder_kernels.h"

#include <math.h>
#include <string.h>

// Built for three levels of x86-64; the dynamic loader resolves each function
// to the best one the CPU runs (an ifunc). Elsewhere, one generic build.
#if defined(__x86_64__) && defined(__linux__)
#define EK_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define EK_CLONES
#endif

// Reductions may be reordered so they vectorize; everything else keeps IEEE order.
#define EK_REASSOCIATE _Pragma("clang fp reassociate(on)")

// Mirrors the loader's choice among the clones below.
const char *ek_variant(void) {
#if defined(__x86_64__) && defined(__linux__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return "x86-64-v4";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2")) return "x86-64-v3";
    return "x86-64";
#else
    return "generic";
#endif
}

// e^x by range reduction to 2^k e^r, |r| <= ln2/2, degree-6 polynomial
// (relative error below 2e-7); written so that it vectorizes in loops.
static inline float ek_exp(float x) {
    x = fminf(fmaxf(x, -87.3f), 88.7f);
    float k = floorf(x * 1.442695041f + 0.5f);
    float r = x - k * 0.693359375f + k * 2.12194440e-4f;
    float p = 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1;
    p = p * r + 1;
    int32_t bits = ((int32_t)k + 127) << 23;
    float two_k;
    memcpy(&two_k, &bits, sizeof two_k);
    return p * two_k;
}

// erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7).
static inline float ek_erf(float x) {
    float a = fabsf(x);
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
    float y = 1.0f - poly * ek_exp(-a * a);
    return copysignf(y, x);
}

static inline float ek_gelu_inline(float x) { return 0.5f * x * (1.0f + ek_erf(x * 0.70710678118654752f)); }

float ek_gelu(float x) { return ek_gelu_inline(x); }

static inline uint16_t ek_bf16(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    uint32_t rounded = (bits + (((bits >> 16) & 1) + 0x7FFF)) >> 16;
    // NaN stays a (quiet) NaN instead of rounding into infinity.
    return (value != value) ? (uint16_t)((bits >> 16) | 0x40) : (uint16_t)rounded;
}

EK_REASSOCIATE
static inline float ek_max_abs(const float *x, long n) {
    float m = 0;
    for (long i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

static inline void ek_quantize_row(const float *x, long n, int8_t *q, float *scale) {
    float m = ek_max_abs(x, n);
    float s = m > 0 ? m / 127.0f : 1.0f;
    float inverse = 1.0f / s;
    for (long i = 0; i < n; i++) {
        float v = rintf(x[i] * inverse);
        v = fminf(fmaxf(v, -127.0f), 127.0f);
        q[i] = (int8_t)(int32_t)v;
    }
    *scale = s;
}

EK_CLONES void ek_quantize_rows(const float *x, long rows, long cols, long ldx, int8_t *q, long ldq, float *scales) {
    for (long r = 0; r < rows; r++) ek_quantize_row(x + r * ldx, cols, q + r * ldq, scales + r);
}

EK_CLONES void ek_dequantize_bias(const int32_t *acc, long rows, long cols, const float *row_scale,
                                  const float *col_scale, const float *bias, float *out) {
    for (long r = 0; r < rows; r++) {
        const int32_t *a = acc + r * cols;
        float *o = out + r * cols;
        float s = row_scale[r];
        for (long c = 0; c < cols; c++) o[c] = (float)a[c] * (s * col_scale[c]) + bias[c];
    }
}

EK_REASSOCIATE
static inline void ek_quantize_row_unsigned(const float *x, long n, uint8_t *q, float *scale, int32_t *zero_point) {
    // Two separate reductions: the vectorizer declines the fused min/max loop.
    float lo = 0, hi = 0;
    for (long i = 0; i < n; i++) lo = fminf(lo, x[i]);
    for (long i = 0; i < n; i++) hi = fmaxf(hi, x[i]);
    float s = hi > lo ? (hi - lo) / 255.0f : 1.0f;
    float inverse = 1.0f / s;
    float z = rintf(-lo * inverse);
    for (long i = 0; i < n; i++) {
        float v = rintf(x[i] * inverse) + z;
        v = fminf(fmaxf(v, 0.0f), 255.0f);
        q[i] = (uint8_t)(int32_t)v;
    }
    *scale = s;
    *zero_point = (int32_t)z;
}

EK_CLONES void ek_bias_gelu_quantize(const int32_t *acc, long rows, long cols, const float *row_scale,
                                     const float *col_scale, const float *bias, float *tmp, uint8_t *q,
                                     float *q_scales, int32_t *q_zero_points) {
    for (long r = 0; r < rows; r++) {
        const int32_t *a = acc + r * cols;
        float s = row_scale[r];
        for (long c = 0; c < cols; c++) tmp[c] = ek_gelu_inline((float)a[c] * (s * col_scale[c]) + bias[c]);
        ek_quantize_row_unsigned(tmp, cols, q + r * cols, q_scales + r, q_zero_points + r);
    }
}

EK_REASSOCIATE
static inline void ek_layernorm_row(float *h, long n, const float *gamma, const float *beta, float eps) {
    // Two passes over a row that sits in L1: mean, then the variance of the
    // deviations, which keeps float accuracy for rows with a large mean.
    float sum = 0;
    for (long i = 0; i < n; i++) sum += h[i];
    float mean = sum / (float)n;
    float squares = 0;
    for (long i = 0; i < n; i++) {
        float d = h[i] - mean;
        squares += d * d;
    }
    float inverse = 1.0f / sqrtf(squares / (float)n + eps);
    for (long i = 0; i < n; i++) h[i] = (h[i] - mean) * inverse * gamma[i] + beta[i];
}

EK_CLONES void ek_residual_layernorm(float *hidden, const float *x, const int32_t *acc, const float *row_scale,
                                     const float *col_scale, const float *bias, const int32_t *zero_points,
                                     const int32_t *col_sums, long rows, long width, const float *gamma,
                                     const float *beta, float eps, int8_t *q, float *q_scales, uint16_t *bf16) {
    for (long r = 0; r < rows; r++) {
        float *h = hidden + r * width;
        if (x) {
            const float *xr = x + r * width;
            for (long i = 0; i < width; i++) h[i] += xr[i];
        } else if (acc && zero_points) {
            const int32_t *a = acc + r * width;
            float s = row_scale[r];
            int32_t z = zero_points[r];
            for (long i = 0; i < width; i++) h[i] += (float)(a[i] - z * col_sums[i]) * (s * col_scale[i]) + bias[i];
        } else if (acc) {
            const int32_t *a = acc + r * width;
            float s = row_scale[r];
            for (long i = 0; i < width; i++) h[i] += (float)a[i] * (s * col_scale[i]) + bias[i];
        }
        ek_layernorm_row(h, width, gamma, beta, eps);
        if (q) ek_quantize_row(h, width, q + r * width, q_scales + r);
        if (bf16) {
            uint16_t *b = bf16 + r * width;
            for (long i = 0; i < width; i++) b[i] = ek_bf16(h[i]);
        }
    }
}

EK_REASSOCIATE
EK_CLONES void ek_softmax_rows(float *x, long rows, long width, long stride) {
    for (long r = 0; r < rows; r++) {
        float *row = x + r * stride;
        float top = -INFINITY;
        for (long i = 0; i < width; i++) top = fmaxf(top, row[i]);
        float sum = 0;
        for (long i = 0; i < width; i++) {
            float e = ek_exp(row[i] - top);
            row[i] = e;
            sum += e;
        }
        float inverse = 1.0f / sum;
        for (long i = 0; i < width; i++) row[i] *= inverse;
    }
}

EK_CLONES void ek_f32_to_bf16(const float *x, long rows, long cols, long ldx, uint16_t *out, long ldo) {
    for (long r = 0; r < rows; r++)
        for (long c = 0; c < cols; c++) out[r * ldo + c] = ek_bf16(x[r * ldx + c]);
}

EK_CLONES void ek_bf16_to_f32(const uint16_t *x, long rows, long cols, long ldx, float *out, long ldo) {
    for (long r = 0; r < rows; r++)
        for (long c = 0; c < cols; c++) {
            uint32_t bits = (uint32_t)x[r * ldx + c] << 16;
            memcpy(&out[r * ldo + c], &bits, sizeof(float));
        }
}
