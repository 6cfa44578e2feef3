/* Activations on flat arrays (any layout): ReLU, leaky ReLU, dropout.
 * Operators run a contiguous run of CNN_LAYERS_CHUNK-float chunks per thread. ReLU has AVX-512 and
 * AVX2 variants beside the plain loop (generic variant and reference). */
#include "../tensor/layers_internal.h"

#if CNN_X86
#include <immintrin.h>
#endif

/* ---------------------------------------------------------------- ReLU */

/* y = max(x, 0); NaN stays NaN (PyTorch's relu), written as a select the compiler vectorises. */
static void cnn_f32_relu__generic(int64_t n, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}
static void cnn_f32_relu_backward__generic(int64_t n, const float *y, const float *dy, float *dx) {
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

#if CNN_X86
/* max_ps returns its second operand when either is NaN: max(0, x) keeps a NaN x. */
CNN_TARGET_AVX512 static void cnn_f32_relu__avx512(int64_t n, const float *x, float *y) {
    const __m512 z = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        _mm512_storeu_ps(y + i, _mm512_max_ps(z, _mm512_loadu_ps(x + i)));
        _mm512_storeu_ps(y + i + 16, _mm512_max_ps(z, _mm512_loadu_ps(x + i + 16)));
    }
    for (; i < n; i += 16) {
        const int64_t r = n - i;
        const __mmask16 k = r >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << r) - 1u);
        _mm512_mask_storeu_ps(y + i, k, _mm512_max_ps(z, _mm512_maskz_loadu_ps(k, x + i)));
    }
}
CNN_TARGET_AVX512 static void cnn_f32_relu_backward__avx512(int64_t n, const float *y, const float *dy,
                                                            float *dx) {
    const __m512 z = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const int64_t r = n - i;
        const __mmask16 k = r >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << r) - 1u);
        const __mmask16 pos = _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(k, y + i), z, _CMP_GT_OQ);
        _mm512_mask_storeu_ps(dx + i, k, _mm512_maskz_mov_ps(pos, _mm512_maskz_loadu_ps(k, dy + i)));
    }
}
CNN_TARGET_AVX2 static void cnn_f32_relu__avx2(int64_t n, const float *x, float *y) {
    const __m256 z = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_ps(y + i, _mm256_max_ps(z, _mm256_loadu_ps(x + i)));
        _mm256_storeu_ps(y + i + 8, _mm256_max_ps(z, _mm256_loadu_ps(x + i + 8)));
    }
    for (; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}
CNN_TARGET_AVX2 static void cnn_f32_relu_backward__avx2(int64_t n, const float *y, const float *dy,
                                                        float *dx) {
    const __m256 z = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 pos = _mm256_cmp_ps(_mm256_loadu_ps(y + i), z, _CMP_GT_OQ);
        _mm256_storeu_ps(dx + i, _mm256_and_ps(pos, _mm256_loadu_ps(dy + i)));
    }
    for (; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
#endif

typedef void (*unary_fn)(int64_t, const float *, float *);
typedef void (*binary_fn)(int64_t, const float *, const float *, float *);

// x, y are (n); in place allowed
cnn_status cnn_relu_forward(int64_t n, const float *x, float *y) {
    if (n < 0) return CNN_ERR_INVALID_ARGUMENT;
    if (n == 0) return CNN_OK;
    if (!x || !y) return CNN_ERR_INVALID_ARGUMENT;
    unary_fn fn = cnn_f32_relu__generic;
#if CNN_X86
    const cnn_isa isa = cnn_isa_active();
    if (isa == CNN_ISA_AVX512) fn = cnn_f32_relu__avx512;
    else if (isa == CNN_ISA_AVX2) fn = cnn_f32_relu__avx2;
#endif
    const int64_t chunks = (n + CNN_LAYERS_CHUNK - 1) / CNN_LAYERS_CHUNK;
    const int nt = cnn_threads_for(chunks);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t i = c * CNN_LAYERS_CHUNK;
        fn(CNN_MIN(CNN_LAYERS_CHUNK, n - i), x + i, y + i);
    }
    return CNN_OK;
}

// y, dy, dx are (n); in place on dy allowed
cnn_status cnn_relu_backward(int64_t n, const float *y, const float *dy, float *dx) {
    if (n < 0) return CNN_ERR_INVALID_ARGUMENT;
    if (n == 0) return CNN_OK;
    if (!y || !dy || !dx) return CNN_ERR_INVALID_ARGUMENT;
    binary_fn fn = cnn_f32_relu_backward__generic;
#if CNN_X86
    const cnn_isa isa = cnn_isa_active();
    if (isa == CNN_ISA_AVX512) fn = cnn_f32_relu_backward__avx512;
    else if (isa == CNN_ISA_AVX2) fn = cnn_f32_relu_backward__avx2;
#endif
    const int64_t chunks = (n + CNN_LAYERS_CHUNK - 1) / CNN_LAYERS_CHUNK;
    const int nt = cnn_threads_for(chunks);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t i = c * CNN_LAYERS_CHUNK;
        fn(CNN_MIN(CNN_LAYERS_CHUNK, n - i), y + i, dy + i, dx + i);
    }
    return CNN_OK;
}

/* ---------------------------------------------------------------- leaky ReLU */

// x, y are (n): y = x > 0 ? x : slope * x
cnn_status cnn_leaky_relu_forward(int64_t n, float slope, const float *x, float *y) {
    if (n < 0) return CNN_ERR_INVALID_ARGUMENT;
    if (n == 0) return CNN_OK;
    if (!x || !y) return CNN_ERR_INVALID_ARGUMENT;
    const int nt = cnn_layers_threads_flat(n);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : slope * x[i];
    return CNN_OK;
}

// x, dy, dx are (n): dx = x > 0 ? dy : slope * dy (PyTorch: the gradient at 0 is slope)
cnn_status cnn_leaky_relu_backward(int64_t n, float slope, const float *x, const float *dy, float *dx) {
    if (n < 0) return CNN_ERR_INVALID_ARGUMENT;
    if (n == 0) return CNN_OK;
    if (!x || !dy || !dx) return CNN_ERR_INVALID_ARGUMENT;
    const int nt = cnn_layers_threads_flat(n);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : slope * dy[i];
    return CNN_OK;
}

/* ---------------------------------------------------------------- dropout */

/* Counter-based generator: splitmix64's finaliser of seed + (i + 1) * golden ratio, i.e. the i-th
 * output of a SplitMix64 stream started at `seed`. The top 24 bits give u in [0, 1) exactly
 * representable as a float; element i is kept iff u >= p. The mask depends only on (seed, i). */
static inline float dropout_uniform(uint64_t seed, int64_t i) {
    uint64_t z = seed + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)(z >> 40) * 0x1p-24f;
}

// x, y, mask are (n); in place allowed
cnn_status cnn_dropout_forward(int64_t n, float p, uint64_t seed, const float *x, float *y,
                               uint8_t *mask) {
    if (n < 0 || !(p >= 0.0f && p <= 1.0f)) return CNN_ERR_INVALID_ARGUMENT;
    if (n == 0) return CNN_OK;
    if (!x || !y) return CNN_ERR_INVALID_ARGUMENT;
    /* Inverted dropout: kept values are scaled by 1/(1-p); with p = 1 nothing is kept. */
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const int nt = cnn_layers_threads_flat(n);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < n; i++) {
        const int keep = dropout_uniform(seed, i) >= p;
        y[i] = keep ? x[i] * scale : 0.0f;
        if (mask) mask[i] = (uint8_t)keep;
    }
    return CNN_OK;
}

// mask, dy, dx are (n); in place on dy allowed
cnn_status cnn_dropout_backward(int64_t n, float p, const uint8_t *mask, const float *dy, float *dx) {
    if (n < 0 || !(p >= 0.0f && p <= 1.0f)) return CNN_ERR_INVALID_ARGUMENT;
    if (n == 0) return CNN_OK;
    if (!mask || !dy || !dx) return CNN_ERR_INVALID_ARGUMENT;
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const int nt = cnn_layers_threads_flat(n);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < n; i++) dx[i] = mask[i] ? dy[i] * scale : 0.0f;
    return CNN_OK;
}
