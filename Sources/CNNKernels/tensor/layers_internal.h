/* Private helpers of the layer kernels (pool/, norm/, activation/, loss/, tensor/). */
#ifndef CNN_LAYERS_INTERNAL_H
#define CNN_LAYERS_INTERNAL_H

#include "../internal.h"

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

#endif
