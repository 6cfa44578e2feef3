/* SGEMM operator: argument checks, the Goto/BLIS blocked driver, threads, GEMV and pre-packing.
 *
 * Loop nest per thread (kernel orientation, M' x N' result, see gemm_internal.h):
 *   for each KC block of K          (kc x MR A panel = 12 KiB at kc 384: stays in L1 across jr)
 *     for each MC block of M'        pack A (mc x kc, MR panels)   -> L3 (shared 32 MiB)
 *       for each NC block of N'      pack B (kc x nc, NR panels)   -> L2 (1 MiB per core)
 *         for ir in MR steps         A micro-panel from L1
 *           for jr in NR steps       B micro-panel streamed from L2, C tile in registers
 * The fused epilogue (bias, residual, ReLU) is applied by the microkernel's store on the last KC
 * block, so C is written once per KC block and never revisited.
 *
 * Special shapes: N == 1 or M == 1 stream the matrix once (GEMV); N <= 8 with A contiguous along
 * k (or the mirror case) runs in dot form; a narrow N otherwise swaps to C^T = op(B)^T op(A)^T
 * when that wastes much less tile padding; with few rows a row-major B is read in place.
 *
 * Threads: the M' x N' panel grid is cut into tm x tn rectangles (tm * tn = threads) minimising the
 * largest rectangle; each thread runs the loop nest above on its rectangle with its own packing
 * buffers, so threads never wait on each other. Both cores stay busy for conv-like shapes (M' = 64
 * is split along N) and square ones (split along M, no B-panel imbalance). */
#include "gemm_internal.h"

#include <string.h>

/* Workspace slots used here; callers holding cnn_workspace buffers across a cnn_sgemm call must
 * use other slots (see cnn_gemm.h). */
#define SLOT_A CNN_GEMM_WORKSPACE_SLOT_A
#define SLOT_B CNN_GEMM_WORKSPACE_SLOT_B

/* Cache blocking per variant. Chosen on the development machine (2 cores of an AMD EPYC Zen 4/5
 * class: 32 KiB L1d and 1 MiB L2 per core, 32 MiB shared L3): kc x MR of A in L1 with room for
 * the streamed B rows, kc x NC of B in most of the L2, MC x kc of A well inside L3 for both threads.
 * AVX-512 took kc 384 and mc 2048 in the eighth session (from 256 and 1024): fewer passes over C
 * and B packed once per K block on square sizes up to 2048. C harness, minimum of 3-10 calls,
 * 4-5 alternated runs: 1 thread 2048^3 161.9-166.1 -> 158.4-164.8 ms, 1024^3 20.48-20.57 ->
 * 20.27-20.46 ms; 2 threads 2048^3 81.1-83.7 -> 80.1-84.1 ms; the conv-like shapes 1-2 % faster
 * (64 x 3136 x 576: 1.066-1.076 -> 1.047-1.056 ms) except 64 x 12544 x 147, unchanged. */
typedef struct gemm_blocking {
    size_t kc, mc, nc;
} gemm_blocking;

static const cnn_gemm_variant *variant_for(cnn_isa isa, gemm_blocking *blk) {
#if CNN_X86
    if (isa == CNN_ISA_AVX512) {
        if (blk) *blk = (gemm_blocking){.kc = 384, .mc = 2048, .nc = 480};
        return &cnn_gemm_variant_avx512;
    }
    if (isa == CNN_ISA_AVX2) {
        if (blk) *blk = (gemm_blocking){.kc = 256, .mc = 1020, .nc = 512};
        return &cnn_gemm_variant_avx2;
    }
#endif
    CNN_UNUSED(isa);
    if (blk) *blk = (gemm_blocking){.kc = 256, .mc = 960, .nc = 512};
    return &cnn_gemm_variant_generic;
}

/* The nc above were chosen with 1 MiB of L2 per core. With less, the kc x nc block of B would no
 * longer stay in L2 next to the streamed C and A: nc shrinks in proportion (whole panels, at least
 * one), and never grows past the tuned value. Zen 3 class (512 KiB L2), AVX2, nc 512 -> 256,
 * C harness, the two builds called in turn 20-100 times, median of the per-call ratios new / old:
 * ResNet-50's 1x1 convolutions 0.92-0.97 (256 -> 64 at 56x56 0.92, 1024 -> 256 at 14x14 0.94,
 * 2048 -> 512 at 7x7 0.93), 1024^3 0.93-0.95 on 2 threads and 0.95-1.00 on one, 64 x 3136 x 576
 * 0.92-0.97, 256 x 196 x 2304 0.95-1.02, 2048^3 1.03 (4 calls). */
#define TUNED_L2_BYTES ((size_t)1 << 20)

static size_t nc_for_l2(size_t nc, size_t nr) {
    const size_t l2 = cnn_l2_cache_bytes();
    if (l2 == 0 || l2 >= TUNED_L2_BYTES) return nc;
    const size_t fit = (size_t)((double)nc * (double)l2 / (double)TUNED_L2_BYTES) / nr * nr;
    return fit < nr ? nr : fit;
}

static size_t round_up(size_t x, size_t q) { return (x + q - 1) / q * q; }
static size_t ceil_div(size_t x, size_t q) { return (x + q - 1) / q; }

/* K is cut into ceil(K / kc_max) nearly equal blocks (576 -> 2 x 288 rather than 256+256+64). */
static size_t k_blocks(size_t K, size_t kc_max) { return K == 0 ? 0 : ceil_div(K, kc_max); }
static size_t k_start(size_t K, size_t nblk, size_t p) { return K * p / nblk; }

/* ---- the blocked driver ------------------------------------------------------------------- */

typedef struct gemm_problem {
    const cnn_gemm_variant *v;
    gemm_blocking blk;
    size_t M, N, K;              /* kernel orientation */
    const float *a;              /* A'(i,k) = a[i*a_rs + k*a_ks], unless pa */
    size_t a_rs, a_ks;
    const float *b;              /* B'(k,j) = b[k*b_ks + j*b_cs], unless pb */
    size_t b_ks, b_cs;
    const float *pa, *pb;        /* pre-packed panels: [K block][panel][kc][MR or NR] */
    cnn_gemm_tile base;          /* C and epilogue at (0,0); beta of the first K block */
} gemm_problem;

/* The transposed orientation must waste this much less padding to be chosen: it stores through a
 * buffer and usually needs a transposing pack. 512 x 49 x 4608 measured ~8% faster unswapped
 * (cost ratio 1.14) on the development machine, 1000 x 8 (ratio 2) much faster swapped. */
#define SWAP_MARGIN 1.25

/* Up to this many columns a weight matrix times a small batch runs in dot form (dot8_run). */
#define DOT8_MAX_N 8

/* DIRECT_B: reading B in place instead of packing it, for few rows (cnn_gemm_variant's
 * direct_b_max_rows). AVX-512 (48-column panels, 3 cache lines per row of B), Zen 5 class:
 * 64 x 3136 x 576 went from ~84 to ~96 GFLOP/s and 128 x 784 x 1152 from ~95 to ~105 on one
 * core; 256 and 512 rows showed no clear difference either way. AVX2 (16-column panels, one line
 * per row, each row a new page), Zen 3 class, 1 thread, C harness, minimum of 4-5 alternated
 * runs: in place lost by 1.3-1.6x against the row-by-row pack (64 x 3136 x 256 2.59 against
 * 1.62 ms, 64 x 3136 x 576 5.28 against 3.90, 128 x 784 x 512 2.33 against 1.68), so AVX2 and
 * the portable kernel always pack. */

/* DIRECT_A: reading A in place instead of packing it (cnn_gemm_variant's kernel_a), when the
 * result has at most this many columns (the whole result, not a thread's share: the edge kernels
 * of the two paths sum in different orders, and the choice must not depend on the thread count):
 * each A element then serves at most DIRECT_A_MAX_COLS / NR tiles, and the pack (a read, a
 * transposing write and a read back) costs more than reading six rows in place. AVX2 only: on
 * AVX-512 the 8 x 48 kernel reading its eight rows in place (and 1-2 edge columns in dot form)
 * took 1.8-2.0x the time of the packed path (Zen 4 class, 2 threads, C harness, builds called in
 * turn 15 times, both orders: 512 x 49 x 4608, 2048 x 49 x 512, 1024 x 64 x 1024, 512 x 52 x
 * 4608), so the AVX-512 variant always packs. Zen 3 class, C harness, the builds called in
 * turn 30-40 times, median of the per-call ratios new / old: 512 x 49 x 4608 0.85-0.90 on 2
 * threads, 0.89-0.94 on 1; 2048 x 49 x 512 0.80-0.86. A limit of 256 or none measured the same
 * on these and 0.99-1.07 on 512 x 256 x 512, 1024^3 and 64 x 3136 x 576; prefetching the six rows
 * 64-256 floats ahead measured 1.01-1.02. */
#define DIRECT_A_MAX_COLS 64

/* The longest K block whose 1-2 edge columns cols_a takes (a stack copy of them). */
#define COLS_A_MAX_KC 512

#define PACK_B_PREFETCH_ROWS 4

/* Packs nc columns of a B' whose rows are contiguous (element (k, j) at b[k*ks + j]) into
 * ceil(nc / NR) panels of kc x NR, zero-padding the last. Row by row rather than panel by panel:
 * each k reads one contiguous run of nc floats, where a panel at a time reads NR floats from kc
 * rows ks apart (a new page per row when ks is 1,024 floats or more, out of the prefetchers'
 * reach). AVX2, 1 thread, 1024^3: packing was 29 % of the samples panel by panel.
 * A row's run is still short (nc floats: 1 KiB at nc 256) and, for an image plane of 1,024 floats
 * or more, on a page of its own, so the hardware prefetchers never got going and the copy waited on
 * every row: the rows PACK_B_PREFETCH_ROWS ahead are fetched while a row is copied. Zen 3 class,
 * AVX2, C harness, the builds called in turn 30 times, median per-call ratio new / old:
 * 64 x 3136 x 256 0.91-0.97 on 1 thread and 0.94-0.95 on 2, 128 x 784 x 512 0.96-0.98; ResNet-50's
 * 1x1 convolutions (pre-packed weights, 2 threads) 256 -> 64 at 56x56 0.94, 512 -> 128 at 28x28
 * 0.93, 64 -> 256 0.98; the layers with many output channels (B reused across them) 0.99-1.02,
 * 1024^3 0.99-1.00. 2, 4 and 8 rows ahead measured the same. */
static inline __attribute__((always_inline)) void pack_b_rows_nr(const float *b, size_t ks, size_t nc, size_t kc,
                                                                 const size_t NR, float *dst) {
    const size_t full = nc / NR * NR, tail = nc - full;
    for (size_t k = 0; k < kc; k++) {
        const float *src = b + k * ks;
        float *d = dst + k * NR;
        if (k + PACK_B_PREFETCH_ROWS < kc)
            for (size_t j = 0; j < nc; j += 16) /* a 64-byte line per prefetch */
                __builtin_prefetch(src + PACK_B_PREFETCH_ROWS * ks + j, 0, 3);
        for (size_t jr = 0; jr < full; jr += NR) memcpy(d + jr * kc, src + jr, NR * sizeof(float));
        if (tail) {
            memcpy(d + full * kc, src + full, tail * sizeof(float));
            memset(d + full * kc + tail, 0, (NR - tail) * sizeof(float));
        }
    }
}

/* With NR a constant (the AVX2 and AVX-512 panel widths) each panel row is an inline copy. */
static void pack_b_rows(const float *b, size_t ks, size_t nc, size_t kc, size_t NR, float *dst) {
    if (NR == 16) pack_b_rows_nr(b, ks, nc, kc, 16, dst);
    else if (NR == 48) pack_b_rows_nr(b, ks, nc, kc, 48, dst);
    else pack_b_rows_nr(b, ks, nc, kc, NR, dst);
}

/* An edge of nc <= ew columns packed as a panel of rows ew floats apart, zero-padded (the narrow
 * kernel's panel, see gemm_block). */
static void pack_b_edge(const float *b, size_t ks, size_t nc, size_t kc, size_t ew, float *dst) {
    for (size_t k = 0; k < kc; k++) {
        const float *src = b + k * ks;
        float *d = dst + k * ew;
        for (size_t j = 0; j < ew; j++) d[j] = j < nc ? src[j] : 0.0f;
    }
}

/* Runs the loop nest on rows [i0, i1) and columns [j0, j1) of the kernel-orientation result. */
static cnn_status gemm_block(const gemm_problem *pr, size_t i0, size_t i1, size_t j0, size_t j1) {
    if (i0 >= i1 || j0 >= j1) return CNN_OK;
    const cnn_gemm_variant *v = pr->v;
    const size_t MR = v->mr, NR = v->nr, K = pr->K;
    const size_t nkb = k_blocks(K, pr->blk.kc);
    const size_t mc_max = CNN_MIN(pr->blk.mc, round_up(i1 - i0, MR));
    const size_t nc_blk = nc_for_l2(pr->blk.nc, NR);
    const size_t nc_max = CNN_MIN(nc_blk, round_up(j1 - j0, NR));
    const size_t kc_max = ceil_div(K, nkb);
    const size_t m_pad = round_up(pr->M, MR), n_pad = round_up(pr->N, NR);
    /* Few rows (conv-like: M = 64 channels, N = thousands of pixels) reuse each B element only
     * M times, too few to repay a packing pass over B: full-width panels of a row-major B are
     * then read in place, on the variants where that measured faster (DIRECT_B above). */
    const int direct_b = !pr->pb && pr->b_cs == 1 && i1 - i0 <= v->direct_b_max_rows;
    /* Few columns (a 7x7 plane: N = 49, four panels) use each A element only a few times, too few
     * to repay packing A: full MR-row panels of an A contiguous along k are then read in place
     * (DIRECT_A above), once per K block. */
    const int direct_a = v->kernel_a && !pr->pa && pr->a_ks == 1 && pr->N <= DIRECT_A_MAX_COLS;
    float *abuf = NULL, *bbuf = NULL;
    if (!pr->pa && !(abuf = cnn_workspace(SLOT_A, mc_max * kc_max * sizeof(float))))
        return CNN_ERR_OUT_OF_MEMORY;
    if (!pr->pb && !(bbuf = cnn_workspace(SLOT_B, nc_max * kc_max * sizeof(float))))
        return CNN_ERR_OUT_OF_MEMORY;

    for (size_t p = 0; p < nkb; p++) {
        const size_t k0 = k_start(K, nkb, p), kc = k_start(K, nkb, p + 1) - k0;
        const int first = p == 0, last = p + 1 == nkb;
        cnn_gemm_tile t = pr->base;
        if (!first) t.beta = 1.0f;
        if (!last) {
            t.bias = NULL;
            t.res = NULL;
            t.relu = 0;
        }
        for (size_t ic = i0; ic < i1; ic += pr->blk.mc) {
            const size_t mc = CNN_MIN(pr->blk.mc, i1 - ic);
            const float *ablk;
            if (pr->pa) {
                ablk = pr->pa + k0 * m_pad + ic * kc;
            } else {
                for (size_t ir = direct_a ? mc / MR * MR : 0; ir < mc; ir += MR) /* direct: the edge only */
                    v->pack(pr->a + (ic + ir) * pr->a_rs + k0 * pr->a_ks, pr->a_rs, pr->a_ks,
                            CNN_MIN(MR, mc - ir), kc, MR, abuf + ir * kc);
                ablk = abuf;
            }
            for (size_t jc = j0; jc < j1; jc += nc_blk) {
                const size_t nc = CNN_MIN(nc_blk, j1 - jc);
                const float *bblk = pr->pb ? pr->pb + k0 * n_pad + jc * kc : bbuf;
                const size_t full = nc / NR * NR, tail = nc - full;
                /* An edge panel the narrow kernel takes is packed narrow, its rows narrow_max
                 * floats apart instead of NR, so the kc rows the kernel walks for every A panel
                 * stay in L1: 48 floats apart on AVX-512, each k step was a new cache line, and the
                 * kernel took 7.6 % of 512 x 49 x 4608's samples for 1 column in 49. Zen 4 class,
                 * 2 threads, C harness, builds called in turn 40-100 times, median per-call ratio
                 * new / old (old / new, order reversed): 512 x 49 x 4608 0.94 (1.05), 2048 x 49 x
                 * 512 0.95 (1.05); ResNet-50's layers at 7x7 (pre-packed weights) 0.94 (1.05-1.07)
                 * for the 1x1 ones and the 3x3/2 from 14x14; the 196-column layers (4 edge
                 * columns) 0.99-1.01; the other shapes within 1 %. */
                const size_t ew = !pr->pb && tail > 0 && tail <= v->narrow_max ? v->narrow_max : NR;
                if (!pr->pb) {
                    const size_t jr0 = direct_b ? full : 0; /* full panels are read in place */
                    const size_t wide = ew == NR ? nc : full; /* columns packed NR wide */
                    if (pr->b_cs == 1) {
                        if (wide > jr0)
                            pack_b_rows(pr->b + k0 * pr->b_ks + jc + jr0, pr->b_ks, wide - jr0, kc, NR, bbuf + jr0 * kc);
                    } else {
                        for (size_t jr = jr0; jr < wide; jr += NR)
                            v->pack(pr->b + k0 * pr->b_ks + (jc + jr) * pr->b_cs, pr->b_cs, pr->b_ks,
                                    CNN_MIN(NR, nc - jr), kc, NR, bbuf + jr * kc);
                    }
                    if (ew != NR) {
                        if (pr->b_cs == 1)
                            pack_b_edge(pr->b + k0 * pr->b_ks + jc + full, pr->b_ks, tail, kc, ew, bbuf + full * kc);
                        else
                            v->pack(pr->b + k0 * pr->b_ks + (jc + full) * pr->b_cs, pr->b_cs, pr->b_ks, tail, kc, ew,
                                    bbuf + full * kc);
                    }
                }
                /* In place, an edge of 1-2 columns runs as dot products along k (cols_a): its
                 * columns are copied out contiguous once per block. */
                float bcol[2 * COLS_A_MAX_KC];
                const int use_cols = direct_a && v->cols_a && tail >= 1 && tail <= 2 && kc <= COLS_A_MAX_KC;
                if (use_cols)
                    for (size_t c = 0; c < tail; c++)
                        for (size_t k = 0; k < kc; k++) bcol[c * kc + k] = bblk[full * kc + k * ew + c];
                for (size_t ir = 0; ir < mc; ir += MR) {
                    const size_t i = ic + ir, mr = CNN_MIN(MR, mc - ir);
                    for (size_t jr = 0; jr < nc; jr += NR) {
                        const size_t j = jc + jr, nr = CNN_MIN(NR, nc - jr);
                        cnn_gemm_tile tt = t;
                        tt.c = t.c + i * t.rs_c + j * t.cs_c;
                        if (tt.bias) tt.bias += tt.bias_on_j ? j : i;
                        if (tt.res) tt.res += i * t.rs_r + j * t.cs_r;
                        const int in_place = direct_b && nr == NR;
                        const float *bp = in_place ? pr->b + k0 * pr->b_ks + j : bblk + jr * kc;
                        const size_t bs = in_place ? pr->b_ks : jr == full ? ew : NR;
                        const int narrow = nr <= v->narrow_max;
                        if (direct_a && mr == MR && use_cols && narrow)
                            v->cols_a(kc, pr->a + i * pr->a_rs + k0, pr->a_rs, bcol, nr, &tt);
                        else if (direct_a && mr == MR)
                            (narrow ? v->narrow_a : v->kernel_a)(kc, pr->a + i * pr->a_rs + k0, pr->a_rs, bp, bs,
                                                                 nr, &tt);
                        else
                            (narrow ? v->narrow : v->kernel)(kc, ablk + ir * kc, bp, bs, mr, nr, &tt);
                    }
                }
            }
        }
    }
    return CNN_OK;
}

#if CNN_OMP
/* Splits the mp x np panel grid over `threads` into tm x tn rectangles: smallest largest
 * rectangle first, then the least duplicated packing. */
static void split_grid(size_t mp, size_t np, int threads, size_t *tm, size_t *tn) {
    size_t best_m = 1, best_n = 1;
    double best = -1;
    for (size_t a = 1; a <= (size_t)threads; a++) {
        if (threads % a) continue;
        const size_t b = (size_t)threads / a;
        if (a > mp || b > np) continue;
        const double work = (double)ceil_div(mp, a) * (double)ceil_div(np, b);
        const double dup = (double)(a - 1) * (double)np + (double)(b - 1) * (double)mp;
        const double score = work * 1e6 + dup;
        if (best < 0 || score < best) {
            best = score;
            best_m = a;
            best_n = b;
        }
    }
    *tm = best_m;
    *tn = best_n;
}
#endif

/* Below this many multiply-adds a parallel region costs more than it saves. */
#define GEMM_PARALLEL_MIN_MACS (size_t)(48 * 48 * 64)

static int gemm_threads(size_t M, size_t N, size_t K) {
    const double macs = (double)M * (double)N * (double)(K ? K : 1);
    return macs < (double)GEMM_PARALLEL_MIN_MACS ? 1 : cnn_team_threads();
}

static cnn_status gemm_run(const gemm_problem *pr) {
    const size_t MR = pr->v->mr, NR = pr->v->nr;
    const size_t mp = ceil_div(pr->M, MR), np = ceil_div(pr->N, NR);
    int threads = gemm_threads(pr->M, pr->N, pr->K);
    if ((double)threads > (double)mp * (double)np) threads = (int)(mp * np);
    if (threads <= 1) return gemm_block(pr, 0, pr->M, 0, pr->N);
    cnn_status status = CNN_OK;
#if CNN_OMP
    CNN_PRAGMA(omp parallel num_threads(threads))
    {
        const int nt = omp_get_num_threads(), id = omp_get_thread_num();
        size_t tm, tn;
        split_grid(mp, np, nt, &tm, &tn);
        const size_t ti = (size_t)id / tn, tj = (size_t)id % tn;
        if (ti < tm) {
            const size_t i0 = mp * ti / tm * MR, i1 = CNN_MIN(pr->M, mp * (ti + 1) / tm * MR);
            const size_t j0 = np * tj / tn * NR, j1 = CNN_MIN(pr->N, np * (tj + 1) / tn * NR);
            const cnn_status s = gemm_block(pr, i0, i1, j0, j1);
            if (s != CNN_OK) {
                CNN_PRAGMA(omp atomic write)
                status = s;
            }
        }
    }
#endif
    return status;
}

/* ---- argument checks, K == 0, GEMV -------------------------------------------------------- */

static cnn_status check_c_epilogue(size_t N, const float *C, size_t ldc, const cnn_epilogue *ep) {
    if (!C || ldc < N) return CNN_ERR_INVALID_ARGUMENT;
    if (ep && ep->residual && ep->residual_ld < N) return CNN_ERR_INVALID_ARGUMENT;
    return CNN_OK;
}

static int valid_trans(cnn_transpose t) { return t == CNN_NO_TRANS || t == CNN_TRANS; }

/* The tile of the whole C in its own orientation (rows = i). */
static cnn_gemm_tile c_tile(float *C, size_t ldc, float alpha, float beta, const cnn_epilogue *ep) {
    cnn_gemm_tile t = {.c = C, .rs_c = ldc, .cs_c = 1, .alpha = alpha, .beta = beta};
    if (ep) {
        t.bias = ep->bias;
        t.bias_on_j = ep->bias_per_column != 0;
        t.res = ep->residual;
        t.rs_r = ep->residual_ld;
        t.cs_r = 1;
        t.relu = ep->relu != 0;
    }
    return t;
}

/* The same tile seen transposed (rows = j), for the swapped orientation. */
static cnn_gemm_tile transpose_tile(cnn_gemm_tile t) {
    size_t s = t.rs_c;
    t.rs_c = t.cs_c;
    t.cs_c = s;
    s = t.rs_r;
    t.rs_r = t.cs_r;
    t.cs_r = s;
    t.bias_on_j = !t.bias_on_j;
    return t;
}

/* K == 0: C = beta * C, then the epilogue (one M x N pass; no A or B). */
static void scale_only(size_t M, size_t N, const cnn_gemm_tile *t) {
    float zeros[64] = {0};
    for (size_t i = 0; i < M; i++) {
        for (size_t j = 0; j < N; j += 64) {
            cnn_gemm_tile tt = *t;
            tt.c += i * t->rs_c + j * t->cs_c;
            if (tt.bias) tt.bias += tt.bias_on_j ? j : i;
            if (tt.res) tt.res += i * t->rs_r + j * t->cs_r;
            cnn_gemm_store_tile(zeros, 0, 1, CNN_MIN(64, N - j), &tt);
        }
    }
}

/* y (n outputs, t->rs_c apart) = alpha * op(mat) x + beta * y, then the epilogue; `dot_form`:
 * output o is the dot of row o of mat (contiguous along k) with x, else the axpy form (mat is
 * k x n, contiguous along the outputs). x is contiguous. */
static void gemv_run(const cnn_gemm_variant *v, int dot_form, size_t n, size_t K, const float *mat,
                     size_t ld, const float *x, const cnn_gemm_tile *t) {
    const double macs = (double)n * (double)K;
    int threads = macs < 65536.0 ? 1 : cnn_team_threads();
    const size_t chunks = ceil_div(n, 64);
    if ((size_t)threads > chunks) threads = (int)chunks;
    CNN_UNUSED(threads);
#if CNN_OMP
    CNN_PRAGMA(omp parallel num_threads(threads) if (threads > 1))
#endif
    {
        const size_t nt = (size_t)CNN_OMP_NUM_THREADS(), id = (size_t)CNN_OMP_THREAD_NUM();
        const size_t o0 = chunks * id / nt * 64, o1 = CNN_MIN(n, chunks * (id + 1) / nt * 64);
        float y[256];
        for (size_t o = o0; o < o1; o += 256) {
            const size_t cnt = CNN_MIN(256, o1 - o);
            if (dot_form) v->gemv_dot(cnt, K, mat + o * ld, ld, x, y);
            else v->gemv_axpy(cnt, K, mat + o, ld, x, y);
            cnn_gemm_tile tt = *t;
            tt.c += o * t->rs_c;
            if (tt.bias && !tt.bias_on_j) tt.bias += o;
            if (tt.res) tt.res += o * t->rs_r;
            cnn_gemm_store_tile(y, 1, cnt, 1, &tt);
        }
    }
}

/* Few columns (n <= 8, a fully connected layer on a small batch): C(rows x n) = X Y^T in dot form,
 * X (rows x K) contiguous along k read in place, op'd columns gathered into y (8 x K, zero rows
 * past n). Threads split the rows. */
static cnn_status dot8_run(const cnn_gemm_variant *v, size_t rows, size_t n, size_t K, const float *x,
                           size_t ldx, const float *ysrc, size_t y_rs, size_t y_ks, const cnn_gemm_tile *t) {
    /* Rows of y one cache line more than a multiple of 64 bytes apart: with a power-of-two K they
     * would otherwise all fall into the same L1 set (8 ways for 8 rows plus the x rows). */
    const size_t ys = round_up(K, 16) + 16;
    float *y = cnn_workspace(SLOT_B, 8 * ys * sizeof(float));
    if (!y) return CNN_ERR_OUT_OF_MEMORY;
    for (size_t j = 0; j < 8; j++)
        for (size_t k = 0; k < K; k++) y[j * ys + k] = j < n ? ysrc[j * y_rs + k * y_ks] : 0.0f;
    const double macs = (double)rows * (double)K * 8.0;
    int threads = macs < (double)GEMM_PARALLEL_MIN_MACS ? 1 : cnn_team_threads();
    const size_t chunks = ceil_div(rows, 32);
    if ((size_t)threads > chunks) threads = (int)chunks;
    CNN_UNUSED(threads);
#if CNN_OMP
    CNN_PRAGMA(omp parallel num_threads(threads) if (threads > 1))
#endif
    {
        const size_t nt = (size_t)CNN_OMP_NUM_THREADS(), id = (size_t)CNN_OMP_THREAD_NUM();
        const size_t r0 = chunks * id / nt * 32, r1 = CNN_MIN(rows, chunks * (id + 1) / nt * 32);
        float out[32 * 8];
        for (size_t r = r0; r < r1; r += 32) {
            const size_t cnt = CNN_MIN(32, r1 - r);
            v->dot8(cnt, K, x + r * ldx, ldx, y, ys, out);
            cnn_gemm_tile tt = *t;
            tt.c += r * t->rs_c;
            if (tt.bias && !tt.bias_on_j) tt.bias += r;
            if (tt.res) tt.res += r * t->rs_r;
            cnn_gemm_store_tile(out, 8, cnt, n, &tt);
        }
    }
    return CNN_OK;
}

/* x[k] = src[k * stride], copied to the calling thread's workspace when strided. */
static const float *contiguous_vector(const float *src, size_t stride, size_t K) {
    if (stride == 1) return src;
    float *x = cnn_workspace(SLOT_B, K * sizeof(float));
    if (!x) return NULL;
    for (size_t k = 0; k < K; k++) x[k] = src[k * stride];
    return x;
}

/* Padding waste of a M x N problem on the variant's tiles (lower is better). */
static double tile_cost(const cnn_gemm_variant *v, size_t M, size_t N) {
    return (double)round_up(M, v->mr) * (double)round_up(N, v->n_quantum);
}

cnn_status cnn_sgemm(cnn_transpose ta, cnn_transpose tb, size_t M, size_t N, size_t K, float alpha,
                     const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                     size_t ldc, const cnn_epilogue *ep) {
    // op(A) is (M, K), op(B) is (K, N), C is (M, N) with leading dimension ldc
    if (!valid_trans(ta) || !valid_trans(tb)) return CNN_ERR_INVALID_ARGUMENT;
    if (M == 0 || N == 0) return CNN_OK;
    cnn_status s = check_c_epilogue(N, C, ldc, ep);
    if (s != CNN_OK) return s;
    const cnn_gemm_tile ct = c_tile(C, ldc, alpha, beta, ep);
    if (K == 0) {
        scale_only(M, N, &ct);
        return CNN_OK;
    }
    if (!A || !B) return CNN_ERR_INVALID_ARGUMENT;
    if (lda < (ta == CNN_NO_TRANS ? K : M) || ldb < (tb == CNN_NO_TRANS ? N : K))
        return CNN_ERR_INVALID_ARGUMENT;
    gemm_blocking blk;
    const cnn_gemm_variant *v = variant_for(cnn_isa_active(), &blk);

    /* op(A)(i,k) = A[i*a_rs + k*a_ks]; op(B)(k,j) = B[k*b_ks + j*b_cs]. */
    const size_t a_rs = ta == CNN_NO_TRANS ? lda : 1, a_ks = ta == CNN_NO_TRANS ? 1 : lda;
    const size_t b_ks = tb == CNN_NO_TRANS ? ldb : 1, b_cs = tb == CNN_NO_TRANS ? 1 : ldb;

    if (N == 1 || M == 1) {
        /* Matrix-vector: stream the matrix once instead of packing it into mostly empty tiles. */
        if (N == 1) {
            const float *x = contiguous_vector(B, b_ks, K);
            if (!x) return CNN_ERR_OUT_OF_MEMORY;
            gemv_run(v, a_ks == 1, M, K, A, a_ks == 1 ? a_rs : a_ks, x, &ct);
        } else {
            const float *x = contiguous_vector(A, a_ks, K);
            if (!x) return CNN_ERR_OUT_OF_MEMORY;
            const cnn_gemm_tile rt = transpose_tile(ct); /* outputs run along j */
            gemv_run(v, b_ks == 1, N, K, B, b_ks == 1 ? b_cs : b_ks, x, &rt);
        }
        return CNN_OK;
    }

    if (N <= DOT8_MAX_N && a_ks == 1 && M >= 4 * N)
        return dot8_run(v, M, N, K, A, a_rs, B, b_cs, b_ks, &ct);
    if (M <= DOT8_MAX_N && b_ks == 1 && N >= 4 * M) {
        const cnn_gemm_tile rt = transpose_tile(ct);
        return dot8_run(v, N, M, K, B, b_cs, A, a_rs, a_ks, &rt);
    }

    gemm_problem pr = {.v = v, .blk = blk, .K = K};
    if (tile_cost(v, N, M) * SWAP_MARGIN < tile_cost(v, M, N)) {
        /* C^T = op(B)^T op(A)^T: a narrow N (a few columns) becomes the well-tiled dimension. */
        pr.M = N;
        pr.N = M;
        pr.a = B;
        pr.a_rs = b_cs;
        pr.a_ks = b_ks;
        pr.b = A;
        pr.b_ks = a_ks;
        pr.b_cs = a_rs;
        pr.base = transpose_tile(ct);
    } else {
        pr.M = M;
        pr.N = N;
        pr.a = A;
        pr.a_rs = a_rs;
        pr.a_ks = a_ks;
        pr.b = B;
        pr.b_ks = b_ks;
        pr.b_cs = b_cs;
        pr.base = ct;
    }
    return gemm_run(&pr);
}

/* ---- pre-packed operands ------------------------------------------------------------------ */

/* Header of a packed operand; the panels follow at offset 64 (keeps them 64-byte aligned when the
 * buffer is). `rows` is M for A (or N for B), `depth` is K. */
typedef struct packed_header {
    uint32_t magic, isa;
    uint64_t rows, depth, width, kc;
} packed_header;

#define PACKED_MAGIC_A 0x41504e43u /* "CNPA" */
#define PACKED_MAGIC_B 0x42504e43u /* "CNPB" */
#define PACKED_DATA_OFFSET 64

_Static_assert(sizeof(packed_header) <= PACKED_DATA_OFFSET, "packed header fits its slot");

/* Bytes for the most padding of all variants, so a size queried under one ISA suffices for
 * packing under any other. 0 on overflow. */
static size_t packed_size(size_t rows, size_t K, int for_a) {
    size_t padded = 0;
    for (int isa = CNN_ISA_GENERIC; isa <= CNN_ISA_AVX512; isa++) {
#if !CNN_X86
        if (isa != CNN_ISA_GENERIC) break;
#endif
        const cnn_gemm_variant *v = variant_for((cnn_isa)isa, NULL);
        const size_t width = for_a ? v->mr : v->nr;
        if (rows > SIZE_MAX - width) return 0;
        padded = CNN_MAX(padded, round_up(rows, width));
    }
    if (K && padded > (SIZE_MAX - PACKED_DATA_OFFSET) / sizeof(float) / K) return 0;
    return PACKED_DATA_OFFSET + padded * K * sizeof(float);
}

size_t cnn_sgemm_packed_a_size(size_t M, size_t K) { return packed_size(M, K, 1); }
size_t cnn_sgemm_packed_b_size(size_t K, size_t N) { return packed_size(N, K, 0); }

/* Packs X (rows x K, element (r,k) at x[r*rs + k*ks]) as [K block][panel][kc][width]. */
static void pack_operand(const cnn_gemm_variant *v, size_t kc_max, size_t width, size_t rows, size_t K,
                         const float *x, size_t rs, size_t ks, float *dst) {
    const size_t nkb = k_blocks(K, kc_max), padded = round_up(rows, width);
    for (size_t p = 0; p < nkb; p++) {
        const size_t k0 = k_start(K, nkb, p), kc = k_start(K, nkb, p + 1) - k0;
        for (size_t r = 0; r < rows; r += width)
            v->pack(x + r * rs + k0 * ks, rs, ks, CNN_MIN(width, rows - r), kc, width,
                    dst + k0 * padded + r * kc);
    }
}

static cnn_status pack_common(uint32_t magic, size_t rows, size_t K, const float *x, size_t rs, size_t ks,
                              void *packed) {
    if (!packed) return CNN_ERR_INVALID_ARGUMENT;
    if (packed_size(rows, K, magic == PACKED_MAGIC_A) == 0) return CNN_ERR_INVALID_ARGUMENT;
    if (rows && K && !x) return CNN_ERR_INVALID_ARGUMENT;
    gemm_blocking blk;
    const cnn_isa isa = cnn_isa_active();
    const cnn_gemm_variant *v = variant_for(isa, &blk);
    const size_t width = magic == PACKED_MAGIC_A ? v->mr : v->nr;
    packed_header h = {.magic = magic, .isa = (uint32_t)isa, .rows = rows, .depth = K, .width = width,
                       .kc = blk.kc};
    memcpy(packed, &h, sizeof h);
    if (rows && K)
        pack_operand(v, blk.kc, width, rows, K, x, rs, ks, (float *)((char *)packed + PACKED_DATA_OFFSET));
    return CNN_OK;
}

cnn_status cnn_sgemm_pack_a(cnn_transpose ta, size_t M, size_t K, const float *A, size_t lda, void *packed) {
    // op(A) is (M, K); packed as MR-row panels
    if (!valid_trans(ta)) return CNN_ERR_INVALID_ARGUMENT;
    if (M && K && lda < (ta == CNN_NO_TRANS ? K : M)) return CNN_ERR_INVALID_ARGUMENT;
    return pack_common(PACKED_MAGIC_A, M, K, A, ta == CNN_NO_TRANS ? lda : 1, ta == CNN_NO_TRANS ? 1 : lda,
                       packed);
}

cnn_status cnn_sgemm_pack_b(cnn_transpose tb, size_t K, size_t N, const float *B, size_t ldb, void *packed) {
    // op(B) is (K, N); packed as NR-column panels
    if (!valid_trans(tb)) return CNN_ERR_INVALID_ARGUMENT;
    if (N && K && ldb < (tb == CNN_NO_TRANS ? N : K)) return CNN_ERR_INVALID_ARGUMENT;
    return pack_common(PACKED_MAGIC_B, N, K, B, tb == CNN_NO_TRANS ? 1 : ldb, tb == CNN_NO_TRANS ? ldb : 1,
                       packed);
}

/* The panels of a packed operand after checking that it matches (rows, K) and the active ISA. */
static const float *packed_panels(const void *packed, uint32_t magic, size_t rows, size_t K,
                                  const cnn_gemm_variant *v, gemm_blocking *blk) {
    if (!packed) return NULL;
    packed_header h;
    memcpy(&h, packed, sizeof h);
    if (h.magic != magic || h.isa != (uint32_t)v->isa || h.rows != rows || h.depth != K ||
        h.width != (magic == PACKED_MAGIC_A ? v->mr : v->nr) || h.kc == 0)
        return NULL;
    blk->kc = (size_t)h.kc; /* the K blocks the panels were packed in */
    return (const float *)((const char *)packed + PACKED_DATA_OFFSET);
}

/* What the packed-A entry points share: the checks of C and the epilogue, the active ISA's
 * variant and blocking, the panels (which must match M, K and that ISA) and C's tile. Returns 1
 * when there is a product to compute; else 0 with *st the status to return: CNN_OK when M or N is
 * 0, or when K is 0 and C has been scaled and the epilogue applied; an error otherwise. */
static int packed_a_setup(const void *packed_a, size_t M, size_t N, size_t K, float alpha, float beta, float *C,
                          size_t ldc, const cnn_epilogue *ep, const cnn_gemm_variant **v, gemm_blocking *blk,
                          const float **pa, cnn_gemm_tile *ct, cnn_status *st) {
    *st = CNN_OK;
    if (M == 0 || N == 0) return 0;
    if ((*st = check_c_epilogue(N, C, ldc, ep)) != CNN_OK) return 0;
    *v = variant_for(cnn_isa_active(), blk);
    if (!(*pa = packed_panels(packed_a, PACKED_MAGIC_A, M, K, *v, blk))) {
        *st = CNN_ERR_INVALID_ARGUMENT;
        return 0;
    }
    *ct = c_tile(C, ldc, alpha, beta, ep);
    if (K == 0) {
        scale_only(M, N, ct);
        return 0;
    }
    return 1;
}

cnn_status cnn_sgemm_packed_a(const void *packed_a, cnn_transpose tb, size_t M, size_t N, size_t K,
                              float alpha, const float *B, size_t ldb, float beta, float *C, size_t ldc,
                              const cnn_epilogue *ep) {
    // packed op(A) is (M, K), op(B) is (K, N), C is (M, N) with leading dimension ldc
    if (!valid_trans(tb)) return CNN_ERR_INVALID_ARGUMENT;
    gemm_blocking blk;
    const cnn_gemm_variant *v;
    const float *pa;
    cnn_gemm_tile ct;
    cnn_status s;
    if (!packed_a_setup(packed_a, M, N, K, alpha, beta, C, ldc, ep, &v, &blk, &pa, &ct, &s)) return s;
    if (!B || ldb < (tb == CNN_NO_TRANS ? N : K)) return CNN_ERR_INVALID_ARGUMENT;
    gemm_problem pr = {.v = v, .blk = blk, .M = M, .N = N, .K = K, .pa = pa, .b = B,
                       .b_ks = tb == CNN_NO_TRANS ? ldb : 1, .b_cs = tb == CNN_NO_TRANS ? 1 : ldb, .base = ct};
    return gemm_run(&pr);
}

cnn_status cnn_sgemm_packed_b(cnn_transpose ta, size_t M, size_t N, size_t K, float alpha, const float *A,
                              size_t lda, const void *packed_b, float beta, float *C, size_t ldc,
                              const cnn_epilogue *ep) {
    // op(A) is (M, K), packed op(B) is (K, N), C is (M, N) with leading dimension ldc
    if (!valid_trans(ta)) return CNN_ERR_INVALID_ARGUMENT;
    if (M == 0 || N == 0) return CNN_OK;
    cnn_status s = check_c_epilogue(N, C, ldc, ep);
    if (s != CNN_OK) return s;
    gemm_blocking blk;
    const cnn_gemm_variant *v = variant_for(cnn_isa_active(), &blk);
    const float *pb = packed_panels(packed_b, PACKED_MAGIC_B, N, K, v, &blk);
    if (!pb) return CNN_ERR_INVALID_ARGUMENT;
    const cnn_gemm_tile ct = c_tile(C, ldc, alpha, beta, ep);
    if (K == 0) {
        scale_only(M, N, &ct);
        return CNN_OK;
    }
    if (!A || lda < (ta == CNN_NO_TRANS ? K : M)) return CNN_ERR_INVALID_ARGUMENT;
    gemm_problem pr = {.v = v, .blk = blk, .M = M, .N = N, .K = K, .pb = pb, .a = A,
                       .a_rs = ta == CNN_NO_TRANS ? lda : 1, .a_ks = ta == CNN_NO_TRANS ? 1 : lda, .base = ct};
    return gemm_run(&pr);
}

/* ---- implicit B ---------------------------------------------------------------------------- */

/* Panel by panel, A (M x kc) is read once per panel: fine while it stays in L2 (the stems: 64
 * rows). Past a quarter of L2 (ResNet's 3x3/2 layers on AVX2: 128-512 rows x 256) it would come
 * from L3 for every panel, so panels are then filled FILL_B_BLOCK_BYTES at a time and each A
 * micro-panel runs across the block from L2, as in gemm_block. Zen 3 class, 2 threads, C
 * harness, three builds called in turn 60 times, median of the per-call ratios against the
 * explicit column matrix, ResNet-50's 3x3/2 layers run implicitly (128 at 56x56, 256 at 28x28,
 * 512 at 14x14): panel by panel 0.84, 1.02, 1.04; in blocks 0.80, 0.95, 1.00. */
#define FILL_B_BLOCK_BYTES ((size_t)128 << 10)

/* A quarter of the L2 (of the tuned size when the C library does not say). */
static size_t fill_a_l2_bytes(void) {
    const size_t l2 = cnn_l2_cache_bytes();
    return (l2 ? l2 : TUNED_L2_BYTES) / 4;
}

/* Rows [i0, i1) (i0 a multiple of MR) against panels [jp0, jp1) of the N / NR panel grid, every K
 * block, on the calling thread. */
static cnn_status fill_b_block(const cnn_gemm_variant *v, size_t kc_max, const float *pa, size_t M, size_t K,
                               cnn_gemm_b_fill_fn fill, const void *ctx, size_t N, size_t i0, size_t i1,
                               size_t jp0, size_t jp1, const cnn_gemm_tile *base) {
    if (jp0 >= jp1 || i0 >= i1) return CNN_OK;
    const size_t MR = v->mr, NR = v->nr, nkb = k_blocks(K, kc_max), m_pad = round_up(M, MR);
    const size_t kcm = ceil_div(K, nkb), panel_floats = kcm * NR;
    const size_t nb = round_up(i1 - i0, MR) * kcm * sizeof(float) <= fill_a_l2_bytes()
                          ? 1
                          : CNN_MAX(1, FILL_B_BLOCK_BYTES / (panel_floats * sizeof(float)));
    float *panels = cnn_workspace(SLOT_B, nb * panel_floats * sizeof(float));
    if (!panels) return CNN_ERR_OUT_OF_MEMORY;
    for (size_t p = 0; p < nkb; p++) {
        const size_t k0 = k_start(K, nkb, p), kc = k_start(K, nkb, p + 1) - k0;
        cnn_gemm_tile t = *base;
        if (p > 0) t.beta = 1.0f;
        if (p + 1 < nkb) {
            t.bias = NULL;
            t.res = NULL;
            t.relu = 0;
        }
        const float *ablk = pa + k0 * m_pad;
        for (size_t jb = jp0; jb < jp1; jb += nb) {
            const size_t cnt = CNN_MIN(nb, jp1 - jb);
            for (size_t q = 0; q < cnt; q++) {
                const size_t j = (jb + q) * NR;
                fill(ctx, k0, kc, j, CNN_MIN(NR, N - j), NR, panels + q * panel_floats);
            }
            for (size_t i = i0; i < i1; i += MR) {
                const size_t mr = CNN_MIN(MR, i1 - i);
                for (size_t q = 0; q < cnt; q++) {
                    const size_t j = (jb + q) * NR, nr = CNN_MIN(NR, N - j);
                    const float *panel = panels + q * panel_floats;
                    cnn_gemm_tile tt = t;
                    tt.c = t.c + i * t.rs_c + j * t.cs_c;
                    if (tt.bias) tt.bias += tt.bias_on_j ? j : i;
                    if (tt.res) tt.res += i * t.rs_r + j * t.cs_r;
                    if (nr <= v->narrow_max) v->narrow(kc, ablk + i * kc, panel, NR, mr, nr, &tt);
                    else v->kernel(kc, ablk + i * kc, panel, NR, mr, nr, &tt);
                }
            }
        }
    }
    return CNN_OK;
}

int cnn_sgemm_packed_a_usable(const void *packed_a, size_t M, size_t K) {
    gemm_blocking blk;
    const cnn_gemm_variant *v = variant_for(cnn_isa_active(), &blk);
    return packed_panels(packed_a, PACKED_MAGIC_A, M, K, v, &blk) != NULL;
}

cnn_status cnn_sgemm_packed_a_fill_b(const void *packed_a, size_t M, size_t N, size_t K, cnn_gemm_b_fill_fn fill,
                                     const void *ctx, float *C, size_t ldc, const cnn_epilogue *ep) {
    // packed A is (M, K), B (K, N) comes panel by panel from fill, C is (M, N) with leading dimension ldc
    if (!fill) return CNN_ERR_INVALID_ARGUMENT;
    gemm_blocking blk;
    const cnn_gemm_variant *v;
    const float *pa;
    cnn_gemm_tile ct;
    cnn_status s;
    if (!packed_a_setup(packed_a, M, N, K, 1.0f, 0.0f, C, ldc, ep, &v, &blk, &pa, &ct, &s)) return s;
    const size_t MR = v->mr, mp = ceil_div(M, MR), np = ceil_div(N, v->nr);
    int threads = gemm_threads(M, N, K);
    if ((double)threads > (double)mp * (double)np) threads = (int)(mp * np);
    if (threads <= 1) return fill_b_block(v, blk.kc, pa, M, K, fill, ctx, N, 0, M, 0, np, &ct);
    cnn_status status = CNN_OK;
#if CNN_OMP
    CNN_PRAGMA(omp parallel num_threads(threads))
    {
        /* Threads that share columns each read all of A; threads that share rows each fill the
         * same B panels. So the columns are cut while B is the larger operand (N >= M: each
         * thread fills only its panels), and otherwise the grid is cut as gemm_run cuts it.
         * ResNet-50's 512 -> 512 3x3/2 at batch 1 (49 columns, 4 panels) ran 2 panels on one
         * thread and 1 + a 1-column edge on the other, each streaming 9.4 MB of weights; by rows
         * each streams half. Zen 3 class, 2 threads, C harness, builds called in turn 30 times,
         * median per-call ratio rows / columns: that layer 0.84-0.94 (reversed order: columns /
         * rows 1.25-1.35), 256 -> 256 at 28x28 (N 196, M 256) 0.99-1.04 (reversed 1.00-1.02),
         * and 128 -> 128 at 56x56 (N 784, M 128) 1.24-1.31 by rows, which keeps the columns. */
        const size_t nt = (size_t)omp_get_num_threads(), id = (size_t)omp_get_thread_num();
        size_t tm = 1, tn = nt;
        if (N < M) split_grid(mp, np, (int)nt, &tm, &tn);
        const size_t ti = id / tn, tj = id % tn;
        cnn_status st = CNN_OK;
        if (ti < tm)
            st = fill_b_block(v, blk.kc, pa, M, K, fill, ctx, N, mp * ti / tm * MR, CNN_MIN(M, mp * (ti + 1) / tm * MR),
                              np * tj / tn, np * (tj + 1) / tn, &ct);
        if (st != CNN_OK) {
            CNN_PRAGMA(omp atomic write)
            status = st;
        }
    }
#endif
    return status;
}
