/* im2col + GEMM convolution, and 1x1 convolution as a plain GEMM. Both valid for every shape they
 * apply to; the column matrix is built one band of output rows at a time, bounded by
 * CNN_CONV_COL_BYTES, so the workspace stays a few MiB whatever the image size. */
#include "conv_internal.h"
#include "../gemm/gemm_internal.h"

#include <string.h>

/* floor(a / b) and ceil(a / b) for b > 0 and any sign of a. */
static inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static inline int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

/* Output columns q in [*lo, *hi) whose tap s reads inside the image: 0 <= q*sw - pw + s*dw < W. */
static inline void valid_q(const conv_geom *g, int64_t s, int64_t *lo, int64_t *hi) {
    const int64_t off = s * g->dw - g->pw;
    /* Stride 1 (the common case) without the divisions: this runs once per column-matrix row. */
    int64_t a = g->sw == 1 ? -off : ceil_div(-off, g->sw);
    int64_t b = g->sw == 1 ? g->W - off : floor_div(g->W - 1 - off, g->sw) + 1;
    if (a < 0) a = 0;
    if (b > g->Q) b = g->Q;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

/* Below this many column elements one thread builds the band: the fork costs more than the copy. */
#define IM2COL_PARALLEL_MIN 32768

/* One column-matrix row for output rows [p0, p0 + rows) of nimg images: image j's part starts at
 * dst + j*ds and holds, for pi in [0, rows), dst[pi*Q + q] = x_c[h*W + q*sw + off] with
 * h = (p0 + pi)*sh - ph + r*dh, for q in [lo, hi) and h inside the image, else 0; x_c is image 0's
 * input channel, images xs floats apart. Rows are short where im2col matters most (Q = 10 in
 * LeNet's conv2, 8 down to 1 in ResNet's late stages at CIFAR size): a memcpy call and two memsets
 * per row, 64-bit divisions per row and a call per image each cost more than the copy (perf on
 * lenet5.conv2.batch64: im2col took 1.5x the GEMM's time before), so the loops run inline over all
 * images: the portable loop is kept from turning into library calls, and AVX-512 moves 16 columns
 * per masked load (zeros in the padding lanes, which are never read) and masked store, at stride 2
 * de-interleaving two loads. Addresses before a row's first float are formed but never read. */
__attribute__((no_builtin("memcpy", "memset")))
static void im2col_rows_generic(const conv_geom *g, const float *x_c, int64_t xs, int64_t nimg, int64_t r,
                                int64_t off, int64_t p0, int64_t rows, int64_t lo, int64_t hi, float *dst,
                                int64_t ds) {
    const int64_t Q = g->Q, H = g->H, W = g->W, sw = g->sw, h0 = p0 * g->sh - g->ph + r * g->dh;
    for (int64_t j = 0; j < nimg; j++) {
        float *CNN_RESTRICT d = dst + j * ds;
        const float *xj = x_c + j * xs;
        for (int64_t pi = 0, h = h0; pi < rows; pi++, h += g->sh, d += Q) {
            if (h < 0 || h >= H) {
                for (int64_t q = 0; q < Q; q++) d[q] = 0.0f;
                continue;
            }
            const float *CNN_RESTRICT src = xj + h * W;
            for (int64_t q = 0; q < lo; q++) d[q] = 0.0f;
            if (sw == 1) {
                for (int64_t q = lo; q < hi; q++) d[q] = src[q + off];
            } else {
                for (int64_t q = lo; q < hi; q++) d[q] = src[q * sw + off];
            }
            for (int64_t q = hi > lo ? hi : lo; q < Q; q++) d[q] = 0.0f;
        }
    }
}

#if CNN_X86
#include <immintrin.h>
static inline __mmask16 lanes(int64_t a, int64_t b) { /* lanes [a, b) of 16, empty if b <= a */
    a = CNN_MAX(a, 0);
    b = CNN_MIN(b, 16);
    return b > a ? (__mmask16)(((1u << b) - 1u) & ~((1u << a) - 1u)) : 0;
}
/* Column stride 1 or 2 (the caller checks). */
CNN_TARGET_AVX512
static void im2col_rows_avx512(const conv_geom *g, const float *x_c, int64_t xs, int64_t nimg, int64_t r,
                               int64_t off, int64_t p0, int64_t rows, int64_t lo, int64_t hi, float *dst,
                               int64_t ds) {
    /* The geometry in locals: the stores below may alias anything, which would reload it per row. */
    const int64_t Q = g->Q, H = g->H, W = g->W, sh = g->sh, sw = g->sw, h0 = p0 * g->sh - g->ph + r * g->dh;
    const __m512 zero = _mm512_setzero_ps();
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int64_t j = 0; j < nimg; j++) {
        float *d = dst + j * ds;
        const float *xj = x_c + j * xs;
        for (int64_t pi = 0, h = h0; pi < rows; pi++, h += sh, d += Q) {
            if (h < 0 || h >= H) {
                for (int64_t q0 = 0; q0 < Q; q0 += 16) _mm512_mask_storeu_ps(d + q0, lanes(0, Q - q0), zero);
                continue;
            }
            /* Column q reads src + q*sw floats; formed as bytes so no pointer before the row is made. */
            const char *src = (const char *)(xj + h * W) + off * (int64_t)sizeof(float);
            for (int64_t q0 = 0; q0 < Q; q0 += 16) {
                __m512 v;
                if (sw == 1) {
                    v = _mm512_maskz_loadu_ps(lanes(lo - q0, hi - q0), src + q0 * (int64_t)sizeof(float));
                } else { /* inputs 2q, q in [lo, hi), are lanes [2(lo-q0), 2(hi-q0)-1) of two loads */
                    const int64_t a = 2 * (lo - q0), b = 2 * (hi - q0) - 1;
                    const char *base = src + 2 * q0 * (int64_t)sizeof(float);
                    const __m512 v0 = _mm512_maskz_loadu_ps(lanes(a, b), base);
                    const __m512 v1 = _mm512_maskz_loadu_ps(lanes(a - 16, b - 16), base + 16 * sizeof(float));
                    v = _mm512_permutex2var_ps(v0, even, v1);
                }
                _mm512_mask_storeu_ps(d + q0, lanes(0, Q - q0), v);
            }
        }
    }
}

/* Small planes (ResNet's 7x7 and 14x14 at 224, 8x8 down to 1x1 at CIFAR size): stride 1 and the
 * input's row pitch equal to the output's (W == Q < 16 with "same" padding). A band's rows * Q
 * outputs of tap (r, s) then read one contiguous run of the input, shifted by the tap: element e
 * reads (h0 + e / Q) * W + off + e % Q, valid where its column and row fall inside the image. The
 * run is copied in whole vectors of 16 under masks, and the masks depend only on the tap: derived
 * once per tap, then reused for every channel and image. Before, each column-matrix row (one
 * channel and tap) ran one masked copy per output row, or derived the masks again per image:
 * resnet.l4's 4,608 rows of 49 floats took 0.13 ms, with 1 thread or 2. Rows of channels
 * [c0, c1), all taps. */
enum { SMALL_MAX_CHUNKS = 16 };
static int small_plane(const conv_geom *g, int64_t rows) {
    return g->sh == 1 && g->sw == 1 && g->W == g->Q && g->Q < 16 && rows * g->Q <= 16 * SMALL_MAX_CHUNKS;
}

CNN_TARGET_AVX512
static void im2col_small_avx512(const conv_geom *g, const float *x, int64_t xs, int64_t nimg, int64_t c0,
                                int64_t c1, int64_t p0, int64_t rows, float *col, int64_t ld, int64_t ds) {
    const int64_t Q = g->Q, W = g->W, H = g->H, HW = g->H * g->W, n = rows * Q, chunks = (n + 15) / 16;
    for (int64_t r = 0; r < g->R; r++)
        for (int64_t s = 0; s < g->S; s++) {
            const int64_t off = s * g->dw - g->pw, h0 = p0 - g->ph + r * g->dh;
            int64_t lo, hi;
            valid_q(g, s, &lo, &hi);
            __mmask16 load[SMALL_MAX_CHUNKS], store[SMALL_MAX_CHUNKS];
            for (int64_t ch = 0; ch < chunks; ch++) {
                unsigned m = 0;
                for (int l = 0; l < 16; l++) {
                    const int64_t e = ch * 16 + l, pi = e / Q, q = e % Q;
                    if (e < n && q >= lo && q < hi && h0 + pi >= 0 && h0 + pi < H) m |= 1u << l;
                }
                load[ch] = (__mmask16)m;
                store[ch] = lanes(0, n - ch * 16);
            }
            for (int64_t c = c0; c < c1; c++) {
                float *row = col + ((c * g->R + r) * g->S + s) * ld;
                for (int64_t j = 0; j < nimg; j++) {
                    float *d = row + j * ds;
                    /* As bytes from the channel's plane: no pointer before it is formed. */
                    const char *src = (const char *)(x + j * xs + c * HW) + (h0 * W + off) * (int64_t)sizeof(float);
                    for (int64_t ch = 0; ch < chunks; ch++)
                        _mm512_mask_storeu_ps(d + ch * 16, store[ch],
                                              _mm512_maskz_loadu_ps(load[ch], src + ch * 16 * (int64_t)sizeof(float)));
                }
            }
        }
}
#endif

/* Row i = (c*R + r)*S + s of the column matrix: which input channel and tap it reads, and the
 * output columns [lo, hi) that fall inside the image. Derived once per row (it takes divisions). */
typedef struct col_row {
    int64_t c, r, off, lo, hi;
} col_row;

static inline col_row row_of(const conv_geom *g, int64_t i) {
    col_row k;
    const int64_t s = i % g->S;
    k.c = i / (g->R * g->S);
    k.r = (i / g->S) % g->R;
    k.off = s * g->dw - g->pw;
    valid_q(g, s, &k.lo, &k.hi);
    return k;
}

/* Row k of the column matrix for output rows [p0, p0 + rows) of nimg images: image j's rows*Q
 * floats at dst + j*ds. x is image 0's group (Cg,H,W), images xs floats apart. */
static void im2col_fill(const conv_geom *g, const float *x, int64_t xs, int64_t nimg, const col_row *k,
                        int64_t p0, int64_t rows, float *dst, int64_t ds, int avx512) {
    const float *x_c = x + k->c * g->H * g->W;
#if CNN_X86
    if (avx512 && (g->sw == 1 || g->sw == 2)) {
        im2col_rows_avx512(g, x_c, xs, nimg, k->r, k->off, p0, rows, k->lo, k->hi, dst, ds);
        return;
    }
#endif
    (void)avx512;
    im2col_rows_generic(g, x_c, xs, nimg, k->r, k->off, p0, rows, k->lo, k->hi, dst, ds);
}

/* The adjoint of im2col_fill summed over the R*S rows of input channel c: dx (Cg,H,W) += the
 * contributions of col rows (c*R + r)*S + s, each with leading dimension ld. */
#if CNN_X86
/* col2im of one input channel at stride 1, AVX-512, gathering instead of scattering: each 16-column
 * strip of an input row h sums, in a register, the column-matrix entries of every tap (r, s) that
 * reads it (output row p = h + ph - r*dh, column q = w + pw - s*dw), then is stored once. The
 * scattering loop adds each tap's row into dx in turn, and with rows as short as LeNet's (Q = 10)
 * every masked add re-reads what the previous tap has just stored: measured 14% of a LeNet-5
 * training step, store-forwarding stalls included. `col` is the channel's first column-matrix row
 * (tap (0, 0)) with leading dimension ld, holding output rows [p0, p0 + rows). accumulate = 0
 * writes every float of the plane (no zeroing needed); 1 adds to it, touching only the rows the band
 * reaches. */
CNN_TARGET_AVX512
static void col2im_plane_avx512(const conv_geom *g, const float *col, int64_t ld, int64_t p0, int64_t rows,
                                float *dx_c, int accumulate) {
    const int64_t H = g->H, W = g->W, Q = g->Q, R = g->R, S = g->S, ph = g->ph, pw = g->pw, dh = g->dh,
                  dw = g->dw;
    int64_t h_lo = 0, h_hi = H;
    if (accumulate) { /* rows p in the band reach h = p - ph + r*dh */
        h_lo = CNN_MAX(0, p0 - ph);
        h_hi = CNN_MIN(H, p0 + rows - 1 - ph + (R - 1) * dh + 1);
    }
    for (int64_t h = h_lo; h < h_hi; h++) {
        float *drow = dx_c + h * W;
        for (int64_t w0 = 0; w0 < W; w0 += 16) {
            const __mmask16 in_row = lanes(0, W - w0);
            __m512 acc = accumulate ? _mm512_maskz_loadu_ps(in_row, drow + w0) : _mm512_setzero_ps();
            for (int64_t r = 0; r < R; r++) {
                const int64_t p = h + ph - r * dh;
                if (p < p0 || p >= p0 + rows) continue;
                for (int64_t s = 0; s < S; s++) {
                    const int64_t off = s * dw - pw; /* column w reads q = w - off */
                    const __mmask16 m = in_row & lanes(off - w0, Q + off - w0);
                    if (!m) continue;
                    const char *src = (const char *)(col + (r * S + s) * ld + (p - p0) * Q) +
                                      (w0 - off) * (int64_t)sizeof(float);
                    acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, src));
                }
            }
            _mm512_mask_storeu_ps(drow + w0, in_row, acc);
        }
    }
}
#endif

/* dx (Cg,H,W): channel c += (accumulate) or = the col2im of its column-matrix rows. */
static void col2im_channel(const conv_geom *g, const float *col, int64_t ld, int64_t c, int64_t p0,
                           int64_t rows, float *dx, int avx512, int accumulate) {
    float *dx_c = dx + c * g->H * g->W;
#if CNN_X86
    if (avx512 && g->sh == 1 && g->sw == 1) {
        col2im_plane_avx512(g, col + c * g->R * g->S * ld, ld, p0, rows, dx_c, accumulate);
        return;
    }
#endif
    (void)avx512;
    if (!accumulate) memset(dx_c, 0, (size_t)(g->H * g->W) * sizeof(float));
    for (int64_t r = 0; r < g->R; r++)
        for (int64_t s = 0; s < g->S; s++) {
            const int64_t i = (c * g->R + r) * g->S + s;
            int64_t lo, hi;
            valid_q(g, s, &lo, &hi);
            const int64_t off = s * g->dw - g->pw;
            for (int64_t pi = 0; pi < rows; pi++) {
                const int64_t h = (p0 + pi) * g->sh - g->ph + r * g->dh;
                if (h < 0 || h >= g->H) continue;
                const float *CNN_RESTRICT src = col + i * ld + pi * g->Q;
                float *CNN_RESTRICT dst = dx_c + h * g->W;
                if (g->sw == 1) {
                    for (int64_t q = lo; q < hi; q++) dst[q + off] += src[q];
                } else {
                    for (int64_t q = lo; q < hi; q++) dst[q * g->sw + off] += src[q];
                }
            }
        }
}

/* Strided columns (column stride sw >= 2: the 7x7/2 stems of ResNet and ZFNet, AlexNet's 11x11/4,
 * ResNet's 3x3/2 downsampling). Column q of tap s reads input column q*sw + e with e = s*dw - pw,
 * that is sw*(q + o) + pi with o = floor(e / sw) and pi = e - o*sw: element q + o of the input row's
 * pi-th de-interleaved part (columns pi, pi + sw, pi + 2*sw, ...). Each input row is therefore
 * de-interleaved once, with zeros where a column falls in the padding, and every column-matrix
 * segment that reads it (each tap s of each kernel row r that lands on it) becomes a plain copy
 * of Q contiguous floats. Before, every segment gathered its own columns (two masked loads and a
 * permute per 16 on AVX-512, a scalar loop elsewhere). C harness, 2 threads, minimum of 30 calls,
 * alternated runs (ninth session): the ResNet stem's column matrix 0.194 -> 0.141 ms and the whole
 * layer 1.262-1.270 -> 1.212-1.218 ms; AlexNet's 11x11/4 0.804-0.812 -> 0.758-0.768 ms. A 3x3/2
 * layer makes only 4.5 copies per input row, of 28 floats or fewer, and lost (resnet.l2's 3x3/2
 * 0.60 -> 0.67 ms, CIFAR batch 64 12.5 -> 14.6 ms), so kernels narrower than 5 taps keep the
 * gathering path at stride 2. One item per (image, channel, input row), over the team; each
 * column-matrix segment is written by exactly one item. The de-interleaved row lives on the stack:
 * rows longer than STRIDED_ROW_MAX floats in all keep the gathering path. */
#define STRIDED_ROW_MAX 4096

/* Strides past this keep the gathering path (the de-interleaving bounds are a fixed array). */
#define DEINT_SW_MAX 16

/* Index of the first de-interleaved element (*omin, may be negative) and elements per part; 0
 * when the parts would exceed STRIDED_ROW_MAX. strided_layout adds the layers it serves. */
static int strided_extent(const conv_geom *g, int64_t *omin, int64_t *len) {
    *omin = floor_div(-g->pw, g->sw);
    *len = g->Q + floor_div((g->S - 1) * g->dw - g->pw, g->sw) - *omin;
    return g->sw <= DEINT_SW_MAX && g->sw * *len <= STRIDED_ROW_MAX;
}

static int strided_layout(const conv_geom *g, int64_t *omin, int64_t *len) {
    if (g->sw < 2 || (g->sw == 2 && g->S < 5)) return 0;
    return strided_extent(g, omin, len);
}

static int implicit_sizes(const conv_geom *g, size_t *tbytes, size_t *dbytes);

#if CNN_X86
/* d[i] = src[2*i] for i < n, two loads and a permute per 16 (lanes past 2n - 1 are not read). */
CNN_TARGET_AVX512
static void deinterleave2_avx512(const float *src, int64_t n, float *d) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int64_t i = 0; i < n; i += 16) {
        const int64_t m = 2 * CNN_MIN(16, n - i) - 1; /* floats read from src + 2i */
        const __m512 v0 = _mm512_maskz_loadu_ps(lanes(0, m), src + 2 * i);
        const __m512 v1 = _mm512_maskz_loadu_ps(lanes(0, m - 16), src + 2 * i + 16);
        _mm512_mask_storeu_ps(d + i, lanes(0, n - i), _mm512_permutex2var_ps(v0, even, v1));
    }
}
#endif

#if CNN_X86
/* d[i] = src[2*i] for i < n: a shuffle and a cross-lane permute per 8 outputs, while the 16 floats
 * loaded stay inside the 2n - 1 the row holds (src[2n - 1] may be past the tensor); the rest one
 * by one. With the bounds derived once per layer instead of per row (six divisions), the
 * de-interleaving of ResNet-50's 512 -> 512 3x3/2 layer went from 12 % to 3 % of its samples
 * (Zen 3 class, 2 threads); C harness, builds called in turn 60 times, median per-call ratio:
 * 512 at 14x14 0.98, 256 at 28x28 0.97, 128 at 56x56 1.00. */
CNN_TARGET_AVX2
static void deinterleave2_avx2(const float *src, int64_t n, float *d) {
    int64_t i = 0;
    for (; i + 8 < n; i += 8) {
        const __m256 v = _mm256_shuffle_ps(_mm256_loadu_ps(src + 2 * i), _mm256_loadu_ps(src + 2 * i + 8), 0x88);
        _mm256_storeu_ps(d + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8)));
    }
    for (; i < n; i++) d[i] = src[2 * i];
}
#endif

/* Where each part of a de-interleaved row holds input columns: part pi has them at [ab[2*pi],
 * ab[2*pi + 1]) and zeros around. The same for every row of a layer, so derived once. */
static void deint_bounds(int64_t W, int64_t sw, int64_t omin, int64_t len, int64_t ab[2 * DEINT_SW_MAX]) {
    for (int64_t pi = 0; pi < sw; pi++) {
        const int64_t a = CNN_MIN(CNN_MAX(ceil_div(-pi, sw) - omin, 0), len);
        ab[2 * pi] = a;
        ab[2 * pi + 1] = CNN_MIN(CNN_MAX(floor_div(W - 1 - pi, sw) + 1 - omin, a), len);
    }
}

/* The sw de-interleaved parts of one input row (NULL: a row of the padding, all zeros), len floats
 * each: part[pi*len + i] = src[(i + omin)*sw + pi] where that column is inside the row, else 0;
 * ab from deint_bounds. */
static void deinterleave_row(const float *src, int64_t sw, int64_t omin, int64_t len, const int64_t *ab,
                             float *part, cnn_isa isa) {
    if (!src) {
        memset(part, 0, (size_t)(sw * len) * sizeof(float));
        return;
    }
    for (int64_t pi = 0; pi < sw; pi++) {
        float *d = part + pi * len;
        const int64_t a = ab[2 * pi], b = ab[2 * pi + 1];
        for (int64_t i = 0; i < a; i++) d[i] = 0.0f;
#if CNN_X86
        if (isa == CNN_ISA_AVX512 && sw == 2 && b > a) deinterleave2_avx512(src + (a + omin) * 2 + pi, b - a, d + a);
        else if (isa == CNN_ISA_AVX2 && sw == 2 && b > a) deinterleave2_avx2(src + (a + omin) * 2 + pi, b - a, d + a);
        else
#endif
            for (int64_t i = a; i < b; i++) d[i] = src[(i + omin) * sw + pi];
        for (int64_t i = b; i < len; i++) d[i] = 0.0f;
    }
    (void)isa;
}

static void im2col_strided(const conv_geom *g, const float *x, int64_t xs, int64_t nimg, int64_t p0, int64_t rows,
                           float *col, int64_t ld, int64_t ds, int64_t omin, int64_t len) {
    const int64_t sh = g->sh, sw = g->sw, Q = g->Q, W = g->W, H = g->H, Cg = g->Cg;
    const int64_t h_first = p0 * sh - g->ph, h_last = (p0 + rows - 1) * sh - g->ph + (g->R - 1) * g->dh;
    const int64_t nh = h_last - h_first + 1, items = nimg * Cg * nh;
    const int nt = Cg * g->R * g->S * ld >= IM2COL_PARALLEL_MIN ? cnn_threads_for(items) : 1;
    const cnn_isa isa = cnn_isa_active();
    int64_t ab[2 * DEINT_SW_MAX];
    deint_bounds(W, sw, omin, len, ab);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t t = 0; t < items; t++) {
        const int64_t j = t / (Cg * nh), c = t / nh % Cg, h = h_first + t % nh;
        float part[STRIDED_ROW_MAX];
        deinterleave_row(h >= 0 && h < H ? x + j * xs + (c * H + h) * W : NULL, sw, omin, len, ab, part, isa);
        for (int64_t r = 0; r < g->R; r++) {
            const int64_t hp = h + g->ph - r * g->dh; /* = p * sh for the output row p reading h */
            if (hp < p0 * sh || hp % sh) continue;
            const int64_t p = hp / sh;
            if (p >= p0 + rows) continue;
            for (int64_t s = 0; s < g->S; s++) {
                const int64_t e = s * g->dw - g->pw, o = floor_div(e, sw), pi = e - o * sw;
                memcpy(col + ((c * g->R + r) * g->S + s) * ld + j * ds + (p - p0) * Q, part + pi * len + (o - omin),
                       (size_t)Q * sizeof(float));
            }
        }
    }
}

/* Column-matrix rows for output rows [p0, p0 + rows) of nimg images (image j's part of each row
 * at + j*ds, leading dimension ld), every row, over the team: small planes on AVX-512 by channels
 * with the masks of each tap derived once, else one column-matrix row per item (all images in it,
 * its indices derived once). */
static void im2col_all(const conv_geom *g, const float *x, int64_t xs, int64_t nimg, int64_t p0, int64_t rows,
                       float *col, int64_t ld, int64_t ds) {
    const int64_t crs = g->Cg * g->R * g->S;
    const int avx512 = cnn_isa_active() == CNN_ISA_AVX512;
    int64_t omin, len;
    if (strided_layout(g, &omin, &len)) {
        im2col_strided(g, x, xs, nimg, p0, rows, col, ld, ds, omin, len);
        return;
    }
#if CNN_X86
    if (avx512 && small_plane(g, rows)) {
        const int nt = crs * ld >= IM2COL_PARALLEL_MIN ? cnn_threads_for(g->Cg) : 1;
        CNN_UNUSED(nt);
#if CNN_OMP
        CNN_PRAGMA(omp parallel num_threads(nt) if (nt > 1))
#endif
        {
            const int64_t t = CNN_OMP_NUM_THREADS(), id = CNN_OMP_THREAD_NUM();
            im2col_small_avx512(g, x, xs, nimg, g->Cg * id / t, g->Cg * (id + 1) / t, p0, rows, col, ld, ds);
        }
        return;
    }
#endif
    const int nt = crs * ld >= IM2COL_PARALLEL_MIN ? cnn_threads_for(crs) : 1;
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < crs; i++) {
        const col_row k = row_of(g, i);
        im2col_fill(g, x, xs, nimg, &k, p0, rows, col + i * ld, ds, avx512);
    }
}

// x is (Cg,H,W) (one image, one group), col is (Cg*R*S, rows*Q)
void cnn_conv_im2col(const conv_geom *g, const float *x, int64_t p0, int64_t rows, float *col) {
    im2col_all(g, x, 0, 1, p0, rows, col, rows * g->Q, 0);
}

// col is (Cg*R*S, rows*Q), dx is (Cg,H,W) +=
void cnn_conv_col2im(const conv_geom *g, const float *col, int64_t p0, int64_t rows, float *dx) {
    const int64_t ld = rows * g->Q;
    const int nt = g->Cg * g->R * g->S * ld >= IM2COL_PARALLEL_MIN ? cnn_threads_for(g->Cg) : 1;
    const int avx512 = cnn_isa_active() == CNN_ISA_AVX512;
    /* Parallel over input channels: each channel's plane is written by one thread only. */
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t c = 0; c < g->Cg; c++) col2im_channel(g, col, ld, c, p0, rows, dx, avx512, 1);
}

/* Images per column matrix. A layer with a small output plane (ResNet's later stages at CIFAR size:
 * 8x8 down to 1x1) would otherwise run one GEMM per image with only P*Q = 64..1 columns, where
 * packing the weights costs as much as the product and the microkernel runs on edge tiles (a
 * ResNet-18 training step at 32x32, batch 64, took 408 ms that way, 3.9x PyTorch's). Below
 * CONV_IMAGE_COLS output pixels per image, images share one column matrix (image i in columns
 * [i*PQ, (i+1)*PQ)): as many as keep it within CONV_COL_TARGET_BYTES (the 1 MiB L2 of this
 * machine's cores: the GEMM reads it back right away), but at least CONV_MIN_COLS columns for the
 * GEMM's sake and at most CONV_MAX_COLS; and within CNN_CONV_COL_BYTES for both the column matrix
 * and the (Kg x columns) product. */
#define CONV_IMAGE_COLS 1024
#define CONV_COL_TARGET_BYTES ((int64_t)1 << 20)
#define CONV_MIN_COLS 256
#define CONV_MAX_COLS 2048
int64_t cnn_conv_batch_images(const conv_geom *g) {
    const int64_t PQ = g->P * g->Q;
    if (g->N < 2 || PQ >= CONV_IMAGE_COLS) return 1;
    const int64_t crs = g->Cg * g->R * g->S, rows = CNN_MAX(crs, g->Kg);
    int64_t nb = CONV_COL_TARGET_BYTES / (int64_t)sizeof(float) / (crs * PQ);
    nb = CNN_MAX(nb, (CONV_MIN_COLS + PQ - 1) / PQ);
    nb = CNN_MIN(nb, (CONV_MAX_COLS + PQ - 1) / PQ);
    nb = CNN_MIN(nb, (int64_t)(CNN_CONV_COL_BYTES / sizeof(float)) / (rows * PQ));
    nb = CNN_MIN(nb, g->N);
    return nb < 1 ? 1 : nb;
}

cnn_status cnn_conv_image_buffers(const conv_geom *g, int64_t nb, float **col, float **tmp) {
    const int64_t crs = g->Cg * g->R * g->S, cols = nb * g->P * g->Q;
    *col = (float *)cnn_workspace(CNN_CONV_SLOT_COL, (size_t)(crs * cols) * sizeof(float));
    *tmp = (float *)cnn_workspace(CNN_CONV_SLOT_TMP, (size_t)(g->Kg * cols) * sizeof(float));
    return *col && *tmp ? CNN_OK : CNN_ERR_OUT_OF_MEMORY;
}

// x is image 0's group (Cg,H,W), images xs floats apart; col is (Cg*R*S, nimg*P*Q)
void cnn_conv_im2col_images(const conv_geom *g, const float *x, int64_t xs, int64_t nimg, float *col) {
    const int64_t PQ = g->P * g->Q;
    im2col_all(g, x, xs, nimg, 0, g->P, col, nimg * PQ, PQ);
}

// col is (Cg*R*S, nimg*P*Q); dx is image 0's group (Cg,H,W), images dxs floats apart: written
void cnn_conv_col2im_images(const conv_geom *g, const float *col, int64_t nimg, float *dx, int64_t dxs) {
    const int64_t PQ = g->P * g->Q, ld = nimg * PQ, items = nimg * g->Cg;
    const int nt = g->Cg * g->R * g->S * ld >= IM2COL_PARALLEL_MIN ? cnn_threads_for(items) : 1;
    const int avx512 = cnn_isa_active() == CNN_ISA_AVX512;
    /* One (image, channel) plane per item: each plane is written by one thread only. */
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t t = 0; t < items; t++) {
        const int64_t img = t / g->Cg, c = t % g->Cg;
        col2im_channel(g, col + img * PQ, ld, c, 0, g->P, dx + img * dxs, avx512, 0);
    }
}

// y is (N,K,P,Q), m is (Kg, nimg*P*Q): m = the rows of group grp of images n0..n0+nimg-1
void cnn_conv_gather_images(const conv_geom *g, int64_t n0, int64_t nimg, int64_t grp, const float *y,
                            float *m) {
    const int64_t PQ = g->P * g->Q, ld = nimg * PQ, items = nimg * g->Kg;
    const int nt = items * PQ >= IM2COL_PARALLEL_MIN ? cnn_threads_for(items) : 1;
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t t = 0; t < items; t++) {
        const int64_t img = t / g->Kg, k = t % g->Kg;
        memcpy(m + k * ld + img * PQ, y + ((n0 + img) * g->K + grp * g->Kg + k) * PQ, (size_t)PQ * sizeof(float));
    }
}

/* y rows of images n0..n0+nimg-1, group grp = relu?(m + bias + residual), m as above. */
static void scatter_epilogue(const conv_geom *g, const float *m, int64_t n0, int64_t nimg, int64_t grp,
                             const float *bias, const float *residual, int relu, float *y) {
    const int64_t PQ = g->P * g->Q, ld = nimg * PQ, items = nimg * g->Kg;
    const int nt = items * PQ >= IM2COL_PARALLEL_MIN ? cnn_threads_for(items) : 1;
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t t = 0; t < items; t++) {
        const int64_t img = t / g->Kg, k = t % g->Kg;
        const int64_t yoff = ((n0 + img) * g->K + grp * g->Kg + k) * PQ;
        const float *CNN_RESTRICT src = m + k * ld + img * PQ;
        const float *CNN_RESTRICT res = residual ? residual + yoff : NULL;
        float *CNN_RESTRICT dst = y + yoff;
        const float b = bias ? bias[grp * g->Kg + k] : 0.0f;
        for (int64_t i = 0; i < PQ; i++) {
            float v = src[i] + b;
            if (res) v += res[i];
            dst[i] = relu && v < 0.0f ? 0.0f : v;
        }
    }
}

/* [*lo, *hi): the taps along one axis that read inside [0, extent) for some output position
 * o in [0, out): index o*stride - pad + tap*dil. */
static void used_taps(int64_t taps, int64_t out, int64_t extent, int64_t stride, int64_t pad, int64_t dil,
                      int64_t *lo, int64_t *hi) {
    *lo = taps;
    *hi = 0;
    for (int64_t k = 0; k < taps; k++)
        for (int64_t o = 0; o < out; o++) {
            const int64_t i = o * stride - pad + k * dil;
            if (i >= 0 && i < extent) {
                if (k < *lo) *lo = k;
                *hi = k + 1;
                break;
            }
        }
}

int cnn_conv_trim_taps(const conv_geom *g, conv_geom *t, int64_t *r0, int64_t *s0) {
    int64_t rlo, rhi, slo, shi;
    used_taps(g->R, g->P, g->H, g->sh, g->ph, g->dh, &rlo, &rhi);
    used_taps(g->S, g->Q, g->W, g->sw, g->pw, g->dw, &slo, &shi);
    if (rhi <= rlo || shi <= slo) return 0;                       /* no tap reads the image */
    if (rhi - rlo == g->R && shi - slo == g->S) return 0;         /* nothing to drop */
    if (g->ph - rlo * g->dh < 0 || g->pw - slo * g->dw < 0) return 0;
    *t = *g;
    t->R = rhi - rlo;
    t->S = shi - slo;
    t->ph = g->ph - rlo * g->dh;
    t->pw = g->pw - slo * g->dw;
    *r0 = rlo;
    *s0 = slo;
    return 1;
}

void cnn_conv_trim_weights(const conv_geom *g, const conv_geom *t, int64_t r0, int64_t s0, const float *w,
                           float *wt) {
    const int64_t planes = g->K * g->Cg, RS = g->R * g->S, tRS = t->R * t->S;
    const int nt = planes * RS >= IM2COL_PARALLEL_MIN ? cnn_threads_for(planes) : 1;
    if (tRS == 1) { /* one tap left (a 1x1 plane): a strided gather */
        const float *CNN_RESTRICT src = w + r0 * g->S + s0;
        CNN_OMP_PARALLEL_FOR(nt)
        for (int64_t i = 0; i < planes; i++) wt[i] = src[i * RS];
        return;
    }
    /* The window's taps as offsets within a plane, so each plane is a short gather (indexing
     * the window row by row cost 1.7 ms for ResNet-18's 256 -> 512 3x3/2 at 2x2: 4.7 MB of
     * weights, 131,072 planes of 4 taps). */
    int64_t off[CONV_TRIM_MAX_TAPS];
    if (tRS > CONV_TRIM_MAX_TAPS) {
        CNN_OMP_PARALLEL_FOR(nt)
        for (int64_t i = 0; i < planes; i++)
            for (int64_t r = 0; r < t->R; r++)
                for (int64_t s = 0; s < t->S; s++)
                    wt[(i * t->R + r) * t->S + s] = w[(i * g->R + r0 + r) * g->S + s0 + s];
        return;
    }
    for (int64_t r = 0; r < t->R; r++)
        for (int64_t s = 0; s < t->S; s++) off[r * t->S + s] = (r0 + r) * g->S + s0 + s;
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < planes; i++) {
        const float *CNN_RESTRICT src = w + i * RS;
        float *CNN_RESTRICT dst = wt + i * tRS;
        for (int64_t j = 0; j < tRS; j++) dst[j] = src[off[j]];
    }
}

/* The GEMM's left operand as raw weights: as given, or — when the taps were trimmed — the window
 * gathered from the full kernel, only once it is needed: a plan's packed panels already hold the
 * trimmed weights, so with them the gather runs only after an ISA switch. */
typedef struct conv_weights {
    const float *w;        /* (K, Cg, R, S) of the geometry in use; NULL until gathered */
    const conv_geom *full; /* trimming: the full geometry and kernel, and the window's corner */
    const float *w_full;
    int64_t r0, s0;
} conv_weights;

/* cw's raw weights for geometry g (gathering into slot TRIM_W if not yet done); NULL: out of memory. */
static const float *raw_weights(const conv_geom *g, conv_weights *cw) {
    if (!cw->w) {
        float *wt = (float *)cnn_workspace(CNN_CONV_SLOT_TRIM_W, (size_t)(g->K * g->Cg * g->R * g->S) * sizeof(float));
        if (!wt) return NULL;
        cnn_conv_trim_weights(cw->full, g, cw->r0, cw->s0, cw->w_full, wt);
        cw->w = wt;
    }
    return cw->w;
}

/* The geometry to run (trimmed into *t when trimming applies, else g) and its weights (gathered
 * lazily in that case). */
static const conv_geom *trimmed(const conv_geom *g, const float *w, conv_geom *t, conv_weights *cw) {
    *cw = (conv_weights){.w = w, .full = g, .w_full = w};
    if (!cnn_conv_trim_taps(g, t, &cw->r0, &cw->s0)) return g;
    cw->w = NULL;
    return t;
}

/* The packed panels are those of the trimmed weights when trimming applies (forward uses them so). */
size_t cnn_conv_gemm_packed_stride(const conv_geom *g) {
    conv_geom t;
    int64_t r0, s0;
    if (cnn_conv_trim_taps(g, &t, &r0, &s0)) g = &t;
    const size_t bytes = cnn_sgemm_packed_a_size((size_t)g->Kg, (size_t)(g->Cg * g->R * g->S));
    return (bytes + 63) & ~(size_t)63;
}

cnn_status cnn_conv_gemm_pack(const conv_geom *g, const float *w, void *packed) {
    conv_geom t;
    conv_weights cw;
    g = trimmed(g, w, &t, &cw);
    if (!(w = raw_weights(g, &cw))) return CNN_ERR_OUT_OF_MEMORY;
    const int64_t crs = g->Cg * g->R * g->S;
    const size_t stride = cnn_conv_gemm_packed_stride(g);
    for (int64_t grp = 0; grp < g->G; grp++) {
        cnn_status st = cnn_sgemm_pack_a(CNN_NO_TRANS, (size_t)g->Kg, (size_t)crs, w + grp * g->Kg * crs,
                                         (size_t)crs, (char *)packed + (size_t)grp * stride);
        if (st != CNN_OK) return st;
    }
    return CNN_OK;
}

/* The fused epilogue of group grp's output rows at y + yoff (residual rows ld floats apart). */
static cnn_epilogue group_epilogue(const conv_geom *g, int64_t grp, const float *bias, const float *residual,
                                   int64_t yoff, int64_t ld, int relu) {
    const cnn_epilogue ep = {
        .bias = bias ? bias + grp * g->Kg : NULL,
        .residual = residual ? residual + yoff : NULL,
        .residual_ld = (size_t)ld,
        .relu = relu,
    };
    return ep;
}

/* y (Kg x n, ldy) = W_g (Kg x crs) * col (crs x n, ldb), then the epilogue: from the plan's packed
 * panels when they match the active ISA, else from the raw weights. */
static cnn_status weights_times(const conv_geom *g, conv_weights *cw, const void *packed, int64_t grp,
                                int64_t n, const float *b, size_t ldb, float *y, size_t ldy,
                                const cnn_epilogue *ep) {
    const int64_t crs = g->Cg * g->R * g->S;
    if (packed) {
        const void *pg = (const char *)packed + (size_t)grp * cnn_conv_gemm_packed_stride(g);
        cnn_status st = cnn_sgemm_packed_a(pg, CNN_NO_TRANS, (size_t)g->Kg, (size_t)n, (size_t)crs, 1.0f,
                                           b, ldb, 0.0f, y, ldy, ep);
        if (st != CNN_ERR_INVALID_ARGUMENT) return st; /* INVALID: packed for another ISA */
    }
    const float *w = raw_weights(g, cw);
    if (!w) return CNN_ERR_OUT_OF_MEMORY;
    return cnn_sgemm(CNN_NO_TRANS, CNN_NO_TRANS, (size_t)g->Kg, (size_t)n, (size_t)crs, 1.0f,
                     w + grp * g->Kg * crs, (size_t)crs, b, ldb, 0.0f, y, ldy, ep);
}

/* Per-thread bands. With small weights (64 output channels of a 3x3 over 64 inputs: 144 KiB) and
 * a large plane (vgg16.conv1_2's 224 x 224), the shared band (cnn_conv_im2col_forward) is built
 * by both threads and then split between them by columns: 8 MiB of columns written out to L3 and
 * read back, partly by the other core, B rows 14 KiB apart. Here each thread instead takes whole bands of at most
 * THREAD_BAND_BYTES of columns (three 224-wide rows of conv1_2, 672 columns = 14 microkernel
 * tiles), builds them in its own workspace and runs a single-thread GEMM on them right away.
 * Measured on conv1_2 (C harness, 2 threads of the development machine, minimum of 20 calls):
 * 22.3-22.4 -> 19.6-20.0 ms; with 0.5 / 1 / 2 / 4 MiB bands 20.3 / 19.5-20.1 / 19.9-20.5 /
 * 20.0-20.7 ms. In one stretch where the shared path read 48-51 ms (a neighbour on the L3, it
 * seems), this one held 19.6-20.1 ms. Used only where the weights are at most
 * THREAD_BAND_WEIGHT_BYTES (each thread streams them once per band) and there are at least
 * THREAD_BAND_ITEMS bands per thread: the 7x7/2 stem in 8 bands of 15 rows measured 1.35 against
 * 1.29-1.32 ms shared, so the stem (5 bands of 23 rows at 1.5 MiB) keeps the shared band. */
#define THREAD_BAND_BYTES ((int64_t)3 << 19)
#define THREAD_BAND_WEIGHT_BYTES ((int64_t)384 << 10)
#define THREAD_BAND_ITEMS 4
/* A column matrix of fewer than SHORT_COL_ROWS rows at stride 1 (a first layer on a colour or
 * grey image: 27 rows for a 3x3 kernel over 3 channels) is built for so few multiply-adds per
 * column that writing it out and reading it back sets the time. Its bands are kept to
 * SHORT_BAND_BYTES, to stay in the core's L2 between im2col and the GEMM, on 1 thread too, and
 * their count is rounded up to a multiple of the threads where that evens their rows out
 * (conv1_1's 11 bands of 21 rows, 126 : 98 rows per thread, become 12 of 19, 114 : 110).
 * vgg16.conv1_1 (3 -> 64, 224 x 224: one 5.3 MiB band before), Zen 4 class, C harness, builds
 * called in turn 40-60 times, median per-call ratio new / old (old / new with the order
 * reversed): 2 threads 0.84 (1.09), 1 thread 0.84 (1.23); the rounding alone 0.95 (1.03); bands
 * of 256 KiB 0.86 (1.09), 384 KiB within 3 % of 512, 768 KiB (8 bands of 31 rows, 124 : 100 rows
 * per thread) 1.15 against 512. The AVX2 variant on the same host 0.76 (1.12), the portable one
 * 0.98 (1.04). Strided layers keep the rule above: a plan may run their columns implicitly
 * (below), and a one-shot call, which builds them, multiplies the same GEMM tiles only on the
 * shared band (the one-shot and planned results are the same bit for bit). */
#define SHORT_COL_ROWS 64
#define SHORT_BAND_BYTES ((int64_t)512 << 10)

/* Output rows per thread band, or 0 when the shared band is used. */
static int64_t thread_band_rows(const conv_geom *g, int threads) {
    const int64_t crs = g->Cg * g->R * g->S;
    const int short_col = crs < SHORT_COL_ROWS && g->sh == 1 && g->sw == 1;
    if ((threads < 2 && !short_col) || g->Kg * crs * (int64_t)sizeof(float) > THREAD_BAND_WEIGHT_BYTES) return 0;
    int64_t rows = (short_col ? SHORT_BAND_BYTES : THREAD_BAND_BYTES) / ((int64_t)sizeof(float) * crs * g->Q);
    rows = CNN_MAX(1, CNN_MIN(rows, g->P));
    if (short_col) {
        int64_t nb = (g->P + rows - 1) / rows;
        while ((g->N * g->G * nb) % threads != 0 && nb < g->P) nb++;
        rows = (g->P + nb - 1) / nb;
    }
    const int64_t items = g->N * g->G * ((g->P + rows - 1) / rows);
    return items >= (int64_t)THREAD_BAND_ITEMS * threads ? rows : 0;
}

static cnn_status im2col_forward_thread_bands(const conv_geom *g, int64_t band, int threads, const float *x,
                                              const conv_weights *cw, const void *packed, const float *bias,
                                              const float *residual, int relu, float *y) {
    const int64_t crs = g->Cg * g->R * g->S, PQ = g->P * g->Q, nbands = (g->P + band - 1) / band;
    const int64_t items = g->N * g->G * nbands;
    cnn_status status = CNN_OK;
    CNN_UNUSED(threads);
#if CNN_OMP
    CNN_PRAGMA(omp parallel num_threads(threads))
#endif
    {
        /* Each thread's own weights state: a fallback gather (after an ISA switch) lands in its
         * own workspace. */
        conv_weights tw = *cw;
        float *col = (float *)cnn_workspace(CNN_CONV_SLOT_COL, (size_t)(crs * band * g->Q) * sizeof(float));
        cnn_status st = col ? CNN_OK : CNN_ERR_OUT_OF_MEMORY;
        /* Contiguous runs of bands per thread: neighbouring bands share input rows. */
        const int64_t nt = CNN_OMP_NUM_THREADS(), id = CNN_OMP_THREAD_NUM();
        for (int64_t t = items * id / nt; st == CNN_OK && t < items * (id + 1) / nt; t++) {
            const int64_t img = t / (g->G * nbands), grp = t / nbands % g->G, p0 = t % nbands * band;
            const int64_t rows = CNN_MIN(band, g->P - p0);
            const int64_t yoff = (img * g->K + grp * g->Kg) * PQ + p0 * g->Q;
            cnn_conv_im2col(g, x + (img * g->C + grp * g->Cg) * g->H * g->W, p0, rows, col);
            const cnn_epilogue ep = group_epilogue(g, grp, bias, residual, yoff, PQ, relu);
            st = weights_times(g, &tw, packed, grp, rows * g->Q, col, (size_t)(rows * g->Q), y + yoff,
                               (size_t)PQ, &ep);
        }
        if (st != CNN_OK) {
            CNN_PRAGMA(omp atomic write)
            status = st;
        }
    }
    return status;
}

/* Images per chunk when each thread takes whole chunks (0: the chunks are shared, each one built,
 * multiplied and scattered by all threads in turn). A batch of small planes (a ResNet-18 step at
 * CIFAR size: 64 images of 8x8 down to 1x1) runs as about ten chunks per convolution; shared, each
 * chunk forks three times, and each thread's part of the GEMM reads columns the other thread
 * built. Per thread, a chunk stays in its core's L2 from im2col to the scatter. At least one chunk
 * per thread, so a batch that fits one chunk is cut into `threads` of them. */
static int64_t thread_chunk_images(const conv_geom *g, int64_t nb, int threads) {
    if (threads < 2 || g->N < threads) return 0;
    return CNN_MIN(nb, (g->N + threads - 1) / threads);
}

static int64_t im2col_band(const conv_geom *g) { return conv_band_rows(g->Cg * g->R * g->S * g->Q, g->P); }

size_t cnn_conv_im2col_workspace_bytes(const conv_geom *g) {
    conv_geom t;
    int64_t r0, s0;
    size_t trim = 0;
    if (cnn_conv_trim_taps(g, &t, &r0, &s0)) {
        trim = (size_t)(t.K * t.Cg * t.R * t.S) * sizeof(float);
        g = &t;
    }
    size_t tbytes, dbytes;
    if (implicit_sizes(g, &tbytes, &dbytes)) return trim + tbytes + dbytes; /* a plan runs it implicitly */
    const int64_t nb = cnn_conv_batch_images(g), crs = g->Cg * g->R * g->S;
    const int threads = cnn_team_threads();
    if (nb > 1) {
        const int64_t nbt = thread_chunk_images(g, nb, threads); /* one pair of buffers per thread */
        if (nbt > 0) return trim + (size_t)(threads * (crs + g->Kg) * nbt * g->P * g->Q) * sizeof(float);
        return trim + (size_t)((crs + g->Kg) * nb * g->P * g->Q) * sizeof(float);
    }
    const int64_t tband = thread_band_rows(g, threads);
    if (tband > 0) return trim + (size_t)(threads * crs * tband * g->Q) * sizeof(float); /* one per thread */
    return trim + (size_t)(crs * im2col_band(g) * g->Q) * sizeof(float);
}

/* Several images per GEMM (cnn_conv_batch_images > 1): col = im2col of nimg images, m = W_g * col,
 * then m is scattered into y with the epilogue; chunks [c0, c1) of nb images each, on the calling
 * thread's buffers (and its threads, when called outside a parallel region). */
static cnn_status images_chunks(const conv_geom *g, int64_t nb, int64_t c0, int64_t c1, const float *x,
                                conv_weights *cw, const void *packed, const float *bias, const float *residual,
                                int relu, float *y) {
    if (c0 >= c1) return CNN_OK;
    const int64_t PQ = g->P * g->Q, HW = g->H * g->W;
    float *col, *m;
    cnn_status st = cnn_conv_image_buffers(g, nb, &col, &m);
    if (st != CNN_OK) return st;
    for (int64_t c = c0; c < c1; c++) {
        const int64_t n0 = c * nb, nimg = CNN_MIN(nb, g->N - n0), cols = nimg * PQ;
        for (int64_t grp = 0; grp < g->G; grp++) {
            cnn_conv_im2col_images(g, x + (n0 * g->C + grp * g->Cg) * HW, g->C * HW, nimg, col);
            st = weights_times(g, cw, packed, grp, cols, col, (size_t)cols, m, (size_t)cols, NULL);
            if (st != CNN_OK) return st;
            scatter_epilogue(g, m, n0, nimg, grp, bias, residual, relu, y);
        }
    }
    return CNN_OK;
}

static cnn_status im2col_forward_images(const conv_geom *g, int64_t nb, const float *x, conv_weights *cw,
                                        const void *packed, const float *bias, const float *residual,
                                        int relu, float *y) {
    const int threads = cnn_team_threads();
    const int64_t nbt = thread_chunk_images(g, nb, threads);
    if (nbt == 0) return images_chunks(g, nb, 0, (g->N + nb - 1) / nb, x, cw, packed, bias, residual, relu, y);
    /* Trimmed raw weights (no plan) are gathered once, here, not by every thread. */
    if (!packed && !raw_weights(g, cw)) return CNN_ERR_OUT_OF_MEMORY;
    const int64_t chunks = (g->N + nbt - 1) / nbt;
    cnn_status status = CNN_OK;
#if CNN_OMP
    CNN_PRAGMA(omp parallel num_threads(threads))
#endif
    {
        conv_weights tw = *cw; /* a fallback gather after an ISA switch lands in this thread's slot */
        const int64_t nt = CNN_OMP_NUM_THREADS(), id = CNN_OMP_THREAD_NUM();
        const cnn_status st = images_chunks(g, nbt, chunks * id / nt, chunks * (id + 1) / nt, x, &tw, packed, bias,
                                            residual, relu, y);
        if (st != CNN_OK) {
            CNN_PRAGMA(omp atomic write)
            status = st;
        }
    }
    return status;
}

/* Implicit im2col (the layers im2col_strided serves, batch 1 or planes of 1,024 outputs and more,
 * with the plan's packed weights): the column matrix is never written. Each input row of the
 * image and group is de-interleaved once, into `d` (rows from -ph down to the last one read, zeros
 * in the padding), and the GEMM asks for its B operand one kc x NR panel at a time
 * (cnn_sgemm_packed_a_fill_b): row k = (c, r, s) of the column matrix, output row p, reads
 * d + t[k] + p*row_step + q for its Q columns, so a panel is a few contiguous runs per row,
 * copied into the thread's L1-sized panel and multiplied by every weight panel right away. The
 * explicit column matrix of the ResNet stem (7.4 MB) went out to L3 and came back. C harness,
 * 2 threads, minimum of 30 calls, 3 alternated runs (ninth session), explicit de-interleaved
 * columns -> implicit: ResNet stem 1.230-1.235 -> 1.146-1.156 ms (84 % of the 233 GFLOP/s peak);
 * AlexNet's conv1 (96 channels, 227 x 227) 1.085-1.191 -> 1.021-1.044 ms. Fill 6 % and the
 * de-interleaving 2 % of the stem's perf samples, the microkernel 87 %. */
typedef struct implicit_b {
    const float *d;
    const int64_t *t;   /* per column-matrix row: offset in d of output (0, 0) */
    int64_t Q, row_step;
} implicit_b;

/* A panel's columns [j0, j0 + nr) as runs of one output row each: run u puts n[u] floats from
 * offset src[u] (relative to a row's t[k]) at panel column dst[u]. */
enum { IMPLICIT_MAX_RUNS = 64 };
/* Floats of zeros before and after d (the AVX2 fill's shifted loads). */
enum { IMPLICIT_SLACK = 16 };
static int implicit_runs(const implicit_b *b, size_t j0, size_t nr, int64_t *src, int64_t *dst, int64_t *n) {
    int runs = 0;
    int64_t p = (int64_t)j0 / b->Q, q = (int64_t)j0 % b->Q;
    for (int64_t j = 0; j < (int64_t)nr; runs++) {
        const int64_t len = CNN_MIN((int64_t)nr - j, b->Q - q);
        src[runs] = p * b->row_step + q;
        dst[runs] = j;
        n[runs] = len;
        j += len;
        p++;
        q = 0;
    }
    return runs;
}

static void implicit_fill_generic(const void *ctx, size_t k0, size_t kc, size_t j0, size_t nr, size_t width,
                                  float *panel) {
    const implicit_b *b = (const implicit_b *)ctx;
    int64_t src[IMPLICIT_MAX_RUNS], dst[IMPLICIT_MAX_RUNS], n[IMPLICIT_MAX_RUNS];
    const int runs = implicit_runs(b, j0, nr, src, dst, n);
    for (size_t k = 0; k < kc; k++) {
        const float *row = b->d + b->t[k0 + k];
        float *out = panel + k * width;
        for (int u = 0; u < runs; u++)
            for (int64_t i = 0; i < n[u]; i++) out[dst[u] + i] = row[src[u] + i];
        for (size_t j = nr; j < width; j++) out[j] = 0.0f;
    }
}

#if CNN_X86
/* AVX2 (16-column panels). A panel inside one output row (the stem's 112 columns are 7 of them)
 * is two vector copies per row k. Zen 3 class, 2 threads: the generic fill cost about half as much
 * as the microkernel on the ResNet stem. Other panels span 2-3 output rows (Q = 28, 14, 7 on the
 * 3x3/2 layers): each of the two output vectors is cut once per panel into at most 3 segments of
 * lanes, one per run; per row k each segment is an unaligned load shifted so that its lanes line
 * up, blended into the vector. Lanes outside a segment may read up to 8 floats beyond its run,
 * never beyond d's IMPLICIT_SLACK floats on either side, and the blend drops them unused (NaN
 * or not). Lanes past nr stay zero. */
CNN_TARGET_AVX2
static void implicit_fill_avx2(const void *ctx, size_t k0, size_t kc, size_t j0, size_t nr, size_t width,
                               float *panel) {
    const implicit_b *b = (const implicit_b *)ctx;
    const float *d = b->d;
    const int64_t *t = b->t + k0;
    if (width != 16) {
        implicit_fill_generic(ctx, k0, kc, j0, nr, width, panel);
        return;
    }
    if (nr == 16 && (int64_t)(j0 % (size_t)b->Q) + 16 <= b->Q) {
        const int64_t src = (int64_t)(j0 / (size_t)b->Q) * b->row_step + (int64_t)(j0 % (size_t)b->Q);
        for (size_t k = 0; k < kc; k++) {
            const float *row = d + t[k] + src;
            _mm256_storeu_ps(panel + k * 16, _mm256_loadu_ps(row));
            _mm256_storeu_ps(panel + k * 16 + 8, _mm256_loadu_ps(row + 8));
        }
        return;
    }
    int64_t src[IMPLICIT_MAX_RUNS], dst[IMPLICIT_MAX_RUNS], n[IMPLICIT_MAX_RUNS];
    const int runs = implicit_runs(b, j0, nr, src, dst, n);
    /* Segment (v, s): lanes of output vector v taken from row + off[v][s] + lane. */
    int64_t off[2][3];
    __m256 sel[2][3];
    int ns[2] = {0, 0};
    for (int v = 0; v < 2; v++)
        for (int u = 0; u < runs; u++) {
            const int64_t lo = CNN_MAX(dst[u], 8 * v), hi = CNN_MIN(dst[u] + n[u], 8 * v + 8);
            if (lo >= hi) continue;
            if (ns[v] == 3) { /* Q <= 3: more runs than this path takes */
                implicit_fill_generic(ctx, k0, kc, j0, nr, width, panel);
                return;
            }
            int32_t m[8];
            for (int l = 0; l < 8; l++) m[l] = 8 * v + l >= lo && 8 * v + l < hi ? -1 : 0;
            off[v][ns[v]] = src[u] - dst[u] + 8 * v;
            sel[v][ns[v]] = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)m));
            ns[v]++;
        }
    for (size_t k = 0; k < kc; k++) {
        const float *row = d + t[k];
        float *out = panel + k * 16;
        for (int v = 0; v < 2; v++) {
            __m256 y = _mm256_setzero_ps();
            for (int s = 0; s < ns[v]; s++) y = _mm256_blendv_ps(y, _mm256_loadu_ps(row + off[v][s]), sel[v][s]);
            _mm256_storeu_ps(out + 8 * v, y);
        }
    }
}

/* The runs cut into masked vectors of 16 once per panel; per row k only the copies are left. */
CNN_TARGET_AVX512
static void implicit_fill_avx512(const void *ctx, size_t k0, size_t kc, size_t j0, size_t nr, size_t width,
                                 float *panel) {
    const implicit_b *b = (const implicit_b *)ctx;
    int64_t src[IMPLICIT_MAX_RUNS], dst[IMPLICIT_MAX_RUNS], n[IMPLICIT_MAX_RUNS];
    const int runs = implicit_runs(b, j0, nr, src, dst, n);
    int64_t vs[IMPLICIT_MAX_RUNS + 4], vd[IMPLICIT_MAX_RUNS + 4];
    __mmask16 vm[IMPLICIT_MAX_RUNS + 4];
    int nv = 0;
    for (int u = 0; u < runs; u++)
        for (int64_t i = 0; i < n[u]; i += 16, nv++) {
            vs[nv] = src[u] + i;
            vd[nv] = dst[u] + i;
            vm[nv] = lanes(0, n[u] - i);
        }
    const float *d = b->d;
    const int64_t *t = b->t + k0;
    if (nv == 3 && vm[0] == 0xFFFF && vm[1] == 0xFFFF && vm[2] == 0xFFFF && vd[1] == 16 && vd[2] == 32 &&
        vs[1] == vs[0] + 16 && vs[2] == vs[0] + 32) {
        /* One run of 48 (a panel inside one output row) */
        for (size_t k = 0; k < kc; k++) {
            const float *row = d + t[k] + vs[0];
            float *out = panel + k * width;
            _mm512_storeu_ps(out, _mm512_loadu_ps(row));
            _mm512_storeu_ps(out + 16, _mm512_loadu_ps(row + 16));
            _mm512_storeu_ps(out + 32, _mm512_loadu_ps(row + 32));
        }
    } else {
        for (size_t k = 0; k < kc; k++) {
            const float *row = d + t[k];
            float *out = panel + k * width;
            for (int v = 0; v < nv; v++)
                _mm512_mask_storeu_ps(out + vd[v], vm[v], _mm512_maskz_loadu_ps(vm[v], row + vs[v]));
        }
    }
    if (nr < width)
        for (size_t k = 0; k < kc; k++)
            for (size_t j = nr; j < width; j += 16)
                _mm512_mask_storeu_ps(panel + k * width + j, lanes(0, (int64_t)(width - j)), _mm512_setzero_ps());
}
#endif

/* The layers the implicit path takes: those of the strided column layout, and on AVX2 also the
 * 3x3/2 layers the explicit path keeps gathering (ResNet's downsampling 3x3s). There the
 * explicit path's scalar gather and the GEMM's packing of its column matrix took 14 % and 16 % of
 * a 128 -> 128, 56x56 layer's samples (Zen 3 class, 1 thread). C harness, 2 threads, old and new
 * builds called in turn 60 times, median of the per-call ratios new / old, ResNet-50's 3x3/2
 * layers: 128 at 56x56 0.80, 256 at 28x28 0.95, 512 at 14x14 1.00 (with the blocked fill of
 * cnn_sgemm_packed_a_fill_b; 0.89, 1.00 and 1.02 without it). */
static int implicit_layout(const conv_geom *g, int64_t *omin, int64_t *len) {
    if (strided_layout(g, omin, len)) return 1;
    if (g->sw != 2 || cnn_isa_active() != CNN_ISA_AVX2) return 0;
    return strided_extent(g, omin, len);
}

/* Rows of d per image and group: input rows -ph .. (P-1)*sh - ph + (R-1)*dh. */
static int64_t implicit_rows(const conv_geom *g) { return (g->P - 1) * g->sh + (g->R - 1) * g->dh + 1; }

/* Bytes of the offsets table, rounded to a cache line, and of d; 0 when the path does not apply. */
static int implicit_sizes(const conv_geom *g, size_t *tbytes, size_t *dbytes) {
    int64_t omin, len;
    if (cnn_conv_batch_images(g) > 1 || !implicit_layout(g, &omin, &len)) return 0;
    *tbytes = ((size_t)(g->Cg * g->R * g->S) * sizeof(int64_t) + 63) & ~(size_t)63;
    *dbytes = (size_t)(g->Cg * implicit_rows(g) * g->sw * len + 2 * IMPLICIT_SLACK) * sizeof(float);
    return *dbytes <= CNN_CONV_COL_BYTES;
}

/* CNN_ERR_UNSUPPORTED, with nothing written, when the path does not apply (the caller builds the
 * column matrix instead). */
static cnn_status im2col_forward_implicit(const conv_geom *g, const float *x, const void *packed, const float *bias,
                                          const float *residual, int relu, float *y) {
    size_t tbytes, dbytes;
    const int64_t crs = g->Cg * g->R * g->S, PQ = g->P * g->Q;
    if (!packed || !implicit_sizes(g, &tbytes, &dbytes) || !cnn_sgemm_packed_a_usable(packed, (size_t)g->Kg, (size_t)crs))
        return CNN_ERR_UNSUPPORTED;
    int64_t omin, len;
    implicit_layout(g, &omin, &len);
    char *ws = (char *)cnn_workspace(CNN_CONV_SLOT_COL, tbytes + dbytes);
    if (!ws) return CNN_ERR_OUT_OF_MEMORY;
    int64_t *t = (int64_t *)ws;
    float *d = (float *)(ws + tbytes) + IMPLICIT_SLACK;
    memset(d - IMPLICIT_SLACK, 0, IMPLICIT_SLACK * sizeof(float)); /* read (and dropped) by the AVX2 fill */
    memset((char *)(ws + tbytes + dbytes) - IMPLICIT_SLACK * sizeof(float), 0, IMPLICIT_SLACK * sizeof(float));
    const int64_t sw = g->sw, Hd = implicit_rows(g), nrows = g->Cg * Hd;
    for (int64_t k = 0; k < crs; k++) {
        const int64_t c = k / (g->R * g->S), r = k / g->S % g->R, s = k % g->S;
        const int64_t e = s * g->dw - g->pw, o = floor_div(e, sw), pi = e - o * sw;
        t[k] = ((c * Hd + r * g->dh) * sw + pi) * len + (o - omin);
    }
    const implicit_b ctx = {.d = d, .t = t, .Q = g->Q, .row_step = g->sh * sw * len};
    const cnn_isa isa = cnn_isa_active();
    cnn_gemm_b_fill_fn fill = implicit_fill_generic;
#if CNN_X86
    if (isa == CNN_ISA_AVX512) fill = implicit_fill_avx512;
    else if (isa == CNN_ISA_AVX2) fill = implicit_fill_avx2;
#endif
    int64_t ab[2 * DEINT_SW_MAX];
    deint_bounds(g->W, sw, omin, len, ab);
    const int nt = nrows * sw * len >= IM2COL_PARALLEL_MIN ? cnn_threads_for(g->Cg) : 1;
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t grp = 0; grp < g->G; grp++) {
            const float *xg = x + (n * g->C + grp * g->Cg) * g->H * g->W;
            CNN_OMP_PARALLEL_FOR(nt)
            for (int64_t c = 0; c < g->Cg; c++)
                for (int64_t hr = 0; hr < Hd; hr++) {
                    const int64_t h = hr - g->ph;
                    deinterleave_row(h >= 0 && h < g->H ? xg + (c * g->H + h) * g->W : NULL, sw, omin, len, ab,
                                     d + (c * Hd + hr) * sw * len, isa);
                }
            const int64_t yoff = (n * g->K + grp * g->Kg) * PQ;
            const cnn_epilogue ep = group_epilogue(g, grp, bias, residual, yoff, PQ, relu);
            const void *pg = (const char *)packed + (size_t)grp * cnn_conv_gemm_packed_stride(g);
            const cnn_status st = cnn_sgemm_packed_a_fill_b(pg, (size_t)g->Kg, (size_t)PQ, (size_t)crs, fill, &ctx,
                                                            y + yoff, (size_t)PQ, &ep);
            if (st != CNN_OK) return st;
        }
    return CNN_OK;
}

// x is (N,C,H,W), w is (K,C/groups,R,S), y is (N,K,P,Q): per image, group and band of output rows,
// y[k, band] = W_g (Kg x CgRS) * col (CgRS x rows*Q), the epilogue fused into the GEMM.
cnn_status cnn_conv_im2col_forward(const conv_geom *g, const float *x, const float *w,
                                   const void *packed, const float *bias, const float *residual,
                                   int relu, float *y) {
    /* Taps that only read padding are dropped (a plan's packed panels are already trimmed). */
    conv_geom t;
    conv_weights cw;
    g = trimmed(g, w, &t, &cw);
    const cnn_status implicit = im2col_forward_implicit(g, x, packed, bias, residual, relu, y);
    if (implicit != CNN_ERR_UNSUPPORTED) return implicit;
    const int64_t nb = cnn_conv_batch_images(g);
    if (nb > 1) return im2col_forward_images(g, nb, x, &cw, packed, bias, residual, relu, y);
    const int threads = cnn_team_threads();
    const int64_t tband = thread_band_rows(g, threads);
    if (tband > 0) return im2col_forward_thread_bands(g, tband, threads, x, &cw, packed, bias, residual, relu, y);
    const int64_t crs = g->Cg * g->R * g->S, PQ = g->P * g->Q, band = im2col_band(g);
    float *col = (float *)cnn_workspace(CNN_CONV_SLOT_COL, (size_t)(crs * band * g->Q) * sizeof(float));
    if (!col) return CNN_ERR_OUT_OF_MEMORY;
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t grp = 0; grp < g->G; grp++) {
            const float *xg = x + (n * g->C + grp * g->Cg) * g->H * g->W;
            for (int64_t p0 = 0; p0 < g->P; p0 += band) {
                const int64_t rows = CNN_MIN(band, g->P - p0);
                const int64_t yoff = (n * g->K + grp * g->Kg) * PQ + p0 * g->Q;
                cnn_conv_im2col(g, xg, p0, rows, col);
                const cnn_epilogue ep = group_epilogue(g, grp, bias, residual, yoff, PQ, relu);
                cnn_status st = weights_times(g, &cw, packed, grp, rows * g->Q, col, (size_t)(rows * g->Q),
                                              y + yoff, (size_t)PQ, &ep);
                if (st != CNN_OK) return st;
            }
        }
    return CNN_OK;
}

/* Strided 1x1 convolutions (ResNet's downsampling shortcuts), one image per GEMM, one group, no
 * padding: the subsampled image, Cg x PQ, is gathered once into a dense matrix and multiplied as
 * at stride 1. The implicit im2col path de-interleaved every input row, the odd ones no 1x1
 * window reads included, and filled each GEMM panel from runs of 14 or 28 columns; the explicit
 * path gathers per band. C harness, 2 threads, builds called in turn 40-60 times, median per-call
 * ratio dense / implicit, two runs (Zen 3 class AVX2, twelfth session): ResNet-50's 256 -> 512 at
 * 56x56 0.90-0.97, 512 -> 1024 at 28x28 0.72-0.89, 1024 -> 2048 at 14x14 0.64-0.65; ResNet-18's
 * 64 -> 128 0.66-0.74, 128 -> 256 0.48-0.68, 256 -> 512 0.70-0.75. The explicit banded gather
 * measured between the two. Not measured on AVX-512, where the implicit path was the one tuned. */
static int strided_1x1_dense(const conv_geom *g) {
    return (g->sh != 1 || g->sw != 1) && g->R == 1 && g->S == 1 && g->G == 1 && g->ph == 0 && g->pw == 0 &&
           cnn_conv_batch_images(g) == 1 &&
           (size_t)(g->Cg * g->P * g->Q) * sizeof(float) <= CNN_CONV_COL_BYTES;
}

size_t cnn_conv_gemm1x1_workspace_bytes(const conv_geom *g) {
    /* Stride 1: the image is the B operand as it lies; otherwise a gathered band. */
    if (g->sh == 1 && g->sw == 1 && cnn_conv_batch_images(g) == 1) return 0;
    if (strided_1x1_dense(g)) return (size_t)(g->Cg * g->P * g->Q) * sizeof(float);
    return cnn_conv_im2col_workspace_bytes(g);
}

/* col (C x PQ) = x[c][p * sh][q * sw] of one image. */
static void gather_strided_1x1(const conv_geom *g, const float *x, float *col) {
    const int64_t P = g->P, Q = g->Q, H = g->H, W = g->W, sh = g->sh, sw = g->sw;
    const int nt = g->Cg * P * Q >= IM2COL_PARALLEL_MIN ? cnn_threads_for(g->Cg) : 1;
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t p = 0; p < P; p++) {
            const float *CNN_RESTRICT r = x + (c * H + p * sh) * W;
            float *CNN_RESTRICT d = col + (c * P + p) * Q;
            for (int64_t q = 0; q < Q; q++) d[q] = r[q * sw];
        }
}

// x is (N,C,H,W), w is (K,C/groups,1,1), y is (N,K,P,Q): y_n,g (Kg x PQ) = W_g (Kg x Cg) * x_n,g
cnn_status cnn_conv_gemm1x1_forward(const conv_geom *g, const float *x, const float *w,
                                    const void *packed, const float *bias, const float *residual,
                                    int relu, float *y) {
    conv_weights cw = {.w = w, .full = g, .w_full = w};
    if (strided_1x1_dense(g)) {
        const int64_t PQ = g->P * g->Q;
        float *col = (float *)cnn_workspace(CNN_CONV_SLOT_COL, (size_t)(g->Cg * PQ) * sizeof(float));
        if (!col) return CNN_ERR_OUT_OF_MEMORY;
        for (int64_t n = 0; n < g->N; n++) {
            gather_strided_1x1(g, x + n * g->C * g->H * g->W, col);
            const int64_t yoff = n * g->K * PQ;
            const cnn_epilogue ep = group_epilogue(g, 0, bias, residual, yoff, PQ, relu);
            cnn_status st = weights_times(g, &cw, packed, 0, PQ, col, (size_t)PQ, y + yoff, (size_t)PQ, &ep);
            if (st != CNN_OK) return st;
        }
        return CNN_OK;
    }
    /* Other strided layers (several images per GEMM, groups): the strided gather of a band of
     * output rows is im2col of a 1x1 kernel without padding, bounded like im2col. */
    if (g->sh != 1 || g->sw != 1) return cnn_conv_im2col_forward(g, x, w, packed, bias, residual, relu, y);
    /* Small planes: several images per GEMM (their gather is a plain copy per channel). */
    const int64_t nb = cnn_conv_batch_images(g);
    if (nb > 1) return im2col_forward_images(g, nb, x, &cw, packed, bias, residual, relu, y);
    const int64_t HW = g->H * g->W; /* == P*Q: pad 0, stride 1 */
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t grp = 0; grp < g->G; grp++) {
            const int64_t yoff = (n * g->K + grp * g->Kg) * HW;
            const cnn_epilogue ep = group_epilogue(g, grp, bias, residual, yoff, HW, relu);
            cnn_status st = weights_times(g, &cw, packed, grp, HW, x + (n * g->C + grp * g->Cg) * HW,
                                          (size_t)HW, y + yoff, (size_t)HW, &ep);
            if (st != CNN_OK) return st;
        }
    return CNN_OK;
}
