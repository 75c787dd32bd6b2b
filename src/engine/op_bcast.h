/* Broadcast iteration shared by the elementwise binary ops, the reductions and the run-time
 * broadcasting ops (Expand, Tile, Where).
 *
 * A camd__bc_loop describes a walk over a dense "iteration" shape with, for each of up to
 * CAMD_BC_MAX_OPS operands, an element stride per axis (0 on broadcast / reduced / repeated
 * axes). Setup drops axes of size 1 and merges adjacent axes that are contiguous for every
 * operand, so the common cases (same shape, scalar operand, per-channel [C,1,1] against
 * [N,C,H,W], reduction of trailing axes) collapse to one or a few axes and the innermost loop
 * runs over a long contiguous or constant run. The iteration shape itself is always dense
 * (row-major, no gaps). The walking functions take the operand count as an argument: callers
 * pass a literal, so the per-run offset updates unroll to exactly the operands walked (the binary
 * ops' runs can be short: [N,C,7,7] x [N,C,1,1] is 49 elements a run).
 */
#ifndef CAMD_ENGINE_OP_BCAST_H
#define CAMD_ENGINE_OP_BCAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "camd/engine.h"

/* Most axes of an iteration: Tile walks each axis as (repeat, element). */
#define CAMD_BC_MAX_DIMS (2 * CAMD_MAX_DIMS)
/* Most operands of one walk: Where's condition, X and Y. */
#define CAMD_BC_MAX_OPS 3

typedef struct camd__bc_loop {
  int nd;                                        /* >= 1 after setup */
  int64_t dims[CAMD_BC_MAX_DIMS];                /* iteration shape (collapsed) */
  int64_t st[CAMD_BC_MAX_OPS][CAMD_BC_MAX_DIMS]; /* element stride of each operand per axis */
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

/* Builds the loop for an iteration shape `it` (rank nd <= CAMD_BC_MAX_DIMS) and the full-rank
 * strides st[k] of operands k < nops; the other operands get stride 0. */
static inline void camd__bc_setup(camd__bc_loop *l, int nd, const int64_t *it, int nops,
                                  int64_t st[CAMD_BC_MAX_OPS][CAMD_BC_MAX_DIMS]) {
  int n = 0;
  for (int d = 0; d < nd; d++) {
    if (it[d] == 1) continue;
    bool merge = n > 0;
    for (int k = 0; merge && k < nops; k++) merge = l->st[k][n - 1] == st[k][d] * it[d];
    if (merge) {
      l->dims[n - 1] *= it[d];
      for (int k = 0; k < nops; k++) l->st[k][n - 1] = st[k][d];
      continue;
    }
    l->dims[n] = it[d];
    for (int k = 0; k < nops; k++) l->st[k][n] = st[k][d];
    n++;
  }
  if (n == 0) {
    l->dims[0] = 1;
    for (int k = 0; k < nops; k++) l->st[k][0] = 0;
    n = 1;
  }
  for (int k = nops; k < CAMD_BC_MAX_OPS; k++) {
    for (int d = 0; d < n; d++) l->st[k][d] = 0;
  }
  l->nd = n;
}

/* Number of innermost runs (product of all but the last axis). */
static inline int64_t camd__bc_rows(const camd__bc_loop *l) {
  int64_t rows = 1;
  for (int d = 0; d + 1 < l->nd; d++) rows *= l->dims[d];
  return rows;
}

/* The row counter idx[] and the offsets off[nops] of operands 0..nops-1 at innermost run r. */
static inline void camd__bc_seek(const camd__bc_loop *l, int nops, int64_t r, int64_t *idx,
                                 int64_t *off) {
  for (int k = 0; k < nops; k++) off[k] = 0;
  for (int d = l->nd - 2; d >= 0; d--) {
    idx[d] = r % l->dims[d];
    r /= l->dims[d];
    for (int k = 0; k < nops; k++) off[k] += idx[d] * l->st[k][d];
  }
}

/* Advances the row counter idx[] and the offsets off[nops] of operands 0..nops-1 to the next
 * innermost run. */
static inline void camd__bc_next(const camd__bc_loop *l, int nops, int64_t *idx, int64_t *off) {
  for (int d = l->nd - 2; d >= 0; d--) {
    for (int k = 0; k < nops; k++) off[k] += l->st[k][d];
    if (++idx[d] < l->dims[d]) return;
    for (int k = 0; k < nops; k++) off[k] -= l->st[k][d] * l->dims[d];
    idx[d] = 0;
  }
}

#endif
