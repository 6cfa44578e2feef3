/* Private helpers shared by the kernel sources (not part of the public header). */
#ifndef CNN_INTERNAL_H
#define CNN_INTERNAL_H

#include "include/CNNKernels.h"

#include <stdint.h>
#include <stddef.h>

/* Swift's clang ships no omp.h: declare the few runtime entry points used. The pragmas need none. */
#if defined(_OPENMP) && defined(CNN_OPENMP)
int omp_get_thread_num(void);
int omp_get_num_threads(void);
int omp_get_max_threads(void);
void omp_set_num_threads(int);
int omp_in_parallel(void);
#define CNN_OMP 1
#define CNN_PRAGMA(x) _Pragma(#x)
#define CNN_OMP_PARALLEL_FOR(n) CNN_PRAGMA(omp parallel for schedule(static) num_threads(n) if ((n) > 1))
#define CNN_OMP_THREAD_NUM() omp_get_thread_num()
#define CNN_OMP_NUM_THREADS() omp_get_num_threads()
#else
#define CNN_OMP 0
#define CNN_PRAGMA(x)
/* Without OpenMP the thread count is still evaluated (so it is not an unused variable) and the
 * loop that follows runs once, as the wrapped statement of a one-pass for (no dangling else). */
#define CNN_OMP_PARALLEL_FOR(n) for (int cnn_serial_once_ = ((void)(n), 1); cnn_serial_once_; cnn_serial_once_ = 0)
#define CNN_OMP_THREAD_NUM() 0
#define CNN_OMP_NUM_THREADS() 1
#endif

/* Per-function ISA targets: the only place ISA-specific code is enabled (no -march=native). */
#if defined(__x86_64__) || defined(_M_X64)
#define CNN_X86 1
#define CNN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define CNN_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#else
#define CNN_X86 0
#define CNN_TARGET_AVX2
#define CNN_TARGET_AVX512
#endif

#define CNN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CNN_MAX(a, b) ((a) > (b) ? (a) : (b))
#define CNN_RESTRICT __restrict__
#define CNN_UNUSED(x) (void)(x)

/* Threads a kernel may fork: the configured count, or 1 when called from inside a running parallel
 * region (a kernel that hands whole sub-problems to its threads, e.g. the Winograd weight
 * gradient's one GEMM per transform position): no nested teams. */
static inline int cnn_team_threads(void) {
#if CNN_OMP
    if (omp_in_parallel()) return 1;
#endif
    return cnn_num_threads();
}

/* Thread count for a parallel region over `items` independent items: never more threads than
 * items. */
static inline int cnn_threads_for(int64_t items) {
    int t = cnn_team_threads();
    if (items < t) t = (int)(items < 1 ? 1 : items);
    return t;
}

#endif
