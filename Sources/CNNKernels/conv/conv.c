/* The convolution operator: shape validation, the algorithm table and AUTO heuristic, plans, and
 * dispatch to the algorithms (direct.c, im2col.c, winograd.c) and the backward passes (backward.c). */
#include "conv_internal.h"
#include "winograd.h"

#include <stdlib.h>
#include <string.h>

/* Largest single extent accepted: keeps every product of two extents (and the index arithmetic in
 * the kernels) far from int64 overflow. */
#define CONV_MAX_EXTENT ((int64_t)1 << 31)

static int mul_ok(int64_t a, int64_t b, int64_t *out) { return !__builtin_mul_overflow(a, b, out); }

/* a*b*c*d fits in int64 and, as floats, in size_t. */
static int volume_ok(int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t v;
    if (!mul_ok(a, b, &v) || !mul_ok(v, c, &v) || !mul_ok(v, d, &v)) return 0;
    return (uint64_t)v <= (uint64_t)(SIZE_MAX / sizeof(float) / 2);
}

static int64_t out_extent(int64_t in, int64_t pad, int64_t dil, int64_t k, int64_t stride) {
    /* PyTorch: floor((in + 2*pad - dil*(k-1) - 1) / stride) + 1; nonpositive numerator+stride: empty */
    const int64_t span = in + 2 * pad - dil * (k - 1) - 1;
    if (span < 0) return 0;
    return span / stride + 1;
}

cnn_status cnn_conv_geom_init(const cnn_conv_shape *s, conv_geom *g) {
    if (!s || !g) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t pos[] = {s->C, s->H, s->W, s->K, s->R, s->S, s->stride_h, s->stride_w,
                           s->dilation_h, s->dilation_w, s->groups};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i] < 1 || pos[i] > CONV_MAX_EXTENT) return CNN_ERR_INVALID_ARGUMENT;
    if (s->N < 0 || s->N > CONV_MAX_EXTENT) return CNN_ERR_INVALID_ARGUMENT;
    if (s->pad_h < 0 || s->pad_w < 0 || s->pad_h > CONV_MAX_EXTENT || s->pad_w > CONV_MAX_EXTENT)
        return CNN_ERR_INVALID_ARGUMENT;
    if (s->C % s->groups != 0 || s->K % s->groups != 0) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t P = out_extent(s->H, s->pad_h, s->dilation_h, s->R, s->stride_h);
    const int64_t Q = out_extent(s->W, s->pad_w, s->dilation_w, s->S, s->stride_w);
    if (P < 1 || Q < 1) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t Cg = s->C / s->groups, Kg = s->K / s->groups;
    /* Every tensor and every column buffer row count must be addressable. */
    if (!volume_ok(s->N > 0 ? s->N : 1, s->C, s->H, s->W) ||
        !volume_ok(s->N > 0 ? s->N : 1, s->K, P, Q) || !volume_ok(s->K, Cg, s->R, s->S) ||
        !volume_ok(Cg, s->R, s->S, Q))
        return CNN_ERR_INVALID_ARGUMENT;
    *g = (conv_geom){
        .N = s->N, .C = s->C, .H = s->H, .W = s->W, .K = s->K, .R = s->R, .S = s->S,
        .sh = s->stride_h, .sw = s->stride_w, .ph = s->pad_h, .pw = s->pad_w,
        .dh = s->dilation_h, .dw = s->dilation_w, .G = s->groups, .Cg = Cg, .Kg = Kg,
        .P = P, .Q = Q,
    };
    return CNN_OK;
}

cnn_status cnn_conv_output_size(const cnn_conv_shape *s, int64_t *P, int64_t *Q) {
    conv_geom g;
    cnn_status st = cnn_conv_geom_init(s, &g);
    if (st != CNN_OK) return st;
    if (P) *P = g.P;
    if (Q) *Q = g.Q;
    return CNN_OK;
}

static int is_winograd(cnn_conv_algorithm a) {
    return a == CNN_CONV_WINOGRAD_2X2 || a == CNN_CONV_WINOGRAD_4X4 || a == CNN_CONV_WINOGRAD_6X6;
}

static int winograd_m(cnn_conv_algorithm a) {
    return a == CNN_CONV_WINOGRAD_2X2 ? 2 : a == CNN_CONV_WINOGRAD_4X4 ? 4 : 6;
}

static int applies(cnn_conv_algorithm a, const conv_geom *g) {
    switch (a) {
    case CNN_CONV_AUTO:
    case CNN_CONV_DIRECT:
    case CNN_CONV_IM2COL:
        return 1;
    case CNN_CONV_GEMM1X1:
        /* Any stride; dilation is irrelevant for a 1x1 kernel. */
        return g->R == 1 && g->S == 1 && g->ph == 0 && g->pw == 0;
    case CNN_CONV_WINOGRAD_2X2:
    case CNN_CONV_WINOGRAD_4X4:
        /* F(m x m, 3x3), or F(m x m, 5x5) on a 5x5 kernel. */
        return (g->R == 3 || g->R == 5) && g->S == g->R && g->sh == 1 && g->sw == 1 && g->dh == 1 &&
               g->dw == 1 && g->G == 1;
    case CNN_CONV_WINOGRAD_6X6:
        return g->R == 3 && g->S == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 &&
               g->G == 1;
    }
    return 0;
}

int cnn_conv_algorithm_applies(cnn_conv_algorithm algorithm, const cnn_conv_shape *s) {
    conv_geom g;
    if (cnn_conv_geom_init(s, &g) != CNN_OK) return 0;
    return applies(algorithm, &g);
}

/* The dense form of g (see conv_is_dense), trimmed to the taps that read the image when the others
 * read only padding; 0 when g has none. */
static int dense_form(const conv_geom *g, conv_geom *d, int64_t *r0, int64_t *s0) {
    *r0 = *s0 = 0;
    if (conv_is_dense(g)) {
        *d = *g;
        return 1;
    }
    return cnn_conv_trim_taps(g, d, r0, s0) && conv_is_dense(d);
}

/*
 * AUTO, for 2 cores of an AMD EPYC (Zen 5, AVX-512), 2 threads:
 *  - one input channel per group, several groups (depthwise): the direct loop; a GEMM with one
 *    row per group cannot use its register tile.
 *  - 1x1, pad 0: GEMM1X1 (the input image is already the column matrix at stride 1).
 *  - dense layers (see conv_is_dense; trimmed or not): IM2COL, which runs them as one GEMM.
 *  - 3x3 stride 1 with C, K >= 16: Winograd, the tile m in {2, 4, 6} with the lowest estimated time
 *    (cnn_winograd_estimate_ns: GEMM lanes including padding, transformed entries, the stream of
 *    the transformed weights per tile group), among the tiles that are usable on the plane (below).
 *    F(6x6) is as accurate as F(4x4) within a factor of two with this package's points (measured
 *    1.7e-5 against 9.6e-6 relative, C up to 256) and cuts the GEMM lanes on large planes
 *    (VGG-16's 224^2, 112^2 and 28^2 layers); F(4x4) wins where its tiles fit the plane exactly
 *    (56^2, 14^2), F(2x2) where there are few tiles (ResNet's 7x7 layer4).
 *  - strided kernels of 25 taps or more, groups 1, at least 16 output channels, output rows that
 *    fill direct's 28-wide strided tiles to at least 80 % (the 7x7/2 stem's 112 columns, AlexNet's
 *    55): direct, on its padded copy. `cnn bench conv`, batch 1: the stem 1.18-1.19 ms against
 *    im2col's 1.30, AlexNet's conv1 1.04-1.06 against 1.18 (AVX2: 2.13 / 1.67 against 2.42 /
 *    2.17; portable: 5.2 / 5.4 against 7.4 / 6.6).
 *  - 5x5 stride 1, dilation 1, groups 1, at least 32 input and 16 output channels: F(2x2, 5x5) or
 *    F(4x4, 5x5) (WINOGRAD_2X2 / WINOGRAD_4X4 on a 5x5 kernel; 36 and 64 multiplications per 4 and
 *    16 outputs against direct's 100 and 400), whichever has the lower estimate among the usable
 *    ones (as for 3x3, below), else the rules that follow. F(4x4, 5x5) / F(2x2, 5x5), same harness:
 *    AlexNet's conv2 0.55-0.57 (0.55-0.57 reversed), with caches flushed 0.55 (0.66); 32 -> 96 at
 *    28x28 0.57 (0.59), 48 -> 128 at 14x14 0.58 (0.66), 128 -> 256 at 14x14 0.60 (0.59); AVX2 0.57-0.59,
 *    portable 0.57-0.62. F(2x2, 5x5) against direct, Zen 4 class, C harness, 2 threads, both
 *    algorithms called in turn 30 times, median per-call ratio F(2x2, 5x5) / direct, then with the
 *    order reversed: AlexNet's conv2 (64 -> 192 at 27x27) 0.61 (0.59), 32 -> 96 at 28x28 0.92
 *    (0.93), 48 -> 128 at 14x14 0.83 (0.86), 128 -> 256 at 14x14 0.56 (0.58); the AVX2 variant on
 *    the same host 0.62 (0.65), 0.73 (0.70), 0.79 (0.83), 0.59 (0.58); portable 0.53 (0.54) and
 *    0.45 (0.50) on the first two. With 16 input channels (16 -> 32 at 28x28) it was 0.69-1.11:
 *    direct keeps those.
 *  - stride 1, kernels of 25 taps or more, groups 1, at least 16 output channels: direct. With
 *    16-32 output channels the im2col GEMM fills two or three 6-row register panels and packs a
 *    column matrix that each column uses that few times; direct holds 16 channels per vector and
 *    reads the image in place.
 *    AVX-512 took im2col until the twenty-second session, after LeNet-5's conv2 at batch 64 read
 *    0.57 ms by im2col against direct's 0.80 on one thread (0.45 against 0.41 on two) on
 *    2026-11-29, before direct's flat tiles. AVX-512, Zen 4 class, C harness, both algorithms
 *    called in turn 25-40 times (64 MiB written between calls), median per-call ratio direct /
 *    im2col on 2 (1) threads, batch 1: AlexNet's conv2 (64 -> 192 at 27x27) 0.91 (0.88), 5x5 pad 2
 *    16 -> 32 at 28x28 0.74 (0.74), 32 -> 96 0.91 (0.91), 48 -> 128 at 14x14 0.79 (0.89), 128 ->
 *    256 0.88 (0.92), 7x7 pad 3 32 -> 64 at 28x28 0.79 (0.86); LeNet-5's conv2 at batch 64
 *    0.75-0.87 (0.89-0.95), warm or cold, both orders. In AlexNet (`cnn bench models --profile`,
 *    2 threads, the two builds in turn) conv2 went from 2.77-3.23 ms to 2.32-2.52.
 *    Zen 3 class, AVX2, the C harness (batch 1, 2 threads, both algorithms called in turn 15-30
 *    times, median per-call ratio direct / im2col): LeNet-5's conv2 0.35, 5x5 pad 2 16 -> 32 at
 *    28x28 0.33, 32 -> 96 at 28x28 0.55, 16 -> 48 at 14x14 0.53, 24 -> 64 0.72, 48 -> 128 at 7x7
 *    0.78, 3 -> 32 at 32x32 0.85, AlexNet's conv2 (64 -> 192 at 27x27) 0.92, 256 -> 256 at 14x14
 *    1.00, 7x7 pad 3 32 -> 64 at 28x28 0.51, 3 -> 64 at 224x224 1.03; portable build 0.51, 0.69,
 *    0.99, 0.88. `cnn bench conv`, LeNet-5's conv2 at batch 64: 1.05 ms against 1.60 on one
 *    thread, 0.49 against 1.04 on two.
 *  - everything else (first layers with C = 3, grouped, small strided planes): im2col + GEMM.
 */
/* The Winograd tile (the first `count` of 2, 4, 6) with the lowest estimated time, or IM2COL when
 * none is usable. A tile m is usable with at least 16 tiles (one vector of lanes) and when at least
 * half of the tile area is real outputs: a tile computes m x m outputs whether or not they exist
 * (ResNet-18's layer4 at CIFAR size, 1x1 outputs, batch 64: 64 F(4x4) tiles, 7.0 ms, against
 * im2col's 1.96 ms, 2 threads). */
static cnn_conv_algorithm best_winograd_tile(const conv_geom *g, const cnn_conv_shape *s, int count) {
    static const cnn_conv_algorithm tiles[3] = {CNN_CONV_WINOGRAD_2X2, CNN_CONV_WINOGRAD_4X4, CNN_CONV_WINOGRAD_6X6};
    const int64_t pq = g->N * g->P * g->Q;
    cnn_conv_algorithm best = CNN_CONV_IM2COL;
    double best_ns = __builtin_inf();
    for (int i = 0; i < count; i++) {
        const int64_t m = 2 * (i + 1);
        const int64_t n = g->N * ((g->P + m - 1) / m) * ((g->Q + m - 1) / m);
        if (n < 16 || 2 * pq < n * m * m) continue;
        const double ns = cnn_winograd_estimate_ns((int)m, s);
        if (ns < best_ns) {
            best_ns = ns;
            best = tiles[i];
        }
    }
    return best;
}

static cnn_conv_algorithm auto_algorithm(const conv_geom *g, const cnn_conv_shape *s) {
    /* Depthwise: the direct loop. A single-channel image (LeNet's conv1) is not depthwise: there
     * im2col + GEMM measured 0.55 ms against direct's 1.35 ms (lenet5.conv1.batch64, 1 thread). */
    if (g->Cg == 1 && g->G > 1) return CNN_CONV_DIRECT;
    if (applies(CNN_CONV_GEMM1X1, g)) return CNN_CONV_GEMM1X1;
    /* A dense layer is one GEMM under im2col (a 6x6 kernel over a 6x6 map, 256 -> 4096, batch
     * 64: 38 ms against direct's 301, which the large-kernel rule below would pick). */
    conv_geom d;
    int64_t r0, s0;
    if (dense_form(g, &d, &r0, &s0)) return CNN_CONV_IM2COL;
    if (applies(CNN_CONV_WINOGRAD_2X2, g) && g->R == 5 && g->C >= 32 && g->K >= 16) {
        /* F(2x2, 5x5) or F(4x4, 5x5), by the estimate, under the usable-tile rule of the 3x3 tiles. */
        const cnn_conv_algorithm best = best_winograd_tile(g, s, 2);
        if (best != CNN_CONV_IM2COL) return best;
    }
    if (g->G == 1 && g->Kg >= 16 && g->R * g->S >= 25) { /* large kernels, a full channel vector */
        const int strided = g->sh > 1 || g->sw > 1;
        if (strided && 5 * g->Q >= 4 * ((g->Q + 27) / 28 * 28)) return CNN_CONV_DIRECT;
        if (!strided && g->dh == 1 && g->dw == 1) return CNN_CONV_DIRECT;
    }
    if (applies(CNN_CONV_WINOGRAD_6X6, g) && g->C >= 16 && g->K >= 16) return best_winograd_tile(g, s, 3);
    return CNN_CONV_IM2COL;
}

cnn_conv_algorithm cnn_conv_auto_algorithm(const cnn_conv_shape *s) {
    conv_geom g;
    if (cnn_conv_geom_init(s, &g) != CNN_OK) return CNN_CONV_DIRECT; /* valid for every shape */
    return auto_algorithm(&g, s);
}

const char *cnn_conv_algorithm_name(cnn_conv_algorithm a) {
    switch (a) {
    case CNN_CONV_AUTO: return "auto";
    case CNN_CONV_DIRECT: return "direct";
    case CNN_CONV_IM2COL: return "im2col";
    case CNN_CONV_GEMM1X1: return "gemm1x1";
    case CNN_CONV_WINOGRAD_2X2: return "winograd2x2";
    case CNN_CONV_WINOGRAD_4X4: return "winograd4x4";
    case CNN_CONV_WINOGRAD_6X6: return "winograd6x6";
    }
    return "unknown";
}

struct cnn_conv_plan {
    cnn_conv_algorithm algorithm; /* resolved, never AUTO */
    cnn_conv_shape shape;
    conv_geom g;
    float *weight;                /* copy of (K, Cg, R, S) for the GEMM and direct algorithms */
    float *packed;                /* direct: weights packed for the channel-vectorised kernel */
    void *packed_a;               /* im2col, gemm1x1: W_g packed as GEMM panels, per group */
    cnn_winograd_weights *wino;   /* Winograd's transformed weights */
    int dense;                    /* im2col, gemm1x1 of a dense layer: weight holds (K, CRS) of dense_g */
    conv_geom dense_g;
    size_t weight_bytes, workspace_bytes;
};

/* A plan runs a dense layer as one GEMM when its batch is 1 (the GEMM streams the weights once as
 * a matrix-vector product) or its weights are at most 4 MiB. Past that the GEMM would pack the
 * weights on every call, and the plan's pre-packed im2col panels win: at batch 64, dense against
 * im2col 0.59x for 2.4 MB of weights (64 -> 256, 6x6 over 6x6), 0.68x for 1 MB (512 -> 512 3x3
 * at 1x1), 1.00x for 9.4 MB, 1.05x for 19 MB and 1.15x for 151 MB (256 -> 4096, 6x6); at batch 1,
 * 0.42-0.71x for all of them (session 16, AVX2, 2 threads). One-shot calls pack the weights either
 * way and always take the GEMM (0.55-0.97x). */
#define DENSE_PLAN_MAX_BYTES ((size_t)4 << 20)

/* y (N x K) = relu?(x (N x CHW) * W^T + bias + residual), W (K x CRS), CRS = CHW: the forward
 * pass of a dense layer as one GEMM, the bias along the columns (256 -> 64 1x1 at 1x1, batch 64:
 * one GEMM instead of 64 matrix-vector products). */
static cnn_status dense_forward(const conv_geom *d, const float *x, const float *w, const float *bias,
                                const float *residual, int relu, float *y) {
    const size_t chw = (size_t)(d->C * d->H * d->W);
    cnn_epilogue ep = {.bias = bias, .bias_per_column = 1, .residual = residual, .residual_ld = (size_t)d->K,
                       .relu = relu};
    return cnn_sgemm(CNN_NO_TRANS, CNN_TRANS, (size_t)d->N, (size_t)d->K, chw, 1.0f, x, chw, w, chw, 0.0f, y,
                     (size_t)d->K, &ep);
}

static size_t workspace_bytes(cnn_conv_algorithm a, const conv_geom *g) {
    switch (a) {
    case CNN_CONV_DIRECT: return cnn_conv_direct_workspace_bytes(g);
    case CNN_CONV_IM2COL: return cnn_conv_im2col_workspace_bytes(g);
    case CNN_CONV_GEMM1X1: return cnn_conv_gemm1x1_workspace_bytes(g);
    default: return 0;
    }
}

cnn_conv_plan *cnn_conv_plan_create(cnn_conv_algorithm algorithm, const cnn_conv_shape *shape,
                                    const float *weight, cnn_status *status) {
    cnn_status dummy;
    if (!status) status = &dummy;
    conv_geom g;
    *status = cnn_conv_geom_init(shape, &g);
    if (*status != CNN_OK) return NULL;
    if ((unsigned)algorithm >= CNN_CONV_ALGORITHM_COUNT || !weight) {
        *status = CNN_ERR_INVALID_ARGUMENT;
        return NULL;
    }
    if (!applies(algorithm, &g)) {
        *status = CNN_ERR_UNSUPPORTED;
        return NULL;
    }
    const int is_auto = algorithm == CNN_CONV_AUTO;
    if (is_auto) algorithm = auto_algorithm(&g, shape);

    cnn_conv_plan *plan = (cnn_conv_plan *)calloc(1, sizeof *plan);
    if (!plan) {
        *status = CNN_ERR_OUT_OF_MEMORY;
        return NULL;
    }
    plan->shape = *shape;
    plan->g = g;
    if (is_winograd(algorithm)) {
        plan->wino = cnn_winograd_weights_create(winograd_m(algorithm), shape, weight, status);
        if (!plan->wino && is_auto && *status == CNN_ERR_UNSUPPORTED) {
            /* AUTO only: a build whose Winograd kernels decline the shape runs im2col instead.
             * An explicitly requested algorithm never falls back. */
            algorithm = CNN_CONV_IM2COL;
        } else if (!plan->wino) {
            free(plan);
            return NULL;
        } else {
            plan->weight_bytes = cnn_winograd_weights_bytes(plan->wino);
            plan->workspace_bytes = cnn_winograd_workspace_bytes(plan->wino, shape);
        }
    }
    int64_t r0, s0;
    if (!plan->wino && (algorithm == CNN_CONV_IM2COL || algorithm == CNN_CONV_GEMM1X1) &&
        dense_form(&g, &plan->dense_g, &r0, &s0) &&
        (g.N == 1 || (size_t)(g.K * g.C * plan->dense_g.R * plan->dense_g.S) * sizeof(float) <= DENSE_PLAN_MAX_BYTES)) {
        /* Only the (K, C, R', S') taps that read the image are kept. */
        const size_t bytes = (size_t)(g.K * g.C * plan->dense_g.R * plan->dense_g.S) * sizeof(float);
        if (!(plan->weight = (float *)cnn_aligned_alloc(bytes))) {
            free(plan);
            *status = CNN_ERR_OUT_OF_MEMORY;
            return NULL;
        }
        cnn_conv_trim_weights(&g, &plan->dense_g, r0, s0, weight, plan->weight);
        plan->dense = 1;
        plan->weight_bytes = bytes;
        plan->algorithm = algorithm;
        *status = CNN_OK;
        return plan;
    }
    if (!plan->wino) {
        const size_t bytes = (size_t)(g.K * g.Cg * g.R * g.S) * sizeof(float);
        plan->weight = (float *)cnn_aligned_alloc(bytes);
        if (!plan->weight) {
            free(plan);
            *status = CNN_ERR_OUT_OF_MEMORY;
            return NULL;
        }
        memcpy(plan->weight, weight, bytes);
        plan->weight_bytes = bytes;
        if (algorithm == CNN_CONV_IM2COL || algorithm == CNN_CONV_GEMM1X1) {
            /* The weights as GEMM panels once, so no call packs them again. A failure here only
             * costs speed: the raw copy is always there. */
            const size_t stride = cnn_conv_gemm_packed_stride(&g);
            if (stride > 0 && (plan->packed_a = cnn_aligned_alloc(stride * (size_t)g.G)) != NULL) {
                if (cnn_conv_gemm_pack(&g, weight, plan->packed_a) == CNN_OK) {
                    plan->weight_bytes += stride * (size_t)g.G;
                } else {
                    cnn_aligned_free(plan->packed_a);
                    plan->packed_a = NULL;
                }
            }
        }
        const size_t packed = algorithm == CNN_CONV_DIRECT ? cnn_conv_direct_packed_floats(&g) : 0;
        if (packed > 0) {
            plan->packed = (float *)cnn_aligned_alloc(packed * sizeof(float));
            if (!plan->packed) {
                cnn_aligned_free(plan->weight);
                free(plan);
                *status = CNN_ERR_OUT_OF_MEMORY;
                return NULL;
            }
            cnn_conv_direct_pack(&g, weight, plan->packed);
            plan->weight_bytes += packed * sizeof(float);
        }
        plan->workspace_bytes = workspace_bytes(algorithm, &g);
    }
    plan->algorithm = algorithm;
    *status = CNN_OK;
    return plan;
}

void cnn_conv_plan_destroy(cnn_conv_plan *plan) {
    if (!plan) return;
    if (plan->wino) cnn_winograd_weights_destroy(plan->wino);
    cnn_aligned_free(plan->weight);
    cnn_aligned_free(plan->packed);
    cnn_aligned_free(plan->packed_a);
    free(plan);
}

cnn_conv_algorithm cnn_conv_plan_algorithm(const cnn_conv_plan *plan) {
    return plan ? plan->algorithm : CNN_CONV_AUTO;
}

size_t cnn_conv_plan_weight_bytes(const cnn_conv_plan *plan) { return plan ? plan->weight_bytes : 0; }

size_t cnn_conv_plan_workspace_bytes(const cnn_conv_plan *plan) {
    return plan ? plan->workspace_bytes : 0;
}

/* Runs a non-Winograd algorithm on raw (K, Cg, R, S) weights. */
static cnn_status run_algorithm(cnn_conv_algorithm a, const conv_geom *g, const float *x,
                                const float *w, const float *packed, const void *packed_a,
                                const float *bias, const float *residual, int relu, float *y) {
    conv_geom d;
    int64_t r0, s0;
    if ((a == CNN_CONV_IM2COL || a == CNN_CONV_GEMM1X1) && dense_form(g, &d, &r0, &s0)) {
        if (d.R != g->R || d.S != g->S) { /* trimmed: the window's weights gathered first */
            float *wt = (float *)cnn_workspace(CNN_CONV_SLOT_TRIM_W, (size_t)(g->K * g->C * d.R * d.S) * sizeof(float));
            if (!wt) return CNN_ERR_OUT_OF_MEMORY;
            cnn_conv_trim_weights(g, &d, r0, s0, w, wt);
            w = wt;
        }
        return dense_forward(&d, x, w, bias, residual, relu, y);
    }
    switch (a) {
    case CNN_CONV_DIRECT: return cnn_conv_direct_forward(g, x, w, packed, bias, residual, relu, y);
    case CNN_CONV_IM2COL: return cnn_conv_im2col_forward(g, x, w, packed_a, bias, residual, relu, y);
    case CNN_CONV_GEMM1X1: return cnn_conv_gemm1x1_forward(g, x, w, packed_a, bias, residual, relu, y);
    default: return CNN_ERR_INVALID_ARGUMENT;
    }
}

cnn_status cnn_conv_plan_forward(const cnn_conv_plan *plan, const float *x, const float *bias,
                                 const float *residual, int relu, float *y) {
    if (!plan) return CNN_ERR_INVALID_ARGUMENT;
    if (plan->g.N == 0) return CNN_OK;
    if (!x || !y) return CNN_ERR_INVALID_ARGUMENT;
    if (plan->wino)
        return cnn_winograd_forward(plan->wino, &plan->shape, x, bias, residual, relu ? 1 : 0, y);
    if (plan->dense) return dense_forward(&plan->dense_g, x, plan->weight, bias, residual, relu ? 1 : 0, y);
    return run_algorithm(plan->algorithm, &plan->g, x, plan->weight, plan->packed, plan->packed_a,
                         bias, residual, relu ? 1 : 0, y);
}

int cnn_conv_plan_fuses_maxpool2x2(const cnn_conv_plan *plan) { return plan && plan->wino ? 1 : 0; }

cnn_status cnn_conv_plan_forward_maxpool2x2(const cnn_conv_plan *plan, const float *x, const float *bias,
                                            int relu, float *y) {
    if (!plan) return CNN_ERR_INVALID_ARGUMENT;
    if (!plan->wino) return CNN_ERR_UNSUPPORTED;
    if (plan->g.N == 0) return CNN_OK;
    if (!x || !y) return CNN_ERR_INVALID_ARGUMENT;
    return cnn_winograd_forward_maxpool2x2(plan->wino, &plan->shape, x, bias, relu ? 1 : 0, y);
}

cnn_status cnn_conv2d_forward(cnn_conv_algorithm algorithm, const cnn_conv_shape *shape,
                              const float *x, const float *weight, const float *bias,
                              const float *residual, int relu, float *y) {
    conv_geom g;
    cnn_status st = cnn_conv_geom_init(shape, &g);
    if (st != CNN_OK) return st;
    if ((unsigned)algorithm >= CNN_CONV_ALGORITHM_COUNT) return CNN_ERR_INVALID_ARGUMENT;
    if (!applies(algorithm, &g)) return CNN_ERR_UNSUPPORTED;
    if (g.N == 0) return CNN_OK;
    if (!x || !weight || !y) return CNN_ERR_INVALID_ARGUMENT;
    const cnn_conv_algorithm resolved = algorithm == CNN_CONV_AUTO ? auto_algorithm(&g, shape) : algorithm;
    if (!is_winograd(resolved)) /* no plan needed: run on the caller's weights without a copy */
        return run_algorithm(resolved, &g, x, weight, NULL, NULL, bias, residual, relu ? 1 : 0, y);
    cnn_conv_plan *plan = cnn_conv_plan_create(algorithm, shape, weight, &st);
    if (!plan) return st;
    st = cnn_conv_plan_forward(plan, x, bias, residual, relu, y);
    cnn_conv_plan_destroy(plan);
    return st;
}
