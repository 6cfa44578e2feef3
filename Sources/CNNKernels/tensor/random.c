/* Bulk fills from the CNN module's seeded generator (xoshiro256**), bit-identical to drawing the
 * same samples one at a time in Swift (SeededGenerator.nextUniform / nextNormal).
 *
 * Why in C: weight initialisation draws one sample per parameter, and in a debug build of the Swift
 * module a sample costs 100-300 ns, so building VGG-16 (138M parameters drawn twice) took over a
 * minute. The generator itself is inherently sequential; the normal's Box-Muller transform (a log
 * and a cos in double precision, ~20 ns) is not, so large normal fills draw the raw bits of a block
 * sequentially and transform the block on all threads. The result does not depend on the thread
 * count.
 *
 * Bit-identity with Swift, which never fuses a multiply and an add: this target is compiled with
 * -ffp-contract=fast, which ignores `#pragma clang fp contract`. So `a + b * c` in float is computed
 * as double(a) + double(float(double(b) * double(c))) rounded to float: the double product of two
 * floats is exact, so its rounding to float is the float product, and a double sum of two floats
 * rounded to float is the float sum (53 >= 2 * 24 + 2 bits), with no float multiply left for the
 * compiler to fuse into the add. */
#include "layers_internal.h"

#include <math.h>
#include <stdlib.h>

/* Elements per block of a threaded normal fill: 128 KiB of raw bits, 64 KiB of output. */
#define CNN_RANDOM_BLOCK 8192

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

/* float(a + b * c) with float rounding after the multiply and after the add (see the top). */
static inline float cnn_f32_mul_add(float a, float b, float c) {
    const float product = (float)((double)b * (double)c);
    return (float)((double)a + (double)product);
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
    for (int64_t i = 0; i < n; i++) {
        const float u = (float)(cnn_xoshiro_next(s) >> 40) * 0x1p-24f; /* exact: 24 bits times 2^-24 */
        y[i] = cnn_f32_mul_add(lower, width, u);
    }
    for (int j = 0; j < 4; j++) state[j] = s[j];
    return CNN_OK;
}

cnn_status cnn_random_normal_fill(uint64_t *state, int64_t n, float mean, float standard_deviation, float *y) {
    if (!state || n < 0 || (n > 0 && !y)) return CNN_ERR_INVALID_ARGUMENT;
    uint64_t s[4] = {state[0], state[1], state[2], state[3]};
    const int threads = cnn_threads_for(n / CNN_RANDOM_BLOCK);
    uint64_t *bits = threads > 1 ? malloc(2 * CNN_RANDOM_BLOCK * sizeof(uint64_t)) : NULL;
    if (!bits) {
        for (int64_t i = 0; i < n; i++) {
            const uint64_t a = cnn_xoshiro_next(s);
            const uint64_t b = cnn_xoshiro_next(s);
            y[i] = cnn_f32_mul_add(mean, standard_deviation, cnn_normal_from_bits(a, b));
        }
    } else {
        for (int64_t start = 0; start < n; start += CNN_RANDOM_BLOCK) {
            const int64_t count = CNN_MIN((int64_t)CNN_RANDOM_BLOCK, n - start);
            for (int64_t i = 0; i < 2 * count; i++) bits[i] = cnn_xoshiro_next(s);
            float *out = y + start;
            CNN_OMP_PARALLEL_FOR(threads)
            for (int64_t i = 0; i < count; i++) {
                out[i] = cnn_f32_mul_add(mean, standard_deviation, cnn_normal_from_bits(bits[2 * i], bits[2 * i + 1]));
            }
        }
        free(bits);
    }
    for (int j = 0; j < 4; j++) state[j] = s[j];
    return CNN_OK;
}
