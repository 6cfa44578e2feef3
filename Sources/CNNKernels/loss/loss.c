/* Softmax and log-softmax over the last axis, cross-entropy from logits (with label smoothing),
 * mean squared error. Parallel over rows; the per-row reductions are in double and the losses are
 * summed over rows in row order, so results do not depend on the thread count. */
#include "../tensor/layers_internal.h"

#include <math.h>
#include <stdlib.h>

/* Max and log(sum exp(x - max)) of one row. */
static void row_max_lse(int64_t n, const float *x, float *max_out, double *log_sum) {
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += (double)expf(x[j] - m);
    *max_out = m;
    *log_sum = log(s);
}

static cnn_status rows_check(int64_t rows, int64_t classes) {
    return rows < 0 || classes < 1 ? CNN_ERR_INVALID_ARGUMENT : CNN_OK;
}

// x, y are (rows, classes); in place allowed
cnn_status cnn_softmax_forward(int64_t rows, int64_t classes, const float *x, float *y) {
    if (rows_check(rows, classes) != CNN_OK) return CNN_ERR_INVALID_ARGUMENT;
    if (rows == 0) return CNN_OK;
    if (!x || !y) return CNN_ERR_INVALID_ARGUMENT;
    const int nt = cnn_threads_for(rows);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * classes;
        float *yr = y + r * classes;
        float m = -INFINITY;
        for (int64_t j = 0; j < classes; j++) m = xr[j] > m ? xr[j] : m;
        double s = 0;
        for (int64_t j = 0; j < classes; j++) {
            const float e = expf(xr[j] - m);
            yr[j] = e;
            s += (double)e;
        }
        const float inv = (float)(1.0 / s);
        for (int64_t j = 0; j < classes; j++) yr[j] *= inv;
    }
    return CNN_OK;
}

// x, y are (rows, classes); in place allowed
cnn_status cnn_log_softmax_forward(int64_t rows, int64_t classes, const float *x, float *y) {
    if (rows_check(rows, classes) != CNN_OK) return CNN_ERR_INVALID_ARGUMENT;
    if (rows == 0) return CNN_OK;
    if (!x || !y) return CNN_ERR_INVALID_ARGUMENT;
    const int nt = cnn_threads_for(rows);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t r = 0; r < rows; r++) {
        float m;
        double ls;
        row_max_lse(classes, x + r * classes, &m, &ls);
        const float off = m + (float)ls;
        for (int64_t j = 0; j < classes; j++) y[r * classes + j] = x[r * classes + j] - off;
    }
    return CNN_OK;
}

// y, dy, dx are (rows, classes): dx = y * (dy - sum(dy * y))
cnn_status cnn_softmax_backward(int64_t rows, int64_t classes, const float *y, const float *dy,
                                float *dx) {
    if (rows_check(rows, classes) != CNN_OK) return CNN_ERR_INVALID_ARGUMENT;
    if (rows == 0) return CNN_OK;
    if (!y || !dy || !dx) return CNN_ERR_INVALID_ARGUMENT;
    const int nt = cnn_threads_for(rows);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = y + r * classes, *gr = dy + r * classes;
        double s = 0;
        for (int64_t j = 0; j < classes; j++) s += (double)gr[j] * (double)yr[j];
        const float sf = (float)s;
        for (int64_t j = 0; j < classes; j++) dx[r * classes + j] = yr[j] * (gr[j] - sf);
    }
    return CNN_OK;
}

// y, dy, dx are (rows, classes): dx = dy - exp(y) * sum(dy)
cnn_status cnn_log_softmax_backward(int64_t rows, int64_t classes, const float *y, const float *dy,
                                    float *dx) {
    if (rows_check(rows, classes) != CNN_OK) return CNN_ERR_INVALID_ARGUMENT;
    if (rows == 0) return CNN_OK;
    if (!y || !dy || !dx) return CNN_ERR_INVALID_ARGUMENT;
    const int nt = cnn_threads_for(rows);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = y + r * classes, *gr = dy + r * classes;
        double s = 0;
        for (int64_t j = 0; j < classes; j++) s += (double)gr[j];
        const float sf = (float)s;
        for (int64_t j = 0; j < classes; j++) dx[r * classes + j] = gr[j] - expf(yr[j]) * sf;
    }
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
    const double eps = label_smoothing;
    const int nt = cnn_threads_for(rows);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = logits + r * classes;
        float m;
        double ls;
        row_max_lse(classes, xr, &m, &ls);
        const double lse = (double)m + ls;
        double mean_x = 0;
        if (eps != 0) {
            for (int64_t j = 0; j < classes; j++) mean_x += (double)xr[j];
            mean_x /= (double)classes;
        }
        row_loss[r] = (1.0 - eps) * (lse - (double)xr[labels[r]]) + (eps != 0 ? eps * (lse - mean_x) : 0.0);
        if (probs) {
            const double inv = exp(-ls);
            for (int64_t j = 0; j < classes; j++)
                probs[r * classes + j] = (float)((double)expf(xr[j] - m) * inv);
        }
    }
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
    const int nt = cnn_threads_for(rows);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t r = 0; r < rows; r++) {
        const float *pr = probs + r * classes;
        float *dr = dlogits + r * classes;
        for (int64_t j = 0; j < classes; j++) dr[j] = scale * (pr[j] - off);
        dr[labels[r]] -= scale * on;
    }
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
    const int nt = cnn_threads_for(chunks);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t i0 = c * CNN_LAYERS_CHUNK, i1 = CNN_MIN(n, i0 + CNN_LAYERS_CHUNK);
        double a[8] = {0};
        int64_t i = i0;
        for (; i + 8 <= i1; i += 8)
            for (int j = 0; j < 8; j++) {
                const double d = (double)x[i + j] - (double)t[i + j];
                a[j] += d * d;
            }
        double s = 0;
        for (; i < i1; i++) {
            const double d = (double)x[i] - (double)t[i];
            s += d * d;
        }
        for (int j = 0; j < 8; j++) s += a[j];
        part[c] = s;
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
    const int nt = cnn_layers_threads_flat(n);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t i = 0; i < n; i++) dx[i] = s * (x[i] - t[i]);
    return CNN_OK;
}
