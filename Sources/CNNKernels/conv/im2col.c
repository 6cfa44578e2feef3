/* im2col + GEMM convolution, and 1x1 convolution as a plain GEMM. Both valid for every shape they
 * apply to; the column matrix is built one band of output rows at a time, bounded by
 * CNN_CONV_COL_BYTES, so the workspace stays a few MiB whatever the image size. */
#include "conv_internal.h"

#include <string.h>

/* floor(a / b) and ceil(a / b) for b > 0 and any sign of a. */
static inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static inline int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

/* Output columns q in [*lo, *hi) whose tap s reads inside the image: 0 <= q*sw - pw + s*dw < W. */
static inline void valid_q(const conv_geom *g, int64_t s, int64_t *lo, int64_t *hi) {
    const int64_t off = s * g->dw - g->pw;
    int64_t a = ceil_div(-off, g->sw), b = floor_div(g->W - 1 - off, g->sw) + 1;
    if (a < 0) a = 0;
    if (b > g->Q) b = g->Q;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

/* Below this many column elements one thread builds the band: the fork costs more than the copy. */
#define IM2COL_PARALLEL_MIN 32768

// x is (Cg,H,W) (one image, one group), col is (Cg*R*S, rows*Q)
void cnn_conv_im2col(const conv_geom *g, const float *x, int64_t p0, int64_t rows, float *col) {
    const int64_t crs = g->Cg * g->R * g->S, ld = rows * g->Q;
    const int nt = crs * ld >= IM2COL_PARALLEL_MIN ? cnn_threads_for(crs) : 1;
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < crs; i++) {
        const int64_t c = i / (g->R * g->S), r = (i / g->S) % g->R, s = i % g->S;
        int64_t lo, hi;
        valid_q(g, s, &lo, &hi);
        const int64_t off = s * g->dw - g->pw;
        for (int64_t pi = 0; pi < rows; pi++) {
            float *dst = col + i * ld + pi * g->Q;
            const int64_t h = (p0 + pi) * g->sh - g->ph + r * g->dh;
            if (h < 0 || h >= g->H) {
                memset(dst, 0, (size_t)g->Q * sizeof(float));
                continue;
            }
            const float *src = x + (c * g->H + h) * g->W;
            if (lo > 0) memset(dst, 0, (size_t)lo * sizeof(float));
            if (g->sw == 1) {
                if (hi > lo) memcpy(dst + lo, src + lo + off, (size_t)(hi - lo) * sizeof(float));
            } else {
                for (int64_t q = lo; q < hi; q++) dst[q] = src[q * g->sw + off];
            }
            if (hi < g->Q) memset(dst + hi, 0, (size_t)(g->Q - hi) * sizeof(float));
        }
    }
}

// col is (Cg*R*S, rows*Q), dx is (Cg,H,W) +=
void cnn_conv_col2im(const conv_geom *g, const float *col, int64_t p0, int64_t rows, float *dx) {
    const int64_t ld = rows * g->Q;
    const int nt = g->Cg * g->R * g->S * ld >= IM2COL_PARALLEL_MIN ? cnn_threads_for(g->Cg) : 1;
    /* Parallel over input channels: each channel's plane is written by one thread only. */
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t c = 0; c < g->Cg; c++) {
        for (int64_t r = 0; r < g->R; r++)
            for (int64_t s = 0; s < g->S; s++) {
                const int64_t i = (c * g->R + r) * g->S + s;
                int64_t lo, hi;
                valid_q(g, s, &lo, &hi);
                const int64_t off = s * g->dw - g->pw;
                for (int64_t pi = 0; pi < rows; pi++) {
                    const int64_t h = (p0 + pi) * g->sh - g->ph + r * g->dh;
                    if (h < 0 || h >= g->H) continue;
                    const float *src = col + i * ld + pi * g->Q;
                    float *dst = dx + (c * g->H + h) * g->W;
                    if (g->sw == 1) {
                        for (int64_t q = lo; q < hi; q++) dst[q + off] += src[q];
                    } else {
                        for (int64_t q = lo; q < hi; q++) dst[q * g->sw + off] += src[q];
                    }
                }
            }
    }
}

size_t cnn_conv_gemm_packed_stride(const conv_geom *g) {
    const size_t bytes = cnn_sgemm_packed_a_size((size_t)g->Kg, (size_t)(g->Cg * g->R * g->S));
    return (bytes + 63) & ~(size_t)63;
}

cnn_status cnn_conv_gemm_pack(const conv_geom *g, const float *w, void *packed) {
    const int64_t crs = g->Cg * g->R * g->S;
    const size_t stride = cnn_conv_gemm_packed_stride(g);
    for (int64_t grp = 0; grp < g->G; grp++) {
        cnn_status st = cnn_sgemm_pack_a(CNN_NO_TRANS, (size_t)g->Kg, (size_t)crs, w + grp * g->Kg * crs,
                                         (size_t)crs, (char *)packed + (size_t)grp * stride);
        if (st != CNN_OK) return st;
    }
    return CNN_OK;
}

/* y (Kg x n, ldy) = W_g (Kg x crs) * col (crs x n, ldb), then the epilogue: from the plan's packed
 * panels when they match the active ISA, else from the raw weights. */
static cnn_status weights_times(const conv_geom *g, const float *w, const void *packed, int64_t grp,
                                int64_t n, const float *b, size_t ldb, float *y, size_t ldy,
                                const cnn_epilogue *ep) {
    const int64_t crs = g->Cg * g->R * g->S;
    if (packed) {
        const void *pg = (const char *)packed + (size_t)grp * cnn_conv_gemm_packed_stride(g);
        cnn_status st = cnn_sgemm_packed_a(pg, CNN_NO_TRANS, (size_t)g->Kg, (size_t)n, (size_t)crs, 1.0f,
                                           b, ldb, 0.0f, y, ldy, ep);
        if (st != CNN_ERR_INVALID_ARGUMENT) return st; /* INVALID: packed for another ISA */
    }
    return cnn_sgemm(CNN_NO_TRANS, CNN_NO_TRANS, (size_t)g->Kg, (size_t)n, (size_t)crs, 1.0f,
                     w + grp * g->Kg * crs, (size_t)crs, b, ldb, 0.0f, y, ldy, ep);
}

static int64_t im2col_band(const conv_geom *g) { return conv_band_rows(g->Cg * g->R * g->S * g->Q, g->P); }

size_t cnn_conv_im2col_workspace_bytes(const conv_geom *g) {
    return (size_t)(g->Cg * g->R * g->S * im2col_band(g) * g->Q) * sizeof(float);
}

// x is (N,C,H,W), w is (K,C/groups,R,S), y is (N,K,P,Q): per image, group and band of output rows,
// y[k, band] = W_g (Kg x CgRS) * col (CgRS x rows*Q), the epilogue fused into the GEMM.
cnn_status cnn_conv_im2col_forward(const conv_geom *g, const float *x, const float *w,
                                   const void *packed, const float *bias, const float *residual,
                                   int relu, float *y) {
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
                const cnn_epilogue ep = {
                    .bias = bias ? bias + grp * g->Kg : NULL,
                    .residual = residual ? residual + yoff : NULL,
                    .residual_ld = (size_t)PQ,
                    .relu = relu,
                };
                cnn_status st = weights_times(g, w, packed, grp, rows * g->Q, col, (size_t)(rows * g->Q),
                                              y + yoff, (size_t)PQ, &ep);
                if (st != CNN_OK) return st;
            }
        }
    return CNN_OK;
}

size_t cnn_conv_gemm1x1_workspace_bytes(const conv_geom *g) {
    /* Stride 1: the image is the B operand as it lies; otherwise a gathered band. */
    if (g->sh == 1 && g->sw == 1) return 0;
    return cnn_conv_im2col_workspace_bytes(g);
}

// x is (N,C,H,W), w is (K,C/groups,1,1), y is (N,K,P,Q): y_n,g (Kg x PQ) = W_g (Kg x Cg) * x_n,g
cnn_status cnn_conv_gemm1x1_forward(const conv_geom *g, const float *x, const float *w,
                                    const void *packed, const float *bias, const float *residual,
                                    int relu, float *y) {
    /* With a stride, the strided gather of a band of output rows is im2col of a 1x1 kernel without
     * padding: one plain copy per channel row, bounded like im2col. */
    if (g->sh != 1 || g->sw != 1) return cnn_conv_im2col_forward(g, x, w, packed, bias, residual, relu, y);
    const int64_t HW = g->H * g->W; /* == P*Q: pad 0, stride 1 */
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t grp = 0; grp < g->G; grp++) {
            const int64_t yoff = (n * g->K + grp * g->Kg) * HW;
            const cnn_epilogue ep = {
                .bias = bias ? bias + grp * g->Kg : NULL,
                .residual = residual ? residual + yoff : NULL,
                .residual_ld = (size_t)HW,
                .relu = relu,
            };
            cnn_status st = weights_times(g, w, packed, grp, HW, x + (n * g->C + grp * g->Cg) * HW,
                                          (size_t)HW, y + yoff, (size_t)HW, &ep);
            if (st != CNN_OK) return st;
        }
    return CNN_OK;
}
