/* Private helpers of the layer kernels (pool/, norm/, activation/, loss/, tensor/). */
#ifndef CNN_LAYERS_INTERNAL_H
#define CNN_LAYERS_INTERNAL_H

#include "../internal.h"

#include <math.h>

/* A parallel for with a reduction clause, e.g. CNN_LAYERS_OMP_FOR_REDUCE(nt, max : bad). */
#if CNN_OMP
#define CNN_LAYERS_OMP_FOR_REDUCE(n, red) \
    CNN_PRAGMA(omp parallel for schedule(static) num_threads(n) if ((n) > 1) reduction(red))
#else
/* Serial: the thread count is still evaluated (not an unused variable); the loop runs once inside. */
#define CNN_LAYERS_OMP_FOR_REDUCE(n, red) for (int cnn_serial_once_ = ((void)(n), 1); cnn_serial_once_; cnn_serial_once_ = 0)
#endif

/* Elementwise kernels split flat arrays into chunks of this many floats (64 KiB): large enough
 * that a chunk amortises the loop overhead, small enough to spread 1 MB over 2+ threads. */
#define CNN_LAYERS_CHUNK 16384

/* Threads for a flat array of n floats. */
static inline int cnn_layers_threads_flat(int64_t n) {
    return cnn_threads_for((n + CNN_LAYERS_CHUNK - 1) / CNN_LAYERS_CHUNK);
}

/* ---- Per-ISA variants from one source ------------------------------------------------------------
 * A layer microkernel's vector body is written once as plain C in a CNN_LAYERS_INLINE function
 * (explicit CNN_LAYERS_LANES-wide accumulator arrays where a reduction's order must be fixed) and
 * stamped out per ISA by CNN_LAYERS_STAMP_X86 (as conv/winograd.c does), so the compiler emits zmm
 * or ymm code from the same text. The plain loops kept beside each body are the generic variant
 * and the reference. */
#define CNN_LAYERS_INLINE static inline __attribute__((always_inline))

/* Lanes of the explicit accumulators: one zmm of floats, two ymm. */
#define CNN_LAYERS_LANES 16

/* Defines name##__avx2 and name##__avx512, each `static void name params { name##_body args; }`
 * under its ISA's target attribute (nothing off x86-64, where only the generic variant exists). */
#if CNN_X86
#define CNN_LAYERS_STAMP_X86(name, params, args)                                                  \
    CNN_TARGET_AVX2 static void name##__avx2 params { name##_body args; }                        \
    CNN_TARGET_AVX512 static void name##__avx512 params { name##_body args; }
#else
#define CNN_LAYERS_STAMP_X86(name, params, args)
#endif

/* Index of the active ISA in a per-family kernel table {generic, avx2, avx512} (cnn_isa order). */
static inline int cnn_layers_isa_index(void) {
#if CNN_X86
    const cnn_isa isa = cnn_isa_active();
    return isa == CNN_ISA_AVX512 ? 2 : isa == CNN_ISA_AVX2 ? 1 : 0;
#else
    return 0;
#endif
}

/* exp(x) in plain C that vectorises (libm's expf does not): x = n ln2 + r with n = round(x / ln2)
 * (the 1.5 * 2^23 rounding trick, so n also sits in the low mantissa bits of t), |r| <= ln2/2,
 * exp(r) by Cephes' degree-6 polynomial (cephes/single/expf.c), 2^n by building the exponent.
 * Relative error below 0.7 * 2^-23 (measured against exp in double over [-87.3, 88]); below -87.3 (where expf turns subnormal) it returns 0,
 * above 88 +inf; NaN propagates. */
CNN_LAYERS_INLINE float cnn_expf_poly(float x) {
    const float lo = -87.33654f, hi = 88.0f;
    const float xc = x < lo ? lo : (x > hi ? hi : x); /* NaN fails both tests and stays NaN */
    const float t = xc * 1.44269504088896341f + 12582912.0f;
    const float n = t - 12582912.0f;
    const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f; /* ln2 in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { float f; int32_t i; } tb = {t}, sb;
    sb.i = (tb.i - 0x4B400000 + 127) * (1 << 23); /* 2^n, n in [-126, 127] */
    const float y = p * sb.f;
    return x < lo ? 0.0f : (x > hi ? INFINITY : y);
}

#endif
