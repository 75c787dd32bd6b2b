/* Strided N-d gather / scatter-add shared by the data-movement ops (Transpose, Slice).
 *
 * A "view" is a dense output shape `dims[ndim]` plus, for each output axis, the element stride
 * in the source buffer (may be negative or zero). Gather copies the view into a dense buffer;
 * scatter-add is its adjoint (adds a dense buffer back into the viewed positions). Offsets are
 * relative to the pointer passed in, which may point into the middle of a buffer.
 */
#ifndef CAMD_ENGINE_OP_STRIDED_H
#define CAMD_ENGINE_OP_STRIDED_H

#include <stddef.h>
#include <stdint.h>

#include "camd/engine.h"

/* dst[i] = src[offset(i)] for every i of the dense view. */
static inline void camd__strided_gather(float *dst, const float *src, int ndim, const int64_t *dims,
                                        const int64_t *strides) {
  int64_t inner = ndim > 0 ? dims[ndim - 1] : 1;
  int64_t istride = ndim > 0 ? strides[ndim - 1] : 0;
  int64_t rows = 1;
  for (int d = 0; d + 1 < ndim; d++) rows *= dims[d];
  int64_t idx[CAMD_MAX_DIMS] = {0};
  int64_t off = 0;
  size_t o = 0;
  for (int64_t r = 0; r < rows; r++) {
    const float *s = src + off;
    if (istride == 1) {
      for (int64_t k = 0; k < inner; k++) dst[o + (size_t)k] = s[k];
    } else {
      for (int64_t k = 0; k < inner; k++) dst[o + (size_t)k] = s[k * istride];
    }
    o += (size_t)inner;
    for (int d = ndim - 2; d >= 0; d--) {
      idx[d]++;
      off += strides[d];
      if (idx[d] < dims[d]) break;
      off -= strides[d] * dims[d];
      idx[d] = 0;
    }
  }
}

/* dst[offset(i)] += src[i] for every i of the dense view (the adjoint of the gather). */
static inline void camd__strided_scatter_add(float *dst, const float *src, int ndim,
                                             const int64_t *dims, const int64_t *strides) {
  int64_t inner = ndim > 0 ? dims[ndim - 1] : 1;
  int64_t istride = ndim > 0 ? strides[ndim - 1] : 0;
  int64_t rows = 1;
  for (int d = 0; d + 1 < ndim; d++) rows *= dims[d];
  int64_t idx[CAMD_MAX_DIMS] = {0};
  int64_t off = 0;
  size_t o = 0;
  for (int64_t r = 0; r < rows; r++) {
    float *t = dst + off;
    for (int64_t k = 0; k < inner; k++) t[k * istride] += src[o + (size_t)k];
    o += (size_t)inner;
    for (int d = ndim - 2; d >= 0; d--) {
      idx[d]++;
      off += strides[d];
      if (idx[d] < dims[d]) break;
      off -= strides[d] * dims[d];
      idx[d] = 0;
    }
  }
}

#endif
