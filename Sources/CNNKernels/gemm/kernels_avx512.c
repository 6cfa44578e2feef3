/* AVX-512 SGEMM microkernel (8 x 48), packing and GEMV.
 *
 * The tile is 8 rows x 48 columns of C: 3 zmm per row, 24 zmm accumulators, plus 3 for the B row
 * and embedded broadcasts of A (vfmadd231ps zmm, zmm, dword{1to16}), so 27 of the 32 registers are
 * live and each k step issues 24 FMAs for 3 vector loads + 8 broadcast loads. Vectors run along N
 * because C is row-major (a tile row is 3 contiguous stores). MR = 8 divides the channel counts of
 * the common CNNs (16..2048), so M rarely has an edge; N edges run narrower copies of the kernel
 * (16 or 32 columns) and masked stores instead of padding a 49-wide layer to 96, and edges of at
 * most 4 columns (49 = 48 + 1, 196 = 4 x 48 + 4) a kernel with vectors along the rows. */
#include "gemm_internal.h"
#include "pack_x86.h"

#if CNN_X86
#include <immintrin.h>

#define AVX512_MR 8
#define AVX512_NR 48

/* A (packed weights) is fetched 4 KiB (128 k steps) ahead: a layer with few output columns (a
 * 7x7 plane at batch 1) uses each weight for at most 49 columns, so its weights stream from
 * memory once per call, and the hardware prefetcher alone did not keep up. C harness, 2 threads,
 * caches flushed before each call, minimum of 10, 4 alternated runs, eighth session:
 * 512 x 49 x 4608 1.34-1.42 -> 1.22-1.24 ms, 2048 x 49 x 512 0.57-0.63 -> 0.53-0.58 ms,
 * 256 x 196 x 2304 1.19-1.23 -> 1.16-1.19 ms; square and warm conv-like shapes unchanged. */
#define AVX512_A_PREFETCH 1024

static inline __attribute__((always_inline)) CNN_TARGET_AVX512 void
gemm_8xnv__avx512(size_t kc, const float *a, const float *b, size_t bs, size_t mr, size_t nr,
                  const cnn_gemm_tile *t, const int nv) {
    // a is (kc, 8) packed, b is (kc, 48) packed (only the first 16*nv columns used); tile (mr, nr)
    __m512 acc[AVX512_MR][3];
    for (int i = 0; i < AVX512_MR; i++)
        for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_ps();
    /* The C tile is read back on the store (beta != 0 after the first K block): fetch it now.
     * B rows are fetched 8 k steps ahead: the 48-column panel streams from L2 once per A panel
     * (1 thread, 2048^3: 170 -> 165 ms on the development machine). */
    if (t->cs_c == 1)
        for (int i = 0; i < AVX512_MR; i++)
            if ((size_t)i < mr)
                for (int v = 0; v < nv; v++) _mm_prefetch((const char *)(t->c + (size_t)i * t->rs_c + v * 16), _MM_HINT_T0);
    if (t->res && t->cs_r == 1)
        for (int i = 0; i < AVX512_MR; i++)
            if ((size_t)i < mr)
                for (int v = 0; v < nv; v++) _mm_prefetch((const char *)(t->res + (size_t)i * t->rs_r + v * 16), _MM_HINT_T0);
    /* The residual's rows are fetched as C's are, and the loop runs four k steps per trip (as the
     * AVX2 kernel does). Zen 4 class, C harness, builds called in turn, median per-call ratio
     * new / old (then with the order reversed, old / new): 64 x 3136 x 576 on 1 thread 0.92
     * (1.05), on 2 threads 0.97 (1.05); square 256-2048 and the other conv-like shapes within
     * 2 %; ResNet-50's convolutions at batch 1 0.96-1.02. */
#pragma clang loop unroll_count(4)
    for (size_t k = 0; k < kc; k++) {
        __m512 bv[3];
        for (int v = 0; v < nv; v++) _mm_prefetch((const char *)(b + 8 * bs + v * 16), _MM_HINT_T0);
        _mm_prefetch((const char *)(a + AVX512_A_PREFETCH), _MM_HINT_T0);
        for (int v = 0; v < nv; v++) bv[v] = _mm512_loadu_ps(b + v * 16);
        for (int i = 0; i < AVX512_MR; i++) {
            const __m512 ai = _mm512_set1_ps(a[i]);
            for (int v = 0; v < nv; v++) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        }
        a += AVX512_MR;
        b += bs;
    }
    if (t->cs_c == 1 && (!t->res || t->cs_r == 1)) {
        /* Row-major tile: store straight from the registers, N edge through masks. */
        __mmask16 mask[3];
        for (int v = 0; v < nv; v++) {
            const size_t left = nr > (size_t)v * 16 ? nr - (size_t)v * 16 : 0;
            mask[v] = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        }
        const __m512 alpha = _mm512_set1_ps(t->alpha), beta = _mm512_set1_ps(t->beta);
        const __m512 zero = _mm512_setzero_ps();
        /* Constant row indices (the loop is unrolled and stops at mr), so the accumulators stay in
         * registers instead of going through the stack. */
#pragma clang loop unroll(full)
        for (int i = 0; i < AVX512_MR; i++) {
            if ((size_t)i >= mr) break;
            float *c = t->c + (size_t)i * t->rs_c;
            const __m512 bias_i = t->bias && !t->bias_on_j ? _mm512_set1_ps(t->bias[i]) : zero;
            for (int v = 0; v < nv; v++) {
                const __mmask16 m = mask[v];
                __m512 y;
                if (t->beta == 0.0f) {
                    y = _mm512_mul_ps(alpha, acc[i][v]);
                } else {
                    const __m512 cv = _mm512_maskz_loadu_ps(m, c + v * 16);
                    y = t->beta == 1.0f ? _mm512_fmadd_ps(alpha, acc[i][v], cv)
                                        : _mm512_fmadd_ps(alpha, acc[i][v], _mm512_mul_ps(beta, cv));
                }
                if (t->bias) {
                    y = _mm512_add_ps(y, t->bias_on_j ? _mm512_maskz_loadu_ps(m, t->bias + v * 16)
                                                      : bias_i);
                }
                if (t->res) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, t->res + (size_t)i * t->rs_r + v * 16));
                if (t->relu) y = _mm512_max_ps(zero, y); /* second operand is returned for NaN */
                _mm512_mask_storeu_ps(c + v * 16, m, y);
            }
        }
    } else {
        float buf[AVX512_MR * AVX512_NR];
        for (int i = 0; i < AVX512_MR; i++)
            for (int v = 0; v < nv; v++) _mm512_storeu_ps(buf + i * AVX512_NR + v * 16, acc[i][v]);
        cnn_gemm_store_tile(buf, AVX512_NR, mr, nr, t);
    }
}

static CNN_TARGET_AVX512 void cnn_f32_gemm_8x48__avx512(size_t kc, const float *a, const float *b,
                                                        size_t bs, size_t mr, size_t nr,
                                                        const cnn_gemm_tile *t) {
    // a is (kc, 8) packed, b is (kc, 48) with row stride bs; tile (mr <= 8, nr <= 48)
    if (nr > 32) gemm_8xnv__avx512(kc, a, b, bs, mr, nr, t, 3);
    else if (nr > 16) gemm_8xnv__avx512(kc, a, b, bs, mr, nr, t, 2);
    else gemm_8xnv__avx512(kc, a, b, bs, mr, nr, t, 1);
}

/* Narrow N edges (a 49-column layer leaves 1 column after the 48-wide tile): the 8 x nr tile
 * with vectors along the rows instead, two k steps per zmm (lanes 0-7: rows at k, 8-15: rows at
 * k+1), so one column costs half an FMA per k instead of the 8 a 16-wide masked tile spends on it.
 * The packed A panel is read as it lies; B's nr columns are broadcast. */
static inline __attribute__((always_inline)) CNN_TARGET_AVX512 void
gemm_8xcols__avx512(size_t kc, const float *a, const float *b, size_t bs, size_t mr, size_t nr,
                    const cnn_gemm_tile *t, const int cols) {
    // a is (kc, 8) packed, b is (kc, >= cols) with row stride bs; tile (mr <= 8, nr <= cols <= 4)
    __m512 acc0[4], acc1[4];
    __m256 tail[4];
    for (int c = 0; c < cols; c++) {
        acc0[c] = acc1[c] = _mm512_setzero_ps();
        tail[c] = _mm256_setzero_ps();
    }
    const __mmask16 high = 0xFF00;
    size_t k = 0;
    for (; k + 4 <= kc; k += 4) {
        const __m512 a01 = _mm512_loadu_ps(a + k * AVX512_MR), a23 = _mm512_loadu_ps(a + k * AVX512_MR + 16);
        const float *bk = b + k * bs;
        for (int c = 0; c < cols; c++) {
            const __m512 b01 = _mm512_mask_broadcastss_ps(_mm512_set1_ps(bk[c]), high, _mm_load_ss(bk + bs + c));
            const __m512 b23 = _mm512_mask_broadcastss_ps(_mm512_set1_ps(bk[2 * bs + c]), high,
                                                          _mm_load_ss(bk + 3 * bs + c));
            acc0[c] = _mm512_fmadd_ps(a01, b01, acc0[c]);
            acc1[c] = _mm512_fmadd_ps(a23, b23, acc1[c]);
        }
    }
    for (; k < kc; k++) {
        const __m256 ak = _mm256_loadu_ps(a + k * AVX512_MR);
        for (int c = 0; c < cols; c++) tail[c] = _mm256_fmadd_ps(ak, _mm256_set1_ps(b[k * bs + c]), tail[c]);
    }
    float col[4][AVX512_MR], buf[AVX512_MR * 4];
    for (int c = 0; c < cols; c++) {
        const __m512 s = _mm512_add_ps(acc0[c], acc1[c]);
        const __m256 r = _mm256_add_ps(_mm256_add_ps(_mm512_castps512_ps256(s), _mm512_extractf32x8_ps(s, 1)), tail[c]);
        _mm256_storeu_ps(col[c], r);
    }
    for (int i = 0; i < AVX512_MR; i++)
        for (int c = 0; c < cols; c++) buf[i * 4 + c] = col[c][i];
    cnn_gemm_store_tile(buf, 4, mr, nr, t);
}

static CNN_TARGET_AVX512 void cnn_f32_gemm_8x4_narrow__avx512(size_t kc, const float *a, const float *b,
                                                              size_t bs, size_t mr, size_t nr,
                                                              const cnn_gemm_tile *t) {
    // a is (kc, 8) packed, b is (kc, >= nr) with row stride bs; tile (mr <= 8, nr <= 4)
    switch (nr) {
    case 1: gemm_8xcols__avx512(kc, a, b, bs, mr, nr, t, 1); break;
    case 2: gemm_8xcols__avx512(kc, a, b, bs, mr, nr, t, 2); break;
    case 3: gemm_8xcols__avx512(kc, a, b, bs, mr, nr, t, 3); break;
    default: gemm_8xcols__avx512(kc, a, b, bs, mr, nr, t, 4); break;
    }
}

static CNN_TARGET_AVX512 void cnn_f32_gemm_pack__avx512(const float *x, size_t rs, size_t ks, size_t mr,
                                                        size_t kc, size_t width, float *dst) {
    cnn_gemm_pack_x86(x, rs, ks, mr, kc, width, dst);
}

static inline CNN_TARGET_AVX512 __mmask16 tail_mask(size_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

static CNN_TARGET_AVX512 void cnn_f32_gemv_dot__avx512(size_t m, size_t k, const float *a, size_t lda,
                                                       const float *x, float *y) {
    // a is (m, k) with leading dimension lda, x is (k), y is (m): 4 rows share each x load
    size_t i = 0;
    for (; i + 4 <= m; i += 4) {
        const float *a0 = a + i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (size_t p = 0; p < k; p += 16) {
            const __mmask16 mk = tail_mask(k - p);
            const __m512 xv = _mm512_maskz_loadu_ps(mk, x + p);
            s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, a0 + p), xv, s0);
            s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, a1 + p), xv, s1);
            s2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, a2 + p), xv, s2);
            s3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, a3 + p), xv, s3);
        }
        y[i] = _mm512_reduce_add_ps(s0);
        y[i + 1] = _mm512_reduce_add_ps(s1);
        y[i + 2] = _mm512_reduce_add_ps(s2);
        y[i + 3] = _mm512_reduce_add_ps(s3);
    }
    for (; i < m; i++) {
        const float *ai = a + i * lda;
        __m512 s = _mm512_setzero_ps();
        for (size_t p = 0; p < k; p += 16) {
            const __mmask16 mk = tail_mask(k - p);
            s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, ai + p), _mm512_maskz_loadu_ps(mk, x + p), s);
        }
        y[i] = _mm512_reduce_add_ps(s);
    }
}

static CNN_TARGET_AVX512 void cnn_f32_gemv_axpy__avx512(size_t n, size_t k, const float *b, size_t ldb,
                                                        const float *x, float *y) {
    // b is (k, n) with leading dimension ldb, x is (k), y is (n): 64 columns per pass over k
    for (size_t j = 0; j < n; j += 64) {
        __mmask16 m[4];
        for (int v = 0; v < 4; v++) m[v] = j + 16 * v < n ? tail_mask(n - j - 16 * v) : 0;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        const float *bj = b + j;
        for (size_t p = 0; p < k; p++) {
            const __m512 xp = _mm512_set1_ps(x[p]);
            const float *bp = bj + p * ldb;
            s0 = _mm512_fmadd_ps(xp, _mm512_maskz_loadu_ps(m[0], bp), s0);
            s1 = _mm512_fmadd_ps(xp, _mm512_maskz_loadu_ps(m[1], bp + 16), s1);
            s2 = _mm512_fmadd_ps(xp, _mm512_maskz_loadu_ps(m[2], bp + 32), s2);
            s3 = _mm512_fmadd_ps(xp, _mm512_maskz_loadu_ps(m[3], bp + 48), s3);
        }
        _mm512_mask_storeu_ps(y + j, m[0], s0);
        _mm512_mask_storeu_ps(y + j + 16, m[1], s1);
        _mm512_mask_storeu_ps(y + j + 32, m[2], s2);
        _mm512_mask_storeu_ps(y + j + 48, m[3], s3);
    }
}

/* x, the weights, is one stream read once, row after row, from memory or L3 (fc 4096 -> 1000:
 * 16 MB). A register tile of 3 rows x all 8 columns (24 accumulators, the 3 rows' vectors and one
 * of y: 28 of the 32 zmm registers) loads 11 vectors for 24 FMAs and streams 3 rows at once in one
 * pass, each row fetched DOT8_AHEAD floats ahead. The kernel before (2 rows x 8 columns) loaded 10
 * vectors for 16 FMAs. Each lane sums over k in order, the k % 16 tail one more step under a mask;
 * a row's result does not depend on the rows it is grouped with. Zen 4 class, 2 threads, C
 * harness, builds called in turn 15 times, median per-call ratio new / old (order reversed:
 * old / new): 1000 x 8 x 4096 0.70-0.78 (1.20-1.28), 4096 x 8 x 9216 0.79 (1.21-1.25), 100 x 8 x
 * 9216 0.90-0.92 (1.10-1.13); 1 thread 0.72, 0.78 and 0.90. */
#define DOT8_AHEAD 512

static CNN_TARGET_AVX512 void cnn_f32_gemm_dot8__avx512(size_t rows, size_t k_len, const float *x,
                                                        size_t ldx, const float *y, size_t ys, float *out) {
    // x is (rows, k_len) with leading dimension ldx, y is (8, k_len) with row stride ys, out is (rows, 8)
    for (size_t r = 0; r < rows; r += 3) {
        const size_t n = CNN_MIN((size_t)3, rows - r);
        /* a group of 1-2 rows repeats its first row: those sums are never stored */
        const float *x0 = x + r * ldx, *x1 = n > 1 ? x0 + ldx : x0, *x2 = n > 2 ? x0 + 2 * ldx : x0;
        __m512 s[3][8];
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 8; j++) s[i][j] = _mm512_setzero_ps();
        for (size_t p = 0; p < k_len; p += 16) {
            if (p + DOT8_AHEAD < k_len) { /* only addresses inside the rows */
                _mm_prefetch((const char *)(x0 + p + DOT8_AHEAD), _MM_HINT_T0);
                _mm_prefetch((const char *)(x1 + p + DOT8_AHEAD), _MM_HINT_T0);
                _mm_prefetch((const char *)(x2 + p + DOT8_AHEAD), _MM_HINT_T0);
            }
            const __mmask16 mk = tail_mask(k_len - p);
            const __m512 a0 = _mm512_maskz_loadu_ps(mk, x0 + p), a1 = _mm512_maskz_loadu_ps(mk, x1 + p),
                         a2 = _mm512_maskz_loadu_ps(mk, x2 + p);
            for (int j = 0; j < 8; j++) {
                const __m512 yj = _mm512_maskz_loadu_ps(mk, y + j * ys + p);
                s[0][j] = _mm512_fmadd_ps(a0, yj, s[0][j]);
                s[1][j] = _mm512_fmadd_ps(a1, yj, s[1][j]);
                s[2][j] = _mm512_fmadd_ps(a2, yj, s[2][j]);
            }
        }
        for (size_t i = 0; i < n; i++)
            for (int j = 0; j < 8; j++) out[(r + i) * 8 + j] = _mm512_reduce_add_ps(s[i][j]);
    }
}

const cnn_gemm_variant cnn_gemm_variant_avx512 = {
    .isa = CNN_ISA_AVX512,
    .mr = AVX512_MR,
    .nr = AVX512_NR,
    .n_quantum = 16,
    .direct_b_max_rows = 128,
    .kernel = cnn_f32_gemm_8x48__avx512,
    .narrow = cnn_f32_gemm_8x4_narrow__avx512,
    .narrow_max = 4,
    .pack = cnn_f32_gemm_pack__avx512,
    .gemv_dot = cnn_f32_gemv_dot__avx512,
    .gemv_axpy = cnn_f32_gemv_axpy__avx512,
    .dot8 = cnn_f32_gemm_dot8__avx512,
};
#endif
