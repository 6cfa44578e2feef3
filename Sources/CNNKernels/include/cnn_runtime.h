/* Runtime: status codes, ISA dispatch, threads, aligned memory, per-thread workspace, FMA peak. */
#ifndef CNN_RUNTIME_H
#define CNN_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Result of a kernel call. Kernels validate what they cannot trust; the Swift layer validates
 *  user input first and turns these into thrown errors. */
typedef enum cnn_status {
    CNN_OK = 0,
    CNN_ERR_INVALID_ARGUMENT = 1, /* a size, stride, pointer or option is out of range */
    CNN_ERR_UNSUPPORTED = 2,      /* the requested algorithm does not apply to this shape */
    CNN_ERR_OUT_OF_MEMORY = 3,    /* an allocation failed */
} cnn_status;

/** Instruction-set variants, ordered: a machine that runs one runs every lower one. */
typedef enum cnn_isa {
    CNN_ISA_GENERIC = 0, /* portable C, written so the compiler vectorises it (also arm64) */
    CNN_ISA_AVX2 = 1,    /* x86-64 AVX2 + FMA3 */
    CNN_ISA_AVX512 = 2,  /* x86-64 AVX-512 F/BW/DQ/VL */
} cnn_isa;

/** The best variant this CPU (and OS, for the register state) supports. */
cnn_isa cnn_isa_detected(void);
/** The variant kernels use now: CNN_ISA from the environment if set and supported, else detected. */
cnn_isa cnn_isa_active(void);
/** Selects the variant for all later calls (process-wide). CNN_ERR_UNSUPPORTED if the CPU lacks it. */
cnn_status cnn_isa_set(cnn_isa isa);
/** "avx512", "avx2" or "generic". */
const char *cnn_isa_name(cnn_isa isa);
/** Bytes of level-2 cache per core as the C library reports it (sysconf on glibc), or 0 when it
 *  does not. The GEMM's cache blocking follows it (see gemm/gemm.c). */
size_t cnn_l2_cache_bytes(void);

/** 1 when built with OpenMP (the `OpenMP` package trait), else 0. */
int cnn_openmp_enabled(void);
/** Threads the kernels use (>= 1). */
int cnn_num_threads(void);
/** Sets the thread count for later kernel calls; n < 1 restores the default (all cores, or
 *  OMP_NUM_THREADS). Without OpenMP the count is always 1. */
void cnn_set_num_threads(int n);
/** Number of online processors. */
int cnn_num_processors(void);

/** 64-byte aligned allocation (NULL on failure or bytes == 0); free with cnn_aligned_free.
 *  On Linux, with huge pages on (see cnn_huge_pages), a buffer of 4 MiB or more starts on a 2 MiB
 *  boundary and its whole 2 MiB pages are advised as transparent huge pages (MADV_HUGEPAGE). */
void *cnn_aligned_alloc(size_t bytes);
/** 1 when large allocations ask for transparent huge pages: on Linux unless CNN_HUGE_PAGES=0 is in
 *  the environment or cnn_set_huge_pages(0) was called; always 0 elsewhere. */
int cnn_huge_pages(void);
/** Turns huge pages on (1) or off (0) for later allocations, process-wide; returns the previous
 *  setting. No effect where they are not supported. */
int cnn_set_huge_pages(int on);
void cnn_aligned_free(void *p);

/** Per-thread scratch buffers, 64-byte aligned, grown on demand and kept for reuse (freed when the
 *  thread exits). `slot` in [0, CNN_WORKSPACE_SLOTS) lets one operator hold several at once.
 *  Returns NULL if the allocation fails. The pointer stays valid until the same thread asks the
 *  same slot for more bytes. */
#define CNN_WORKSPACE_SLOTS 8
void *cnn_workspace(int slot, size_t bytes);
/** Frees the calling thread's workspace buffers. */
void cnn_workspace_release(void);

/** Monotonic wall clock in seconds. */
double cnn_now(void);

/** Probes the float32 fused-multiply-add peak in GFLOP/s of one ISA variant: each thread runs a loop
 *  of 12 independent FMA chains on registers for about `seconds`. threads < 1 means cnn_num_threads.
 *  Returns a negative value if the CPU lacks the ISA. */
double cnn_peak_gflops(cnn_isa isa, int threads, double seconds);

#ifdef __cplusplus
}
#endif
#endif
