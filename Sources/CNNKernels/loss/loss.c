/* Softmax and log-softmax over the last axis, cross-entropy from logits (with label smoothing),
 * mean squared error. Parallel over rows; the per-row reductions are in double and the losses are
 * summed over rows in row order, so results do not depend on the thread count. Every per-row
 * kernel has generic, AVX2 and AVX-512 variants, chosen once per call from one table. */
#include "../tensor/layers_internal.h"

#include <math.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- per-row microkernels
 * Generic variants (the plain loops, also the reference): expf from libm, sums in double in
 * element order. AVX2 / AVX-512 variants: one source stamped per ISA, exp by cnn_expf_poly (which
 * vectorises; within a few ulp of expf), the row max and the double sums over
 * CNN_LAYERS_LANES lanes (element j into lane j % 16, lanes then added in order, tail last).
 * Rows are independent, so no variant depends on the thread count. */

/* Max and log(sum exp(x - max)) of one row. */
static void row_max_lse(int64_t n, const float *x, float *max_out, double *log_sum) {
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += (double)expf(x[j] - m);
    *max_out = m;
    *log_sum = log(s);
}

// x, y are (n)
static void cnn_f32_softmax_row__generic(int64_t n, const float *xr, float *yr) {
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++) m = xr[j] > m ? xr[j] : m;
    double s = 0;
    for (int64_t j = 0; j < n; j++) {
        const float e = expf(xr[j] - m);
        yr[j] = e;
        s += (double)e;
    }
    const float inv = (float)(1.0 / s);
    for (int64_t j = 0; j < n; j++) yr[j] *= inv;
}

static void cnn_f32_log_softmax_row__generic(int64_t n, const float *xr, float *yr) {
    float m;
    double ls;
    row_max_lse(n, xr, &m, &ls);
    const float off = m + (float)ls;
    for (int64_t j = 0; j < n; j++) yr[j] = xr[j] - off;
}

// dx = y * (dy - sum(dy * y))
static void cnn_f32_softmax_backward_row__generic(int64_t n, const float *yr, const float *gr,
                                                  float *dr) {
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += (double)gr[j] * (double)yr[j];
    const float sf = (float)s;
    for (int64_t j = 0; j < n; j++) dr[j] = yr[j] * (gr[j] - sf);
}

// dx = dy - exp(y) * sum(dy)
static void cnn_f32_log_softmax_backward_row__generic(int64_t n, const float *yr, const float *gr,
                                                      float *dr) {
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += (double)gr[j];
    const float sf = (float)s;
    for (int64_t j = 0; j < n; j++) dr[j] = gr[j] - expf(yr[j]) * sf;
}

/* Cross-entropy of one row (see cnn_cross_entropy_forward) into *loss; probs (n) may be NULL. */
static void cnn_f32_cross_entropy_row__generic(int64_t n, const float *xr, int32_t label, float eps_f,
                                               double *loss, float *pr) {
    const double eps = eps_f;
    float m;
    double ls;
    row_max_lse(n, xr, &m, &ls);
    const double lse = (double)m + ls;
    double mean_x = 0;
    if (eps != 0) {
        for (int64_t j = 0; j < n; j++) mean_x += (double)xr[j];
        mean_x /= (double)n;
    }
    *loss = (1.0 - eps) * (lse - (double)xr[label]) + (eps != 0 ? eps * (lse - mean_x) : 0.0);
    if (pr) {
        const double inv = exp(-ls);
        for (int64_t j = 0; j < n; j++) pr[j] = (float)((double)expf(xr[j] - m) * inv);
    }
}

/* dlogits = scale * (probs - off), minus scale * on at the label. */
CNN_LAYERS_INLINE void cnn_f32_cross_entropy_backward_row_body(int64_t n, const float *pr, int32_t label,
                                                               float scale, float off, float on,
                                                               float *dr) {
    for (int64_t j = 0; j < n; j++) dr[j] = scale * (pr[j] - off);
    dr[label] -= scale * on;
}

/* Sum of (x - t)^2 over n floats, in double over eight lanes. */
CNN_LAYERS_INLINE void cnn_f32_mse_sum_body(int64_t n, const float *x, const float *t, double *out) {
    double a[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            const double d = (double)x[i + j] - (double)t[i + j];
            a[j] += d * d;
        }
    double s = 0;
    for (; i < n; i++) {
        const double d = (double)x[i] - (double)t[i];
        s += d * d;
    }
    for (int j = 0; j < 8; j++) s += a[j];
    *out = s;
}

// dx = s * (x - t)
CNN_LAYERS_INLINE void cnn_f32_mse_backward_body(int64_t n, float s, const float *x, const float *t,
                                                 float *dx) {
    for (int64_t i = 0; i < n; i++) dx[i] = s * (x[i] - t[i]);
}

/* ---- vector bodies (AVX2 / AVX-512 stamps) */

#define L CNN_LAYERS_LANES

/* Row max over lanes; NaN never compares greater, as in the generic loop. */
CNN_LAYERS_INLINE float rowv_max(int64_t n, const float *x) {
    float ml[L];
    for (int l = 0; l < L; l++) ml[l] = -INFINITY;
    int64_t j = 0;
    for (; j + L <= n; j += L)
        for (int l = 0; l < L; l++) ml[l] = x[j + l] > ml[l] ? x[j + l] : ml[l];
    float m = -INFINITY;
    for (int l = 0; l < L; l++) m = ml[l] > m ? ml[l] : m;
    for (; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* sum_j exp(x_j - m) in double lanes; stores each exp to e when e is not NULL (a constant at every
 * call, so the test folds away). */
CNN_LAYERS_INLINE double rowv_sum_exp(int64_t n, const float *CNN_RESTRICT x, float m,
                                      float *CNN_RESTRICT e) {
    double sl[L] = {0};
    int64_t j = 0;
    for (; j + L <= n; j += L)
        for (int l = 0; l < L; l++) {
            const float v = cnn_expf_poly(x[j + l] - m);
            if (e) e[j + l] = v;
            sl[l] += (double)v;
        }
    double s = 0;
    for (int l = 0; l < L; l++) s += sl[l];
    for (; j < n; j++) {
        const float v = cnn_expf_poly(x[j] - m);
        if (e) e[j] = v;
        s += (double)v;
    }
    return s;
}

/* sum_j a_j (b_j, or 1 when b is NULL) in double lanes. */
CNN_LAYERS_INLINE double rowv_dot(int64_t n, const float *a, const float *b) {
    double sl[L] = {0};
    int64_t j = 0;
    for (; j + L <= n; j += L)
        for (int l = 0; l < L; l++) sl[l] += (double)a[j + l] * (b ? (double)b[j + l] : 1.0);
    double s = 0;
    for (int l = 0; l < L; l++) s += sl[l];
    for (; j < n; j++) s += (double)a[j] * (b ? (double)b[j] : 1.0);
    return s;
}

CNN_LAYERS_INLINE void cnn_f32_softmax_row_body(int64_t n, const float *xr, float *yr) {
    const float m = rowv_max(n, xr);
    const float inv = (float)(1.0 / rowv_sum_exp(n, xr, m, yr));
    for (int64_t j = 0; j < n; j++) yr[j] *= inv;
}

CNN_LAYERS_INLINE void cnn_f32_log_softmax_row_body(int64_t n, const float *xr, float *yr) {
    const float m = rowv_max(n, xr);
    const float off = m + (float)log(rowv_sum_exp(n, xr, m, NULL));
    for (int64_t j = 0; j < n; j++) yr[j] = xr[j] - off;
}

CNN_LAYERS_INLINE void cnn_f32_softmax_backward_row_body(int64_t n, const float *yr, const float *gr,
                                                         float *dr) {
    const float sf = (float)rowv_dot(n, gr, yr);
    for (int64_t j = 0; j < n; j++) dr[j] = yr[j] * (gr[j] - sf);
}

CNN_LAYERS_INLINE void cnn_f32_log_softmax_backward_row_body(int64_t n, const float *yr, const float *gr,
                                                             float *dr) {
    const float sf = (float)rowv_dot(n, gr, NULL);
    for (int64_t j = 0; j < n; j++) dr[j] = gr[j] - cnn_expf_poly(yr[j]) * sf;
}

/* As the generic row; the probabilities are the stored exps times 1/sum, in float. */
CNN_LAYERS_INLINE void cnn_f32_cross_entropy_row_body(int64_t n, const float *xr, int32_t label,
                                                      float eps_f, double *loss, float *pr) {
    const double eps = eps_f;
    const float m = rowv_max(n, xr);
    const double s = pr ? rowv_sum_exp(n, xr, m, pr) : rowv_sum_exp(n, xr, m, NULL);
    const double lse = (double)m + log(s);
    const double mean_x = eps != 0 ? rowv_dot(n, xr, NULL) / (double)n : 0.0;
    *loss = (1.0 - eps) * (lse - (double)xr[label]) + (eps != 0 ? eps * (lse - mean_x) : 0.0);
    if (pr) {
        const float inv = (float)(1.0 / s);
        for (int64_t j = 0; j < n; j++) pr[j] *= inv;
    }
}

#undef L

#define ROW_PARAMS (int64_t n, const float *xr, float *yr)
#define ROW_ARGS (n, xr, yr)
#define ROW_BACKWARD_PARAMS (int64_t n, const float *yr, const float *gr, float *dr)
#define ROW_BACKWARD_ARGS (n, yr, gr, dr)
#define CE_PARAMS (int64_t n, const float *xr, int32_t label, float eps_f, double *loss, float *pr)
#define CE_ARGS (n, xr, label, eps_f, loss, pr)
#define CE_BACKWARD_PARAMS \
    (int64_t n, const float *pr, int32_t label, float scale, float off, float on, float *dr)
#define CE_BACKWARD_ARGS (n, pr, label, scale, off, on, dr)
#define MSE_PARAMS (int64_t n, const float *x, const float *t, double *out)
#define MSE_ARGS (n, x, t, out)
#define MSE_BACKWARD_PARAMS (int64_t n, float s, const float *x, const float *t, float *dx)
#define MSE_BACKWARD_ARGS (n, s, x, t, dx)

/* The elementwise loops have one body for every variant; the generic variant compiles it for the
 * baseline ISA. */
static void cnn_f32_cross_entropy_backward_row__generic CE_BACKWARD_PARAMS {
    cnn_f32_cross_entropy_backward_row_body CE_BACKWARD_ARGS;
}
static void cnn_f32_mse_sum__generic MSE_PARAMS { cnn_f32_mse_sum_body MSE_ARGS; }
static void cnn_f32_mse_backward__generic MSE_BACKWARD_PARAMS { cnn_f32_mse_backward_body MSE_BACKWARD_ARGS; }

CNN_LAYERS_STAMP_X86(cnn_f32_softmax_row, ROW_PARAMS, ROW_ARGS)
CNN_LAYERS_STAMP_X86(cnn_f32_log_softmax_row, ROW_PARAMS, ROW_ARGS)
CNN_LAYERS_STAMP_X86(cnn_f32_softmax_backward_row, ROW_BACKWARD_PARAMS, ROW_BACKWARD_ARGS)
CNN_LAYERS_STAMP_X86(cnn_f32_log_softmax_backward_row, ROW_BACKWARD_PARAMS, ROW_BACKWARD_ARGS)
CNN_LAYERS_STAMP_X86(cnn_f32_cross_entropy_row, CE_PARAMS, CE_ARGS)
CNN_LAYERS_STAMP_X86(cnn_f32_cross_entropy_backward_row, CE_BACKWARD_PARAMS, CE_BACKWARD_ARGS)
CNN_LAYERS_STAMP_X86(cnn_f32_mse_sum, MSE_PARAMS, MSE_ARGS)
CNN_LAYERS_STAMP_X86(cnn_f32_mse_backward, MSE_BACKWARD_PARAMS, MSE_BACKWARD_ARGS)

typedef struct loss_kernels {
    void (*softmax) ROW_PARAMS;
    void (*log_softmax) ROW_PARAMS;
    void (*softmax_backward) ROW_BACKWARD_PARAMS;
    void (*log_softmax_backward) ROW_BACKWARD_PARAMS;
    void (*cross_entropy) CE_PARAMS;
    void (*cross_entropy_backward) CE_BACKWARD_PARAMS;
    void (*mse_sum) MSE_PARAMS;
    void (*mse_backward) MSE_BACKWARD_PARAMS;
} loss_kernels;

#define LOSS_KERNELS(ISA)                                                                           \
    {cnn_f32_softmax_row__##ISA, cnn_f32_log_softmax_row__##ISA,                                    \
     cnn_f32_softmax_backward_row__##ISA, cnn_f32_log_softmax_backward_row__##ISA,                  \
     cnn_f32_cross_entropy_row__##ISA, cnn_f32_cross_entropy_backward_row__##ISA,                   \
     cnn_f32_mse_sum__##ISA, cnn_f32_mse_backward__##ISA}

/* The family's table, indexed by cnn_layers_isa_index(). */
static const loss_kernels loss_table[] = {
    LOSS_KERNELS(generic),
#if CNN_X86
    LOSS_KERNELS(avx2),
    LOSS_KERNELS(avx512),
#endif
};

static const loss_kernels *loss_select(void) { return &loss_table[cnn_layers_isa_index()]; }

static cnn_status rows_check(int64_t rows, int64_t classes) {
    return rows < 0 || classes < 1 ? CNN_ERR_INVALID_ARGUMENT : CNN_OK;
}

// x, y are (rows, classes); in place allowed
cnn_status cnn_softmax_forward(int64_t rows, int64_t classes, const float *x, float *y) {
    if (rows_check(rows, classes) != CNN_OK) return CNN_ERR_INVALID_ARGUMENT;
    if (rows == 0) return CNN_OK;
    if (!x || !y) return CNN_ERR_INVALID_ARGUMENT;
    void (*const row)ROW_PARAMS = loss_select()->softmax;
    const int nt = cnn_threads_for(rows);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t r = 0; r < rows; r++) row(classes, x + r * classes, y + r * classes);
    return CNN_OK;
}

// x, y are (rows, classes); in place allowed
cnn_status cnn_log_softmax_forward(int64_t rows, int64_t classes, const float *x, float *y) {
    if (rows_check(rows, classes) != CNN_OK) return CNN_ERR_INVALID_ARGUMENT;
    if (rows == 0) return CNN_OK;
    if (!x || !y) return CNN_ERR_INVALID_ARGUMENT;
    void (*const row)ROW_PARAMS = loss_select()->log_softmax;
    const int nt = cnn_threads_for(rows);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t r = 0; r < rows; r++) row(classes, x + r * classes, y + r * classes);
    return CNN_OK;
}

// y, dy, dx are (rows, classes): dx = y * (dy - sum(dy * y))
cnn_status cnn_softmax_backward(int64_t rows, int64_t classes, const float *y, const float *dy,
                                float *dx) {
    if (rows_check(rows, classes) != CNN_OK) return CNN_ERR_INVALID_ARGUMENT;
    if (rows == 0) return CNN_OK;
    if (!y || !dy || !dx) return CNN_ERR_INVALID_ARGUMENT;
    void (*const row)ROW_BACKWARD_PARAMS = loss_select()->softmax_backward;
    const int nt = cnn_threads_for(rows);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t r = 0; r < rows; r++) row(classes, y + r * classes, dy + r * classes, dx + r * classes);
    return CNN_OK;
}

// y, dy, dx are (rows, classes): dx = dy - exp(y) * sum(dy)
cnn_status cnn_log_softmax_backward(int64_t rows, int64_t classes, const float *y, const float *dy,
                                    float *dx) {
    if (rows_check(rows, classes) != CNN_OK) return CNN_ERR_INVALID_ARGUMENT;
    if (rows == 0) return CNN_OK;
    if (!y || !dy || !dx) return CNN_ERR_INVALID_ARGUMENT;
    void (*const row)ROW_BACKWARD_PARAMS = loss_select()->log_softmax_backward;
    const int nt = cnn_threads_for(rows);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t r = 0; r < rows; r++) row(classes, y + r * classes, dy + r * classes, dx + r * classes);
    return CNN_OK;
}

/* ---------------------------------------------------------------- cross-entropy */

static cnn_status ce_check(int64_t rows, int64_t classes, const int32_t *labels, float eps,
                           int reduction) {
    if (rows_check(rows, classes) != CNN_OK) return CNN_ERR_INVALID_ARGUMENT;
    if (!(eps >= 0.0f && eps <= 1.0f) || (reduction != 0 && reduction != 1)) return CNN_ERR_INVALID_ARGUMENT;
    if (rows > 0 && !labels) return CNN_ERR_INVALID_ARGUMENT;
    for (int64_t r = 0; r < rows; r++)
        if (labels[r] < 0 || labels[r] >= classes) return CNN_ERR_INVALID_ARGUMENT;
    return CNN_OK;
}

/* With lse = log sum exp(x) and target t = (1-eps) onehot(label) + eps/classes:
 *   loss_row = -sum_c t_c (x_c - lse) = (1-eps) (lse - x_label) + eps (lse - mean_c x_c). */
// logits, probs are (rows, classes), labels (rows)
cnn_status cnn_cross_entropy_forward(int64_t rows, int64_t classes, const float *logits,
                                     const int32_t *labels, float label_smoothing, int reduction,
                                     float *loss, float *probs) {
    cnn_status st = ce_check(rows, classes, labels, label_smoothing, reduction);
    if (st != CNN_OK) return st;
    if (!loss) return CNN_ERR_INVALID_ARGUMENT;
    if (rows == 0) {
        *loss = reduction == 0 ? NAN : 0.0f; /* PyTorch: the mean of nothing is NaN */
        return CNN_OK;
    }
    if (!logits) return CNN_ERR_INVALID_ARGUMENT;
    double *row_loss = malloc((size_t)rows * sizeof(double));
    if (!row_loss) return CNN_ERR_OUT_OF_MEMORY;
    void (*const row)CE_PARAMS = loss_select()->cross_entropy;
    const int nt = cnn_threads_for(rows);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t r = 0; r < rows; r++)
        row(classes, logits + r * classes, labels[r], label_smoothing, &row_loss[r],
            probs ? probs + r * classes : NULL);
    double total = 0;
    for (int64_t r = 0; r < rows; r++) total += row_loss[r];
    free(row_loss);
    *loss = (float)(reduction == 0 ? total / (double)rows : total);
    return CNN_OK;
}

// probs, dlogits are (rows, classes), labels (rows)
cnn_status cnn_cross_entropy_backward(int64_t rows, int64_t classes, const float *probs,
                                      const int32_t *labels, float label_smoothing, int reduction,
                                      float dloss, float *dlogits) {
    cnn_status st = ce_check(rows, classes, labels, label_smoothing, reduction);
    if (st != CNN_OK) return st;
    if (rows == 0) return CNN_OK;
    if (!probs || !dlogits) return CNN_ERR_INVALID_ARGUMENT;
    const float scale = reduction == 0 ? (float)((double)dloss / (double)rows) : dloss;
    const float off = label_smoothing / (float)classes, on = 1.0f - label_smoothing;
    void (*const row)CE_BACKWARD_PARAMS = loss_select()->cross_entropy_backward;
    const int nt = cnn_threads_for(rows);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t r = 0; r < rows; r++)
        row(classes, probs + r * classes, labels[r], scale, off, on, dlogits + r * classes);
    return CNN_OK;
}

/* ---------------------------------------------------------------- mean squared error */

// x, t are (n)
cnn_status cnn_mse_forward(int64_t n, const float *x, const float *t, int reduction, float *loss) {
    if (n < 0 || (reduction != 0 && reduction != 1) || !loss) return CNN_ERR_INVALID_ARGUMENT;
    if (n == 0) {
        *loss = reduction == 0 ? NAN : 0.0f;
        return CNN_OK;
    }
    if (!x || !t) return CNN_ERR_INVALID_ARGUMENT;
    const int64_t chunks = (n + CNN_LAYERS_CHUNK - 1) / CNN_LAYERS_CHUNK;
    double *part = malloc((size_t)chunks * sizeof(double));
    if (!part) return CNN_ERR_OUT_OF_MEMORY;
    void (*const sum)MSE_PARAMS = loss_select()->mse_sum;
    const int nt = cnn_threads_for(chunks);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t i0 = c * CNN_LAYERS_CHUNK, i1 = CNN_MIN(n, i0 + CNN_LAYERS_CHUNK);
        sum(i1 - i0, x + i0, t + i0, &part[c]);
    }
    double total = 0;
    for (int64_t c = 0; c < chunks; c++) total += part[c];
    free(part);
    *loss = (float)(reduction == 0 ? total / (double)n : total);
    return CNN_OK;
}

// x, t, dx are (n): dx = dloss * 2 (x - t) (/ n for the mean)
cnn_status cnn_mse_backward(int64_t n, const float *x, const float *t, int reduction, float dloss,
                            float *dx) {
    if (n < 0 || (reduction != 0 && reduction != 1)) return CNN_ERR_INVALID_ARGUMENT;
    if (n == 0) return CNN_OK;
    if (!x || !t || !dx) return CNN_ERR_INVALID_ARGUMENT;
    const float s = (float)(2.0 * (double)dloss / (reduction == 0 ? (double)n : 1.0));
    void (*const backward)MSE_BACKWARD_PARAMS = loss_select()->mse_backward;
    const int64_t chunks = (n + CNN_LAYERS_CHUNK - 1) / CNN_LAYERS_CHUNK;
    const int nt = cnn_threads_for(chunks);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t i = c * CNN_LAYERS_CHUNK;
        backward(CNN_MIN(CNN_LAYERS_CHUNK, n - i), s, x + i, t + i, dx + i);
    }
    return CNN_OK;
}
