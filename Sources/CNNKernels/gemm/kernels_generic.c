/* Portable SGEMM microkernel, packing and GEMV (also the arm64 path), and the common tile store. */
#include "gemm_internal.h"

void cnn_gemm_store_tile(const float *acc, size_t ld, size_t mr, size_t nr, const cnn_gemm_tile *t) {
    // acc is (mr, nr) with leading dimension ld; y = alpha*acc + beta*C + bias + residual, ReLU
    for (size_t i = 0; i < mr; i++) {
        for (size_t j = 0; j < nr; j++) {
            float *c = t->c + i * t->rs_c + j * t->cs_c;
            float v = t->alpha * acc[i * ld + j];
            if (t->beta != 0.0f) v += t->beta * *c;
            if (t->bias) v += t->bias_on_j ? t->bias[j] : t->bias[i];
            if (t->res) v += t->res[i * t->rs_r + j * t->cs_r];
            if (t->relu) v = v < 0.0f ? 0.0f : v; /* NaN passes through, as in the reference */
            *c = v;
        }
    }
}

/* 6 x 8: 12 accumulators of 4 lanes fit the 16 SSE registers of baseline x86-64 (and leave room
 * on arm64's 32 NEON registers); plain loops that clang and gcc vectorise. */
#define GENERIC_MR 6
#define GENERIC_NR 8

static void cnn_f32_gemm_6x8__generic(size_t kc, const float *a, const float *b, size_t bs, size_t mr,
                                      size_t nr, const cnn_gemm_tile *t) {
    // a is (kc, 6) packed, b is (kc, 8) packed; tile is (mr <= 6, nr <= 8)
    float acc[GENERIC_MR][GENERIC_NR] = {{0}};
    for (size_t k = 0; k < kc; k++) {
        const float *ak = a + k * GENERIC_MR, *bk = b + k * bs;
        for (int i = 0; i < GENERIC_MR; i++)
            for (int j = 0; j < GENERIC_NR; j++) acc[i][j] += ak[i] * bk[j];
    }
    cnn_gemm_store_tile(&acc[0][0], GENERIC_NR, mr, nr, t);
}

static void cnn_f32_gemm_pack__generic(const float *x, size_t rs, size_t ks, size_t mr, size_t kc,
                                       size_t width, float *dst) {
    CNN_GEMM_PACK_BODY(x, rs, ks, mr, kc, width, dst);
}

static void cnn_f32_gemv_dot__generic(size_t m, size_t k, const float *a, size_t lda, const float *x,
                                      float *y) {
    // a is (m, k) with leading dimension lda, x is (k), y is (m)
    for (size_t i = 0; i < m; i++) {
        const float *ai = a + i * lda;
        float s[8] = {0};  /* 8 independent lanes: vectorisable without reassociation */
        size_t p = 0;
        for (; p + 8 <= k; p += 8)
            for (int l = 0; l < 8; l++) s[l] += ai[p + l] * x[p + l];
        float tail = 0;
        for (; p < k; p++) tail += ai[p] * x[p];
        y[i] = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + tail;
    }
}

static void cnn_f32_gemv_axpy__generic(size_t n, size_t k, const float *b, size_t ldb, const float *x,
                                       float *y) {
    // b is (k, n) with leading dimension ldb, x is (k), y is (n)
    for (size_t j = 0; j < n; j++) y[j] = 0;
    for (size_t p = 0; p < k; p++) {
        const float xp = x[p], *bp = b + p * ldb;
        for (size_t j = 0; j < n; j++) y[j] += xp * bp[j];
    }
}

static void cnn_f32_gemm_dot8__generic(size_t rows, size_t k_len, const float *x, size_t ldx,
                                       const float *y, size_t ys, float *out) {
    // x is (rows, k_len) with leading dimension ldx, y is (8, k_len) with row stride ys, out is (rows, 8)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        for (int j = 0; j < 8; j++) {
            const float *yj = y + j * ys;
            float s[8] = {0};
            size_t p = 0;
            for (; p + 8 <= k_len; p += 8)
                for (int l = 0; l < 8; l++) s[l] += xr[p + l] * yj[p + l];
            float tail = 0;
            for (; p < k_len; p++) tail += xr[p] * yj[p];
            out[r * 8 + j] = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + tail;
        }
    }
}

const cnn_gemm_variant cnn_gemm_variant_generic = {
    .isa = CNN_ISA_GENERIC,
    .mr = GENERIC_MR,
    .nr = GENERIC_NR,
    .n_quantum = GENERIC_NR,
    .kernel = cnn_f32_gemm_6x8__generic,
    .pack = cnn_f32_gemm_pack__generic,
    .gemv_dot = cnn_f32_gemv_dot__generic,
    .gemv_axpy = cnn_f32_gemv_axpy__generic,
    .dot8 = cnn_f32_gemm_dot8__generic,
};
