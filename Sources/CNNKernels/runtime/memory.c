/* Aligned allocation and the per-thread reusable workspace. */
#include "../internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

void *cnn_aligned_alloc(size_t bytes) {
    if (bytes == 0) return NULL;
    void *p = NULL;
    /* Round up so the tail of a vector loop never crosses into an unowned page. */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes) return NULL;
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
