/* Direct convolution: valid for every shape, no column buffer. Two kernels:
 *
 * - Vectorised over output channels (groups with >= DIRECT_K_MIN output channels): the weights are
 *   packed once as (group, block of 16 output channels, c, r, s, 16), zero-padded past Kg, and a
 *   register tile of 16 channels x QB output columns accumulates
 *       acc[q][j] += wp[c][r][s][j] * x[c][p*sh - ph + r*dh][q*sw - pw + s*dw]
 *   over every (c, r, s): one weight vector and QB broadcast inputs per step, like a GEMM
 *   microkernel with the im2col done implicitly. Columns whose taps reach into the padding run
 *   one at a time with a per-tap check.
 * - Vectorised over the output row (depthwise and other groups with few output channels): a row of
 *   up to DIRECT_KB channels is accumulated in a small per-thread buffer,
 *       acc[j][q] += w[k0+j][c][r][s] * x[c][p*sh - ph + r*dh][q*sw - pw + s*dw]
 *   for the q whose tap lies inside the image (padding is skipped, never read).
 *
 * Both are plain C compiled three times, once per ISA target, so the compiler vectorises them for
 * AVX-512, AVX2+FMA or the baseline; work items (image, group, channel block, output row) are
 * spread over the threads. */
#include "conv_internal.h"

#include <string.h>

/* 4 output channels per item: 4 FMAs per input load, while the 4 accumulator rows of a 224-wide
 * layer (3.5 KiB) still sit in L1. Chosen on this machine (2 cores AMD EPYC Zen 5, AVX-512). */
#define DIRECT_KB 4

static inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static inline int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

// x is (N,C,H,W), w is (K,C/groups,R,S), y is (N,K,P,Q); item = (n, group, channel block, row p)
static ALWAYS_INLINE void direct_item(const conv_geom *g, const float *x, const float *w,
                                      const float *bias, const float *residual, int relu, float *y,
                                      int64_t item, float *CNN_RESTRICT acc) {
    const int64_t kblocks = (g->Kg + DIRECT_KB - 1) / DIRECT_KB;
    const int64_t p = item % g->P;
    int64_t t = item / g->P;
    const int64_t kb_i = t % kblocks;
    t /= kblocks;
    const int64_t grp = t % g->G, n = t / g->G;
    const int64_t k0 = grp * g->Kg + kb_i * DIRECT_KB;
    const int64_t kb = CNN_MIN(DIRECT_KB, grp * g->Kg + g->Kg - k0);
    const int64_t Q = g->Q, sw = g->sw;
    const float *xg = x + (n * g->C + grp * g->Cg) * g->H * g->W;

    memset(acc, 0, (size_t)(DIRECT_KB * Q) * sizeof(float));
    float *CNN_RESTRICT a0 = acc, *CNN_RESTRICT a1 = acc + Q, *CNN_RESTRICT a2 = acc + 2 * Q,
                        *CNN_RESTRICT a3 = acc + 3 * Q;
    const int64_t wk = g->Cg * g->R * g->S; /* weights per output channel */
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t r = 0; r < g->R; r++) {
            const int64_t h = p * g->sh - g->ph + r * g->dh;
            if (h < 0 || h >= g->H) continue;
            const float *CNN_RESTRICT xrow = xg + (c * g->H + h) * g->W;
            for (int64_t s = 0; s < g->S; s++) {
                const int64_t off = s * g->dw - g->pw;
                const int64_t lo = CNN_MAX(0, ceil_div(-off, sw));
                const int64_t hi = CNN_MIN(Q, floor_div(g->W - 1 - off, sw) + 1);
                if (hi <= lo) continue;
                const float *wcs = w + k0 * wk + (c * g->R + r) * g->S + s;
                if (kb == DIRECT_KB) {
                    const float w0 = wcs[0], w1 = wcs[wk], w2 = wcs[2 * wk], w3 = wcs[3 * wk];
                    if (sw == 1) {
                        const float *CNN_RESTRICT xs = xrow + off + lo;
                        for (int64_t q = 0; q < hi - lo; q++) {
                            const float v = xs[q];
                            a0[lo + q] += w0 * v;
                            a1[lo + q] += w1 * v;
                            a2[lo + q] += w2 * v;
                            a3[lo + q] += w3 * v;
                        }
                    } else {
                        for (int64_t q = lo; q < hi; q++) {
                            const float v = xrow[q * sw + off];
                            a0[q] += w0 * v;
                            a1[q] += w1 * v;
                            a2[q] += w2 * v;
                            a3[q] += w3 * v;
                        }
                    }
                } else {
                    /* The last block of a group, and depthwise (Kg = channel multiplier, often 1). */
                    for (int64_t j = 0; j < kb; j++) {
                        const float wj = wcs[j * wk];
                        float *CNN_RESTRICT aj = acc + j * Q;
                        if (sw == 1) {
                            for (int64_t q = lo; q < hi; q++) aj[q] += wj * xrow[q + off];
                        } else {
                            for (int64_t q = lo; q < hi; q++) aj[q] += wj * xrow[q * sw + off];
                        }
                    }
                }
            }
        }
    /* Epilogue: y = relu?(acc + bias + residual). */
    for (int64_t j = 0; j < kb; j++) {
        const int64_t o = ((n * g->K + k0 + j) * g->P + p) * Q;
        const float b = bias ? bias[k0 + j] : 0.0f;
        const float *CNN_RESTRICT aj = acc + j * Q;
        float *CNN_RESTRICT yo = y + o;
        if (residual) {
            const float *CNN_RESTRICT ro = residual + o;
            for (int64_t q = 0; q < Q; q++) yo[q] = aj[q] + b + ro[q];
        } else {
            for (int64_t q = 0; q < Q; q++) yo[q] = aj[q] + b;
        }
        if (relu)
            for (int64_t q = 0; q < Q; q++) yo[q] = yo[q] < 0.0f ? 0.0f : yo[q]; /* NaN passes */
    }
}

/* ---- Vectorised over output channels ---------------------------------------------------- */

/* Output channels per packed block: one AVX-512 vector, two AVX2 vectors, four SSE vectors. */
#define DK 16
/* Groups with fewer output channels waste most of the 16 lanes: use the row kernel instead. */
#define DIRECT_K_MIN 8
#define QB_MAX 12
/* Flat tile positions (see flat_item): AVX-512 28 of its 32 zmm registers as accumulators. */
#define DIRECT_FLAT_NP_MAX 28
typedef float direct_vec __attribute__((vector_size(DK * sizeof(float)), aligned(4)));

static int64_t kblocks16(const conv_geom *g) { return (g->Kg + DK - 1) / DK; }

int cnn_conv_direct_uses_packed(const conv_geom *g) { return g->Kg >= DIRECT_K_MIN; }

size_t cnn_conv_direct_packed_floats(const conv_geom *g) {
    if (!cnn_conv_direct_uses_packed(g)) return 0;
    return (size_t)(g->G * kblocks16(g) * g->Cg * g->R * g->S * DK);
}

// w is (K,Cg,R,S); wp is (G, ceil(Kg/16), Cg, R, S, 16), zero past Kg
void cnn_conv_direct_pack(const conv_geom *g, const float *w, float *wp) {
    const int64_t crs = g->Cg * g->R * g->S, kbs = kblocks16(g);
    for (int64_t grp = 0; grp < g->G; grp++)
        for (int64_t b = 0; b < kbs; b++) {
            float *dst = wp + (grp * kbs + b) * crs * DK;
            for (int64_t i = 0; i < crs; i++)
                for (int64_t j = 0; j < DK; j++) {
                    const int64_t kk = b * DK + j;
                    dst[i * DK + j] = kk < g->Kg ? w[(grp * g->Kg + kk) * crs + i] : 0.0f;
                }
        }
}

/* A register tile of nq positions x 16 channels (tile[i][j]) into the (K, P, Q) layout: for the
 * first kb channels, y[j*plane + i] = relu?(tile[i][j] + bias[j] + residual[j*plane + i]). */
static ALWAYS_INLINE void store_tile(float (*CNN_RESTRICT tile)[DK], int64_t nq, int64_t kb, const float *bias,
                                     const float *residual, int relu, float *y, int64_t plane) {
    for (int64_t j = 0; j < kb; j++) {
        const float bj = bias ? bias[j] : 0.0f;
        for (int64_t i = 0; i < nq; i++) {
            float v = tile[i][j] + bj;
            if (residual) v += residual[j * plane + i];
            if (relu) v = v < 0.0f ? 0.0f : v;
            y[j * plane + i] = v;
        }
    }
}

/* One tile: 16 channels x QB consecutive output columns starting at q0, every tap inside the image
 * when `interior`, else each (column, tap) checked against the row. Result in out[QB][16]. */
static ALWAYS_INLINE void kvec_tile(const conv_geom *g, const float *CNN_RESTRICT xg,
                                    const float *CNN_RESTRICT wp, int64_t p, int64_t q0,
                                    const int QB, const int interior, float (*CNN_RESTRICT out)[DK]) {
    float acc[QB_MAX][DK];
    for (int qi = 0; qi < QB; qi++)
        for (int j = 0; j < DK; j++) acc[qi][j] = 0.0f;
    const int64_t sw = g->sw, dw = g->dw, S = g->S;
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t r = 0; r < g->R; r++) {
            const int64_t h = p * g->sh - g->ph + r * g->dh;
            if (h < 0 || h >= g->H) continue;
            const float *CNN_RESTRICT xr = xg + (c * g->H + h) * g->W;
            const float *CNN_RESTRICT wr = wp + (c * g->R + r) * S * DK;
            const int64_t base = q0 * sw - g->pw; /* input column of tap s = 0 at q0 */
            for (int64_t s = 0; s < S; s++) {
                const float *CNN_RESTRICT wv = wr + s * DK;
                if (interior) {
                    const float *CNN_RESTRICT xs = xr + base + s * dw;
                    for (int qi = 0; qi < QB; qi++) {
                        const float xv = xs[qi * sw];
                        for (int j = 0; j < DK; j++) acc[qi][j] += wv[j] * xv;
                    }
                } else {
                    for (int qi = 0; qi < QB; qi++) {
                        const int64_t col = base + s * dw + qi * sw;
                        if (col < 0 || col >= g->W) continue;
                        const float xv = xr[col];
                        for (int j = 0; j < DK; j++) acc[qi][j] += wv[j] * xv;
                    }
                }
            }
        }
    for (int qi = 0; qi < QB; qi++)
        for (int j = 0; j < DK; j++) out[qi][j] = acc[qi][j];
}

// x is (N,C,H,W), wp packed (see cnn_conv_direct_pack), y is (N,K,P,Q);
// item = (n, group, block of 16 channels, output row p)
static ALWAYS_INLINE void kvec_item(const conv_geom *g, const float *x, const float *wp,
                                    const float *bias, const float *residual, int relu, float *y,
                                    int64_t item, const int QB) {
    const int64_t kbs = kblocks16(g);
    const int64_t p = item % g->P;
    int64_t t = item / g->P;
    const int64_t b = t % kbs;
    t /= kbs;
    const int64_t grp = t % g->G, n = t / g->G;
    const int64_t k0 = grp * g->Kg + b * DK;
    const int64_t kb = CNN_MIN(DK, g->Kg - b * DK);
    const int64_t Q = g->Q, crs = g->Cg * g->R * g->S;
    const float *xg = x + (n * g->C + grp * g->Cg) * g->H * g->W;
    const float *wb = wp + (grp * kbs + b) * crs * DK;
    /* Interior columns: every tap s in [0, S) reads inside the row,
     * 0 <= q*sw - pw and q*sw - pw + (S-1)*dw <= W-1. */
    int64_t qa = ceil_div(g->pw, g->sw), qb = floor_div(g->W - 1 + g->pw - (g->S - 1) * g->dw, g->sw) + 1;
    qa = CNN_MIN(CNN_MAX(qa, 0), Q);
    qb = CNN_MAX(CNN_MIN(qb, Q), qa);
    float tile[QB_MAX][DK];
    int64_t q = 0;
    /* Tiles of QB columns where all taps are inside, then tiles of 4 (the tail of the interior and
     * the padded edges, checked), then single columns: a 7-wide layer still runs 4-column tiles. */
    while (q < Q) {
        int nq;
        if (q >= qa && q + QB <= qb) {
            kvec_tile(g, xg, wb, p, q, QB, 1, tile);
            nq = QB;
        } else if (q + 4 <= Q) {
            if (q >= qa && q + 4 <= qb) kvec_tile(g, xg, wb, p, q, 4, 1, tile);
            else kvec_tile(g, xg, wb, p, q, 4, 0, tile);
            nq = 4;
        } else {
            kvec_tile(g, xg, wb, p, q, 1, 0, tile);
            nq = 1;
        }
        const int64_t o = ((n * g->K + k0) * g->P + p) * Q + q;
        store_tile(tile, nq, kb, bias ? bias + k0 : NULL, residual ? residual + o : NULL, relu, y + o, g->P * Q);
        q += nq;
    }
}

/* ---- Stride 1: flat tiles over a zero-padded copy --------------------------------------------
 * The row tiles above leave short, checked edge tiles on every row (a 28-wide row with padding 1
 * ran as 4 + 12 + 4 + 4 + 4 columns), each streaming the block's weights (16 C R S floats, 295 KiB
 * at C = 512) again: 57 % of the peak on VGG's conv4_2, 29 % on ResNet's 7x7 layer. At stride 1,
 * with the image copied into a zero-padded plane of Wp-float rows (flat_wp), output (p, q) reads tap
 * (r, s) at flat position f + r dh Wp + s dw of its channel, f = p Wp + q: one run of consecutive f
 * covers several rows, every tap is a constant offset, and no column needs a check. A tile is NP
 * consecutive f (28 or 21 on AVX-512, whichever computes fewer positions; the Wp - Q positions at
 * the end of each padded row are computed and dropped); the register tile is 16 channels x NP
 * positions, one weight vector per NP FMAs. An image whose padded copy exceeds
 * DIRECT_FLAT_BAND_BYTES is copied and computed in bands of output rows of about that much padded
 * input each: VGG's 224^2 layer copied whole (13 MiB) ran at 64-69 % of the peak, in 1 MiB bands at
 * 81-84 % (256 KiB bands 71-73 %, 2 MiB the same as 1 MiB). `cnn bench conv --strategy direct`,
 * 2 threads, % of the peak against the row tiles: VGG conv1_2..conv5_2 72-75 / 70-78 / 75-82 /
 * 56-59 / 40-43 -> 76-85 / 87-92 / 89-91 / 89-93 / 84-91, ResNet l1..l4 72-75 / 56-60 / 40-43 /
 * 30-32 -> 83-90 / 85-90 / 85-88 / 84-86. */
#define DIRECT_FLAT_BAND_BYTES ((size_t)1 << 20)

/* The padded copy: Hp rows of Wp floats per channel, image row h at row h + ph, columns from pw.
 * Adjacent rows share their padding: a row's right padding is the next row's first pw zeros, so a
 * row is W + pw floats (at least Q, for padding wider than the kernel), and only Wp - Q positions
 * per row are dropped (one for a 3x3, pad-1 layer: ResNet's 7x7 plane computes 56 positions for its
 * 49 outputs instead of 63). */
static int64_t flat_hp(const conv_geom *g) { return g->H + 2 * g->ph; }
static int64_t flat_wp(const conv_geom *g) { return CNN_MAX(g->W + g->pw, g->Q); }
/* Reads run past a channel's last row by at most a row plus a tile (the last tile's dropped
 * positions): the copy leaves that much slack after its last channel. */
static int64_t flat_slack(const conv_geom *g) { return flat_wp(g) + DIRECT_FLAT_NP_MAX; }
/* Flat positions of one output plane: rows 0..P-2 in full (Wp each), the last row's Q. */
static int64_t flat_positions(const conv_geom *g) { return (g->P - 1) * flat_wp(g) + g->Q; }

/* Flat positions of a band of `rows` output rows: rows - 1 in full (Wp each), the last row's Q. */
static int64_t flat_positions_rows(const conv_geom *g, int64_t rows) { return (rows - 1) * flat_wp(g) + g->Q; }

/* Stride 1 and at least half of the computed positions (whole tiles of the widest register tile)
 * real outputs: ResNet's 7x7 plane keeps 49 of 56 (84-86 % of the peak against the row tiles'
 * 30 %, 2 threads), ResNet-18's 2x2 and 1x1 planes at CIFAR size would keep 4 and 1 of 28 (measured
 * 14 % and 3.5 % against 25 % and 39 %). Independent of the ISA, so a plan's workspace does not
 * change with it. */
static int direct_uses_flat(const conv_geom *g) {
    if (!cnn_conv_direct_uses_packed(g) || g->sh != 1 || g->sw != 1) return 0;
    const int64_t F = flat_positions(g), computed = (F + DIRECT_FLAT_NP_MAX - 1) / DIRECT_FLAT_NP_MAX * DIRECT_FLAT_NP_MAX;
    return 2 * g->P * g->Q >= computed;
}

/* Output rows per band: all P when the padded image is at most DIRECT_FLAT_BAND_BYTES, else as
 * many as keep the band's padded rows within it (at least one). */
static int64_t flat_band(const conv_geom *g) {
    const size_t row = (size_t)(g->C * flat_wp(g)) * sizeof(float);
    if (row * (size_t)flat_hp(g) <= DIRECT_FLAT_BAND_BYTES) return g->P;
    const int64_t rows = (int64_t)(DIRECT_FLAT_BAND_BYTES / row) - (g->R - 1) * g->dh;
    return CNN_MAX((int64_t)1, CNN_MIN(rows, g->P));
}
/* Padded rows per channel in the copy: a band's output rows plus the kernel's reach. */
static int64_t flat_band_hp(const conv_geom *g) { return flat_band(g) + (g->R - 1) * g->dh; }

/* Items ordered tile by tile (every channel block of a tile in turn) when the weights are smaller
 * than the padded copy of a band, else channel block by channel block. */
static int flat_tile_major(const conv_geom *g) {
    return g->K * g->Cg * g->R * g->S < g->C * flat_band_hp(g) * flat_wp(g);
}

/* Images per padded copy: one when banded, else at most DIRECT_FLAT_BYTES of padded input (at
 * least one image). */
#define DIRECT_FLAT_BYTES ((size_t)16 << 20)
static int64_t flat_images(const conv_geom *g) {
    if (flat_band(g) < g->P) return 1;
    const size_t per = (size_t)(g->C * flat_hp(g) * flat_wp(g)) * sizeof(float);
    const int64_t n = (int64_t)(DIRECT_FLAT_BYTES / (per ? per : 1));
    return CNN_MAX((int64_t)1, CNN_MIN(n, g->N));
}
static size_t flat_buffer_floats(const conv_geom *g) {
    return (size_t)(flat_images(g) * g->C * flat_band_hp(g) * flat_wp(g) + flat_slack(g));
}

/* Padded rows [i0, i0 + rows) of channel c of image j of x (N, C, H, W) into xp (nimg, C, hp, Wp):
 * padded row i holds input row i - ph after pw zeros, zeros after it up to Wp (the next row's
 * padding when Wp = flat_wp(g), the row's own with Wp = W + 2 pw). */
static void flat_pad_rows(const conv_geom *g, const float *x, int64_t j, int64_t c, int64_t i0, int64_t rows,
                          int64_t hp, int64_t Wp, float *xp) {
    const float *src = x + (j * g->C + c) * g->H * g->W;
    float *dst = xp + (j * g->C + c) * hp * Wp;
    for (int64_t i = 0; i < rows; i++) {
        float *row = dst + i * Wp;
        const int64_t h = i0 + i - g->ph;
        if (h < 0 || h >= g->H) {
            memset(row, 0, (size_t)Wp * sizeof(float));
            continue;
        }
        memset(row, 0, (size_t)g->pw * sizeof(float));
        memcpy(row + g->pw, src + h * g->W, (size_t)g->W * sizeof(float));
        memset(row + g->pw + g->W, 0, (size_t)(Wp - g->pw - g->W) * sizeof(float));
    }
}

/* The register tile of both wide kernels: acc[i] (16 channels) = sum over (c, r, s) of the
 * block's weight vector for (c, r, s) times x at xg + c cs + r dh rs + s dw + i sw, for i < NP.
 * cs and rs are the copy's channel and row strides. The 16 channels are one value of the
 * compiler's vector type (a zmm, two ymm or four xmm): written as scalar loops, the vectoriser took
 * the positions (contiguous in x) as the vector axis and gathered the accumulators. */
static ALWAYS_INLINE void tile_accumulate(const conv_geom *g, const float *CNN_RESTRICT xg, int64_t cs, int64_t rs,
                                          const float *CNN_RESTRICT wb, const int NP, const int64_t sw,
                                          direct_vec *acc) {
#pragma clang loop unroll(full)
    for (int i = 0; i < NP; i++) acc[i] = (direct_vec){0};
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t r = 0; r < g->R; r++) {
            const float *CNN_RESTRICT xr = xg + c * cs + r * g->dh * rs;
            const float *CNN_RESTRICT wr = wb + (c * g->R + r) * g->S * DK;
            for (int64_t s = 0; s < g->S; s++) {
                const float *CNN_RESTRICT xs = xr + s * g->dw;
                const direct_vec wv = *(const direct_vec *)(wr + s * DK);
#pragma clang loop unroll(full)
                for (int i = 0; i < NP; i++) acc[i] += wv * xs[i * sw];
            }
        }
}

/* The out-of-line narrow store of the active ISA (narrow_tile_store, below), for flat_item. */
typedef void (*direct_narrow_store_fn)(const void *acc, int64_t kb, const float *bias, const float *residual,
                                       int relu, float *y, int64_t plane);

// xp is the padded copy of output rows [p0, p0 + rows) of image n (C, hp, Wp); item = (group, block
// of 16 channels, tile of NP flat positions); writes those rows of image n of y (N, K, P, Q);
// narrow_store: NULL, or the narrow store for NP
static ALWAYS_INLINE void flat_item(const conv_geom *g, const float *xp, int64_t hp, int64_t p0, int64_t rows,
                                    const float *wp, const float *bias, const float *residual, int relu,
                                    float *y, int64_t n, int64_t item, const int NP,
                                    direct_narrow_store_fn narrow_store) {
    const int64_t kbs = kblocks16(g), F = flat_positions_rows(g, rows);
    const int64_t tiles = (F + NP - 1) / NP, blocks = g->G * kbs;
    /* Consecutive items share what is larger: the weights of a channel block (deep layers) or the
     * input rows of a tile (large planes; VGG's 224^2 layer streamed its 13 MiB padded input once
     * per channel block). */
    int64_t tile, t;
    if (flat_tile_major(g)) {
        tile = item / blocks;
        t = item % blocks;
    } else {
        tile = item % tiles;
        t = item / tiles;
    }
    const int64_t b = t % kbs, grp = t / kbs;
    const int64_t k0 = grp * g->Kg + b * DK, kb = CNN_MIN(DK, g->Kg - b * DK);
    const int64_t Wp = flat_wp(g), f0 = tile * NP;
    const float *CNN_RESTRICT xg = xp + grp * g->Cg * hp * Wp + f0;
    const float *CNN_RESTRICT wb = wp + (grp * kbs + b) * g->Cg * g->R * g->S * DK;
    direct_vec acc[DIRECT_FLAT_NP_MAX];
    tile_accumulate(g, xg, hp * Wp, Wp, wb, NP, 1, acc);
    /* A narrow tile (AVX2's 6 positions) whose positions are all outputs of one row (a tile starts
     * before the band's last output, so its row is one of the band's): the transposed store, out of
     * line. Inlined, it made the compiler spill an accumulator inside the FMA loop. */
    const int64_t fp = f0 / Wp, fq = f0 - fp * Wp;
    if (narrow_store && fq + NP <= g->Q) {
        const int64_t o = ((n * g->K + k0) * g->P + p0 + fp) * g->Q + fq;
        narrow_store(acc, kb, bias ? bias + k0 : NULL, residual ? residual + o : NULL, relu, y + o, g->P * g->Q);
        return;
    }
    /* Epilogue: the positions that are outputs, y = relu?(acc + bias + residual), channel by
     * channel so that each channel's stores are consecutive floats of its plane. */
    int64_t at[DIRECT_FLAT_NP_MAX]; /* offset in the output plane, -1: a dropped position */
    for (int i = 0; i < NP; i++) {
        const int64_t f = f0 + i, p = f / Wp, q = f - p * Wp;
        at[i] = q < g->Q && p < rows ? (p0 + p) * g->Q + q : -1;
    }
    float out[DK][DIRECT_FLAT_NP_MAX];
    for (int i = 0; i < NP; i++)
        for (int j = 0; j < DK; j++) out[j][i] = acc[i][j];
    for (int64_t j = 0; j < kb; j++) {
        const int64_t o = (n * g->K + k0 + j) * g->P * g->Q;
        const float bj = bias ? bias[k0 + j] : 0.0f;
        for (int i = 0; i < NP; i++) {
            if (at[i] < 0) continue;
            float v = out[j][i] + bj;
            if (residual) v += residual[o + at[i]];
            if (relu) v = v < 0.0f ? 0.0f : v;
            y[o + at[i]] = v;
        }
    }
}

/* ---- Strided rows over a zero-padded copy ---------------------------------------------------
 * A strided layer (the 7x7/2 stem, AlexNet's 11x11/4) on its padded copy (direct_padded_forward):
 * every column is interior, so a register tile can be as wide as the flat tiles' without checks:
 * NP consecutive output columns of one row x 16 channels, tap (r, s) of column q0 + i at input
 * column (q0 + i) sw + s dw. The last tile of a row may run past Q: those columns read on into the
 * next padded row (or the copy's slack after the last one) and are dropped. The geometry g is the
 * padded one (no padding, one image). item = (group, block of 16 channels, output row, tile). */
static int64_t strided_tiles(const conv_geom *g, int NP) { return (g->Q + NP - 1) / NP; }

typedef int32_t direct_ivec __attribute__((vector_size(DK * sizeof(int32_t)), aligned(4)));

/* v (16 vectors of 16) transposed in place: four rounds of interleaving rows i and i + 8 (each
 * round rotates the bits of the (row, column) index by one; after four, rows and columns have
 * swapped). 64 two-source shuffles, against 256 single-lane extracts. */
static ALWAYS_INLINE void transpose16(direct_vec *v) {
    for (int round = 0; round < 4; round++) {
        direct_vec w[16];
        for (int i = 0; i < 8; i++) {
            w[2 * i] = __builtin_shufflevector(v[i], v[i + 8], 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            w[2 * i + 1] =
                __builtin_shufflevector(v[i], v[i + 8], 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        }
        for (int i = 0; i < 16; i++) v[i] = w[i];
    }
}

/* *v = relu?(*v + b + residual) with NaN passed through (only lanes below zero are cleared); the
 * residual's first n lanes are read. */
static ALWAYS_INLINE void epilogue_vec(direct_vec *v, float b, const float *res, int n, int relu) {
    *v += b;
    if (res) {
        direct_vec r = {0};
        for (int i = 0; i < n; i++) r[i] = res[i];
        *v += r;
    }
    if (relu) *v = (direct_vec)((direct_ivec)*v & ~(direct_ivec)(*v < (direct_vec){0}));
}

/* The epilogue of an NP-position tile (16 < NP <= 32) of kb channels, its first nq positions
 * outputs: position i of channel j goes to y[j * plane + i]. The accumulators (one vector of 16
 * channels per position) are transposed 16 x 16 at a time into one vector of positions per
 * channel, so each channel's outputs are vector stores. With single-lane extracts instead, the
 * code outside the FMA loop took 17 % of the 7x7/2 stem's samples (perf). */
static ALWAYS_INLINE void wide_tile_store(const direct_vec *acc, const int NP, int64_t nq, int64_t kb,
                                          const float *bias, const float *residual, int relu, float *y,
                                          int64_t plane) {
    direct_vec lo[16], hi[16];
    for (int i = 0; i < 16; i++) {
        lo[i] = acc[i];
        hi[i] = 16 + i < NP ? acc[16 + i] : (direct_vec){0};
    }
    transpose16(lo);
    transpose16(hi);
    for (int64_t j = 0; j < kb; j++) {
        const float bj = bias ? bias[j] : 0.0f;
        float *yo = y + j * plane;
        if (nq == NP) { /* the common case, with constant trip counts */
            epilogue_vec(&lo[j], bj, residual ? residual + j * plane : NULL, 16, relu);
            epilogue_vec(&hi[j], bj, residual ? residual + j * plane + 16 : NULL, NP - 16, relu);
            for (int i = 0; i < 16; i++) yo[i] = lo[j][i];
            for (int i = 0; i < NP - 16; i++) yo[16 + i] = hi[j][i];
            continue;
        }
        const int n0 = (int)CNN_MIN(nq, 16), n1 = (int)nq - n0;
        epilogue_vec(&lo[j], bj, residual ? residual + j * plane : NULL, n0, relu);
        epilogue_vec(&hi[j], bj, residual ? residual + j * plane + 16 : NULL, n1, relu);
        for (int i = 0; i < n0; i++) yo[i] = lo[j][i];
        for (int i = 0; i < n1; i++) yo[16 + i] = hi[j][i];
    }
}

typedef float direct_v8 __attribute__((vector_size(8 * sizeof(float)), aligned(4)));
typedef int32_t direct_iv8 __attribute__((vector_size(8 * sizeof(int32_t)), aligned(4)));

/* r (8 vectors of 8) transposed into t: the AVX 8x8 transpose, each step one instruction's
 * pattern: interleave pairs of rows within 128-bit halves (unpcklps / unpckhps), pair those
 * (shufps), then join halves (vperm2f128). 24 shuffles. */
static ALWAYS_INLINE void transpose8(const direct_v8 *r, direct_v8 *t) {
    direct_v8 u[8], v[8];
    for (int i = 0; i < 4; i++) {
        u[2 * i] = __builtin_shufflevector(r[2 * i], r[2 * i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        u[2 * i + 1] = __builtin_shufflevector(r[2 * i], r[2 * i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int h = 0; h < 2; h++) /* rows 0-3, then 4-7 */
        for (int i = 0; i < 2; i++) {
            const direct_v8 a = u[4 * h + i], b = u[4 * h + 2 + i];
            v[4 * h + 2 * i] = __builtin_shufflevector(a, b, 0, 1, 8, 9, 4, 5, 12, 13);
            v[4 * h + 2 * i + 1] = __builtin_shufflevector(a, b, 2, 3, 10, 11, 6, 7, 14, 15);
        }
    for (int j = 0; j < 4; j++) {
        t[j] = __builtin_shufflevector(v[j], v[4 + j], 0, 1, 2, 3, 8, 9, 10, 11);
        t[4 + j] = __builtin_shufflevector(v[j], v[4 + j], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}

/* *v = relu?(*v + residual) over the first n lanes (NaN passed through, as epilogue_vec). */
static ALWAYS_INLINE void narrow_epilogue(direct_v8 *v, const float *res, int n, int relu) {
    if (res) {
        direct_v8 r = {0};
        for (int i = 0; i < n; i++) r[i] = res[i];
        *v += r;
    }
    if (relu) *v = (direct_v8)((direct_iv8)*v & ~(direct_iv8)(*v < (direct_v8){0}));
}

/* The epilogue of a narrow tile (4 < NP <= 8 positions, AVX2's 6) of kb channels, its first nq
 * positions outputs: each half of the 16 channels transposed 8 x 8 (positions past NP zero) into
 * one vector of positions per channel, then y[j * plane + i] = relu?(v + bias + residual) for
 * i < nq. Through store_tile instead (a scalar extract, add and store per output), the code
 * outside the FMA loop took about 15 % of the AVX2 stem's samples (perf, 1 thread). Pointwise
 * 64 -> 256 at 56x56 0.82-0.85 against store_tile. flat_item calls it out of line (inlined there,
 * an accumulator spilled inside the FMA loop and 3x3 and 5x5 layers ran 1.13-1.27x slower); out of
 * line against flat_item's scalar store: LeNet-5's conv2 at batch 64 0.87-0.96, 5x5 16 -> 32 and
 * 16 -> 48 0.95-0.97 (1 and 2 threads, two runs; the same build against itself 0.98-1.01). */
static ALWAYS_INLINE void narrow_tile_store(const direct_vec *acc, const int NP, int64_t nq, int64_t kb,
                                            const float *bias, const float *residual, int relu, float *y,
                                            int64_t plane) {
    direct_v8 rows[2][8], cols[2][8];
    for (int i = 0; i < 8; i++) {
        const direct_vec a = i < NP ? acc[i] : (direct_vec){0};
        rows[0][i] = __builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7);
        rows[1][i] = __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15);
    }
    transpose8(rows[0], cols[0]);
    transpose8(rows[1], cols[1]);
#pragma clang loop unroll(full)
    for (int j = 0; j < DK; j++) { /* unrolled: each channel's vector stays in its register */
        if (j >= kb) break;
        direct_v8 v = cols[j >> 3][j & 7] + (bias ? bias[j] : 0.0f);
        float *yo = y + j * plane;
        const float *res = residual ? residual + j * plane : NULL;
        if (nq == NP) { /* the common case, with constant trip counts */
            narrow_epilogue(&v, res, NP, relu);
            for (int i = 0; i < NP; i++) yo[i] = v[i];
        } else {
            narrow_epilogue(&v, res, (int)nq, relu);
            for (int i = 0; i < nq; i++) yo[i] = v[i];
        }
    }
}

/* A wide kernel's tile of nq positions x kb channels into y (positions consecutive, channels
 * plane floats apart) with the epilogue: through an in-register transpose when the tile is wider
 * than a vector of channels (16 x 16 blocks) or 5-8 positions wide (8 x 8 blocks), else through
 * store_tile. */
static ALWAYS_INLINE void wide_item_store(const direct_vec *acc, const int NP, int64_t nq, int64_t kb,
                                          const float *bias, const float *residual, int relu, float *y,
                                          int64_t plane) {
    if (NP > DK) {
        wide_tile_store(acc, NP, nq, kb, bias, residual, relu, y, plane);
        return;
    }
    if (NP > 4 && NP <= 8) {
        narrow_tile_store(acc, NP, nq, kb, bias, residual, relu, y, plane);
        return;
    }
    float out[DIRECT_FLAT_NP_MAX][DK];
    for (int i = 0; i < NP; i++)
        for (int j = 0; j < DK; j++) out[i][j] = acc[i][j];
    store_tile(out, nq, kb, bias, residual, relu, y, plane);
}

static ALWAYS_INLINE void strided_item(const conv_geom *g, const float *xp, const float *wp, const float *bias,
                                       const float *residual, int relu, float *y, int64_t item, const int NP,
                                       const int64_t sw) {
    const int64_t kbs = kblocks16(g), tiles = strided_tiles(g, NP);
    const int64_t tile = item % tiles;
    int64_t t = item / tiles;
    const int64_t p = t % g->P;
    t /= g->P;
    const int64_t b = t % kbs, grp = t / kbs;
    const int64_t k0 = grp * g->Kg + b * DK, kb = CNN_MIN(DK, g->Kg - b * DK);
    const int64_t q0 = tile * NP, W = g->W;
    const float *CNN_RESTRICT xg = xp + (grp * g->Cg * g->H + p * g->sh) * W + q0 * sw;
    const float *CNN_RESTRICT wb = wp + (grp * kbs + b) * g->Cg * g->R * g->S * DK;
    direct_vec acc[DIRECT_FLAT_NP_MAX];
    tile_accumulate(g, xg, g->H * W, W, wb, NP, sw, acc);
    const int64_t nq = CNN_MIN((int64_t)NP, g->Q - q0), o = (k0 * g->P + p) * g->Q + q0;
    wide_item_store(acc, NP, nq, kb, bias ? bias + k0 : NULL, residual ? residual + o : NULL, relu, y + o,
                    g->P * g->Q);
}

/* ---- Pointwise: 1x1, stride 1, no padding ----------------------------------------------------
 * The flat tiles over the image as it lies: a 1x1 kernel reads no padding, so the padded copy
 * the flat path makes (and the barrier after it) buys nothing. Output position f of a plane reads
 * position f of each input channel: a tile is NP consecutive positions, NP consecutive floats per
 * channel. Only a plane's last tile can run past its end (into the next channel, or past the last
 * image): it reads the calling thread's copy of its positions instead, NP floats per channel, zeros
 * past the plane. item = (image, group, tile, block of 16 channels): the tile's inputs stay in L1
 * while every channel block uses them. */
static int direct_uses_pointwise(const conv_geom *g) {
    return cnn_conv_direct_uses_packed(g) && g->R == 1 && g->S == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 &&
           g->pw == 0;
}

static ALWAYS_INLINE void pointwise_item(const conv_geom *g, const float *x, const float *wp, const float *bias,
                                         const float *residual, int relu, float *y, int64_t item, float *tail,
                                         const int NP) {
    const int64_t kbs = kblocks16(g), HW = g->H * g->W, tiles = (HW + NP - 1) / NP;
    const int64_t b = item % kbs;
    int64_t t = item / kbs;
    const int64_t tile = t % tiles;
    t /= tiles;
    const int64_t grp = t % g->G, n = t / g->G;
    const int64_t k0 = grp * g->Kg + b * DK, kb = CNN_MIN(DK, g->Kg - b * DK);
    const int64_t f0 = tile * NP, nq = CNN_MIN((int64_t)NP, HW - f0);
    const float *xg = x + (n * g->C + grp * g->Cg) * HW + f0;
    const float *wb = wp + (grp * kbs + b) * g->Cg * DK;
    direct_vec acc[DIRECT_FLAT_NP_MAX];
    if (nq == NP) {
        tile_accumulate(g, xg, HW, 0, wb, NP, 1, acc);
    } else {
        for (int64_t c = 0; c < g->Cg; c++)
            for (int64_t i = 0; i < NP; i++) tail[c * NP + i] = i < nq ? xg[c * HW + i] : 0.0f;
        tile_accumulate(g, tail, NP, 0, wb, NP, 1, acc);
    }
    const int64_t o = (n * g->K + k0) * HW + f0;
    wide_item_store(acc, NP, nq, kb, bias ? bias + k0 : NULL, residual ? residual + o : NULL, relu, y + o, HW);
}

typedef void (*direct_fn)(const conv_geom *, const float *, const float *, const float *,
                          const float *, int, float *, int64_t, float *);

/* Register tile widths QB per ISA (16-channel accumulators): AVX-512 12 of its 32 zmm registers,
 * AVX2 6 x 2 = 12 of 16 ymm, SSE 3 x 4 = 12 of 16 xmm, leaving room for the weight vector(s). */
typedef void (*direct_flat_fn)(const conv_geom *, const float *, int64_t, int64_t, int64_t, const float *,
                               const float *, const float *, int, float *, int64_t, int64_t);

#define DEFINE_DIRECT(isa, attr, qb, np)                                                            \
    attr __attribute__((noinline)) static void cnn_f32_conv_direct_narrow_store__##isa(             \
        const void *acc, int64_t kb, const float *bias, const float *residual, int relu, float *y,   \
        int64_t plane) {                                                                              \
        /* Only AVX2's 6-position tiles call it; the 8 keeps the others' dead body valid. */        \
        if (np > 4 && np <= 8)                                                                        \
            narrow_tile_store((const direct_vec *)acc, np > 4 && np <= 8 ? np : 8, np, kb, bias,      \
                              residual, relu, y, plane);                                              \
    }                                                                                                 \
    attr static void cnn_f32_conv_direct_flat__##isa(const conv_geom *g, const float *xp, int64_t hp, \
                                                     int64_t p0, int64_t rows, const float *wp,      \
                                                     const float *bias, const float *residual,       \
                                                     int relu, float *y, int64_t n, int64_t item) {  \
        flat_item(g, xp, hp, p0, rows, wp, bias, residual, relu, y, n, item, np,                      \
                  np > 4 && np <= 8 ? cnn_f32_conv_direct_narrow_store__##isa : NULL);                \
    }                                                                                                 \
    attr static void cnn_f32_conv_direct_pointwise__##isa(const conv_geom *g, const float *x,        \
                                                          const float *wp, const float *bias,        \
                                                          const float *residual, int relu, float *y, \
                                                          int64_t item, float *tail) {               \
        pointwise_item(g, x, wp, bias, residual, relu, y, item, tail, np);                            \
    }                                                                                                 \
    attr static void cnn_f32_conv_direct_strided__##isa(const conv_geom *g, const float *x,          \
                                                        const float *wp, const float *bias,          \
                                                        const float *residual, int relu, float *y,   \
                                                        int64_t item, float *acc) {                  \
        (void)acc;                                                                                    \
        /* Stride 2 (the stem) as a constant: the 28 tap offsets become immediates. */             \
        if (g->sw == 2) strided_item(g, x, wp, bias, residual, relu, y, item, np, 2);                 \
        else strided_item(g, x, wp, bias, residual, relu, y, item, np, g->sw);                        \
    }                                                                                                 \
    attr static void cnn_f32_conv_direct_rows__##isa(const conv_geom *g, const float *x,             \
                                                     const float *w, const float *bias,              \
                                                     const float *residual, int relu, float *y,      \
                                                     int64_t item, float *acc) {                     \
        direct_item(g, x, w, bias, residual, relu, y, item, acc);                                     \
    }                                                                                                 \
    attr static void cnn_f32_conv_direct_kvec__##isa(const conv_geom *g, const float *x,             \
                                                     const float *wp, const float *bias,             \
                                                     const float *residual, int relu, float *y,      \
                                                     int64_t item, float *acc) {                     \
        (void)acc;                                                                                    \
        kvec_item(g, x, wp, bias, residual, relu, y, item, qb);                                       \
    }

DEFINE_DIRECT(generic, , 3, 3)
#if CNN_X86
DEFINE_DIRECT(avx2, CNN_TARGET_AVX2, 6, 6)
DEFINE_DIRECT(avx512, CNN_TARGET_AVX512, 12, 28)
/* 21 positions where that computes fewer of them: a 14x14 plane (209 flat positions) runs 10 x 21
 * instead of 8 x 28 (ResNet l3 85-88 % of the peak against 79-82 %). */
CNN_TARGET_AVX512 static void cnn_f32_conv_direct_flat21__avx512(const conv_geom *g, const float *xp, int64_t hp,
                                                                int64_t p0, int64_t rows, const float *wp,
                                                                const float *bias, const float *residual,
                                                                int relu, float *y, int64_t n, int64_t item) {
    flat_item(g, xp, hp, p0, rows, wp, bias, residual, relu, y, n, item, 21, NULL);
}
#endif

static direct_fn direct_variant(int kvec) {
#if CNN_X86
    switch (cnn_isa_active()) {
    case CNN_ISA_AVX512: return kvec ? cnn_f32_conv_direct_kvec__avx512 : cnn_f32_conv_direct_rows__avx512;
    case CNN_ISA_AVX2: return kvec ? cnn_f32_conv_direct_kvec__avx2 : cnn_f32_conv_direct_rows__avx2;
    default: break;
    }
#endif
    return kvec ? cnn_f32_conv_direct_kvec__generic : cnn_f32_conv_direct_rows__generic;
}

static direct_flat_fn direct_flat_variant(const conv_geom *g, int *np) {
#if CNN_X86
    const int64_t F = flat_positions_rows(g, flat_band(g));
    switch (cnn_isa_active()) {
    case CNN_ISA_AVX512:
        if ((F + 20) / 21 * 21 < (F + 27) / 28 * 28) {
            *np = 21;
            return cnn_f32_conv_direct_flat21__avx512;
        }
        *np = 28;
        return cnn_f32_conv_direct_flat__avx512;
    case CNN_ISA_AVX2: *np = 6; return cnn_f32_conv_direct_flat__avx2;
    default: break;
    }
#endif
    *np = 3;
    return cnn_f32_conv_direct_flat__generic;
}

/* The flat path: chunks of flat_images(g) images, or bands of flat_band(g) output rows of one
 * image, each padded into the calling thread's workspace (slot 3; the flat path keeps no
 * accumulator rows there), then its (image, group, channel block, tile) items, all in one parallel
 * region. */
static cnn_status direct_flat_forward(const conv_geom *g, const float *x, const float *wpacked,
                                      const float *bias, const float *residual, int relu, float *y) {
    float *xp = (float *)cnn_workspace(CNN_CONV_SLOT_ACC, flat_buffer_floats(g) * sizeof(float));
    if (!xp) return CNN_ERR_OUT_OF_MEMORY;
    int np;
    const direct_flat_fn fn = direct_flat_variant(g, &np);
    const int64_t nb = flat_images(g), band = flat_band(g), hp = flat_band_hp(g), Wp = flat_wp(g);
    const int64_t reach = (g->R - 1) * g->dh, image = g->C * hp * Wp, blocks = g->G * kblocks16(g);
    const int nt = cnn_threads_for(CNN_MIN(g->N, nb) * blocks * ((flat_positions_rows(g, band) + np - 1) / np));
    CNN_UNUSED(nt);
    /* The slack past the last channel: read by the last tile, never an output. */
    memset(xp + nb * image, 0, (size_t)flat_slack(g) * sizeof(float));
#if CNN_OMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    for (int64_t n0 = 0; n0 < g->N; n0 += nb)
        for (int64_t p0 = 0; p0 < g->P; p0 += band) {
            const int64_t cnt = CNN_MIN(nb, g->N - n0), rows = CNN_MIN(band, g->P - p0);
            const int64_t per = blocks * ((flat_positions_rows(g, rows) + np - 1) / np);
            const float *xn = x + n0 * g->C * g->H * g->W;
            CNN_PRAGMA(omp for schedule(static))
            for (int64_t i = 0; i < cnt * g->C; i++) flat_pad_rows(g, xn, i / g->C, i % g->C, p0, rows + reach, hp, Wp, xp);
            CNN_PRAGMA(omp for schedule(static))
            for (int64_t i = 0; i < cnt * per; i++) {
                const int64_t j = i / per;
                fn(g, xp + j * image, hp, p0, rows, wpacked, bias, residual, relu, y, n0 + j, i - j * per);
            }
        }
    return CNN_OK;
}

/* The wide row kernels of the active ISA (strided rows on a padded copy, or pointwise planes in
 * place) and their tile width, the flat tiles' widths. */
static direct_fn direct_wide_variant(int pointwise, int *np) {
#if CNN_X86
    switch (cnn_isa_active()) {
    case CNN_ISA_AVX512:
        *np = DIRECT_FLAT_NP_MAX;
        return pointwise ? cnn_f32_conv_direct_pointwise__avx512 : cnn_f32_conv_direct_strided__avx512;
    case CNN_ISA_AVX2:
        *np = 6;
        return pointwise ? cnn_f32_conv_direct_pointwise__avx2 : cnn_f32_conv_direct_strided__avx2;
    default: break;
    }
#endif
    *np = 3;
    return pointwise ? cnn_f32_conv_direct_pointwise__generic : cnn_f32_conv_direct_strided__generic;
}

/* One parallel region, items split evenly; each thread's tail copy in its own workspace. */
static cnn_status direct_pointwise_forward(const conv_geom *g, const float *x, const float *wpacked,
                                           const float *bias, const float *residual, int relu, float *y) {
    int np;
    const direct_fn fn = direct_wide_variant(1, &np);
    const int64_t HW = g->H * g->W, items = g->N * g->G * ((HW + np - 1) / np) * kblocks16(g);
    const int nt = cnn_threads_for(items);
    cnn_status status = CNN_OK;
    CNN_UNUSED(nt);
#if CNN_OMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        float *tail = (float *)cnn_workspace(CNN_CONV_SLOT_ACC, (size_t)(g->Cg * DIRECT_FLAT_NP_MAX) * sizeof(float));
        const int64_t t = CNN_OMP_NUM_THREADS(), id = CNN_OMP_THREAD_NUM();
        if (!tail) {
            CNN_PRAGMA(omp atomic write)
            status = CNN_ERR_OUT_OF_MEMORY;
        } else {
            for (int64_t i = items * id / t; i < items * (id + 1) / t; i++)
                fn(g, x, wpacked, bias, residual, relu, y, i, tail);
        }
    }
    return status;
}

static int64_t direct_items(const conv_geom *g);

/* Strided kernels of 25 taps or more (the 7x7/2 stem, AlexNet's 11x11/4): on a copy of each image
 * in turn, zero-padded and with slack after it, every column is interior and a register tile can
 * be 28 columns wide (strided_item) and run past the row's end. The row tiles instead check each
 * column whose taps reach into the padding, tap by tap, in tiles of 12. Measured (C harness,
 * minimum of 20 calls, 2 threads, alternated runs):
 * - the stem: row tiles 1.51-1.65 ms; their tiles on the padded copy 1.35-1.44 ms; 28-wide strided
 *   tiles 1.28-1.31; stride 2 as a constant (immediate tap offsets) 1.28-1.30; stored through the
 *   in-register transpose 1.25-1.27; the copy split by rows 1.24-1.26 (fast state; 81-82 % of a
 *   233 GFLOP/s peak).
 * - AlexNet's conv1 (no padding: the copy only gives the tiles their slack): 1.22-1.25 -> 1.01-1.05
 *   ms.
 * - AVX2 (Zen 3 class, the dlopen harness, median per-call ratio of 30 alternated calls): the
 *   6-column tiles stored through the 8 x 8 transpose (narrow_tile_store) against store_tile, the
 *   stem 0.81-0.94, AlexNet's conv1 0.91-0.95, over 1 and 2 threads and four runs.
 * - a 3x3/2 layer (64 -> 128 channels, 56x56, batch 4), whose 9 taps are cheap to check: on the
 *   padded copy 2.64-3.01 -> 2.87-2.89 ms, hence the 25 taps.
 * At stride 1 the planes the flat tiles leave are tiny (ResNet-18's 1x1 plane at CIFAR size), where
 * a padded copy multiplies the work (a 3x3 plane for one output): 3.4 -> 6.5 ms. */
static int direct_uses_padded(const conv_geom *g) {
    return (g->sh > 1 || g->sw > 1) && g->R * g->S >= 25;
}

#define PAD_ROWS 16

/* The padded copy of one image, and the slack the strided tiles read past its last row. */
static size_t padded_floats(const conv_geom *g) {
    return (size_t)(g->C * (g->H + 2 * g->ph) * (g->W + 2 * g->pw) + DIRECT_FLAT_NP_MAX * g->sw);
}

static cnn_status direct_padded_forward(const conv_geom *g, const float *x, const float *wpacked,
                                        const float *bias, const float *residual, int relu, float *y) {
    conv_geom gp = *g;
    gp.H = g->H + 2 * g->ph;
    gp.W = g->W + 2 * g->pw;
    gp.ph = gp.pw = 0;
    gp.N = 1;
    int np;
    const direct_fn fn = direct_wide_variant(0, &np);
    const int64_t out = g->K * g->P * g->Q, items = gp.G * kblocks16(&gp) * gp.P * strided_tiles(&gp, np);
    float *xp = (float *)cnn_workspace(CNN_CONV_SLOT_ACC, padded_floats(g) * sizeof(float));
    if (!xp) return CNN_ERR_OUT_OF_MEMORY;
    memset(xp + g->C * gp.H * gp.W, 0, (size_t)(DIRECT_FLAT_NP_MAX * g->sw) * sizeof(float));
    const int64_t pieces = (gp.H + PAD_ROWS - 1) / PAD_ROWS;
    const int nt = cnn_threads_for(CNN_MAX(items, g->C * pieces));
    CNN_UNUSED(nt);
#if CNN_OMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    for (int64_t n = 0; n < g->N; n++) {
        /* The copy in pieces of PAD_ROWS padded rows: the stem's 3 channels split over 2 threads
         * 2 : 1, its 15 pieces per channel (45 in all) 23 : 22. */
        CNN_PRAGMA(omp for schedule(static))
        for (int64_t i = 0; i < g->C * pieces; i++) {
            const int64_t c = i / pieces, r0 = i % pieces * PAD_ROWS;
            flat_pad_rows(g, x + n * g->C * g->H * g->W, 0, c, r0, CNN_MIN(PAD_ROWS, gp.H - r0), gp.H, gp.W,
                          xp + r0 * gp.W);
        }
        CNN_PRAGMA(omp for schedule(static))
        for (int64_t i = 0; i < items; i++)
            fn(&gp, xp, wpacked, bias, residual ? residual + n * out : NULL, relu, y + n * out, i, NULL);
    }
    return CNN_OK;
}

static int64_t direct_items(const conv_geom *g) {
    if (cnn_conv_direct_uses_packed(g)) return g->N * g->G * kblocks16(g) * g->P;
    return g->N * g->G * ((g->Kg + DIRECT_KB - 1) / DIRECT_KB) * g->P;
}

size_t cnn_conv_direct_workspace_bytes(const conv_geom *g) {
    if (direct_uses_pointwise(g)) /* each thread's copy of a plane's last tile */
        return (size_t)cnn_team_threads() * (size_t)(g->Cg * DIRECT_FLAT_NP_MAX) * sizeof(float);
    if (direct_uses_flat(g)) return flat_buffer_floats(g) * sizeof(float); /* the padded copy */
    if (cnn_conv_direct_uses_packed(g) && direct_uses_padded(g)) /* one padded image */
        return padded_floats(g) * sizeof(float);
    if (cnn_conv_direct_uses_packed(g)) return 0; /* the tile lives in registers / on the stack */
    return (size_t)cnn_threads_for(direct_items(g)) * (size_t)(DIRECT_KB * g->Q) * sizeof(float);
}

cnn_status cnn_conv_direct_forward(const conv_geom *g, const float *x, const float *w,
                                   const float *wpacked, const float *bias, const float *residual,
                                   int relu, float *y) {
    const int64_t items = direct_items(g);
    if (items == 0) return CNN_OK;
    const int nt = cnn_threads_for(items);
    if (cnn_conv_direct_uses_packed(g)) {
        if (!wpacked) { /* one-shot call: pack into the caller's workspace */
            float *wp = (float *)cnn_workspace(CNN_CONV_SLOT_COL, cnn_conv_direct_packed_floats(g) * sizeof(float));
            if (!wp) return CNN_ERR_OUT_OF_MEMORY;
            cnn_conv_direct_pack(g, w, wp);
            wpacked = wp;
        }
        if (direct_uses_pointwise(g)) return direct_pointwise_forward(g, x, wpacked, bias, residual, relu, y);
        if (direct_uses_flat(g)) return direct_flat_forward(g, x, wpacked, bias, residual, relu, y);
        if (direct_uses_padded(g)) return direct_padded_forward(g, x, wpacked, bias, residual, relu, y);
        const direct_fn fn = direct_variant(1);
        CNN_OMP_PARALLEL_FOR(nt)
        for (int64_t i = 0; i < items; i++) fn(g, x, wpacked, bias, residual, relu, y, i, NULL);
        return CNN_OK;
    }
    /* One accumulator block per thread, carved from the calling thread's workspace. Rows rounded
     * to 16 floats so each thread's block starts on its own cache line. */
    const int64_t per = ((DIRECT_KB * g->Q + 15) / 16) * 16;
    float *acc = (float *)cnn_workspace(CNN_CONV_SLOT_ACC, (size_t)(nt * per) * sizeof(float));
    if (!acc) return CNN_ERR_OUT_OF_MEMORY;
    const direct_fn fn = direct_variant(0);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < items; i++)
        fn(g, x, w, bias, residual, relu, y, i, acc + CNN_OMP_THREAD_NUM() * per);
    return CNN_OK;
}
