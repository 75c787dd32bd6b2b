/* Plan-time layout pass (plan_layout.c): the channel-blocked values of a plan. */
#ifndef CAMD_ENGINE_PLAN_LAYOUT_H
#define CAMD_ENGINE_PLAN_LAYOUT_H

#include <stdbool.h>

#include "engine/dnnl.h"
#include "engine/graph_internal.h"

/* The plan being built (plan.c owns all of it). The pass reads the selection and kept
 * values, and may fuse a residual Add (+ the activation after it) into the convolution that
 * produces one of its inputs: it then updates skip / write_to / post / computed and sets
 * sum_from (per node: the value a fused producer adds to its output, or -1). */
typedef struct camd__layout_plan {
  const int *fwd_nodes; /* forward order */
  int n_fwd;
  unsigned char *skip;       /* per node: fused into its producer */
  int *write_to;             /* per node: value a fused producer writes, or -1 */
  camd_post_op *post;        /* per node: a fused producer's post-op */
  int *sum_from;             /* per node: addend of a fused residual Add, or -1 */
  unsigned char *computed;   /* per value: written by this plan's forward */
  const unsigned char *kept; /* per value: readable after the forward (NCHW) */
  bool no_blocking;          /* shared-input plans: everything NCHW */
} camd__layout_plan;

/* Fills in_blk / out_blk (per node: bit i = input i / output i is blocked; n_nodes entries)
 * and prepares worker w's primitives for them. All zero when oneDNN is not in use. Returns 0,
 * or CAMD_E_NOMEM / another status from oneDNN. */
int camd__plan_layout(const camd_graph *g, camd__dnnl_worker *w, const camd__layout_plan *lp,
                      unsigned *in_blk, unsigned *out_blk, camd_error *err);

#endif
