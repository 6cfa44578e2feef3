/* Temporary SGEMM entry points over the reference (replaced by the packed, blocked driver). */
#include "../internal.h"
#include <string.h>

cnn_status cnn_sgemm(cnn_transpose ta, cnn_transpose tb, size_t M, size_t N, size_t K, float alpha,
                     const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                     size_t ldc, const cnn_epilogue *ep) {
    return cnn_sgemm_reference(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep);
}
