/* Aligned allocation and the per-thread reusable workspace. */
#include "../internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

/* Large buffers (weights, Winograd-transformed weights, activations) start on a 2 MiB boundary
 * and are marked for transparent huge pages, so streaming them takes one TLB entry per 2 MiB
 * instead of 512. A batch-1 network streams its big weights from memory on every call (VGG-16's
 * classifier alone is 494 MB): a GEMV over a 411 MB matrix, 2 threads, the two placements called
 * in turn on a Zen 4 class VM, ran 0.89-0.95x the time with huge pages. Only the whole 2 MiB pages
 * inside the buffer are marked, so the tail costs no resident memory beyond what it uses.
 * Linux only (madvise, MADV_HUGEPAGE); with the kernel's THP setting at "never" the advice is
 * ignored and only the alignment remains. CNN_HUGE_PAGES=0 in the environment turns it off. */
#define HUGE_PAGE_BYTES ((size_t)2 << 20)
#define HUGE_MIN_BYTES ((size_t)4 << 20)

static atomic_int huge_pages = -1;

int cnn_huge_pages(void) {
    int v = atomic_load_explicit(&huge_pages, memory_order_relaxed);
    if (v < 0) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        const char *e = getenv("CNN_HUGE_PAGES");
        v = !(e && !strcmp(e, "0"));
#else
        v = 0;
#endif
        int expected = -1;
        if (!atomic_compare_exchange_strong(&huge_pages, &expected, v)) v = expected;
    }
    return v;
}

int cnn_set_huge_pages(int on) {
    const int before = cnn_huge_pages();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    atomic_store(&huge_pages, on ? 1 : 0);
#else
    (void)on;
#endif
    return before;
}

void *cnn_aligned_alloc(size_t bytes) {
    if (bytes == 0) return NULL;
    void *p = NULL;
    /* Round up so the tail of a vector loop never crosses into an unowned page. */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (rounded >= HUGE_MIN_BYTES && cnn_huge_pages()) {
        if (posix_memalign(&p, HUGE_PAGE_BYTES, rounded) != 0) return NULL;
        /* Advice only: a kernel without THP refuses it, and the buffer works the same. */
        (void)madvise(p, rounded & ~(HUGE_PAGE_BYTES - 1), MADV_HUGEPAGE);
        return p;
    }
#endif
    if (posix_memalign(&p, 64, rounded) != 0) return NULL;
    return p;
}

void cnn_aligned_free(void *p) { free(p); }

typedef struct workspace {
    void *ptr[CNN_WORKSPACE_SLOTS];
    size_t size[CNN_WORKSPACE_SLOTS];
} workspace;

static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;

static void ws_destroy(void *p) {
    workspace *ws = (workspace *)p;
    if (!ws) return;
    for (int i = 0; i < CNN_WORKSPACE_SLOTS; i++) free(ws->ptr[i]);
    free(ws);
}

static void ws_init(void) { pthread_key_create(&ws_key, ws_destroy); }

void *cnn_workspace(int slot, size_t bytes) {
    if (slot < 0 || slot >= CNN_WORKSPACE_SLOTS) return NULL;
    pthread_once(&ws_once, ws_init);
    workspace *ws = (workspace *)pthread_getspecific(ws_key);
    if (!ws) {
        ws = (workspace *)calloc(1, sizeof(workspace));
        if (!ws) return NULL;
        pthread_setspecific(ws_key, ws);
    }
    if (bytes == 0) bytes = 64;
    if (ws->size[slot] < bytes) {
        /* Grow by at least 1.5x so slowly increasing requests do not reallocate every call. */
        size_t want = bytes + bytes / 2;
        void *p = cnn_aligned_alloc(want);
        if (!p) {
            p = cnn_aligned_alloc(bytes);
            want = bytes;
        }
        if (!p) return NULL;
        free(ws->ptr[slot]);
        ws->ptr[slot] = p;
        ws->size[slot] = want;
    }
    return ws->ptr[slot];
}

void cnn_workspace_release(void) {
    pthread_once(&ws_once, ws_init);
    workspace *ws = (workspace *)pthread_getspecific(ws_key);
    if (!ws) return;
    ws_destroy(ws);
    pthread_setspecific(ws_key, NULL);
}

void cnn_free(void *p) { free(p); }
