/* Weight gradient of small layers without a column matrix (LeNet-5's convolutions):
 *
 *     dW[k][c][r][s] += sum over n, p, q of dy[n][k][p][q] * x[n][c][p*sh - ph + r*dh][q*sw - pw + s*dw]
 *
 * The GEMM path builds the column matrix (Cg R S x N P Q: 5 MiB for LeNet-5's conv1 at batch 64),
 * then multiplies a few output channels (6 or 16 rows) into it with a reduction over N P Q: the
 * pass over that matrix, written once and read back transposed, is most of the time. Here each
 * image is copied once, zero-padded, into a per-thread buffer that stays in L1, and one of two
 * register tiles runs over it:
 *   - whole vectors of output channels (Kg a multiple of 16): 16 channels x 6 taps, the output
 *     gradient copied channels-last, one broadcast input per tap and position (dwk_item below);
 *   - otherwise, at column stride 1 with rows of 24 or more columns: vectors along the output row
 *     q, 2 output channels x 5 taps (c, r, s), per row and vector of 8 columns the 2 output-
 *     gradient vectors and the 5 input vectors at column offsets s*dw for 10 FMAs (dwd_item). The
 *     lanes past Q read input columns that output column never pairs with: the output gradient's
 *     copy is zero there and the input vector is masked to zero too (a NaN or infinity in such a
 *     column would otherwise turn 0 * x into NaN).
 * The accumulators are kept per (channel, tap) across the images of a chunk (the row vectors' 8
 * lanes summed at its end); chunks are DWD_CHUNK consecutive images, their partial sums added into
 * dW in chunk order, so the result does not depend on the thread count. Plain C on the compiler's
 * vector types, compiled once per ISA. */
#include "conv_internal.h"

#include <string.h>

#define DWD_LANES 8
#define DWD_KB 2  /* output channels per register tile */
#define DWD_TB 5  /* taps per register tile */
#define DWD_CHUNK 8 /* images per partial sum */
/* The layers it takes: at most DWD_MAX_KG output channels and DWD_MAX_WEIGHTS weights per group,
 * and either Kg a multiple of 16 (the channel vectors) or rows of at least DWD_MIN_Q columns at
 * column stride 1 (the row vectors: three or more vectors, most lanes used). Zen 3 class, AVX2, C
 * harness, batch 64 unless noted, the builds called in turn 20-30 times, median per-call ratio
 * against the GEMM path, 2 threads:
 *   - channel vectors: LeNet-5's conv2 (6 -> 16, 5x5 at 14x14) 0.41 (1 thread 0.44); 16 -> 32 5x5
 *     at 14x14 0.48; 8 -> 64 5x5 at 7x7 0.67; 3 -> 16 5x5/2 at 32x32 0.30; 16 -> 16 3x3/2 at
 *     16x16 0.39; 16 -> 32 5x5 at 28x28 0.55; 3 -> 16 3x3 at 32x32 0.50; 3 -> 32 7x7 at 64x64,
 *     batch 16, 0.71; 3 -> 64 5x5 at 32x32 0.89 (the row vectors on these four: 0.92, 0.50, 0.84,
 *     0.94);
 *   - row vectors: LeNet-5's conv1 (1 -> 6, 5x5 pad 2 at 28x28) 0.27 (1 thread 0.43); with rows
 *     of 16 columns they measured 0.97, LeNet-5's conv2 (10 columns) 1.18-1.22. */
#define DWD_MIN_Q 24
#define DWK_MIN_KG 16
#define DWD_MAX_KG 64
#define DWD_MAX_WEIGHTS 16384
/* A thread's buffers scale with the image: larger planes keep the GEMM path's bounded bands. */
#define DWD_MAX_THREAD_FLOATS ((size_t)1 << 20)
/* Chunks whose partial sums are held at once: larger batches are summed DWD_ROUND_CHUNKS chunks at
 * a time (a fixed grouping, so still independent of the thread count). */
#define DWD_ROUND_CHUNKS 32

typedef float dwd_vec __attribute__((vector_size(DWD_LANES * sizeof(float)), aligned(4)));
typedef int32_t dwd_ivec __attribute__((vector_size(DWD_LANES * sizeof(int32_t)), aligned(4)));

/* The padded copy's geometry: rows Hp = H + 2 ph; columns Wp wide enough for every lane of the
 * last vector at the widest tap offset. */
typedef struct dwd_geom {
    int64_t Qv;         /* vectors per output row, ceil(Q / 8) */
    int64_t Hp, Wp;     /* padded image rows and columns */
    int64_t taps, tapsp; /* Cg R S, and rounded up to DWD_TB */
    int64_t kgp;        /* Kg rounded up to DWD_KB */
} dwd_geom;

static dwd_geom dwd_geometry(const conv_geom *g) {
    dwd_geom d;
    d.Qv = (g->Q + DWD_LANES - 1) / DWD_LANES;
    d.Hp = g->H + 2 * g->ph;
    d.Wp = CNN_MAX(g->W + 2 * g->pw, d.Qv * DWD_LANES + (g->S - 1) * g->dw);
    d.taps = g->Cg * g->R * g->S;
    d.tapsp = (d.taps + DWD_TB - 1) / DWD_TB * DWD_TB;
    d.kgp = (g->Kg + DWD_KB - 1) / DWD_KB * DWD_KB;
    return d;
}

/* Per-thread floats: the padded image (Cg Hp Wp), the output gradient's rows padded to Qv vectors
 * (kgp P Qv 8, zero past Q and past Kg), the vector accumulators (kgp tapsp 8). */
static size_t dwd_thread_floats(const conv_geom *g, const dwd_geom *d) {
    return (size_t)(g->Cg * d->Hp * d->Wp + d->kgp * g->P * d->Qv * DWD_LANES + d->kgp * d->tapsp * DWD_LANES);
}

/* acc[j][t] += sum over rows p and vectors v of dy_j[p][v] * x at tap t; `mask` clears the lanes
 * past Q of the last vector. */
static ALWAYS_INLINE void dwd_tile(const float *CNN_RESTRICT xb, const int64_t *off, const float *CNN_RESTRICT d0,
                                   const float *CNN_RESTRICT d1, int64_t P, int64_t Qv, int64_t xrow, int64_t drow,
                                   const dwd_ivec *mask, dwd_vec *CNN_RESTRICT acc) {
    dwd_vec a0[DWD_TB], a1[DWD_TB];
    for (int t = 0; t < DWD_TB; t++) {
        a0[t] = acc[t];
        a1[t] = acc[DWD_TB + t];
    }
    const int64_t o0 = off[0], o1 = off[1], o2 = off[2], o3 = off[3], o4 = off[4];
    for (int64_t p = 0; p < P; p++) {
        const float *CNN_RESTRICT xp = xb + p * xrow;
        const float *CNN_RESTRICT e0 = d0 + p * drow, *CNN_RESTRICT e1 = d1 + p * drow;
        for (int64_t v = 0; v < Qv; v++) {
            const dwd_vec y0 = *(const dwd_vec *)(e0 + v * DWD_LANES), y1 = *(const dwd_vec *)(e1 + v * DWD_LANES);
            const float *CNN_RESTRICT xv = xp + v * DWD_LANES;
            dwd_vec x[DWD_TB] = {*(const dwd_vec *)(xv + o0), *(const dwd_vec *)(xv + o1), *(const dwd_vec *)(xv + o2),
                                 *(const dwd_vec *)(xv + o3), *(const dwd_vec *)(xv + o4)};
            if (v == Qv - 1)
                for (int t = 0; t < DWD_TB; t++) x[t] = (dwd_vec)((dwd_ivec)x[t] & *mask);
            for (int t = 0; t < DWD_TB; t++) {
                a0[t] += y0 * x[t];
                a1[t] += y1 * x[t];
            }
        }
    }
    for (int t = 0; t < DWD_TB; t++) {
        acc[t] = a0[t];
        acc[DWD_TB + t] = a1[t];
    }
}

/* One item: group grp, images [n0, n0 + cnt) into part (Kg x taps, written). buf: the thread's
 * dwd_thread_floats. */
static ALWAYS_INLINE void dwd_item(const conv_geom *g, const dwd_geom *d, const float *x, const float *dy,
                                   int64_t grp, int64_t n0, int64_t cnt, float *part, float *buf) {
    float *xb = buf, *db = xb + g->Cg * d->Hp * d->Wp, *ab = db + d->kgp * g->P * d->Qv * DWD_LANES;
    const int64_t HW = g->H * g->W, PQ = g->P * g->Q, drow = d->Qv * DWD_LANES, dplane = g->P * drow;
    const int64_t xplane = d->Hp * d->Wp;
    dwd_ivec mask;
    for (int l = 0; l < DWD_LANES; l++) mask[l] = (d->Qv - 1) * DWD_LANES + l < g->Q ? -1 : 0;
    /* Tap t = (c, r, s) at offset c Hp Wp + r dh Wp + s dw of the padded copy; the padding taps
     * past `taps` read offset 0 and are dropped. */
    int64_t off[DWD_TB];
    memset(ab, 0, (size_t)(d->kgp * d->tapsp * DWD_LANES) * sizeof(float));
    memset(db, 0, (size_t)(d->kgp * dplane) * sizeof(float)); /* the lanes past Q and rows past Kg stay 0 */
    memset(xb, 0, (size_t)(g->Cg * xplane) * sizeof(float)); /* the padding stays 0 */
    for (int64_t n = n0; n < n0 + cnt; n++) {
        const float *xn = x + (n * g->C + grp * g->Cg) * HW, *dn = dy + (n * g->K + grp * g->Kg) * PQ;
        for (int64_t c = 0; c < g->Cg; c++)
            for (int64_t h = 0; h < g->H; h++)
                memcpy(xb + c * xplane + (h + g->ph) * d->Wp + g->pw, xn + c * HW + h * g->W,
                       (size_t)g->W * sizeof(float));
        for (int64_t k = 0; k < g->Kg; k++)
            for (int64_t p = 0; p < g->P; p++)
                memcpy(db + k * dplane + p * drow, dn + k * PQ + p * g->Q, (size_t)g->Q * sizeof(float));
        for (int64_t t0 = 0; t0 < d->tapsp; t0 += DWD_TB) {
            for (int i = 0; i < DWD_TB; i++) {
                const int64_t t = t0 + i, c = t / (g->R * g->S), r = t / g->S % g->R, s = t % g->S;
                off[i] = t < d->taps ? c * xplane + r * g->dh * d->Wp + s * g->dw : 0;
            }
            for (int64_t k0 = 0; k0 < d->kgp; k0 += DWD_KB)
                dwd_tile(xb, off, db + k0 * dplane, db + (k0 + 1) * dplane, g->P, d->Qv, g->sh * d->Wp, drow, &mask,
                         (dwd_vec *)ab + (k0 / DWD_KB * d->tapsp + t0) * DWD_KB);
        }
    }
    /* The lanes of each accumulator summed in a fixed order. */
    for (int64_t k = 0; k < g->Kg; k++)
        for (int64_t t = 0; t < d->taps; t++) {
            const int64_t t0 = t / DWD_TB * DWD_TB;
            const dwd_vec a = ((const dwd_vec *)ab)[(k / DWD_KB * d->tapsp + t0) * DWD_KB + (k % DWD_KB) * DWD_TB +
                                                    (t - t0)];
            part[k * d->taps + t] = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
        }
}

/* ---- Vectors along the output channels -------------------------------------------------------
 * With whole vectors of output channels (LeNet-5's conv2, whose 10 output columns would fill 62 %
 * of two 8-lane row vectors) the lanes are 16 output channels: the output gradient copied
 * channels-last (position-major, 16 floats per position), and a register tile of 16 channels x
 * DWK_TB taps
 *     acc[t] += dy_cl[p][q] * x[c_t][p sh + r_t dh][q sw + s_t dw]   (one broadcast per tap)
 * over the valid positions only, so no lane ever pairs with a position that does not exist. */
#define DWK_LANES 16
#define DWK_TB 6
typedef float dwk_vec __attribute__((vector_size(DWK_LANES * sizeof(float)), aligned(4)));

/* Per-thread floats: the padded image (Cg Hp Wp, Wp = W + 2 pw here), the channels-last output
 * gradient (kblocks P Q 16) and the accumulators (kblocks x taps rounded up to 6, 16 each). */
static int64_t dwk_tapsp(const dwd_geom *d) { return (d->taps + DWK_TB - 1) / DWK_TB * DWK_TB; }
static int64_t dwk_kblocks(const conv_geom *g) { return (g->Kg + DWK_LANES - 1) / DWK_LANES; }
static size_t dwk_thread_floats(const conv_geom *g, const dwd_geom *d) {
    return (size_t)(g->Cg * d->Hp * (g->W + 2 * g->pw) +
                    dwk_kblocks(g) * (g->P * g->Q + dwk_tapsp(d)) * DWK_LANES);
}

static ALWAYS_INLINE void dwk_tile(const conv_geom *g, const float *CNN_RESTRICT xb, int64_t Wp,
                                   const int64_t *off, const float *CNN_RESTRICT dcl, dwk_vec *CNN_RESTRICT acc) {
    dwk_vec a[DWK_TB];
    for (int t = 0; t < DWK_TB; t++) a[t] = acc[t];
    const int64_t o0 = off[0], o1 = off[1], o2 = off[2], o3 = off[3], o4 = off[4], o5 = off[5], sw = g->sw;
    for (int64_t p = 0; p < g->P; p++) {
        const float *CNN_RESTRICT xp = xb + p * g->sh * Wp;
        const float *CNN_RESTRICT dp = dcl + p * g->Q * DWK_LANES;
        for (int64_t q = 0; q < g->Q; q++) {
            const dwk_vec y = *(const dwk_vec *)(dp + q * DWK_LANES);
            const float *CNN_RESTRICT xq = xp + q * sw;
            a[0] += y * xq[o0];
            a[1] += y * xq[o1];
            a[2] += y * xq[o2];
            a[3] += y * xq[o3];
            a[4] += y * xq[o4];
            a[5] += y * xq[o5];
        }
    }
    for (int t = 0; t < DWK_TB; t++) acc[t] = a[t];
}

static ALWAYS_INLINE void dwk_item(const conv_geom *g, const dwd_geom *d, const float *x, const float *dy,
                                   int64_t grp, int64_t n0, int64_t cnt, float *part, float *buf) {
    const int64_t Wp = g->W + 2 * g->pw, xplane = d->Hp * Wp, HW = g->H * g->W, PQ = g->P * g->Q;
    const int64_t kbs = dwk_kblocks(g), tapsp = dwk_tapsp(d);
    float *xb = buf, *dcl = xb + g->Cg * xplane, *ab = dcl + kbs * PQ * DWK_LANES;
    int64_t off[DWK_TB];
    memset(ab, 0, (size_t)(kbs * tapsp * DWK_LANES) * sizeof(float));
    memset(dcl, 0, (size_t)(kbs * PQ * DWK_LANES) * sizeof(float)); /* channels past Kg stay 0 */
    memset(xb, 0, (size_t)(g->Cg * xplane) * sizeof(float));         /* the padding stays 0 */
    for (int64_t n = n0; n < n0 + cnt; n++) {
        const float *xn = x + (n * g->C + grp * g->Cg) * HW, *dn = dy + (n * g->K + grp * g->Kg) * PQ;
        for (int64_t c = 0; c < g->Cg; c++)
            for (int64_t h = 0; h < g->H; h++)
                memcpy(xb + c * xplane + (h + g->ph) * Wp + g->pw, xn + c * HW + h * g->W,
                       (size_t)g->W * sizeof(float));
        for (int64_t k = 0; k < g->Kg; k++) { /* (Kg, PQ) -> (kblock, PQ, 16) */
            float *dst = dcl + (k / DWK_LANES * PQ) * DWK_LANES + k % DWK_LANES;
            for (int64_t f = 0; f < PQ; f++) dst[f * DWK_LANES] = dn[k * PQ + f];
        }
        for (int64_t t0 = 0; t0 < tapsp; t0 += DWK_TB) {
            for (int i = 0; i < DWK_TB; i++) {
                const int64_t t = t0 + i, c = t / (g->R * g->S), r = t / g->S % g->R, s = t % g->S;
                off[i] = t < d->taps ? c * xplane + r * g->dh * Wp + s * g->dw : 0;
            }
            for (int64_t b = 0; b < kbs; b++)
                dwk_tile(g, xb, Wp, off, dcl + b * PQ * DWK_LANES, (dwk_vec *)ab + b * tapsp + t0);
        }
    }
    for (int64_t k = 0; k < g->Kg; k++)
        for (int64_t t = 0; t < d->taps; t++)
            part[k * d->taps + t] = ab[((k / DWK_LANES) * tapsp + t) * DWK_LANES + k % DWK_LANES];
}

typedef void (*dwd_fn)(const conv_geom *, const dwd_geom *, const float *, const float *, int64_t, int64_t,
                       int64_t, float *, float *);

#define DEFINE_DWD(isa, attr)                                                                                  \
    attr static void cnn_f32_conv_dw_direct__##isa(const conv_geom *g, const dwd_geom *d, const float *x,     \
                                                   const float *dy, int64_t grp, int64_t n0, int64_t cnt,     \
                                                   float *part, float *buf) {                                 \
        dwd_item(g, d, x, dy, grp, n0, cnt, part, buf);                                                       \
    }                                                                                                          \
    attr static void cnn_f32_conv_dw_kvec__##isa(const conv_geom *g, const dwd_geom *d, const float *x,       \
                                                 const float *dy, int64_t grp, int64_t n0, int64_t cnt,       \
                                                 float *part, float *buf) {                                   \
        dwk_item(g, d, x, dy, grp, n0, cnt, part, buf);                                                       \
    }

DEFINE_DWD(generic, )
#if CNN_X86
DEFINE_DWD(avx2, CNN_TARGET_AVX2)
DEFINE_DWD(avx512, CNN_TARGET_AVX512)
#endif

/* Whole vectors of output channels: the channel vectors; else the row vectors. */
static int dwd_kvec(const conv_geom *g) { return g->Kg >= DWK_MIN_KG && g->Kg % DWK_LANES == 0; }

static dwd_fn dwd_variant(int kvec) {
#if CNN_X86
    switch (cnn_isa_active()) {
    case CNN_ISA_AVX512: return kvec ? cnn_f32_conv_dw_kvec__avx512 : cnn_f32_conv_dw_direct__avx512;
    case CNN_ISA_AVX2: return kvec ? cnn_f32_conv_dw_kvec__avx2 : cnn_f32_conv_dw_direct__avx2;
    default: break;
    }
#endif
    return kvec ? cnn_f32_conv_dw_kvec__generic : cnn_f32_conv_dw_direct__generic;
}

static size_t dwd_floats(const conv_geom *g, const dwd_geom *d, int kvec) {
    return kvec ? dwk_thread_floats(g, d) : dwd_thread_floats(g, d);
}

int cnn_conv_backward_weight_direct_applies(const conv_geom *g) {
    if (g->Cg == 1 && g->G > 1) return 0; /* depthwise: its own loops */
    if (g->Kg > DWD_MAX_KG || g->Kg * g->Cg * g->R * g->S > DWD_MAX_WEIGHTS) return 0;
    const int kvec = dwd_kvec(g);
    if (!kvec && !(g->sw == 1 && g->Q >= DWD_MIN_Q)) return 0;
    const dwd_geom d = dwd_geometry(g);
    return dwd_floats(g, &d, kvec) <= DWD_MAX_THREAD_FLOATS;
}

cnn_status cnn_conv_backward_weight_direct(const conv_geom *g, const float *x, const float *dy, float *dw) {
    const dwd_geom d = dwd_geometry(g);
    const int64_t chunks = (g->N + DWD_CHUNK - 1) / DWD_CHUNK, per = g->Kg * d.taps;
    const int64_t round = CNN_MIN(chunks, (int64_t)DWD_ROUND_CHUNKS);
    /* The rounds' chunk sums (slot 5), and their total (slot 4: the trimmed weights of the data
     * gradient, never in the same call), added into dw only once every round has succeeded. */
    float *part = (float *)cnn_workspace(CNN_CONV_SLOT_TRIM_DW, (size_t)(g->G * round * per) * sizeof(float));
    float *total = (float *)cnn_workspace(CNN_CONV_SLOT_TRIM_W, (size_t)(g->G * per) * sizeof(float));
    if (!part || !total) return CNN_ERR_OUT_OF_MEMORY;
    memset(total, 0, (size_t)(g->G * per) * sizeof(float));
    const int kvec = dwd_kvec(g);
    const dwd_fn fn = dwd_variant(kvec);
    for (int64_t c0 = 0; c0 < chunks; c0 += round) { /* chunks [c0, c0 + cn), every group */
        const int64_t cn = CNN_MIN(round, chunks - c0), items = g->G * cn;
        const int nt = cnn_threads_for(items);
        cnn_status status = CNN_OK;
        CNN_UNUSED(nt);
#if CNN_OMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
        {
            /* Items split evenly by hand: a thread whose buffer failed skips its share without
             * leaving the others at a worksharing barrier. */
            float *buf = (float *)cnn_workspace(CNN_CONV_SLOT_COL, dwd_floats(g, &d, kvec) * sizeof(float));
            const int64_t t = CNN_OMP_NUM_THREADS(), id = CNN_OMP_THREAD_NUM();
            if (!buf) {
                CNN_PRAGMA(omp atomic write)
                status = CNN_ERR_OUT_OF_MEMORY;
            } else {
                for (int64_t i = items * id / t; i < items * (id + 1) / t; i++) {
                    const int64_t grp = i / cn, n0 = (c0 + i % cn) * DWD_CHUNK;
                    fn(g, &d, x, dy, grp, n0, CNN_MIN(DWD_CHUNK, g->N - n0), part + i * per, buf);
                }
            }
        }
        if (status != CNN_OK) return status; /* dw untouched */
        /* total += the round's chunk sums, added in chunk order. */
        for (int64_t grp = 0; grp < g->G; grp++)
            for (int64_t e = 0; e < per; e++) {
                float s = part[grp * cn * per + e];
                for (int64_t ch = 1; ch < cn; ch++) s += part[(grp * cn + ch) * per + e];
                total[grp * per + e] += s;
            }
    }
    for (int64_t e = 0; e < g->G * per; e++) dw[e] += total[e];
    return CNN_OK;
}
