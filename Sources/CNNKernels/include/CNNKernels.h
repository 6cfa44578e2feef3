/*
 * CNNKernels — the C kernels under the CNN Swift module.
 *
 * This header is the one public entry point of the C target. It has no stable API of its own: it
 * exists for the `CNN` module, which wraps every call in a safe Swift API. All symbols carry the
 * `cnn_` prefix. Tensors are float32, dense, row-major; images are NCHW; convolution weights are
 * KCRS (PyTorch's OIHW).
 *
 * Gradient convention (every backward kernel): gradients of parameters (weights, biases, batch-norm
 * scale and shift) ACCUMULATE into the output buffer (`+=`); gradients of inputs are WRITTEN (`=`).
 *
 * Threads: every kernel parallelises with OpenMP over the thread count set by
 * cnn_set_num_threads (default: all cores, honouring OMP_NUM_THREADS). Microkernels never start
 * threads; operators do. All kernels are safe to call from several threads at once: scratch memory
 * is per calling thread (cnn_workspace) or passed in by the caller.
 *
 * ISA variants: hot kernels exist as AVX-512, AVX2+FMA and portable C versions, selected once from
 * cpuid and overridable with the environment variable CNN_ISA=avx512|avx2|generic or cnn_isa_set.
 */
#ifndef CNN_KERNELS_H
#define CNN_KERNELS_H

#include "cnn_runtime.h"
#include "cnn_gemm.h"
#include "cnn_conv.h"
#include "cnn_layers.h"
#include "cnn_io.h"

#endif
