/* Engine-private operator interface: node, op descriptor, kernel context, attribute helpers.
 *
 * Life of an op:
 *   load time  prepare(g, node)   validate attributes and constant inputs, build node->params
 *                                  (allocated with camd__node_params_alloc), set scratch sizes.
 *              infer(node, ...)    output shapes from input shapes; called at load with batch 1,
 *                                  again with batch 2 (batch check) and per run with the run's
 *                                  batch. Pure; must not modify node.
 *   run time   forward(ctx)        compute outputs from inputs. Never allocates, never prints.
 *                                  May spread disjoint parts of its output over ctx->pool
 *                                  (never one reduction: results must not depend on threads).
 *              backward(ctx)       ADD d(loss)/d(input i) into ctx->grad_in[i].data for every i
 *                                  whose data is non-NULL, from ctx->grad_out. Input gradients
 *                                  only; never weight gradients.
 * infer() receives ndim == -1 for an absent optional input. In backward, ctx->in[i].shape and
 * ctx->out[j].shape are always valid; .data is only guaranteed for the inputs named in
 * bwd_needs_inputs (and the outputs when bwd_needs_outputs).
 * An op that mixes the batch axis (e.g. reduces over axis 0) must call
 * camd__node_mark_batch_mixed(g) in prepare so the model runs one image at a time.
 * Outputs never alias inputs. Int64 constant inputs are only visible at prepare time (copy what
 * you need into params); at run time ctx->in[i].data is NULL for them. Float constants (weights)
 * are passed as regular inputs at run time (data points into the immutable model).
 *
 * Optional hook for derived values (ops created by load-time passes):
 *              grad_view(ctx)      the op's single output is an invertible function of input 0
 *                                  that nothing on the way to the graph outputs reads (e.g. the
 *                                  Conv output a folded BatchNorm leaves behind). When a backward
 *                                  targets that output, the planner stops the backward at input
 *                                  0 and calls grad_view to WRITE ctx->grad_out[0].data (the
 *                                  target's gradient) from ctx->grad_in[0].data (input 0's).
 */
#ifndef CAMD_ENGINE_OP_H
#define CAMD_ENGINE_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "camd/core.h"
#include "camd/engine.h"
#include "camd/graph.h"
#include "engine/engine_assert.h"

typedef struct camd_op_desc camd_op_desc;

/* Attribute as stored in the graph (arena-owned copy of camd_attr). */
typedef camd_attr camd_node_attr;

typedef struct camd_node {
  const camd_op_desc *op;
  const char *op_type; /* as in the model file */
  const char *name;    /* node name (may be generated: "<op_type>_<index>") */
  int opset;
  int n_in, n_out;
  int *in;             /* value ids, -1 = absent optional input */
  int *out;            /* value ids */
  unsigned in_batched; /* bit i set: input i is a batched activation */
  unsigned in_const;   /* bit i set: input i is a constant */
  camd_node_attr *attrs;
  int n_attrs;
  void *params;          /* op-private, built by prepare, immutable afterwards (graph-owned) */
  size_t scratch_floats; /* forward scratch floats, shared (any batch; loop per item) */
  size_t thread_scratch_floats; /* forward scratch floats per pool thread (ctx->thread_scratch) */
  size_t bwd_scratch_floats;    /* backward scratch floats, shared */
} camd_node;

typedef struct camd_tensor {
  float *data; /* NULL for absent inputs, int64 constants, or gradients not wanted */
  camd_shape shape;
} camd_tensor;

/* An elementwise activation a producer applies to its own output while it is in cache (plan-time
 * fusion, plan.c), with exactly the float operations of the op it replaces. */
/* CAMD_POST_MUL_INPUT is the one exception: x → Sigmoid → Mul(x, ·) (SiLU), where the Sigmoid
 * multiplies by its own input; only the Sigmoid applies it (camd__post_op_apply never sees it). */
typedef enum camd_post_kind {
  CAMD_POST_NONE = 0,
  CAMD_POST_RELU,
  CAMD_POST_CLIP,
  CAMD_POST_MUL_INPUT
} camd_post_kind;
typedef struct camd_post_op {
  camd_post_kind kind;
  float lo, hi; /* Clip */
} camd_post_op;

/* Applies post-op `po` to n floats at y (nothing for NULL / NONE). Relu: x > 0 ? x : 0 (NaN -> 0,
 * as op Relu); Clip: max then min (NaN stays NaN, as op Clip). */
static inline void camd__post_op_apply(const camd_post_op *po, float *y, int64_t n) {
  if (!po || po->kind == CAMD_POST_NONE) return;
  if (po->kind == CAMD_POST_RELU) {
    for (int64_t i = 0; i < n; i++) y[i] = y[i] > 0.f ? y[i] : 0.f;
    return;
  }
  CAMD_ASSERT(po->kind == CAMD_POST_CLIP); /* MUL_INPUT: only the Sigmoid applies it */
  const float lo = po->lo, hi = po->hi;
  for (int64_t i = 0; i < n; i++) {
    float v = y[i] < lo ? lo : y[i];
    y[i] = v > hi ? hi : v;
  }
}

typedef struct camd_op_ctx {
  const camd_node *node;
  const void *params;          /* node->params */
  const camd_tensor *in;       /* n_in entries */
  camd_tensor *out;            /* n_out entries */
  const camd_tensor *grad_out; /* backward only: n_out entries (data NULL = zero gradient) */
  camd_tensor *grad_in;        /* backward only: n_in entries (data NULL = not wanted) */
  float *scratch;          /* scratch_floats (forward) / bwd_scratch_floats (backward), shared */
  struct camd__pool *pool; /* the session's threads for camd__pool_for (engine/pool.h) */
  float *thread_scratch;   /* forward: slice t (thread_scratch_floats floats) of pool thread t
                              starts at thread_scratch + t * thread_stride */
  size_t thread_stride;
  const camd_post_op *post; /* forward: activation to apply to out[0] (accepts_post_op ops) */
  bool guided; /* backward: guided backpropagation (Springenberg 2015): Relu passes a gradient
                  only where its input and the incoming gradient are both > 0 */
  /* Forward, plan-time layout (plan_layout.c, dnnl.h): bit i set when input / output i holds
   * channel-blocked data (only ever for Conv and element-wise ops over equal shapes), the
   * session's oneDNN state (NULL: none) and the node's index. */
  unsigned in_blocked, out_blocked;
  struct camd__dnnl_worker *dnnl;
  int node_index;
  /* Forward, a Conv through oneDNN with a fused residual Add: the other addend (out[0]'s
   * shape and layout), added before ctx->post is applied; NULL otherwise. */
  const float *sum_in;
} camd_op_ctx;

struct camd_op_desc {
  const char *op_type;
  int opset_min, opset_max;
  int (*prepare)(camd_graph *g, camd_node *node, camd_error *err);
  int (*infer)(const camd_node *node, const camd_shape *in, camd_shape *out, camd_error *err);
  void (*forward)(const camd_op_ctx *ctx);
  void (*backward)(const camd_op_ctx *ctx); /* NULL: not differentiable */
  unsigned bwd_needs_inputs;                /* bit i: backward reads ctx->in[i].data */
  bool bwd_needs_outputs;                   /* backward reads ctx->out[*].data */
  unsigned grad_inputs; /* bit i: a gradient can flow to input i (data inputs) */
  void (*grad_view)(const camd_op_ctx *ctx); /* NULL for ordinary ops (see above) */
  /* Fusion (plan.c, plan time): a producer that applies ctx->post to its single output, and
   * an activation that can be expressed as one (fills *po from node n's params). */
  bool accepts_post_op;
  bool (*as_post_op)(const camd_node *n, camd_post_op *po);
};

/* Bit of input i in the descriptor masks (bwd_needs_inputs, grad_inputs, node->in_const). */
#define CAMD_IN(i) (1u << (i))

/* Descriptor by exact op type (any opset); NULL if unknown. */
const camd_op_desc *camd__op_find(const char *op_type);

/* ---- helpers for prepare ---- */
/* Marks the graph as mixing the batch axis (see above). */
void camd__node_mark_batch_mixed(camd_graph *g);
/* Allocate zeroed params owned by the graph (freed with the model). */
void *camd__node_params_alloc(camd_graph *g, size_t size);
const camd_node_attr *camd__attr_find(const camd_node *n, const char *name);
/* Read an attribute with a default; CAMD_E_INVALID with a message if it has the wrong type. */
int camd__attr_int(const camd_node *n, const char *name, int64_t def, int64_t *out,
                   camd_error *err);
int camd__attr_float(const camd_node *n, const char *name, float def, float *out, camd_error *err);
/* ints: *out points into the graph (valid for the model's life); *count = 0 if absent. */
int camd__attr_ints(const camd_node *n, const char *name, const int64_t **out, size_t *count,
                    camd_error *err);
/* Returns the string or def. */
const char *camd__attr_string(const camd_node *n, const char *name, const char *def);
/* Shape / dtype / constant data of input i of node (data NULL if not constant or absent).
 * Returns CAMD_E_INVALID if input i is absent. */
int camd__node_input(const camd_graph *g, const camd_node *n, int i, camd_shape *shape,
                     camd_dtype *dtype, const void **data);
/* Error helper: prefixes "node 'NAME' (OP_TYPE): ". Returns status. */
int camd__node_error(camd_error *err, const camd_node *n, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* True when Softmax / LogSoftmax node n, on an input of per-sample shape (batch 1), normalises
 * over all of an item's values at once. */
bool camd__softmax_covers_item(const camd_node *n, const camd_shape *per_sample);

/* ---- shape helpers ---- */
/* numpy-style broadcast of a and b into out; CAMD_E_SHAPE if incompatible. */
int camd__broadcast_shape(const camd_shape *a, const camd_shape *b, camd_shape *out);
/* Row-major strides of s into strides[]. */
void camd__shape_strides(const camd_shape *s, int64_t *strides);

#endif
