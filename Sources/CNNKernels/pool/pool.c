/* Pooling, NCHW: max (with argmax indices), average (count_include_pad both ways), adaptive average.
 * Semantics follow PyTorch's CPU kernels (aten/src/ATen/native/cpu/MaxPoolKernel.cpp,
 * AvgPoolKernel.cpp, AdaptiveAvgPoolKernel.cpp). Every kernel is parallel over the N*C planes:
 * planes are independent, so forward and backward need no reductions across threads.
 *
 * Max pooling with a column stride of 2 and kernel width 2 or 3 (AlexNet/VGG/ResNet/GoogLeNet's
 * pools) has AVX-512 and AVX2 variants (pool/maxpool_s2.c); the plain loops here are the generic
 * variant and the reference for every other shape.
 *
 * Average pooling (both count_include_pad settings, any shape) and global average pooling (adaptive
 * pooling to 1x1) have AVX2 and AVX-512 variants stamped from one source (avgpool_table); the
 * per-window loops are the generic variant and the reference. Adaptive pooling to other sizes
 * (windows of varying size, small outputs) runs the reference on every ISA. */
#include "../tensor/layers_internal.h"
#include "pool_internal.h"

#include <math.h>
#include <string.h>

/* floor(a / b) for b > 0 and any sign of a (PyTorch's div_rtn). */
static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && (a < 0)) q--;
    return q;
}

/* PyTorch's pooling_output_shape: with ceil_mode the last window must start inside the input or
 * the left padding, else it is dropped. */
static int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t p, int ceil_mode) {
    int64_t out = floor_div(in + 2 * p - k + (ceil_mode ? s - 1 : 0), s) + 1;
    if (ceil_mode && (out - 1) * s >= in + p) out--;
    return out;
}

cnn_status cnn_pool_output_size(const cnn_pool_shape *s, int64_t *P, int64_t *Q) {
    if (!s || !P || !Q) return CNN_ERR_INVALID_ARGUMENT;
    if (s->N < 0 || s->C < 0 || s->H < 0 || s->W < 0) return CNN_ERR_INVALID_ARGUMENT;
    if (s->kernel_h < 1 || s->kernel_w < 1 || s->stride_h < 1 || s->stride_w < 1)
        return CNN_ERR_INVALID_ARGUMENT;
    /* PyTorch: "pad should be at most half of effective kernel size". */
    if (s->pad_h < 0 || s->pad_w < 0 || s->pad_h > s->kernel_h / 2 || s->pad_w > s->kernel_w / 2)
        return CNN_ERR_INVALID_ARGUMENT;
    /* Indices are int32 flat offsets within a plane. */
    if (s->H > INT32_MAX || s->W > INT32_MAX || s->H * s->W > INT32_MAX) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t p = pool_out(s->H, s->kernel_h, s->stride_h, s->pad_h, s->ceil_mode);
    const int64_t q = pool_out(s->W, s->kernel_w, s->stride_w, s->pad_w, s->ceil_mode);
    if (p < 1 || q < 1) return CNN_ERR_INVALID_ARGUMENT; /* "Output size is too small" */
    *P = p;
    *Q = q;
    return CNN_OK;
}

/* ---------------------------------------------------------------- max pooling */

/* Reference for one plane. x is (H, W), y and ind are (P, Q) restricted to columns [q0, q1).
 * PyTorch's rule: a value replaces the running maximum if it is greater or NaN, so the first
 * maximum wins ties and NaN propagates. The window never is empty (pad <= kernel/2). */
void cnn_f32_maxpool_plane_cols__generic(const cnn_pool_shape *s, int64_t P, int64_t Q, int64_t q0,
                                         int64_t q1, const float *CNN_RESTRICT x,
                                         float *CNN_RESTRICT y, int32_t *CNN_RESTRICT ind) {
    const int64_t H = s->H, W = s->W;
    for (int64_t oh = 0; oh < P; oh++) {
        int64_t hs = oh * s->stride_h - s->pad_h;
        const int64_t he = CNN_MIN(hs + s->kernel_h, H);
        hs = CNN_MAX(hs, 0);
        for (int64_t ow = q0; ow < q1; ow++) {
            int64_t ws = ow * s->stride_w - s->pad_w;
            const int64_t we = CNN_MIN(ws + s->kernel_w, W);
            ws = CNN_MAX(ws, 0);
            float m = -INFINITY;
            int64_t mi = hs * W + ws;
            for (int64_t h = hs; h < he; h++) {
                for (int64_t w = ws; w < we; w++) {
                    /* Written as selects, not a branch: on random data the branch mispredicts. */
                    const float v = x[h * W + w];
                    const int take = (v > m) | (v != v);
                    m = take ? v : m;
                    mi = take ? h * W + w : mi;
                }
            }
            y[oh * Q + ow] = m;
            if (ind) ind[oh * Q + ow] = (int32_t)mi;
        }
    }
}

/* Columns [lo, hi) whose windows lie entirely inside the input (no padding, no clipping). */
void cnn_pool_interior_cols(const cnn_pool_shape *s, int64_t Q, int64_t *lo, int64_t *hi) {
    const int64_t sw = s->stride_w, pw = s->pad_w, kw = s->kernel_w, W = s->W;
    int64_t a = (pw + sw - 1) / sw;                       /* first ow with ow*sw - pw >= 0 */
    int64_t b = W + pw - kw < 0 ? 0 : (W + pw - kw) / sw + 1; /* ow*sw - pw + kw <= W */
    a = CNN_MIN(a, Q);
    b = CNN_MIN(b, Q);
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

typedef void (*maxpool_plane_fn)(const cnn_pool_shape *, int64_t, int64_t, const float *, float *,
                                 int32_t *);

/* The generic variant: border columns by the reference; interior columns (no clipping) one window
 * cell at a time across the whole output row, so the inner loop runs over ow and vectorises
 * (a strided load for stride 2). Cells are visited in the same row-major window order as the
 * reference, so ties and NaN resolve identically. */
static void maxpool_plane__generic(const cnn_pool_shape *s, int64_t P, int64_t Q, const float *x,
                                   float *y, int32_t *ind) {
    int64_t lo, hi;
    cnn_pool_interior_cols(s, Q, &lo, &hi);
    if (lo > 0) cnn_f32_maxpool_plane_cols__generic(s, P, Q, 0, lo, x, y, ind);
    if (hi < Q) cnn_f32_maxpool_plane_cols__generic(s, P, Q, hi, Q, x, y, ind);
    const int64_t H = s->H, W = s->W, sw = s->stride_w, pw = s->pad_w;
    for (int64_t oh = 0; oh < P; oh++) {
        int64_t hs = oh * s->stride_h - s->pad_h;
        const int64_t he = CNN_MIN(hs + s->kernel_h, H);
        hs = CNN_MAX(hs, 0);
        float *CNN_RESTRICT m = y + oh * Q;
        int32_t *CNN_RESTRICT mi = ind ? ind + oh * Q : NULL;
        for (int64_t ow = lo; ow < hi; ow++) m[ow] = -INFINITY;
        if (mi)
            for (int64_t ow = lo; ow < hi; ow++) mi[ow] = (int32_t)(hs * W + ow * sw - pw);
        for (int64_t h = hs; h < he; h++) {
            for (int64_t kw = 0; kw < s->kernel_w; kw++) {
                const float *CNN_RESTRICT r = x + h * W + kw - pw;
                const int32_t base = (int32_t)(h * W + kw - pw);
                if (mi) {
                    for (int32_t ow = (int32_t)lo; ow < (int32_t)hi; ow++) {
                        const float v = r[ow * sw];
                        const int32_t idx = base + ow * (int32_t)sw;
                        const int32_t take = (v > m[ow]) | (v != v);
                        m[ow] = take ? v : m[ow];
                        mi[ow] = take ? idx : mi[ow];
                    }
                } else {
                    for (int64_t ow = lo; ow < hi; ow++) {
                        const float v = r[ow * sw];
                        m[ow] = ((v > m[ow]) | (v != v)) ? v : m[ow];
                    }
                }
            }
        }
    }
}

// x is (N, C, H, W), y and indices are (N, C, P, Q)
cnn_status cnn_maxpool2d_forward(const cnn_pool_shape *s, const float *x, float *y, int32_t *indices) {
    int64_t P, Q;
    cnn_status st = cnn_pool_output_size(s, &P, &Q);
    if (st != CNN_OK) return st;
    const int64_t planes = s->N * s->C;
    if (planes == 0) return CNN_OK;
    if (!x || !y) return CNN_ERR_INVALID_ARGUMENT;

    maxpool_plane_fn fn = maxpool_plane__generic;
#if CNN_X86
    const cnn_isa isa = cnn_isa_active();
    if (s->stride_w == 2 && (s->kernel_w == 2 || s->kernel_w == 3)) {
        if (isa == CNN_ISA_AVX512) fn = cnn_f32_maxpool_plane_s2__avx512;
        else if (isa == CNN_ISA_AVX2) fn = cnn_f32_maxpool_plane_s2__avx2;
    } else if (s->stride_w == 1) {
        if (isa == CNN_ISA_AVX512) fn = cnn_f32_maxpool_plane_s1__avx512;
        else if (isa == CNN_ISA_AVX2) fn = cnn_f32_maxpool_plane_s1__avx2;
    }
#endif
    const int64_t HW = s->H * s->W, PQ = P * Q;
    const int nt = cnn_threads_for(planes);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < planes; i++)
        fn(s, P, Q, x + i * HW, y + i * PQ, indices ? indices + i * PQ : NULL);
    return CNN_OK;
}

// dy and indices are (N, C, P, Q), dx is (N, C, H, W)
cnn_status cnn_maxpool2d_backward(const cnn_pool_shape *s, const float *dy, const int32_t *indices,
                                  float *dx) {
    int64_t P, Q;
    cnn_status st = cnn_pool_output_size(s, &P, &Q);
    if (st != CNN_OK) return st;
    const int64_t planes = s->N * s->C;
    if (planes == 0) return CNN_OK;
    if (!dy || !indices || !dx) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t HW = s->H * s->W, PQ = P * Q;
    int bad = 0;
    const int nt = cnn_threads_for(planes);
    CNN_LAYERS_OMP_FOR_REDUCE(nt, max : bad)
    for (int64_t i = 0; i < planes; i++) {
        float *d = dx + i * HW;
        const float *g = dy + i * PQ;
        const int32_t *ix = indices + i * PQ;
        memset(d, 0, (size_t)HW * sizeof(float));
        for (int64_t j = 0; j < PQ; j++) {
            const int32_t k = ix[j];
            if (k < 0 || k >= HW) { bad = 1; continue; } /* never write out of bounds */
            d[k] += g[j];
        }
    }
    return bad ? CNN_ERR_INVALID_ARGUMENT : CNN_OK;
}

/* ---------------------------------------------------------------- average pooling */

/* PyTorch's window and divisor: the window is first clipped to the padded input (so with ceil_mode
 * the divisor stops at the right/bottom padding), that size is the divisor with count_include_pad;
 * then clipped to the input, which is the divisor without. */
typedef struct avg_window {
    int64_t hs, he, ws, we;
    float inv_div;
} avg_window;

static avg_window avg_window_at(const cnn_pool_shape *s, int64_t oh, int64_t ow) {
    avg_window a;
    int64_t hs = oh * s->stride_h - s->pad_h, ws = ow * s->stride_w - s->pad_w;
    int64_t he = CNN_MIN(hs + s->kernel_h, s->H + s->pad_h);
    int64_t we = CNN_MIN(ws + s->kernel_w, s->W + s->pad_w);
    const int64_t pool_size = (he - hs) * (we - ws);
    hs = CNN_MAX(hs, 0);
    ws = CNN_MAX(ws, 0);
    he = CNN_MIN(he, s->H);
    we = CNN_MIN(we, s->W);
    a.hs = hs; a.he = he; a.ws = ws; a.we = we;
    const int64_t div = s->count_include_pad ? pool_size : (he - hs) * (we - ws);
    a.inv_div = (hs >= he || ws >= we || div <= 0) ? 0.0f : 1.0f / (float)div;
    return a;
}

/* Reference for one plane, output columns [q0, q1): each window summed row by row, times
 * 1/divisor. x is (H, W), y is (P, Q). */
CNN_LAYERS_INLINE void avgpool_plane_cols(const cnn_pool_shape *s, int64_t P, int64_t Q, int64_t q0,
                                          int64_t q1, const float *CNN_RESTRICT xp,
                                          float *CNN_RESTRICT yp) {
    const int64_t W = s->W;
    for (int64_t oh = 0; oh < P; oh++) {
        for (int64_t ow = q0; ow < q1; ow++) {
            const avg_window a = avg_window_at(s, oh, ow);
            float sum = 0.0f;
            for (int64_t h = a.hs; h < a.he; h++)
                for (int64_t w = a.ws; w < a.we; w++) sum += xp[h * W + w];
            yp[oh * Q + ow] = sum * a.inv_div;
        }
    }
}

/* Reference backward for one plane, output columns [q0, q1): adds dy / divisor into every cell of
 * each window (dx zeroed by the caller). dy is (P, Q), dx is (H, W). */
CNN_LAYERS_INLINE void avgpool_backward_plane_cols(const cnn_pool_shape *s, int64_t P, int64_t Q,
                                                   int64_t q0, int64_t q1, const float *CNN_RESTRICT g,
                                                   float *CNN_RESTRICT d) {
    const int64_t W = s->W;
    for (int64_t oh = 0; oh < P; oh++) {
        for (int64_t ow = q0; ow < q1; ow++) {
            const avg_window a = avg_window_at(s, oh, ow);
            const float v = g[oh * Q + ow] * a.inv_div;
            for (int64_t h = a.hs; h < a.he; h++)
                for (int64_t w = a.ws; w < a.we; w++) d[h * W + w] += v;
        }
    }
}

/* Rows [hs, he) of output row oh's windows inside the input, and the divisor's reciprocal of an
 * interior column (whose window spans kernel_w input columns, padded or not). */
CNN_LAYERS_INLINE float avg_interior_rows(const cnn_pool_shape *s, int64_t oh, int64_t *hs_out,
                                          int64_t *he_out) {
    const int64_t hs0 = oh * s->stride_h - s->pad_h;
    const int64_t hep = CNN_MIN(hs0 + s->kernel_h, s->H + s->pad_h);
    const int64_t hs = CNN_MAX(hs0, 0), he = CNN_MIN(hep, s->H);
    *hs_out = hs;
    *he_out = he;
    const int64_t div = (s->count_include_pad ? hep - hs0 : he - hs) * s->kernel_w;
    return hs >= he || div <= 0 ? 0.0f : 1.0f / (float)div;
}

/* The vector variants' plane: border columns by the reference; interior columns a whole output
 * row at a time, one window cell per pass, so the inner loop runs over ow and vectorises (a
 * strided load for column stride 2). Each window's cells are added in the reference's order
 * (row-major from 0.0f) and scaled by the same reciprocal, so the forward matches it exactly. */
CNN_LAYERS_INLINE void cnn_f32_avgpool_plane_body(const cnn_pool_shape *s, int64_t P, int64_t Q,
                                                  const float *CNN_RESTRICT x, float *CNN_RESTRICT y) {
    int64_t lo, hi;
    cnn_pool_interior_cols(s, Q, &lo, &hi);
    if (lo > 0) avgpool_plane_cols(s, P, Q, 0, lo, x, y);
    if (hi < Q) avgpool_plane_cols(s, P, Q, hi, Q, x, y);
    const int64_t W = s->W, sw = s->stride_w, pw = s->pad_w;
    for (int64_t oh = 0; oh < P; oh++) {
        int64_t hs, he;
        const float inv = avg_interior_rows(s, oh, &hs, &he);
        float *CNN_RESTRICT acc = y + oh * Q;
        for (int64_t ow = lo; ow < hi; ow++) acc[ow] = 0.0f;
        for (int64_t h = hs; h < he; h++)
            for (int64_t kw = 0; kw < s->kernel_w; kw++) {
                const float *CNN_RESTRICT r = x + h * W + kw - pw;
                if (sw == 1)
                    for (int64_t ow = lo; ow < hi; ow++) acc[ow] += r[ow];
                else
                    for (int64_t ow = lo; ow < hi; ow++) acc[ow] += r[ow * sw];
            }
        for (int64_t ow = lo; ow < hi; ow++) acc[ow] *= inv;
    }
}

/* Backward of the same split: zero, border columns by the reference, then interior windows a row
 * of outputs at a time. A cell covered by several windows receives their terms in another order
 * than the reference's, so dx agrees with it to rounding (a few float ulps), not bit for bit. */
CNN_LAYERS_INLINE void cnn_f32_avgpool_backward_plane_body(const cnn_pool_shape *s, int64_t P, int64_t Q,
                                                           const float *CNN_RESTRICT g,
                                                           float *CNN_RESTRICT d) {
    const int64_t W = s->W, sw = s->stride_w, pw = s->pad_w;
    for (int64_t j = 0; j < s->H * W; j++) d[j] = 0.0f;
    int64_t lo, hi;
    cnn_pool_interior_cols(s, Q, &lo, &hi);
    if (lo > 0) avgpool_backward_plane_cols(s, P, Q, 0, lo, g, d);
    if (hi < Q) avgpool_backward_plane_cols(s, P, Q, hi, Q, g, d);
    for (int64_t oh = 0; oh < P; oh++) {
        int64_t hs, he;
        const float inv = avg_interior_rows(s, oh, &hs, &he);
        const float *CNN_RESTRICT gr = g + oh * Q;
        for (int64_t h = hs; h < he; h++)
            for (int64_t kw = 0; kw < s->kernel_w; kw++) {
                float *CNN_RESTRICT r = d + h * W + kw - pw;
                if (sw == 1)
                    for (int64_t ow = lo; ow < hi; ow++) r[ow] += gr[ow] * inv;
                else
                    for (int64_t ow = lo; ow < hi; ow++) r[ow * sw] += gr[ow] * inv;
            }
    }
}

/* Global average pooling of one plane (adaptive pooling to 1x1): the mean of n floats, summed over
 * CNN_LAYERS_LANES float lanes (element j into lane j % 16, lanes added in order, tail last). */
CNN_LAYERS_INLINE void cnn_f32_global_avgpool_body(int64_t n, const float *CNN_RESTRICT x, float *y) {
    float sl[CNN_LAYERS_LANES] = {0};
    int64_t j = 0;
    for (; j + CNN_LAYERS_LANES <= n; j += CNN_LAYERS_LANES)
        for (int l = 0; l < CNN_LAYERS_LANES; l++) sl[l] += x[j + l];
    float sum = 0.0f;
    for (int l = 0; l < CNN_LAYERS_LANES; l++) sum += sl[l];
    for (; j < n; j++) sum += x[j];
    *y = sum / (float)n;
}

/* Its backward: every cell of the plane gets dy / n. */
CNN_LAYERS_INLINE void cnn_f32_global_avgpool_backward_body(int64_t n, const float *g,
                                                            float *CNN_RESTRICT d) {
    const float v = *g / (float)n;
    for (int64_t j = 0; j < n; j++) d[j] = v;
}

#define AVG_PLANE_PARAMS (const cnn_pool_shape *s, int64_t P, int64_t Q, const float *x, float *y)
#define AVG_PLANE_ARGS (s, P, Q, x, y)
#define AVG_GLOBAL_PARAMS (int64_t n, const float *x, float *y)
#define AVG_GLOBAL_ARGS (n, x, y)

/* Generic variants: the reference loops (the whole plane as border columns). */
static void cnn_f32_avgpool_plane__generic AVG_PLANE_PARAMS { avgpool_plane_cols(s, P, Q, 0, Q, x, y); }
static void cnn_f32_avgpool_backward_plane__generic AVG_PLANE_PARAMS {
    memset(y, 0, (size_t)(s->H * s->W) * sizeof(float));
    avgpool_backward_plane_cols(s, P, Q, 0, Q, x, y);
}
static void cnn_f32_global_avgpool__generic AVG_GLOBAL_PARAMS {
    float sum = 0.0f;
    for (int64_t j = 0; j < n; j++) sum += x[j];
    *y = sum / (float)n;
}
static void cnn_f32_global_avgpool_backward__generic AVG_GLOBAL_PARAMS {
    cnn_f32_global_avgpool_backward_body AVG_GLOBAL_ARGS;
}
CNN_LAYERS_STAMP_X86(cnn_f32_avgpool_plane, AVG_PLANE_PARAMS, AVG_PLANE_ARGS)
CNN_LAYERS_STAMP_X86(cnn_f32_avgpool_backward_plane, AVG_PLANE_PARAMS, AVG_PLANE_ARGS)
CNN_LAYERS_STAMP_X86(cnn_f32_global_avgpool, AVG_GLOBAL_PARAMS, AVG_GLOBAL_ARGS)
CNN_LAYERS_STAMP_X86(cnn_f32_global_avgpool_backward, AVG_GLOBAL_PARAMS, AVG_GLOBAL_ARGS)

/* The average-pooling family's table, indexed by cnn_layers_isa_index(). */
typedef struct avgpool_kernels {
    void (*forward) AVG_PLANE_PARAMS;
    void (*backward) AVG_PLANE_PARAMS; /* (s, P, Q, dy, dx) */
    void (*global_forward) AVG_GLOBAL_PARAMS;
    void (*global_backward) AVG_GLOBAL_PARAMS; /* (HW, dy, dx) */
} avgpool_kernels;

#define AVGPOOL_KERNELS(ISA)                                                                        \
    {cnn_f32_avgpool_plane__##ISA, cnn_f32_avgpool_backward_plane__##ISA,                           \
     cnn_f32_global_avgpool__##ISA, cnn_f32_global_avgpool_backward__##ISA}
static const avgpool_kernels avgpool_table[] = {
    AVGPOOL_KERNELS(generic),
#if CNN_X86
    AVGPOOL_KERNELS(avx2),
    AVGPOOL_KERNELS(avx512),
#endif
};

static const avgpool_kernels *avgpool_select(void) { return &avgpool_table[cnn_layers_isa_index()]; }

// x is (N, C, H, W), y is (N, C, P, Q)
cnn_status cnn_avgpool2d_forward(const cnn_pool_shape *s, const float *x, float *y) {
    int64_t P, Q;
    cnn_status st = cnn_pool_output_size(s, &P, &Q);
    if (st != CNN_OK) return st;
    const int64_t planes = s->N * s->C;
    if (planes == 0) return CNN_OK;
    if (!x || !y) return CNN_ERR_INVALID_ARGUMENT;
    void (*const plane) AVG_PLANE_PARAMS = avgpool_select()->forward;
    const int64_t HW = s->H * s->W, PQ = P * Q;
    const int nt = cnn_threads_for(planes);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < planes; i++) plane(s, P, Q, x + i * HW, y + i * PQ);
    return CNN_OK;
}

// dy is (N, C, P, Q), dx is (N, C, H, W)
cnn_status cnn_avgpool2d_backward(const cnn_pool_shape *s, const float *dy, float *dx) {
    int64_t P, Q;
    cnn_status st = cnn_pool_output_size(s, &P, &Q);
    if (st != CNN_OK) return st;
    const int64_t planes = s->N * s->C;
    if (planes == 0) return CNN_OK;
    if (!dy || !dx) return CNN_ERR_INVALID_ARGUMENT;
    void (*const plane) AVG_PLANE_PARAMS = avgpool_select()->backward;
    const int64_t HW = s->H * s->W, PQ = P * Q;
    const int nt = cnn_threads_for(planes);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < planes; i++) plane(s, P, Q, dy + i * PQ, dx + i * HW);
    return CNN_OK;
}

/* ---------------------------------------------------------------- adaptive average pooling */

static int64_t adaptive_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
static int64_t adaptive_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

static cnn_status adaptive_check(int64_t N, int64_t C, int64_t H, int64_t W, int64_t outH, int64_t outW) {
    if (N < 0 || C < 0 || H < 1 || W < 1 || outH < 1 || outW < 1) return CNN_ERR_INVALID_ARGUMENT;
    return CNN_OK;
}

// x is (N, C, H, W), y is (N, C, outH, outW)
cnn_status cnn_adaptive_avgpool2d_forward(int64_t N, int64_t C, int64_t H, int64_t W, int64_t outH,
                                          int64_t outW, const float *x, float *y) {
    if (N * C == 0 && N >= 0 && C >= 0) return CNN_OK;
    cnn_status st = adaptive_check(N, C, H, W, outH, outW);
    if (st != CNN_OK) return st;
    if (!x || !y) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t planes = N * C, HW = H * W, PQ = outH * outW;
    const int nt = cnn_threads_for(planes);
    if (PQ == 1) { /* global pooling (GoogLeNet's and ResNet's heads) */
        void (*const plane) AVG_GLOBAL_PARAMS = avgpool_select()->global_forward;
        CNN_OMP_PARALLEL_FOR(nt)
        for (int64_t i = 0; i < planes; i++) plane(HW, x + i * HW, y + i);
        return CNN_OK;
    }
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < planes; i++) {
        const float *xp = x + i * HW;
        float *yp = y + i * PQ;
        for (int64_t oh = 0; oh < outH; oh++) {
            const int64_t hs = adaptive_start(oh, H, outH), he = adaptive_end(oh, H, outH);
            for (int64_t ow = 0; ow < outW; ow++) {
                const int64_t ws = adaptive_start(ow, W, outW), we = adaptive_end(ow, W, outW);
                float sum = 0.0f;
                for (int64_t h = hs; h < he; h++)
                    for (int64_t w = ws; w < we; w++) sum += xp[h * W + w];
                yp[oh * outW + ow] = sum / (float)((he - hs) * (we - ws));
            }
        }
    }
    return CNN_OK;
}

// dy is (N, C, outH, outW), dx is (N, C, H, W)
cnn_status cnn_adaptive_avgpool2d_backward(int64_t N, int64_t C, int64_t H, int64_t W, int64_t outH,
                                           int64_t outW, const float *dy, float *dx) {
    if (N * C == 0 && N >= 0 && C >= 0) return CNN_OK;
    cnn_status st = adaptive_check(N, C, H, W, outH, outW);
    if (st != CNN_OK) return st;
    if (!dy || !dx) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t planes = N * C, HW = H * W, PQ = outH * outW;
    const int nt = cnn_threads_for(planes);
    if (PQ == 1) {
        void (*const plane) AVG_GLOBAL_PARAMS = avgpool_select()->global_backward;
        CNN_OMP_PARALLEL_FOR(nt)
        for (int64_t i = 0; i < planes; i++) plane(HW, dy + i, dx + i * HW);
        return CNN_OK;
    }
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < planes; i++) {
        float *d = dx + i * HW;
        const float *g = dy + i * PQ;
        memset(d, 0, (size_t)HW * sizeof(float));
        for (int64_t oh = 0; oh < outH; oh++) {
            const int64_t hs = adaptive_start(oh, H, outH), he = adaptive_end(oh, H, outH);
            for (int64_t ow = 0; ow < outW; ow++) {
                const int64_t ws = adaptive_start(ow, W, outW), we = adaptive_end(ow, W, outW);
                const float v = g[oh * outW + ow] / (float)((he - hs) * (we - ws));
                for (int64_t h = hs; h < he; h++)
                    for (int64_t w = ws; w < we; w++) d[h * W + w] += v;
            }
        }
    }
    return CNN_OK;
}
