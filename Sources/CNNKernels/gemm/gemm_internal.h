/* SGEMM internals shared by the driver (gemm.c) and the per-ISA microkernels (kernels_*.c).
 *
 * The driver works in "kernel orientation": it computes an M' x N' result tile by tile, where each
 * microkernel call produces an MR x NR tile from a packed A panel (kc x MR, k-major) and a packed
 * B panel (kc x NR, k-major). Row-major C is either the result itself (rows = i) or, when the
 * driver swaps operands to fit a narrow N better (C^T = op(B)^T op(A)^T), its transpose. Every tile
 * is written through a cnn_gemm_tile, which carries C's strides in kernel orientation and the fused
 * epilogue, so the microkernels never need to know which orientation they run in. */
#ifndef CNN_GEMM_INTERNAL_H
#define CNN_GEMM_INTERNAL_H

#include "../internal.h"

/* Where one MR x NR tile goes and what happens on the way: y = alpha*acc (+ beta*C) (+ bias)
 * (+ residual) then ReLU. bias/res/relu are only set on the last K block; beta is 1 after the
 * first K block. Pointers are already offset to the tile's (0,0) element. */
typedef struct cnn_gemm_tile {
    float *c;
    size_t rs_c, cs_c;   /* strides of tile rows (i) and columns (j) in C */
    float alpha, beta;   /* beta == 0: C is not read */
    const float *bias;   /* NULL, or bias at i = 0 (bias_on_j == 0) or at j = 0 */
    int bias_on_j;
    const float *res;    /* NULL, or the residual at (0,0) */
    size_t rs_r, cs_r;
    int relu;
} cnn_gemm_tile;

/* acc is mr x nr inside a row-major buffer with leading dimension ld; the portable store of any
 * tile (edges, transposed orientation). */
void cnn_gemm_store_tile(const float *acc, size_t ld, size_t mr, size_t nr, const cnn_gemm_tile *t);

/* A microkernel: acc(MR x NR) = sum_k a[k*MR + i] * b[k*bs + j] over kc steps, then stores the
 * valid mr x nr corner through t. a is a zero-padded packed panel; b is a packed panel (bs = NR,
 * zero-padded) or, for a full-width panel, rows of B read in place (bs = B's row stride). */
typedef void (*cnn_gemm_kernel_fn)(size_t kc, const float *a, const float *b, size_t bs, size_t mr,
                                   size_t nr, const cnn_gemm_tile *t);

/* The same product with a full MR-row panel of A read in place: A(i, k) at a[i*lda + k] (A
 * contiguous along k), i < MR. Spares the packing pass over an A that each B panel would use
 * only a few times (see DIRECT_A in gemm.c). */
typedef void (*cnn_gemm_kernel_a_fn)(size_t kc, const float *a, size_t lda, const float *b, size_t bs, size_t nr,
                                     const cnn_gemm_tile *t);

/* nr <= 2 columns against a full MR-row panel of A read in place (A(i, k) at a[i*lda + k]), B's
 * columns contiguous: B(k, c) at bcol[c*kc + k]. */
typedef void (*cnn_gemm_cols_a_fn)(size_t kc, const float *a, size_t lda, const float *bcol, size_t nr,
                                   const cnn_gemm_tile *t);

/* Packs an mr x kc block of X (element (i,k) at x[i*rs + k*ks]) into a kc x MR panel, rows >= mr
 * zeroed. Used for A panels (width MR) and, with (rs, ks) = B's (column, row) strides, for B panels
 * (width NR). */
typedef void (*cnn_gemm_pack_fn)(const float *x, size_t rs, size_t ks, size_t mr, size_t kc,
                                 size_t width, float *dst);

/* Dot-form GEMV: y[i] = sum_k a[i*lda + k] * x[k] for i < m (x contiguous). */
typedef void (*cnn_gemv_dot_fn)(size_t m, size_t k, const float *a, size_t lda, const float *x,
                                float *y);
/* Axpy-form GEMV: y[j] = sum_k x[k] * b[k*ldb + j] for j < n. */
typedef void (*cnn_gemv_axpy_fn)(size_t n, size_t k, const float *b, size_t ldb, const float *x,
                                 float *y);

/* Few-column GEMM in dot form: out[r*8 + j] = sum_k x[r*ldx + k] * y[j*ys + k] for r < rows,
 * j < 8 (y holds 8 rows ys apart, zero-padded). Streams x once: a 1000 x 4096 weight matrix
 * times a batch of 8 is bound by reading the matrix, not by FMAs. */
typedef void (*cnn_gemm_dot8_fn)(size_t rows, size_t k_len, const float *x, size_t ldx, const float *y,
                                 size_t ys, float *out);

/* One row of the family's table: a microkernel and the packing and GEMV routines of one ISA. */
typedef struct cnn_gemm_variant {
    cnn_isa isa;
    size_t mr, nr;   /* register tile */
    size_t n_quantum;/* granularity the kernel pads N to (narrower tail kernels) */
    size_t direct_b_max_rows; /* a row-major B is read in place, unpacked, up to this many rows
                                 of A (0: always packed); see DIRECT_B in gemm.c */
    cnn_gemm_kernel_fn kernel;
    cnn_gemm_kernel_fn narrow; /* NULL, or the kernel for edge tiles of nr <= narrow_max columns */
    size_t narrow_max;
    cnn_gemm_kernel_a_fn kernel_a; /* NULL, or kernel and narrow reading full A panels in place */
    cnn_gemm_kernel_a_fn narrow_a;
    cnn_gemm_cols_a_fn cols_a;     /* NULL, or 1-2 columns against a full A panel in place */
    cnn_gemm_pack_fn pack;
    cnn_gemv_dot_fn gemv_dot;
    cnn_gemv_axpy_fn gemv_axpy;
    cnn_gemm_dot8_fn dot8;
} cnn_gemm_variant;

extern const cnn_gemm_variant cnn_gemm_variant_generic;
#if CNN_X86
extern const cnn_gemm_variant cnn_gemm_variant_avx2;
extern const cnn_gemm_variant cnn_gemm_variant_avx512;
#endif

/* Implicit B: fills B'(k0 + k, j0 + j) at panel[k * width + j] for k < kc, j < nr, and zeros for
 * nr <= j < width (the microkernel reads whole panels). */
typedef void (*cnn_gemm_b_fill_fn)(const void *ctx, size_t k0, size_t kc, size_t j0, size_t nr, size_t width,
                                   float *panel);

/* C (M x N, ldc) = packed A (M x K) * B, then the epilogue, where B is never stored: each thread
 * fills one kc x NR panel at a time through `fill` (its own workspace, L1-sized) and runs every A
 * panel over it right away. An im2col convolution with a few output channels uses it to build its
 * column matrix panel by panel instead of writing it out and reading it back. C is overwritten
 * (beta 0). CNN_ERR_INVALID_ARGUMENT, with nothing written, when packed_a was packed for other
 * sizes or another ISA. */
/* 1 when packed_a holds an M x K operand packed for the active ISA (cnn_sgemm_packed_a_fill_b and
 * cnn_sgemm_packed_a would accept it), else 0. */
int cnn_sgemm_packed_a_usable(const void *packed_a, size_t M, size_t K);
cnn_status cnn_sgemm_packed_a_fill_b(const void *packed_a, size_t M, size_t N, size_t K, cnn_gemm_b_fill_fn fill,
                                     const void *ctx, float *C, size_t ldc, const cnn_epilogue *ep);

/* Packing loop shared by every ISA (compiled per ISA so the copy loops vectorise for it). */
#define CNN_GEMM_PACK_BODY(x, rs, ks, mr, kc, width, dst)                                          \
    do {                                                                                           \
        if ((rs) == 1 && (mr) == (width)) {                                                        \
            /* Contiguous along i: each k is one row copy. */                                      \
            for (size_t k_ = 0; k_ < (kc); k_++) {                                                 \
                const float *s_ = (x) + k_ * (ks);                                                 \
                float *d_ = (dst) + k_ * (width);                                                  \
                for (size_t i_ = 0; i_ < (width); i_++) d_[i_] = s_[i_];                           \
            }                                                                                      \
        } else if ((ks) == 1) {                                                                    \
            /* Contiguous along k: transpose, a few rows at a time to keep writes local. */        \
            for (size_t i_ = 0; i_ < (mr); i_++) {                                                 \
                const float *s_ = (x) + i_ * (rs);                                                 \
                for (size_t k_ = 0; k_ < (kc); k_++) (dst)[k_ * (width) + i_] = s_[k_];            \
            }                                                                                      \
            for (size_t i_ = (mr); i_ < (width); i_++)                                             \
                for (size_t k_ = 0; k_ < (kc); k_++) (dst)[k_ * (width) + i_] = 0.0f;              \
        } else {                                                                                   \
            for (size_t k_ = 0; k_ < (kc); k_++) {                                                 \
                float *d_ = (dst) + k_ * (width);                                                  \
                for (size_t i_ = 0; i_ < (mr); i_++) d_[i_] = (x)[i_ * (rs) + k_ * (ks)];         \
                for (size_t i_ = (mr); i_ < (width); i_++) d_[i_] = 0.0f;                          \
            }                                                                                      \
        }                                                                                          \
    } while (0)

#endif
