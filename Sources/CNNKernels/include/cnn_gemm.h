/* SGEMM: C = alpha * op(A) * op(B) + beta * C, row-major, with an optional fused epilogue. */
#ifndef CNN_GEMM_H
#define CNN_GEMM_H

#include "cnn_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/** cnn_workspace slots the SGEMM uses for its packing buffers (and a strided GEMV vector). A caller
 *  that holds workspace memory across a cnn_sgemm* call (e.g. an im2col buffer) must use other slots. */
#define CNN_GEMM_WORKSPACE_SLOT_A 6
#define CNN_GEMM_WORKSPACE_SLOT_B 7

typedef enum cnn_transpose {
    CNN_NO_TRANS = 0,
    CNN_TRANS = 1,
} cnn_transpose;

/** Applied to each element of the result after alpha * op(A) * op(B) + beta * C, in this order:
 *  add bias, add residual, then ReLU: y = relu(acc + bias + residual). All fields may be 0/NULL. */
typedef struct cnn_epilogue {
    const float *bias;      /* NULL, or a vector: per row (length M) or per column (length N) */
    int bias_per_column;    /* 0: bias[i] added to row i; 1: bias[j] added to column j */
    const float *residual;  /* NULL, or an M x N matrix added element-wise */
    size_t residual_ld;     /* leading dimension of residual (>= N) */
    int relu;               /* nonzero: max(0, y) last */
} cnn_epilogue;

/**
 * C (M x N, ldc) = alpha * op(A) (M x K) * op(B) (K x N) + beta * C, then the epilogue.
 * op(A) = A (M x K, lda >= K) or A^T (A is K x M, lda >= M); likewise B (K x N, ldb >= N, or N x K).
 * beta == 0 overwrites C without reading it (NaN in C is not propagated). M, N or K == 0: no work
 * (with K == 0, C = beta * C then the epilogue; M or N == 0 touches no memory). `epilogue` may be
 * NULL. Multithreaded over blocks of M and N; packing buffers come from cnn_workspace.
 */
cnn_status cnn_sgemm(cnn_transpose trans_a, cnn_transpose trans_b, size_t M, size_t N, size_t K,
                     float alpha, const float *A, size_t lda, const float *B, size_t ldb, float beta,
                     float *C, size_t ldc, const cnn_epilogue *epilogue);

/** Reference SGEMM: the same contract, plain loops, double accumulation, single thread. */
cnn_status cnn_sgemm_reference(cnn_transpose trans_a, cnn_transpose trans_b, size_t M, size_t N,
                               size_t K, float alpha, const float *A, size_t lda, const float *B,
                               size_t ldb, float beta, float *C, size_t ldc,
                               const cnn_epilogue *epilogue);

/**
 * Pre-packed left operand: a layer's weights (convolution: K x CRS; linear: out x in) packed once
 * into the microkernel's panel order of the ISA active at packing time, then reused on every call.
 * The buffer records M, K and the ISA; using it after cnn_isa_set changed the ISA returns
 * CNN_ERR_INVALID_ARGUMENT (repack). Bytes needed for op(A) of M x K:
 */
size_t cnn_sgemm_packed_a_size(size_t M, size_t K);
cnn_status cnn_sgemm_pack_a(cnn_transpose trans_a, size_t M, size_t K, const float *A, size_t lda,
                            void *packed);
/** C = alpha * packedA * op(B) + beta * C, then the epilogue. */
cnn_status cnn_sgemm_packed_a(const void *packed_a, cnn_transpose trans_b, size_t M, size_t N,
                              size_t K, float alpha, const float *B, size_t ldb, float beta,
                              float *C, size_t ldc, const cnn_epilogue *epilogue);

/** Pre-packed right operand (e.g. a linear layer's weights used as op(B) = W^T). */
size_t cnn_sgemm_packed_b_size(size_t K, size_t N);
cnn_status cnn_sgemm_pack_b(cnn_transpose trans_b, size_t K, size_t N, const float *B, size_t ldb,
                            void *packed);
cnn_status cnn_sgemm_packed_b(cnn_transpose trans_a, size_t M, size_t N, size_t K, float alpha,
                              const float *A, size_t lda, const void *packed_b, float beta,
                              float *C, size_t ldc, const cnn_epilogue *epilogue);

#ifdef __cplusplus
}
#endif
#endif
