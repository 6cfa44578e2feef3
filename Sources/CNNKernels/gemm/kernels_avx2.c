/* AVX2+FMA SGEMM microkernel (6 x 16), packing and GEMV.
 *
 * The classic Haswell tile: 6 rows x 2 ymm = 12 accumulators + 2 B vectors + 1 broadcast of the 16
 * ymm registers; 12 FMAs per k step for 2 loads and 6 broadcasts, enough independent chains to
 * cover 2 FMA pipes x 4 cycles latency. Edge tiles go through a buffer. */
#include "gemm_internal.h"
#include "pack_x86.h"

#if CNN_X86
#include <immintrin.h>

#define AVX2_MR 6
#define AVX2_NR 16

static inline CNN_TARGET_AVX2 float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The 6 x 16 tile with A(i, k) at a[i*a_rs + k*a_ks]: a packed panel (1, 6) or, for a full
 * panel read in place, six rows of a row-major A (lda, 1); see cnn_gemm_variant.kernel_a. */
static inline __attribute__((always_inline)) CNN_TARGET_AVX2 void
gemm_6x16__avx2(size_t kc, const float *a, size_t a_rs, size_t a_ks, const float *b, size_t bs, size_t mr,
                size_t nr, const cnn_gemm_tile *t) {
    __m256 acc[AVX2_MR][2];
    for (int i = 0; i < AVX2_MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    /* The tile's rows of C, and of the residual, are fetched while the k loop runs: the store
     * would otherwise wait on them from L3 (a 1x1 convolution's output row is a 12 KiB plane
     * apart from the next). Only addresses inside the tile are formed. */
    if (t->cs_c == 1)
        for (size_t i = 0; i < mr; i++) {
            _mm_prefetch((const char *)(t->c + i * t->rs_c), _MM_HINT_T0);
            _mm_prefetch((const char *)(t->c + i * t->rs_c + nr - 1), _MM_HINT_T0);
        }
    if (t->res && t->cs_r == 1)
        for (size_t i = 0; i < mr; i++) {
            _mm_prefetch((const char *)(t->res + i * t->rs_r), _MM_HINT_T0);
            _mm_prefetch((const char *)(t->res + i * t->rs_r + nr - 1), _MM_HINT_T0);
        }
    /* Four k steps per trip. Zen 3 class, 2 threads, C harness, builds called in turn 30 times,
     * per-layer median ratio new / old on ResNet-50's convolutions at batch 1: 1x1 layers
     * 0.91-0.98 (reversed order: old / new 1.06-1.12), its 3x3/2 layers by im2col 0.93-0.96.
     * A prefetch of B 8 rows ahead on top measured 0.97-1.10 (most above 1.02); eight steps per
     * trip 1.36-1.72. */
#pragma clang loop unroll_count(4)
    for (size_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        for (int i = 0; i < AVX2_MR; i++) {
            const __m256 ai = _mm256_broadcast_ss(a + (size_t)i * a_rs);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += a_ks;
        b += bs;
    }
    if (mr == AVX2_MR && nr == AVX2_NR && t->cs_c == 1 && (!t->res || t->cs_r == 1)) {
        /* The tile's fields in locals: a store through c could alias *t, so reading them there
         * would reload them after every row (and spill the accumulators). With the prefetch of C
         * above: Zen 3 class, 2 threads, C harness, builds called in turn 40 times, per-layer
         * median ratio new / old on ResNet-50's 1x1 convolutions at batch 1 (pre-packed weights)
         * 0.86-1.03, the largest gains on 64 -> 256 at 56x56 with the residual (0.88) and
         * 256 -> 1024 at 14x14 (0.86); the prefetch alone 0.84 and 0.95 on the two layers with a
         * residual at 56x56 and 28x28, 0.98-1.02 elsewhere. */
        float *const c0 = t->c;
        const size_t rs_c = t->rs_c, rs_r = t->rs_r;
        const float beta_s = t->beta, *const bias = t->bias, *const res = t->res;
        const int bias_on_j = t->bias_on_j, relu = t->relu;
        const __m256 alpha = _mm256_set1_ps(t->alpha), beta = _mm256_set1_ps(beta_s);
        const __m256 zero = _mm256_setzero_ps();
#pragma clang loop unroll(full)
        for (int i = 0; i < AVX2_MR; i++) {
            float *c = c0 + i * rs_c;
#pragma clang loop unroll(full)
            for (int v = 0; v < 2; v++) {
                __m256 y;
                if (beta_s == 0.0f) {
                    y = _mm256_mul_ps(alpha, acc[i][v]);
                } else {
                    const __m256 cv = _mm256_loadu_ps(c + 8 * v);
                    y = beta_s == 1.0f ? _mm256_fmadd_ps(alpha, acc[i][v], cv)
                                       : _mm256_fmadd_ps(alpha, acc[i][v], _mm256_mul_ps(beta, cv));
                }
                if (bias)
                    y = _mm256_add_ps(y, bias_on_j ? _mm256_loadu_ps(bias + 8 * v) : _mm256_set1_ps(bias[i]));
                if (res) y = _mm256_add_ps(y, _mm256_loadu_ps(res + i * rs_r + 8 * v));
                if (relu) y = _mm256_max_ps(zero, y); /* second operand is returned for NaN */
                _mm256_storeu_ps(c + 8 * v, y);
            }
        }
    } else {
        float buf[AVX2_MR * AVX2_NR];
        for (int i = 0; i < AVX2_MR; i++) {
            _mm256_storeu_ps(buf + i * AVX2_NR, acc[i][0]);
            _mm256_storeu_ps(buf + i * AVX2_NR + 8, acc[i][1]);
        }
        cnn_gemm_store_tile(buf, AVX2_NR, mr, nr, t);
    }
}

static CNN_TARGET_AVX2 void cnn_f32_gemm_6x16__avx2(size_t kc, const float *a, const float *b, size_t bs,
                                                    size_t mr, size_t nr, const cnn_gemm_tile *t) {
    // a is (kc, 6) packed, b is (kc, 16) packed; tile (mr <= 6, nr <= 16)
    gemm_6x16__avx2(kc, a, 1, AVX2_MR, b, bs, mr, nr, t);
}

static CNN_TARGET_AVX2 void cnn_f32_gemm_6x16_a__avx2(size_t kc, const float *a, size_t lda, const float *b,
                                                      size_t bs, size_t nr, const cnn_gemm_tile *t) {
    // a is (6, kc) with leading dimension lda, read in place; b is (kc, 16) packed; tile (6, nr <= 16)
    gemm_6x16__avx2(kc, a, lda, 1, b, bs, AVX2_MR, nr, t);
}

/* Edge panels of 3-8 columns (196 = 12 x 16 + 4: the 14x14 planes at batch 1; 1-2 columns take
 * gemm_6xcols below): one ymm per row, half the FMAs of the full kernel, which would compute all
 * 16 columns. Each element sums over k in the full kernel's order; 6 chains of 4-cycle FMAs keep
 * the pipes 3/4 busy. */
static inline __attribute__((always_inline)) CNN_TARGET_AVX2 void
gemm_6x8_narrow__avx2(size_t kc, const float *a, size_t a_rs, size_t a_ks, const float *b, size_t bs, size_t mr,
                      size_t nr, const cnn_gemm_tile *t) {
    __m256 acc[AVX2_MR];
    for (int i = 0; i < AVX2_MR; i++) acc[i] = _mm256_setzero_ps();
    for (size_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_loadu_ps(b);
        for (int i = 0; i < AVX2_MR; i++)
            acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + (size_t)i * a_rs), b0, acc[i]);
        a += a_ks;
        b += bs;
    }
    float buf[AVX2_MR * 8];
    for (int i = 0; i < AVX2_MR; i++) _mm256_storeu_ps(buf + i * 8, acc[i]);
    cnn_gemm_store_tile(buf, 8, mr, nr, t);
}

/* One or two columns (49 = 3 x 16 + 1: the 7x7 planes at batch 1) with vectors along the rows
 * instead: four k steps of the packed 6-row panel are three ymm (24 floats, rows cycling every 6
 * lanes), each multiplied by B's values for those k steps permuted into the same lanes. A column
 * costs 3 FMAs per 4 k steps instead of the 6 per k step the 8-wide kernel spends on it. Rows sum
 * the four k phases at the end, then the k % 4 tail: an order of its own, but a column's kernel
 * depends only on N mod 16, never on how threads cut the panels. Zen 3 class, 2 threads, C
 * harness, builds called in turn 60-80 times, median per-call ratio new / old, pre-packed
 * weights: 1x1 convolutions at 7x7 2048 -> 512 0.88, 512 -> 2048 0.91, 832 -> 384 0.85; 512 ->
 * 512 3x3 at 7x7 by im2col 0.91; 512 -> 512 3x3/2 from 14x14 0.97. */
static inline __attribute__((always_inline)) CNN_TARGET_AVX2 void
gemm_6xcols__avx2(size_t kc, const float *a, const float *b, size_t bs, size_t mr, size_t nr,
                  const cnn_gemm_tile *t, const int cols) {
    // a is (kc, 6) packed, b is (kc, >= 2) with row stride bs; tile (mr <= 6, nr <= cols <= 2)
    __m256 acc[2][3];
    for (int c = 0; c < cols; c++) acc[c][0] = acc[c][1] = acc[c][2] = _mm256_setzero_ps();
    /* bb holds (k, column) pairs: lane 2q + c is column c at k step q of the four */
    const __m256i p0 = _mm256_setr_epi32(0, 0, 0, 0, 0, 0, 2, 2), p1 = _mm256_setr_epi32(2, 2, 2, 2, 4, 4, 4, 4),
                  p2 = _mm256_setr_epi32(4, 4, 6, 6, 6, 6, 6, 6), one = _mm256_set1_epi32(1);
    size_t k = 0;
    for (; k + 4 <= kc; k += 4) {
        const __m256 a0 = _mm256_loadu_ps(a), a1 = _mm256_loadu_ps(a + 8), a2 = _mm256_loadu_ps(a + 16);
        const __m128 lo = _mm_loadh_pi(_mm_castpd_ps(_mm_load_sd((const double *)b)), (const __m64 *)(b + bs));
        const __m128 hi =
            _mm_loadh_pi(_mm_castpd_ps(_mm_load_sd((const double *)(b + 2 * bs))), (const __m64 *)(b + 3 * bs));
        const __m256 bb = _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
        for (int c = 0; c < cols; c++) {
            const __m256i off = c ? one : _mm256_setzero_si256();
            acc[c][0] = _mm256_fmadd_ps(a0, _mm256_permutevar8x32_ps(bb, _mm256_add_epi32(p0, off)), acc[c][0]);
            acc[c][1] = _mm256_fmadd_ps(a1, _mm256_permutevar8x32_ps(bb, _mm256_add_epi32(p1, off)), acc[c][1]);
            acc[c][2] = _mm256_fmadd_ps(a2, _mm256_permutevar8x32_ps(bb, _mm256_add_epi32(p2, off)), acc[c][2]);
        }
        a += 4 * AVX2_MR;
        b += 4 * bs;
    }
    float buf[AVX2_MR * 2];
    for (int c = 0; c < cols; c++) {
        float ph[24]; /* ph[q*6 + i]: row i at k phase q */
        _mm256_storeu_ps(ph, acc[c][0]);
        _mm256_storeu_ps(ph + 8, acc[c][1]);
        _mm256_storeu_ps(ph + 16, acc[c][2]);
        for (int i = 0; i < AVX2_MR; i++) {
            float sum = ((ph[i] + ph[6 + i]) + ph[12 + i]) + ph[18 + i];
            for (size_t q = 0; q < kc - k; q++) sum += a[q * AVX2_MR + i] * b[q * bs + c];
            buf[i * cols + c] = sum;
        }
    }
    cnn_gemm_store_tile(buf, (size_t)cols, mr, nr, t);
}

static CNN_TARGET_AVX2 void cnn_f32_gemm_6x8_narrow__avx2(size_t kc, const float *a, const float *b, size_t bs,
                                                          size_t mr, size_t nr, const cnn_gemm_tile *t) {
    // a is (kc, 6) packed, b is (kc, >= 8) with row stride bs; tile (mr <= 6, nr <= 8)
    if (nr == 1) gemm_6xcols__avx2(kc, a, b, bs, mr, nr, t, 1);
    else if (nr == 2) gemm_6xcols__avx2(kc, a, b, bs, mr, nr, t, 2);
    else gemm_6x8_narrow__avx2(kc, a, 1, AVX2_MR, b, bs, mr, nr, t);
}

/* One or two columns against a full 6-row panel read in place: six dot products along k per
 * column, 8 k steps per ymm, B's columns given contiguous (bcol[c*kc + k]): 0.75 FMA per k step
 * and column where the 8-wide narrow kernel spends 6. C harness, builds called in turn 50 times,
 * median per-call ratio new / old: 512 x 49 x 4608 0.86 on 2 threads and 0.85 on 1, 2048 x 49 x
 * 512 0.85. */
static inline __attribute__((always_inline)) CNN_TARGET_AVX2 void
gemm_6xcols_a__avx2(size_t kc, const float *a, size_t lda, const float *bcol, size_t nr, const cnn_gemm_tile *t,
                    const int cols) {
    __m256 acc[AVX2_MR][2];
    for (int i = 0; i < AVX2_MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    const size_t k8 = kc & ~(size_t)7;
    for (size_t k = 0; k < k8; k += 8) {
        const __m256 b0 = _mm256_loadu_ps(bcol + k), b1 = cols > 1 ? _mm256_loadu_ps(bcol + kc + k) : b0;
        for (int i = 0; i < AVX2_MR; i++) {
            const __m256 ai = _mm256_loadu_ps(a + (size_t)i * lda + k);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            if (cols > 1) acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    float buf[AVX2_MR * 2];
    for (int i = 0; i < AVX2_MR; i++)
        for (int c = 0; c < cols; c++) {
            float sum = hsum256(acc[i][c]);
            for (size_t k = k8; k < kc; k++) sum += a[(size_t)i * lda + k] * bcol[(size_t)c * kc + k];
            buf[i * cols + c] = sum;
        }
    cnn_gemm_store_tile(buf, (size_t)cols, AVX2_MR, nr, t);
}

static CNN_TARGET_AVX2 void cnn_f32_gemm_6xcols_a__avx2(size_t kc, const float *a, size_t lda, const float *bcol,
                                                        size_t nr, const cnn_gemm_tile *t) {
    // a is (6, kc) with leading dimension lda, read in place; bcol is (nr, kc); tile (6, nr <= 2)
    if (nr == 1) gemm_6xcols_a__avx2(kc, a, lda, bcol, nr, t, 1);
    else gemm_6xcols_a__avx2(kc, a, lda, bcol, nr, t, 2);
}

static CNN_TARGET_AVX2 void cnn_f32_gemm_6x8_narrow_a__avx2(size_t kc, const float *a, size_t lda, const float *b,
                                                            size_t bs, size_t nr, const cnn_gemm_tile *t) {
    // a is (6, kc) with leading dimension lda, read in place; b is (kc, >= 8) with row stride bs; tile (6, nr <= 8)
    gemm_6x8_narrow__avx2(kc, a, lda, 1, b, bs, AVX2_MR, nr, t);
}

static CNN_TARGET_AVX2 void cnn_f32_gemm_pack__avx2(const float *x, size_t rs, size_t ks, size_t mr,
                                                    size_t kc, size_t width, float *dst) {
    cnn_gemm_pack_x86(x, rs, ks, mr, kc, width, dst);
}

static CNN_TARGET_AVX2 void cnn_f32_gemv_dot__avx2(size_t m, size_t k, const float *a, size_t lda,
                                                   const float *x, float *y) {
    // a is (m, k) with leading dimension lda, x is (k), y is (m): 4 rows share each x load
    const size_t k8 = k & ~(size_t)7;
    size_t i = 0;
    for (; i + 4 <= m; i += 4) {
        const float *a0 = a + i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (size_t p = 0; p < k8; p += 8) {
            const __m256 xv = _mm256_loadu_ps(x + p);
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a0 + p), xv, s0);
            s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a1 + p), xv, s1);
            s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a2 + p), xv, s2);
            s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a3 + p), xv, s3);
        }
        float r0 = hsum256(s0), r1 = hsum256(s1), r2 = hsum256(s2), r3 = hsum256(s3);
        for (size_t p = k8; p < k; p++) {
            r0 += a0[p] * x[p];
            r1 += a1[p] * x[p];
            r2 += a2[p] * x[p];
            r3 += a3[p] * x[p];
        }
        y[i] = r0;
        y[i + 1] = r1;
        y[i + 2] = r2;
        y[i + 3] = r3;
    }
    for (; i < m; i++) {
        const float *ai = a + i * lda;
        __m256 s = _mm256_setzero_ps();
        for (size_t p = 0; p < k8; p += 8) s = _mm256_fmadd_ps(_mm256_loadu_ps(ai + p), _mm256_loadu_ps(x + p), s);
        float r = hsum256(s);
        for (size_t p = k8; p < k; p++) r += ai[p] * x[p];
        y[i] = r;
    }
}

static CNN_TARGET_AVX2 void cnn_f32_gemv_axpy__avx2(size_t n, size_t k, const float *b, size_t ldb,
                                                    const float *x, float *y) {
    // b is (k, n) with leading dimension ldb, x is (k), y is (n): 32 columns per pass over k
    size_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (size_t p = 0; p < k; p++) {
            const __m256 xp = _mm256_set1_ps(x[p]);
            const float *bp = b + p * ldb + j;
            s0 = _mm256_fmadd_ps(xp, _mm256_loadu_ps(bp), s0);
            s1 = _mm256_fmadd_ps(xp, _mm256_loadu_ps(bp + 8), s1);
            s2 = _mm256_fmadd_ps(xp, _mm256_loadu_ps(bp + 16), s2);
            s3 = _mm256_fmadd_ps(xp, _mm256_loadu_ps(bp + 24), s3);
        }
        _mm256_storeu_ps(y + j, s0);
        _mm256_storeu_ps(y + j + 8, s1);
        _mm256_storeu_ps(y + j + 16, s2);
        _mm256_storeu_ps(y + j + 24, s3);
    }
    for (; j + 8 <= n; j += 8) {
        __m256 s = _mm256_setzero_ps();
        for (size_t p = 0; p < k; p++) s = _mm256_fmadd_ps(_mm256_set1_ps(x[p]), _mm256_loadu_ps(b + p * ldb + j), s);
        _mm256_storeu_ps(y + j, s);
    }
    for (; j < n; j++) {
        float s = 0;
        for (size_t p = 0; p < k; p++) s += x[p] * b[p * ldb + j];
        y[j] = s;
    }
}

/* x, the weights, is one stream read once, row after row, from memory (fc 4096 -> 1000: 16 MB).
 *
 * One row against the 8 columns (the twelfth session's kernel) loaded 9 vectors for 8 FMAs, and
 * read one row at a time. Now a register tile of 3 rows x 4 columns (12 accumulators, the 3 rows'
 * vectors and one of y: all 16 ymm registers) loads 7 vectors for 12 FMAs and streams 3 rows at
 * once, the next 3 rows prefetched alongside. The 8 columns take two passes over each block of
 * DOT8_KB floats of the 3 rows, the second reading them from L1 (3 x 8 KiB); partial sums wait in
 * `part` between blocks. Each lane sums over k in the same order as before, so the results are
 * bit for bit those of the one-row kernel.
 * Zen 3 class, C harness, the two kernels called in turn 15-30 times on the same data, median
 * per-call ratio new / old over 10 runs: 1000 x 8 x 4096 0.70-0.82 on 2 threads, 0.78-0.95 on 1
 * (blocks of 2048, 4096 or 8192 floats alike; 256 with no prefetch 1.32); 100 x 8 x 9216 0.72-0.74;
 * 4096 x 8 x 9216 (151 MB, bound by memory) 0.87-0.96. */
#define DOT8_KB 2048

static inline __attribute__((always_inline)) CNN_TARGET_AVX2 void
dot8_3x4__avx2(size_t p0, size_t p1, const float *x0, const float *x1, const float *x2, const float *y, size_t ys,
               __m256 *part, int first, const float *next, size_t next_end, size_t ldx) {
    // rows x0..x2 against y's 4 rows (ys apart), k in [p0, p1); part: 3 rows of 8 partial vectors;
    // while p < next_end, a line of each of the 3 rows next, next + ldx, next + 2 ldx at offset p
    __m256 s[3][4];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) s[i][j] = first ? _mm256_setzero_ps() : part[i * 8 + j];
    for (size_t p = p0; p < p1; p += 8) {
        if (p < next_end && !(p & 15)) {
            _mm_prefetch((const char *)(next + p), _MM_HINT_T0);
            _mm_prefetch((const char *)(next + ldx + p), _MM_HINT_T0);
            _mm_prefetch((const char *)(next + 2 * ldx + p), _MM_HINT_T0);
        }
        const __m256 a0 = _mm256_loadu_ps(x0 + p), a1 = _mm256_loadu_ps(x1 + p), a2 = _mm256_loadu_ps(x2 + p);
        for (int j = 0; j < 4; j++) {
            const __m256 yj = _mm256_loadu_ps(y + j * ys + p);
            s[0][j] = _mm256_fmadd_ps(a0, yj, s[0][j]);
            s[1][j] = _mm256_fmadd_ps(a1, yj, s[1][j]);
            s[2][j] = _mm256_fmadd_ps(a2, yj, s[2][j]);
        }
    }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) part[i * 8 + j] = s[i][j];
}

static CNN_TARGET_AVX2 void cnn_f32_gemm_dot8__avx2(size_t rows, size_t k_len, const float *x, size_t ldx,
                                                    const float *y, size_t ys, float *out) {
    // x is (rows, k_len) with leading dimension ldx, y is (8, k_len) with row stride ys, out is (rows, 8)
    const size_t k8 = k_len & ~(size_t)7;
    __m256 part[33 * 8]; /* 8 partial vectors per row of a 32-row chunk; a last 3-row group may reach row 32 */
    for (size_t c0 = 0; c0 < rows; c0 += 32) {
        const size_t c1 = CNN_MIN(rows, c0 + 32);
        for (size_t b0 = 0; b0 < k8; b0 += DOT8_KB) {
            const size_t b1 = CNN_MIN(k8, b0 + DOT8_KB);
            for (size_t r = c0; r < c1; r += 3) {
                /* rows past the chunk repeat its row r: their sums land in part and are never read */
                const float *x0 = x + r * ldx;
                const float *x1 = r + 1 < c1 ? x0 + ldx : x0, *x2 = r + 2 < c1 ? x0 + 2 * ldx : x0;
                /* prefetched: the next group's rows, or the chunk's first rows in the next block
                 * (only addresses inside those rows: up to k8) */
                const float *next = NULL;
                size_t next_end = 0;
                if (r + 5 < c1) {
                    next = x0 + 3 * ldx;
                    next_end = b1;
                } else if (b1 < k8 && c1 - c0 >= 3) {
                    next = x + c0 * ldx + DOT8_KB;
                    next_end = k8 - DOT8_KB;
                }
                __m256 *pr = part + (r - c0) * 8;
                dot8_3x4__avx2(b0, b1, x0, x1, x2, y, ys, pr, b0 == 0, next, next_end, ldx);
                dot8_3x4__avx2(b0, b1, x0, x1, x2, y + 4 * ys, ys, pr + 4, b0 == 0, NULL, 0, ldx);
            }
        }
        for (size_t r = c0; r < c1; r++) {
            const float *xr = x + r * ldx;
            for (int j = 0; j < 8; j++) {
                float v = k8 ? hsum256(part[(r - c0) * 8 + j]) : 0.0f;
                for (size_t p = k8; p < k_len; p++) v += xr[p] * y[j * ys + p];
                out[r * 8 + j] = v;
            }
        }
    }
}

const cnn_gemm_variant cnn_gemm_variant_avx2 = {
    .isa = CNN_ISA_AVX2,
    .mr = AVX2_MR,
    .nr = AVX2_NR,
    .n_quantum = AVX2_NR,
    .kernel = cnn_f32_gemm_6x16__avx2,
    .narrow = cnn_f32_gemm_6x8_narrow__avx2,
    .narrow_max = 8,
    .kernel_a = cnn_f32_gemm_6x16_a__avx2,
    .narrow_a = cnn_f32_gemm_6x8_narrow_a__avx2,
    .cols_a = cnn_f32_gemm_6xcols_a__avx2,
    .pack = cnn_f32_gemm_pack__avx2,
    .gemv_dot = cnn_f32_gemv_dot__avx2,
    .gemv_axpy = cnn_f32_gemv_axpy__avx2,
    .dot8 = cnn_f32_gemm_dot8__avx2,
};
#endif
