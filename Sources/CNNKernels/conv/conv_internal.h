/* Private interface between the convolution operator (conv.c) and its algorithms (direct.c,
 * im2col.c, backward.c, reference.c). Not part of the public header. */
#ifndef CNN_CONV_INTERNAL_H
#define CNN_CONV_INTERNAL_H

#include "../internal.h"

/* Register-tile helpers written once and inlined into each ISA's compiled copy (direct.c,
 * backward_weight_direct.c), so they take that copy's target. */
#define ALWAYS_INLINE inline __attribute__((always_inline))

/* A validated convolution shape with the derived sizes every algorithm needs.
 * x is (N, C, H, W), w is (K, Cg, R, S), y is (N, K, P, Q); G groups of Cg = C/G input and
 * Kg = K/G output channels each. */
typedef struct conv_geom {
    int64_t N, C, H, W, K, R, S;
    int64_t sh, sw, ph, pw, dh, dw;
    int64_t G, Cg, Kg, P, Q;
} conv_geom;

/* Fills `g` from `s`; CNN_ERR_INVALID_ARGUMENT when the shape is invalid (N == 0 is valid: an
 * empty batch). */
cnn_status cnn_conv_geom_init(const cnn_conv_shape *s, conv_geom *g);

/* Workspace slots of the calling thread used by this family (cnn_workspace); the buffers are held
 * across cnn_sgemm calls, so they must differ from the GEMM's packing slots (the upper ones, see
 * cnn_gemm.h) and Winograd's. Convolution takes 2 (column / gather buffer, direct's packed weights
 * in a one-shot call) and 3 (direct convolution's per-thread accumulator rows, or the padded input
 * copy of its flat tiles). */
#define CNN_CONV_SLOT_COL 2
#define CNN_CONV_SLOT_ACC 3
/* The im2col path's (Kg x columns) product or gathered output gradient when several images share
 * one GEMM; direct convolution (the other user of slot 3) never runs in the same call. */
#define CNN_CONV_SLOT_TMP 3

/* Tap trimming (im2col.c) keeps the trimmed weights in slot 4 and backward-weight's trimmed
 * gradient in slot 5: Winograd (their other user) never runs in the same call. The direct weight
 * gradient (backward_weight_direct.c) holds its total in 4 and its chunk sums in 5. */
#define CNN_CONV_SLOT_TRIM_W 4
#define CNN_CONV_SLOT_TRIM_DW 5
/* Backward data through the Winograd kernels keeps the transformed, flipped kernel in slot 1
 * (LRN's, which never runs inside a convolution): see cnn_winograd_backward_data. */

/* Kernel taps that read only padding. On a small plane some taps (r, s) fall outside the image for
 * every output position: a 3x3, pad-1 convolution of a 1x1 plane (ResNet-18's last stage at 32x32
 * input) reads the image with its centre tap only, and its other 8 column-matrix rows per channel
 * are all zeros — 8/9 of the GEMM multiplies zeros. Trimming finds the smallest tap window
 * [r0, r0 + R') x [s0, s0 + S') holding every tap that reads the image somewhere and describes
 * the same convolution with it: `t` is `g` with R', S' and the padding moved by the window's
 * offset (ph - r0*dh, pw - s0*dw; P and Q unchanged). Returns 1 when the window is smaller than
 * R x S (and the moved padding is not negative), else 0 and `t` untouched. Dropped taps contribute
 * exact zeros, so results are those of the full kernel up to summation order. */
int cnn_conv_trim_taps(const conv_geom *g, conv_geom *t, int64_t *r0, int64_t *s0);
/* Trimmed windows of at most this many taps are gathered (and their weight gradients scattered
 * back) through a table of offsets within a plane. */
#define CONV_TRIM_MAX_TAPS 64

/* One output pixel per plane whose window is the whole image (kernel H x W, no padding, no
 * dilation), in one group: a fully connected layer over the batch on the image flattened, so the
 * forward pass and both gradients are one GEMM each on the tensors as they lie, x (N, C*H*W),
 * W (K, C*R*S) and y (N, K), with no im2col, gather or col2im. Layers come here once trimmed to
 * the taps that read the image: a 3x3 layer at 1x1 (ResNet's layer4 at 32x32 input) keeps its
 * centre tap, a 3x3/2 one at 2x2 its lower-right 2x2; so do the 1x1 layers of
 * squeeze-and-excitation blocks and a classifier written as a convolution over the last map. */
static inline int conv_is_dense(const conv_geom *g) {
    return g->P == 1 && g->Q == 1 && g->R == g->H && g->S == g->W && g->ph == 0 && g->pw == 0 &&
           (g->dh == 1 || g->R == 1) && (g->dw == 1 || g->S == 1) && g->G == 1;
}
/* wt (K, Cg, t->R, t->S) = the window [r0, r0 + t->R) x [s0, s0 + t->S) of w (K, Cg, g->R, g->S). */
void cnn_conv_trim_weights(const conv_geom *g, const conv_geom *t, int64_t r0, int64_t s0, const float *w,
                           float *wt);

/* Bound on the im2col column tile (and the 1x1 gather tile) of one call: the column matrix is
 * built for a band of output rows at a time so a 224x224 layer never needs it whole (vgg16.conv1_2
 * would take 115 MiB). 8 MiB is above the L2 of this machine (2 cores of an AMD EPYC Zen 5, 1 MiB
 * L2 each) but the GEMM packs its B panels anyway; it keeps each GEMM call's N large enough to
 * amortise packing the weights. At least one output row is always taken. */
#define CNN_CONV_COL_BYTES ((size_t)8 << 20)

/* Output rows per band so that `rows * row_floats * 4` stays within CNN_CONV_COL_BYTES (>= 1). */
static inline int64_t conv_band_rows(int64_t row_floats, int64_t P) {
    int64_t rows = (int64_t)(CNN_CONV_COL_BYTES / sizeof(float)) / (row_floats > 0 ? row_floats : 1);
    if (rows < 1) rows = 1;
    if (rows > P) rows = P;
    return rows;
}

/* Fills the column matrix of one image and one group for output rows [p0, p0 + rows):
 * col is (Cg*R*S) x (rows*Q), row (c*R + r)*S + s holds x[c][p*sh - ph + r*dh][q*sw - pw + s*dw]
 * (0 in the padding). x points at the group's first input channel of the image. */
void cnn_conv_im2col(const conv_geom *g, const float *x, int64_t p0, int64_t rows, float *col);
/* The adjoint: dx (Cg, H, W) += col2im(col) for output rows [p0, p0 + rows). */
void cnn_conv_col2im(const conv_geom *g, const float *col, int64_t p0, int64_t rows, float *dx);
/* The weight gradient without a column matrix (backward_weight_direct.c): 1 when it takes g
 * (stride 1 along columns, not depthwise, few output channels and weights), and
 * dw (K, Cg, R, S) += the gradient; OUT_OF_MEMORY if a buffer cannot be had (dw untouched). */
int cnn_conv_backward_weight_direct_applies(const conv_geom *g);
cnn_status cnn_conv_backward_weight_direct(const conv_geom *g, const float *x, const float *dy, float *dw);
/* Images per column matrix (>= 1): above 1 when the output plane is small, so that one GEMM covers
 * several images (see im2col.c). Forward and both backward passes use the same count. */
int64_t cnn_conv_batch_images(const conv_geom *g);
/* The calling thread's buffers for nb images per GEMM: the column matrix (Cg*R*S x nb*P*Q, slot
 * COL) and the Kg x nb*P*Q product or gathered output gradient (slot TMP). OUT_OF_MEMORY if either
 * allocation fails. */
cnn_status cnn_conv_image_buffers(const conv_geom *g, int64_t nb, float **col, float **tmp);
/* Column matrix of nimg images: col is (Cg*R*S, nimg*P*Q), image i in columns [i*PQ, (i+1)*PQ);
 * x points at image 0's group, images xs floats apart. */
void cnn_conv_im2col_images(const conv_geom *g, const float *x, int64_t xs, int64_t nimg, float *col);
/* The adjoint, writing (not accumulating) the group's channels of nimg images, dxs floats apart. */
void cnn_conv_col2im_images(const conv_geom *g, const float *col, int64_t nimg, float *dx, int64_t dxs);
/* m (Kg, nimg*P*Q) = the rows of group grp of images n0..n0+nimg-1 of y (N, K, P, Q). */
void cnn_conv_gather_images(const conv_geom *g, int64_t n0, int64_t nimg, int64_t grp, const float *y,
                            float *m);

/* Forward algorithms. w is the (K, Cg, R, S) weight as given. */
/* Direct: `wpacked` is NULL or w packed by cnn_conv_direct_pack (a plan's copy); when the shape uses
 * the packed kernel and it is NULL, the call packs into its workspace. */
cnn_status cnn_conv_direct_forward(const conv_geom *g, const float *x, const float *w,
                                   const float *wpacked, const float *bias, const float *residual,
                                   int relu, float *y);
int cnn_conv_direct_uses_packed(const conv_geom *g);
size_t cnn_conv_direct_packed_floats(const conv_geom *g); /* 0 when unused */
void cnn_conv_direct_pack(const conv_geom *g, const float *w, float *wp);
/* im2col and 1x1: `packed` is NULL or the plan's per-group weights W_g (Kg x CgRS) packed with
 * cnn_sgemm_pack_a, group g at packed + g * packed_stride bytes. Packed panels belong to the ISA
 * active when the plan was made; after cnn_isa_set changed it, the raw weights are used instead. */
size_t cnn_conv_gemm_packed_stride(const conv_geom *g);
cnn_status cnn_conv_gemm_pack(const conv_geom *g, const float *w, void *packed);
cnn_status cnn_conv_im2col_forward(const conv_geom *g, const float *x, const float *w,
                                   const void *packed, const float *bias, const float *residual,
                                   int relu, float *y);
cnn_status cnn_conv_gemm1x1_forward(const conv_geom *g, const float *x, const float *w,
                                    const void *packed, const float *bias, const float *residual,
                                    int relu, float *y);
/* Peak bytes of per-call workspace the algorithm takes (summed over threads where per-thread). */
size_t cnn_conv_im2col_workspace_bytes(const conv_geom *g);
size_t cnn_conv_gemm1x1_workspace_bytes(const conv_geom *g);
size_t cnn_conv_direct_workspace_bytes(const conv_geom *g);

#endif
