/* Plan-time layout pass (plan_layout.c): the channel-blocked values of a plan. */
#ifndef CAMD_ENGINE_PLAN_LAYOUT_H
#define CAMD_ENGINE_PLAN_LAYOUT_H

#include <stdbool.h>

#include "engine/dnnl.h"
#include "engine/graph_internal.h"

/* What the pass reads of a plan being built (session.c owns all of it). */
typedef struct camd__layout_plan {
  const int *fwd_nodes; /* forward order */
  int n_fwd;
  const unsigned char *skip; /* per node: fused into its producer */
  const int *write_to;       /* per node: value a fused producer writes, or -1 */
  const camd_post_op *post;  /* per node: a fused producer's post-op */
  const unsigned char *kept; /* per value: readable after the forward (NCHW) */
  bool no_blocking;          /* shared-input plans: everything NCHW */
} camd__layout_plan;

/* Fills in_blk / out_blk (per node: bit i = input i / output i is blocked; n_nodes entries)
 * and prepares worker w's primitives for them. All zero when oneDNN is not in use. Returns 0,
 * or CAMD_E_NOMEM / another status from oneDNN. */
int camd__plan_layout(const camd_graph *g, camd__dnnl_worker *w, const camd__layout_plan *lp,
                      unsigned *in_blk, unsigned *out_blk, camd_error *err);

#endif
