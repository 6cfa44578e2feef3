/* Flat elementwise kernels (any layout): add, mul, axpy, scale, sum; channel concat and split.
 * Operators split the array into CNN_LAYERS_CHUNK-float chunks, a contiguous run of chunks per
 * thread; the microkernels below are single-threaded loops over one chunk, with AVX-512 and AVX2
 * variants beside the plain C loop (the generic variant and the reference). These kernels are
 * memory bound: the explicit variants exist so the generic build's autovectorised SSE loop is not
 * the x86 default, and to keep the masked tails free of scalar loops. */
#include "layers_internal.h"

#include <stdlib.h>
#include <string.h>

#if CNN_X86
#include <immintrin.h>
#endif

/* ---------------------------------------------------------------- microkernels */

static void cnn_f32_add__generic(int64_t n, const float *a, const float *b,
                                 float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}
static void cnn_f32_mul__generic(int64_t n, const float *a, const float *b,
                                 float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}
static void cnn_f32_axpy__generic(int64_t n, float alpha, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}
static void cnn_f32_scale__generic(int64_t n, float alpha, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = alpha * x[i];
}

#if CNN_X86
static inline __mmask16 tail16(int64_t r) { return r >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << r) - 1u); }

/* y = op(a, b) for 16 floats at a time, the tail masked. */
#define CNN_BINARY_AVX512(name, op)                                                               \
    CNN_TARGET_AVX512 static void cnn_f32_##name##__avx512(int64_t n, const float *a, const float *b, \
                                                           float *y) {                             \
        int64_t i = 0;                                                                             \
        for (; i + 16 <= n; i += 16)                                                               \
            _mm512_storeu_ps(y + i, op(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)));           \
        if (i < n) {                                                                               \
            const __mmask16 k = tail16(n - i);                                                     \
            _mm512_mask_storeu_ps(y + i, k, op(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i))); \
        }                                                                                          \
    }
CNN_BINARY_AVX512(add, _mm512_add_ps)
CNN_BINARY_AVX512(mul, _mm512_mul_ps)

CNN_TARGET_AVX2 static inline __m256i tail8(int64_t r) {
    const int32_t c = (int32_t)(r > 8 ? 8 : r);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#define CNN_BINARY_AVX2(name, op)                                                                 \
    CNN_TARGET_AVX2 static void cnn_f32_##name##__avx2(int64_t n, const float *a, const float *b,   \
                                                       float *y) {                                 \
        int64_t i = 0;                                                                             \
        for (; i + 8 <= n; i += 8)                                                                 \
            _mm256_storeu_ps(y + i, op(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));           \
        if (i < n) {                                                                               \
            const __m256i k = tail8(n - i);                                                        \
            _mm256_maskstore_ps(y + i, k, op(_mm256_maskload_ps(a + i, k), _mm256_maskload_ps(b + i, k))); \
        }                                                                                          \
    }
CNN_BINARY_AVX2(add, _mm256_add_ps)
CNN_BINARY_AVX2(mul, _mm256_mul_ps)

CNN_TARGET_AVX512 static void cnn_f32_axpy__avx512(int64_t n, float alpha, const float *x, float *y) {
    const __m512 a = _mm512_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(a, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        const __mmask16 k = tail16(n - i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(k, x + i), _mm512_maskz_loadu_ps(k, y + i)));
    }
}
CNN_TARGET_AVX512 static void cnn_f32_scale__avx512(int64_t n, float alpha, const float *x, float *y) {
    const __m512 a = _mm512_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(a, _mm512_loadu_ps(x + i)));
    if (i < n) {
        const __mmask16 k = tail16(n - i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(a, _mm512_maskz_loadu_ps(k, x + i)));
    }
}
CNN_TARGET_AVX2 static void cnn_f32_axpy__avx2(int64_t n, float alpha, const float *x, float *y) {
    const __m256 a = _mm256_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(a, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    if (i < n) {
        const __m256i k = tail8(n - i);
        _mm256_maskstore_ps(y + i, k, _mm256_fmadd_ps(a, _mm256_maskload_ps(x + i, k), _mm256_maskload_ps(y + i, k)));
    }
}
CNN_TARGET_AVX2 static void cnn_f32_scale__avx2(int64_t n, float alpha, const float *x, float *y) {
    const __m256 a = _mm256_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(a, _mm256_loadu_ps(x + i)));
    if (i < n) {
        const __m256i k = tail8(n - i);
        _mm256_maskstore_ps(y + i, k, _mm256_mul_ps(a, _mm256_maskload_ps(x + i, k)));
    }
}
#endif

typedef void (*binary_fn)(int64_t, const float *, const float *, float *);
typedef void (*alpha_fn)(int64_t, float, const float *, float *);

/* ---------------------------------------------------------------- operators */

static cnn_status binary_op(int64_t n, const float *a, const float *b, float *y, binary_fn generic,
                            binary_fn avx2, binary_fn avx512) {
    if (n < 0) return CNN_ERR_INVALID_ARGUMENT;
    if (n == 0) return CNN_OK;
    if (!a || !b || !y) return CNN_ERR_INVALID_ARGUMENT;
    binary_fn fn = generic;
    const cnn_isa isa = cnn_isa_active();
    if (isa == CNN_ISA_AVX512 && avx512) fn = avx512;
    else if (isa >= CNN_ISA_AVX2 && avx2) fn = avx2;
    const int64_t chunks = (n + CNN_LAYERS_CHUNK - 1) / CNN_LAYERS_CHUNK;
    const int nt = cnn_threads_for(chunks);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t i = c * CNN_LAYERS_CHUNK;
        fn(CNN_MIN(CNN_LAYERS_CHUNK, n - i), a + i, b + i, y + i);
    }
    return CNN_OK;
}

static cnn_status alpha_op(int64_t n, float alpha, const float *x, float *y, alpha_fn generic,
                           alpha_fn avx2, alpha_fn avx512) {
    if (n < 0) return CNN_ERR_INVALID_ARGUMENT;
    if (n == 0) return CNN_OK;
    if (!x || !y) return CNN_ERR_INVALID_ARGUMENT;
    alpha_fn fn = generic;
    const cnn_isa isa = cnn_isa_active();
    if (isa == CNN_ISA_AVX512 && avx512) fn = avx512;
    else if (isa >= CNN_ISA_AVX2 && avx2) fn = avx2;
    const int64_t chunks = (n + CNN_LAYERS_CHUNK - 1) / CNN_LAYERS_CHUNK;
    const int nt = cnn_threads_for(chunks);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t i = c * CNN_LAYERS_CHUNK;
        fn(CNN_MIN(CNN_LAYERS_CHUNK, n - i), alpha, x + i, y + i);
    }
    return CNN_OK;
}

#if CNN_X86
#define CNN_VARIANTS(name) cnn_f32_##name##__generic, cnn_f32_##name##__avx2, cnn_f32_##name##__avx512
#else
#define CNN_VARIANTS(name) cnn_f32_##name##__generic, NULL, NULL
#endif

// a, b, y are (n); in place (y == a or y == b) allowed
cnn_status cnn_add(int64_t n, const float *a, const float *b, float *y) {
    return binary_op(n, a, b, y, CNN_VARIANTS(add));
}
cnn_status cnn_mul(int64_t n, const float *a, const float *b, float *y) {
    return binary_op(n, a, b, y, CNN_VARIANTS(mul));
}
// x, y are (n): y += alpha * x
cnn_status cnn_axpy(int64_t n, float alpha, const float *x, float *y) {
    return alpha_op(n, alpha, x, y, CNN_VARIANTS(axpy));
}
// x, y are (n): y = alpha * x, in place allowed
cnn_status cnn_scale(int64_t n, float alpha, const float *x, float *y) {
    return alpha_op(n, alpha, x, y, CNN_VARIANTS(scale));
}

/* Sum in double: each chunk's partial is summed in eight double lanes, and the chunks' partials
 * in chunk order, so the result is the same for any thread count. n < 0 or x NULL gives 0. */
static double chunk_sum(int64_t n, const float *CNN_RESTRICT x) {
    double a[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) a[j] += (double)x[i + j];
    double t = 0;
    for (; i < n; i++) t += (double)x[i];
    return t + ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

double cnn_sum(int64_t n, const float *x) {
    if (n <= 0 || !x) return 0.0;
    const int64_t chunks = (n + CNN_LAYERS_CHUNK - 1) / CNN_LAYERS_CHUNK;
    if (chunks == 1) return chunk_sum(n, x);
    double *part = malloc((size_t)chunks * sizeof(double));
    if (!part) return chunk_sum(n, x);
    const int nt = cnn_threads_for(chunks);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t i = c * CNN_LAYERS_CHUNK;
        part[c] = chunk_sum(CNN_MIN(CNN_LAYERS_CHUNK, n - i), x + i);
    }
    double t = 0;
    for (int64_t c = 0; c < chunks; c++) t += part[c];
    free(part);
    return t;
}

/* ---------------------------------------------------------------- channel concat / split */

static cnn_status channels_check(int64_t N, int64_t HW, int count, const int64_t *channels,
                                 int64_t *total) {
    if (N < 0 || HW < 0 || count < 0 || (count > 0 && !channels)) return CNN_ERR_INVALID_ARGUMENT;
    int64_t t = 0;
    for (int i = 0; i < count; i++) {
        if (channels[i] < 0) return CNN_ERR_INVALID_ARGUMENT;
        t += channels[i];
    }
    *total = t;
    return CNN_OK;
}

// inputs[i] is (N, channels[i], HW), y is (N, sum channels, HW)
cnn_status cnn_concat_channels(int64_t N, int64_t HW, int count, const int64_t *channels,
                               const float *const *inputs, float *y) {
    int64_t total;
    cnn_status st = channels_check(N, HW, count, channels, &total);
    if (st != CNN_OK) return st;
    if (N == 0 || HW == 0 || total == 0) return CNN_OK;
    if (!inputs || !y) return CNN_ERR_INVALID_ARGUMENT;
    for (int i = 0; i < count; i++)
        if (channels[i] > 0 && !inputs[i]) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t items = N * count;
    const int nt = cnn_threads_for(items);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t it = 0; it < items; it++) {
        const int64_t n = it / count;
        const int i = (int)(it % count);
        int64_t off = 0;
        for (int j = 0; j < i; j++) off += channels[j];
        if (channels[i] > 0)
            memcpy(y + (n * total + off) * HW, inputs[i] + n * channels[i] * HW,
                   (size_t)(channels[i] * HW) * sizeof(float));
    }
    return CNN_OK;
}

// dy is (N, sum channels, HW), outputs[i] is (N, channels[i], HW)
cnn_status cnn_split_channels(int64_t N, int64_t HW, int count, const int64_t *channels,
                              const float *dy, float *const *outputs) {
    int64_t total;
    cnn_status st = channels_check(N, HW, count, channels, &total);
    if (st != CNN_OK) return st;
    if (N == 0 || HW == 0 || total == 0) return CNN_OK;
    if (!outputs || !dy) return CNN_ERR_INVALID_ARGUMENT;
    for (int i = 0; i < count; i++)
        if (channels[i] > 0 && !outputs[i]) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t items = N * count;
    const int nt = cnn_threads_for(items);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t it = 0; it < items; it++) {
        const int64_t n = it / count;
        const int i = (int)(it % count);
        int64_t off = 0;
        for (int j = 0; j < i; j++) off += channels[j];
        if (channels[i] > 0)
            memcpy(outputs[i] + n * channels[i] * HW, dy + (n * total + off) * HW,
                   (size_t)(channels[i] * HW) * sizeof(float));
    }
    return CNN_OK;
}
