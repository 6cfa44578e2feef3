/* An FMA peak probe written independently of CNNKernels' runtime/peak.c, to check `cnn bench peak`:
 * 12 AVX-512 multiply-add chains with distinct starting values (equal ones let a compiler merge
 * the chains into one), best of 5 runs, 1 thread. Build: gcc -O2 -mavx512f independent_fma.c */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(void) {
    volatile float init[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    __m512 a[12];
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps(init[i]);
    const __m512 m = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(1e-6f);
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        const long n = 20000000;
        const double t0 = now();
        for (long i = 0; i < n; i++) {
            a[0] = _mm512_fmadd_ps(a[0], m, c); a[1] = _mm512_fmadd_ps(a[1], m, c);
            a[2] = _mm512_fmadd_ps(a[2], m, c); a[3] = _mm512_fmadd_ps(a[3], m, c);
            a[4] = _mm512_fmadd_ps(a[4], m, c); a[5] = _mm512_fmadd_ps(a[5], m, c);
            a[6] = _mm512_fmadd_ps(a[6], m, c); a[7] = _mm512_fmadd_ps(a[7], m, c);
            a[8] = _mm512_fmadd_ps(a[8], m, c); a[9] = _mm512_fmadd_ps(a[9], m, c);
            a[10] = _mm512_fmadd_ps(a[10], m, c); a[11] = _mm512_fmadd_ps(a[11], m, c);
        }
        const double g = n * 12.0 * 16 * 2 / (now() - t0) * 1e-9;
        if (g > best) best = g;
    }
    __m512 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, a[i]);
    printf("%.1f\n", best + 0 * _mm512_reduce_add_ps(s));
    return 0;
}
