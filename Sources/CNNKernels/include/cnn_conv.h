/* 2-D convolution: forward by several algorithms, and backward. */
#ifndef CNN_CONV_H
#define CNN_CONV_H

#include "cnn_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Convolution algorithms. AUTO picks by a shape heuristic (see conv/conv.c for the machine it was
 *  profiled on). WINOGRAD_* apply to 3x3, stride 1, dilation 1, groups 1 only; WINOGRAD_2X2 and
 *  WINOGRAD_4X4 also to 5x5 kernels under the same conditions, as F(2x2, 5x5) and F(4x4, 5x5). */
typedef enum cnn_conv_algorithm {
    CNN_CONV_AUTO = 0,
    CNN_CONV_DIRECT = 1,
    CNN_CONV_IM2COL = 2,
    CNN_CONV_GEMM1X1 = 3,
    CNN_CONV_WINOGRAD_2X2 = 4, /* F(2x2, 3x3), or F(2x2, 5x5) on a 5x5 kernel */
    CNN_CONV_WINOGRAD_4X4 = 5, /* F(4x4, 3x3), or F(4x4, 5x5) on a 5x5 kernel */
    CNN_CONV_WINOGRAD_6X6 = 6, /* F(6x6, 3x3) */
} cnn_conv_algorithm;
#define CNN_CONV_ALGORITHM_COUNT 7

/** One convolution: input x is (N, C, H, W), weight w is (K, C/groups, R, S), output y is (N, K, P, Q)
 *  with P = (H + 2*pad_h - dilation_h*(R-1) - 1) / stride_h + 1 and Q likewise (PyTorch's formula). */
typedef struct cnn_conv_shape {
    int64_t N, C, H, W;
    int64_t K, R, S;
    int64_t stride_h, stride_w;
    int64_t pad_h, pad_w;
    int64_t dilation_h, dilation_w;
    int64_t groups;
} cnn_conv_shape;

/** Output height and width; CNN_ERR_INVALID_ARGUMENT if the shape is invalid (non-positive sizes,
 *  stride or dilation < 1, negative padding, groups not dividing C and K, empty output).
 *  N == 0 is the one zero size accepted: an empty batch, on which every call does nothing. */
cnn_status cnn_conv_output_size(const cnn_conv_shape *s, int64_t *P, int64_t *Q);
/** 1 if `algorithm` applies to the shape (AUTO always does), else 0. */
int cnn_conv_algorithm_applies(cnn_conv_algorithm algorithm, const cnn_conv_shape *s);
/** The algorithm AUTO resolves to for this shape. */
cnn_conv_algorithm cnn_conv_auto_algorithm(const cnn_conv_shape *s);
const char *cnn_conv_algorithm_name(cnn_conv_algorithm algorithm);

/**
 * A prepared convolution: the weights transformed or packed once for one algorithm (Winograd's
 * U = G g G^T, GEMM-packed panels), reused by every forward call until destroyed. Create a new plan
 * when the weights change. A plan is immutable after creation and may be used from several threads.
 */
typedef struct cnn_conv_plan cnn_conv_plan;
/** NULL with *status set on error (UNSUPPORTED if the algorithm does not apply). `weight` is copied
 *  or transformed; the caller keeps ownership. */
cnn_conv_plan *cnn_conv_plan_create(cnn_conv_algorithm algorithm, const cnn_conv_shape *shape,
                                    const float *weight, cnn_status *status);
void cnn_conv_plan_destroy(cnn_conv_plan *plan);
/** The algorithm the plan runs (AUTO resolved). */
cnn_conv_algorithm cnn_conv_plan_algorithm(const cnn_conv_plan *plan);
/** Bytes of weight storage the plan holds, and the peak per-call workspace it needs. */
size_t cnn_conv_plan_weight_bytes(const cnn_conv_plan *plan);
size_t cnn_conv_plan_workspace_bytes(const cnn_conv_plan *plan);

/** y = relu?(conv(x) + bias + residual). bias (K) and residual (N, K, P, Q) may be NULL; relu 0/1.
 *  The plan's batch size N must match the data (create the plan for the batch you run). */
cnn_status cnn_conv_plan_forward(const cnn_conv_plan *plan, const float *x, const float *bias,
                                 const float *residual, int relu, float *y);

/** Whether the plan can fuse a following 2x2, stride-2 max pool into its output (Winograd plans:
 *  every Winograd tile is even, so no pooling window straddles two tiles). */
int cnn_conv_plan_fuses_maxpool2x2(const cnn_conv_plan *plan);
/** y (N, K, floor(P/2), floor(Q/2)) = max pool 2x2, stride 2, no padding, floor mode, of
 *  relu?(conv(x) + bias): the pool fused into the output transform, so the full-size output is
 *  never written. Bit for bit cnn_conv_plan_forward followed by cnn_maxpool2d_forward (ties keep
 *  the first maximum, NaN propagates). UNSUPPORTED when cnn_conv_plan_fuses_maxpool2x2 is 0. */
cnn_status cnn_conv_plan_forward_maxpool2x2(const cnn_conv_plan *plan, const float *x, const float *bias,
                                            int relu, float *y);

/** One-shot forward (plans, runs, frees). */
cnn_status cnn_conv2d_forward(cnn_conv_algorithm algorithm, const cnn_conv_shape *shape,
                              const float *x, const float *weight, const float *bias,
                              const float *residual, int relu, float *y);

/** Reference forward: plain loops with double accumulation, single thread. Defines the answer. */
cnn_status cnn_conv2d_forward_reference(const cnn_conv_shape *shape, const float *x,
                                        const float *weight, const float *bias,
                                        const float *residual, int relu, float *y);

/** dx (N, C, H, W) = conv^T(dy, w): written. */
cnn_status cnn_conv2d_backward_data(const cnn_conv_shape *shape, const float *dy,
                                    const float *weight, float *dx);
/** dw (K, C/groups, R, S) += sum over batch of x (*) dy; db (K) += sum of dy (db may be NULL). */
cnn_status cnn_conv2d_backward_weight(const cnn_conv_shape *shape, const float *x, const float *dy,
                                      float *dw, float *db);
/** The two gradients of a layer whose forward runs `forward_algorithm` (the functions above are
 *  these with CNN_CONV_AUTO). AUTO and the Winograd algorithms take the Winograd transforms on
 *  3x3, stride-1, dilation-1, single-group layers (AUTO with the tile AUTO picks, the others with
 *  their own; the data gradient needs padding at most 2); on such 5x5 layers both gradients run
 *  F(2x2, 5x5) for WINOGRAD_2X2, F(4x4, 5x5) for WINOGRAD_4X4, and for AUTO the tile AUTO picks
 *  (for the flipped shape in the data gradient, which needs padding at most 4); direct, im2col
 *  and gemm1x1 take the GEMM path, whose results do not depend on how the batch is split.
 *  CNN_ERR_INVALID_ARGUMENT for an unknown algorithm. */
cnn_status cnn_conv2d_backward_data_for(cnn_conv_algorithm forward_algorithm, const cnn_conv_shape *shape,
                                        const float *dy, const float *weight, float *dx);
cnn_status cnn_conv2d_backward_weight_for(cnn_conv_algorithm forward_algorithm, const cnn_conv_shape *shape,
                                          const float *x, const float *dy, float *dw, float *db);

/** Reference backward passes: plain loops, double accumulation, single thread (same contracts:
 *  dx written, dw and db accumulated). They define the answer the fast backward is tested against. */
cnn_status cnn_conv2d_backward_data_reference(const cnn_conv_shape *shape, const float *dy,
                                              const float *weight, float *dx);
cnn_status cnn_conv2d_backward_weight_reference(const cnn_conv_shape *shape, const float *x,
                                                const float *dy, float *dw, float *db);
/** Test entry for the Winograd kernels F(m x m, 3x3), m = 2, 4 or 6, and F(m x m, 5x5), m = 2 or
 *  4 (on a 5x5 shape): transforms the weights, runs one forward pass y = relu?(conv(x) + bias +
 *  residual) and frees the transformed weights. CNN_ERR_UNSUPPORTED unless 3x3 (or 5x5 with m = 2
 *  or 4), stride 1, dilation 1, groups 1. Use a plan for real work. */
cnn_status cnn_winograd_conv2d(int m, const cnn_conv_shape *shape, const float *x, const float *w,
                               const float *bias, const float *residual, int relu, float *y);

/** Test entry: copies the literal transform tables of F(m x m, 3x3) (alpha = m + 2) as doubles:
 *  at is A^T (m x alpha), g is G (alpha x 3), bt is B^T (alpha x alpha), all row-major, such that
 *  y = A^T [(G g G^T) (.) (B^T d B)] A is the correlation of the alpha x alpha patch d with g.
 *  CNN_ERR_UNSUPPORTED for m other than 2, 4, 6. */
cnn_status cnn_winograd_matrices(int m, double *at, double *g, double *bt);
/** Test entry: the same for F(m x m, r x r) (alpha = m + r - 1, g is alpha x r): r = 3 with m = 2, 4,
 *  6, or r = 5 with m = 2, 4; CNN_ERR_UNSUPPORTED otherwise. */
cnn_status cnn_winograd_tables(int m, int r, double *at, double *g, double *bt);
/** Test entry: the peak per-call workspace bytes of Winograd F(m x m, 3x3) (or F(m x m, 5x5)) on
 *  `shape` (0 if the shape does not apply). */
size_t cnn_winograd_conv2d_workspace_bytes(int m, const cnn_conv_shape *shape);

#ifdef __cplusplus
}
#endif
#endif
