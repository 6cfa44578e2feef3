/* TEMPORARY placeholder so the conv branch links before the Winograd kernels land: every entry
 * point declines. Dropped at merge in favour of the real conv/winograd.c. */
#include "winograd.h"

cnn_winograd_weights *cnn_winograd_weights_create(int m, const cnn_conv_shape *s, const float *w,
                                                  cnn_status *status) {
    (void)m; (void)s; (void)w;
    if (status) *status = CNN_ERR_UNSUPPORTED;
    return NULL;
}
void cnn_winograd_weights_destroy(cnn_winograd_weights *u) { (void)u; }
size_t cnn_winograd_weights_bytes(const cnn_winograd_weights *u) { (void)u; return 0; }
size_t cnn_winograd_workspace_bytes(const cnn_winograd_weights *u, const cnn_conv_shape *s) {
    (void)u; (void)s;
    return 0;
}
cnn_status cnn_winograd_forward(const cnn_winograd_weights *u, const cnn_conv_shape *s,
                                const float *x, const float *bias, const float *residual, int relu,
                                float *y) {
    (void)u; (void)s; (void)x; (void)bias; (void)residual; (void)relu; (void)y;
    return CNN_ERR_UNSUPPORTED;
}
