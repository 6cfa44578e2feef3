/* Private interface between the convolution operator (conv.c) and the Winograd kernels
 * (winograd.c). Winograd F(m x m, 3x3) for m = 2, 4, 6, and F(m x m, 5x5) for m = 2, 4: stride 1,
 * dilation 1, groups 1. The kernel size comes from the shape. */
#ifndef CNN_CONV_WINOGRAD_H
#define CNN_CONV_WINOGRAD_H

#include "../internal.h"

/* Opaque transformed weights: U = G g G^T for every (k, c), laid out for the batched GEMMs. */
typedef struct cnn_winograd_weights cnn_winograd_weights;

/* m: output tile size (2, 4 or 6; 2 or 4 for a 5x5 kernel). NULL with *status set on failure. */
cnn_winograd_weights *cnn_winograd_weights_create(int m, const cnn_conv_shape *s, const float *w,
                                                  cnn_status *status);
void cnn_winograd_weights_destroy(cnn_winograd_weights *u);
size_t cnn_winograd_weights_bytes(const cnn_winograd_weights *u);
/* Peak workspace bytes one forward call takes (from the calling thread's cnn_workspace slots 4 to 6; the kernels never call cnn_sgemm, whose packing buffers use slots 6 and 7, so nothing is held across a GEMM call). */
size_t cnn_winograd_workspace_bytes(const cnn_winograd_weights *u, const cnn_conv_shape *s);
/* Estimated forward time in nanoseconds of F(m x m) on shape s (2 threads of the reference machine),
 * for AUTO's choice of tile; +infinity when F(m) does not apply. See winograd.c. */
double cnn_winograd_estimate_ns(int m, const cnn_conv_shape *s);
/* y = relu?(conv(x) + bias + residual), the output transform fused with the epilogue. */
cnn_status cnn_winograd_forward(const cnn_winograd_weights *u, const cnn_conv_shape *s,
                                const float *x, const float *bias, const float *residual, int relu,
                                float *y);

/* y (N, K, P/2, Q/2) = the 2x2, stride-2 max pool (floor mode) of relu?(conv(x) + bias): the pooling
 * fused into the output transform (every Winograd tile m is even, so pooling windows never straddle
 * two tiles); bit for bit cnn_winograd_forward followed by cnn_maxpool2d_forward. */
cnn_status cnn_winograd_forward_maxpool2x2(const cnn_winograd_weights *u, const cnn_conv_shape *s,
                                           const float *x, const float *bias, int relu, float *y);

/* dx = the data gradient of a 3x3 (or, with m = 2 or 4, 5x5) stride-1 convolution with weights w
 * (C', K', R, R), computed as the forward convolution fs (K = C', C = K') of dy with the rotated,
 * channel-swapped kernel, whose transform is taken straight from w. Takes workspace slots 1 and 4
 * to 6 of the calling thread. */
cnn_status cnn_winograd_backward_data(int m, const cnn_conv_shape *fs, const float *dy, const float *w,
                                      float *dx);

/* dw (K, C, R, R) += the weight gradient of the convolution s (3x3, or 5x5 with m = 2, 4; stride 1,
 * dilation 1, one group) for input x and output gradient dy, through F(m x m, R x R)'s transforms
 * (see winograd.c).
 * Takes workspace slots 2 to 5 of the calling thread and calls cnn_sgemm. */
cnn_status cnn_winograd_backward_weight(int m, const cnn_conv_shape *s, const float *x, const float *dy,
                                        float *dw);

#endif
