/* Batch normalisation over (N, C, HW), PyTorch's BatchNorm2d, and its folding into a convolution.
 *
 * Statistics: every (n, c) plane contributes the sums of (x - K_c) and (x - K_c)^2 in double, with
 * the shift K_c = x[0, c, 0] (a sample of the channel, so the shifted sums stay near the scale of
 * the spread and the variance does not cancel catastrophically); the planes' partial sums are
 * combined per channel in a fixed order, so results do not depend on the thread count.
 * Both passes (statistics, normalisation) are parallel over the N*C planes.
 *
 * Every per-plane microkernel (moments, affine normalisation, backward sums, backward dx) has
 * AVX-512 and AVX2 variants, chosen from one table (bn_table); the plain loops are the generic
 * variant and the reference. Only the per-channel combinations (C values) and cnn_batchnorm_fold
 * (a one-off weight rewrite) stay scalar. */
#include "../tensor/layers_internal.h"

#include <math.h>
#include <stdlib.h>

#if CNN_X86
#include <immintrin.h>
#endif

/* ---------------------------------------------------------------- microkernels */

/* Sums of d = x - K and d^2 over n floats, in double. Eight lanes keep the loop vectorisable
 * without reassociation flags. */
static void cnn_f32_bn_moments__generic(int64_t n, const float *CNN_RESTRICT x, float K, double *s1,
                                        double *s2) {
    double a1[8] = {0}, a2[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) {
            const double d = (double)x[i + j] - (double)K;
            a1[j] += d;
            a2[j] += d * d;
        }
    }
    double t1 = 0, t2 = 0;
    for (; i < n; i++) {
        const double d = (double)x[i] - (double)K;
        t1 += d;
        t2 += d * d;
    }
    for (int j = 0; j < 8; j++) { t1 += a1[j]; t2 += a2[j]; }
    *s1 = t1;
    *s2 = t2;
}

/* y = (x - mean) * scale + shift over n floats. */
static void cnn_f32_bn_affine__generic(int64_t n, const float *CNN_RESTRICT x, float mean, float scale,
                                       float shift, float *CNN_RESTRICT y) {
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] - mean) * scale + shift;
}

#if CNN_X86
CNN_TARGET_AVX512 static void cnn_f32_bn_moments__avx512(int64_t n, const float *x, float K, double *s1,
                                                         double *s2) {
    const __m512d k = _mm512_set1_pd((double)K);
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    __m512d b0 = _mm512_setzero_pd(), b1 = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        const __m512d lo = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v)), k);
        const __m512d hi = _mm512_sub_pd(
            _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))), k);
        a0 = _mm512_add_pd(a0, lo);
        a1 = _mm512_add_pd(a1, hi);
        b0 = _mm512_fmadd_pd(lo, lo, b0);
        b1 = _mm512_fmadd_pd(hi, hi, b1);
    }
    if (i < n) { /* masked tail: masked-off lanes load 0 and are excluded from the sums */
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        const __m512d lo = _mm512_maskz_sub_pd((__mmask8)m, _mm512_cvtps_pd(_mm512_castps512_ps256(v)), k);
        const __m512d hi = _mm512_maskz_sub_pd((__mmask8)(m >> 8),
            _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))), k);
        a0 = _mm512_add_pd(a0, lo);
        a1 = _mm512_add_pd(a1, hi);
        b0 = _mm512_fmadd_pd(lo, lo, b0);
        b1 = _mm512_fmadd_pd(hi, hi, b1);
    }
    *s1 = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
    *s2 = _mm512_reduce_add_pd(_mm512_add_pd(b0, b1));
}

CNN_TARGET_AVX512 static void cnn_f32_bn_affine__avx512(int64_t n, const float *x, float mean,
                                                        float scale, float shift, float *y) {
    const __m512 m = _mm512_set1_ps(mean), s = _mm512_set1_ps(scale), b = _mm512_set1_ps(shift);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(_mm512_sub_ps(v0, m), s, b));
        _mm512_storeu_ps(y + i + 16, _mm512_fmadd_ps(_mm512_sub_ps(v1, m), s, b));
    }
    for (; i < n; i += 16) {
        const int64_t r = n - i;
        const __mmask16 k = r >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << r) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_fmadd_ps(_mm512_sub_ps(v, m), s, b));
    }
}

CNN_TARGET_AVX2 static void cnn_f32_bn_moments__avx2(int64_t n, const float *x, float K, double *s1,
                                                     double *s2) {
    const __m256d k = _mm256_set1_pd((double)K);
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    __m256d b0 = _mm256_setzero_pd(), b1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256d lo = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), k);
        const __m256d hi = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), k);
        a0 = _mm256_add_pd(a0, lo);
        a1 = _mm256_add_pd(a1, hi);
        b0 = _mm256_fmadd_pd(lo, lo, b0);
        b1 = _mm256_fmadd_pd(hi, hi, b1);
    }
    double t[4], u[4];
    _mm256_storeu_pd(t, _mm256_add_pd(a0, a1));
    _mm256_storeu_pd(u, _mm256_add_pd(b0, b1));
    double t1 = (t[0] + t[1]) + (t[2] + t[3]), t2 = (u[0] + u[1]) + (u[2] + u[3]);
    for (; i < n; i++) {
        const double d = (double)x[i] - (double)K;
        t1 += d;
        t2 += d * d;
    }
    *s1 = t1;
    *s2 = t2;
}

CNN_TARGET_AVX2 static void cnn_f32_bn_affine__avx2(int64_t n, const float *x, float mean, float scale,
                                                    float shift, float *y) {
    const __m256 m = _mm256_set1_ps(mean), s = _mm256_set1_ps(scale), b = _mm256_set1_ps(shift);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(_mm256_sub_ps(v0, m), s, b));
        _mm256_storeu_ps(y + i + 8, _mm256_fmadd_ps(_mm256_sub_ps(v1, m), s, b));
    }
    for (; i < n; i++) y[i] = (x[i] - mean) * scale + shift;
}
#endif

/* Sums of dy and dy * (x - mean) over one plane, in double over eight lanes (element i into lane
 * i % 8, then the tail, then the lanes in order). One body for every variant: the generic variant
 * compiles it for the baseline ISA, the AVX2 / AVX-512 stamps in ymm / zmm registers with FMA, so
 * the sums agree across ISAs to the rounding of the fused multiply-add. */
CNN_LAYERS_INLINE void cnn_f32_bn_backward_sums_body(int64_t n, const float *CNN_RESTRICT x,
                                                     const float *CNN_RESTRICT dy, float mean,
                                                     double *sdy, double *sdyx) {
    double a1[8] = {0}, a2[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) {
            const double g = (double)dy[i + j];
            a1[j] += g;
            a2[j] += g * ((double)x[i + j] - (double)mean);
        }
    }
    double t1 = 0, t2 = 0;
    for (; i < n; i++) {
        t1 += (double)dy[i];
        t2 += (double)dy[i] * ((double)x[i] - (double)mean);
    }
    for (int j = 0; j < 8; j++) { t1 += a1[j]; t2 += a2[j]; }
    *sdy = t1;
    *sdyx = t2;
}

/* dx = k1 * dy + k2 * (x - mean) + k3 over one plane (the backward formula below). */
CNN_LAYERS_INLINE void cnn_f32_bn_backward_dx_body(int64_t n, const float *CNN_RESTRICT x,
                                                   const float *CNN_RESTRICT dy, float mean, float k1,
                                                   float k2, float k3, float *CNN_RESTRICT dx) {
    for (int64_t j = 0; j < n; j++) dx[j] = k1 * dy[j] + k2 * (x[j] - mean) + k3;
}

#define BN_SUMS_PARAMS (int64_t n, const float *x, const float *dy, float mean, double *sdy, double *sdyx)
#define BN_SUMS_ARGS (n, x, dy, mean, sdy, sdyx)
#define BN_DX_PARAMS \
    (int64_t n, const float *x, const float *dy, float mean, float k1, float k2, float k3, float *dx)
#define BN_DX_ARGS (n, x, dy, mean, k1, k2, k3, dx)
static void cnn_f32_bn_backward_sums__generic BN_SUMS_PARAMS { cnn_f32_bn_backward_sums_body BN_SUMS_ARGS; }
static void cnn_f32_bn_backward_dx__generic BN_DX_PARAMS { cnn_f32_bn_backward_dx_body BN_DX_ARGS; }
CNN_LAYERS_STAMP_X86(cnn_f32_bn_backward_sums, BN_SUMS_PARAMS, BN_SUMS_ARGS)
CNN_LAYERS_STAMP_X86(cnn_f32_bn_backward_dx, BN_DX_PARAMS, BN_DX_ARGS)

/* The family's table, indexed by cnn_layers_isa_index(): every per-plane microkernel. */
typedef struct bn_kernels {
    void (*moments)(int64_t, const float *, float, double *, double *);
    void (*affine)(int64_t, const float *, float, float, float, float *);
    void (*backward_sums) BN_SUMS_PARAMS;
    void (*backward_dx) BN_DX_PARAMS;
} bn_kernels;

#define BN_KERNELS(ISA)                                                                             \
    {cnn_f32_bn_moments__##ISA, cnn_f32_bn_affine__##ISA, cnn_f32_bn_backward_sums__##ISA,          \
     cnn_f32_bn_backward_dx__##ISA}
static const bn_kernels bn_table[] = {
    BN_KERNELS(generic),
#if CNN_X86
    BN_KERNELS(avx2),
    BN_KERNELS(avx512),
#endif
};

static const bn_kernels *bn_select(void) { return &bn_table[cnn_layers_isa_index()]; }

/* ---------------------------------------------------------------- operators */

static int bn_sizes_ok(int64_t N, int64_t C, int64_t HW) { return N >= 0 && C >= 0 && HW >= 0; }

// x and y are (N, C, HW); gamma, beta, running_*, save_* are (C)
cnn_status cnn_batchnorm2d_forward_train(int64_t N, int64_t C, int64_t HW, const float *x,
                                         const float *gamma, const float *beta, float eps,
                                         float momentum, float *running_mean, float *running_var,
                                         float *save_mean, float *save_invstd, float *y) {
    if (!bn_sizes_ok(N, C, HW) || !(eps >= 0.0f)) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t M = N * HW, planes = N * C;
    if (C == 0 || M == 0) return CNN_OK; /* nothing to normalise; statistics untouched */
    /* PyTorch: "Expected more than 1 value per channel when training". */
    if (M == 1) return CNN_ERR_INVALID_ARGUMENT;
    if (!x || !y || !save_mean || !save_invstd) return CNN_ERR_INVALID_ARGUMENT;

    double *part = cnn_aligned_alloc((size_t)planes * 2 * sizeof(double));
    if (!part) return CNN_ERR_OUT_OF_MEMORY;
    const bn_kernels *kern = bn_select();
    const int nt = cnn_threads_for(planes);

    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < planes; i++) {
        const int64_t c = i % C;
        kern->moments(HW, x + i * HW, x[c * HW], &part[2 * i], &part[2 * i + 1]);
    }
    for (int64_t c = 0; c < C; c++) {
        double s1 = 0, s2 = 0;
        for (int64_t n = 0; n < N; n++) {
            s1 += part[2 * (n * C + c)];
            s2 += part[2 * (n * C + c) + 1];
        }
        const double dm = s1 / (double)M;
        double var = s2 / (double)M - dm * dm; /* biased */
        if (var < 0) var = 0;
        const double mean = (double)x[c * HW] + dm;
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)(1.0 / sqrt(var + (double)eps));
        if (running_mean) running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
        if (running_var)
            running_var[c] = (float)((1.0 - momentum) * running_var[c] +
                                     momentum * var * (double)M / (double)(M - 1));
    }
    cnn_aligned_free(part);

    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < planes; i++) {
        const int64_t c = i % C;
        const float g = gamma ? gamma[c] : 1.0f, b = beta ? beta[c] : 0.0f;
        kern->affine(HW, x + i * HW, save_mean[c], g * save_invstd[c], b, y + i * HW);
    }
    return CNN_OK;
}

// x and y are (N, C, HW); gamma, beta, running_* are (C)
cnn_status cnn_batchnorm2d_forward_inference(int64_t N, int64_t C, int64_t HW, const float *x,
                                             const float *gamma, const float *beta,
                                             const float *running_mean, const float *running_var,
                                             float eps, float *y) {
    if (!bn_sizes_ok(N, C, HW) || !(eps >= 0.0f)) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t planes = N * C;
    if (planes == 0 || HW == 0) return CNN_OK;
    if (!x || !y || !running_mean || !running_var) return CNN_ERR_INVALID_ARGUMENT;
    const bn_kernels *kern = bn_select();
    const int nt = cnn_threads_for(planes);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < planes; i++) {
        const int64_t c = i % C;
        const float g = gamma ? gamma[c] : 1.0f, b = beta ? beta[c] : 0.0f;
        const float scale = (float)((double)g / sqrt((double)running_var[c] + (double)eps));
        kern->affine(HW, x + i * HW, running_mean[c], scale, b, y + i * HW);
    }
    return CNN_OK;
}

/* With xhat = (x - mean) * invstd and M = N*HW:
 *   dbeta = sum dy,  dgamma = sum dy * xhat,
 *   dx = gamma * invstd * (dy - dbeta / M - xhat * dgamma / M)
 *      = k1 * dy + k2 * (x - mean) + k3,
 *   k1 = gamma * invstd, k2 = -gamma * invstd^3 * sum(dy * (x - mean)) / M, k3 = -k1 * sum(dy) / M. */
// x, dy and dx are (N, C, HW); gamma, save_*, dgamma, dbeta are (C)
cnn_status cnn_batchnorm2d_backward(int64_t N, int64_t C, int64_t HW, const float *x,
                                    const float *dy, const float *gamma, const float *save_mean,
                                    const float *save_invstd, float *dx, float *dgamma,
                                    float *dbeta) {
    if (!bn_sizes_ok(N, C, HW)) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t M = N * HW, planes = N * C;
    if (C == 0 || M == 0) return CNN_OK;
    if (!x || !dy || !dx || !save_mean || !save_invstd) return CNN_ERR_INVALID_ARGUMENT;

    double *part = cnn_aligned_alloc((size_t)planes * 2 * sizeof(double));
    float *coef = cnn_aligned_alloc((size_t)C * 3 * sizeof(float));
    if (!part || !coef) {
        cnn_aligned_free(part);
        cnn_aligned_free(coef);
        return CNN_ERR_OUT_OF_MEMORY;
    }
    const bn_kernels *kern = bn_select();
    const int nt = cnn_threads_for(planes);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < planes; i++) {
        const int64_t c = i % C;
        kern->backward_sums(HW, x + i * HW, dy + i * HW, save_mean[c], &part[2 * i], &part[2 * i + 1]);
    }
    for (int64_t c = 0; c < C; c++) {
        double sdy = 0, sdyx = 0;
        for (int64_t n = 0; n < N; n++) {
            sdy += part[2 * (n * C + c)];
            sdyx += part[2 * (n * C + c) + 1];
        }
        const double is = (double)save_invstd[c], g = gamma ? (double)gamma[c] : 1.0;
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)(sdyx * is);
        const double k1 = g * is;
        coef[3 * c] = (float)k1;
        coef[3 * c + 1] = (float)(-g * is * is * is * sdyx / (double)M);
        coef[3 * c + 2] = (float)(-k1 * sdy / (double)M);
    }
    cnn_aligned_free(part);

    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < planes; i++) {
        const int64_t c = i % C;
        kern->backward_dx(HW, x + i * HW, dy + i * HW, save_mean[c], coef[3 * c], coef[3 * c + 1],
                          coef[3 * c + 2], dx + i * HW);
    }
    cnn_aligned_free(coef);
    return CNN_OK;
}

/* ---------------------------------------------------------------- synchronised batch norm */

// x is (N, C, HW); mean and m2 are (C)
cnn_status cnn_batchnorm2d_moments(int64_t N, int64_t C, int64_t HW, const float *x, double *mean,
                                   double *m2) {
    if (!bn_sizes_ok(N, C, HW)) return CNN_ERR_INVALID_ARGUMENT;
    if (C == 0) return CNN_OK;
    if (!mean || !m2) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t M = N * HW, planes = N * C;
    if (M == 0) {
        for (int64_t c = 0; c < C; c++) mean[c] = m2[c] = 0;
        return CNN_OK;
    }
    if (!x) return CNN_ERR_INVALID_ARGUMENT;
    double *part = cnn_aligned_alloc((size_t)planes * 2 * sizeof(double));
    if (!part) return CNN_ERR_OUT_OF_MEMORY;
    const bn_kernels *kern = bn_select();
    const int nt = cnn_threads_for(planes);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < planes; i++) {
        const int64_t c = i % C;
        kern->moments(HW, x + i * HW, x[c * HW], &part[2 * i], &part[2 * i + 1]);
    }
    for (int64_t c = 0; c < C; c++) {
        double s1 = 0, s2 = 0;
        for (int64_t n = 0; n < N; n++) {
            s1 += part[2 * (n * C + c)];
            s2 += part[2 * (n * C + c) + 1];
        }
        /* With d = x - K: mean = K + s1/M, sum (x - mean)^2 = s2 - s1^2/M. */
        const double v = s2 - s1 * s1 / (double)M;
        mean[c] = (double)x[c * HW] + s1 / (double)M;
        m2[c] = v > 0 ? v : 0;
    }
    cnn_aligned_free(part);
    return CNN_OK;
}

// x and y are (N, C, HW); gamma, beta, mean, invstd are (C)
cnn_status cnn_batchnorm2d_normalize(int64_t N, int64_t C, int64_t HW, const float *x,
                                     const float *gamma, const float *beta, const float *mean,
                                     const float *invstd, float *y) {
    if (!bn_sizes_ok(N, C, HW)) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t planes = N * C;
    if (planes == 0 || HW == 0) return CNN_OK;
    if (!x || !y || !mean || !invstd) return CNN_ERR_INVALID_ARGUMENT;
    const bn_kernels *kern = bn_select();
    const int nt = cnn_threads_for(planes);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < planes; i++) {
        const int64_t c = i % C;
        const float g = gamma ? gamma[c] : 1.0f, b = beta ? beta[c] : 0.0f;
        kern->affine(HW, x + i * HW, mean[c], g * invstd[c], b, y + i * HW);
    }
    return CNN_OK;
}

// x and dy are (N, C, HW); mean, sum_dy, sum_dy_xmu are (C)
cnn_status cnn_batchnorm2d_backward_reduce(int64_t N, int64_t C, int64_t HW, const float *x,
                                           const float *dy, const float *mean, double *sum_dy,
                                           double *sum_dy_xmu) {
    if (!bn_sizes_ok(N, C, HW)) return CNN_ERR_INVALID_ARGUMENT;
    if (C == 0) return CNN_OK;
    if (!sum_dy || !sum_dy_xmu) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t M = N * HW, planes = N * C;
    if (M == 0) {
        for (int64_t c = 0; c < C; c++) sum_dy[c] = sum_dy_xmu[c] = 0;
        return CNN_OK;
    }
    if (!x || !dy || !mean) return CNN_ERR_INVALID_ARGUMENT;
    double *part = cnn_aligned_alloc((size_t)planes * 2 * sizeof(double));
    if (!part) return CNN_ERR_OUT_OF_MEMORY;
    const bn_kernels *kern = bn_select();
    const int nt = cnn_threads_for(planes);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < planes; i++) {
        const int64_t c = i % C;
        kern->backward_sums(HW, x + i * HW, dy + i * HW, mean[c], &part[2 * i], &part[2 * i + 1]);
    }
    for (int64_t c = 0; c < C; c++) {
        double sdy = 0, sdyx = 0;
        for (int64_t n = 0; n < N; n++) {
            sdy += part[2 * (n * C + c)];
            sdyx += part[2 * (n * C + c) + 1];
        }
        sum_dy[c] = sdy;
        sum_dy_xmu[c] = sdyx;
    }
    cnn_aligned_free(part);
    return CNN_OK;
}

/* The backward formula of cnn_batchnorm2d_backward with the sums taken over every process:
 *   dx = k1 * dy + k2 * (x - mean) + k3,  k1 = gamma * invstd,
 *   k2 = -gamma * invstd^3 * sum_dy_xmu / count,  k3 = -k1 * sum_dy / count. */
// x, dy and dx are (N, C, HW); gamma, mean, invstd, sum_dy, sum_dy_xmu are (C)
cnn_status cnn_batchnorm2d_backward_elemt(int64_t N, int64_t C, int64_t HW, const float *x,
                                          const float *dy, const float *gamma, const float *mean,
                                          const float *invstd, const double *sum_dy,
                                          const double *sum_dy_xmu, double count, float *dx) {
    if (!bn_sizes_ok(N, C, HW) || !(count > 0)) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t planes = N * C;
    if (planes == 0 || HW == 0) return CNN_OK;
    if (!x || !dy || !dx || !mean || !invstd || !sum_dy || !sum_dy_xmu) return CNN_ERR_INVALID_ARGUMENT;
    float *coef = cnn_aligned_alloc((size_t)C * 3 * sizeof(float));
    if (!coef) return CNN_ERR_OUT_OF_MEMORY;
    for (int64_t c = 0; c < C; c++) {
        const double is = (double)invstd[c], g = gamma ? (double)gamma[c] : 1.0;
        const double k1 = g * is;
        coef[3 * c] = (float)k1;
        coef[3 * c + 1] = (float)(-g * is * is * is * sum_dy_xmu[c] / count);
        coef[3 * c + 2] = (float)(-k1 * sum_dy[c] / count);
    }
    const bn_kernels *kern = bn_select();
    const int nt = cnn_threads_for(planes);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < planes; i++) {
        const int64_t c = i % C;
        kern->backward_dx(HW, x + i * HW, dy + i * HW, mean[c], coef[3 * c], coef[3 * c + 1],
                          coef[3 * c + 2], dx + i * HW);
    }
    cnn_aligned_free(coef);
    return CNN_OK;
}

// weight is (K, per_k), bias, gamma, beta, running_* are (K)
cnn_status cnn_batchnorm_fold(int64_t K, int64_t per_k, float *weight, float *bias,
                              const float *gamma, const float *beta, const float *running_mean,
                              const float *running_var, float eps) {
    if (K < 0 || per_k < 0 || !(eps >= 0.0f)) return CNN_ERR_INVALID_ARGUMENT;
    if (K == 0) return CNN_OK;
    if ((!weight && per_k > 0) || !bias || !running_mean || !running_var) return CNN_ERR_INVALID_ARGUMENT;
    for (int64_t k = 0; k < K; k++) {
        const double g = gamma ? gamma[k] : 1.0, b = beta ? beta[k] : 0.0;
        const double s = g / sqrt((double)running_var[k] + (double)eps);
        float *w = weight + k * per_k;
        for (int64_t j = 0; j < per_k; j++) w[j] = (float)((double)w[j] * s);
        bias[k] = (float)(((double)bias[k] - (double)running_mean[k]) * s + b);
    }
    return CNN_OK;
}
