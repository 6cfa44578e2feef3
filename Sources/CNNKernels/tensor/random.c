/* Bulk fills from the CNN module's seeded generator (xoshiro256**), bit-identical to drawing the
 * same samples one at a time in Swift (SeededGenerator.nextUniform / nextNormal).
 *
 * Why in C: weight initialisation draws one sample per parameter, and in a debug build of the Swift
 * module a sample costs 100-300 ns, so building VGG-16 (138M parameters drawn twice) took over a
 * minute. In C a uniform costs about 2 ns; the normal's Box-Muller transform, a libm log and cos in
 * double precision, about 25-50 ns.
 *
 * The fast normal path: the transform is evaluated with vectorisable polynomials (log and cos with
 * relative error below 2^-48), and a rounding test decides whether that value rounds to the same
 * float as libm's would: libm's log and cos are within a few ulp (2^-50) of the true values, so when
 * the approximation z and every value within z * (1 +- 2^-40) round to the same float, libm's
 * result rounds to it too. The rare samples that fail the test (about one in 2^15), and u1 = 0, are
 * recomputed with libm exactly as Swift does. So the values stay bit-identical while costing a few
 * ns each, whatever the ISA.
 *
 * Bit-identity of the final `mean + sd * z`, as Swift, which never fuses a multiply and an add:
 * this target is compiled with -ffp-contract=fast, which ignores `#pragma clang fp contract` and
 * fuses even through double-precision rewrites (the optimiser narrows them back to float), so the
 * product goes through a volatile: a separate scalar pass of about 1 ns per element. */
#include "layers_internal.h"

#include <math.h>
#include <string.h>

/* Elements per block of a normal fill: 16 KiB of raw draws, 8 KiB of transformed doubles. */
#define CNN_RANDOM_BLOCK 1024

static inline uint64_t cnn_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman & Vigna), as SeededGenerator.next(). */
static inline uint64_t cnn_xoshiro_next(uint64_t s[4]) {
    const uint64_t result = cnn_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = cnn_rotl(s[3], 45);
    return result;
}

/* y[i] = a + b * y[i] rounded after the multiply and after the add (no fused multiply-add). */
static void cnn_f32_affine_unfused(int64_t n, float a, float b, float *y) {
    for (int64_t i = 0; i < n; i++) {
        volatile float product = b * y[i];
        y[i] = a + product;
    }
}

/* A standard normal sample from two draws (Box-Muller in double precision, cosine branch). */
static inline float cnn_normal_from_bits(uint64_t a, uint64_t b) {
    double u1 = (double)(a >> 11) * 0x1p-53;
    if (u1 < 1e-300) u1 = 1e-300;
    const double u2 = (double)(b >> 11) * 0x1p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * 3.141592653589793116 * u2));
}

cnn_status cnn_random_uniform_fill(uint64_t *state, int64_t n, float lower, float width, float *y) {
    if (!state || n < 0 || (n > 0 && !y)) return CNN_ERR_INVALID_ARGUMENT;
    uint64_t s[4] = {state[0], state[1], state[2], state[3]};
    for (int64_t i = 0; i < n; i++) y[i] = (float)(cnn_xoshiro_next(s) >> 40) * 0x1p-24f; /* exact */
    cnn_f32_affine_unfused(n, lower, width, y);
    for (int j = 0; j < 4; j++) state[j] = s[j];
    return CNN_OK;
}

/* ---------------------------------------------------------------- fast Box-Muller */

static inline double cnn_bits_double(uint64_t b) { double d; memcpy(&d, &b, sizeof d); return d; }
static inline uint64_t cnn_double_bits(double d) { uint64_t b; memcpy(&b, &d, sizeof b); return b; }

/* log(u) for a normal double u in (0, 1): u = 2^e m, m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s),
 * s = (m - 1) / (m + 1), |s| <= 0.1716, by its Taylor series to s^23 (truncation below 2^-55
 * relative); ln 2 split so that e * LN2_HI is exact. Relative error below 2^-50. */
static inline double cnn_fast_log_unit(double u) {
    const uint64_t bits = cnn_double_bits(u);
    int64_t e = (int64_t)(bits >> 52) - 1023;
    double m = cnn_bits_double((bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull);
    const int big = m > 1.4142135623730951;
    m = big ? 0.5 * m : m;
    e += big;
    const double f = m - 1.0;
    const double s = f / (2.0 + f);
    const double z = s * s;
    double r = 1.0 / 23;
    r = 1.0 / 21 + z * r; r = 1.0 / 19 + z * r; r = 1.0 / 17 + z * r; r = 1.0 / 15 + z * r;
    r = 1.0 / 13 + z * r; r = 1.0 / 11 + z * r; r = 1.0 / 9 + z * r;  r = 1.0 / 7 + z * r;
    r = 1.0 / 5 + z * r;  r = 1.0 / 3 + z * r;
    const double log_m = 2.0 * s + 2.0 * s * (z * r);
    const double de = (double)e;
    return de * 6.93147180369123816490e-01 + (de * 1.90821492927058770002e-10 + log_m);
}

/* cos(x) for x in [0, 2 pi]: x = k pi/2 + r with |r| <= pi/4 (pi/2 in three parts, the first two of
 * 33 bits, so k * part is exact for k <= 4 and r keeps its relative accuracy next to the zeros of
 * cos), then the Taylor series of sin r to r^15 or cos r to r^16. Relative error below 2^-49. */
static inline double cnn_fast_cos_turn(double x) {
    const int k = (int)(x * 0.63661977236758138243 + 0.5);
    const double dk = (double)k;
    const double r = ((x - dk * 1.57079632673412561417e+00) - dk * 6.07710050630396597660e-11)
                     - dk * 2.02226624879595063154e-21;
    const double z = r * r;
    double sp = -1.0 / 1307674368000.0;                   /* -1/15! */
    sp = 1.0 / 6227020800.0 + z * sp;                     /* 1/13! */
    sp = -1.0 / 39916800.0 + z * sp;                      /* -1/11! */
    sp = 1.0 / 362880.0 + z * sp;                         /* 1/9! */
    sp = -1.0 / 5040.0 + z * sp;                          /* -1/7! */
    sp = 1.0 / 120.0 + z * sp;                            /* 1/5! */
    sp = -1.0 / 6.0 + z * sp;                             /* -1/3! */
    const double sin_r = r + r * (z * sp);
    double cp = 1.0 / 20922789888000.0;                   /* 1/16! */
    cp = -1.0 / 87178291200.0 + z * cp;                   /* -1/14! */
    cp = 1.0 / 479001600.0 + z * cp;                      /* 1/12! */
    cp = -1.0 / 3628800.0 + z * cp;                       /* -1/10! */
    cp = 1.0 / 40320.0 + z * cp;                          /* 1/8! */
    cp = -1.0 / 720.0 + z * cp;                           /* -1/6! */
    cp = 1.0 / 24.0 + z * cp;                             /* 1/4! */
    cp = -0.5 + z * cp;
    const double cos_r = 1.0 + z * cp;
    /* cos(k pi/2 + r): k = 0, 4: cos r; 1: -sin r; 2: -cos r; 3: sin r. */
    const double v = (k & 1) ? sin_r : cos_r;
    return ((k + 1) & 2) ? -v : v;
}

/* One block of standard normal samples: the fast transform for every element, then libm for those
 * failing the rounding test. */
__attribute__((always_inline)) static inline void cnn_normal_block(const uint64_t *CNN_RESTRICT bits, int64_t n,
                                                                   float *CNN_RESTRICT y) {
    unsigned char exact[CNN_RANDOM_BLOCK];
    for (int64_t i = 0; i < n; i++) {
        const uint64_t a = bits[2 * i] >> 11, b = bits[2 * i + 1] >> 11;
        const double u1 = (double)(a | (a == 0)) * 0x1p-53; /* a = 0 goes to libm (u1 = 1e-300) */
        const double u2 = (double)b * 0x1p-53;
        const double z = sqrt(-2.0 * cnn_fast_log_unit(u1)) * cnn_fast_cos_turn(2.0 * 3.141592653589793116 * u2);
        const double margin = fabs(z) * 0x1p-40;
        exact[i] = (a == 0) | ((float)(z - margin) != (float)(z + margin));
        y[i] = (float)z;
    }
    for (int64_t i = 0; i < n; i++) {
        if (exact[i]) y[i] = cnn_normal_from_bits(bits[2 * i], bits[2 * i + 1]);
    }
}

typedef void (*cnn_normal_block_fn)(const uint64_t *, int64_t, float *);

static void cnn_normal_block__generic(const uint64_t *bits, int64_t n, float *y) {
    cnn_normal_block(bits, n, y);
}
#if CNN_X86
CNN_TARGET_AVX2 static void cnn_normal_block__avx2(const uint64_t *bits, int64_t n, float *y) {
    cnn_normal_block(bits, n, y);
}
CNN_TARGET_AVX512 static void cnn_normal_block__avx512(const uint64_t *bits, int64_t n, float *y) {
    cnn_normal_block(bits, n, y);
}
#endif

cnn_status cnn_random_normal_fill(uint64_t *state, int64_t n, float mean, float standard_deviation, float *y) {
    if (!state || n < 0 || (n > 0 && !y)) return CNN_ERR_INVALID_ARGUMENT;
    cnn_normal_block_fn fn = cnn_normal_block__generic;
#if CNN_X86
    const cnn_isa isa = cnn_isa_active();
    if (isa == CNN_ISA_AVX512) fn = cnn_normal_block__avx512;
    else if (isa == CNN_ISA_AVX2) fn = cnn_normal_block__avx2;
#endif
    uint64_t s[4] = {state[0], state[1], state[2], state[3]};
    uint64_t bits[2 * CNN_RANDOM_BLOCK];
    for (int64_t start = 0; start < n; start += CNN_RANDOM_BLOCK) {
        const int64_t count = CNN_MIN((int64_t)CNN_RANDOM_BLOCK, n - start);
        for (int64_t i = 0; i < 2 * count; i++) bits[i] = cnn_xoshiro_next(s);
        fn(bits, count, y + start);
        cnn_f32_affine_unfused(count, mean, standard_deviation, y + start);
    }
    for (int j = 0; j < 4; j++) state[j] = s[j];
    return CNN_OK;
}
