/* The non-convolution layers, forward and backward: pooling, batch norm, activations, LRN,
 * dropout, softmax / cross-entropy / MSE, channel concat, elementwise ops, optimizer updates
 * (SGD, Adam / AdamW, RMSprop). */
#ifndef CNN_LAYERS_H
#define CNN_LAYERS_H

#include "cnn_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- pooling (NCHW) */

/** Pooling window. Output size: floor or ceil of (H + 2*pad - kernel) / stride + 1; with ceil_mode
 *  the last window must start inside the input or left padding (PyTorch's rule). pad <= kernel/2. */
typedef struct cnn_pool_shape {
    int64_t N, C, H, W;
    int64_t kernel_h, kernel_w;
    int64_t stride_h, stride_w;
    int64_t pad_h, pad_w;
    int ceil_mode;
    int count_include_pad; /* average pooling only */
} cnn_pool_shape;

cnn_status cnn_pool_output_size(const cnn_pool_shape *s, int64_t *P, int64_t *Q);
/** y (N, C, P, Q) = max over each window (padding never wins); indices (may be NULL) receive the
 *  flat h*W+w of the maximum within its (n, c) plane, first maximum on ties. */
cnn_status cnn_maxpool2d_forward(const cnn_pool_shape *s, const float *x, float *y, int32_t *indices);
/** dx written: dx = 0 then dx[indices] += dy. */
cnn_status cnn_maxpool2d_backward(const cnn_pool_shape *s, const float *dy, const int32_t *indices,
                                  float *dx);
cnn_status cnn_avgpool2d_forward(const cnn_pool_shape *s, const float *x, float *y);
cnn_status cnn_avgpool2d_backward(const cnn_pool_shape *s, const float *dy, float *dx);
/** Adaptive average pooling to (outH, outW), PyTorch's bins: start = floor(i*H/outH),
 *  end = ceil((i+1)*H/outH). Global average pooling is outH = outW = 1. */
cnn_status cnn_adaptive_avgpool2d_forward(int64_t N, int64_t C, int64_t H, int64_t W, int64_t outH,
                                          int64_t outW, const float *x, float *y);
cnn_status cnn_adaptive_avgpool2d_backward(int64_t N, int64_t C, int64_t H, int64_t W, int64_t outH,
                                           int64_t outW, const float *dy, float *dx);

/* ---------------------------------------------------------------- batch norm 2-D (NCHW) */

/** Training forward: per-channel batch mean and biased variance (in double, from sums shifted by
 *  a sample of the channel, combined per channel in a fixed order: the same for any thread count),
 *  y = (x - mean) * invstd * gamma + beta; saves mean and invstd = 1/sqrt(var + eps) (C);
 *  updates running_mean/var (may be NULL) with momentum, the running variance unbiased (n/(n-1)).
 *  gamma and beta may be NULL (1 and 0). N*HW == 0 does nothing; N*HW == 1 is invalid (PyTorch). */
cnn_status cnn_batchnorm2d_forward_train(int64_t N, int64_t C, int64_t HW, const float *x,
                                         const float *gamma, const float *beta, float eps,
                                         float momentum, float *running_mean, float *running_var,
                                         float *save_mean, float *save_invstd, float *y);
/** Inference forward from running statistics. */
cnn_status cnn_batchnorm2d_forward_inference(int64_t N, int64_t C, int64_t HW, const float *x,
                                             const float *gamma, const float *beta,
                                             const float *running_mean, const float *running_var,
                                             float eps, float *y);
/** dx written; dgamma, dbeta accumulate (may be NULL). Uses the saved mean and invstd. */
cnn_status cnn_batchnorm2d_backward(int64_t N, int64_t C, int64_t HW, const float *x,
                                    const float *dy, const float *gamma, const float *save_mean,
                                    const float *save_invstd, float *dx, float *dgamma,
                                    float *dbeta);
/* Synchronised batch norm (PyTorch's SyncBatchNorm: batch_norm_stats, batch_norm_elemt,
 * batch_norm_backward_reduce, batch_norm_backward_elemt): the statistics are taken over the union
 * of several processes' batches, so the reductions are split from the element-wise passes and the
 * caller combines the per-process sums in between. */

/** Per-channel local statistics of x: mean (C) and m2 (C), the sum of squared deviations from
 *  that mean, in double over the N*HW values of each channel (shifted sums, fixed combination order
 *  as in the training forward). N*HW == 0 gives mean 0 and m2 0. */
cnn_status cnn_batchnorm2d_moments(int64_t N, int64_t C, int64_t HW, const float *x, double *mean,
                                   double *m2);
/** y = (x - mean) * invstd * gamma + beta with the given statistics (C); gamma and beta may be
 *  NULL (1 and 0). */
cnn_status cnn_batchnorm2d_normalize(int64_t N, int64_t C, int64_t HW, const float *x,
                                     const float *gamma, const float *beta, const float *mean,
                                     const float *invstd, float *y);
/** Per-channel local sums for the backward pass: sum_dy = sum dy and sum_dy_xmu =
 *  sum dy * (x - mean), in double (C each), over this process's N*HW values. */
cnn_status cnn_batchnorm2d_backward_reduce(int64_t N, int64_t C, int64_t HW, const float *x,
                                           const float *dy, const float *mean, double *sum_dy,
                                           double *sum_dy_xmu);
/** dx = gamma * invstd * (dy - sum_dy / count - (x - mean) * invstd^2 * sum_dy_xmu / count)
 *  (written), with sum_dy, sum_dy_xmu (C) and count the sums and the value count per channel over
 *  every process. gamma may be NULL (1). */
cnn_status cnn_batchnorm2d_backward_elemt(int64_t N, int64_t C, int64_t HW, const float *x,
                                          const float *dy, const float *gamma, const float *mean,
                                          const float *invstd, const double *sum_dy,
                                          const double *sum_dy_xmu, double count, float *dx);
/** Folds inference batch norm into the preceding convolution: w (K x per_k) scaled per output
 *  channel, bias (K, may start as zeros) shifted. In place. */
cnn_status cnn_batchnorm_fold(int64_t K, int64_t per_k, float *weight, float *bias,
                              const float *gamma, const float *beta, const float *running_mean,
                              const float *running_var, float eps);

/* ---------------------------------------------------------------- activations (any layout) */

/** y = max(x, 0) (in place allowed). */
cnn_status cnn_relu_forward(int64_t n, const float *x, float *y);
/** dx = dy where y > 0 else 0 (y is the forward output; in place on dy allowed). */
cnn_status cnn_relu_backward(int64_t n, const float *y, const float *dy, float *dx);
cnn_status cnn_leaky_relu_forward(int64_t n, float slope, const float *x, float *y);
cnn_status cnn_leaky_relu_backward(int64_t n, float slope, const float *x, const float *dy,
                                   float *dx);

/** Local response normalisation across channels (PyTorch's formula):
 *  y = x / (k + alpha/size * sum_{c' in window} x_{c'}^2)^beta, window [c - size/2, c + (size-1)/2].
 *  scale (N*C*HW, may be NULL) saves the denominator base for backward. */
cnn_status cnn_lrn_forward(int64_t N, int64_t C, int64_t HW, int64_t size, float alpha, float beta,
                           float k, const float *x, float *y, float *scale);
cnn_status cnn_lrn_backward(int64_t N, int64_t C, int64_t HW, int64_t size, float alpha, float beta,
                            float k, const float *x, const float *y, const float *scale,
                            const float *dy, float *dx);

/** Dropout with a counter-based generator: element i is kept iff hash(seed, i) >= p; kept elements
 *  are scaled by 1/(1-p). The mask depends only on (seed, i): identical for any thread count.
 *  mask (n bytes, may be NULL) receives 1/0. */
cnn_status cnn_dropout_forward(int64_t n, float p, uint64_t seed, const float *x, float *y,
                               uint8_t *mask);
cnn_status cnn_dropout_backward(int64_t n, float p, const uint8_t *mask, const float *dy, float *dx);

/* ---------------------------------------------------------------- softmax and losses */

/** Over the last axis of (rows, classes): max-subtracted. */
cnn_status cnn_softmax_forward(int64_t rows, int64_t classes, const float *x, float *y);
cnn_status cnn_log_softmax_forward(int64_t rows, int64_t classes, const float *x, float *y);
/** dx = y * (dy - sum(dy * y)) for softmax output y. */
cnn_status cnn_softmax_backward(int64_t rows, int64_t classes, const float *y, const float *dy,
                                float *dx);
/** dx = dy - exp(y) * sum(dy) for log-softmax output y. */
cnn_status cnn_log_softmax_backward(int64_t rows, int64_t classes, const float *y, const float *dy,
                                    float *dx);

/** Cross-entropy from logits with integer labels in [0, classes), optional label smoothing eps:
 *  target = (1-eps) * onehot + eps/classes. reduction: 0 = mean over rows, 1 = sum.
 *  *loss receives the reduced loss; probs (rows x classes, may be NULL) the softmax, for backward.
 *  A label outside [0, classes) returns CNN_ERR_INVALID_ARGUMENT. */
cnn_status cnn_cross_entropy_forward(int64_t rows, int64_t classes, const float *logits,
                                     const int32_t *labels, float label_smoothing, int reduction,
                                     float *loss, float *probs);
/** dlogits written = scale * (probs - target), scale = dloss (/ rows for the mean). */
cnn_status cnn_cross_entropy_backward(int64_t rows, int64_t classes, const float *probs,
                                      const int32_t *labels, float label_smoothing, int reduction,
                                      float dloss, float *dlogits);
/** Mean squared error: mean (reduction 0) or sum (1) of (x - t)^2. */
cnn_status cnn_mse_forward(int64_t n, const float *x, const float *t, int reduction, float *loss);
cnn_status cnn_mse_backward(int64_t n, const float *x, const float *t, int reduction, float dloss,
                            float *dx);

/* ---------------------------------------------------------------- channel concat and elementwise */

/** Concatenates `count` NCHW tensors along C: input i is (N, channels[i], HW). */
cnn_status cnn_concat_channels(int64_t N, int64_t HW, int count, const int64_t *channels,
                               const float *const *inputs, float *y);
/** Splits dy (N, sum channels, HW) back into the parts (each written). */
cnn_status cnn_split_channels(int64_t N, int64_t HW, int count, const int64_t *channels,
                              const float *dy, float *const *outputs);

/** y = a + b; y = a * b; y += alpha * x (axpy); y = alpha * x (scale); sum of x (double accum.). */
cnn_status cnn_add(int64_t n, const float *a, const float *b, float *y);
cnn_status cnn_mul(int64_t n, const float *a, const float *b, float *y);
cnn_status cnn_axpy(int64_t n, float alpha, const float *x, float *y);
cnn_status cnn_scale(int64_t n, float alpha, const float *x, float *y);
double cnn_sum(int64_t n, const float *x);

/* ---------------------------------------------------------------- optimizer updates */

/* One optimizer step on one parameter of n floats, in place: PyTorch's torch.optim rules, the
 * operations in the order the CNN module documents (SGD, Adam, AdamW, RMSprop). Every buffer is n
 * floats and none may overlap another. Parameters of at least 32768 elements are split into fixed
 * chunks updated in parallel; each element's result is the same for any thread count. Float
 * arithmetic rounds after every operation as in Swift (no fused multiply-add) on x86-64; on arm64
 * the compiler may fuse multiply-adds. n == 0 touches no memory; n < 0, a NULL buffer that the
 * options require, or a negative or NaN momentum returns CNN_ERR_INVALID_ARGUMENT. */

/** SGD with momentum mu, dampening tau, learning rate lr, weight decay lambda (L2, added to the
 *  gradient); d is the gradient:
 *      g = d + lambda*p
 *      if mu > 0:  b = g                     on the first step (first_step != 0: no dampening)
 *                  b = mu*b + (1 - tau)*g    afterwards
 *                  g = g + mu*b if nesterov, else g = b
 *      p = p - lr*g
 *  momentum_buffer (b) is used only when momentum > 0 (may be NULL otherwise); nesterov requires
 *  momentum > 0. */
cnn_status cnn_sgd_update(int64_t n, float *p, const float *g, float *momentum_buffer, float lr,
                          float momentum, float dampening, int nesterov, float weight_decay,
                          int first_step);

/** Adam (decoupled == 0) or AdamW (decoupled != 0) at step t = `step` >= 1, with m = exp_avg,
 *  v = exp_avg_sq, vmax = max_exp_avg_sq (NULL: no AMSGrad), d the gradient:
 *      Adam:  g = d + lambda*p                  AdamW: p = p*(1 - lr*lambda) (factor in double,
 *                                                      rounded to float once), g = d
 *      m = beta1*m + (1 - beta1)*g
 *      v = beta2*v + (1 - beta2)*g*g
 *      AMSGrad: vmax = maximum(vmax, v) (a number wins over NaN), then vmax replaces v below
 *      p = p - s*m / (sqrt(v)*r + eps)
 *  with s = lr / (1 - beta1^t) and r = 1 / sqrt(1 - beta2^t), computed in double and rounded to
 *  float once per call. */
cnn_status cnn_adam_update(int64_t n, float *p, const float *g, float *exp_avg, float *exp_avg_sq,
                           float *max_exp_avg_sq, float lr, float beta1, float beta2, float eps,
                           float weight_decay, int decoupled, int64_t step);

/** RMSprop with smoothing alpha, eps, weight decay lambda (L2), momentum mu, with v = square_avg,
 *  b = momentum_buffer (used only when momentum > 0; may be NULL otherwise), a = grad_avg (NULL:
 *  not centered), d the gradient:
 *      g = d + lambda*p
 *      v = alpha*v + (1 - alpha)*g*g
 *      centered: a = alpha*a + (1 - alpha)*g;  den = sqrt(v - a*a) + eps
 *      else:     den = sqrt(v) + eps
 *      mu > 0:   b = mu*b + g/den;  p = p - lr*b
 *      else:     p = p - lr*(g/den) */
cnn_status cnn_rmsprop_update(int64_t n, float *p, const float *g, float *square_avg,
                              float *momentum_buffer, float *grad_avg, float lr, float alpha,
                              float eps, float weight_decay, float momentum);

/* ---------------------------------------------------------------- seeded random fills */

/** Fills y (n floats) from the xoshiro256** generator whose four state words are `state`, advancing
 *  the state in place: exactly the values and final state of the CNN module's
 *  SeededGenerator drawing them one at a time, on every ISA variant.
 *  Uniform: y[i] = lower + width * u, u = (next() >> 40) * 2^-24 in [0, 1), one draw per element.
 *  Normal: y[i] = mean + standard_deviation * z, z = sqrt(-2 log u1) cos(2 pi u2) in double precision
 *  (u = (next() >> 11) * 2^-53, u1 at least 1e-300), two draws per element, evaluated with
 *  vectorised polynomials and libm's log and cos wherever the float could differ (see
 *  tensor/random.c). Float arithmetic as in Swift (no fused multiply-add). Single-threaded. */
cnn_status cnn_random_uniform_fill(uint64_t *state, int64_t n, float lower, float width, float *y);
cnn_status cnn_random_normal_fill(uint64_t *state, int64_t n, float mean, float standard_deviation, float *y);

#ifdef __cplusplus
}
#endif
#endif
