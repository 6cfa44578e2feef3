/* Thread count and clock. */
#include "../internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static atomic_int requested_threads = 0; /* 0: default */

int cnn_openmp_enabled(void) { return CNN_OMP; }

int cnn_num_processors(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

#if CNN_OMP
static int default_threads(void) {
    /* omp_get_max_threads honours OMP_NUM_THREADS and defaults to the core count. */
    int n = omp_get_max_threads();
    return n < 1 ? 1 : n;
}
#endif

int cnn_num_threads(void) {
#if CNN_OMP
    int n = atomic_load_explicit(&requested_threads, memory_order_relaxed);
    return n > 0 ? n : default_threads();
#else
    return 1;
#endif
}

void cnn_set_num_threads(int n) { atomic_store(&requested_threads, n > 0 ? n : 0); }

double cnn_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
