/* Convolution backward: gradient of the input (written) and of the weight and bias (accumulated).
 *
 * Grouped convolutions with several input channels per group go through the GEMM, a band of output
 * rows at a time (the same bounded column buffer as the forward im2col):
 *     data:   col (CgRS x band) = W_g^T (CgRS x Kg) * dy_g (Kg x band), then dx_g += col2im(col)
 *     weight: dW_g (Kg x CgRS) += dy_g (Kg x band) * col^T, col = im2col(x_g) of the band
 * Depthwise convolutions (one input channel per group) use direct loops over each channel's plane:
 * a GEMM with a single row or column per group would run at a fraction of its speed. So does the
 * weight gradient of a small layer (LeNet-5's two): see backward_weight_direct.c. */
#include "conv_internal.h"
#include "winograd.h"

#include <string.h>

static inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static inline int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

/* 1x1, stride 1, no padding: the column matrix is the image itself. (P == H and Q == W follow for
 * a convolution as given; a trimmed one may move its padding to one side, so they are checked.) */
static int is_pointwise(const conv_geom *g) {
    return g->R == 1 && g->S == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 &&
           g->P == g->H && g->Q == g->W;
}

// dy is (N,K,P,Q), w is (K,1,R,S), dx is (N,C,H,W); group c owns output channels c*Kg..c*Kg+Kg-1
static void depthwise_backward_data(const conv_geom *g, const float *dy, const float *w, float *dx) {
    const int64_t planes = g->N * g->C, HW = g->H * g->W, PQ = g->P * g->Q;
    const int nt = cnn_threads_for(planes);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t plane = 0; plane < planes; plane++) {
        const int64_t n = plane / g->C, c = plane % g->C;
        float *CNN_RESTRICT d = dx + plane * HW;
        memset(d, 0, (size_t)HW * sizeof(float));
        for (int64_t kk = 0; kk < g->Kg; kk++) {
            const int64_t k = c * g->Kg + kk;
            const float *CNN_RESTRICT dyk = dy + (n * g->K + k) * PQ;
            for (int64_t r = 0; r < g->R; r++)
                for (int64_t s = 0; s < g->S; s++) {
                    const float wv = w[(k * g->R + r) * g->S + s];
                    const int64_t off = s * g->dw - g->pw;
                    const int64_t lo = CNN_MAX(0, ceil_div(-off, g->sw));
                    const int64_t hi = CNN_MIN(g->Q, floor_div(g->W - 1 - off, g->sw) + 1);
                    for (int64_t p = 0; p < g->P; p++) {
                        const int64_t h = p * g->sh - g->ph + r * g->dh;
                        if (h < 0 || h >= g->H) continue;
                        float *CNN_RESTRICT drow = d + h * g->W;
                        const float *CNN_RESTRICT src = dyk + p * g->Q;
                        if (g->sw == 1) {
                            for (int64_t q = lo; q < hi; q++) drow[q + off] += wv * src[q];
                        } else {
                            for (int64_t q = lo; q < hi; q++) drow[q * g->sw + off] += wv * src[q];
                        }
                    }
                }
        }
    }
}

// x is (N,C,H,W), dy is (N,K,P,Q), dw is (K,1,R,S) +=
static void depthwise_backward_weight(const conv_geom *g, const float *x, const float *dy, float *dw) {
    const int64_t HW = g->H * g->W, PQ = g->P * g->Q;
    const int nt = cnn_threads_for(g->K);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t k = 0; k < g->K; k++) {
        const int64_t c = k / g->Kg;
        for (int64_t r = 0; r < g->R; r++)
            for (int64_t s = 0; s < g->S; s++) {
                const int64_t off = s * g->dw - g->pw;
                const int64_t lo = CNN_MAX(0, ceil_div(-off, g->sw));
                const int64_t hi = CNN_MIN(g->Q, floor_div(g->W - 1 - off, g->sw) + 1);
                /* Double accumulation: the sum runs over N*P*Q terms (65536 for a batch of 64 at
                 * 32x32) and this loop is bound by memory, not by the adds. */
                double acc = 0;
                for (int64_t n = 0; n < g->N; n++)
                    for (int64_t p = 0; p < g->P; p++) {
                        const int64_t h = p * g->sh - g->ph + r * g->dh;
                        if (h < 0 || h >= g->H) continue;
                        const float *CNN_RESTRICT xr = x + (n * g->C + c) * HW + h * g->W;
                        const float *CNN_RESTRICT dr = dy + (n * g->K + k) * PQ + p * g->Q;
                        if (g->sw == 1) {
                            for (int64_t q = lo; q < hi; q++) acc += (double)dr[q] * xr[q + off];
                        } else {
                            for (int64_t q = lo; q < hi; q++) acc += (double)dr[q] * xr[q * g->sw + off];
                        }
                    }
                dw[(k * g->R + r) * g->S + s] += (float)acc;
            }
    }
}

static cnn_status backward_weight_gemm(const conv_geom *g, const float *x, const float *dy, float *dw);

/* A stride-1, dilation-1, single-group 3x3 layer: its gradients run on the Winograd transforms
 * whenever AUTO runs its forward with Winograd (at least 16 tiles, most of each tile real). Sessions
 * 3-6 kept layers of at most 4,096 output positions on the GEMM, as the per-call weight transform
 * cost more than it saved there; with that transform in float on vectors, a ResNet-18 step at
 * 32x32, batch 64 (8x8 down to 2x2 planes) measured backward 61.2-63.0 ms with that bound, 52.5-52.8
 * with 2,048, 45.8-46.8 with 512, 43.9 with 128 and 42.9 with none (`cnn bench train`, medians of
 * 15, alternated; the step 96.1-97.8 -> 78.6 ms). */
static int winograd_shape(const conv_geom *g) {
    return g->R == 3 && g->S == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 && g->G == 1;
}

/* A stride-1, dilation-1, single-group 5x5 convolution: F(2x2, 5x5) applies. */
static int five_by_five_shape(const conv_geom *g) {
    return g->R == 5 && g->S == 5 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 && g->G == 1;
}

/* The tile of a 5x5 gradient whose transforms are those of the forward convolution s: 2 for
 * winograd2x2, 4 for winograd4x4, and for AUTO the tile AUTO picks for s; else 0 (the GEMM path). */
static int five_by_five_tile(cnn_conv_algorithm algorithm, const cnn_conv_shape *s) {
    const cnn_conv_algorithm a = algorithm == CNN_CONV_AUTO ? cnn_conv_auto_algorithm(s) : algorithm;
    return a == CNN_CONV_WINOGRAD_2X2 ? 2 : a == CNN_CONV_WINOGRAD_4X4 ? 4 : 0;
}

/* The Winograd tile (2, 4 or 6) AUTO picks for the forward convolution s, else 0. */
static int auto_winograd_tile(const cnn_conv_shape *s) {
    switch (cnn_conv_auto_algorithm(s)) {
    case CNN_CONV_WINOGRAD_2X2: return 2;
    case CNN_CONV_WINOGRAD_4X4: return 4;
    case CNN_CONV_WINOGRAD_6X6: return 6;
    default: return 0;
    }
}

/* The Winograd tile the gradients of a layer take when its forward runs `algorithm` (0: the GEMM
 * path), s being the forward shape whose transforms they reuse: AUTO takes the tile AUTO picks
 * for s; an explicit Winograd algorithm its own tile; direct, im2col and 1x1 GEMM layers none, so
 * a layer pinned to one of them gets the GEMM's rounding in both directions (the same for any
 * split of the batch), or for the weight gradient of a small layer the direct sum of
 * cnn_conv_backward_weight_direct (chosen by the layer's shape alone, never its batch). */
static int gradient_tile(cnn_conv_algorithm algorithm, const conv_geom *g, const cnn_conv_shape *s) {
    if (!winograd_shape(g)) return 0;
    switch (algorithm) {
    case CNN_CONV_AUTO: return auto_winograd_tile(s);
    case CNN_CONV_WINOGRAD_2X2: return 2;
    case CNN_CONV_WINOGRAD_4X4: return 4;
    case CNN_CONV_WINOGRAD_6X6: return 6;
    default: return 0;
    }
}

/* A stride-1, dilation-1, single-group 3x3 convolution with padding at most 2 has as data gradient
 * the convolution of dy with the flipped, channel-swapped kernel at padding 2 - pad, which gives
 * back H x W. Fills that forward shape and returns its Winograd tile for `algorithm` (see
 * gradient_tile), or 0 when the data gradient takes the GEMM path. A 5x5 one with padding at most
 * 4 likewise, at padding 4 - pad, through F(2x2, 5x5): when the layer runs winograd2x2, or AUTO,
 * which picks F(2x2, 5x5) for the flipped shape (AlexNet's conv2: 192 -> 64 channels at 27x27). */
static int backward_data_as_forward(cnn_conv_algorithm algorithm, const conv_geom *g, cnn_conv_shape *fs) {
    if (five_by_five_shape(g)) {
        if (g->ph > 4 || g->pw > 4) return 0;
        *fs = (cnn_conv_shape){.N = g->N, .C = g->K, .H = g->P, .W = g->Q, .K = g->C, .R = 5, .S = 5,
                               .stride_h = 1, .stride_w = 1, .pad_h = 4 - g->ph, .pad_w = 4 - g->pw,
                               .dilation_h = 1, .dilation_w = 1, .groups = 1};
        return five_by_five_tile(algorithm, fs);
    }
    if (!winograd_shape(g) || g->ph > 2 || g->pw > 2) return 0;
    *fs = (cnn_conv_shape){.N = g->N, .C = g->K, .H = g->P, .W = g->Q, .K = g->C, .R = 3, .S = 3,
                           .stride_h = 1, .stride_w = 1, .pad_h = 2 - g->ph, .pad_w = 2 - g->pw,
                           .dilation_h = 1, .dilation_w = 1, .groups = 1};
    return gradient_tile(algorithm, g, fs);
}

static int valid_algorithm(cnn_conv_algorithm a) { return (unsigned)a < CNN_CONV_ALGORITHM_COUNT; }

static int64_t band_rows(const conv_geom *g) { return conv_band_rows(g->Cg * g->R * g->S * g->Q, g->P); }

cnn_status cnn_conv2d_backward_data(const cnn_conv_shape *shape, const float *dy, const float *w,
                                    float *dx) {
    return cnn_conv2d_backward_data_for(CNN_CONV_AUTO, shape, dy, w, dx);
}

// dy is (N,K,P,Q), w is (K,C/groups,R,S), dx is (N,C,H,W) written
cnn_status cnn_conv2d_backward_data_for(cnn_conv_algorithm algorithm, const cnn_conv_shape *shape,
                                        const float *dy, const float *w, float *dx) {
    if (!valid_algorithm(algorithm)) return CNN_ERR_INVALID_ARGUMENT;
    conv_geom g;
    cnn_status st = cnn_conv_geom_init(shape, &g);
    if (st != CNN_OK) return st;
    if (g.N == 0) return CNN_OK;
    if (!dy || !w || !dx) return CNN_ERR_INVALID_ARGUMENT;
    /* Depthwise (one input channel per group, several groups) runs direct loops; a single-group
     * convolution of a 1-channel input (LeNet's conv1) is better served by the GEMM path. */
    if (g.Cg == 1 && g.G > 1) {
        depthwise_backward_data(&g, dy, w, dx);
        return CNN_OK;
    }
    cnn_conv_shape fs;
    const int md = backward_data_as_forward(algorithm, &g, &fs);
    if (md > 0)
        /* dx = the forward convolution of dy with the kernel rotated by 180 degrees and its channel
         * axes swapped: wf (C, K, R, S), wf[c][k][r][s] = w[k][c][R-1-r][S-1-s], transformed
         * straight from w. */
        return cnn_winograd_backward_data(md, &fs, dy, w, dx);
    /* Taps that only read padding (see cnn_conv_trim_taps) would scatter into the padding only:
     * the GEMM runs with the trimmed kernel. */
    conv_geom t;
    int64_t r0, s0;
    if (cnn_conv_trim_taps(&g, &t, &r0, &s0)) {
        float *wt = (float *)cnn_workspace(CNN_CONV_SLOT_TRIM_W, (size_t)(t.K * t.Cg * t.R * t.S) * sizeof(float));
        if (!wt) return CNN_ERR_OUT_OF_MEMORY;
        cnn_conv_trim_weights(&g, &t, r0, s0, w, wt);
        g = t;
        w = wt;
    }
    /* dx (N x CHW) = dy (N x K) * W (K x CRS), CRS = CHW. */
    if (conv_is_dense(&g)) {
        const size_t chw = (size_t)(g.C * g.H * g.W);
        return cnn_sgemm(CNN_NO_TRANS, CNN_NO_TRANS, (size_t)g.N, chw, (size_t)g.K, 1.0f, dy, (size_t)g.K, w, chw,
                         0.0f, dx, chw, NULL);
    }
    const int64_t crs = g.Cg * g.R * g.S, PQ = g.P * g.Q, HW = g.H * g.W;
    const int64_t nb = cnn_conv_batch_images(&g);
    if (nb > 1) {
        /* Small planes, several images per GEMM: dyc (Kg x nimg*PQ) gathered from dy, then
         * col = W_g^T * dyc and dx = col2im(col) image by image. */
        float *col, *dyc;
        if ((st = cnn_conv_image_buffers(&g, nb, &col, &dyc)) != CNN_OK) return st;
        for (int64_t n0 = 0; n0 < g.N; n0 += nb) {
            const int64_t nimg = CNN_MIN(nb, g.N - n0), cols = nimg * PQ;
            for (int64_t grp = 0; grp < g.G; grp++) {
                cnn_conv_gather_images(&g, n0, nimg, grp, dy, dyc);
                st = cnn_sgemm(CNN_TRANS, CNN_NO_TRANS, (size_t)crs, (size_t)cols, (size_t)g.Kg, 1.0f,
                               w + grp * g.Kg * crs, (size_t)crs, dyc, (size_t)cols, 0.0f, col,
                               (size_t)cols, NULL);
                if (st != CNN_OK) return st;
                cnn_conv_col2im_images(&g, col, nimg, dx + (n0 * g.C + grp * g.Cg) * HW, g.C * HW);
            }
        }
        return CNN_OK;
    }
    if (is_pointwise(&g)) {
        /* dx_n,g (Cg x HW) = W_g^T (Cg x Kg) * dy_n,g (Kg x HW), written directly. */
        for (int64_t n = 0; n < g.N; n++)
            for (int64_t grp = 0; grp < g.G; grp++) {
                st = cnn_sgemm(CNN_TRANS, CNN_NO_TRANS, (size_t)g.Cg, (size_t)HW, (size_t)g.Kg, 1.0f,
                               w + grp * g.Kg * g.Cg, (size_t)g.Cg, dy + (n * g.K + grp * g.Kg) * PQ,
                               (size_t)PQ, 0.0f, dx + (n * g.C + grp * g.Cg) * HW, (size_t)HW, NULL);
                if (st != CNN_OK) return st;
            }
        return CNN_OK;
    }
    const int64_t band = band_rows(&g);
    float *col = (float *)cnn_workspace(CNN_CONV_SLOT_COL, (size_t)(crs * band * g.Q) * sizeof(float));
    if (!col) return CNN_ERR_OUT_OF_MEMORY;
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t grp = 0; grp < g.G; grp++) {
            float *dxg = dx + (n * g.C + grp * g.Cg) * HW;
            memset(dxg, 0, (size_t)(g.Cg * HW) * sizeof(float));
            for (int64_t p0 = 0; p0 < g.P; p0 += band) {
                const int64_t rows = CNN_MIN(band, g.P - p0);
                st = cnn_sgemm(CNN_TRANS, CNN_NO_TRANS, (size_t)crs, (size_t)(rows * g.Q), (size_t)g.Kg,
                               1.0f, w + grp * g.Kg * crs, (size_t)crs,
                               dy + (n * g.K + grp * g.Kg) * PQ + p0 * g.Q, (size_t)PQ, 0.0f, col,
                               (size_t)(rows * g.Q), NULL);
                if (st != CNN_OK) return st;
                cnn_conv_col2im(&g, col, p0, rows, dxg);
            }
        }
    return CNN_OK;
}

cnn_status cnn_conv2d_backward_weight(const cnn_conv_shape *shape, const float *x, const float *dy,
                                      float *dw, float *db) {
    return cnn_conv2d_backward_weight_for(CNN_CONV_AUTO, shape, x, dy, dw, db);
}

// x is (N,C,H,W), dy is (N,K,P,Q), dw is (K,C/groups,R,S) +=, db is (K) += (may be NULL)
cnn_status cnn_conv2d_backward_weight_for(cnn_conv_algorithm algorithm, const cnn_conv_shape *shape,
                                          const float *x, const float *dy, float *dw, float *db) {
    if (!valid_algorithm(algorithm)) return CNN_ERR_INVALID_ARGUMENT;
    conv_geom g;
    cnn_status st = cnn_conv_geom_init(shape, &g);
    if (st != CNN_OK) return st;
    if (g.N == 0) return CNN_OK;
    if (!x || !dy || !dw) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t PQ = g.P * g.Q;
    if (db) {
        /* db[k] += sum over n, p, q of dy, accumulated in double (memory-bound either way). */
        const int nt = cnn_threads_for(g.K);
        CNN_OMP_PARALLEL_FOR(nt)
        for (int64_t k = 0; k < g.K; k++) {
            /* Eight partial sums, one per lane, so the compiler can vectorise the float -> double
             * adds without reassociating (a single chain ran at one add per 4 cycles: 7% of a LeNet
             * step). The lanes are combined in a fixed order: deterministic for any thread count. */
            double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int64_t n = 0; n < g.N; n++) {
                const float *CNN_RESTRICT d = dy + (n * g.K + k) * PQ;
                int64_t i = 0;
                for (; i + 8 <= PQ; i += 8)
                    for (int l = 0; l < 8; l++) lane[l] += d[i + l];
                for (; i < PQ; i++) lane[i & 7] += d[i];
            }
            db[k] += (float)(((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7])));
        }
    }
    if (g.Cg == 1 && g.G > 1) {
        depthwise_backward_weight(&g, x, dy, dw);
        return CNN_OK;
    }
    /* Stride-1 3x3 layers: through the Winograd transforms, with the forward's tile (see
     * gradient_tile); 5x5 ones through F(2x2, 5x5) where the forward runs it. */
    const int m = five_by_five_shape(&g) ? five_by_five_tile(algorithm, shape) : gradient_tile(algorithm, &g, shape);
    if (m > 0) return cnn_winograd_backward_weight(m, shape, x, dy, dw);
    /* A dense layer (see conv_is_dense) is one GEMM, even when small enough for the direct sum
     * (1x1 256 -> 64 at 1x1, batch 64: 0.58x). One that is dense only once trimmed (3x3 at 1x1)
     * keeps the direct sum where it applies: through the GEMM it pays the trimmed buffer and the
     * scatter (16 -> 64: 1.13x). */
    if (!conv_is_dense(&g) && cnn_conv_backward_weight_direct_applies(&g))
        return cnn_conv_backward_weight_direct(&g, x, dy, dw);
    /* Taps that only read padding (see cnn_conv_trim_taps) have a zero gradient: the GEMM runs
     * with the trimmed kernel into a zeroed buffer, which is then added into dw's window. */
    conv_geom t;
    int64_t r0, s0;
    if (cnn_conv_trim_taps(&g, &t, &r0, &s0)) {
        const int64_t planes = t.K * t.Cg, taps = t.R * t.S;
        float *dwt = (float *)cnn_workspace(CNN_CONV_SLOT_TRIM_DW, (size_t)(planes * taps) * sizeof(float));
        if (!dwt) return CNN_ERR_OUT_OF_MEMORY;
        memset(dwt, 0, (size_t)(planes * taps) * sizeof(float));
        if ((st = backward_weight_gemm(&t, x, dy, dwt)) != CNN_OK) return st;
        const int nt = planes * taps >= 32768 ? cnn_threads_for(planes) : 1;
        if (taps > CONV_TRIM_MAX_TAPS) {
            CNN_OMP_PARALLEL_FOR(nt)
            for (int64_t i = 0; i < planes; i++)
                for (int64_t r = 0; r < t.R; r++)
                    for (int64_t s = 0; s < t.S; s++)
                        dw[(i * g.R + r0 + r) * g.S + s0 + s] += dwt[(i * t.R + r) * t.S + s];
            return CNN_OK;
        }
        /* The window's taps as offsets within a plane (see cnn_conv_trim_weights). */
        int64_t off[CONV_TRIM_MAX_TAPS];
        for (int64_t r = 0; r < t.R; r++)
            for (int64_t s = 0; s < t.S; s++) off[r * t.S + s] = (r0 + r) * g.S + s0 + s;
        const int64_t RS = g.R * g.S;
        CNN_OMP_PARALLEL_FOR(nt)
        for (int64_t i = 0; i < planes; i++) {
            float *CNN_RESTRICT d = dw + i * RS;
            const float *CNN_RESTRICT src = dwt + i * taps;
            for (int64_t j = 0; j < taps; j++) d[off[j]] += src[j];
        }
        return CNN_OK;
    }
    return backward_weight_gemm(&g, x, dy, dw);
}

/* dW_g (Kg x CgRS) += dy_g * col^T through the GEMM, several images per call on small planes. */
static cnn_status backward_weight_gemm(const conv_geom *gp, const float *x, const float *dy, float *dw) {
    const conv_geom g = *gp;
    cnn_status st;
    /* dW (K x CRS) += dy^T (K x N) * x (N x CHW), CRS = CHW. */
    if (conv_is_dense(&g)) {
        const size_t chw = (size_t)(g.C * g.H * g.W);
        return cnn_sgemm(CNN_TRANS, CNN_NO_TRANS, (size_t)g.K, chw, (size_t)g.N, 1.0f, dy, (size_t)g.K, x, chw,
                         1.0f, dw, chw, NULL);
    }
    const int64_t crs = g.Cg * g.R * g.S, PQ = g.P * g.Q, HW = g.H * g.W;
    const int64_t nb = cnn_conv_batch_images(&g);
    if (nb > 1) {
        /* Small planes, several images per GEMM: dW_g += dyc (Kg x nimg*PQ) * col^T, with
         * col = im2col of nimg images and dyc gathered from dy; the GEMM's K runs over nimg*PQ. */
        float *col, *dyc;
        if ((st = cnn_conv_image_buffers(&g, nb, &col, &dyc)) != CNN_OK) return st;
        for (int64_t n0 = 0; n0 < g.N; n0 += nb) {
            const int64_t nimg = CNN_MIN(nb, g.N - n0), cols = nimg * PQ;
            for (int64_t grp = 0; grp < g.G; grp++) {
                cnn_conv_im2col_images(&g, x + (n0 * g.C + grp * g.Cg) * HW, g.C * HW, nimg, col);
                cnn_conv_gather_images(&g, n0, nimg, grp, dy, dyc);
                st = cnn_sgemm(CNN_NO_TRANS, CNN_TRANS, (size_t)g.Kg, (size_t)crs, (size_t)cols, 1.0f, dyc,
                               (size_t)cols, col, (size_t)cols, 1.0f, dw + grp * g.Kg * crs, (size_t)crs,
                               NULL);
                if (st != CNN_OK) return st;
            }
        }
        return CNN_OK;
    }
    if (is_pointwise(&g)) {
        for (int64_t n = 0; n < g.N; n++)
            for (int64_t grp = 0; grp < g.G; grp++) {
                st = cnn_sgemm(CNN_NO_TRANS, CNN_TRANS, (size_t)g.Kg, (size_t)g.Cg, (size_t)HW, 1.0f,
                               dy + (n * g.K + grp * g.Kg) * PQ, (size_t)PQ,
                               x + (n * g.C + grp * g.Cg) * HW, (size_t)HW, 1.0f,
                               dw + grp * g.Kg * g.Cg, (size_t)g.Cg, NULL);
                if (st != CNN_OK) return st;
            }
        return CNN_OK;
    }
    const int64_t band = band_rows(&g);
    float *col = (float *)cnn_workspace(CNN_CONV_SLOT_COL, (size_t)(crs * band * g.Q) * sizeof(float));
    if (!col) return CNN_ERR_OUT_OF_MEMORY;
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t grp = 0; grp < g.G; grp++)
            for (int64_t p0 = 0; p0 < g.P; p0 += band) {
                const int64_t rows = CNN_MIN(band, g.P - p0);
                cnn_conv_im2col(&g, x + (n * g.C + grp * g.Cg) * HW, p0, rows, col);
                st = cnn_sgemm(CNN_NO_TRANS, CNN_TRANS, (size_t)g.Kg, (size_t)crs, (size_t)(rows * g.Q),
                               1.0f, dy + (n * g.K + grp * g.Kg) * PQ + p0 * g.Q, (size_t)PQ, col,
                               (size_t)(rows * g.Q), 1.0f, dw + grp * g.Kg * crs, (size_t)crs, NULL);
                if (st != CNN_OK) return st;
            }
    return CNN_OK;
}
