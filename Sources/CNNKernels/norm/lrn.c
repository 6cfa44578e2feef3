/* Local response normalisation across channels (AlexNet, section 3.3), PyTorch's LocalResponseNorm:
 *   scale_c = k + alpha/size * sum_{c' = c - size/2}^{c + (size-1)/2} x_{c'}^2   (clipped to [0, C)),
 *   y_c = x_c * scale_c^-beta.
 * Backward: dx_i = dy_i * scale_i^-beta
 *                  - (2 alpha beta / size) * x_i * sum_{j : i in window(j)} dy_j * y_j / scale_j,
 * where i in window(j) iff i - (size-1)/2 <= j <= i + size/2.
 * Parallel over the N*C planes; the channel sums run along HW so the inner loops vectorise.
 *
 * The per-plane kernels are written once (lrn_*_plane_body) and compiled three times: the generic
 * variant (baseline ISA, the reference) and AVX2 / AVX-512 stamps, which run the same arithmetic in
 * ymm / zmm registers (sqrt and divide dominate: 8 or 16 lanes instead of 4). */
#include "../tensor/layers_internal.h"

#include <math.h>
#include <string.h>

/* y = x * s^-beta - f * x * acc over n floats (acc NULL: no second term). AlexNet's beta = 0.75
 * is computed as x / (sqrt(s) * sqrt(sqrt(s))), which vectorises, unlike powf; the test on beta is
 * outside the loops so that each loop vectorises. */
CNN_LAYERS_INLINE void lrn_apply(int64_t n, float beta, const float *CNN_RESTRICT x, const float *CNN_RESTRICT s,
                      float f, const float *CNN_RESTRICT xa, const float *CNN_RESTRICT acc,
                      float *CNN_RESTRICT y) {
    if (beta == 0.75f) {
        if (acc) {
            for (int64_t j = 0; j < n; j++) {
                const float r = sqrtf(s[j]);
                y[j] = x[j] / (r * sqrtf(r)) - f * xa[j] * acc[j];
            }
        } else {
            for (int64_t j = 0; j < n; j++) {
                const float r = sqrtf(s[j]);
                y[j] = x[j] / (r * sqrtf(r));
            }
        }
    } else {
        for (int64_t j = 0; j < n; j++) y[j] = x[j] * powf(s[j], -beta) - (acc ? f * xa[j] * acc[j] : 0.0f);
    }
}

/* scale of plane (n, c) into out (HW). xn is image n, (C, HW). */
CNN_LAYERS_INLINE void lrn_plane_scale(int64_t C, int64_t HW, int64_t size, float alpha, float k, const float *xn,
                            int64_t c, float *CNN_RESTRICT out) {
    const int64_t lo = CNN_MAX(0, c - size / 2), hi = CNN_MIN(C - 1, c + (size - 1) / 2);
    for (int64_t j = 0; j < HW; j++) out[j] = 0.0f;
    for (int64_t cc = lo; cc <= hi; cc++) {
        const float *CNN_RESTRICT xc = xn + cc * HW;
        for (int64_t j = 0; j < HW; j++) out[j] += xc[j] * xc[j];
    }
    const float a = alpha / (float)size;
    for (int64_t j = 0; j < HW; j++) out[j] = k + a * out[j];
}

/* One output plane (n, c): scale into sc (HW), y = x * scale^-beta. xn is image n, (C, HW). */
CNN_LAYERS_INLINE void cnn_f32_lrn_forward_plane_body(int64_t C, int64_t HW, int64_t size, float alpha,
                                                      float beta, float k, const float *xn, int64_t c,
                                                      float *sc, float *y) {
    lrn_plane_scale(C, HW, size, alpha, k, xn, c, sc);
    lrn_apply(HW, beta, xn + c * HW, sc, 0.0f, NULL, NULL, y);
}

/* One input-gradient plane (n, c). scale is (N, C, HW) or NULL (recomputed into tmp); acc and tmp
 * are HW-float workspaces; x, y, dy are the whole tensors. */
CNN_LAYERS_INLINE void cnn_f32_lrn_backward_plane_body(int64_t C, int64_t HW, int64_t size, float alpha,
                                                       float beta, float k, const float *x,
                                                       const float *y, const float *scale,
                                                       const float *dy, float *dx, int64_t n, int64_t c,
                                                       float *CNN_RESTRICT acc, float *tmp) {
    const float f = 2.0f * alpha * beta / (float)size;
    const float *xn = x + n * C * HW;
    const int64_t i = n * C + c;
    for (int64_t j = 0; j < HW; j++) acc[j] = 0.0f;
    const int64_t lo = CNN_MAX(0, c - (size - 1) / 2), hi = CNN_MIN(C - 1, c + size / 2);
    for (int64_t cj = lo; cj <= hi; cj++) {
        const int64_t pj = n * C + cj;
        const float *sj;
        if (scale) sj = scale + pj * HW;
        else { lrn_plane_scale(C, HW, size, alpha, k, xn, cj, tmp); sj = tmp; }
        const float *CNN_RESTRICT gj = dy + pj * HW, *CNN_RESTRICT yj = y + pj * HW;
        for (int64_t j = 0; j < HW; j++) acc[j] += gj[j] * yj[j] / sj[j];
    }
    const float *si;
    if (scale) si = scale + i * HW;
    else { lrn_plane_scale(C, HW, size, alpha, k, xn, c, tmp); si = tmp; }
    /* dx = dy * scale^-beta - f * x * acc */
    lrn_apply(HW, beta, dy + i * HW, si, f, x + i * HW, acc, dx + i * HW);
}

#define LRN_FORWARD_PARAMS                                                                         \
    (int64_t C, int64_t HW, int64_t size, float alpha, float beta, float k, const float *xn,        \
     int64_t c, float *sc, float *y)
#define LRN_FORWARD_ARGS (C, HW, size, alpha, beta, k, xn, c, sc, y)
#define LRN_BACKWARD_PARAMS                                                                        \
    (int64_t C, int64_t HW, int64_t size, float alpha, float beta, float k, const float *x,         \
     const float *y, const float *scale, const float *dy, float *dx, int64_t n, int64_t c,          \
     float *acc, float *tmp)
#define LRN_BACKWARD_ARGS (C, HW, size, alpha, beta, k, x, y, scale, dy, dx, n, c, acc, tmp)

static void cnn_f32_lrn_forward_plane__generic LRN_FORWARD_PARAMS {
    cnn_f32_lrn_forward_plane_body LRN_FORWARD_ARGS;
}
static void cnn_f32_lrn_backward_plane__generic LRN_BACKWARD_PARAMS {
    cnn_f32_lrn_backward_plane_body LRN_BACKWARD_ARGS;
}
CNN_LAYERS_STAMP_X86(cnn_f32_lrn_forward_plane, LRN_FORWARD_PARAMS, LRN_FORWARD_ARGS)
CNN_LAYERS_STAMP_X86(cnn_f32_lrn_backward_plane, LRN_BACKWARD_PARAMS, LRN_BACKWARD_ARGS)

typedef void (*lrn_forward_fn) LRN_FORWARD_PARAMS;
typedef void (*lrn_backward_fn) LRN_BACKWARD_PARAMS;
typedef struct lrn_kernels {
    lrn_forward_fn forward;
    lrn_backward_fn backward;
} lrn_kernels;

/* The family's table, indexed by cnn_layers_isa_index(). */
static const lrn_kernels lrn_table[] = {
    {cnn_f32_lrn_forward_plane__generic, cnn_f32_lrn_backward_plane__generic},
#if CNN_X86
    {cnn_f32_lrn_forward_plane__avx2, cnn_f32_lrn_backward_plane__avx2},
    {cnn_f32_lrn_forward_plane__avx512, cnn_f32_lrn_backward_plane__avx512},
#endif
};

static cnn_status lrn_check(int64_t N, int64_t C, int64_t HW, int64_t size, float k) {
    if (N < 0 || C < 0 || HW < 0 || size < 1) return CNN_ERR_INVALID_ARGUMENT;
    return CNN_OK;
}

// x, y, scale are (N, C, HW)
cnn_status cnn_lrn_forward(int64_t N, int64_t C, int64_t HW, int64_t size, float alpha, float beta,
                           float k, const float *x, float *y, float *scale) {
    cnn_status st = lrn_check(N, C, HW, size, k);
    if (st != CNN_OK) return st;
    const int64_t planes = N * C;
    if (planes == 0 || HW == 0) return CNN_OK;
    if (!x || !y) return CNN_ERR_INVALID_ARGUMENT;
    const lrn_forward_fn plane = lrn_table[cnn_layers_isa_index()].forward;
    const int nt = cnn_threads_for(planes);
    int oom = 0;
    CNN_LAYERS_OMP_FOR_REDUCE(nt, max : oom)
    for (int64_t i = 0; i < planes; i++) {
        const int64_t n = i / C, c = i % C;
        float *sc = scale ? scale + i * HW : cnn_workspace(0, (size_t)HW * sizeof(float));
        if (!sc) { oom = 1; continue; }
        plane(C, HW, size, alpha, beta, k, x + n * C * HW, c, sc, y + i * HW);
    }
    return oom ? CNN_ERR_OUT_OF_MEMORY : CNN_OK;
}

// x, y, scale, dy, dx are (N, C, HW); scale may be NULL (recomputed)
cnn_status cnn_lrn_backward(int64_t N, int64_t C, int64_t HW, int64_t size, float alpha, float beta,
                            float k, const float *x, const float *y, const float *scale,
                            const float *dy, float *dx) {
    cnn_status st = lrn_check(N, C, HW, size, k);
    if (st != CNN_OK) return st;
    const int64_t planes = N * C;
    if (planes == 0 || HW == 0) return CNN_OK;
    if (!x || !y || !dy || !dx) return CNN_ERR_INVALID_ARGUMENT;
    const lrn_backward_fn plane = lrn_table[cnn_layers_isa_index()].backward;
    const int nt = cnn_threads_for(planes);
    int oom = 0;
    CNN_LAYERS_OMP_FOR_REDUCE(nt, max : oom)
    for (int64_t i = 0; i < planes; i++) {
        float *acc = cnn_workspace(0, (size_t)HW * sizeof(float));
        float *tmp = scale ? NULL : cnn_workspace(1, (size_t)HW * sizeof(float));
        if (!acc || (!scale && !tmp)) { oom = 1; continue; }
        plane(C, HW, size, alpha, beta, k, x, y, scale, dy, dx, i / C, i % C, acc, tmp);
    }
    return oom ? CNN_ERR_OUT_OF_MEMORY : CNN_OK;
}
