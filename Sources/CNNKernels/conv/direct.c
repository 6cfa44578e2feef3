/* Direct convolution: valid for every shape, no column buffer. The readable fallback, and the path
 * for depthwise convolution (one input channel per group), where a GEMM would have a single row.
 *
 * Work item: one output row p of DIRECT_KB output channels of one image. The row of each channel is
 * accumulated in a small per-thread buffer, vectorised over the output width q:
 *     acc[j][q] += w[k0+j][c][r][s] * x[c][p*sh - ph + r*dh][q*sw - pw + s*dw]
 * for the q whose tap lies inside the image (padding is skipped, never read). DIRECT_KB channels
 * share each loaded input vector. The inner loops are plain C compiled three times, once per ISA
 * target, so the compiler vectorises them for AVX-512, AVX2+FMA or the baseline. */
#include "conv_internal.h"

#include <string.h>

/* 4 output channels per item: 4 FMAs per input load, while the 4 accumulator rows of a 224-wide
 * layer (3.5 KiB) still sit in L1. Chosen on this machine (2 cores AMD EPYC Zen 5, AVX-512). */
#define DIRECT_KB 4

static inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static inline int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

#define ALWAYS_INLINE inline __attribute__((always_inline))

// x is (N,C,H,W), w is (K,C/groups,R,S), y is (N,K,P,Q); item = (n, group, channel block, row p)
static ALWAYS_INLINE void direct_item(const conv_geom *g, const float *x, const float *w,
                                      const float *bias, const float *residual, int relu, float *y,
                                      int64_t item, float *CNN_RESTRICT acc) {
    const int64_t kblocks = (g->Kg + DIRECT_KB - 1) / DIRECT_KB;
    const int64_t p = item % g->P;
    int64_t t = item / g->P;
    const int64_t kb_i = t % kblocks;
    t /= kblocks;
    const int64_t grp = t % g->G, n = t / g->G;
    const int64_t k0 = grp * g->Kg + kb_i * DIRECT_KB;
    const int64_t kb = CNN_MIN(DIRECT_KB, grp * g->Kg + g->Kg - k0);
    const int64_t Q = g->Q, sw = g->sw;
    const float *xg = x + (n * g->C + grp * g->Cg) * g->H * g->W;

    memset(acc, 0, (size_t)(DIRECT_KB * Q) * sizeof(float));
    float *CNN_RESTRICT a0 = acc, *CNN_RESTRICT a1 = acc + Q, *CNN_RESTRICT a2 = acc + 2 * Q,
                        *CNN_RESTRICT a3 = acc + 3 * Q;
    const int64_t wk = g->Cg * g->R * g->S; /* weights per output channel */
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t r = 0; r < g->R; r++) {
            const int64_t h = p * g->sh - g->ph + r * g->dh;
            if (h < 0 || h >= g->H) continue;
            const float *CNN_RESTRICT xrow = xg + (c * g->H + h) * g->W;
            for (int64_t s = 0; s < g->S; s++) {
                const int64_t off = s * g->dw - g->pw;
                const int64_t lo = CNN_MAX(0, ceil_div(-off, sw));
                const int64_t hi = CNN_MIN(Q, floor_div(g->W - 1 - off, sw) + 1);
                if (hi <= lo) continue;
                const float *wcs = w + k0 * wk + (c * g->R + r) * g->S + s;
                if (kb == DIRECT_KB) {
                    const float w0 = wcs[0], w1 = wcs[wk], w2 = wcs[2 * wk], w3 = wcs[3 * wk];
                    if (sw == 1) {
                        const float *CNN_RESTRICT xs = xrow + off + lo;
                        for (int64_t q = 0; q < hi - lo; q++) {
                            const float v = xs[q];
                            a0[lo + q] += w0 * v;
                            a1[lo + q] += w1 * v;
                            a2[lo + q] += w2 * v;
                            a3[lo + q] += w3 * v;
                        }
                    } else {
                        for (int64_t q = lo; q < hi; q++) {
                            const float v = xrow[q * sw + off];
                            a0[q] += w0 * v;
                            a1[q] += w1 * v;
                            a2[q] += w2 * v;
                            a3[q] += w3 * v;
                        }
                    }
                } else {
                    /* The last block of a group, and depthwise (Kg = channel multiplier, often 1). */
                    for (int64_t j = 0; j < kb; j++) {
                        const float wj = wcs[j * wk];
                        float *CNN_RESTRICT aj = acc + j * Q;
                        if (sw == 1) {
                            for (int64_t q = lo; q < hi; q++) aj[q] += wj * xrow[q + off];
                        } else {
                            for (int64_t q = lo; q < hi; q++) aj[q] += wj * xrow[q * sw + off];
                        }
                    }
                }
            }
        }
    /* Epilogue: y = relu?(acc + bias + residual). */
    for (int64_t j = 0; j < kb; j++) {
        const int64_t o = ((n * g->K + k0 + j) * g->P + p) * Q;
        const float b = bias ? bias[k0 + j] : 0.0f;
        const float *CNN_RESTRICT aj = acc + j * Q;
        float *CNN_RESTRICT yo = y + o;
        if (residual) {
            const float *CNN_RESTRICT ro = residual + o;
            for (int64_t q = 0; q < Q; q++) yo[q] = aj[q] + b + ro[q];
        } else {
            for (int64_t q = 0; q < Q; q++) yo[q] = aj[q] + b;
        }
        if (relu)
            for (int64_t q = 0; q < Q; q++) yo[q] = yo[q] < 0.0f ? 0.0f : yo[q]; /* NaN passes */
    }
}

typedef void (*direct_fn)(const conv_geom *, const float *, const float *, const float *,
                          const float *, int, float *, int64_t, float *);

static void cnn_f32_conv_direct__generic(const conv_geom *g, const float *x, const float *w,
                                         const float *bias, const float *residual, int relu,
                                         float *y, int64_t item, float *acc) {
    direct_item(g, x, w, bias, residual, relu, y, item, acc);
}

#if CNN_X86
CNN_TARGET_AVX2 static void cnn_f32_conv_direct__avx2(const conv_geom *g, const float *x,
                                                      const float *w, const float *bias,
                                                      const float *residual, int relu, float *y,
                                                      int64_t item, float *acc) {
    direct_item(g, x, w, bias, residual, relu, y, item, acc);
}

CNN_TARGET_AVX512 static void cnn_f32_conv_direct__avx512(const conv_geom *g, const float *x,
                                                          const float *w, const float *bias,
                                                          const float *residual, int relu,
                                                          float *y, int64_t item, float *acc) {
    direct_item(g, x, w, bias, residual, relu, y, item, acc);
}
#endif

static direct_fn direct_variant(void) {
#if CNN_X86
    switch (cnn_isa_active()) {
    case CNN_ISA_AVX512: return cnn_f32_conv_direct__avx512;
    case CNN_ISA_AVX2: return cnn_f32_conv_direct__avx2;
    default: break;
    }
#endif
    return cnn_f32_conv_direct__generic;
}

static int64_t direct_items(const conv_geom *g) {
    return g->N * g->G * ((g->Kg + DIRECT_KB - 1) / DIRECT_KB) * g->P;
}

size_t cnn_conv_direct_workspace_bytes(const conv_geom *g) {
    const int64_t items = direct_items(g);
    return (size_t)cnn_threads_for(items) * (size_t)(DIRECT_KB * g->Q) * sizeof(float);
}

cnn_status cnn_conv_direct_forward(const conv_geom *g, const float *x, const float *w,
                                   const float *bias, const float *residual, int relu, float *y) {
    const int64_t items = direct_items(g);
    if (items == 0) return CNN_OK;
    const int nt = cnn_threads_for(items);
    /* One accumulator block per thread, carved from the calling thread's workspace. Rows rounded
     * to 16 floats so each thread's block starts on its own cache line. */
    const int64_t per = ((DIRECT_KB * g->Q + 15) / 16) * 16;
    float *acc = (float *)cnn_workspace(CNN_CONV_SLOT_ACC, (size_t)(nt * per) * sizeof(float));
    if (!acc) return CNN_ERR_OUT_OF_MEMORY;
    const direct_fn fn = direct_variant();
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < items; i++)
        fn(g, x, w, bias, residual, relu, y, i, acc + CNN_OMP_THREAD_NUM() * per);
    return CNN_OK;
}
