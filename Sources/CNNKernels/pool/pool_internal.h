/* Shared between pool.c (dispatch, reference) and maxpool_s2.c (ISA variants). */
#ifndef CNN_POOL_INTERNAL_H
#define CNN_POOL_INTERNAL_H

#include "../internal.h"

/* Reference max pooling of one plane, output columns [q0, q1) only. */
void cnn_f32_maxpool_plane_cols__generic(const cnn_pool_shape *s, int64_t P, int64_t Q, int64_t q0,
                                         int64_t q1, const float *x, float *y, int32_t *ind);
/* Output columns whose windows need neither padding nor clipping. */
void cnn_pool_interior_cols(const cnn_pool_shape *s, int64_t Q, int64_t *lo, int64_t *hi);

#if CNN_X86
/* One plane, column stride 2, kernel width 2 or 3 (any kernel height, row stride and padding). */
void cnn_f32_maxpool_plane_s2__avx512(const cnn_pool_shape *s, int64_t P, int64_t Q, const float *x,
                                      float *y, int32_t *ind);
void cnn_f32_maxpool_plane_s2__avx2(const cnn_pool_shape *s, int64_t P, int64_t Q, const float *x,
                                    float *y, int32_t *ind);
/* One plane, column stride 1, any kernel width, row stride and padding. */
void cnn_f32_maxpool_plane_s1__avx512(const cnn_pool_shape *s, int64_t P, int64_t Q, const float *x,
                                      float *y, int32_t *ind);
void cnn_f32_maxpool_plane_s1__avx2(const cnn_pool_shape *s, int64_t P, int64_t Q, const float *x,
                                    float *y, int32_t *ind);
#endif

#endif
