/* Winograd convolution F(m x m, 3x3) for m = 2, 4, 6, and F(m x m, 5x5) for m = 2, 4 (Lavin & Gray,
 * "Fast Algorithms for Convolutional Neural Networks", 2016): 3x3 or 5x5 kernels, stride 1,
 * dilation 1, groups 1, any padding; the data and weight gradients through the same transforms.
 *
 * x is (N, C, H, W), w is (K, C, r, r), y is (N, K, P, Q) with P = H + 2*pad_h - (r - 1), Q
 * likewise. The output is cut into m x m tiles (edge tiles clipped); tile t reads the alpha x alpha
 * input patch (alpha = m + r - 1) at (ty*m - pad_h, tx*m - pad_w), zero outside the image. With
 *   U[k][c] = G g[k][c] G^T          (alpha x alpha, computed once in create)
 *   V[c][t] = B^T d[c][t] B          (alpha x alpha input transform)
 *   M[k][t] = sum_c U[k][c] (.) V[c][t]   (element-wise: alpha^2 independent GEMMs, K x C by C x T)
 *   y[k][t] = A^T M[k][t] A          (m x m output transform, fused with bias, residual and ReLU)
 *
 * Interpolation points (Toom-Cook, alpha - 1 finite points plus the point at infinity):
 *   F(2x2): 0, 1, -1, inf
 *   F(4x4): 0, 1, -1, 2, -2, inf
 *   F(6x6): 0, 1, -1, 2, -2, 1/2, -1/2, inf
 *   F(2x2, 5x5) and F(4x4, 5x5): F(4x4)'s and F(6x6)'s points (alpha = 6 and 8), and so their
 *   B^T and input transforms
 * Small points keep the entries of A^T (powers p^i) and B^T (coefficients of prod (x - p_l)) close
 * to 1: the float32 error grows with their magnitude. Pairs +-p make A^T and B^T share rows up to
 * sign, and the reciprocal pair +-1/2 (instead of +-3, as in NNPACK and ncnn) keeps F(6x6)'s largest
 * A^T entry at 32 instead of 243. All entries of A^T and B^T are exact in binary; the fractions of G
 * (1/90, 2/9, ...) are rounded to float where they meet the weights (half an ulp each, below the
 * error of the float sums the products then go through). Row j of B^T and row j of G may
 * be scaled by reciprocal factors; here B^T's rows are the monic polynomials prod_{l != j}(x - p_l)
 * (so G carries 1/prod_{l != j}(p_j - p_l)), with row 0 negated in both for F(2) and F(6) to
 * match the published tables. The tests re-derive these tables from the points independently.
 *
 * Data flow of one forward call, per group of Tg tiles (Tg bounded so the transformed input and
 * output stay within WINO_GROUP_BUDGET bytes): three OpenMP work-sharing phases inside one parallel
 * region: input transform (over channels x 16-tile chunks), the alpha^2 GEMMs (over transform
 * positions x tile blocks x K blocks, each item one register-blocked microkernel call), output
 * transform (over K x 16-tile chunks). The transforms run on 16 tiles at once: vectorised across
 * tiles, and the GEMM's right operand comes out of the input transform already in the layout the
 * microkernel reads (contiguous panels of C x 32 tiles), so nothing is packed per call.
 */
#include "winograd.h"
#include "../gemm/pack_x86.h"

#include <stdlib.h>
#include <string.h>

#if CNN_X86
#include <immintrin.h>
#endif

/* ---- Transform matrices (derived from the points above; see the header comment) ---------- */

/* F(2x2, 3x3), alpha = 4. */
static const float wino_bt2[4][4] = {
    {1, 0, -1, 0},
    {0, 1, 1, 0},
    {0, -1, 1, 0},
    {0, -1, 0, 1},
};
static const double wino_g2[4][3] = {
    {1, 0, 0},
    {0.5, 0.5, 0.5},
    {0.5, -0.5, 0.5},
    {0, 0, 1},
};
static const float wino_at2[2][4] = {
    {1, 1, 1, 0},
    {0, 1, -1, 1},
};

/* F(4x4, 3x3), alpha = 6. */
static const float wino_bt4[6][6] = {
    {4, 0, -5, 0, 1, 0},
    {0, -4, -4, 1, 1, 0},
    {0, 4, -4, -1, 1, 0},
    {0, -2, -1, 2, 1, 0},
    {0, 2, -1, -2, 1, 0},
    {0, 4, 0, -5, 0, 1},
};
static const double wino_g4[6][3] = {
    {1.0 / 4, 0, 0},
    {-1.0 / 6, -1.0 / 6, -1.0 / 6},
    {-1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6},
    {1.0 / 24, -1.0 / 12, 1.0 / 6},
    {0, 0, 1},
};
static const float wino_at4[4][6] = {
    {1, 1, 1, 1, 1, 0},
    {0, 1, -1, 2, -2, 0},
    {0, 1, 1, 4, 4, 0},
    {0, 1, -1, 8, -8, 1},
};

/* F(6x6, 3x3), alpha = 8. */
static const float wino_bt6[8][8] = {
    {1, 0, -5.25f, 0, 5.25f, 0, -1, 0},
    {0, 1, 1, -4.25f, -4.25f, 1, 1, 0},
    {0, -1, 1, 4.25f, -4.25f, -1, 1, 0},
    {0, 0.5f, 0.25f, -2.5f, -1.25f, 2, 1, 0},
    {0, -0.5f, 0.25f, 2.5f, -1.25f, -2, 1, 0},
    {0, 2, 4, -2.5f, -5, 0.5f, 1, 0},
    {0, -2, 4, 2.5f, -5, -0.5f, 1, 0},
    {0, -1, 0, 5.25f, 0, -5.25f, 0, 1},
};
static const double wino_g6[8][3] = {
    {1, 0, 0},
    {-2.0 / 9, -2.0 / 9, -2.0 / 9},
    {-2.0 / 9, 2.0 / 9, -2.0 / 9},
    {1.0 / 90, 1.0 / 45, 2.0 / 45},
    {1.0 / 90, -1.0 / 45, 2.0 / 45},
    {32.0 / 45, 16.0 / 45, 8.0 / 45},
    {32.0 / 45, -16.0 / 45, 8.0 / 45},
    {0, 0, 1},
};
static const float wino_at6[6][8] = {
    {1, 1, 1, 1, 1, 1, 1, 0},
    {0, 1, -1, 2, -2, 0.5f, -0.5f, 0},
    {0, 1, 1, 4, 4, 0.25f, 0.25f, 0},
    {0, 1, -1, 8, -8, 0.125f, -0.125f, 0},
    {0, 1, 1, 16, 16, 0.0625f, 0.0625f, 0},
    {0, 1, -1, 32, -32, 0.03125f, -0.03125f, 1},
};

/* F(2x2, 5x5), alpha = 6: F(4x4)'s points, so B^T is wino_bt4 (it depends on the points alone);
 * G[j][k] = p_j^k / prod_{l != j}(p_j - p_l) over F(4x4)'s scaling of B^T's rows, A^T the first two
 * rows of the powers. */
static const double wino_g25[6][5] = {
    {1.0 / 4, 0, 0, 0, 0},
    {-1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6},
    {-1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 3, 2.0 / 3},
    {1.0 / 24, -1.0 / 12, 1.0 / 6, -1.0 / 3, 2.0 / 3},
    {0, 0, 0, 0, 1},
};
static const float wino_at25[2][6] = {
    {1, 1, 1, 1, 1, 0},
    {0, 1, -1, 2, -2, 1},
};

/* F(4x4, 5x5), alpha = 8: F(6x6)'s points, so B^T is wino_bt6, and G scaled row by row as wino_g6
 * (row 0 negated with B^T's). */
static const double wino_g45[8][5] = {
    {1, 0, 0, 0, 0},
    {-2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9},
    {-2.0 / 9, 2.0 / 9, -2.0 / 9, 2.0 / 9, -2.0 / 9},
    {1.0 / 90, 1.0 / 45, 2.0 / 45, 4.0 / 45, 8.0 / 45},
    {1.0 / 90, -1.0 / 45, 2.0 / 45, -4.0 / 45, 8.0 / 45},
    {32.0 / 45, 16.0 / 45, 8.0 / 45, 4.0 / 45, 2.0 / 45},
    {32.0 / 45, -16.0 / 45, 8.0 / 45, -4.0 / 45, 2.0 / 45},
    {0, 0, 0, 0, 1},
};
static const float wino_at45[4][8] = {
    {1, 1, 1, 1, 1, 1, 1, 0},
    {0, 1, -1, 2, -2, 0.5f, -0.5f, 0},
    {0, 1, 1, 4, 4, 0.25f, 0.25f, 0},
    {0, 1, -1, 8, -8, 0.125f, -0.125f, 1},
};

/* A (alpha x m), the transposes of the A^T tables above, for the weight gradient's transform of an
 * output-gradient tile: U = A dy A^T. */
static const float wino_a2[4][2] = {
    {1, 0},
    {1, 1},
    {1, -1},
    {0, 1},
};
static const float wino_a4[6][4] = {
    {1, 0, 0, 0},
    {1, 1, 1, 1},
    {1, -1, 1, -1},
    {1, 2, 4, 8},
    {1, -2, 4, -8},
    {0, 0, 0, 1},
};
static const float wino_a25[6][2] = {
    {1, 0},
    {1, 1},
    {1, -1},
    {1, 2},
    {1, -2},
    {0, 1},
};
static const float wino_a45[8][4] = {
    {1, 0, 0, 0},
    {1, 1, 1, 1},
    {1, -1, 1, -1},
    {1, 2, 4, 8},
    {1, -2, 4, -8},
    {1, 0.5f, 0.25f, 0.125f},
    {1, -0.5f, 0.25f, -0.125f},
    {0, 0, 0, 1},
};
static const float wino_a6[8][6] = {
    {1, 0, 0, 0, 0, 0},
    {1, 1, 1, 1, 1, 1},
    {1, -1, 1, -1, 1, -1},
    {1, 2, 4, 8, 16, 32},
    {1, -2, 4, -8, 16, -32},
    {1, 0.5f, 0.25f, 0.125f, 0.0625f, 0.03125f},
    {1, -0.5f, 0.25f, -0.125f, 0.0625f, -0.03125f},
    {0, 0, 0, 0, 0, 1},
};

/* ---- Blocking constants ------------------------------------------------------------------ */

/* Tiles transformed at once: one 512-bit vector (two 256-bit ones) of floats per matrix entry. */
#define WINO_LANES 16
/* GEMM register block: WINO_MR rows of K (U is packed in WINO_MR-row panels) by WINO_NR tiles.
 * AVX-512: 8 x 32 = 16 zmm accumulators, 2 loads of V and 8 broadcasts of U per 16 FMAs. */
#define WINO_MR 8
#define WINO_NR 32
/* The x86 GEMMs take the last 1..WINO_NARROW tiles of a group with a narrow kernel. */
#define WINO_NARROW 12
/* Bytes of transformed input plus transformed output per tile group. 8 MiB keeps a group mostly in
 * the L3 share of the reference machine (2 cores of a Zen 5 EPYC) while giving a 512x512 layer's U
 * (alpha^2 * 1 MiB) enough tiles to be reused over; the floor of WINO_MIN_GROUP tiles is what bounds
 * U's reuse when C + K is large. */
#ifndef WINO_GROUP_BUDGET /* overridable at build time, to exercise many small groups */
#define WINO_GROUP_BUDGET ((size_t)8 << 20)
#define WINO_MIN_GROUP 64
#endif
/* One image (inference at batch 1) takes half that: the group's transformed tiles then stay in the
 * L2s and the nearer part of L3 between the phases, and with one image U is small wherever the
 * tiles are many (64 channels at 224^2: 1 MiB), so more groups cost little. C harness, 2 threads,
 * minimum of 20 calls, 3 alternated runs (ninth session), 8 -> 4 MiB: vgg16.conv1_2 F(6x6)
 * 7.40-7.65 -> 7.00-7.45 ms, conv2_2 5.13-5.19 -> 5.06-5.35, conv3_2 F(4x4) 5.21-5.49 -> 5.13-5.38;
 * 8 and 32 images of 56^2 and 14^2 equal; the CIFAR batch of 64 1-2 % slower, so batches keep
 * 8 MiB. Layers of 512 channels are held at WINO_MIN_GROUP tiles either way. */
#define WINO_GROUP_BUDGET_ONE_IMAGE (WINO_GROUP_BUDGET / 2)
/* Hard cap on the workspace (transformed input and output plus the tile table); the group shrinks
 * (down to WINO_NR tiles) to stay under it. */
#define WINO_WORKSPACE_CAP ((size_t)64 << 20)
/* Floats added between the transform positions' planes (one cache line): the forward's V and M,
 * the weight gradient's V, U and M. Unpadded, a plane is C x Tg floats, a multiple of 4 KiB
 * (64 KiB for 64 channels x 256 tiles): the alpha^2 entries one transform writes, and the output
 * transform reads, then fall in one L1 and one L2 set, 64 lines into 12 and 16 ways. C harness, 2 threads, cold caches, minimum of 10 calls, 6
 * alternated runs, eighth session: vgg16.conv1_2 (F(6x6)) 8.85-9.41 -> 8.13-8.49 ms, conv2_2
 * 6.30-7.00 -> 5.74-7.56, conv3_2 (F(4x4)) 5.92-7.15 -> 5.64-6.74. */
#define WINO_POS_PAD 16

struct cnn_winograd_weights {
    int m, r, alpha;  /* F(m x m, r x r), alpha = m + r - 1 */
    int64_t K, C, Kp; /* Kp: K rounded up to WINO_MR */
    float *u;         /* [alpha^2][Kp / WINO_MR][C][WINO_MR], zero rows past K */
    size_t bytes;
};

/* ---- Shape checks ------------------------------------------------------------------------- */

/* F(m x m, r x r) for m = 2, 4, 6 with r = 3, and m = 2, 4 with r = 5. */
static int wino_tile_supported(int m, int64_t r) { return (m == 2 || m == 4 || (m == 6 && r == 3)) && (r == 3 || r == 5); }

static cnn_status wino_check(int m, const cnn_conv_shape *s) {
    if (!s) return CNN_ERR_INVALID_ARGUMENT;
    if (s->N < 1 || s->C < 1 || s->H < 1 || s->W < 1 || s->K < 1 || s->R < 1 || s->S < 1 ||
        s->stride_h < 1 || s->stride_w < 1 || s->dilation_h < 1 || s->dilation_w < 1 ||
        s->pad_h < 0 || s->pad_w < 0 || s->groups < 1 || s->C % s->groups || s->K % s->groups)
        return CNN_ERR_INVALID_ARGUMENT;
    const int64_t P = (s->H + 2 * s->pad_h - s->dilation_h * (s->R - 1) - 1) / s->stride_h + 1;
    const int64_t Q = (s->W + 2 * s->pad_w - s->dilation_w * (s->S - 1) - 1) / s->stride_w + 1;
    if (s->H + 2 * s->pad_h < s->dilation_h * (s->R - 1) + 1 ||
        s->W + 2 * s->pad_w < s->dilation_w * (s->S - 1) + 1 || P < 1 || Q < 1)
        return CNN_ERR_INVALID_ARGUMENT;
    if (s->R != s->S || !wino_tile_supported(m, s->R) || s->stride_h != 1 || s->stride_w != 1 ||
        s->dilation_h != 1 || s->dilation_w != 1 || s->groups != 1)
        return CNN_ERR_UNSUPPORTED;
    return CNN_OK;
}

/* Row of the per-ISA kernel tables (wino_select): F(2x2), F(4x4), F(6x6) with 3x3, then F(2x2, 5x5)
 * and F(4x4, 5x5). */
static int wino_variant(int m, int r) { return r == 5 ? 2 + m / 2 : m / 2 - 1; }

/* ---- The per-ISA kernels of one F(m), chosen once per call (defined below) ------------------ */

typedef void (*wino_input_fn)(const float *d, float *v, size_t vstride);
typedef void (*wino_output_fn)(const float *mm, size_t mstride, float *o);
/* c (MR rows, ldc apart) = a (U panel, [kc][MR]) * b (V panel, [kc][nr]); only the first `valid`
 * columns of c need be written (the rest are padding tiles past the batch, never scattered). */
typedef void (*wino_gemm_fn)(size_t kc, int nr, int valid, const float *a, const float *b, float *c,
                             size_t ldc);
/* Where the 3x3 taps of one weight panel are: filter kk of the panel, channel c, tap e at
 * w[kk * filter_stride + c * channel_stride + e], or tap 8 - e when flipped (the data gradient's
 * kernel, rotated by 180 degrees with its channel axes swapped, read from the forward's weights). */
typedef struct wino_weight_src {
    const float *w;
    int64_t filter_stride, channel_stride;
    int flipped;
} wino_weight_src;
typedef void (*wino_weight_panel_fn)(const wino_weight_src *src, int kvalid, int64_t c, float *base,
                                     size_t pos_stride);
typedef void (*wino_weight_grad_fn)(const float *mb, size_t mpos, int n, float *dw);
struct wino_plan;
struct wino_tile;
typedef void (*wino_gather_fn)(const struct wino_plan *p, const cnn_conv_shape *s, const float *x,
                               int64_t c, const struct wino_tile *tab, float *d);
typedef void (*wino_scatter_fn)(const struct wino_plan *p, const float *o, int64_t k,
                                const struct wino_tile *tab, const float *bias, const float *residual,
                                int relu, float *y);
typedef void (*wino_pool_fn)(const float *o, float b, int relu, float *pb);

/* One tile, 16 channels [c0, c0 + 16) as the lanes, from channels-last images (positions of
 * cp floats, cp a multiple of 16) whose first is image n0. */
typedef void (*wino_gather_lanes_fn)(const struct wino_plan *p, const cnn_conv_shape *s, const float *cl,
                                     int64_t cp, int64_t n0, int64_t c0, const struct wino_tile *e, float *d);

typedef struct wino_kernels {
    wino_input_fn input;            /* V = B^T d B of 16 input tiles */
    wino_output_fn output;          /* A^T M A of 16 tiles */
    wino_gemm_fn gemm;              /* the transformed-domain GEMM's microkernel */
    wino_input_fn gradient;         /* A dy A^T of 16 output-gradient tiles (same signature as input) */
    wino_weight_panel_fn weight;    /* U = G g G^T for one panel of WINO_MR filters, one channel */
    wino_weight_grad_fn weight_grad; /* dW += G^T M G for up to 16 channels of one filter */
    wino_gather_fn gather;          /* one channel of 16 input patches into lanes */
    wino_scatter_fn scatter;        /* 16 output tiles of one channel, with the epilogue, into y */
    wino_pool_fn pool;              /* the epilogue and a 2x2 max pool of 16 output tiles */
    wino_gather_lanes_fn gather_channels;          /* weight gradient: one input patch, 16 channels */
    wino_gather_lanes_fn gather_gradient_channels; /* weight gradient: one dy tile, 16 channels */
} wino_kernels;

static wino_kernels wino_select(int m, int r);

/* ---- Weights: U = G g G^T in double, packed in WINO_MR-row panels per transform position ---- */

// w is (K, C, r, r); u is [alpha^2][Kp/MR][C][MR]
/* U for the K x C problem of u (its sizes set, u->u allocated) from weights w; flipped: w is the
 * forward's (C, K, r, r) kernel and U that of its rotated, channel-swapped kernel. */
static void wino_fill_weights(cnn_winograd_weights *u, const float *w, int flipped) {
    const int64_t K = u->K, C = u->C, Kp = u->Kp;
    const size_t pos_stride = (size_t)Kp * (size_t)C; /* floats per transform position */
    /* Panel by panel, channel by channel, the panel's WINO_MR rows innermost: each transform
     * position's WINO_MR floats for (panel, c) are written together, so every cache line is filled
     * once (k outermost rewrote each line WINO_MR times, far apart). Rows past K are zeros. In
     * training the weights change every step and this runs every step: the panels are shared
     * among the threads. */
    const int64_t panels = Kp / WINO_MR;
    const int nt = K * C >= 4096 ? cnn_threads_for(panels) : 1;
    const wino_weight_panel_fn panel = wino_select(u->m, u->r).weight;
    const int64_t taps = (int64_t)u->r * u->r;
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t pnl = 0; pnl < panels; pnl++) {
        const int kvalid = (int)CNN_MIN((int64_t)WINO_MR, K - pnl * WINO_MR);
        const wino_weight_src src =
            flipped ? (wino_weight_src){w + pnl * WINO_MR * taps, taps, K * taps, 1}
                    : (wino_weight_src){w + pnl * WINO_MR * C * taps, C * taps, taps, 0};
        for (int64_t c = 0; c < C; c++)
            panel(&src, kvalid, c, u->u + (size_t)pnl * (size_t)C * WINO_MR + (size_t)c * WINO_MR,
                  pos_stride);
    }
}

static void wino_set_sizes(cnn_winograd_weights *u, int m, const cnn_conv_shape *s) {
    u->m = m;
    u->r = (int)s->R;
    u->alpha = m + u->r - 1;
    u->K = s->K;
    u->C = s->C;
    u->Kp = (s->K + WINO_MR - 1) / WINO_MR * WINO_MR;
    u->bytes = (size_t)u->alpha * (size_t)u->alpha * (size_t)u->Kp * (size_t)u->C * sizeof(float);
}

// w is (K, C, r, r); u is [alpha^2][Kp/MR][C][MR]
cnn_winograd_weights *cnn_winograd_weights_create(int m, const cnn_conv_shape *s, const float *w,
                                                  cnn_status *status) {
    cnn_status st = wino_check(m, s);
    if (st == CNN_OK && !w) st = CNN_ERR_INVALID_ARGUMENT;
    if (st != CNN_OK) {
        if (status) *status = st;
        return NULL;
    }
    cnn_winograd_weights *u = (cnn_winograd_weights *)calloc(1, sizeof *u);
    if (u) {
        wino_set_sizes(u, m, s);
        u->u = (float *)cnn_aligned_alloc(u->bytes);
    }
    if (!u || !u->u) {
        free(u);
        if (status) *status = CNN_ERR_OUT_OF_MEMORY;
        return NULL;
    }
    u->bytes += sizeof *u;
    wino_fill_weights(u, w, 0);
    if (status) *status = CNN_OK;
    return u;
}

void cnn_winograd_weights_destroy(cnn_winograd_weights *u) {
    if (!u) return;
    cnn_aligned_free(u->u);
    free(u);
}

size_t cnn_winograd_weights_bytes(const cnn_winograd_weights *u) { return u ? u->bytes : 0; }

/* ---- Tiling plan --------------------------------------------------------------------------- */

/* Where one tile of a group reads and writes: computed once per group (two divisions per tile)
 * rather than once per channel. */
typedef struct wino_tile {
    int64_t x_img, y_off; /* x + x_img: channel 0 of the tile's image; y + y_off: its first output */
    int64_t pool_off;     /* with 2x2 max pooling fused: its first pooled output, channel 0 */
    int32_t iy, ix;       /* top-left input position (may be negative: padding) */
    int32_t rows, cols;   /* output rows and columns inside the image (edge tiles are clipped) */
    int32_t interior;     /* the alpha x alpha patch lies inside the image */
    int32_t valid;        /* 0 for the padding tiles past the batch */
} wino_tile;

typedef struct wino_plan {
    int m, alpha, a2;
    int64_t P, Q, th, tw, tiles_per_image, tiles; /* tiles: over the whole batch */
    int64_t group;                                /* Tg: tiles per group, a multiple of 16 */
    size_t vpos, mpos;                            /* floats from one position to the next */
    size_t v_floats, m_floats;                    /* per group: a2*vpos and a2*mpos */
} wino_plan;

static void wino_make_plan_within(const cnn_winograd_weights *u, const cnn_conv_shape *s, size_t budget,
                                  wino_plan *p) {
    p->m = u->m;
    p->alpha = u->alpha;
    p->a2 = u->alpha * u->alpha;
    p->P = s->H + 2 * s->pad_h - (u->r - 1);
    p->Q = s->W + 2 * s->pad_w - (u->r - 1);
    p->th = (p->P + p->m - 1) / p->m;
    p->tw = (p->Q + p->m - 1) / p->m;
    p->tiles_per_image = p->th * p->tw;
    p->tiles = s->N * p->tiles_per_image;
    const size_t per_tile = (size_t)p->a2 * (size_t)(u->C + u->Kp) * sizeof(float) + sizeof(wino_tile);
    int64_t g = (int64_t)(budget / per_tile);
    if (g < WINO_MIN_GROUP) g = WINO_MIN_GROUP;
    const int64_t cap = (int64_t)((WINO_WORKSPACE_CAP - (size_t)p->a2 * 2 * WINO_POS_PAD * sizeof(float)) / per_tile);
    if (g > cap) g = cap;
    g = g / WINO_NR * WINO_NR;
    if (g < WINO_NR) g = WINO_NR; /* only when C + K exceeds ~16k channels: cap not met */
    /* Groups are multiples of 16 tiles, not 32: a 14x14 layer has 9 F(6x6) tiles, and padding them
     * to 32 would triple its GEMM work; the last 16 of a group run the 8 x 16 tail kernel. */
    /* Balance the groups so the last one is not a sliver (U is streamed once per group). */
    const int64_t ngroups = (p->tiles + g - 1) / g;
    const int64_t even = (p->tiles + ngroups - 1) / ngroups;
    p->group = (even + WINO_LANES - 1) / WINO_LANES * WINO_LANES;
    p->vpos = (size_t)u->C * (size_t)p->group + WINO_POS_PAD;
    p->mpos = (size_t)u->Kp * (size_t)p->group + WINO_POS_PAD;
    p->v_floats = (size_t)p->a2 * p->vpos;
    p->m_floats = (size_t)p->a2 * p->mpos;
}

static void wino_make_plan(const cnn_winograd_weights *u, const cnn_conv_shape *s, wino_plan *p) {
    wino_make_plan_within(u, s, s->N == 1 ? WINO_GROUP_BUDGET_ONE_IMAGE : WINO_GROUP_BUDGET, p);
}

size_t cnn_winograd_workspace_bytes(const cnn_winograd_weights *u, const cnn_conv_shape *s) {
    if (!u || wino_check(u->m, s) != CNN_OK || s->R != u->r) return 0;
    wino_plan p;
    wino_make_plan(u, s, &p);
    return (p.v_floats + p.m_floats) * sizeof(float) + (size_t)p.group * sizeof(wino_tile);
}

/* ---- Cost model for AUTO's choice of m --------------------------------------------------------
 * One forward call costs, per transform position,
 *   2 K C flops of GEMM per tile at WINO_EST_FLOPS_PER_NS. The GEMM runs 16 tiles at a time; a
 *   group's last 1-12 tiles take the narrow kernel, at the same cost per tile but never less than
 *   WINO_EST_MIN_TAIL tiles' worth (its loop overhead); 13-15 cost 16;
 *   (C + K) transformed entries per tile (gather + input transform, output transform + scatter) at
 *   wino_est_entry_ns[m] each, the transforms running 16 tiles at a time, padding included
 *   (F(6x6)'s transforms have more non-trivial coefficients per entry);
 * plus U (alpha^2 Kp C floats) streamed once per tile group at WINO_EST_U_BYTES_PER_NS: with few
 * tiles (batch 1 on 14x14 planes) that stream, not the arithmetic, sets the time. Fitted to
 * `cnn bench conv` and a C harness on the kernels, 2 threads, on 2 cores of an AMD EPYC (Zen 5,
 * AVX-512), fifth session; model / measured ms, F(4x4) and F(6x6):
 *   vgg16.conv1_2 (64, 224^2)   8.96 / 8.9-9.2     8.74 / 8.6
 *   vgg16.conv2_2 (128, 112^2)  6.79 / 6.7-6.9     6.37 / 6.1-6.5
 *   vgg16.conv3_2 (256, 56^2)   5.89 / 5.33-5.38   5.94 / 5.5-5.7
 *   vgg16.conv4_2 (512, 28^2)   6.08 / 6.14-6.24   5.87 / 5.86-6.0
 *   vgg16.conv5_2 (512, 14^2)   2.16 / 2.3         3.94 / 4.1      (F(2x2): 3.10 / 3.0)
 * (the last three after the narrow tail kernel). Only the ratios between the tiles matter for the
 * choice; where two tiles are within a few percent the model can pick either. */
#define WINO_EST_FLOPS_PER_NS 200.0
#define WINO_EST_U_BYTES_PER_NS 80.0
#define WINO_EST_MIN_TAIL 4
static const double wino_est_entry_ns[3] = {0.20, 0.30, 0.42};

double cnn_winograd_estimate_ns(int m, const cnn_conv_shape *s) {
    if (wino_check(m, s) != CNN_OK) return __builtin_inf();
    cnn_winograd_weights sizes = {0};
    wino_set_sizes(&sizes, m, s);
    /* Fitted on 8 MiB groups, and kept on them: with one image's smaller groups it moved
     * conv1_2 to F(4x4) and conv3_2 to F(6x6), each measured 3-10 % slower than the tile it had
     * (C harness, ninth session, one image: conv1_2 F(6x6) 7.47-7.90 ms against F(4x4) 8.22-8.34,
     * conv3_2 F(4x4) 5.38-5.52 against F(6x6) 5.54-5.70). */
    wino_plan p;
    wino_make_plan_within(&sizes, s, WINO_GROUP_BUDGET, &p);
    const int64_t groups = (p.tiles + p.group - 1) / p.group;
    double gemm_tiles = 0;
    for (int64_t g = 0; g < groups; g++) {
        const int64_t valid = CNN_MIN(p.group, p.tiles - g * p.group), tail = valid % WINO_LANES;
        gemm_tiles += (double)(valid - tail);
        if (tail > 0) gemm_tiles += tail > WINO_NARROW ? WINO_LANES : CNN_MAX(tail, (int64_t)WINO_EST_MIN_TAIL);
    }
    const double lanes = (double)groups * (double)p.group, a2 = (double)p.a2;
    const double C = (double)s->C, K = (double)s->K;
    const double gemm = gemm_tiles * 2.0 * K * C / WINO_EST_FLOPS_PER_NS;
    const double transforms = lanes * (C + K) * wino_est_entry_ns[(sizes.alpha - 4) / 2];
    const double u_bytes = a2 * (double)sizes.Kp * C * sizeof(float);
    return a2 * (gemm + transforms) + (double)groups * u_bytes / WINO_EST_U_BYTES_PER_NS;
}

/* ---- Transforms on 16 tiles at once -----------------------------------------------------------
 * One routine per step, written as plain C over WINO_LANES lanes and stamped out once per ISA with
 * that ISA's target attribute, so the compiler emits zmm / ymm / xmm code from one source. The
 * matrix is a compile-time table and every loop over it is fully unrolled: zero entries drop out
 * and +-1 entries become adds, so the op count is that of the sparse matrix. Accumulators start at
 * -0.0f, the exact identity of IEEE addition, so the first add folds away too. */

#define WINO_INLINE static inline __attribute__((always_inline))

/* One matrix entry's WINO_LANES lanes as a single value of the compiler's generic vector type: each
 * operation below is one vector operation in the IR (zmm, two ymm or four xmm after lowering), so
 * the fully unrolled transforms stay small for the optimiser (as 16 scalar lanes, the SLP
 * vectoriser and GVN took minutes on this file). aligned(4): the buffers need no alignment. */
typedef float wino_vec __attribute__((vector_size(WINO_LANES * sizeof(float)), aligned(4)));

/* out[i * os] = sum_j mat[i][j] * in[j * is], each entry a vector of WINO_LANES floats. */
WINO_INLINE void wino_apply(const int rows, const int cols, const float *mat, const float *in,
                            const size_t is, float *out, const size_t os) {
#pragma clang loop unroll(full)
    for (int i = 0; i < rows; i++) {
        wino_vec acc = -(wino_vec){0}; /* -0.0f in every lane: the exact identity of addition */
#pragma clang loop unroll(full)
        for (int j = 0; j < cols; j++) {
            const float c = mat[i * cols + j];
            if (c == 0.0f) continue;
            const wino_vec v = *(const wino_vec *)(in + (size_t)j * is);
            if (c == 1.0f)
                acc += v;
            else if (c == -1.0f)
                acc -= v;
            else
                acc += c * v;
        }
        *(wino_vec *)(out + (size_t)i * os) = acc;
    }
}

/* d is [alpha][alpha][LANES] (the input patches); writes V entry (i, j) of lane l to
 * v[(i*alpha + j) * vstride + l]. V = B^T d B: columns first, then rows. */
WINO_INLINE void wino_input_tile(const int alpha, const float *bt, const float *d, float *v,
                                 const size_t vstride) {
    float t[8 * 8 * WINO_LANES];
    const size_t row = (size_t)alpha * WINO_LANES;
#pragma clang loop unroll(full)
    for (int j = 0; j < alpha; j++)
        wino_apply(alpha, alpha, bt, d + j * WINO_LANES, row, t + j * WINO_LANES, row);
#pragma clang loop unroll(full)
    for (int i = 0; i < alpha; i++)
        wino_apply(alpha, alpha, bt, t + i * row, WINO_LANES, v + (size_t)i * alpha * vstride,
                   vstride);
}

/* mm: entry (i, j) of lane l at mm[(i*alpha + j) * mstride + l]; writes o = A^T mm A as
 * [m][m][LANES]. */
WINO_INLINE void wino_output_tile(const int m, const int alpha, const float *at, const float *mm,
                                  const size_t mstride, float *o) {
    float t[6 * 8 * WINO_LANES];
    const size_t row = (size_t)alpha * WINO_LANES;
#pragma clang loop unroll(full)
    for (int j = 0; j < alpha; j++)
        wino_apply(m, alpha, at, mm + (size_t)j * mstride, (size_t)alpha * mstride,
                   t + j * WINO_LANES, row);
#pragma clang loop unroll(full)
    for (int i = 0; i < m; i++)
        wino_apply(m, alpha, at, t + i * row, WINO_LANES, o + (size_t)i * m * WINO_LANES,
                   WINO_LANES);
}

/* The epilogue and a 2x2, stride-2 max pool of 16 output tiles: o is [m][m][LANES] (m even), pb
 * gets [m/2][m/2][LANES]. Each value is o + b, then ReLU (v < 0 -> 0: NaN and -0.0 pass, as in
 * the scatter), then the window is reduced in row-major order, a value replacing the running
 * maximum if it is greater or NaN: the rule of cnn_maxpool2d_forward, so the fused result is bit
 * for bit the unfused one. */
typedef int32_t wino_ivec __attribute__((vector_size(WINO_LANES * sizeof(int32_t)), aligned(4)));
WINO_INLINE void wino_pool_tile(const int m, const float *o, const float b, const int relu, float *pb) {
    const int h = m / 2;
#pragma clang loop unroll(full)
    for (int pi = 0; pi < h; pi++) {
#pragma clang loop unroll(full)
        for (int pj = 0; pj < h; pj++) {
            wino_vec best = {0};
#pragma clang loop unroll(full)
            for (int a = 0; a < 4; a++) {
                wino_vec v = *(const wino_vec *)(o + ((2 * pi + a / 2) * m + 2 * pj + a % 2) * WINO_LANES) + b;
                if (relu) v = (wino_vec)((wino_ivec)v & ~(wino_ivec)(v < 0.0f));
                if (a == 0) {
                    best = v;
                } else {
                    const wino_ivec take = (v > best) | (v != v);
                    best = (wino_vec)(((wino_ivec)v & take) | ((wino_ivec)best & ~take));
                }
            }
            *(wino_vec *)(pb + (pi * h + pj) * WINO_LANES) = best;
        }
    }
}

/* g is [m][m][LANES] (output-gradient tiles); writes U = A g A^T, entry (i, j) of lane l at
 * u[(i*alpha + j) * ustride + l]: columns first, then rows. */
WINO_INLINE void wino_gradient_tile(const int m, const int alpha, const float *a, const float *g, float *u,
                                    const size_t ustride) {
    float t[8 * 6 * WINO_LANES];
    const size_t grow = (size_t)m * WINO_LANES;
#pragma clang loop unroll(full)
    for (int j = 0; j < m; j++) wino_apply(alpha, m, a, g + j * WINO_LANES, grow, t + j * WINO_LANES, grow);
#pragma clang loop unroll(full)
    for (int i = 0; i < alpha; i++)
        wino_apply(alpha, m, a, t + (size_t)i * grow, WINO_LANES, u + (size_t)i * alpha * ustride, ustride);
}

/* The per-ISA transform entry points: F(m) input and output transform of 16 tiles. */
#define WINO_TRANSFORMS(ISA, TARGET)                                                              \
    TARGET static void cnn_f32_winograd_input_f2__##ISA(const float *d, float *v, size_t vs) {    \
        wino_input_tile(4, &wino_bt2[0][0], d, v, vs);                                             \
    }                                                                                              \
    TARGET static void cnn_f32_winograd_input_f4__##ISA(const float *d, float *v, size_t vs) {    \
        wino_input_tile(6, &wino_bt4[0][0], d, v, vs);                                             \
    }                                                                                              \
    TARGET static void cnn_f32_winograd_input_f6__##ISA(const float *d, float *v, size_t vs) {    \
        wino_input_tile(8, &wino_bt6[0][0], d, v, vs);                                             \
    }                                                                                              \
    TARGET static void cnn_f32_winograd_output_f2__##ISA(const float *mm, size_t ms, float *o) {  \
        wino_output_tile(2, 4, &wino_at2[0][0], mm, ms, o);                                        \
    }                                                                                              \
    TARGET static void cnn_f32_winograd_output_f4__##ISA(const float *mm, size_t ms, float *o) {  \
        wino_output_tile(4, 6, &wino_at4[0][0], mm, ms, o);                                        \
    }                                                                                              \
    TARGET static void cnn_f32_winograd_output_f6__##ISA(const float *mm, size_t ms, float *o) {  \
        wino_output_tile(6, 8, &wino_at6[0][0], mm, ms, o);                                        \
    }                                                                                              \
    TARGET static void cnn_f32_winograd_output_f25__##ISA(const float *mm, size_t ms, float *o) { \
        wino_output_tile(2, 6, &wino_at25[0][0], mm, ms, o);                                       \
    }                                                                                              \
    TARGET static void cnn_f32_winograd_gradient_f25__##ISA(const float *g, float *u, size_t us) { \
        wino_gradient_tile(2, 6, &wino_a25[0][0], g, u, us);                                       \
    }                                                                                              \
    TARGET static void cnn_f32_winograd_output_f45__##ISA(const float *mm, size_t ms, float *o) { \
        wino_output_tile(4, 8, &wino_at45[0][0], mm, ms, o);                                       \
    }                                                                                              \
    TARGET static void cnn_f32_winograd_gradient_f45__##ISA(const float *g, float *u, size_t us) { \
        wino_gradient_tile(4, 8, &wino_a45[0][0], g, u, us);                                       \
    }                                                                                              \
    TARGET static void cnn_f32_winograd_gradient_f2__##ISA(const float *g, float *u, size_t us) { \
        wino_gradient_tile(2, 4, &wino_a2[0][0], g, u, us);                                        \
    }                                                                                              \
    TARGET static void cnn_f32_winograd_gradient_f4__##ISA(const float *g, float *u, size_t us) { \
        wino_gradient_tile(4, 6, &wino_a4[0][0], g, u, us);                                        \
    }                                                                                              \
    TARGET static void cnn_f32_winograd_gradient_f6__##ISA(const float *g, float *u, size_t us) { \
        wino_gradient_tile(6, 8, &wino_a6[0][0], g, u, us);                                        \
    }                                                                                              \
    TARGET static void cnn_f32_winograd_pool_f2__##ISA(const float *o, float b, int relu, float *pb) { \
        wino_pool_tile(2, o, b, relu, pb);                                                         \
    }                                                                                              \
    TARGET static void cnn_f32_winograd_pool_f4__##ISA(const float *o, float b, int relu, float *pb) { \
        wino_pool_tile(4, o, b, relu, pb);                                                         \
    }                                                                                              \
    TARGET static void cnn_f32_winograd_pool_f6__##ISA(const float *o, float b, int relu, float *pb) { \
        wino_pool_tile(6, o, b, relu, pb);                                                         \
    }

WINO_TRANSFORMS(generic, )
#if CNN_X86
WINO_TRANSFORMS(avx2, CNN_TARGET_AVX2)
WINO_TRANSFORMS(avx512, CNN_TARGET_AVX512)
#endif

/* ---- Weight-side transforms, vectorised over lanes of channels ---------------------------------
 * U = G g G^T for one (panel, c): the panel's WINO_MR filters are the lanes (their outputs for one
 * transform position are WINO_MR consecutive floats of U). dW += G^T M G for up to 16 channels c
 * of one filter k: the channels are the lanes (consecutive in M). Both in float on the compiler's
 * vector type with the loops over G fully unrolled, like the tile transforms: G's entries become
 * constants, zeros drop out (F(4x4)'s G is a third zeros). In training both run every step; in
 * double with the loops rolled they took 1.3 ms (U of the data gradient) and 1.1 ms (G^T M G) of
 * ResNet l3's batch-32 backward. Rounding to float adds a few ulps to entries the GEMM then sums
 * in float anyway. */
typedef float wino_vec8 __attribute__((vector_size(WINO_MR * sizeof(float)), aligned(4)));
_Static_assert(WINO_MR == 8, "wino_weight_panel_body fills the eight lanes of a panel by name");

/* out[i * os] = sum_r G(i, r) * in[r * is] for i < rows, r < cols, with G(i, r) = G[i * gi + r * gr]:
 * G itself (alpha x 3: gi = 3, gr = 1) or its transpose (3 x alpha: gi = 1, gr = 3). Each entry
 * is WINO_MR or WINO_LANES lanes; G's entries are constants once unrolled, zeros drop out. */
#define WINO_G_APPLY(VEC, rows, cols, G, gi, gr, in, is, out, os)                                \
    do {                                                                                         \
        _Pragma("clang loop unroll(full)") for (int i_ = 0; i_ < (rows); i_++) {                 \
            VEC acc_ = -(VEC){0};                                                                \
            _Pragma("clang loop unroll(full)") for (int r_ = 0; r_ < (cols); r_++) {             \
                const float c_ = (float)(G)[i_ * (gi) + r_ * (gr)];                              \
                if (c_ != 0.0f) acc_ += c_ * (in)[r_ * (is)];                                    \
            }                                                                                    \
            (out)[i_ * (os)] = acc_;                                                             \
        }                                                                                        \
    } while (0)

WINO_INLINE void wino_weight_panel_body(const int alpha, const int r, const double *G, const wino_weight_src *src,
                                        int kvalid, int64_t c, float *base, size_t pos_stride) {
    // tap e of filter kk (of the panel) in channel c is src->w[kk * fs + c * cs + e] (r^2 - 1 - e
    // when flipped); base: U entry (0,0) of lane 0; G is alpha x r
    const float *w = src->w + c * src->channel_stride;
    const int64_t fs = src->filter_stride;
    const int taps = r * r;
    wino_vec8 g[25], t[8][5]; /* t = G g: row i, column j */
    if (kvalid == WINO_MR) {
        /* Lanes filled straight from the taps: staged through memory, every vector load waited
         * for eight scalar stores it could not forward from. */
#pragma clang loop unroll(full)
        for (int e = 0; e < taps; e++) {
            const float *we = w + (src->flipped ? taps - 1 - e : e);
            g[e] = (wino_vec8){we[0], we[fs], we[2 * fs], we[3 * fs], we[4 * fs], we[5 * fs], we[6 * fs], we[7 * fs]};
        }
    } else {
        float gs[25][WINO_MR];
        for (int kk = 0; kk < WINO_MR; kk++)
            for (int e = 0; e < taps; e++)
                gs[e][kk] = kk < kvalid ? w[(int64_t)kk * fs + (src->flipped ? taps - 1 - e : e)] : 0.0f;
        for (int e = 0; e < taps; e++) g[e] = *(const wino_vec8 *)gs[e];
    }
#pragma clang loop unroll(full)
    for (int j = 0; j < r; j++) WINO_G_APPLY(wino_vec8, alpha, r, G, r, 1, g + j, r, &t[0][j], 5);
#pragma clang loop unroll(full)
    for (int i = 0; i < alpha; i++) {
        wino_vec8 row[8];
        WINO_G_APPLY(wino_vec8, alpha, r, G, r, 1, t[i], 1, row, 1); /* row[j] = sum_q G[j][q] t[i][q] */
#pragma clang loop unroll(full)
        for (int j = 0; j < alpha; j++) *(wino_vec8 *)(base + (size_t)(i * alpha + j) * pos_stride) = row[j];
    }
}

#define WINO_WGRAD_LANES WINO_LANES
WINO_INLINE void wino_weight_grad_body(const int alpha, const int r, const double *G, const float *mb, size_t mpos,
                                       int n, float *dw) {
    // mb: M entry (0,0) for channel c0 of filter k (entries mpos apart); dw: dW[k][c0], r^2 per
    // channel; G is alpha x r
    wino_vec m[8 * 8];
#pragma clang loop unroll(full)
    for (int e = 0; e < alpha * alpha; e++) {
        const float *src = mb + (size_t)e * mpos;
        if (n == WINO_WGRAD_LANES) {
            m[e] = *(const wino_vec *)src;
        } else {
            float lane[WINO_WGRAD_LANES];
            for (int l = 0; l < WINO_WGRAD_LANES; l++) lane[l] = l < n ? src[l] : 0.0f;
            m[e] = *(const wino_vec *)lane;
        }
    }
    /* t = G^T M (r x alpha), column by column; then o = t G, i.e. G^T applied to each row of t. */
    wino_vec t[5][8], o[5][5];
#pragma clang loop unroll(full)
    for (int j = 0; j < alpha; j++) WINO_G_APPLY(wino_vec, r, alpha, G, 1, r, m + j, alpha, &t[0][j], 8);
#pragma clang loop unroll(full)
    for (int q = 0; q < r; q++) WINO_G_APPLY(wino_vec, r, alpha, G, 1, r, t[q], 1, o[q], 1);
    const int taps = r * r;
    float out[25][WINO_WGRAD_LANES];
    for (int e = 0; e < taps; e++) *(wino_vec *)out[e] = o[e / r][e % r];
    for (int l = 0; l < n; l++)
        for (int e = 0; e < taps; e++) dw[l * taps + e] += out[e][l];
}

#define WINO_WEIGHT_TRANSFORMS(ISA, TARGET)                                                        \
    TARGET static void wino_weight_panel_f2__##ISA(const wino_weight_src *src, int kvalid, int64_t c, \
                                                   float *base, size_t ps) {                        \
        wino_weight_panel_body(4, 3, &wino_g2[0][0], src, kvalid, c, base, ps);                    \
    }                                                                                              \
    TARGET static void wino_weight_panel_f4__##ISA(const wino_weight_src *src, int kvalid, int64_t c, \
                                                   float *base, size_t ps) {                        \
        wino_weight_panel_body(6, 3, &wino_g4[0][0], src, kvalid, c, base, ps);                    \
    }                                                                                              \
    TARGET static void wino_weight_panel_f6__##ISA(const wino_weight_src *src, int kvalid, int64_t c, \
                                                   float *base, size_t ps) {                        \
        wino_weight_panel_body(8, 3, &wino_g6[0][0], src, kvalid, c, base, ps);                    \
    }                                                                                              \
    TARGET static void wino_weight_panel_f25__##ISA(const wino_weight_src *src, int kvalid, int64_t c, \
                                                    float *base, size_t ps) {                       \
        wino_weight_panel_body(6, 5, &wino_g25[0][0], src, kvalid, c, base, ps);                   \
    }                                                                                              \
    TARGET static void wino_weight_grad_f25__##ISA(const float *mb, size_t mpos, int n, float *dw) { \
        wino_weight_grad_body(6, 5, &wino_g25[0][0], mb, mpos, n, dw);                             \
    }                                                                                              \
    TARGET static void wino_weight_panel_f45__##ISA(const wino_weight_src *src, int kvalid, int64_t c, \
                                                    float *base, size_t ps) {                       \
        wino_weight_panel_body(8, 5, &wino_g45[0][0], src, kvalid, c, base, ps);                   \
    }                                                                                              \
    TARGET static void wino_weight_grad_f45__##ISA(const float *mb, size_t mpos, int n, float *dw) { \
        wino_weight_grad_body(8, 5, &wino_g45[0][0], mb, mpos, n, dw);                             \
    }                                                                                              \
    TARGET static void wino_weight_grad_f2__##ISA(const float *mb, size_t mpos, int n, float *dw) {  \
        wino_weight_grad_body(4, 3, &wino_g2[0][0], mb, mpos, n, dw);                              \
    }                                                                                              \
    TARGET static void wino_weight_grad_f4__##ISA(const float *mb, size_t mpos, int n, float *dw) {  \
        wino_weight_grad_body(6, 3, &wino_g4[0][0], mb, mpos, n, dw);                              \
    }                                                                                              \
    TARGET static void wino_weight_grad_f6__##ISA(const float *mb, size_t mpos, int n, float *dw) {  \
        wino_weight_grad_body(8, 3, &wino_g6[0][0], mb, mpos, n, dw);                              \
    }

WINO_WEIGHT_TRANSFORMS(generic, )
#if CNN_X86
WINO_WEIGHT_TRANSFORMS(avx2, CNN_TARGET_AVX2)
WINO_WEIGHT_TRANSFORMS(avx512, CNN_TARGET_AVX512)
#endif

/* ---- GEMM microkernels: c[MR][NR] (row stride ldc) = sum_k a[k][MR] * b[k][NR] (stride ldb) ---- */

// a is a packed U panel [kc][MR], b is a V panel [kc][nr] (nr = 32, or 16 at a group's end),
// c is M rows [MR][ldc]. The portable kernel computes all nr columns, the x86 ones the valid ones.
static void cnn_f32_winograd_gemm_8x32__generic(size_t kc, int nr, int valid, const float *CNN_RESTRICT a,
                                                const float *CNN_RESTRICT b,
                                                float *CNN_RESTRICT c, size_t ldc) {
    CNN_UNUSED(valid);
    const size_t ldb = (size_t)nr;
    /* 4 x 8 blocks: 8 SSE accumulators, so the portable build keeps them in registers. */
    for (int i0 = 0; i0 < WINO_MR; i0 += 4)
        for (int j0 = 0; j0 < nr; j0 += 8) {
            float acc[4][8] = {{0}};
            for (size_t k = 0; k < kc; k++) {
                const float *bk = b + k * ldb + j0;
                const float *ak = a + k * WINO_MR + i0;
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 8; j++) acc[i][j] += ak[i] * bk[j];
            }
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 8; j++) c[(size_t)(i0 + i) * ldc + j0 + j] = acc[i][j];
        }
}

#if CNN_X86
/* The x86 kernels fetch U this many floats (4 KiB, 128 k steps) ahead. A thread's GEMM items
 * read U front to back (panels of one position are adjacent, positions follow each other), and
 * with few tiles (batch 1 on 28x28 and 14x14 planes) each U float feeds only 16-32 FMAs, so U
 * streams from memory: 37.7 MB per call for 512 -> 512 channels at F(4x4), 67 MB at F(6x6). The
 * hardware prefetcher alone left the 14x14 layer at 18 GB/s and 63 % of the FMA peak. C harness,
 * 2 threads, caches flushed before each call, minimum of 20 calls, 4 alternated runs, eighth
 * session: vgg16.conv5_2 (F(4x4)) 2.27-2.34 -> 1.67-1.90 ms, conv4_2 (F(6x6)) 5.93-6.06 ->
 * 5.48-5.61 ms, conv4_1 3.29 -> 2.86-2.89 ms; 512 and 768 floats ahead measured the same, 2048
 * and 4096 slightly slower; the layers with many tiles (conv1_2, conv2_2) unchanged. */
#define WINO_U_PREFETCH 1024

/* Up to 12 valid columns (a small layer's last tiles: 49 F(4x4) tiles are 3 x 16 + 1, 25 F(6x6)
 * tiles 16 + 9): vectors along the panel's 8 rows instead of along the tiles, one ymm FMA per column
 * per k with the V entry broadcast from memory, where the 16-tile kernels spend 16 ymm FMAs (AVX2)
 * or 8 zmm FMAs (AVX-512) per k whatever the count. On the reference machine two ymm FMAs issue per
 * cycle and one zmm FMA, so n columns cost n / 2 cycles per k against 8. Stamped per ISA: the body
 * is ymm code, the AVX-512 build only changes the encoding. */
#define WINO_GEMM_NARROW(ISA, TARGET)                                                              \
    TARGET WINO_INLINE void wino_gemm_8xn_body__##ISA(size_t kc, const int n, size_t ldb,            \
                                                      const float *CNN_RESTRICT a,                  \
                                                      const float *CNN_RESTRICT b,                  \
                                                      float *CNN_RESTRICT c, size_t ldc) {          \
        __m256 acc[WINO_NARROW];                                                                   \
        for (int j = 0; j < n; j++) acc[j] = _mm256_setzero_ps();                                  \
        for (size_t k = 0; k < kc; k++, a += WINO_MR, b += ldb) {                                  \
            _mm_prefetch((const char *)(a + WINO_U_PREFETCH), _MM_HINT_T0);                        \
            const __m256 ak = _mm256_loadu_ps(a);                                                  \
            for (int j = 0; j < n; j++) acc[j] = _mm256_fmadd_ps(ak, _mm256_broadcast_ss(b + j), acc[j]); \
        }                                                                                          \
        float t[WINO_MR * WINO_NARROW] __attribute__((aligned(32)));                               \
        for (int j = 0; j < n; j++) _mm256_store_ps(t + j * WINO_MR, acc[j]);                       \
        for (int i = 0; i < WINO_MR; i++)                                                          \
            for (int j = 0; j < n; j++) c[(size_t)i * ldc + (size_t)j] = t[j * WINO_MR + i];       \
    }                                                                                              \
    /* One instance per column count, so the accumulators stay in registers. */                   \
    TARGET static void cnn_f32_winograd_gemm_8xn__##ISA(size_t kc, int n, size_t ldb,               \
                                                        const float *CNN_RESTRICT a,                \
                                                        const float *CNN_RESTRICT b,                \
                                                        float *CNN_RESTRICT c, size_t ldc) {        \
        switch (n) {                                                                               \
        case 1: wino_gemm_8xn_body__##ISA(kc, 1, ldb, a, b, c, ldc); break;                        \
        case 2: wino_gemm_8xn_body__##ISA(kc, 2, ldb, a, b, c, ldc); break;                        \
        case 3: wino_gemm_8xn_body__##ISA(kc, 3, ldb, a, b, c, ldc); break;                        \
        case 4: wino_gemm_8xn_body__##ISA(kc, 4, ldb, a, b, c, ldc); break;                        \
        case 5: wino_gemm_8xn_body__##ISA(kc, 5, ldb, a, b, c, ldc); break;                        \
        case 6: wino_gemm_8xn_body__##ISA(kc, 6, ldb, a, b, c, ldc); break;                        \
        case 7: wino_gemm_8xn_body__##ISA(kc, 7, ldb, a, b, c, ldc); break;                        \
        case 8: wino_gemm_8xn_body__##ISA(kc, 8, ldb, a, b, c, ldc); break;                        \
        case 9: wino_gemm_8xn_body__##ISA(kc, 9, ldb, a, b, c, ldc); break;                        \
        case 10: wino_gemm_8xn_body__##ISA(kc, 10, ldb, a, b, c, ldc); break;                      \
        case 11: wino_gemm_8xn_body__##ISA(kc, 11, ldb, a, b, c, ldc); break;                      \
        case 12: wino_gemm_8xn_body__##ISA(kc, 12, ldb, a, b, c, ldc); break;                      \
        default: break;                                                                            \
        }                                                                                          \
    }

WINO_GEMM_NARROW(avx2, CNN_TARGET_AVX2)
WINO_GEMM_NARROW(avx512, CNN_TARGET_AVX512)

CNN_TARGET_AVX2
static void cnn_f32_winograd_gemm_8x32__avx2(size_t kc, int nr, int valid, const float *CNN_RESTRICT a,
                                             const float *CNN_RESTRICT b,
                                             float *CNN_RESTRICT c, size_t ldc) {
    const size_t ldb = (size_t)nr;
    valid = CNN_MIN(valid, nr);
    /* A 16-tile block with at most WINO_NARROW valid tiles (the group's last) goes narrow; blocks
     * past the valid tiles are skipped. */
    int full = nr;
    if (valid < nr) {
        const int j0 = valid / 16 * 16, n = valid - j0;
        if (n > 0 && n <= WINO_NARROW) {
            cnn_f32_winograd_gemm_8xn__avx2(kc, n, ldb, a, b + j0, c + j0, ldc);
            full = j0;
        } else {
            full = (valid + 15) / 16 * 16;
        }
    }
    /* 4 rows x 16 tiles per pass: 8 ymm accumulators + 2 loads + 1 broadcast of 16 registers.
     * The first pass brings the U panel in from memory and prefetches it WINO_U_PREFETCH floats
     * ahead; the other passes find it in L1. Two builds called in turn 40-60 times, 2 threads,
     * median of the per-call ratios with / without the prefetch (Zen 3 class AVX2, twelfth
     * session): 512 -> 512 at 7x7 F(2x2) 0.78-0.88, 256 -> 256 at 14x14 F(4x4) 0.85-0.86,
     * 128 -> 128 at 28x28 0.95, 64 -> 64 at 56x56 0.99, 256 -> 256 at 56x56 0.92; prefetching
     * on every pass 0.84-1.02, 512 or 2048 floats ahead 0.92-0.97. */
    for (int i0 = 0; i0 < WINO_MR; i0 += 4)
        for (int j0 = 0; j0 < full; j0 += 16) {
            const int first = i0 == 0 && j0 == 0;
            __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
            __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
            __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
            __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
            const float *ap = a + i0, *bp = b + j0;
            for (size_t k = 0; k < kc; k++, ap += WINO_MR, bp += ldb) {
                if (first) _mm_prefetch((const char *)(ap + WINO_U_PREFETCH), _MM_HINT_T0);
                const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
                __m256 t = _mm256_broadcast_ss(ap);
                c00 = _mm256_fmadd_ps(t, b0, c00);
                c01 = _mm256_fmadd_ps(t, b1, c01);
                t = _mm256_broadcast_ss(ap + 1);
                c10 = _mm256_fmadd_ps(t, b0, c10);
                c11 = _mm256_fmadd_ps(t, b1, c11);
                t = _mm256_broadcast_ss(ap + 2);
                c20 = _mm256_fmadd_ps(t, b0, c20);
                c21 = _mm256_fmadd_ps(t, b1, c21);
                t = _mm256_broadcast_ss(ap + 3);
                c30 = _mm256_fmadd_ps(t, b0, c30);
                c31 = _mm256_fmadd_ps(t, b1, c31);
            }
            float *cp = c + (size_t)i0 * ldc + j0;
            _mm256_storeu_ps(cp, c00);
            _mm256_storeu_ps(cp + 8, c01);
            _mm256_storeu_ps(cp + ldc, c10);
            _mm256_storeu_ps(cp + ldc + 8, c11);
            _mm256_storeu_ps(cp + 2 * ldc, c20);
            _mm256_storeu_ps(cp + 2 * ldc + 8, c21);
            _mm256_storeu_ps(cp + 3 * ldc, c30);
            _mm256_storeu_ps(cp + 3 * ldc + 8, c31);
        }
}

CNN_TARGET_AVX512
static void cnn_f32_winograd_gemm_8x16__avx512(size_t kc, size_t ldb, const float *CNN_RESTRICT a,
                                               const float *CNN_RESTRICT b,
                                               float *CNN_RESTRICT c, size_t ldc) {
    __m512 acc[WINO_MR];
    for (int i = 0; i < WINO_MR; i++) acc[i] = _mm512_setzero_ps();
    for (size_t k = 0; k < kc; k++, a += WINO_MR, b += ldb) {
        _mm_prefetch((const char *)(a + WINO_U_PREFETCH), _MM_HINT_T0);
        const __m512 b0 = _mm512_loadu_ps(b);
        for (int i = 0; i < WINO_MR; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, acc[i]);
    }
    for (int i = 0; i < WINO_MR; i++) _mm512_storeu_ps(c + (size_t)i * ldc, acc[i]);
}

/* Columns [0, width) of the tile block, `valid` of them needed: 16 at a time, a narrow tail. */
CNN_TARGET_AVX512
static void wino_gemm_cols_avx512(size_t kc, size_t ldb, int valid, const float *a, const float *b, float *c,
                                  size_t ldc) {
    for (int j0 = 0; j0 < valid; j0 += 16) {
        const int n = valid - j0;
        if (n <= WINO_NARROW)
            cnn_f32_winograd_gemm_8xn__avx512(kc, n, ldb, a, b + j0, c + j0, ldc);
        else
            cnn_f32_winograd_gemm_8x16__avx512(kc, ldb, a, b + j0, c + j0, ldc);
    }
}

CNN_TARGET_AVX512
static void cnn_f32_winograd_gemm_8x32__avx512(size_t kc, int nr, int valid, const float *CNN_RESTRICT a,
                                               const float *CNN_RESTRICT b,
                                               float *CNN_RESTRICT c, size_t ldc) {
    if (nr != WINO_NR || valid < WINO_NR) {
        wino_gemm_cols_avx512(kc, (size_t)nr, CNN_MIN(valid, nr), a, b, c, ldc);
        return;
    }
    const size_t ldb = WINO_NR;
    __m512 acc[WINO_MR][2];
    for (int i = 0; i < WINO_MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (size_t k = 0; k < kc; k++, a += WINO_MR, b += ldb) {
        _mm_prefetch((const char *)(a + WINO_U_PREFETCH), _MM_HINT_T0);
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        for (int i = 0; i < WINO_MR; i++) {
            const __m512 t = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(t, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(t, b1, acc[i][1]);
        }
    }
    for (int i = 0; i < WINO_MR; i++) {
        _mm512_storeu_ps(c + (size_t)i * ldc, acc[i][0]);
        _mm512_storeu_ps(c + (size_t)i * ldc + 16, acc[i][1]);
    }
}
#endif

/* ---- Gather and scatter between the image and 16-tile lanes ---------------------------------- */

static void wino_tile_table(const wino_plan *p, const cnn_conv_shape *s, int64_t t0, int64_t count,
                            wino_tile *tab) {
    for (int64_t i = 0; i < count; i++) {
        const int64_t t = t0 + i;
        wino_tile *e = &tab[i];
        memset(e, 0, sizeof *e);
        if (t >= p->tiles) continue;
        const int64_t n = t / p->tiles_per_image, r = t - n * p->tiles_per_image;
        const int64_t ty = r / p->tw, oy = ty * p->m, ox = (r - ty * p->tw) * p->m;
        e->valid = 1;
        e->x_img = n * s->C * s->H * s->W;
        e->y_off = (n * s->K * p->P + oy) * p->Q + ox;
        e->pool_off = (n * s->K * (p->P / 2) + oy / 2) * (p->Q / 2) + ox / 2; /* m is even */
        e->iy = (int32_t)(oy - s->pad_h);
        e->ix = (int32_t)(ox - s->pad_w);
        e->rows = (int32_t)CNN_MIN((int64_t)p->m, p->P - oy);
        e->cols = (int32_t)CNN_MIN((int64_t)p->m, p->Q - ox);
        e->interior = e->iy >= 0 && e->ix >= 0 && e->iy + p->alpha <= s->H && e->ix + p->alpha <= s->W;
    }
}

// x is (N, C, H, W); d is [alpha][alpha][LANES]: lane l holds the input patch of tile tab[l] in
// channel c, zero outside the image and for tiles past the batch.
static void wino_gather(const wino_plan *p, const cnn_conv_shape *s, const float *x, int64_t c,
                        const wino_tile *tab, float *CNN_RESTRICT d) {
    const int alpha = p->alpha;
    const int64_t H = s->H, W = s->W;
    for (int l = 0; l < WINO_LANES; l++) {
        const wino_tile *e = &tab[l];
        if (!e->valid) {
            for (int i = 0; i < alpha * alpha; i++) d[i * WINO_LANES + l] = 0.0f;
            continue;
        }
        const float *src = x + e->x_img + c * H * W;
        const int64_t iy = e->iy, ix = e->ix;
        if (e->interior) {
            for (int i = 0; i < alpha; i++) {
                const float *row = src + (iy + i) * W + ix;
                for (int j = 0; j < alpha; j++) d[(i * alpha + j) * WINO_LANES + l] = row[j];
            }
        } else {
            for (int i = 0; i < alpha; i++) {
                const int64_t yy = iy + i;
                for (int j = 0; j < alpha; j++) {
                    const int64_t xx = ix + j;
                    d[(i * alpha + j) * WINO_LANES + l] =
                        (yy >= 0 && yy < H && xx >= 0 && xx < W) ? src[yy * W + xx] : 0.0f;
                }
            }
        }
    }
}

// o is [m][m][LANES] for output channel k of the tiles tab[0..15]; y and residual are (N, K, P, Q).
// y = relu?(o + bias[k] + residual), clipped to the image.
static void wino_scatter(const wino_plan *p, const float *o, int64_t k, const wino_tile *tab,
                         const float *bias, const float *residual, int relu, float *y) {
    const int m = p->m;
    const float b = bias ? bias[k] : 0.0f;
    const size_t kplane = (size_t)k * (size_t)p->P * (size_t)p->Q;
    for (int l = 0; l < WINO_LANES; l++) {
        const wino_tile *e = &tab[l];
        if (!e->valid) break;
        for (int i = 0; i < e->rows; i++) {
            const size_t at = (size_t)e->y_off + kplane + (size_t)i * (size_t)p->Q;
            float *yr = y + at;
            const float *rr = residual ? residual + at : NULL;
            for (int j = 0; j < e->cols; j++) {
                float v = o[(i * m + j) * WINO_LANES + l] + b;
                if (rr) v += rr[j];
                if (relu && v < 0.0f) v = 0.0f; /* NaN passes through, as in the reference */
                yr[j] = v;
            }
        }
    }
}

/* Splits the 16 tiles of a chunk into runs of horizontally adjacent tiles (same image, same tile
 * row, m columns apart): lanes [rs[r], rs[r + 1]) for r < the returned count. Adjacent input patches
 * and adjacent output tiles are the same thing: a tile followed by its right neighbour is never
 * clipped on the right, and shares its rows. Invalid lanes (past the batch) come last and end the
 * list. */
static inline int wino_runs(const int m, const wino_tile *tab, int *rs) {
    int nruns = 0, l = 0;
    while (l < WINO_LANES && tab[l].valid) {
        rs[nruns++] = l;
        const wino_tile *e = &tab[l];
        int n = 1;
        while (l + n < WINO_LANES && tab[l + n].valid && tab[l + n].x_img == e->x_img &&
               tab[l + n].iy == e->iy && tab[l + n].ix == e->ix + n * m)
            n++;
        l += n;
    }
    rs[nruns] = l;
    return nruns;
}

#if CNN_X86
/* dst[q] = src[x0 + q] for q < n where 0 <= x0 + q < W, else 0, in vectors of 16 (dst holds n
 * rounded up to 16). Columns outside the row are never read. */
CNN_TARGET_AVX512
WINO_INLINE void wino_copy_row_segment(const float *src, int64_t x0, int n, int64_t W, float *dst) {
    const int qa = x0 < 0 ? (int)CNN_MIN((int64_t)n, -x0) : 0;
    const int qb = (int)CNN_MAX((int64_t)qa, CNN_MIN((int64_t)n, W - x0));
    for (int q = 0; q < n; q += 16) {
        const int lo = qa > q ? qa - q : 0, hi = qb - q < 16 ? qb - q : 16;
        const __mmask16 k = hi > lo ? (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u)) : 0;
        _mm512_storeu_ps(dst + q, _mm512_maskz_loadu_ps(k, src + x0 + q));
    }
}

/* The AVX-512 gather, row by row. The 16 tiles of a chunk fall into runs of horizontally adjacent
 * tiles (same image, same tile row, m columns apart). For each patch row i and run, the input row
 * segment the run reads is copied into a buffer at offset m * (first lane), zero outside the image,
 * so that lane l's patch starts at buf[m * l]; then entry (i, j) of all lanes is buf[m * l + j]: a
 * stride-m selection done with two unaligned loads and one two-source permute per group of lanes
 * whose patches fit in 32 floats (16 lanes for m = 2, 8 for m = 4, 6 for m = 6), merged into the
 * row's alpha vectors under the run's lane mask. */
CNN_TARGET_AVX512
WINO_INLINE void wino_gather_avx512_body(const int m, const int alpha, const wino_plan *p,
                                         const cnn_conv_shape *s, const float *x, int64_t c,
                                         const wino_tile *tab, float *CNN_RESTRICT d) {
    CNN_UNUSED(p);
    const int64_t H = s->H, W = s->W;
    const int gs = m == 2 ? 16 : m == 4 ? 8 : 6; /* lanes per two-vector window */
    const int ng = (WINO_LANES + gs - 1) / gs;
    int rs[WINO_LANES + 1];
    const int nruns = wino_runs(m, tab, rs);
    __m512i idx[3];
    __mmask16 gmask[3];
    for (int g = 0; g < ng; g++) {
        int32_t v[WINO_LANES];
        unsigned mask = 0;
        for (int q = 0; q < WINO_LANES; q++) {
            const int in = q >= g * gs && q < (g + 1) * gs;
            v[q] = in ? m * (q - g * gs) : 0;
            if (in) mask |= 1u << q;
        }
        idx[g] = _mm512_loadu_si512(v);
        gmask[g] = (__mmask16)mask;
    }
    float buf[128] __attribute__((aligned(64)));
    for (int q = 0; q < 128; q += 16) _mm512_store_ps(buf + q, _mm512_setzero_ps());
    const size_t plane = (size_t)(H * W);
    for (int i = 0; i < alpha; i++) {
        __m512 row[8];
        for (int j = 0; j < alpha; j++) row[j] = _mm512_setzero_ps();
        for (int r = 0; r < nruns; r++) {
            const int la = rs[r], lb = rs[r + 1];
            const wino_tile *e = &tab[la];
            const int64_t yy = (int64_t)e->iy + i;
            if (yy < 0 || yy >= H) continue;
            const float *src = x + (size_t)e->x_img + (size_t)c * plane + (size_t)yy * (size_t)W;
            const int64_t x0 = e->ix;
            const int n = m * (lb - la - 1) + alpha;
            wino_copy_row_segment(src, x0, n, W, buf + m * la);
            const __mmask16 rmask = (__mmask16)(((1u << lb) - 1u) & ~((1u << la) - 1u));
            for (int g = 0; g < ng; g++) {
                const __mmask16 k = rmask & gmask[g];
                if (!k) continue;
                const float *wp = buf + m * g * gs;
                for (int j = 0; j < alpha; j++) {
                    const __m512 t = _mm512_permutex2var_ps(_mm512_loadu_ps(wp + j), idx[g],
                                                            _mm512_loadu_ps(wp + j + 16));
                    row[j] = _mm512_mask_mov_ps(row[j], k, t);
                }
            }
        }
        for (int j = 0; j < alpha; j++) _mm512_store_ps(d + (i * alpha + j) * WINO_LANES, row[j]);
    }
}

#define WINO_GATHER_AVX512(M)                                                                      \
    CNN_TARGET_AVX512 static void wino_gather_f##M##__avx512(const wino_plan *p,                   \
                                                             const cnn_conv_shape *s,              \
                                                             const float *x, int64_t c,            \
                                                             const wino_tile *tab, float *d) {     \
        wino_gather_avx512_body(M, M + 2, p, s, x, c, tab, d);                                     \
    }
WINO_GATHER_AVX512(2)
WINO_GATHER_AVX512(4)
/* F(2x2, 5x5): 6 x 6 patches 2 apart, 16 lanes in a window of 2 * 15 + 6 floats; F(4x4, 5x5): 8 x 8
 * patches 4 apart, 8 lanes in a window of 4 * 7 + 8. */
CNN_TARGET_AVX512 static void wino_gather_f25__avx512(const wino_plan *p, const cnn_conv_shape *s, const float *x,
                                                      int64_t c, const wino_tile *tab, float *d) {
    wino_gather_avx512_body(2, 6, p, s, x, c, tab, d);
}
CNN_TARGET_AVX512 static void wino_gather_f45__avx512(const wino_plan *p, const cnn_conv_shape *s, const float *x,
                                                      int64_t c, const wino_tile *tab, float *d) {
    wino_gather_avx512_body(4, 8, p, s, x, c, tab, d);
}

/* The AVX-512 gather of F(6x6) by transposition. Lane l's patch row is the 8 floats from its first
 * column, read straight from the image row when the run of tiles lies inside it (else from a
 * zero-padded copy of the run's row segment, as in wino_gather_avx512_body), two lanes per zmm
 * (l and l + 4; l + 8 and l + 12); a 16 x 8 transpose then makes entry j of all 16 lanes one
 * vector: 8 inserts, 8 unpacks, 8 in-lane shuffles and one 128-bit lane shuffle per entry, where
 * the permute gather copies every row segment and spends two loads, a two-source permute and a
 * masked move per entry and group of 6 lanes. C harness, 2 threads, minimum of 20 calls, 4
 * alternated runs (ninth session): vgg16.conv1_2 7.80-7.96 -> 7.49-7.57 ms, conv2_2 5.30-5.36 ->
 * 5.09-5.31, conv4_2 5.24-5.44 -> 5.10. F(4x4) keeps the permute gather: transposed (reading 8
 * floats for its 6) it measured 2-4 % slower on conv1_2 and about 1 % on conv3_2, and with masked
 * loads in place of the row copy 6 % slower on conv1_2 and equal on conv3_2. */
CNN_TARGET_AVX512
WINO_INLINE void wino_transpose16x8_avx512(const __m256 *r, float *CNN_RESTRICT out) {
    __m512 a[8], v[8];
    for (int k = 0; k < 4; k++) {
        a[k] = _mm512_insertf32x8(_mm512_castps256_ps512(r[k]), r[k + 4], 1);
        a[4 + k] = _mm512_insertf32x8(_mm512_castps256_ps512(r[8 + k]), r[12 + k], 1);
    }
    /* 128-bit lanes of a[k]: entries 0-3 of tile k, 4-7 of tile k, 0-3 of tile k + 4, 4-7 of k + 4
     * (tiles + 8 in a[4 + k]). After the unpacks and shuffles, lanes of v[j] (j < 4): entry j of
     * tiles 0-3, entry j + 4 of tiles 0-3, entry j of tiles 4-7, entry j + 4 of tiles 4-7. */
    for (int h = 0; h < 2; h++) {
        const __m512 *x = a + 4 * h;
        const __m512 t0 = _mm512_unpacklo_ps(x[0], x[1]), t1 = _mm512_unpackhi_ps(x[0], x[1]);
        const __m512 t2 = _mm512_unpacklo_ps(x[2], x[3]), t3 = _mm512_unpackhi_ps(x[2], x[3]);
        v[4 * h + 0] = _mm512_shuffle_ps(t0, t2, 0x44);
        v[4 * h + 1] = _mm512_shuffle_ps(t0, t2, 0xEE);
        v[4 * h + 2] = _mm512_shuffle_ps(t1, t3, 0x44);
        v[4 * h + 3] = _mm512_shuffle_ps(t1, t3, 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        _mm512_store_ps(out + j * WINO_LANES, _mm512_shuffle_f32x4(v[j], v[4 + j], 0x88));
        _mm512_store_ps(out + (j + 4) * WINO_LANES, _mm512_shuffle_f32x4(v[j], v[4 + j], 0xDD));
    }
}

CNN_TARGET_AVX512 static void wino_gather_f6__avx512(const wino_plan *p, const cnn_conv_shape *s, const float *x,
                                                     int64_t c, const wino_tile *tab, float *CNN_RESTRICT d) {
    CNN_UNUSED(p);
    enum { m = 6, alpha = 8 };
    const int64_t H = s->H, W = s->W;
    int rs[WINO_LANES + 1];
    const int nruns = wino_runs(m, tab, rs);
    float buf[112] __attribute__((aligned(64)));
    const size_t plane = (size_t)(H * W);
    for (int i = 0; i < alpha; i++) {
        __m256 r[WINO_LANES];
        for (int l = 0; l < WINO_LANES; l++) r[l] = _mm256_setzero_ps();
        for (int u = 0; u < nruns; u++) {
            const int la = rs[u], lb = rs[u + 1];
            const wino_tile *e = &tab[la];
            const int64_t yy = (int64_t)e->iy + i;
            if (yy < 0 || yy >= H) continue;
            const float *src = x + (size_t)e->x_img + (size_t)c * plane + (size_t)yy * (size_t)W;
            const int64_t x0 = e->ix;
            const int n = m * (lb - la - 1) + alpha; /* floats the run reads: 98 at most */
            if (x0 >= 0 && x0 + n <= W) {
                for (int l = la; l < lb; l++) r[l] = _mm256_loadu_ps(src + x0 + m * (l - la));
            } else {
                wino_copy_row_segment(src, x0, n, W, buf);
                for (int l = la; l < lb; l++) r[l] = _mm256_loadu_ps(buf + m * (l - la));
            }
        }
        wino_transpose16x8_avx512(r, d + (size_t)i * alpha * WINO_LANES);
    }
}
/* The AVX-512 scatter, row by row: for output row i of the 16 tiles, the row's m vectors o[i][j]
 * (lanes = tiles) are interleaved into one contiguous row segment buf[m * l + j] with two-source
 * permutes (pairs of j, merged under masks), then each run of adjacent tiles is written to y with
 * the epilogue vectorised along the row. The permute tables follow from the formula: element e of
 * output vector q is flat position f = 16 q + e, lane f / m, column f % m. */
#define WINO_IL_J(m, q, e) ((16 * (q) + (e)) % (m))
#define WINO_IL_IDX(m, q, p, e) \
    (WINO_IL_J(m, q, e) / 2 == (p) ? (16 * (q) + (e)) / (m) + 16 * (WINO_IL_J(m, q, e) - 2 * (p)) : 0)
#define WINO_IL_BIT(m, q, p, e) (WINO_IL_J(m, q, e) / 2 == (p) ? 1u << (e) : 0u)
#define WINO_IL_ROW(m, q, p)                                                                       \
    {WINO_IL_IDX(m, q, p, 0),  WINO_IL_IDX(m, q, p, 1),  WINO_IL_IDX(m, q, p, 2),                 \
     WINO_IL_IDX(m, q, p, 3),  WINO_IL_IDX(m, q, p, 4),  WINO_IL_IDX(m, q, p, 5),                 \
     WINO_IL_IDX(m, q, p, 6),  WINO_IL_IDX(m, q, p, 7),  WINO_IL_IDX(m, q, p, 8),                 \
     WINO_IL_IDX(m, q, p, 9),  WINO_IL_IDX(m, q, p, 10), WINO_IL_IDX(m, q, p, 11),                \
     WINO_IL_IDX(m, q, p, 12), WINO_IL_IDX(m, q, p, 13), WINO_IL_IDX(m, q, p, 14),                \
     WINO_IL_IDX(m, q, p, 15)}
#define WINO_IL_MASK(m, q, p)                                                                      \
    (WINO_IL_BIT(m, q, p, 0) | WINO_IL_BIT(m, q, p, 1) | WINO_IL_BIT(m, q, p, 2) |               \
     WINO_IL_BIT(m, q, p, 3) | WINO_IL_BIT(m, q, p, 4) | WINO_IL_BIT(m, q, p, 5) |               \
     WINO_IL_BIT(m, q, p, 6) | WINO_IL_BIT(m, q, p, 7) | WINO_IL_BIT(m, q, p, 8) |               \
     WINO_IL_BIT(m, q, p, 9) | WINO_IL_BIT(m, q, p, 10) | WINO_IL_BIT(m, q, p, 11) |             \
     WINO_IL_BIT(m, q, p, 12) | WINO_IL_BIT(m, q, p, 13) | WINO_IL_BIT(m, q, p, 14) |            \
     WINO_IL_BIT(m, q, p, 15))

typedef struct wino_interleave {
    int32_t idx[6][3][16]; /* [q][pair][element] */
    uint16_t mask[6][3];
} wino_interleave;

#define WINO_IL_Q(m, q) {WINO_IL_ROW(m, q, 0), WINO_IL_ROW(m, q, 1), WINO_IL_ROW(m, q, 2)}
#define WINO_IL_QM(m, q) {WINO_IL_MASK(m, q, 0), WINO_IL_MASK(m, q, 1), WINO_IL_MASK(m, q, 2)}
static const wino_interleave wino_il[3] = {
    {{WINO_IL_Q(2, 0), WINO_IL_Q(2, 1)}, {WINO_IL_QM(2, 0), WINO_IL_QM(2, 1)}},
    {{WINO_IL_Q(4, 0), WINO_IL_Q(4, 1), WINO_IL_Q(4, 2), WINO_IL_Q(4, 3)},
     {WINO_IL_QM(4, 0), WINO_IL_QM(4, 1), WINO_IL_QM(4, 2), WINO_IL_QM(4, 3)}},
    {{WINO_IL_Q(6, 0), WINO_IL_Q(6, 1), WINO_IL_Q(6, 2), WINO_IL_Q(6, 3), WINO_IL_Q(6, 4), WINO_IL_Q(6, 5)},
     {WINO_IL_QM(6, 0), WINO_IL_QM(6, 1), WINO_IL_QM(6, 2), WINO_IL_QM(6, 3), WINO_IL_QM(6, 4),
      WINO_IL_QM(6, 5)}},
};

CNN_TARGET_AVX512
WINO_INLINE void wino_scatter_avx512_body(const int m, const wino_plan *p, const float *o, int64_t k,
                                          const wino_tile *tab, const float *bias,
                                          const float *residual, int relu, float *y) {
    const wino_interleave *il = &wino_il[m / 2 - 1];
    int rs[WINO_LANES + 1];
    const int nruns = wino_runs(m, tab, rs);
    const __m512 b = _mm512_set1_ps(bias ? bias[k] : 0.0f), zero = _mm512_setzero_ps();
    const size_t kplane = (size_t)k * (size_t)p->P * (size_t)p->Q;
    float buf[112] __attribute__((aligned(64)));
    for (int i = 0; i < m; i++) {
        __m512 oj[6];
        for (int j = 0; j < m; j++) oj[j] = _mm512_load_ps(o + (i * m + j) * WINO_LANES);
        for (int q = 0; q < m; q++) {
            __m512 v = _mm512_permutex2var_ps(oj[0], _mm512_loadu_si512(il->idx[q][0]), oj[1]);
            for (int pr = 1; pr < m / 2; pr++)
                v = _mm512_mask_mov_ps(v, (__mmask16)il->mask[q][pr],
                                       _mm512_permutex2var_ps(oj[2 * pr], _mm512_loadu_si512(il->idx[q][pr]),
                                                              oj[2 * pr + 1]));
            _mm512_store_ps(buf + 16 * q, _mm512_add_ps(v, b));
        }
        for (int r = 0; r < nruns; r++) {
            const int la = rs[r], lb = rs[r + 1];
            if (i >= tab[la].rows) continue;
            const int n = m * (lb - la - 1) + tab[lb - 1].cols;
            const size_t at = (size_t)tab[la].y_off + kplane + (size_t)i * (size_t)p->Q;
            const float *src = buf + m * la;
            float *yr = y + at;
            const float *rr = residual ? residual + at : NULL;
            for (int q = 0; q < n; q += 16) {
                const __mmask16 mk = n - q >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - q)) - 1u);
                __m512 v = _mm512_maskz_loadu_ps(mk, src + q);
                if (rr) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, rr + q));
                if (relu) v = _mm512_max_ps(zero, v); /* NaN passes through, as in the reference */
                _mm512_mask_storeu_ps(yr + q, mk, v);
            }
        }
    }
}

#define WINO_SCATTER_AVX512(M)                                                                     \
    CNN_TARGET_AVX512 static void wino_scatter_f##M##__avx512(                                     \
        const wino_plan *p, const float *o, int64_t k, const wino_tile *tab, const float *bias,   \
        const float *residual, int relu, float *y) {                                              \
        wino_scatter_avx512_body(M, p, o, k, tab, bias, residual, relu, y);                        \
    }
WINO_SCATTER_AVX512(2)
WINO_SCATTER_AVX512(4)
WINO_SCATTER_AVX512(6)
#endif

/* ---- The weight gradient's operands on channel lanes ------------------------------------------
 * The weight gradient's GEMMs sum over tiles, M[pos] (K x C) += U[pos] V[pos]^T, so both operands
 * are read along the tiles. Transformed with the tiles as lanes (as in the forward), U and V come
 * out tile-contiguous and the GEMM's packing transposes both, while the tile-lane gathers of x
 * and dy pick every lane's columns out of image rows (two thirds of the transform time). With the
 * images copied channels-last once per group, a patch entry of 16 channels is one contiguous
 * vector: the gathers are plain loads, the same transform routines run on channel lanes, and U and
 * V come out (tiles x channels), which the GEMM packs by plain copies. */

/* Images [n0, n0 + cnt) of t (N, C, HW) into o (cnt, HW, cp), lanes C..cp-1 zero; one item is one
 * image's block of 8 positions. */
static void wino_channels_last_generic(const float *t, int64_t C, int64_t HW, int64_t cp, int64_t n0,
                                       int64_t item, float *o) {
    const int64_t blocks = (HW + 7) / 8, j = item / blocks, hw0 = (item - j * blocks) * 8;
    const float *src = t + (n0 + j) * C * HW;
    float *dst = o + j * HW * cp;
    for (int64_t i = hw0; i < CNN_MIN(hw0 + 8, HW); i++) {
        float *row = dst + i * cp;
        for (int64_t c = 0; c < C; c++) row[c] = src[c * HW + i];
        for (int64_t c = C; c < cp; c++) row[c] = 0.0f;
    }
}

#if CNN_X86
/* The same with 8 x 8 register transposes where the block is whole. */
CNN_TARGET_AVX2 static void wino_channels_last_x86(const float *t, int64_t C, int64_t HW, int64_t cp, int64_t n0,
                                                   int64_t item, float *o) {
    const int64_t blocks = (HW + 7) / 8, j = item / blocks, hw0 = (item - j * blocks) * 8;
    if (hw0 + 8 > HW) {
        wino_channels_last_generic(t, C, HW, cp, n0, item, o);
        return;
    }
    const float *src = t + (n0 + j) * C * HW + hw0;
    float *dst = o + j * HW * cp + hw0 * cp;
    const int64_t c8 = C / 8 * 8;
    for (int64_t c = 0; c < c8; c += 8) cnn_gemm_transpose8x8__avx2(src + c * HW, (size_t)HW, dst + c, (size_t)cp);
    for (int64_t i = 0; i < 8; i++) {
        for (int64_t c = c8; c < C; c++) dst[i * cp + c] = src[c * HW + i];
        for (int64_t c = C; c < cp; c++) dst[i * cp + c] = 0.0f;
    }
}
#endif

typedef void (*wino_channels_last_fn)(const float *, int64_t, int64_t, int64_t, int64_t, int64_t, float *);
static wino_channels_last_fn wino_channels_last_select(void) {
#if CNN_X86
    if (cnn_isa_active() != CNN_ISA_GENERIC) return wino_channels_last_x86;
#endif
    return wino_channels_last_generic;
}

/* d is [alpha][alpha][16]: entry (i, j), lane l is channel c0 + l of the tile's input patch, zero
 * outside the image and for a tile past the batch. */
WINO_INLINE void wino_gather_channels_body(const int alpha, const cnn_conv_shape *s, const float *cl, int64_t cp,
                                           int64_t n0, int64_t c0, const wino_tile *e, float *d) {
    const int64_t H = s->H, W = s->W;
    const float *img = e->valid ? cl + (e->x_img / (s->C * H * W) - n0) * H * W * cp + c0 : NULL;
    for (int i = 0; i < alpha; i++) {
        const int64_t y = (int64_t)e->iy + i;
        const int row = img && y >= 0 && y < H;
        for (int j = 0; j < alpha; j++) {
            const int64_t x = (int64_t)e->ix + j;
            wino_vec *o = (wino_vec *)(d + (i * alpha + j) * WINO_LANES);
            *o = row && x >= 0 && x < W ? *(const wino_vec *)(img + (y * W + x) * cp) : (wino_vec){0};
        }
    }
}

/* g is [m][m][16]: entry (i, j), lane l is channel c0 + l of dy over the tile's outputs, zero past
 * the clipped edge and for a tile past the batch. */
WINO_INLINE void wino_gather_gradient_channels_body(const int m, const wino_plan *p, const cnn_conv_shape *s,
                                                    const float *cl, int64_t cp, int64_t n0, int64_t c0,
                                                    const wino_tile *e, float *g) {
    const int64_t P = p->P, Q = p->Q, oy = (int64_t)e->iy + s->pad_h, ox = (int64_t)e->ix + s->pad_w;
    const float *img = e->valid ? cl + (e->x_img / (s->C * s->H * s->W) - n0) * P * Q * cp + c0 : NULL;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            wino_vec *o = (wino_vec *)(g + (i * m + j) * WINO_LANES);
            *o = img && i < e->rows && j < e->cols ? *(const wino_vec *)(img + ((oy + i) * Q + ox + j) * cp)
                                                   : (wino_vec){0};
        }
}

#define WINO_GATHER_CHANNELS(M, ISA, TARGET)                                                       \
    TARGET static void wino_gather_channels_f##M##__##ISA(const wino_plan *p, const cnn_conv_shape *s, \
                                                          const float *cl, int64_t cp, int64_t n0,      \
                                                          int64_t c0, const wino_tile *e, float *d) {    \
        CNN_UNUSED(p);                                                                             \
        wino_gather_channels_body(M + 2, s, cl, cp, n0, c0, e, d);                                 \
    }                                                                                              \
    TARGET static void wino_gather_gradient_channels_f##M##__##ISA(                                \
        const wino_plan *p, const cnn_conv_shape *s, const float *cl, int64_t cp, int64_t n0, int64_t c0, \
        const wino_tile *e, float *g) {                                                            \
        wino_gather_gradient_channels_body(M, p, s, cl, cp, n0, c0, e, g);                         \
    }
/* F(m x m, 5x5): alpha x alpha input patches (the output-gradient tiles are F(m x m, 3x3)'s). */
#define WINO_GATHER_CHANNELS_R5(NAME, ALPHA, ISA, TARGET)                                          \
    TARGET static void wino_gather_channels_##NAME##__##ISA(const wino_plan *p, const cnn_conv_shape *s, \
                                                            const float *cl, int64_t cp, int64_t n0, \
                                                            int64_t c0, const wino_tile *e, float *d) { \
        CNN_UNUSED(p);                                                                             \
        wino_gather_channels_body(ALPHA, s, cl, cp, n0, c0, e, d);                                 \
    }
#define WINO_GATHER_CHANNELS_ISA(ISA, TARGET)                                                      \
    WINO_GATHER_CHANNELS(2, ISA, TARGET) WINO_GATHER_CHANNELS(4, ISA, TARGET) WINO_GATHER_CHANNELS(6, ISA, TARGET) \
    WINO_GATHER_CHANNELS_R5(f25, 6, ISA, TARGET) WINO_GATHER_CHANNELS_R5(f45, 8, ISA, TARGET)
WINO_GATHER_CHANNELS_ISA(generic, )
#if CNN_X86
WINO_GATHER_CHANNELS_ISA(avx2, CNN_TARGET_AVX2)
WINO_GATHER_CHANNELS_ISA(avx512, CNN_TARGET_AVX512)
#endif

/* The portable gather and scatter serve every m. */
#define wino_scatter_f2__generic wino_scatter
#define wino_scatter_f4__generic wino_scatter
#define wino_scatter_f6__generic wino_scatter
#define wino_scatter_f2__avx2 wino_scatter
#define wino_scatter_f4__avx2 wino_scatter
#define wino_scatter_f6__avx2 wino_scatter
#define wino_gather_f2__generic wino_gather
#define wino_gather_f4__generic wino_gather
#define wino_gather_f6__generic wino_gather
#define wino_gather_f2__avx2 wino_gather
#define wino_gather_f4__avx2 wino_gather
#define wino_gather_f6__avx2 wino_gather
#define wino_gather_f25__generic wino_gather
#define wino_gather_f25__avx2 wino_gather
#define wino_gather_f45__generic wino_gather
#define wino_gather_f45__avx2 wino_gather

/* One table per ISA, indexed by wino_variant. */
#define WINO_KERNEL_ROW(M, ISA)                                                                    \
    {cnn_f32_winograd_input_f##M##__##ISA,    cnn_f32_winograd_output_f##M##__##ISA,               \
     cnn_f32_winograd_gemm_8x32__##ISA,       cnn_f32_winograd_gradient_f##M##__##ISA,             \
     wino_weight_panel_f##M##__##ISA,         wino_weight_grad_f##M##__##ISA,                      \
     wino_gather_f##M##__##ISA,               wino_scatter_f##M##__##ISA,                          \
     cnn_f32_winograd_pool_f##M##__##ISA,                                                           \
     wino_gather_channels_f##M##__##ISA,      wino_gather_gradient_channels_f##M##__##ISA}
/* F(M x M, 5x5) (M = 2, 4): the input transform of the 3x3 tile with the same alpha (same points,
 * IN = 4 or 6), F(M x M, 3x3)'s scatter, pool and output-gradient gather (same tile), its own
 * output, gradient and weight transforms. */
#define WINO_KERNEL_ROW_R5(M, IN, ISA)                                                             \
    {cnn_f32_winograd_input_f##IN##__##ISA,   cnn_f32_winograd_output_f##M##5__##ISA,              \
     cnn_f32_winograd_gemm_8x32__##ISA,       cnn_f32_winograd_gradient_f##M##5__##ISA,            \
     wino_weight_panel_f##M##5__##ISA,        wino_weight_grad_f##M##5__##ISA,                     \
     wino_gather_f##M##5__##ISA,              wino_scatter_f##M##__##ISA,                          \
     cnn_f32_winograd_pool_f##M##__##ISA,                                                           \
     wino_gather_channels_f##M##5__##ISA,     wino_gather_gradient_channels_f##M##__##ISA}
#define WINO_KERNEL_TABLE(ISA)                                                                     \
    static const wino_kernels wino_kernels__##ISA[5] = {                                          \
        WINO_KERNEL_ROW(2, ISA), WINO_KERNEL_ROW(4, ISA), WINO_KERNEL_ROW(6, ISA),                 \
        WINO_KERNEL_ROW_R5(2, 4, ISA), WINO_KERNEL_ROW_R5(4, 6, ISA)};

WINO_KERNEL_TABLE(generic)
#if CNN_X86
WINO_KERNEL_TABLE(avx2)
WINO_KERNEL_TABLE(avx512)
#endif

static wino_kernels wino_select(int m, int r) {
    const int i = wino_variant(m, r); /* wino_check ran first */
#if CNN_X86
    const cnn_isa isa = cnn_isa_active();
    if (isa == CNN_ISA_AVX512) return wino_kernels__avx512[i];
    if (isa == CNN_ISA_AVX2) return wino_kernels__avx2[i];
#endif
    return wino_kernels__generic[i];
}

/* ---- Forward ------------------------------------------------------------------------------- */

/* The pooled tiles pb ([m/2][m/2][LANES], from the pool routine) of output channel k into y
 * (N, K, P/2, Q/2): an edge tile clipped to r rows keeps r/2 of them, PyTorch's floor mode. */
static void wino_scatter_pooled(const wino_plan *p, const float *pb, int64_t k, const wino_tile *tab, float *y) {
    const int h = p->m / 2;
    const int64_t PW = p->Q / 2;
    float *yk = y + (size_t)k * (size_t)(p->P / 2) * (size_t)PW;
    for (int l = 0; l < WINO_LANES; l++) {
        const wino_tile *e = &tab[l];
        if (!e->valid) break;
        float *yt = yk + e->pool_off;
        for (int pi = 0; pi < e->rows / 2; pi++)
            for (int pj = 0; pj < e->cols / 2; pj++) yt[pi * PW + pj] = pb[(pi * h + pj) * WINO_LANES + l];
    }
}

/* Inputs of at least this many bytes have the gather's rows fetched ahead (wino_prefetch_patches):
 * a smaller input stays in the L2s between calls, where the extra instructions only cost. */
#define WINO_PREFETCH_MIN_BYTES ((size_t)2 << 20)

/* Fetches the input rows that the gather of channel c will read for the 16 tiles tab[0..15]: each
 * run of horizontally adjacent tiles reads alpha row segments, fetched a cache line at a time.
 * The forward calls it one channel ahead, a group's chunk count of items before the gather needs
 * them. The input planes of a large layer come from memory or L3, and each channel's rows of a
 * tile group are runs of a few hundred bytes the hardware prefetcher picks up late. C harness,
 * builds called in turn, median per-call ratio new / old (then the order reversed, old / new),
 * 2 threads, twenty-fourth session (Zen 4 class): vgg16.conv1_2 0.945 (1.055), 0.948 (1.046),
 * 1 thread 0.945 (1.064); conv3_2 0.983 (1.055), 0.977 (1.011); conv2_2 0.982 (1.045); ResNet-50's
 * 3x3 layers at batch 8, 64 at 56x56 0.976 (1.053), 128 at 28x28 0.947 (1.074); the AVX2 variant
 * on the same host, conv1_2 0.977 (1.060), conv3_2 0.962 (1.047). Fetching for the small layers
 * as well (inputs of 0.4-1.6 MB, ResNet-50 at batch 1) cost them 1-3 %; fetching only each
 * segment's first line gave conv1_2 0.988 (1.029). */
static void wino_prefetch_patches(const wino_plan *p, const cnn_conv_shape *s, const float *x, int64_t c,
                                  const wino_tile *tab) {
    const int64_t H = s->H, W = s->W, m = p->m, alpha = p->alpha;
    int rs[WINO_LANES + 1];
    const int nruns = wino_runs(p->m, tab, rs);
    for (int r = 0; r < nruns; r++) {
        const wino_tile *e = &tab[rs[r]];
        const int64_t x0 = CNN_MAX((int64_t)0, (int64_t)e->ix);
        const int64_t x1 = CNN_MIN(W, (int64_t)e->ix + m * (rs[r + 1] - rs[r] - 1) + alpha);
        const float *plane = x + e->x_img + c * H * W;
        for (int64_t i = 0; i < alpha; i++) {
            const int64_t yy = e->iy + i;
            if (yy < 0 || yy >= H || x1 <= x0) continue;
            const float *row = plane + yy * W;
            for (int64_t q = x0; q < x1; q += 16) __builtin_prefetch(row + q, 0, 3);
            __builtin_prefetch(row + x1 - 1, 0, 3);
        }
    }
}

/* y = relu?(conv(x) + bias + residual), or with pool set, its 2x2 max pool (no residual). */
static cnn_status wino_forward(const cnn_winograd_weights *u, const cnn_conv_shape *s, const float *x,
                               const float *bias, const float *residual, int relu, int pool, float *y) {
    if (!u) return CNN_ERR_INVALID_ARGUMENT;
    cnn_status st = wino_check(u->m, s);
    if (st != CNN_OK) return st;
    if (s->K != u->K || s->C != u->C || s->R != u->r || !x || !y) return CNN_ERR_INVALID_ARGUMENT;
    wino_plan p;
    wino_make_plan(u, s, &p);
    float *vbuf = (float *)cnn_workspace(4, p.v_floats * sizeof(float));
    float *mbuf = (float *)cnn_workspace(5, p.m_floats * sizeof(float));
    wino_tile *tab = (wino_tile *)cnn_workspace(6, (size_t)p.group * sizeof(wino_tile));
    if (!vbuf || !mbuf || !tab) return CNN_ERR_OUT_OF_MEMORY;

    const wino_kernels kern = wino_select(u->m, u->r);
    const int a2 = p.a2;
    const int64_t C = u->C, K = u->K, Kp = u->Kp, Tg = p.group;
    /* V[pos] is a sequence of panels, C x 32 tiles each (the last C x 16 when Tg is odd in 16s),
     * each contiguous so the microkernel streams it; M[pos] is Kp x Tg, row-major. */
    const int64_t kblocks = Kp / WINO_MR, nblocks = (Tg + WINO_NR - 1) / WINO_NR, chunks = Tg / WINO_LANES;
    const size_t vpos = p.vpos, mpos = p.mpos;
    const int64_t gemm_items = (int64_t)a2 * nblocks * kblocks;
    const int threads = cnn_threads_for(C * chunks > gemm_items ? C * chunks : gemm_items);
    CNN_UNUSED(threads);
    const int prefetch = (size_t)(s->N * C * s->H * s->W) * sizeof(float) >= WINO_PREFETCH_MIN_BYTES;

#if CNN_OMP
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
    {
        float d[8 * 8 * WINO_LANES] __attribute__((aligned(64)));
        float pb[3 * 3 * WINO_LANES] __attribute__((aligned(64)));
        for (int64_t g0 = 0; g0 < p.tiles; g0 += Tg) {
            CNN_PRAGMA(omp for schedule(static))
            for (int64_t ch = 0; ch < chunks; ch++)
                wino_tile_table(&p, s, g0 + ch * WINO_LANES, WINO_LANES, tab + ch * WINO_LANES);
            /* 1. Input transform: V[pos] panels for the group's tiles. Items channel by channel,
             *    each channel's chunks in turn: a thread reads neighbouring rows of one plane, and
             *    a partial last chunk is shared by both threads. C harness, 2 threads, minimum of
             *    20 calls, 5 alternated runs (ninth session), chunk-major -> channel-major, median
             *    run: vgg16.conv1_2 F(6x6) 7.75 -> 7.43 ms, conv2_2 5.28 -> 5.09; conv2_1, conv4_1
             *    equal, conv3_2 F(4x4) 5.33 -> 5.36. */
            CNN_PRAGMA(omp for schedule(static))
            for (int64_t it = 0; it < C * chunks; it++) {
                const int64_t c = it / chunks, ch = it - c * chunks;
                const int64_t nb = ch / 2, width = CNN_MIN((int64_t)WINO_NR, Tg - nb * WINO_NR);
                if (prefetch && c + 1 < C) wino_prefetch_patches(&p, s, x, c + 1, tab + ch * WINO_LANES);
                kern.gather(&p, s, x, c, tab + ch * WINO_LANES, d);
                kern.input(d, vbuf + (size_t)(nb * WINO_NR * C + c * width + (ch % 2) * WINO_LANES), vpos);
            }
            /* 2. alpha^2 GEMMs: M[pos] (Kp x Tg) = U[pos] (Kp x C) * V[pos] (C x Tg). Order
             *    (pos, tile block, K block): a V panel stays in L1/L2 across the K blocks. */
            CNN_PRAGMA(omp for schedule(static))
            for (int64_t it = 0; it < gemm_items; it++) {
                const int64_t pos = it / (nblocks * kblocks);
                const int64_t r = it - pos * nblocks * kblocks;
                const int64_t nb = r / kblocks, kb = r - nb * kblocks;
                const int nr = (int)CNN_MIN((int64_t)WINO_NR, Tg - nb * WINO_NR);
                const int64_t valid = CNN_MIN((int64_t)nr, p.tiles - g0 - nb * WINO_NR);
                if (valid <= 0) continue; /* only padding tiles past the batch */
                kern.gemm((size_t)C, nr, (int)valid,
                          u->u + (size_t)pos * (size_t)Kp * (size_t)C + (size_t)kb * (size_t)C * WINO_MR,
                          vbuf + (size_t)pos * vpos + (size_t)(nb * WINO_NR * C),
                          mbuf + (size_t)pos * mpos + (size_t)kb * WINO_MR * (size_t)Tg + (size_t)nb * WINO_NR,
                          (size_t)Tg);
            }
            /* 3. Output transform fused with the epilogue, clipped edge tiles. */
            CNN_PRAGMA(omp for schedule(static))
            for (int64_t it = 0; it < K * chunks; it++) {
                const int64_t k = it / chunks, ch = it - k * chunks;
                if (!tab[ch * WINO_LANES].valid) continue;
                kern.output(mbuf + (size_t)k * (size_t)Tg + (size_t)ch * WINO_LANES, mpos, d);
                if (pool) {
                    kern.pool(d, bias ? bias[k] : 0.0f, relu, pb);
                    wino_scatter_pooled(&p, pb, k, tab + ch * WINO_LANES, y);
                } else {
                    kern.scatter(&p, d, k, tab + ch * WINO_LANES, bias, residual, relu, y);
                }
            }
        }
    }
    return CNN_OK;
}

cnn_status cnn_winograd_forward(const cnn_winograd_weights *u, const cnn_conv_shape *s,
                                const float *x, const float *bias, const float *residual, int relu,
                                float *y) {
    return wino_forward(u, s, x, bias, residual, relu, 0, y);
}

cnn_status cnn_winograd_forward_maxpool2x2(const cnn_winograd_weights *u, const cnn_conv_shape *s,
                                           const float *x, const float *bias, int relu, float *y) {
    return wino_forward(u, s, x, bias, NULL, relu, 1, y);
}

/* ---- Weight gradient -------------------------------------------------------------------------
 * dW[k][c] (3x3) = sum over images and output tiles of the correlation of the tile's input patch
 * (alpha x alpha) with its output gradient (m x m). That is the Winograd problem F(3x3, m x m), and
 * by transposition (Lavin and Gray, 2016) it runs on the forward's matrices:
 *     dW[k][c] = G^T ( sum_t (A dy_t[k] A^T) .* (B^T d_t[c] B) ) G.
 * The sum over tiles at each of the alpha^2 positions is a GEMM, M[pos] (K x C) += U[pos]^T
 * V[pos] with U[pos] (Tg x K) and V[pos] (Tg x C) transformed on channel lanes (see "The weight
 * gradient's operands on channel lanes"), on the package GEMM, group of tiles by group; G^T M G at
 * the end. V is the forward's input transform of the same tiles. */

cnn_status cnn_winograd_backward_weight(int m, const cnn_conv_shape *s, const float *x, const float *dy,
                                        float *dw) {
    cnn_status st = wino_check(m, s);
    if (st != CNN_OK) return st;
    if (!x || !dy || !dw) return CNN_ERR_INVALID_ARGUMENT;
    /* The forward's tiling (a weights object carrying only the sizes, K in place of Kp), with
     * larger groups when the channels are many: every group adds its products into M (alpha^2 K C
     * floats, read and written once per group), while its transformed tiles V and U take
     * alpha^2 (C + K) floats per tile. At least 2 K C / (C + K) tiles per group keep M's traffic
     * below theirs (ResNet l3, C = K = 256: 256 tiles instead of the forward's 112), within the
     * workspace cap. */
    const int r = (int)s->R, alpha = m + r - 1, taps = r * r;
    const cnn_winograd_weights sizes = {.m = m, .r = r, .alpha = alpha, .K = s->K, .C = s->C, .Kp = s->K};
    const size_t tile_bytes = (size_t)alpha * (size_t)alpha * (size_t)(s->C + s->K) * sizeof(float);
    const size_t wanted = (size_t)(2 * s->K * s->C / (s->C + s->K) + 1) * tile_bytes;
    wino_plan p;
    wino_make_plan_within(&sizes, s, CNN_MAX(wanted, (size_t)WINO_GROUP_BUDGET), &p);
    const int a2 = p.a2;
    const int64_t C = s->C, K = s->K, Tg = p.group, chunks = Tg / WINO_LANES;
    /* Channel lanes: C and K rounded up to 16 (the extra lanes are zeros, never summed). */
    const int64_t Cp = (C + WINO_LANES - 1) / WINO_LANES * WINO_LANES, Kq = (K + WINO_LANES - 1) / WINO_LANES * WINO_LANES;
    const int64_t HW = s->H * s->W, PQ = p.P * p.Q, tpi = p.tiles_per_image;
    const size_t vpos = (size_t)Cp * (size_t)Tg + WINO_POS_PAD, upos = (size_t)Kq * (size_t)Tg + WINO_POS_PAD;
    const size_t mpos = (size_t)K * (size_t)C + WINO_POS_PAD;
    /* The images a group's tiles touch: at most ceil(Tg / tiles per image) + 1. */
    const int64_t imgs = CNN_MIN(s->N, (Tg + tpi - 1) / tpi + 1);
    /* Slots 4 and 5 as in the forward; the tile table and M in the convolution's slots 3 and 2
     * (cnn_sgemm packs in 6 and 7); the channels-last images in 0 and 1. */
    float *vbuf = (float *)cnn_workspace(4, (size_t)a2 * vpos * sizeof(float));
    float *ubuf = (float *)cnn_workspace(5, (size_t)a2 * upos * sizeof(float));
    float *mbuf = (float *)cnn_workspace(2, (size_t)a2 * mpos * sizeof(float));
    wino_tile *tab = (wino_tile *)cnn_workspace(3, (size_t)Tg * sizeof(wino_tile));
    float *xcl = (float *)cnn_workspace(0, (size_t)(imgs * HW * Cp) * sizeof(float));
    float *dycl = (float *)cnn_workspace(1, (size_t)(imgs * PQ * Kq) * sizeof(float));
    if (!vbuf || !ubuf || !mbuf || !tab || !xcl || !dycl) return CNN_ERR_OUT_OF_MEMORY;
    const wino_kernels kern = wino_select(m, r);
    const wino_channels_last_fn channels_last = wino_channels_last_select();
    /* One parallel region for the whole call. Per group: the tile table, the group's images of x
     * and dy channels-last, the transforms of both (one item: one tile, 16 channels), then the
     * alpha^2 GEMMs a whole position per thread (each a single-thread cnn_sgemm with the thread's
     * own packing buffers): one barrier per phase, where a threaded cnn_sgemm per position forked
     * and joined alpha^2 times per group and split 256 x 256 products into slivers. */
    const int64_t xitems = Tg * (Cp / WINO_LANES), transforms = xitems + Tg * (Kq / WINO_LANES);
    const int64_t xblocks = (HW + 7) / 8, dyblocks = (PQ + 7) / 8;
    const int nt = cnn_threads_for(CNN_MAX(transforms, (int64_t)a2));
    CNN_UNUSED(nt);
    int failed = 0;
#if CNN_OMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        float d[8 * 8 * WINO_LANES] __attribute__((aligned(64)));
        for (int64_t g0 = 0; g0 < p.tiles; g0 += Tg) {
            const int64_t n0 = g0 / tpi, n1 = (CNN_MIN(g0 + Tg, p.tiles) - 1) / tpi + 1, cnt = n1 - n0;
            CNN_PRAGMA(omp for schedule(static))
            for (int64_t ch = 0; ch < chunks; ch++)
                wino_tile_table(&p, s, g0 + ch * WINO_LANES, WINO_LANES, tab + ch * WINO_LANES);
            CNN_PRAGMA(omp for schedule(static))
            for (int64_t it = 0; it < cnt * (xblocks + dyblocks); it++) {
                if (it < cnt * xblocks)
                    channels_last(x, C, HW, Cp, n0, it, xcl);
                else
                    channels_last(dy, K, PQ, Kq, n0, it - cnt * xblocks, dycl);
            }
            CNN_PRAGMA(omp for schedule(static))
            for (int64_t it = 0; it < transforms; it++) {
                if (it < xitems) {
                    const int64_t t = it / (Cp / WINO_LANES), c0 = (it - t * (Cp / WINO_LANES)) * WINO_LANES;
                    kern.gather_channels(&p, s, xcl, Cp, n0, c0, tab + t, d);
                    kern.input(d, vbuf + (size_t)(t * Cp + c0), vpos);
                } else {
                    const int64_t j = it - xitems, t = j / (Kq / WINO_LANES), k0 = (j - t * (Kq / WINO_LANES)) * WINO_LANES;
                    kern.gather_gradient_channels(&p, s, dycl, Kq, n0, k0, tab + t, d);
                    kern.gradient(d, ubuf + (size_t)(t * Kq + k0), upos);
                }
            }
            /* M[pos] (K x C) += U[pos]^T (U: tiles x K) * V[pos] (tiles x C). */
            CNN_PRAGMA(omp for schedule(static))
            for (int pos = 0; pos < a2; pos++) {
                const cnn_status e = cnn_sgemm(CNN_TRANS, CNN_NO_TRANS, (size_t)K, (size_t)C, (size_t)Tg, 1.0f,
                                               ubuf + (size_t)pos * upos, (size_t)Kq, vbuf + (size_t)pos * vpos,
                                               (size_t)Cp, g0 == 0 ? 0.0f : 1.0f, mbuf + (size_t)pos * mpos,
                                               (size_t)C, NULL);
                if (e != CNN_OK) {
                    CNN_PRAGMA(omp atomic write)
                    failed = (int)e;
                }
            }
        }
        /* dW[k][c] += G^T M[.][k][c] G, 16 channels at a time. */
        if (!failed) {
            CNN_PRAGMA(omp for schedule(static))
            for (int64_t k = 0; k < K; k++)
                for (int64_t c = 0; c < C; c += WINO_WGRAD_LANES)
                    kern.weight_grad(mbuf + (size_t)(k * C + c), mpos,
                                     (int)CNN_MIN((int64_t)WINO_WGRAD_LANES, C - c), dw + (k * C + c) * taps);
        }
    }
    return failed ? (cnn_status)failed : CNN_OK;
}

/* One-shot test entry (declared in cnn_conv.h): create, forward, destroy. */
cnn_status cnn_winograd_conv2d(int m, const cnn_conv_shape *s, const float *x, const float *w,
                               const float *bias, const float *residual, int relu, float *y) {
    cnn_status st = CNN_OK;
    cnn_winograd_weights *u = cnn_winograd_weights_create(m, s, w, &st);
    if (!u) return st;
    st = cnn_winograd_forward(u, s, x, bias, residual, relu, y);
    cnn_winograd_weights_destroy(u);
    return st;
}

/* The data gradient as a forward convolution (see winograd.h): U of the rotated, channel-swapped
 * kernel is read straight from the forward's weights into workspace slot 1 (the forward takes 4
 * to 6): no flipped copy, and no fresh allocation (page faults) per call. */
cnn_status cnn_winograd_backward_data(int m, const cnn_conv_shape *fs, const float *dy, const float *w,
                                      float *dx) {
    cnn_status st = wino_check(m, fs);
    if (st != CNN_OK) return st;
    if (!dy || !w || !dx) return CNN_ERR_INVALID_ARGUMENT;
    cnn_winograd_weights u;
    wino_set_sizes(&u, m, fs);
    u.u = (float *)cnn_workspace(1, u.bytes);
    if (!u.u) return CNN_ERR_OUT_OF_MEMORY;
    wino_fill_weights(&u, w, 1);
    return cnn_winograd_forward(&u, fs, dy, NULL, NULL, 0, dx);
}

cnn_status cnn_winograd_tables(int m, int r, double *at, double *g, double *bt) {
    if (!wino_tile_supported(m, r)) return CNN_ERR_UNSUPPORTED;
    if (!at || !g || !bt) return CNN_ERR_INVALID_ARGUMENT;
    const int alpha = m + r - 1;
    const float *A = r == 5 ? (m == 2 ? &wino_at25[0][0] : &wino_at45[0][0])
                            : m == 2 ? &wino_at2[0][0] : m == 4 ? &wino_at4[0][0] : &wino_at6[0][0];
    const float *B = alpha == 4 ? &wino_bt2[0][0] : alpha == 6 ? &wino_bt4[0][0] : &wino_bt6[0][0];
    const double *G = r == 5 ? (m == 2 ? &wino_g25[0][0] : &wino_g45[0][0])
                             : m == 2 ? &wino_g2[0][0] : m == 4 ? &wino_g4[0][0] : &wino_g6[0][0];
    for (int i = 0; i < m * alpha; i++) at[i] = A[i];
    for (int i = 0; i < alpha * r; i++) g[i] = G[i];
    for (int i = 0; i < alpha * alpha; i++) bt[i] = B[i];
    return CNN_OK;
}

cnn_status cnn_winograd_matrices(int m, double *at, double *g, double *bt) { return cnn_winograd_tables(m, 3, at, g, bt); }

size_t cnn_winograd_conv2d_workspace_bytes(int m, const cnn_conv_shape *s) {
    if (wino_check(m, s) != CNN_OK) return 0;
    /* The plan needs only the sizes of the weights: no transform is computed. */
    cnn_winograd_weights u = {0};
    wino_set_sizes(&u, m, s);
    return cnn_winograd_workspace_bytes(&u, s);
}
