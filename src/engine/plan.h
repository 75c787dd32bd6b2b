/* Execution plans (plan.c): the plan struct session.c caches and runs, and its builder. */
#ifndef CAMD_ENGINE_PLAN_H
#define CAMD_ENGINE_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "engine/dnnl.h"
#include "engine/graph_internal.h"

#define CAMD_NO_OFFSET ((size_t)-1)
#define CAMD_STEP_END (1 << 30)
#define CAMD_ALIGN_FLOATS 16 /* 64 bytes */

_Static_assert(CAMD_ALIGN_FLOATS * sizeof(float) == 64, "buffers start on 64-byte lines");

typedef struct camd_plan {
  int *retain; /* sorted, deduplicated */
  int n_retain;
  int shared_hook;  /* hook value of shared-input runs (-1: not a shared-input plan) */
  int prefix_batch; /* batch whose replicated prefix results are kept (0: none) */
  int grad_to;      /* as requested */
  int grad_root;    /* value the backward reaches: grad_to, or the input of its producer when
                       that op has a grad_view hook (view_node) */
  int view_node;    /* node index whose grad_view maps grad_root's gradient to grad_to's, or -1 */
  size_t view_off;  /* float offset of grad_to's gradient when view_node >= 0 */
  int capacity;     /* batch the layout is sized for */
  int *fwd_nodes;
  int n_fwd;
  int *bwd_nodes; /* execution order (reverse topological) */
  int n_bwd;
  size_t *fwd_off;         /* per value: float offset in the block, CAMD_NO_OFFSET if none */
  size_t *grad_off;        /* per value */
  unsigned char *kept;     /* per value: readable after forward */
  unsigned char *computed; /* per value: written by this plan's forward */
  unsigned char *after;    /* shared-input plans: per value, computed from the hook value */
  int *write_to;           /* per node: fused producer writes this value instead of out[0], or -1 */
  unsigned char *skip;     /* per node: an activation fused into its producer (not run) */
  camd_post_op *post;      /* per node: the post-op a fused producer applies */
  int n_fused;
  unsigned *in_blk, *out_blk; /* per node: channel-blocked inputs / outputs (plan_layout.c) */
  int *sum_from;              /* per node: addend of a residual Add fused into it, or -1 */
  size_t mem_floats;          /* values + gradients (+ view) */
  size_t scratch_floats;      /* shared kernel scratch, after mem_floats */
  size_t thread_floats; /* kernel scratch per thread: threads × this follow the shared part */
  uint64_t last_used;
} camd_plan;

/* Builds the plan of one kind of request: keep retain_sorted[n_retain] (sorted, deduplicated)
 * readable, back-propagate to grad_to (-1: none), share the input up to shared_hook (-1: no),
 * layout for `capacity` items. Creates *dnnl (the session's oneDNN worker, for `threads`) on first
 * need. The plan is the caller's (camd__plan_free). */
int camd__plan_build(const camd_graph *g, camd__dnnl_worker **dnnl, int threads,
                     const int *retain_sorted, int n_retain, int grad_to, int shared_hook,
                     int capacity, camd_plan **out, camd_error *err);
void camd__plan_free(camd_plan *p);

#endif
