/* CPU feature detection and the process-wide ISA choice. */
#include "../internal.h"

#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <unistd.h>

#if CNN_X86
#include <cpuid.h>

static uint64_t read_xcr0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

static cnn_isa detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return CNN_ISA_GENERIC;
    const int has_fma = (c >> 12) & 1, has_osxsave = (c >> 27) & 1, has_avx = (c >> 28) & 1;
    if (!has_osxsave || !has_avx) return CNN_ISA_GENERIC;
    const uint64_t xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6) return CNN_ISA_GENERIC; /* OS saves XMM and YMM state */
    if (__get_cpuid_max(0, 0) < 7) return CNN_ISA_GENERIC;
    __cpuid_count(7, 0, a, b, c, d);
    const int has_avx2 = (b >> 5) & 1;
    const int has_512f = (b >> 16) & 1, has_512dq = (b >> 17) & 1, has_512bw = (b >> 30) & 1,
              has_512vl = (b >> 31) & 1;
    const int os_512 = (xcr0 & 0xe6) == 0xe6; /* opmask, ZMM_Hi256, Hi16_ZMM */
    if (has_avx2 && has_fma && has_512f && has_512dq && has_512bw && has_512vl && os_512)
        return CNN_ISA_AVX512;
    if (has_avx2 && has_fma) return CNN_ISA_AVX2;
    return CNN_ISA_GENERIC;
}
#else
static cnn_isa detect(void) { return CNN_ISA_GENERIC; }
#endif

static atomic_int detected_isa = -1;
static atomic_int active_isa = -1;

cnn_isa cnn_isa_detected(void) {
    int v = atomic_load_explicit(&detected_isa, memory_order_relaxed);
    if (v < 0) {
        v = (int)detect();
        atomic_store(&detected_isa, v);
    }
    return (cnn_isa)v;
}

static int parse_isa(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "avx512")) return CNN_ISA_AVX512;
    if (!strcmp(s, "avx2")) return CNN_ISA_AVX2;
    if (!strcmp(s, "generic")) return CNN_ISA_GENERIC;
    return -1;
}

cnn_isa cnn_isa_active(void) {
    int v = atomic_load_explicit(&active_isa, memory_order_relaxed);
    if (v < 0) {
        const int best = (int)cnn_isa_detected();
        const int requested = parse_isa(getenv("CNN_ISA"));
        v = (requested >= 0 && requested <= best) ? requested : best;
        int expected = -1;
        if (!atomic_compare_exchange_strong(&active_isa, &expected, v)) v = expected;
    }
    return (cnn_isa)v;
}

cnn_status cnn_isa_set(cnn_isa isa) {
    if ((int)isa < 0 || (int)isa > (int)CNN_ISA_AVX512) return CNN_ERR_INVALID_ARGUMENT;
    if ((int)isa > (int)cnn_isa_detected()) return CNN_ERR_UNSUPPORTED;
    atomic_store(&active_isa, (int)isa);
    return CNN_OK;
}

const char *cnn_isa_name(cnn_isa isa) {
    switch (isa) {
    case CNN_ISA_AVX512: return "avx512";
    case CNN_ISA_AVX2: return "avx2";
    default: return "generic";
    }
}

/* sysconf's figure where the C library has one (glibc reads it from CPUID); 0 elsewhere. */
static atomic_long l2_bytes = -1;

size_t cnn_l2_cache_bytes(void) {
    long v = atomic_load_explicit(&l2_bytes, memory_order_relaxed);
    if (v < 0) {
        v = 0;
#ifdef _SC_LEVEL2_CACHE_SIZE
        const long r = sysconf(_SC_LEVEL2_CACHE_SIZE);
        if (r > 0) v = r;
#endif
        atomic_store(&l2_bytes, v);
    }
    return (size_t)v;
}
