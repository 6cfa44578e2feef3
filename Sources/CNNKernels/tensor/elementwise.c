/* Elementwise kernels (temporary serial versions; replaced by the layers branch). */
#include "../internal.h"

cnn_status cnn_add(int64_t n, const float *a, const float *b, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    return CNN_OK;
}
cnn_status cnn_mul(int64_t n, const float *a, const float *b, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
    return CNN_OK;
}
cnn_status cnn_axpy(int64_t n, float alpha, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
    return CNN_OK;
}
cnn_status cnn_scale(int64_t n, float alpha, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = alpha * x[i];
    return CNN_OK;
}
double cnn_sum(int64_t n, const float *x) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}
