/* Max pooling with column stride 2 and kernel width 2 or 3 — the 2x2/2 and 3x3/2 pools of
 * AlexNet, VGG, ResNet and GoogLeNet — vectorised over output columns; and with column stride 1
 * (GoogLeNet's 3x3/1 branch pools), any kernel width, at the end of the file.
 *
 * For L output columns starting at ow0 the window columns are base + 2i + {0, 1, 2} with
 * base = 2*ow0 - pad: two loads of 2L input columns de-interleave into the even (base + 2i) and odd
 * (base + 2i + 1) columns, and two loads starting at base + 2 give the third column. Rows are
 * visited in order and each column in window order, updating on "greater or NaN", so ties keep the
 * first maximum in row-major window order and NaN propagates, exactly as the reference
 * (cnn_f32_maxpool_plane_cols__generic in pool.c), which also handles the border columns whose
 * windows touch padding. Loads are masked to the row, so nothing outside it is read. */
#include "../internal.h"
#include "pool_internal.h"

#include <math.h>

#if CNN_X86
#include <immintrin.h>

static inline __mmask16 lanes16(int64_t n) {
    return n <= 0 ? 0 : n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}

/* Inference pooling (no indices) on NaN-free planes takes the padded path below (small planes)
 * or the separable AVX2 path further down (wide ones) on AVX-512 machines too: ResNet-50's 3x3/2
 * pool on 64 x 112 x 112 (Zen 4 class, 2 threads, best of 200) 0.197 ms on the body here against
 * 0.083 ms separable; 1 thread 0.296 against 0.163. The cell-by-cell bodies stay for indices, for
 * planes holding a NaN and for 2x2/2. */
CNN_TARGET_AVX2 static int maxpool_separable__avx2(const cnn_pool_shape *s, int64_t P, int64_t Q, const float *x,
                                                   float *y);
CNN_TARGET_AVX512 static int maxpool_padded__avx512(const cnn_pool_shape *s, int64_t P, int64_t Q, const float *x,
                                                   float *y);

CNN_TARGET_AVX512 static inline void update16(__m512 v, __m512i iv, __m512 *m, __m512i *mi) {
    const __mmask16 k = _mm512_cmp_ps_mask(v, *m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    *m = _mm512_mask_mov_ps(*m, k, v);
    *mi = _mm512_mask_mov_epi32(*mi, k, iv);
}

// x is one (H, W) plane, y and ind one (P, Q) plane; stride_w == 2, kernel_w in {2, 3}
CNN_TARGET_AVX512
void cnn_f32_maxpool_plane_s2__avx512(const cnn_pool_shape *s, int64_t P, int64_t Q, const float *x,
                                      float *y, int32_t *ind) {
    /* Overlapping windows only: from 32 columns up on the separable path (3x3/2 from 192 x 56 x 56:
     * 0.079-0.081 ms there against 0.078-0.091 on the padded one), below it on the padded one (from
     * 480 x 28 x 28: 0.075-0.078 against 0.060-0.066 ms; from 832 x 14 x 14 0.087-0.088 on this
     * body against 0.051-0.052). 2x2/2 stays on this body (from 832 x 14 x 14 0.035 ms against
     * 0.055 padded, from 256 x 56 x 56 0.069 against 0.086). */
    if (!ind && ((s->W >= 32 && maxpool_separable__avx2(s, P, Q, x, y)) ||
                 (s->kernel_w > 2 && maxpool_padded__avx512(s, P, Q, x, y))))
        return;
    const int64_t H = s->H, W = s->W, kw = s->kernel_w, pw = s->pad_w;
    int64_t lo, hi;
    cnn_pool_interior_cols(s, Q, &lo, &hi);
    if (lo > 0) cnn_f32_maxpool_plane_cols__generic(s, P, Q, 0, lo, x, y, ind);
    if (hi < Q) cnn_f32_maxpool_plane_cols__generic(s, P, Q, hi, Q, x, y, ind);
    if (hi <= lo) return;

    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i two = _mm512_set1_epi32(2), one = _mm512_set1_epi32(1);
    for (int64_t oh = 0; oh < P; oh++) {
        int64_t hs = oh * s->stride_h - s->pad_h;
        const int64_t he = CNN_MIN(hs + s->kernel_h, H);
        hs = CNN_MAX(hs, 0);
        for (int64_t ow0 = lo; ow0 < hi; ow0 += 16) {
            const int64_t base = 2 * ow0 - pw, avail = W - base;
            const __mmask16 ma = lanes16(avail), mb = lanes16(avail - 16);
            const __mmask16 mc = lanes16(avail - 2), md = lanes16(avail - 18);
            __m512 m = _mm512_set1_ps(-INFINITY);
            __m512i mi = _mm512_add_epi32(_mm512_set1_epi32((int32_t)(hs * W + base)), even);
            for (int64_t h = hs; h < he; h++) {
                const float *r = x + h * W + base;
                const __m512i i0 = _mm512_add_epi32(_mm512_set1_epi32((int32_t)(h * W + base)), even);
                const __m512 a = _mm512_maskz_loadu_ps(ma, r), b = _mm512_maskz_loadu_ps(mb, r + 16);
                update16(_mm512_permutex2var_ps(a, even, b), i0, &m, &mi);
                update16(_mm512_permutex2var_ps(a, odd, b), _mm512_add_epi32(i0, one), &m, &mi);
                if (kw == 3) {
                    const __m512 c = _mm512_maskz_loadu_ps(mc, r + 2), d = _mm512_maskz_loadu_ps(md, r + 18);
                    update16(_mm512_permutex2var_ps(c, even, d), _mm512_add_epi32(i0, two), &m, &mi);
                }
            }
            const __mmask16 mo = lanes16(hi - ow0);
            _mm512_mask_storeu_ps(y + oh * Q + ow0, mo, m);
            if (ind) _mm512_mask_storeu_epi32(ind + oh * Q + ow0, mo, mi);
        }
    }
}

/* Inference pooling (no indices) at column stride 1 or 2 on planes of up to PADDED_MAX_FLOATS
 * floats with their padding (GoogLeNet's 3x3/1 branch pools on 28x28, 14x14 and 7x7 planes and its
 * 3x3/2 pool from 28x28; the stride-2 dispatch above says which): the plane is copied once into a
 * buffer whose rows carry the padding as -inf (and as many -inf rows and columns past the plane as
 * ceil mode's clipped windows and whole output vectors reach), so that every output vector is plain
 * loads and maxima (column stride 2: pairs of loads de-interleaved into the even and odd columns),
 * with no border columns and no masks but the row's last vector's store. The copy checks the plane
 * for NaN (a max instruction drops NaN in one operand): a plane holding one returns 0 and takes the
 * cell-by-cell body, which propagates it as the reference does. Zero's sign follows the max
 * instruction, as in the separable path. Before, the 14x14 and 7x7 planes ran the bodies below with
 * their border columns in the generic loop, and ONNX Runtime's pools took 0.02-0.08 ms against our
 * 0.1-0.5 ms in GoogLeNet's profile. Zen 4 class, 2 threads, best of 20,000 calls, before -> after,
 * stride 1: 480 x 14 x 14 0.123 -> 0.035 ms, 528 x 14 x 14 0.134 -> 0.037, 832 x 7 x 7 0.107 ->
 * 0.033; 192 x 28 x 28 (the separable path before) 0.060 -> 0.045, 256 x 28 x 28 0.081 -> 0.057. */
enum { PADDED_MAX_FLOATS = 6144, PADDED_MAX_K = 7 };

CNN_TARGET_AVX512 static int maxpool_padded__avx512(const cnn_pool_shape *s, int64_t P, int64_t Q, const float *x,
                                                   float *y) {
    const int64_t H = s->H, W = s->W, kh = s->kernel_h, kw = s->kernel_w, ph = s->pad_h, pw = s->pad_w;
    const int64_t sh = s->stride_h, sw = s->stride_w;
    if ((sw != 1 && sw != 2) || kh > PADDED_MAX_K || kw > PADDED_MAX_K) return 0;
    /* buffer row r, column c hold input (r - ph, c - pw); output (oh, ow) reads rows oh*sh ..
     * oh*sh+kh-1 and columns ow*sw .. ow*sw+kw-1; a vector of 16 outputs at stride 2 loads 32
     * columns from each even window offset */
    const int64_t rows = CNN_MAX(ph + H, (P - 1) * sh + kh);
    const int64_t reach = (Q + 15) / 16 * 16 * sw + kw + (sw == 2 ? 16 : 0);
    const int64_t pitch = (CNN_MAX(pw + W, reach) + 15) / 16 * 16;
    if (rows * pitch > PADDED_MAX_FLOATS) return 0;
    float t[PADDED_MAX_FLOATS] __attribute__((aligned(64)));
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __mmask16 nan = 0;
    for (int64_t r = 0; r < rows; r++) {
        float *tr = t + r * pitch;
        for (int64_t c = 0; c < pitch; c += 16) _mm512_store_ps(tr + c, ninf);
        const int64_t h = r - ph;
        if (h < 0 || h >= H) continue;
        for (int64_t w0 = 0; w0 < W; w0 += 16) {
            const __mmask16 m = lanes16(W - w0);
            const __m512 v = _mm512_maskz_loadu_ps(m, x + h * W + w0);
            nan |= _mm512_mask_cmp_ps_mask(m, v, v, _CMP_UNORD_Q);
            _mm512_mask_storeu_ps(tr + pw + w0, m, v);
        }
    }
    if (nan) return 0;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int64_t oh = 0; oh < P; oh++)
        for (int64_t ow0 = 0; ow0 < Q; ow0 += 16) {
            const float *b = t + oh * sh * pitch + ow0 * sw;
            __m512 m = ninf;
            for (int64_t dh = 0; dh < kh; dh++) {
                const float *br = b + dh * pitch;
                if (sw == 1) {
                    for (int64_t dw = 0; dw < kw; dw++) m = _mm512_max_ps(m, _mm512_loadu_ps(br + dw));
                } else {
                    for (int64_t e = 0; e < kw; e += 2) {
                        const __m512 lo = _mm512_loadu_ps(br + e), hi = _mm512_loadu_ps(br + e + 16);
                        m = _mm512_max_ps(m, _mm512_permutex2var_ps(lo, even, hi));
                        if (e + 1 < kw) m = _mm512_max_ps(m, _mm512_permutex2var_ps(lo, odd, hi));
                    }
                }
            }
            _mm512_mask_storeu_ps(y + oh * Q + ow0, lanes16(Q - ow0), m);
        }
    return 1;
}

/* Column stride 1 (GoogLeNet's 3x3/1 pools in every Inception branch, any kernel width): 16 output
 * columns per vector, one unaligned load per window cell; the generic loop ran at 3 ns per output
 * (0.5 ms of a 29 ms GoogLeNet forward per pool). Same visiting order as the reference. */
// x is one (H, W) plane, y and ind one (P, Q) plane; stride_w == 1
CNN_TARGET_AVX512
void cnn_f32_maxpool_plane_s1__avx512(const cnn_pool_shape *s, int64_t P, int64_t Q, const float *x,
                                      float *y, int32_t *ind) {
    if (!ind && (maxpool_padded__avx512(s, P, Q, x, y) || maxpool_separable__avx2(s, P, Q, x, y))) return;
    const int64_t H = s->H, W = s->W, kw = s->kernel_w, pw = s->pad_w;
    int64_t lo, hi;
    cnn_pool_interior_cols(s, Q, &lo, &hi);
    if (lo > 0) cnn_f32_maxpool_plane_cols__generic(s, P, Q, 0, lo, x, y, ind);
    if (hi < Q) cnn_f32_maxpool_plane_cols__generic(s, P, Q, hi, Q, x, y, ind);
    if (hi <= lo) return;
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int64_t oh = 0; oh < P; oh++) {
        int64_t hs = oh * s->stride_h - s->pad_h;
        const int64_t he = CNN_MIN(hs + s->kernel_h, H);
        hs = CNN_MAX(hs, 0);
        for (int64_t ow0 = lo; ow0 < hi; ow0 += 16) {
            const __mmask16 mo = lanes16(hi - ow0); /* interior columns: every cell is in the row */
            __m512 m = _mm512_set1_ps(-INFINITY);
            __m512i mi = _mm512_add_epi32(_mm512_set1_epi32((int32_t)(hs * W + ow0 - pw)), iota);
            for (int64_t h = hs; h < he; h++)
                for (int64_t c = 0; c < kw; c++) {
                    const int64_t col = h * W + ow0 + c - pw;
                    update16(_mm512_maskz_loadu_ps(mo, x + col), _mm512_add_epi32(_mm512_set1_epi32((int32_t)col), iota),
                             &m, &mi);
                }
            _mm512_mask_storeu_ps(y + oh * Q + ow0, mo, m);
            if (ind) _mm512_mask_storeu_epi32(ind + oh * Q + ow0, mo, mi);
        }
    }
}

CNN_TARGET_AVX2 static inline __m256i lanes8(int64_t n) {
    const int32_t c = (int32_t)(n < 0 ? 0 : n > 8 ? 8 : n);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Even / odd elements of the 16 floats a:b, in order. */
CNN_TARGET_AVX2 static inline __m256 evens8(__m256 a, __m256 b) {
    const __m256 t = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), _MM_SHUFFLE(3, 1, 2, 0)));
}
CNN_TARGET_AVX2 static inline __m256 odds8(__m256 a, __m256 b) {
    const __m256 t = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), _MM_SHUFFLE(3, 1, 2, 0)));
}

CNN_TARGET_AVX2 static inline void update8(__m256 v, __m256i iv, __m256 *m, __m256i *mi) {
    const __m256 k = _mm256_or_ps(_mm256_cmp_ps(v, *m, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    *m = _mm256_blendv_ps(*m, v, k);
    *mi = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(*mi), _mm256_castsi256_ps(iv), k));
}

/* The AVX2 body for stride 2. Columns from lo to Q run in vectors: a vector reaching past the
 * row's end (the right border, ceil mode's clipped windows) fills its missing cells with -inf,
 * which never wins, so only the left border (windows starting in the padding) goes through the
 * reference. Without indices (inference) a cell costs a max and a NaN test instead of the
 * reference's select of value and index; the NaN lanes are set at the end (NaN propagates, as a
 * quiet NaN rather than the input's payload). Zen 3 class AVX2, 2 threads, without indices, C
 * harness, minimum of 5 alternated runs: 64 x 112 x 112 3x3/2 pad 1 0.247 -> 0.196 ms; ceil mode
 * 192 x 56 x 56 0.230 -> 0.149, 480 x 28 x 28 0.234 -> 0.138. */
CNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
maxpool_s2_body__avx2(const cnn_pool_shape *s, int64_t P, int64_t Q, const float *x, float *y, int32_t *ind,
                      const int track) {
    const int64_t H = s->H, W = s->W, kw = s->kernel_w, pw = s->pad_w;
    int64_t lo, hi;
    cnn_pool_interior_cols(s, Q, &lo, &hi);
    if (lo > 0) cnn_f32_maxpool_plane_cols__generic(s, P, Q, 0, lo, x, y, ind);
    if (lo >= Q) return;

    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i two = _mm256_set1_epi32(2), one = _mm256_set1_epi32(1);
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    for (int64_t oh = 0; oh < P; oh++) {
        int64_t hs = oh * s->stride_h - s->pad_h;
        const int64_t he = CNN_MIN(hs + s->kernel_h, H);
        hs = CNN_MAX(hs, 0);
        for (int64_t ow0 = lo; ow0 < Q; ow0 += 8) {
            const int64_t base = 2 * ow0 - pw, avail = W - base;
            const __m256i ma = lanes8(avail), mb = lanes8(avail - 8);
            const __m256i mc = lanes8(avail - 2), md = lanes8(avail - 10);
            const int edge = avail < 16 + (kw == 3 ? 2 : 0); /* some cell lies past the row */
            __m256 m = ninf, nan = _mm256_setzero_ps();
            __m256i mi = _mm256_add_epi32(_mm256_set1_epi32((int32_t)(hs * W + base)), even);
            for (int64_t h = hs; h < he; h++) {
                const float *r = x + h * W + base;
                __m256 a = _mm256_maskload_ps(r, ma), b = _mm256_maskload_ps(r + 8, mb), c = ninf, d = ninf;
                if (kw == 3) {
                    c = _mm256_maskload_ps(r + 2, mc);
                    d = _mm256_maskload_ps(r + 10, md);
                }
                if (edge) {
                    a = _mm256_blendv_ps(ninf, a, _mm256_castsi256_ps(ma));
                    b = _mm256_blendv_ps(ninf, b, _mm256_castsi256_ps(mb));
                    c = _mm256_blendv_ps(ninf, c, _mm256_castsi256_ps(mc));
                    d = _mm256_blendv_ps(ninf, d, _mm256_castsi256_ps(md));
                }
                const __m256 e0 = evens8(a, b), e1 = odds8(a, b);
                if (track) {
                    const __m256i i0 = _mm256_add_epi32(_mm256_set1_epi32((int32_t)(h * W + base)), even);
                    update8(e0, i0, &m, &mi);
                    update8(e1, _mm256_add_epi32(i0, one), &m, &mi);
                    if (kw == 3) update8(evens8(c, d), _mm256_add_epi32(i0, two), &m, &mi);
                } else {
                    /* max(v, m) keeps a NaN already in m; NaN cells are noted separately */
                    m = _mm256_max_ps(e0, _mm256_max_ps(e1, m));
                    nan = _mm256_or_ps(nan, _mm256_cmp_ps(e0, e1, _CMP_UNORD_Q));
                    if (kw == 3) {
                        const __m256 e2 = evens8(c, d);
                        m = _mm256_max_ps(e2, m);
                        nan = _mm256_or_ps(nan, _mm256_cmp_ps(e2, e2, _CMP_UNORD_Q));
                    }
                }
            }
            if (!track) m = _mm256_blendv_ps(m, _mm256_set1_ps(NAN), nan);
            /* Masked stores are microcoded and slow on AMD cores: only the tail uses them. */
            if (Q - ow0 >= 8) {
                _mm256_storeu_ps(y + oh * Q + ow0, m);
                if (track) _mm256_storeu_si256((__m256i *)(void *)(ind + oh * Q + ow0), mi);
            } else {
                const __m256i mo = lanes8(Q - ow0);
                _mm256_maskstore_ps(y + oh * Q + ow0, mo, m);
                if (track) _mm256_maskstore_epi32(ind + oh * Q + ow0, mo, mi);
            }
        }
    }
}

/* ---- AVX2 inference pooling on NaN-free planes: separable -----------------------------------
 * Without indices the window's maximum is the maximum of its rows' column maxima, so each output
 * row takes two passes: the column maxima of its window rows across the whole input row, into a
 * row buffer with -inf where the padding and the clipped right border lie, then the row maxima of
 * kw neighbouring buffer entries per output (de-interleaved at stride 2). A 3x3 window costs
 * 3 loads and 2 maxima per input column and 3 loads and 2 maxima per output, against 9 of each and
 * a NaN test per cell. A max instruction drops NaN in one operand, so the path runs only on
 * planes found NaN-free by a scan (one unordered compare per 16 inputs); a plane holding a NaN
 * takes the cell-by-cell bodies (maxpool_s2_body__avx2 above, maxpool_s1_body__avx2 below), which
 * propagate it as the reference does. Zero's sign follows the max instruction, as in those bodies. */
enum { SEP_ROW_MAX = 2048 }; /* floats of the row buffer, on the stack */

CNN_TARGET_AVX2 static int plane_has_nan__avx2(const float *x, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        acc = _mm256_or_ps(acc, _mm256_cmp_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(x + i + 8), _CMP_UNORD_Q));
    int nan = _mm256_movemask_ps(acc) != 0;
    for (; i < n; i++) nan |= x[i] != x[i];
    return nan;
}

/* Floats of the row buffer a plane needs: the input row after pad_w entries of -inf, then the
 * columns the last output vector's windows reach (8 outputs, stride sw, kw columns, and the
 * stride-2 path's second load of 8), all -inf past the row; the row's last vector is stored whole. */
static int64_t sep_row_len(const cnn_pool_shape *s, int64_t Q) {
    const int64_t qv = (Q + 7) / 8 * 8;
    return CNN_MAX(s->pad_w + (s->W + 7) / 8 * 8, s->stride_w * qv + s->kernel_w + 8);
}

CNN_TARGET_AVX2 static int maxpool_separable__avx2(const cnn_pool_shape *s, int64_t P, int64_t Q, const float *x,
                                                   float *y) {
    const int64_t H = s->H, W = s->W, kw = s->kernel_w, pw = s->pad_w, sw = s->stride_w;
    const int64_t len = sep_row_len(s, Q);
    /* Only where windows overlap along the row and rows are long enough: on GoogLeNet's 14x14 and
     * 7x7 planes the scan and the buffer cost more than they saved (3x3/1 on 832 x 7 x 7 1.09,
     * 2x2/2 on 832 x 14 x 14 1.27 times the cell-by-cell body). */
    if (kw <= sw || W < 16 || len > SEP_ROW_MAX || plane_has_nan__avx2(x, H * W)) return 0;
    float v[SEP_ROW_MAX] __attribute__((aligned(32)));
    for (int64_t i = 0; i < pw; i++) v[i] = -INFINITY;
    for (int64_t i = pw + W; i < len; i++) v[i] = -INFINITY;
    float *vr = v + pw; /* vr[w]: the column maximum of input column w */
    for (int64_t oh = 0; oh < P; oh++) {
        int64_t hs = oh * s->stride_h - s->pad_h;
        const int64_t he = CNN_MIN(hs + s->kernel_h, H);
        hs = CNN_MAX(hs, 0);
        const float *r = x + hs * W;
        int64_t w = 0;
        for (; w + 8 <= W; w += 8) {
            __m256 m = _mm256_loadu_ps(r + w);
            for (int64_t h = 1; h < he - hs; h++) m = _mm256_max_ps(m, _mm256_loadu_ps(r + h * W + w));
            _mm256_storeu_ps(vr + w, m);
        }
        if (w < W) { /* the row's last columns: masked loads, -inf past the row */
            const __m256i ok = lanes8(W - w);
            const __m256 ninf = _mm256_set1_ps(-INFINITY);
            __m256 m = _mm256_maskload_ps(r + w, ok);
            for (int64_t h = 1; h < he - hs; h++) m = _mm256_max_ps(m, _mm256_maskload_ps(r + h * W + w, ok));
            _mm256_storeu_ps(vr + w, _mm256_blendv_ps(ninf, m, _mm256_castsi256_ps(ok)));
        }
        float *yr = y + oh * Q;
        for (int64_t ow0 = 0; ow0 < Q; ow0 += 8) {
            __m256 m;
            if (sw == 1) {
                m = _mm256_loadu_ps(v + ow0);
                for (int64_t c = 1; c < kw; c++) m = _mm256_max_ps(m, _mm256_loadu_ps(v + ow0 + c));
            } else {
                const float *b = v + 2 * ow0;
                const __m256 a0 = _mm256_loadu_ps(b), a1 = _mm256_loadu_ps(b + 8);
                m = _mm256_max_ps(evens8(a0, a1), odds8(a0, a1));
                if (kw == 3) m = _mm256_max_ps(m, evens8(_mm256_loadu_ps(b + 2), _mm256_loadu_ps(b + 10)));
            }
            if (Q - ow0 >= 8) {
                _mm256_storeu_ps(yr + ow0, m);
            } else {
                float t[8];
                _mm256_storeu_ps(t, m);
                for (int64_t j = 0; j < Q - ow0; j++) yr[ow0 + j] = t[j];
            }
        }
    }
    return 1;
}

// x is one (H, W) plane, y and ind one (P, Q) plane; stride_w == 2, kernel_w in {2, 3}
CNN_TARGET_AVX2
void cnn_f32_maxpool_plane_s2__avx2(const cnn_pool_shape *s, int64_t P, int64_t Q, const float *x,
                                    float *y, int32_t *ind) {
    if (ind) maxpool_s2_body__avx2(s, P, Q, x, y, ind, 1);
    else if (!maxpool_separable__avx2(s, P, Q, x, y)) maxpool_s2_body__avx2(s, P, Q, x, y, NULL, 0);
}

/* Column stride 1, AVX2: 8 output columns per vector, border columns included. A vector whose
 * windows all lie inside the row loads plainly; one that reaches into the padding (or past the
 * row's end) loads each window column masked to the row and fills the rest with -inf, which never
 * wins, and starts its indices at the first in-row cell as the reference does. When Q >= 8 the
 * last vector starts at Q - 8, overlapping the one before (those columns are computed twice,
 * identically); a narrower plane (GoogLeNet's 7x7) runs one vector and stores its Q lanes through
 * a buffer (masked stores are slow on AMD cores). Before, every column outside the whole vectors
 * went through the reference, at about 15 ns per output. Zen 3 class AVX2, 2 threads, 3x3/1 pad
 * 1, C harness: 512 x 14 x 14 0.51 -> 0.126 ms, 832 x 7 x 7 0.452 -> 0.081, 192 x 28 x 28 0.379
 * -> 0.204. Without indices (inference) a cell costs a max and a NaN test, as at stride 2: the two
 * builds called in turn 200 times, median of the per-call ratios new / old, GoogLeNet's 3x3/1
 * pools (192 x 28 x 28, 480 x 14 x 14, 832 x 7 x 7, 256 x 28 x 28): 0.72, 0.75, 0.80, 0.78. */
CNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
maxpool_s1_vector__avx2(const cnn_pool_shape *s, int64_t hs, int64_t he, int64_t ow0, int inside, int track,
                        const float *x, __m256 *m, __m256i *mi) {
    const int64_t W = s->W, kw = s->kernel_w, pw = s->pad_w;
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    *m = ninf;
    __m256 nan = _mm256_setzero_ps();
    /* window start column ow - pw, clamped to the row as the reference clamps it */
    const __m256i ws = _mm256_add_epi32(_mm256_set1_epi32((int32_t)(ow0 - pw)), iota);
    if (track)
        *mi = _mm256_add_epi32(_mm256_set1_epi32((int32_t)(hs * W)),
                               inside ? ws : _mm256_max_epi32(ws, _mm256_setzero_si256()));
    /* rows outer, window columns inner: the reference's order, so ties keep the same index */
    for (int64_t h = hs; h < he; h++)
        for (int64_t c = 0; c < kw; c++) {
            const int64_t col = h * W + ow0 + c - pw;
            __m256 v;
            if (inside) {
                v = _mm256_loadu_ps(x + col);
            } else {
                /* lanes whose column ow - pw + c lies in [0, W) */
                const __m256i cols = _mm256_add_epi32(ws, _mm256_set1_epi32((int32_t)c));
                const __m256i ok = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), cols),
                                                       _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)W), cols));
                /* the address may lie before the plane (col < 0): formed as an integer, only in-row
                 * lanes are read */
                const float *p = (const float *)((uintptr_t)x + (uintptr_t)(col * (int64_t)sizeof(float)));
                v = _mm256_blendv_ps(ninf, _mm256_maskload_ps(p, ok), _mm256_castsi256_ps(ok));
            }
            if (track) {
                update8(v, _mm256_add_epi32(_mm256_set1_epi32((int32_t)col), iota), m, mi);
            } else {
                /* max(v, m) keeps a NaN already in m; NaN cells are noted separately */
                *m = _mm256_max_ps(v, *m);
                nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            }
        }
    if (!track) *m = _mm256_blendv_ps(*m, _mm256_set1_ps(NAN), nan);
}

CNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
maxpool_s1_body__avx2(const cnn_pool_shape *s, int64_t P, int64_t Q, const float *x, float *y, int32_t *ind,
                      const int track) {
    const int64_t H = s->H;
    int64_t lo, hi;
    cnn_pool_interior_cols(s, Q, &lo, &hi);
    for (int64_t oh = 0; oh < P; oh++) {
        int64_t hs = oh * s->stride_h - s->pad_h;
        const int64_t he = CNN_MIN(hs + s->kernel_h, H);
        hs = CNN_MAX(hs, 0);
        float *yr = y + oh * Q;
        int32_t *ir = track ? ind + oh * Q : NULL;
        __m256 m;
        __m256i mi = _mm256_setzero_si256();
        if (Q < 8) {
            maxpool_s1_vector__avx2(s, hs, he, 0, 0, track, x, &m, &mi);
            float mb[8];
            int32_t ib[8];
            _mm256_storeu_ps(mb, m);
            _mm256_storeu_si256((__m256i *)(void *)ib, mi);
            for (int64_t j = 0; j < Q; j++) {
                yr[j] = mb[j];
                if (track) ir[j] = ib[j];
            }
            continue;
        }
        for (int64_t ow0 = 0;; ow0 += 8) {
            if (ow0 + 8 > Q) ow0 = Q - 8; /* the last vector overlaps the one before */
            if (ow0 >= lo && ow0 + 8 <= hi) maxpool_s1_vector__avx2(s, hs, he, ow0, 1, track, x, &m, &mi);
            else maxpool_s1_vector__avx2(s, hs, he, ow0, 0, track, x, &m, &mi);
            _mm256_storeu_ps(yr + ow0, m);
            if (track) _mm256_storeu_si256((__m256i *)(void *)(ir + ow0), mi);
            if (ow0 + 8 >= Q) break;
        }
    }
}

// x is one (H, W) plane, y and ind one (P, Q) plane; stride_w == 1
CNN_TARGET_AVX2
void cnn_f32_maxpool_plane_s1__avx2(const cnn_pool_shape *s, int64_t P, int64_t Q, const float *x, float *y,
                                    int32_t *ind) {
    if (ind) maxpool_s1_body__avx2(s, P, Q, x, y, ind, 1);
    else if (!maxpool_separable__avx2(s, P, Q, x, y)) maxpool_s1_body__avx2(s, P, Q, x, y, NULL, 0);
}

#endif
