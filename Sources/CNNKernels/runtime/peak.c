/* The machine's float32 FMA peak, probed: 12 independent multiply-add chains kept in registers,
 * enough to cover the FMA latency (4 cycles) times the number of FMA pipes (2) on current x86 cores. */
#include "../internal.h"

#if CNN_X86
#include <immintrin.h>
#endif

#define PEAK_CHAINS 12
#define PEAK_INNER 4096

/* Each function runs `iters` * PEAK_INNER rounds of 12 FMAs and returns the flop count. */

#if CNN_X86
CNN_TARGET_AVX512 static double peak_avx512(int64_t iters, float *sink) {
    __m512 a[PEAK_CHAINS];
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < PEAK_CHAINS; i++) a[i] = _mm512_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++) {
        for (int k = 0; k < PEAK_INNER; k++) {
            a[0] = _mm512_fmadd_ps(a[0], m, c); a[1] = _mm512_fmadd_ps(a[1], m, c);
            a[2] = _mm512_fmadd_ps(a[2], m, c); a[3] = _mm512_fmadd_ps(a[3], m, c);
            a[4] = _mm512_fmadd_ps(a[4], m, c); a[5] = _mm512_fmadd_ps(a[5], m, c);
            a[6] = _mm512_fmadd_ps(a[6], m, c); a[7] = _mm512_fmadd_ps(a[7], m, c);
            a[8] = _mm512_fmadd_ps(a[8], m, c); a[9] = _mm512_fmadd_ps(a[9], m, c);
            a[10] = _mm512_fmadd_ps(a[10], m, c); a[11] = _mm512_fmadd_ps(a[11], m, c);
        }
    }
    __m512 s = a[0];
    for (int i = 1; i < PEAK_CHAINS; i++) s = _mm512_add_ps(s, a[i]);
    *sink = _mm512_reduce_add_ps(s);
    return (double)iters * PEAK_INNER * PEAK_CHAINS * 16 * 2;
}

CNN_TARGET_AVX2 static double peak_avx2(int64_t iters, float *sink) {
    __m256 a[PEAK_CHAINS];
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < PEAK_CHAINS; i++) a[i] = _mm256_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++) {
        for (int k = 0; k < PEAK_INNER; k++) {
            a[0] = _mm256_fmadd_ps(a[0], m, c); a[1] = _mm256_fmadd_ps(a[1], m, c);
            a[2] = _mm256_fmadd_ps(a[2], m, c); a[3] = _mm256_fmadd_ps(a[3], m, c);
            a[4] = _mm256_fmadd_ps(a[4], m, c); a[5] = _mm256_fmadd_ps(a[5], m, c);
            a[6] = _mm256_fmadd_ps(a[6], m, c); a[7] = _mm256_fmadd_ps(a[7], m, c);
            a[8] = _mm256_fmadd_ps(a[8], m, c); a[9] = _mm256_fmadd_ps(a[9], m, c);
            a[10] = _mm256_fmadd_ps(a[10], m, c); a[11] = _mm256_fmadd_ps(a[11], m, c);
        }
    }
    __m256 s = a[0];
    for (int i = 1; i < PEAK_CHAINS; i++) s = _mm256_add_ps(s, a[i]);
    float t[8];
    _mm256_storeu_ps(t, s);
    *sink = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
    return (double)iters * PEAK_INNER * PEAK_CHAINS * 8 * 2;
}
#endif

/* Portable: 4-wide vector extension (SSE2 on x86-64, NEON on arm64); multiply-add counts 2 flops
 * whether or not the target fuses it. */
typedef float cnn_v4f __attribute__((vector_size(16)));
static double peak_generic(int64_t iters, float *sink) {
    cnn_v4f a[PEAK_CHAINS];
    const cnn_v4f m = {0.999999f, 0.999999f, 0.999999f, 0.999999f};
    const cnn_v4f c = {1e-7f, 1e-7f, 1e-7f, 1e-7f};
    for (int i = 0; i < PEAK_CHAINS; i++) a[i] = (cnn_v4f){(float)i, (float)i, (float)i, (float)i};
    for (int64_t it = 0; it < iters; it++) {
        for (int k = 0; k < PEAK_INNER; k++) {
            for (int i = 0; i < PEAK_CHAINS; i++) a[i] = a[i] * m + c;
        }
    }
    cnn_v4f s = a[0];
    for (int i = 1; i < PEAK_CHAINS; i++) s += a[i];
    *sink = s[0] + s[1] + s[2] + s[3];
    return (double)iters * PEAK_INNER * PEAK_CHAINS * 4 * 2;
}

static double run_peak(cnn_isa isa, int64_t iters, float *sink) {
#if CNN_X86
    if (isa == CNN_ISA_AVX512) return peak_avx512(iters, sink);
    if (isa == CNN_ISA_AVX2) return peak_avx2(iters, sink);
#endif
    return peak_generic(iters, sink);
}

double cnn_peak_gflops(cnn_isa isa, int threads, double seconds) {
    if ((int)isa > (int)cnn_isa_detected() || (int)isa < 0) return -1.0;
    if (threads < 1) threads = cnn_num_threads();
    if (seconds <= 0) seconds = 0.2;
    /* Calibrate on one thread: iterations for about `seconds`. */
    float sink = 0;
    int64_t iters = 1;
    double t0 = cnn_now(), dt = 0;
    for (;;) {
        t0 = cnn_now();
        run_peak(isa, iters, &sink);
        dt = cnn_now() - t0;
        if (dt > seconds / 8 || iters > ((int64_t)1 << 40)) break;
        iters *= 2;
    }
    iters = (int64_t)((double)iters * seconds / (dt > 0 ? dt : 1e-9)) + 1;
    /* Best of three timed runs: the probe measures capability, not a noisy neighbour. */
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double flops = 0;
        double start = cnn_now();
#if CNN_OMP
#pragma omp parallel num_threads(threads) reduction(+ : flops)
        {
            float local = 0;
            flops += run_peak(isa, iters, &local);
            if (local == 12345.0f) sink += local;
        }
#else
        flops = run_peak(isa, iters, &sink);
#endif
        double elapsed = cnn_now() - start;
        double g = flops / elapsed * 1e-9;
        if (g > best) best = g;
    }
    if (sink == 12345.0f) best += 1e-12; /* keep the results observable */
    return best;
}
