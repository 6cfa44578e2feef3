/* Reference convolution, forward and backward: the definition every fast path is tested against.
 * Plain loops over the definition, double accumulation, one thread. */
#include "conv_internal.h"

#include <string.h>

/* Input coordinate of output coordinate o at kernel tap t; may fall in the padding. */
static inline int64_t tap(int64_t o, int64_t t, int64_t stride, int64_t pad, int64_t dilation) {
    return o * stride - pad + t * dilation;
}

// x is (N,C,H,W), w is (K,C/groups,R,S), bias (K), residual and y (N,K,P,Q)
cnn_status cnn_conv2d_forward_reference(const cnn_conv_shape *shape, const float *x,
                                        const float *w, const float *bias,
                                        const float *residual, int relu, float *y) {
    conv_geom g;
    cnn_status st = cnn_conv_geom_init(shape, &g);
    if (st != CNN_OK) return st;
    if (g.N == 0) return CNN_OK;
    if (!x || !w || !y) return CNN_ERR_INVALID_ARGUMENT;
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t k = 0; k < g.K; k++) {
            const int64_t c0 = (k / g.Kg) * g.Cg;
            for (int64_t p = 0; p < g.P; p++)
                for (int64_t q = 0; q < g.Q; q++) {
                    double acc = 0;
                    for (int64_t c = 0; c < g.Cg; c++)
                        for (int64_t r = 0; r < g.R; r++) {
                            const int64_t h = tap(p, r, g.sh, g.ph, g.dh);
                            if (h < 0 || h >= g.H) continue;
                            for (int64_t s = 0; s < g.S; s++) {
                                const int64_t ww = tap(q, s, g.sw, g.pw, g.dw);
                                if (ww < 0 || ww >= g.W) continue;
                                acc += (double)x[((n * g.C + c0 + c) * g.H + h) * g.W + ww] *
                                       (double)w[((k * g.Cg + c) * g.R + r) * g.S + s];
                            }
                        }
                    const int64_t o = ((n * g.K + k) * g.P + p) * g.Q + q;
                    if (bias) acc += bias[k];
                    if (residual) acc += residual[o];
                    if (relu && acc < 0) acc = 0;
                    y[o] = (float)acc;
                }
        }
    return CNN_OK;
}

// dy is (N,K,P,Q), w is (K,C/groups,R,S), dx is (N,C,H,W): dx[x] = sum over the taps that read x.
cnn_status cnn_conv2d_backward_data_reference(const cnn_conv_shape *shape, const float *dy,
                                              const float *w, float *dx) {
    conv_geom g;
    cnn_status st = cnn_conv_geom_init(shape, &g);
    if (st != CNN_OK) return st;
    if (g.N == 0) return CNN_OK;
    if (!dy || !w || !dx) return CNN_ERR_INVALID_ARGUMENT;
    /* Gather form: for each input element, sum w * dy over every (k, r, s, p, q) whose tap lands on
     * it. Slower than scattering but the accumulation happens in one double per output. */
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t c = 0; c < g.C; c++) {
            const int64_t grp = c / g.Cg, cg = c % g.Cg;
            for (int64_t h = 0; h < g.H; h++)
                for (int64_t ww = 0; ww < g.W; ww++) {
                    double acc = 0;
                    for (int64_t kk = 0; kk < g.Kg; kk++) {
                        const int64_t k = grp * g.Kg + kk;
                        for (int64_t r = 0; r < g.R; r++) {
                            const int64_t ph = h + g.ph - r * g.dh; /* = p * sh */
                            if (ph < 0 || ph % g.sh != 0 || ph / g.sh >= g.P) continue;
                            const int64_t p = ph / g.sh;
                            for (int64_t s = 0; s < g.S; s++) {
                                const int64_t qw = ww + g.pw - s * g.dw;
                                if (qw < 0 || qw % g.sw != 0 || qw / g.sw >= g.Q) continue;
                                const int64_t q = qw / g.sw;
                                acc += (double)dy[((n * g.K + k) * g.P + p) * g.Q + q] *
                                       (double)w[((k * g.Cg + cg) * g.R + r) * g.S + s];
                            }
                        }
                    }
                    dx[((n * g.C + c) * g.H + h) * g.W + ww] = (float)acc;
                }
        }
    return CNN_OK;
}

// x is (N,C,H,W), dy is (N,K,P,Q), dw is (K,C/groups,R,S) +=, db (K) += (may be NULL)
cnn_status cnn_conv2d_backward_weight_reference(const cnn_conv_shape *shape, const float *x,
                                                const float *dy, float *dw, float *db) {
    conv_geom g;
    cnn_status st = cnn_conv_geom_init(shape, &g);
    if (st != CNN_OK) return st;
    if (g.N == 0) return CNN_OK;
    if (!x || !dy || !dw) return CNN_ERR_INVALID_ARGUMENT;
    for (int64_t k = 0; k < g.K; k++) {
        const int64_t c0 = (k / g.Kg) * g.Cg;
        for (int64_t c = 0; c < g.Cg; c++)
            for (int64_t r = 0; r < g.R; r++)
                for (int64_t s = 0; s < g.S; s++) {
                    double acc = 0;
                    for (int64_t n = 0; n < g.N; n++)
                        for (int64_t p = 0; p < g.P; p++) {
                            const int64_t h = tap(p, r, g.sh, g.ph, g.dh);
                            if (h < 0 || h >= g.H) continue;
                            for (int64_t q = 0; q < g.Q; q++) {
                                const int64_t ww = tap(q, s, g.sw, g.pw, g.dw);
                                if (ww < 0 || ww >= g.W) continue;
                                acc += (double)x[((n * g.C + c0 + c) * g.H + h) * g.W + ww] *
                                       (double)dy[((n * g.K + k) * g.P + p) * g.Q + q];
                            }
                        }
                    dw[((k * g.Cg + c) * g.R + r) * g.S + s] += (float)acc;
                }
        if (db) {
            double acc = 0;
            for (int64_t n = 0; n < g.N; n++)
                for (int64_t i = 0; i < g.P * g.Q; i++) acc += dy[(n * g.K + k) * g.P * g.Q + i];
            db[k] += (float)acc;
        }
    }
    return CNN_OK;
}
