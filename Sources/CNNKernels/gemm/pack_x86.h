/* Transposing pack for the x86 variants: an operand contiguous along k (A not transposed, or B
 * transposed) is packed k-major by 8 x 8 register transposes instead of scalar strided stores
 * (measured ~5% of a 2048^3 SGEMM with scalar stores on the development machine). */
#ifndef CNN_GEMM_PACK_X86_H
#define CNN_GEMM_PACK_X86_H

#include "gemm_internal.h"

#if CNN_X86
#include <immintrin.h>

/* dst[k*ds + i] = src[i*rs + k] for i, k < 8. */
static inline __attribute__((always_inline)) CNN_TARGET_AVX2 void
cnn_gemm_transpose8x8__avx2(const float *src, size_t rs, float *dst, size_t ds) {
    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + rs), r2 = _mm256_loadu_ps(src + 2 * rs),
           r3 = _mm256_loadu_ps(src + 3 * rs), r4 = _mm256_loadu_ps(src + 4 * rs),
           r5 = _mm256_loadu_ps(src + 5 * rs), r6 = _mm256_loadu_ps(src + 6 * rs),
           r7 = _mm256_loadu_ps(src + 7 * rs);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst + 0 * ds, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * ds, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ds, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ds, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ds, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ds, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ds, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ds, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* dst[k*6 + i] = src[i*rs + k] for i < 6, k < 8: the 8 x 8 transpose with two zero rows, each
 * output row stored as 4 + 2 floats (an 8-float store would run 2 floats past the panel's end). */
static inline __attribute__((always_inline)) CNN_TARGET_AVX2 void
cnn_gemm_transpose6x8__avx2(const float *src, size_t rs, float *dst) {
    const __m256 z = _mm256_setzero_ps();
    const __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + rs), r2 = _mm256_loadu_ps(src + 2 * rs),
                 r3 = _mm256_loadu_ps(src + 3 * rs), r4 = _mm256_loadu_ps(src + 4 * rs),
                 r5 = _mm256_loadu_ps(src + 5 * rs);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    /* rows 4 and 5 only: (r4[k], r5[k]) pairs for k = 0..7 in u4..u7's low halves of each lane */
    const __m256 u4 = _mm256_shuffle_ps(t4, z, 0x44), u5 = _mm256_shuffle_ps(t4, z, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, z, 0x44), u7 = _mm256_shuffle_ps(t5, z, 0xEE);
    const __m256 lo[4] = {u0, u1, u2, u3}, hi[4] = {u4, u5, u6, u7};
    for (int q = 0; q < 4; q++) {
        /* lane 0 holds k = q, lane 1 holds k = q + 4 */
        _mm_storeu_ps(dst + q * 6, _mm256_castps256_ps128(lo[q]));
        _mm_storel_pi((__m64 *)(dst + q * 6 + 4), _mm256_castps256_ps128(hi[q]));
        _mm_storeu_ps(dst + (q + 4) * 6, _mm256_extractf128_ps(lo[q], 1));
        _mm_storel_pi((__m64 *)(dst + (q + 4) * 6 + 4), _mm256_extractf128_ps(hi[q], 1));
    }
}

/* The pack of gemm_internal.h, with the k-contiguous case done in 8 x 8 blocks when the panel
 * width is a multiple of 8 (AVX-512 A and B panels, AVX2 B panels), or 6 x 8 blocks for full
 * AVX2 A panels. */
static inline __attribute__((always_inline)) CNN_TARGET_AVX2 void
cnn_gemm_pack_x86(const float *x, size_t rs, size_t ks, size_t mr, size_t kc, size_t width, float *dst) {
    if (ks == 1 && rs != 1 && width % 8 == 0) {
        const size_t m8 = mr & ~(size_t)7, k8 = kc & ~(size_t)7;
        for (size_t i = 0; i < m8; i += 8) {
            for (size_t k = 0; k < k8; k += 8)
                cnn_gemm_transpose8x8__avx2(x + i * rs + k, rs, dst + k * width + i, width);
            for (size_t k = k8; k < kc; k++)
                for (size_t r = 0; r < 8; r++) dst[k * width + i + r] = x[(i + r) * rs + k];
        }
        for (size_t i = m8; i < mr; i++)
            for (size_t k = 0; k < kc; k++) dst[k * width + i] = x[i * rs + k];
        for (size_t k = 0; k < kc; k++)
            for (size_t i = mr; i < width; i++) dst[k * width + i] = 0.0f;
        return;
    }
    if (ks == 1 && rs != 1 && width == 6 && mr == 6) {
        const size_t k8 = kc & ~(size_t)7;
        for (size_t k = 0; k < k8; k += 8) cnn_gemm_transpose6x8__avx2(x + k, rs, dst + k * 6);
        for (size_t k = k8; k < kc; k++)
            for (size_t i = 0; i < 6; i++) dst[k * 6 + i] = x[i * rs + k];
        return;
    }
    CNN_GEMM_PACK_BODY(x, rs, ks, mr, kc, width, dst);
}
#endif
#endif
