/* Reference SGEMM: the definition every fast path is tested against. Double accumulation. */
#include "../internal.h"

#include <math.h>

cnn_status cnn_sgemm_reference(cnn_transpose ta, cnn_transpose tb, size_t M, size_t N, size_t K,
                               float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                               float beta, float *C, size_t ldc, const cnn_epilogue *ep) {
    if (M == 0 || N == 0) return CNN_OK;
    if (!C || ldc < N) return CNN_ERR_INVALID_ARGUMENT;
    if (K > 0) {
        if (!A || !B) return CNN_ERR_INVALID_ARGUMENT;
        if (lda < (ta == CNN_NO_TRANS ? K : M) || ldb < (tb == CNN_NO_TRANS ? N : K))
            return CNN_ERR_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < M; i++) {
        for (size_t j = 0; j < N; j++) {
            double acc = 0;
            for (size_t k = 0; k < K; k++) {
                const double a = ta == CNN_NO_TRANS ? A[i * lda + k] : A[k * lda + i];
                const double b = tb == CNN_NO_TRANS ? B[k * ldb + j] : B[j * ldb + k];
                acc += a * b;
            }
            double v = (double)alpha * acc;
            if (beta != 0.0f) v += (double)beta * C[i * ldc + j];
            if (ep) {
                if (ep->bias) v += ep->bias_per_column ? ep->bias[j] : ep->bias[i];
                if (ep->residual) v += ep->residual[i * ep->residual_ld + j];
                if (ep->relu && v < 0) v = 0; /* NaN passes through, as in PyTorch */
            }
            C[i * ldc + j] = (float)v;
        }
    }
    return CNN_OK;
}
