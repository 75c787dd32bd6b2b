/* Broadcast iteration shared by the elementwise binary ops and the reductions.
 *
 * A camd__bc_loop describes a walk over a dense "iteration" shape with, for each of two
 * operands, an element stride per axis (0 on broadcast / reduced axes). Setup drops axes of
 * size 1 and merges adjacent axes that are contiguous for both operands, so the common cases
 * (same shape, scalar operand, per-channel [C,1,1] against [N,C,H,W], reduction of trailing
 * axes) collapse to one or a few axes and the innermost loop runs over a long contiguous or
 * constant run. The iteration shape itself is always dense (row-major, no gaps).
 */
#ifndef CAMD_ENGINE_OP_BCAST_H
#define CAMD_ENGINE_OP_BCAST_H

#include <stddef.h>
#include <stdint.h>

#include "camd/engine.h"

typedef struct camd__bc_loop {
  int nd;                      /* >= 1 after setup */
  int64_t dims[CAMD_MAX_DIMS]; /* iteration shape (collapsed) */
  int64_t sa[CAMD_MAX_DIMS];   /* operand A element strides */
  int64_t sb[CAMD_MAX_DIMS];   /* operand B element strides */
} camd__bc_loop;

/* Dense row-major strides of `s` aligned to the right of an iteration shape of rank `nd`
 * with dims `it`: axes missing in `s` or of size 1 where the iteration has more get stride 0. */
static inline void camd__bc_strides(const camd_shape *s, int nd, const int64_t *it,
                                    int64_t *strides) {
  int64_t st = 1;
  for (int d = nd - 1; d >= 0; d--) {
    int sd = d - (nd - s->ndim);
    if (sd < 0) {
      strides[d] = 0;
      continue;
    }
    int64_t len = s->dims[sd];
    strides[d] = (len == 1 && it[d] != 1) ? 0 : st;
    st *= len;
  }
}

/* Builds the loop for an iteration shape `it` (rank nd) and full-rank operand strides. */
static inline void camd__bc_setup(camd__bc_loop *l, int nd, const int64_t *it, const int64_t *sa,
                                  const int64_t *sb) {
  int n = 0;
  for (int d = 0; d < nd; d++) {
    if (it[d] == 1) continue;
    if (n > 0 && l->sa[n - 1] == sa[d] * it[d] && l->sb[n - 1] == sb[d] * it[d]) {
      l->dims[n - 1] *= it[d];
      l->sa[n - 1] = sa[d];
      l->sb[n - 1] = sb[d];
      continue;
    }
    l->dims[n] = it[d];
    l->sa[n] = sa[d];
    l->sb[n] = sb[d];
    n++;
  }
  if (n == 0) {
    l->dims[0] = 1;
    l->sa[0] = 0;
    l->sb[0] = 0;
    n = 1;
  }
  l->nd = n;
}

/* Number of innermost runs (product of all but the last axis). */
static inline int64_t camd__bc_rows(const camd__bc_loop *l) {
  int64_t rows = 1;
  for (int d = 0; d + 1 < l->nd; d++) rows *= l->dims[d];
  return rows;
}

/* Advances the row counter idx[] and the operand offsets to the next innermost run. */
static inline void camd__bc_next(const camd__bc_loop *l, int64_t *idx, int64_t *oa, int64_t *ob) {
  for (int d = l->nd - 2; d >= 0; d--) {
    *oa += l->sa[d];
    *ob += l->sb[d];
    if (++idx[d] < l->dims[d]) return;
    *oa -= l->sa[d] * l->dims[d];
    *ob -= l->sb[d] * l->dims[d];
    idx[d] = 0;
  }
}

#endif
