/* Optimizer updates: the element-wise rules of SGD, Adam / AdamW and RMSprop (PyTorch's
 * torch.optim), one fused pass over the parameter, its gradient and the state buffers.
 *
 * Why in C: the rules are memory bound (SGD with momentum moves 16 bytes per parameter, Adam 24 to
 * 28) and a ResNet-18 step updates 11.2M parameters; the CNN module's Swift loops ran on one thread.
 * Here a parameter of at least CNN_OPTIM_PARALLEL_MIN elements is split into CNN_LAYERS_CHUNK-float
 * chunks, a contiguous run of chunks per thread; smaller ones (biases, batch-norm vectors) stay on
 * the calling thread, where starting a team would cost more than the update.
 *
 * Bit-identity: every element goes through the same expression whatever the chunk or thread, so
 * the result does not depend on the thread count. The operations and their order are those of the
 * Swift code these kernels replaced (SIMD8<Float> arithmetic, which never fuses a multiply and an
 * add): on x86-64 the portable build has no FMA instruction to fuse with, so the results are
 * bit-identical to it; on arm64 this target's -ffp-contract=fast lets the compiler fuse
 * multiply-adds (more accurate, but not the same bits). No per-ISA variants: the loops are plain
 * restrict-qualified loops the compiler vectorises (SSE on x86-64 with vector sqrtps and divps, as
 * -fno-math-errno allows), and at this memory traffic wider vectors would not be faster. */
#include "layers_internal.h"

#include <math.h>

/* Parameters at least this long are updated in parallel (two chunks of CNN_LAYERS_CHUNK floats):
 * below it one thread streams the few hundred KiB faster than a team starts. */
#define CNN_OPTIM_PARALLEL_MIN ((int64_t)1 << 15)

static inline int cnn_optim_threads(int64_t n) {
    return n >= CNN_OPTIM_PARALLEL_MIN ? cnn_layers_threads_flat(n) : 1;
}

/* ---------------------------------------------------------------- SGD */

/* p, d, b are (n). One SGD step (see cnn_sgd_update); `has_buffer`, `first` and `nesterov` are
 * compile-time constants at every call, so each combination is its own branch-free loop. */
static inline __attribute__((always_inline)) void
cnn_f32_sgd_loop(int64_t n, float *CNN_RESTRICT p, const float *CNN_RESTRICT d, float *CNN_RESTRICT b,
                 float lr, float mu, float one_minus_tau, float wd, const int has_buffer,
                 const int first, const int nesterov) {
    for (int64_t i = 0; i < n; i++) {
        const float pv = p[i];
        float g = d[i] + wd * pv;
        if (has_buffer) {
            const float m = first ? g : mu * b[i] + one_minus_tau * g;
            b[i] = m;
            g = nesterov ? g + mu * m : m;
        }
        p[i] = pv - lr * g;
    }
}

static void cnn_f32_sgd__generic(int64_t n, float *CNN_RESTRICT p, const float *CNN_RESTRICT d,
                                 float *CNN_RESTRICT b, float lr, float mu, float one_minus_tau,
                                 float wd, int first, int nesterov) {
    if (!b) cnn_f32_sgd_loop(n, p, d, NULL, lr, 0, 0, wd, 0, 0, 0);
    else if (first && nesterov) cnn_f32_sgd_loop(n, p, d, b, lr, mu, one_minus_tau, wd, 1, 1, 1);
    else if (first) cnn_f32_sgd_loop(n, p, d, b, lr, mu, one_minus_tau, wd, 1, 1, 0);
    else if (nesterov) cnn_f32_sgd_loop(n, p, d, b, lr, mu, one_minus_tau, wd, 1, 0, 1);
    else cnn_f32_sgd_loop(n, p, d, b, lr, mu, one_minus_tau, wd, 1, 0, 0);
}

// p, g, momentum_buffer are (n)
cnn_status cnn_sgd_update(int64_t n, float *p, const float *g, float *momentum_buffer, float lr,
                          float momentum, float dampening, int nesterov, float weight_decay,
                          int first_step) {
    if (n < 0) return CNN_ERR_INVALID_ARGUMENT;
    if (n == 0) return CNN_OK;
    if (!p || !g || !(momentum >= 0)) return CNN_ERR_INVALID_ARGUMENT;
    if (momentum > 0 && !momentum_buffer) return CNN_ERR_INVALID_ARGUMENT;
    if (nesterov && momentum == 0) return CNN_ERR_INVALID_ARGUMENT;
    float *b = momentum > 0 ? momentum_buffer : NULL;
    const float one_minus_tau = 1 - dampening;
    const int64_t chunks = (n + CNN_LAYERS_CHUNK - 1) / CNN_LAYERS_CHUNK;
    const int nt = cnn_optim_threads(n);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t i = c * CNN_LAYERS_CHUNK;
        cnn_f32_sgd__generic(CNN_MIN(CNN_LAYERS_CHUNK, n - i), p + i, g + i, b ? b + i : NULL, lr,
                             momentum, one_minus_tau, weight_decay, first_step != 0, nesterov != 0);
    }
    return CNN_OK;
}

/* ---------------------------------------------------------------- Adam / AdamW */

/* The per-step constants of Adam, from the bias corrections in double precision. */
typedef struct cnn_adam_constants {
    float shrink;                /* AdamW: 1 - lr * weight_decay; Adam: 1 */
    float l2;                    /* Adam: weight_decay (added to the gradient); AdamW: 0 */
    float beta1, one_minus_beta1;
    float beta2, one_minus_beta2;
    float step_size;             /* lr / (1 - beta1^t) */
    float inverse_root_bc2;      /* 1 / sqrt(1 - beta2^t) */
    float eps;
} cnn_adam_constants;

/* p, d, m, v, vmax are (n). `amsgrad` is a compile-time constant at every call. The running
 * maximum is Swift's FloatingPoint.maximum(vmax, v) (the number wins over a NaN), as before. */
static inline __attribute__((always_inline)) void
cnn_f32_adam_loop(int64_t n, float *CNN_RESTRICT p, const float *CNN_RESTRICT d, float *CNN_RESTRICT m,
                  float *CNN_RESTRICT v, float *CNN_RESTRICT vmax, const cnn_adam_constants k,
                  const int amsgrad) {
    for (int64_t i = 0; i < n; i++) {
        const float pv = p[i] * k.shrink;
        const float g = d[i] + k.l2 * pv;
        const float mv = k.beta1 * m[i] + k.one_minus_beta1 * g;
        const float vv = k.beta2 * v[i] + k.one_minus_beta2 * g * g;
        m[i] = mv;
        v[i] = vv;
        float vh = vv;
        if (amsgrad) {
            const float vm = vmax[i];
            vh = (vm > vv || vv != vv) ? vm : vv;
            vmax[i] = vh;
        }
        /* sqrt(v^) / sqrt(1 - beta2^t) as one multiply; eps after the correction, as PyTorch. */
        p[i] = pv - k.step_size * mv / (sqrtf(vh) * k.inverse_root_bc2 + k.eps);
    }
}

static void cnn_f32_adam__generic(int64_t n, float *CNN_RESTRICT p, const float *CNN_RESTRICT d,
                                  float *CNN_RESTRICT m, float *CNN_RESTRICT v, float *CNN_RESTRICT vmax,
                                  const cnn_adam_constants *k) {
    if (vmax) cnn_f32_adam_loop(n, p, d, m, v, vmax, *k, 1);
    else cnn_f32_adam_loop(n, p, d, m, v, NULL, *k, 0);
}

// p, g, exp_avg, exp_avg_sq, max_exp_avg_sq are (n)
cnn_status cnn_adam_update(int64_t n, float *p, const float *g, float *exp_avg, float *exp_avg_sq,
                           float *max_exp_avg_sq, float lr, float beta1, float beta2, float eps,
                           float weight_decay, int decoupled, int64_t step) {
    if (n < 0) return CNN_ERR_INVALID_ARGUMENT;
    if (n == 0) return CNN_OK;
    if (!p || !g || !exp_avg || !exp_avg_sq || step < 1) return CNN_ERR_INVALID_ARGUMENT;
    const double t = (double)step;
    const double bias_correction1 = 1 - pow((double)beta1, t);
    const double bias_correction2 = 1 - pow((double)beta2, t);
    cnn_adam_constants k;
    k.shrink = decoupled ? (float)(1 - (double)lr * (double)weight_decay) : 1.0f;
    k.l2 = decoupled ? 0.0f : weight_decay;
    k.beta1 = beta1;
    k.one_minus_beta1 = 1 - beta1;
    k.beta2 = beta2;
    k.one_minus_beta2 = 1 - beta2;
    k.step_size = (float)((double)lr / bias_correction1);
    k.inverse_root_bc2 = (float)(1 / sqrt(bias_correction2));
    k.eps = eps;
    const int64_t chunks = (n + CNN_LAYERS_CHUNK - 1) / CNN_LAYERS_CHUNK;
    const int nt = cnn_optim_threads(n);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t i = c * CNN_LAYERS_CHUNK;
        cnn_f32_adam__generic(CNN_MIN(CNN_LAYERS_CHUNK, n - i), p + i, g + i, exp_avg + i,
                              exp_avg_sq + i, max_exp_avg_sq ? max_exp_avg_sq + i : NULL, &k);
    }
    return CNN_OK;
}

/* ---------------------------------------------------------------- RMSprop */

/* p, d, v, b, gavg are (n). `has_momentum` and `centered` are compile-time constants at every
 * call. */
static inline __attribute__((always_inline)) void
cnn_f32_rmsprop_loop(int64_t n, float *CNN_RESTRICT p, const float *CNN_RESTRICT d, float *CNN_RESTRICT v,
                     float *CNN_RESTRICT b, float *CNN_RESTRICT gavg, float lr, float alpha,
                     float one_minus_alpha, float eps, float wd, float mu, const int has_momentum,
                     const int centered) {
    for (int64_t i = 0; i < n; i++) {
        const float pv = p[i];
        const float g = d[i] + wd * pv;
        const float vv = alpha * v[i] + one_minus_alpha * g * g;
        v[i] = vv;
        float denominator;
        if (centered) {
            const float mean = alpha * gavg[i] + one_minus_alpha * g;
            gavg[i] = mean;
            denominator = sqrtf(vv - mean * mean) + eps;
        } else {
            denominator = sqrtf(vv) + eps;
        }
        if (has_momentum) {
            const float bv = mu * b[i] + g / denominator;
            b[i] = bv;
            p[i] = pv - lr * bv;
        } else {
            p[i] = pv - lr * (g / denominator);
        }
    }
}

static void cnn_f32_rmsprop__generic(int64_t n, float *CNN_RESTRICT p, const float *CNN_RESTRICT d,
                                     float *CNN_RESTRICT v, float *CNN_RESTRICT b,
                                     float *CNN_RESTRICT gavg, float lr, float alpha, float eps,
                                     float wd, float mu) {
    const float one_minus_alpha = 1 - alpha;
    if (b && gavg) cnn_f32_rmsprop_loop(n, p, d, v, b, gavg, lr, alpha, one_minus_alpha, eps, wd, mu, 1, 1);
    else if (b) cnn_f32_rmsprop_loop(n, p, d, v, b, NULL, lr, alpha, one_minus_alpha, eps, wd, mu, 1, 0);
    else if (gavg) cnn_f32_rmsprop_loop(n, p, d, v, NULL, gavg, lr, alpha, one_minus_alpha, eps, wd, mu, 0, 1);
    else cnn_f32_rmsprop_loop(n, p, d, v, NULL, NULL, lr, alpha, one_minus_alpha, eps, wd, mu, 0, 0);
}

// p, g, square_avg, momentum_buffer, grad_avg are (n)
cnn_status cnn_rmsprop_update(int64_t n, float *p, const float *g, float *square_avg,
                              float *momentum_buffer, float *grad_avg, float lr, float alpha,
                              float eps, float weight_decay, float momentum) {
    if (n < 0) return CNN_ERR_INVALID_ARGUMENT;
    if (n == 0) return CNN_OK;
    if (!p || !g || !square_avg || !(momentum >= 0)) return CNN_ERR_INVALID_ARGUMENT;
    if (momentum > 0 && !momentum_buffer) return CNN_ERR_INVALID_ARGUMENT;
    float *b = momentum > 0 ? momentum_buffer : NULL;
    const int64_t chunks = (n + CNN_LAYERS_CHUNK - 1) / CNN_LAYERS_CHUNK;
    const int nt = cnn_optim_threads(n);
    CNN_OMP_PARALLEL_FOR(nt)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t i = c * CNN_LAYERS_CHUNK;
        cnn_f32_rmsprop__generic(CNN_MIN(CNN_LAYERS_CHUNK, n - i), p + i, g + i, square_avg + i,
                                 b ? b + i : NULL, grad_avg ? grad_avg + i : NULL, lr, alpha, eps,
                                 weight_decay, momentum);
    }
    return CNN_OK;
}
