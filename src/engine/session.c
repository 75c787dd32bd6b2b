/* Session: per-worker execution of a model — plans, buffer reuse, forward and partial backward.
 *
 * DESIGN
 * A plan answers "which nodes run, where does every value live" for one kind of request:
 * (values to keep readable, value the backward must reach, shared-input hook, batch capacity).
 * It is built the first time that kind of request is seen and cached in the session (a handful
 * per worker in practice: one per CAM layer and batch size in use). Plans hold offsets only:
 * the session owns ONE memory block, sized to the largest plan it has built (values, gradients
 * and kernel scratch), and whichever plan runs uses it. The block is allocated and zero-filled
 * (first touch) before a new plan enters the cache, so a cached plan always fits the block.
 *
 * Batch capacity: a plan is laid out for the smallest power of two >= the run's batch (capped by
 * the session's max batch), so a batch-1 request runs in a compact batch-1 layout even on a
 * session sized for batches of 8.
 *
 * Forward runs only the nodes the graph outputs, the kept values and the backward target need.
 * Every value gets a live interval [step that writes it, last step that reads it]; values the
 * caller keeps, graph outputs, and the activations the backward will read stay live to the end.
 * Buffers are placed by greedy interval packing (largest first, lowest offset that does not
 * overlap a live neighbour), so memory is reused as soon as a value is dead.
 *
 * Backward walks, in reverse order, only the nodes on paths from the backward root to the
 * graph outputs, and only input gradients: no weight gradient is ever computed. Gradient
 * buffers get their own packed region (live from the step a consumer first writes them to the
 * step their producer reads them), zero-filled lazily when first written, so several targets
 * can be back-propagated after one forward.
 *
 * Derived values (op->grad_view): when the backward target is the output of a node whose op
 * says "my output is an invertible function of my input 0 and nothing downstream reads it" (the
 * BnInverse node left by BatchNorm folding), the backward stops at that node's input instead and
 * the op's grad_view hook maps the gradient there to the target's gradient.
 *
 * Code map: plans are built in plan.c (camd__plan_build); here plan_get finds or builds one and
 * makes the session block large enough before caching it; the forward/backward loops follow.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "camd/core.h"
#include "engine/blas.h"
#include "engine/dnnl.h"
#include "engine/engine_assert.h"
#include "engine/graph_internal.h"
#include "engine/plan.h"
#include "engine/pool.h"

#define CAMD_PLAN_CACHE 12

struct camd_session {
  camd_model *model;
  const camd_graph *g;
  int max_batch;
  camd_plan *plans[CAMD_PLAN_CACHE];
  int n_plans;
  uint64_t clock;
  camd_plan *cur; /* plan of the last forward */
  int cur_batch;
  camd_shape *shapes;       /* per value, for the current run */
  float **ptr;              /* per value data pointer for the current run */
  unsigned char *grad_live; /* per value: gradient buffer holds data in this backward */
  int *sorted;              /* n_values: kept-value ids of a request, sorted (no allocation) */
  bool have_backward;
  float *mem; /* the one block: the running plan's values, gradients, then scratch */
  size_t mem_floats;
  const camd_plan *mem_owner; /* plan whose values the block holds (prefix reuse) */
  camd__pool *pool;           /* the session's threads (NULL: one) */
  int threads;
  camd__dnnl_worker *dnnl; /* oneDNN stream, primitives and scratch of this session (dnnl.h;
                              created with the first plan, NULL without oneDNN) */
  uint64_t *node_ns;       /* profiling on: forward nanoseconds per node, summed over runs */
  uint64_t forward_items;  /* batch items of every successful forward since creation */
  size_t bytes;
};

void camd_forward_opts_init(camd_forward_opts *o) {
  memset(o, 0, sizeof(*o));
  o->grad_to = -1;
  o->hook_value = -1;
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* Makes the session block hold `floats` (values of the plan about to run plus its scratch).
 * The block's previous contents are lost. */
static int reserve_block(camd_session *s, size_t floats, camd_error *err) {
  if (floats <= s->mem_floats && s->mem) return 0;
  size_t bytes;
  if (!camd_size_mul(floats ? floats : CAMD_ALIGN_FLOATS, sizeof(float), &bytes)) {
    return camd_error_set(err, CAMD_E_LIMIT, "session memory size overflows");
  }
  /* Large blocks on 2 MiB boundaries and transparent huge pages (fewer first-touch faults). */
  const size_t huge = (size_t)2 << 20;
  float *m = bytes >= 2 * huge ? aligned_alloc(huge, (bytes + huge - 1) / huge * huge)
                               : aligned_alloc(64, bytes);
#ifdef MADV_HUGEPAGE
  if (m && bytes >= 2 * huge) madvise(m, (bytes + huge - 1) / huge * huge, MADV_HUGEPAGE);
#endif
  if (!m) {
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory allocating %zu MiB for the session",
                          bytes >> 20);
  }
  memset(m, 0, bytes); /* first touch now, not in the timed forward */
  free(s->mem);
  s->bytes = s->bytes - s->mem_floats * sizeof(float) + bytes;
  s->mem = m;
  s->mem_floats = bytes / sizeof(float);
  s->mem_owner = NULL;
  return 0;
}

/* Sorted, deduplicated copy of the kept values into s->sorted; returns the count or < 0. */
static int sort_retain(camd_session *s, const camd_forward_opts *o, camd_error *err) {
  const int nv = s->g->n_values;
  int n_retain = o ? o->n_retain : 0;
  if (n_retain < 0 || n_retain > nv) {
    return camd_error_set(err, CAMD_E_INVALID, "invalid number of kept values (%d)", n_retain);
  }
  for (int i = 0; i < n_retain; i++) {
    int v = o->retain[i];
    if (v < 0 || v >= nv) {
      return camd_error_set(err, CAMD_E_INVALID, "kept value id %d does not exist", v);
    }
    s->sorted[i] = v;
  }
  qsort(s->sorted, (size_t)n_retain, sizeof(int), cmp_int);
  int u = 0;
  for (int i = 0; i < n_retain; i++) {
    if (u == 0 || s->sorted[u - 1] != s->sorted[i]) s->sorted[u++] = s->sorted[i];
  }
  return u;
}

/* Floats of the session block plan p needs: its values and gradients, the shared scratch, then
 * one scratch slice per thread. */
static size_t plan_block_floats(const camd_session *s, const camd_plan *p) {
  return p->mem_floats + p->scratch_floats + p->thread_floats * (size_t)s->threads;
}

static int plan_capacity(const camd_session *s, int batch) {
  int c = 1;
  while (c < batch) c *= 2;
  return c < s->max_batch ? c : s->max_batch;
}

static int plan_get(camd_session *s, const camd_forward_opts *o, int batch, camd_plan **out,
                    camd_error *err) {
  const camd_graph *g = s->g;
  int grad_to = o ? o->grad_to : -1;
  int shared_hook = o && o->shared_input && o->hook ? o->hook_value : -1;
  if (shared_hook >= g->n_values) return camd_error_set(err, CAMD_E_INVALID, "bad hook value");
  int u = sort_retain(s, o, err);
  if (u < 0) return u;
  if (grad_to >= g->n_values || grad_to < -1) {
    return camd_error_set(err, CAMD_E_INVALID, "backward target id %d does not exist", grad_to);
  }
  if (grad_to >= 0 && (g->values[grad_to].data || !g->values[grad_to].batched)) {
    return camd_error_set(err, CAMD_E_INVALID,
                          "value '%s' is a constant; gradients are only computed for activations",
                          g->values[grad_to].name);
  }
  const int capacity = plan_capacity(s, batch);
  camd_plan *p = NULL;
  for (int i = 0; i < s->n_plans && !p; i++) {
    camd_plan *c = s->plans[i];
    if (c->grad_to != grad_to || c->shared_hook != shared_hook || c->n_retain != u ||
        (u && memcmp(c->retain, s->sorted, sizeof(int) * (size_t)u) != 0))
      continue;
    /* A prefix-reusing run stays on the plan that holds the prefix (any capacity >= batch). */
    bool holds_prefix = o && o->reuse_prefix && c == s->mem_owner && c->prefix_batch >= batch;
    if (c->capacity == capacity || holds_prefix) p = c;
  }
  if (!p) {
    int rc = camd__plan_build(g, &s->dnnl, s->threads, s->sorted, u, grad_to, shared_hook, capacity,
                              &p, err);
    if (rc) return rc;
    /* The block first: a plan enters the cache only once the block can hold it. */
    rc = reserve_block(s, plan_block_floats(s, p), err);
    if (rc) {
      camd__plan_free(p);
      return rc;
    }
    if (s->n_plans == CAMD_PLAN_CACHE) { /* evict least recently used */
      int lru = 0;
      for (int i = 1; i < s->n_plans; i++) {
        if (s->plans[i]->last_used < s->plans[lru]->last_used) lru = i;
      }
      if (s->cur == s->plans[lru]) s->cur = NULL;
      if (s->mem_owner == s->plans[lru]) s->mem_owner = NULL;
      camd__plan_free(s->plans[lru]);
      s->plans[lru] = s->plans[--s->n_plans];
    }
    s->plans[s->n_plans++] = p;
  }
  int rc = reserve_block(s, plan_block_floats(s, p), err); /* after a thread-count change */
  if (rc) return rc;
  CAMD_ASSERT(plan_block_floats(s, p) <= s->mem_floats);
  p->last_used = ++s->clock;
  *out = p;
  return 0;
}

/* ---- session ---- */

int camd_session_create(camd_model *m, int max_batch, camd_session **out, camd_error *err) {
  *out = NULL;
  if (!m) return camd_error_set(err, CAMD_E_INVALID, "no model");
  if (max_batch < 1 || max_batch > CAMD_ENGINE_MAX_BATCH) {
    return camd_error_set(err, CAMD_E_INVALID, "max batch %d is outside 1..%d", max_batch,
                          CAMD_ENGINE_MAX_BATCH);
  }
  camd_session *s = calloc(1, sizeof(*s));
  if (!s) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  s->model = camd_model_retain(m);
  s->g = m->graph;
  s->max_batch = max_batch < m->max_batch ? max_batch : m->max_batch;
  size_t nv = (size_t)s->g->n_values + 1;
  s->shapes = calloc(nv, sizeof(camd_shape));
  s->ptr = calloc(nv, sizeof(float *));
  s->grad_live = calloc(nv, 1);
  s->sorted = calloc(nv, sizeof(int));
  if (!s->shapes || !s->ptr || !s->grad_live || !s->sorted) {
    camd_session_destroy(s);
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  }
  s->bytes = nv * (sizeof(camd_shape) + sizeof(float *) + 1 + sizeof(int));
  camd__blas_single_thread(); /* the engine's own threads split the work, not the BLAS */
  s->threads = 1;
  int rc = camd_session_set_threads(s, camd_engine_default_threads(), err);
  if (rc) {
    camd_session_destroy(s);
    return rc;
  }
  *out = s;
  return 0;
}

int camd_session_set_threads(camd_session *s, int threads, camd_error *err) {
  if (threads < 1 || threads > CAMD_POOL_MAX_THREADS) {
    return camd_error_set(err, CAMD_E_INVALID, "engine threads %d is outside 1..%d", threads,
                          CAMD_POOL_MAX_THREADS);
  }
  if (threads == camd__pool_threads(s->pool)) return 0;
  camd__pool *np = NULL;
  if (threads > 1) {
    int rc = camd__pool_create(threads, &np, err);
    if (rc) return rc;
  }
  camd__pool_destroy(s->pool);
  s->pool = np;
  s->threads = threads;
  /* oneDNN primitives are made for a thread count: the plans that prepared them go too. */
  if (s->dnnl) {
    for (int i = 0; i < s->n_plans; i++) camd__plan_free(s->plans[i]);
    s->n_plans = 0;
    s->cur = NULL;
    s->mem_owner = NULL;
    camd__dnnl_worker_destroy(s->dnnl);
    s->dnnl = NULL;
  }
  return 0;
}

int camd_session_threads(const camd_session *s) {
  return s->threads;
}

typedef struct lent_loop {
  camd_parallel_fn fn;
  void *arg;
} lent_loop;

static void lent_task(void *arg, int64_t i, int thread) {
  (void)thread;
  const lent_loop *l = arg;
  l->fn(l->arg, i);
}

static void lent_run(void *ctx, int64_t n, camd_parallel_fn fn, void *arg) {
  lent_loop l = {fn, arg};
  camd__pool_for(ctx, n, lent_task, &l);
}

camd_parallel camd_session_parallel(camd_session *s) {
  camd_parallel par = {lent_run, s->pool};
  return par;
}

uint64_t camd_session_forward_items(const camd_session *s) {
  return s->forward_items;
}

int camd_session_onednn_convs(const camd_session *s) {
  const camd_plan *p = s->cur;
  int n = 0;
  for (int i = 0; p && i < p->n_fwd; i++) {
    const int k = p->fwd_nodes[i];
    n += s->dnnl && camd__conv_dnnl(&s->g->nodes[k]) && !p->skip[k];
  }
  return n;
}

int camd_session_winograd_convs(const camd_session *s) {
  const camd_plan *p = s->cur;
  int n = 0;
  for (int i = 0; p && i < p->n_fwd; i++) {
    const int k = p->fwd_nodes[i];
    n += s->dnnl && camd__dnnl_conv_winograd(camd__conv_dnnl(&s->g->nodes[k])) && !p->skip[k];
  }
  return n;
}

int camd_session_set_profiling(camd_session *s, bool on, camd_error *err) {
  if (!on) {
    free(s->node_ns);
    s->node_ns = NULL;
    return 0;
  }
  if (s->node_ns) {
    memset(s->node_ns, 0, sizeof(uint64_t) * (size_t)(s->g->n_nodes + 1));
    return 0;
  }
  s->node_ns = calloc((size_t)s->g->n_nodes + 1, sizeof(uint64_t));
  return s->node_ns ? 0 : camd_error_set(err, CAMD_E_NOMEM, "out of memory");
}

const uint64_t *camd_session_profile(const camd_session *s) {
  return s->node_ns;
}

void camd_session_destroy(camd_session *s) {
  if (!s) return;
  for (int i = 0; i < s->n_plans; i++) camd__plan_free(s->plans[i]);
  free(s->shapes);
  free(s->ptr);
  free(s->grad_live);
  free(s->sorted);
  free(s->mem);
  free(s->node_ns);
  camd__pool_destroy(s->pool);
  camd__dnnl_worker_destroy(s->dnnl);
  camd_model_release(s->model);
  free(s);
}

int camd_session_max_batch(const camd_session *s) {
  return s->max_batch;
}
const camd_model *camd_session_model(const camd_session *s) {
  return s->model;
}
size_t camd_session_bytes(const camd_session *s) {
  return s->bytes;
}

static void set_run_shapes(camd_session *s, int batch) {
  const camd_graph *g = s->g;
  for (int v = 0; v < g->n_values; v++) {
    s->shapes[v] = g->values[v].shape;
    if (g->values[v].batched && s->shapes[v].ndim > 0) {
      s->shapes[v].dims[0] = g->values[v].shape.dims[0] * batch;
    }
  }
}

/* Copies batch item 0 of value v over items 1..batch-1. */
static void replicate_item0(camd_session *s, int v, int batch) {
  size_t per = camd_shape_count(&s->g->values[v].shape);
  float *d = s->ptr[v];
  for (int b = 1; b < batch; b++) memcpy(d + (size_t)b * per, d, per * sizeof(float));
}

static void call_hook(const camd_forward_opts *o, camd_session *s, int v) {
  o->hook(o->hook_ctx, v, s->ptr[v], &s->shapes[v]);
}

/* Input and output tensors of node n for the current run; `once` runs it at batch 1. */
static void node_tensors(const camd_session *s, const camd_node *n, bool once, camd_tensor *in,
                         camd_tensor *out) {
  const camd_graph *g = s->g;
  for (int k = 0; k < n->n_in; k++) {
    int v = n->in[k];
    if (v < 0) {
      in[k].data = NULL;
      in[k].shape.ndim = -1;
      continue;
    }
    in[k].data = s->ptr[v];
    in[k].shape = s->shapes[v];
    if (once && g->values[v].batched) in[k].shape.dims[0] = g->values[v].shape.dims[0];
  }
  for (int j = 0; j < n->n_out; j++) {
    out[j].data = s->ptr[n->out[j]];
    out[j].shape = s->shapes[n->out[j]];
    if (once) out[j].shape.dims[0] = g->values[n->out[j]].shape.dims[0];
  }
}

int camd_session_forward_multi(camd_session *s, int batch, const float *const *inputs,
                               const camd_forward_opts *opts, camd_error *err) {
  const camd_graph *g = s->g;
  if (batch < 1 || batch > s->max_batch) {
    return camd_error_set(err, CAMD_E_INVALID, "batch %d is outside 1..%d for this session%s",
                          batch, s->max_batch,
                          s->model->max_batch == 1 ? " (this model runs one image at a time)" : "");
  }
  const int hook_value = opts && opts->hook ? opts->hook_value : -1;
  if (opts && opts->shared_input && hook_value < 0) {
    return camd_error_set(err, CAMD_E_INVALID, "a shared-input run needs a hook value");
  }
  for (int i = 0; i < g->n_inputs; i++) {
    if (!inputs || !inputs[i]) {
      return camd_error_set(err, CAMD_E_INVALID, "no data for model input '%s'",
                            g->values[g->inputs[i]].name);
    }
  }
  camd__dnnl_worker_bind(s->dnnl); /* oneDNN on this session's threads (may be NULL yet) */
  camd_plan *p = NULL;
  int rc = plan_get(s, opts, batch, &p, err);
  if (rc) return rc;
  camd__dnnl_worker_bind(s->dnnl);
  if (hook_value >= 0 && (hook_value >= g->n_values || !p->computed[hook_value])) {
    return camd_error_set(err, CAMD_E_INVALID, "hook value %d is not computed by this run",
                          hook_value);
  }
  CAMD_ASSERT(batch <= p->capacity);
  s->cur = NULL;
  s->have_backward = false;
  set_run_shapes(s, batch);
  for (int v = 0; v < g->n_values; v++) {
    if (g->values[v].data)
      s->ptr[v] = g->values[v].dtype == CAMD_FLOAT32 ? g->values[v].data : NULL;
    else
      s->ptr[v] = p->fwd_off[v] != CAMD_NO_OFFSET ? s->mem + p->fwd_off[v] : NULL;
  }
  float *scratch = s->mem + p->mem_floats;
  const bool shared = opts && opts->shared_input && hook_value >= 0 && batch > 1;
  /* The prefix kept by the last shared run is only there if no other plan used the block. */
  const bool reuse = shared && opts->reuse_prefix && s->mem_owner == p && p->prefix_batch >= batch;
  if (s->mem_owner != p && s->mem_owner) ((camd_plan *)s->mem_owner)->prefix_batch = 0;
  s->mem_owner = p;
  for (int i = 0; i < g->n_inputs; i++) {
    int v = g->inputs[i];
    if (reuse && v != hook_value) continue;
    CAMD_ASSERT(s->ptr[v] != NULL);
    size_t count = camd_shape_count(&s->shapes[v]);
    if (shared) {
      memcpy(s->ptr[v], inputs[i], count / (size_t)batch * sizeof(float));
      replicate_item0(s, v, batch);
    } else {
      memcpy(s->ptr[v], inputs[i], count * sizeof(float));
    }
    if (v == hook_value) call_hook(opts, s, v);
  }
  camd_tensor in[CAMD_NODE_MAX_IO], out[CAMD_NODE_MAX_IO];
  for (int i = 0; i < p->n_fwd; i++) {
    const camd_node *n = &g->nodes[p->fwd_nodes[i]];
    /* In a shared-input run, nodes before the hook run once (batch 1), then replicate. */
    bool once = shared;
    for (int k = 0; once && k < n->n_in; k++) once = n->in[k] < 0 || !p->after[n->in[k]];
    bool makes_hook = false;
    for (int j = 0; j < n->n_out; j++) makes_hook |= n->out[j] == hook_value;
    if (once && reuse && !makes_hook) continue; /* kept from the previous shared run */
    if (p->skip[p->fwd_nodes[i]]) continue;     /* fused into its producer */
    node_tensors(s, n, once, in, out);
    const int fused = p->write_to[p->fwd_nodes[i]];
    if (fused >= 0) {
      CAMD_ASSERT(n->n_out == 1 && s->ptr[fused] &&
                  camd_shape_equal(&out[0].shape, &s->shapes[fused]));
      out[0].data = s->ptr[fused];
    }
    camd_op_ctx ctx = {
        .node = n,
        .params = n->params,
        .in = in,
        .out = out,
        .scratch = scratch,
        .pool = s->pool,
        .thread_scratch = scratch + p->scratch_floats,
        .thread_stride = p->thread_floats,
        .post = fused >= 0 ? &p->post[p->fwd_nodes[i]] : NULL,
        .in_blocked = p->in_blk[p->fwd_nodes[i]],
        .out_blocked = p->out_blk[p->fwd_nodes[i]],
        .dnnl = s->dnnl,
        .node_index = p->fwd_nodes[i],
        .sum_in = p->sum_from[p->fwd_nodes[i]] >= 0 ? s->ptr[p->sum_from[p->fwd_nodes[i]]] : NULL};
    const uint64_t t0 = s->node_ns ? camd_now_ns() : 0;
    n->op->forward(&ctx);
    if (s->node_ns) s->node_ns[p->fwd_nodes[i]] += camd_now_ns() - t0;
    if (once) {
      for (int j = 0; j < n->n_out; j++) {
        if (out[j].data) replicate_item0(s, n->out[j], batch);
      }
    }
    /* A producer fused with the activation that makes the hook value writes it. */
    if (makes_hook || (fused >= 0 && fused == hook_value)) call_hook(opts, s, hook_value);
  }
  s->cur = p;
  s->cur_batch = batch;
  s->forward_items += (uint64_t)batch;
  p->prefix_batch = shared ? (reuse ? p->prefix_batch : batch) : 0;
  return 0;
}

int camd_session_forward(camd_session *s, int batch, const float *input,
                         const camd_forward_opts *opts, camd_error *err) {
  if (s->g->n_inputs != 1) {
    return camd_error_set(err, CAMD_E_INVALID,
                          "the model has %d inputs; use camd_session_forward_multi",
                          s->g->n_inputs);
  }
  const float *inputs[1] = {input};
  return camd_session_forward_multi(s, batch, inputs, opts, err);
}

const float *camd_session_value(camd_session *s, int value_id, camd_shape *shape) {
  if (!s->cur || value_id < 0 || value_id >= s->g->n_values) return NULL;
  if (!s->cur->kept[value_id] || !s->ptr[value_id]) return NULL;
  if (shape) *shape = s->shapes[value_id];
  return s->ptr[value_id];
}

/* Gradient buffer of value v for this backward, zero-filled on first use. */
static float *grad_buffer(camd_session *s, const camd_plan *p, int v) {
  float *gv = s->mem + p->grad_off[v];
  if (!s->grad_live[v]) {
    memset(gv, 0, camd_shape_count(&s->shapes[v]) * sizeof(float));
    s->grad_live[v] = 1;
  }
  return gv;
}

/* What a backward does besides the plain rule: guided Relu, and an observer of the gradients. */
typedef struct backward_mode {
  bool guided;
  camd_backward_observer observer; /* NULL: none (one branch per node) */
  void *observer_ctx;
} backward_mode;

/* Runs node k's backward (nothing when no gradient reaches its outputs). The outputs' gradients
 * are complete here (every reader ran before, in reverse order): the observer sees them before
 * the node reads them and their buffers are recycled. */
static void backward_node(camd_session *s, const camd_plan *p, int k_node, float *scratch,
                          const backward_mode *mode) {
  const camd_node *n = &s->g->nodes[k_node];
  const camd_graph *g = s->g;
  camd_tensor in[CAMD_NODE_MAX_IO], out[CAMD_NODE_MAX_IO];
  camd_tensor gin[CAMD_NODE_MAX_IO], gout[CAMD_NODE_MAX_IO];
  bool any = false;
  for (int j = 0; j < n->n_out; j++) {
    int v = n->out[j];
    out[j].data = s->ptr[v];
    out[j].shape = s->shapes[v];
    gout[j].shape = s->shapes[v];
    gout[j].data = s->grad_live[v] ? s->mem + p->grad_off[v] : NULL;
    any |= gout[j].data != NULL;
  }
  if (!any) return;
  if (mode->observer) {
    for (int j = 0; j < n->n_out; j++) {
      if (gout[j].data)
        mode->observer(mode->observer_ctx, k_node, n->out[j], gout[j].data, &gout[j].shape);
    }
  }
  for (int k = 0; k < n->n_in; k++) {
    int v = n->in[k];
    in[k].data = v >= 0 ? s->ptr[v] : NULL;
    in[k].shape = v >= 0 ? s->shapes[v] : (camd_shape){.ndim = -1};
    gin[k].shape = in[k].shape;
    gin[k].data = NULL;
    if (v >= 0 && (n->op->grad_inputs & CAMD_IN(k)) && p->grad_off[v] != CAMD_NO_OFFSET) {
      gin[k].data = grad_buffer(s, p, v);
    }
  }
  camd_op_ctx ctx = {.node = n,
                     .params = n->params,
                     .in = in,
                     .out = out,
                     .grad_out = gout,
                     .grad_in = gin,
                     .scratch = scratch,
                     .pool = s->pool,
                     .guided = mode->guided};
  n->op->backward(&ctx);
  /* The outputs' gradient buffers may be reused from here on. */
  for (int j = 0; j < n->n_out; j++) {
    if (n->out[j] != p->grad_root && !g->values[n->out[j]].is_output) s->grad_live[n->out[j]] = 0;
  }
}

static int session_backward(camd_session *s, int from, const float *seed, const backward_mode *mode,
                            camd_error *err) {
  camd_plan *p = s->cur;
  const camd_graph *g = s->g;
  if (!p) return camd_error_set(err, CAMD_E_STATE, "backward needs a forward first");
  if (p->grad_to < 0) {
    return camd_error_set(err, CAMD_E_STATE,
                          "the last forward was run without a backward target (grad_to)");
  }
  if (from < 0 || from >= g->n_values || p->grad_off[from] == CAMD_NO_OFFSET) {
    return camd_error_set(
        err, CAMD_E_INVALID, "value '%s' does not depend on '%s'; cannot back-propagate from it",
        from >= 0 && from < g->n_values ? g->values[from].name : "?", g->values[p->grad_to].name);
  }
  if (!seed) return camd_error_set(err, CAMD_E_INVALID, "no gradient seed given");
  CAMD_ASSERT(s->mem_owner == p);
  float *scratch = s->mem + p->mem_floats;
  memset(s->grad_live, 0, (size_t)g->n_values);
  memcpy(s->mem + p->grad_off[from], seed, camd_shape_count(&s->shapes[from]) * sizeof(float));
  s->grad_live[from] = 1;
  for (int t = 0; t < p->n_bwd; t++) {
    backward_node(s, p, p->bwd_nodes[t], scratch, mode);
  }
  grad_buffer(s, p, p->grad_root); /* zero when no gradient reached it */
  if (p->view_node >= 0) {
    const camd_node *n = &g->nodes[p->view_node];
    camd_tensor in = {s->ptr[p->grad_root], s->shapes[p->grad_root]};
    camd_tensor out = {s->ptr[p->grad_to], s->shapes[p->grad_to]};
    camd_tensor gin = {s->mem + p->grad_off[p->grad_root], s->shapes[p->grad_root]};
    camd_tensor gout = {s->mem + p->view_off, s->shapes[p->grad_to]};
    camd_op_ctx ctx = {.node = n,
                       .params = n->params,
                       .in = &in,
                       .out = &out,
                       .grad_out = &gout,
                       .grad_in = &gin,
                       .scratch = scratch,
                       .pool = s->pool};
    n->op->grad_view(&ctx);
  }
  s->have_backward = true;
  return 0;
}

int camd_session_backward(camd_session *s, int from, const float *seed, camd_error *err) {
  const backward_mode plain = {false, NULL, NULL};
  return session_backward(s, from, seed, &plain, err);
}

int camd_session_backward_guided(camd_session *s, int from, const float *seed, camd_error *err) {
  const backward_mode guided = {true, NULL, NULL};
  return session_backward(s, from, seed, &guided, err);
}

int camd_session_backward_observed(camd_session *s, int from, const float *seed, bool guided,
                                   camd_backward_observer observer, void *observer_ctx,
                                   camd_error *err) {
  if (!observer) return camd_error_set(err, CAMD_E_INVALID, "no backward observer given");
  const backward_mode mode = {guided, observer, observer_ctx};
  return session_backward(s, from, seed, &mode, err);
}

const float *camd_session_grad(camd_session *s, int value_id, camd_shape *shape) {
  camd_plan *p = s->cur;
  if (!p || !s->have_backward || value_id < 0 || value_id >= s->g->n_values) return NULL;
  if (p->view_node >= 0 && value_id == p->grad_to) {
    if (shape) *shape = s->shapes[value_id];
    return s->mem + p->view_off;
  }
  if (p->grad_off[value_id] == CAMD_NO_OFFSET || !s->grad_live[value_id]) return NULL;
  if (shape) *shape = s->shapes[value_id];
  return s->mem + p->grad_off[value_id];
}
