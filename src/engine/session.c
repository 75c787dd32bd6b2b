/* Session: per-worker execution of a model — plans, buffer reuse, forward and partial backward.
 *
 * A plan answers "which nodes run, where does every value live" for one kind of request:
 * (values to keep readable, value the backward must reach). It is built the first time that
 * kind of request is seen and cached in the session (a handful per worker in practice: one per
 * CAM layer in use), together with one memory block sized for the session's maximum batch.
 *
 * Forward runs only the nodes the graph outputs, the kept values and the backward target need.
 * Every value gets a live interval [step that writes it, last step that reads it]; values the
 * caller keeps, graph outputs, and the activations the backward will read stay live to the end.
 * Buffers are placed by greedy interval packing (largest first, lowest offset that does not
 * overlap a live neighbour), so memory is reused as soon as a value is dead.
 *
 * Backward walks, in reverse order, only the nodes on paths from the backward target to the
 * graph outputs, and only input gradients: no weight gradient is ever computed. Gradient
 * buffers get their own packed region (live from the step a consumer first writes them to the
 * step their producer reads them), zero-filled lazily when first written, so several targets
 * can be back-propagated after one forward.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/fold_bn.h"
#include "engine/graph_internal.h"

#define CAMD_PLAN_CACHE 12
#define CAMD_NO_OFFSET ((size_t)-1)
#define CAMD_STEP_END (1 << 30)
#define CAMD_ALIGN_FLOATS 16 /* 64 bytes */

typedef struct camd_plan {
  int *retain; /* sorted */
  int n_retain;
  int shared_hook;  /* hook value of shared-input runs (-1: not a shared-input plan) */
  int prefix_batch; /* batch whose replicated prefix results are kept (0: none) */
  int grad_to;      /* as requested */
  int grad_view;    /* -1, or grad_to when it is a folded Conv output (see fold_bn.c): the
                       backward then reaches the BN output and the gradient is mapped back */
  size_t view_off;  /* float offset of grad_view's gradient */
  int *fwd_nodes;
  int n_fwd;
  int *bwd_nodes; /* execution order (reverse topological) */
  int n_bwd;
  size_t *fwd_off;         /* per value: float offset in mem, CAMD_NO_OFFSET if none */
  size_t *grad_off;        /* per value */
  unsigned char *kept;     /* per value: readable after forward */
  unsigned char *computed; /* per value: written by this plan's forward */
  unsigned char *after;    /* shared-input plans: per value, computed from the hook value */
  float *mem;
  size_t mem_floats;
  size_t scratch_floats;
  uint64_t last_used;
} camd_plan;

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
  bool have_backward;
  float *scratch;
  size_t scratch_floats;
  size_t bytes;
};

void camd_forward_opts_init(camd_forward_opts *o) {
  memset(o, 0, sizeof(*o));
  o->grad_to = -1;
  o->hook_value = -1;
}

/* ---- interval packing ---- */

typedef struct camd__interval {
  int value;
  int start, end; /* inclusive steps */
  size_t size;    /* floats, aligned */
  size_t offset;
} camd__interval;

static int cmp_interval_size(const void *a, const void *b) {
  const camd__interval *x = a, *y = b;
  if (x->size != y->size) return x->size < y->size ? 1 : -1;
  return x->value - y->value;
}

static int cmp_interval_offset(const void *a, const void *b) {
  const camd__interval *const *x = a, *const *y = b;
  if ((*x)->offset != (*y)->offset) return (*x)->offset < (*y)->offset ? -1 : 1;
  return 0;
}

/* Assigns offsets; returns the total floats needed, or CAMD_NO_OFFSET on out of memory. */
static size_t pack_intervals(camd__interval *iv, int n) {
  if (n == 0) return 0;
  qsort(iv, (size_t)n, sizeof(*iv), cmp_interval_size);
  camd__interval **placed = malloc(sizeof(*placed) * (size_t)n);
  camd__interval **overlap = malloc(sizeof(*overlap) * (size_t)n);
  if (!placed || !overlap) {
    free(placed);
    free(overlap);
    return CAMD_NO_OFFSET;
  }
  int n_placed = 0;
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    int n_ov = 0;
    for (int j = 0; j < n_placed; j++) {
      if (placed[j]->start <= iv[i].end && iv[i].start <= placed[j]->end) {
        overlap[n_ov++] = placed[j];
      }
    }
    qsort(overlap, (size_t)n_ov, sizeof(*overlap), cmp_interval_offset);
    size_t off = 0;
    for (int j = 0; j < n_ov; j++) {
      if (overlap[j]->offset >= off + iv[i].size) break;
      size_t end = overlap[j]->offset + overlap[j]->size;
      if (end > off) off = end;
    }
    iv[i].offset = off;
    if (off + iv[i].size > total) total = off + iv[i].size;
    placed[n_placed++] = &iv[i];
  }
  free(placed);
  free(overlap);
  return total;
}

/* ---- plans ---- */

static void plan_free(camd_plan *p) {
  if (!p) return;
  free(p->retain);
  free(p->fwd_nodes);
  free(p->bwd_nodes);
  free(p->fwd_off);
  free(p->grad_off);
  free(p->kept);
  free(p->computed);
  free(p->after);
  free(p->mem);
  free(p);
}

static size_t value_floats(const camd_session *s, int v) {
  const camd_value *val = &s->g->values[v];
  size_t n = camd_shape_count(&val->shape);
  if (val->batched) n *= (size_t)s->max_batch;
  return (n + CAMD_ALIGN_FLOATS - 1) / CAMD_ALIGN_FLOATS * CAMD_ALIGN_FLOATS;
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* after[v] = 1 for the hook value and every value the plan computes from it. */
static void mark_after(const camd_graph *g, const camd_plan *p, int hook, unsigned char *after) {
  memset(after, 0, (size_t)g->n_values);
  after[hook] = 1;
  for (int i = 0; i < p->n_fwd; i++) {
    const camd_node *n = &g->nodes[p->fwd_nodes[i]];
    bool dep = false;
    for (int k = 0; k < n->n_in; k++) dep |= n->in[k] >= 0 && after[n->in[k]];
    if (!dep) continue;
    for (int j = 0; j < n->n_out; j++) after[n->out[j]] = 1;
  }
}

/* Shared-input plans keep what the nodes after the hook read from the nodes before it (and the
 * inputs of the hook value's producer), so a later run can skip everything before the hook. */
static void keep_prefix(const camd_graph *g, camd_plan *p, int hook, unsigned char *after) {
  mark_after(g, p, hook, after);
  for (int i = 0; i < p->n_fwd; i++) {
    const camd_node *n = &g->nodes[p->fwd_nodes[i]];
    bool reads_after = false, makes_hook = false;
    for (int k = 0; k < n->n_in; k++) reads_after |= n->in[k] >= 0 && after[n->in[k]];
    for (int j = 0; j < n->n_out; j++) makes_hook |= n->out[j] == hook;
    if (!reads_after && !makes_hook) continue;
    for (int k = 0; k < n->n_in; k++) {
      if (n->in[k] >= 0 && !after[n->in[k]]) p->kept[n->in[k]] = 1;
    }
  }
}

static int plan_build(camd_session *s, const int *retain_sorted, int n_retain, int grad_to,
                      int shared_hook, camd_plan **out, camd_error *err) {
  const camd_graph *g = s->g;
  int nv = g->n_values, nn = g->n_nodes;
  int rc = CAMD_E_NOMEM;
  camd_plan *p = calloc(1, sizeof(*p));
  unsigned char *needed = calloc((size_t)nv + 1, 1);
  unsigned char *desc = calloc((size_t)nv + 1, 1);
  unsigned char *run_node = calloc((size_t)nn + 1, 1);
  unsigned char *has_grad = calloc((size_t)nv + 1, 1);
  int *first = malloc(sizeof(int) * ((size_t)nv + 1));
  int *last = malloc(sizeof(int) * ((size_t)nv + 1));
  camd__interval *iv = malloc(sizeof(camd__interval) * ((size_t)nv + 1));
  if (!p || !needed || !desc || !run_node || !has_grad || !first || !last || !iv) goto fail;
  p->grad_to = grad_to;
  p->shared_hook = shared_hook;
  p->grad_view = -1;
  if (grad_to >= 0 && g->values[grad_to].producer >= 0 &&
      g->nodes[g->values[grad_to].producer].op == &camd__op_bn_inverse) {
    p->grad_view = grad_to;
    grad_to = g->nodes[g->values[grad_to].producer].in[0];
  }
  p->n_retain = n_retain;
  p->retain = malloc(sizeof(int) * (size_t)(n_retain + 1));
  p->fwd_nodes = malloc(sizeof(int) * (size_t)(nn + 1));
  p->bwd_nodes = malloc(sizeof(int) * (size_t)(nn + 1));
  p->fwd_off = malloc(sizeof(size_t) * (size_t)(nv + 1));
  p->grad_off = malloc(sizeof(size_t) * (size_t)(nv + 1));
  p->kept = calloc((size_t)nv + 1, 1);
  p->computed = calloc((size_t)nv + 1, 1);
  if (!p->retain || !p->fwd_nodes || !p->bwd_nodes || !p->fwd_off || !p->grad_off || !p->kept ||
      !p->computed) {
    goto fail;
  }
  if (n_retain) memcpy(p->retain, retain_sorted, sizeof(int) * (size_t)n_retain);

  /* Which nodes run: ancestors of outputs, kept values and the backward target. */
  for (int i = 0; i < g->n_outputs; i++) needed[g->outputs[i]] = 1;
  for (int i = 0; i < n_retain; i++) needed[retain_sorted[i]] = 1;
  if (grad_to >= 0) needed[grad_to] = 1;
  for (int k = nn - 1; k >= 0; k--) {
    const camd_node *n = &g->nodes[k];
    bool want = false;
    for (int j = 0; j < n->n_out; j++) want |= needed[n->out[j]] != 0;
    if (!want) continue;
    run_node[k] = 1;
    for (int i = 0; i < n->n_in; i++) {
      if (n->in[i] >= 0) needed[n->in[i]] = 1;
    }
  }
  p->n_fwd = 0;
  for (int k = 0; k < nn; k++) {
    if (run_node[k]) p->fwd_nodes[p->n_fwd++] = k;
  }
  for (int i = 0; i < g->n_inputs; i++) p->computed[g->inputs[i]] = 1;
  for (int i = 0; i < p->n_fwd; i++) {
    const camd_node *n = &g->nodes[p->fwd_nodes[i]];
    for (int j = 0; j < n->n_out; j++) p->computed[n->out[j]] = 1;
  }

  /* Backward: nodes on paths from grad_to to the outputs, through differentiable inputs. */
  p->n_bwd = 0;
  if (grad_to >= 0) {
    desc[grad_to] = 1;
    has_grad[grad_to] = 1;
    for (int i = 0; i < p->n_fwd; i++) {
      const camd_node *n = &g->nodes[p->fwd_nodes[i]];
      bool flows = false;
      for (int k = 0; k < n->n_in; k++) {
        if (n->in[k] >= 0 && desc[n->in[k]] && (n->op->grad_inputs & (1u << k))) flows = true;
      }
      if (!flows) continue;
      if (!n->op->backward) {
        rc = camd_error_set(err, CAMD_E_UNSUPPORTED,
                            "cannot back-propagate through node '%s' (%s): the operator has no "
                            "gradient in camd; choose a layer after it",
                            n->name, n->op_type);
        goto fail;
      }
      for (int j = 0; j < n->n_out; j++) {
        desc[n->out[j]] = 1;
        has_grad[n->out[j]] = 1;
      }
      for (int k = 0; k < n->n_in; k++) {
        if (n->in[k] >= 0 && desc[n->in[k]] && (n->op->grad_inputs & (1u << k))) {
          has_grad[n->in[k]] = 1;
        }
      }
      p->bwd_nodes[p->n_bwd++] = p->fwd_nodes[i];
    }
    /* Execution order is reverse topological. */
    for (int i = 0; i < p->n_bwd / 2; i++) {
      int t = p->bwd_nodes[i];
      p->bwd_nodes[i] = p->bwd_nodes[p->n_bwd - 1 - i];
      p->bwd_nodes[p->n_bwd - 1 - i] = t;
    }
  }

  /* Forward live intervals. */
  for (int v = 0; v < nv; v++) {
    first[v] = -1;
    last[v] = -1;
    p->fwd_off[v] = CAMD_NO_OFFSET;
    p->grad_off[v] = CAMD_NO_OFFSET;
  }
  for (int i = 0; i < g->n_inputs; i++) first[g->inputs[i]] = last[g->inputs[i]] = 0;
  for (int i = 0; i < p->n_fwd; i++) {
    const camd_node *n = &g->nodes[p->fwd_nodes[i]];
    int step = i + 1;
    for (int k = 0; k < n->n_in; k++) {
      int v = n->in[k];
      if (v >= 0 && !g->values[v].data && step > last[v]) last[v] = step;
    }
    for (int j = 0; j < n->n_out; j++) first[n->out[j]] = last[n->out[j]] = step;
  }
  /* Values that must survive the forward. */
  for (int i = 0; i < g->n_outputs; i++) p->kept[g->outputs[i]] = 1;
  for (int i = 0; i < n_retain; i++) p->kept[retain_sorted[i]] = 1;
  if (grad_to >= 0) p->kept[grad_to] = 1;
  for (int i = 0; i < p->n_bwd; i++) {
    const camd_node *n = &g->nodes[p->bwd_nodes[i]];
    for (int k = 0; k < n->n_in; k++) {
      if (n->in[k] >= 0 && (n->op->bwd_needs_inputs & (1u << k))) p->kept[n->in[k]] = 1;
    }
    if (n->op->bwd_needs_outputs) {
      for (int j = 0; j < n->n_out; j++) p->kept[n->out[j]] = 1;
    }
  }
  if (shared_hook >= 0) {
    p->after = malloc((size_t)nv + 1);
    if (!p->after) goto fail;
    keep_prefix(g, p, shared_hook, p->after);
  }
  int n_iv = 0;
  for (int v = 0; v < nv; v++) {
    if (g->values[v].data) {
      p->kept[v] = 1;
      continue;
    }
    if (first[v] < 0) {
      p->kept[v] = 0;
      continue;
    }
    iv[n_iv].value = v;
    iv[n_iv].start = first[v];
    iv[n_iv].end = p->kept[v] ? CAMD_STEP_END : last[v];
    iv[n_iv].size = value_floats(s, v);
    n_iv++;
  }
  size_t fwd_total = pack_intervals(iv, n_iv);
  if (fwd_total == CAMD_NO_OFFSET) goto fail;
  for (int i = 0; i < n_iv; i++) p->fwd_off[iv[i].value] = iv[i].offset;

  /* Gradient live intervals (steps of the backward order). */
  n_iv = 0;
  if (grad_to >= 0) {
    for (int v = 0; v < nv; v++) {
      first[v] = CAMD_STEP_END;
      last[v] = -1;
    }
    for (int i = 0; i < g->n_outputs; i++) {
      if (has_grad[g->outputs[i]]) first[g->outputs[i]] = -1;
    }
    for (int t = 0; t < p->n_bwd; t++) {
      const camd_node *n = &g->nodes[p->bwd_nodes[t]];
      for (int k = 0; k < n->n_in; k++) {
        int v = n->in[k];
        if (v >= 0 && has_grad[v] && (n->op->grad_inputs & (1u << k)) && t < first[v]) {
          first[v] = t;
        }
      }
      for (int j = 0; j < n->n_out; j++) {
        int v = n->out[j];
        if (t > last[v]) last[v] = t;
        if (first[v] > t) first[v] = -1; /* seeded (a graph output) or never written */
      }
    }
    last[grad_to] = CAMD_STEP_END;
    if (first[grad_to] == CAMD_STEP_END) first[grad_to] = -1;
    for (int v = 0; v < nv; v++) {
      if (!has_grad[v]) continue;
      iv[n_iv].value = v;
      iv[n_iv].start = first[v] == CAMD_STEP_END ? -1 : first[v];
      iv[n_iv].end = g->values[v].is_output ? CAMD_STEP_END : last[v];
      if (iv[n_iv].end < iv[n_iv].start) iv[n_iv].end = iv[n_iv].start;
      iv[n_iv].size = value_floats(s, v);
      n_iv++;
    }
  }
  size_t grad_total = pack_intervals(iv, n_iv);
  if (grad_total == CAMD_NO_OFFSET) goto fail;
  for (int i = 0; i < n_iv; i++) p->grad_off[iv[i].value] = fwd_total + iv[i].offset;

  p->view_off = fwd_total + grad_total;
  if (p->grad_view >= 0) grad_total += value_floats(s, p->grad_view);
  p->mem_floats = fwd_total + grad_total;
  p->mem_floats = (p->mem_floats + CAMD_ALIGN_FLOATS - 1) / CAMD_ALIGN_FLOATS * CAMD_ALIGN_FLOATS;
  p->mem = aligned_alloc(64, (p->mem_floats ? p->mem_floats : 16) * sizeof(float));
  if (!p->mem) {
    rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory allocating %zu MiB for the session",
                        p->mem_floats * sizeof(float) >> 20);
    goto fail;
  }
  memset(p->mem, 0, p->mem_floats * sizeof(float));
  for (int i = 0; i < p->n_fwd; i++) {
    const camd_node *n = &g->nodes[p->fwd_nodes[i]];
    if (n->scratch_floats > p->scratch_floats) p->scratch_floats = n->scratch_floats;
  }
  for (int i = 0; i < p->n_bwd; i++) {
    const camd_node *n = &g->nodes[p->bwd_nodes[i]];
    if (n->bwd_scratch_floats > p->scratch_floats) p->scratch_floats = n->bwd_scratch_floats;
  }
  free(needed);
  free(desc);
  free(run_node);
  free(has_grad);
  free(first);
  free(last);
  free(iv);
  *out = p;
  return 0;
fail:
  if (rc == CAMD_E_NOMEM && err && err->status != CAMD_E_NOMEM) {
    camd_error_set(err, CAMD_E_NOMEM, "out of memory building an execution plan");
  }
  plan_free(p);
  free(needed);
  free(desc);
  free(run_node);
  free(has_grad);
  free(first);
  free(last);
  free(iv);
  return rc;
}

static int plan_get(camd_session *s, const camd_forward_opts *o, camd_plan **out, camd_error *err) {
  int nv = s->g->n_values;
  int n_retain = o ? o->n_retain : 0;
  int grad_to = o ? o->grad_to : -1;
  int shared_hook = o && o->shared_input && o->hook ? o->hook_value : -1;
  if (shared_hook >= nv) return camd_error_set(err, CAMD_E_INVALID, "bad hook value");
  if (n_retain < 0 || n_retain > nv) {
    return camd_error_set(err, CAMD_E_INVALID, "invalid number of kept values (%d)", n_retain);
  }
  int stack_buf[64];
  int *sorted = n_retain <= 64 ? stack_buf : malloc(sizeof(int) * (size_t)n_retain);
  if (!sorted) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  int m = 0;
  for (int i = 0; i < n_retain; i++) {
    int v = o->retain[i];
    if (v < 0 || v >= nv) {
      if (sorted != stack_buf) free(sorted);
      return camd_error_set(err, CAMD_E_INVALID, "kept value id %d does not exist", v);
    }
    sorted[m++] = v;
  }
  qsort(sorted, (size_t)m, sizeof(int), cmp_int);
  int u = 0; /* dedupe */
  for (int i = 0; i < m; i++) {
    if (u == 0 || sorted[u - 1] != sorted[i]) sorted[u++] = sorted[i];
  }
  if (grad_to >= nv || grad_to < -1) {
    if (sorted != stack_buf) free(sorted);
    return camd_error_set(err, CAMD_E_INVALID, "backward target id %d does not exist", grad_to);
  }
  if (grad_to >= 0 && (s->g->values[grad_to].data || !s->g->values[grad_to].batched)) {
    if (sorted != stack_buf) free(sorted);
    return camd_error_set(err, CAMD_E_INVALID,
                          "value '%s' is a constant; gradients are only computed for activations",
                          s->g->values[grad_to].name);
  }
  camd_plan *p = NULL;
  for (int i = 0; i < s->n_plans; i++) {
    camd_plan *c = s->plans[i];
    if (c->grad_to == grad_to && c->shared_hook == shared_hook && c->n_retain == u &&
        (u == 0 || memcmp(c->retain, sorted, sizeof(int) * (size_t)u) == 0)) {
      p = c;
      break;
    }
  }
  int rc = 0;
  if (!p) {
    rc = plan_build(s, sorted, u, grad_to, shared_hook, &p, err);
    if (!rc) {
      if (s->n_plans == CAMD_PLAN_CACHE) { /* evict least recently used */
        int lru = 0;
        for (int i = 1; i < s->n_plans; i++) {
          if (s->plans[i]->last_used < s->plans[lru]->last_used) lru = i;
        }
        if (s->cur == s->plans[lru]) s->cur = NULL;
        s->bytes -= s->plans[lru]->mem_floats * sizeof(float);
        plan_free(s->plans[lru]);
        s->plans[lru] = s->plans[--s->n_plans];
      }
      s->plans[s->n_plans++] = p;
      s->bytes += p->mem_floats * sizeof(float);
      if (p->scratch_floats > s->scratch_floats) {
        p->scratch_floats =
            (p->scratch_floats + CAMD_ALIGN_FLOATS - 1) / CAMD_ALIGN_FLOATS * CAMD_ALIGN_FLOATS;
        float *ns = aligned_alloc(64, p->scratch_floats * sizeof(float));
        if (!ns) {
          rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory allocating scratch");
        } else {
          free(s->scratch);
          s->bytes += (p->scratch_floats - s->scratch_floats) * sizeof(float);
          s->scratch = ns;
          s->scratch_floats = p->scratch_floats;
        }
      }
    }
  }
  if (sorted != stack_buf) free(sorted);
  if (rc) return rc;
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
  if (!s->shapes || !s->ptr || !s->grad_live) {
    camd_session_destroy(s);
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  }
  s->bytes = nv * (sizeof(camd_shape) + sizeof(float *) + 1);
  *out = s;
  return 0;
}

void camd_session_destroy(camd_session *s) {
  if (!s) return;
  for (int i = 0; i < s->n_plans; i++) plan_free(s->plans[i]);
  free(s->shapes);
  free(s->ptr);
  free(s->grad_live);
  free(s->scratch);
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

int camd_session_forward_multi(camd_session *s, int batch, const float *const *inputs,
                               const camd_forward_opts *opts, camd_error *err) {
  const camd_graph *g = s->g;
  if (batch < 1 || batch > s->max_batch) {
    return camd_error_set(err, CAMD_E_INVALID, "batch %d is outside 1..%d for this session%s",
                          batch, s->max_batch,
                          s->model->max_batch == 1 ? " (this model runs one image at a time)" : "");
  }
  camd_plan *p = NULL;
  int rc = plan_get(s, opts, &p, err);
  if (rc) return rc;
  int hook_value = opts && opts->hook ? opts->hook_value : -1;
  if (hook_value >= 0 && (hook_value >= g->n_values || !p->computed[hook_value])) {
    return camd_error_set(err, CAMD_E_INVALID, "hook value %d is not computed by this run",
                          hook_value);
  }
  s->cur = NULL;
  s->have_backward = false;
  set_run_shapes(s, batch);
  for (int v = 0; v < g->n_values; v++) {
    if (g->values[v].data)
      s->ptr[v] = g->values[v].dtype == CAMD_FLOAT32 ? g->values[v].data : NULL;
    else
      s->ptr[v] = p->fwd_off[v] != CAMD_NO_OFFSET ? p->mem + p->fwd_off[v] : NULL;
  }
  bool shared = opts && opts->shared_input && hook_value >= 0 && batch > 1;
  if (opts && opts->shared_input && hook_value < 0) {
    return camd_error_set(err, CAMD_E_INVALID, "a shared-input run needs a hook value");
  }
  bool reuse = shared && opts->reuse_prefix && p->prefix_batch >= batch;
  for (int i = 0; i < g->n_inputs; i++) {
    int v = g->inputs[i];
    if (!inputs || !inputs[i]) {
      return camd_error_set(err, CAMD_E_INVALID, "no data for model input '%s'", g->values[v].name);
    }
    if (reuse && v != hook_value) continue;
    size_t count = camd_shape_count(&s->shapes[v]);
    if (shared) {
      memcpy(s->ptr[v], inputs[i], count / (size_t)batch * sizeof(float));
      replicate_item0(s, v, batch);
    } else {
      memcpy(s->ptr[v], inputs[i], count * sizeof(float));
    }
    if (v == hook_value) opts->hook(opts->hook_ctx, v, s->ptr[v], &s->shapes[v]);
  }
  camd_tensor in[CAMD_NODE_MAX_IO], out[CAMD_NODE_MAX_IO];
  for (int i = 0; i < p->n_fwd; i++) {
    const camd_node *n = &g->nodes[p->fwd_nodes[i]];
    /* In a shared-input run, nodes before the hook run once (batch 1), then replicate. */
    bool once = shared;
    for (int k = 0; once && k < n->n_in; k++) once = n->in[k] < 0 || !p->after[n->in[k]];
    if (once && reuse) {
      bool makes_hook = false;
      for (int j = 0; j < n->n_out; j++) makes_hook |= n->out[j] == hook_value;
      if (!makes_hook) continue; /* kept from the previous shared run */
    }
    for (int k = 0; k < n->n_in; k++) {
      int v = n->in[k];
      if (v < 0) {
        in[k].data = NULL;
        in[k].shape.ndim = -1;
      } else {
        in[k].data = s->ptr[v];
        in[k].shape = s->shapes[v];
        if (once && g->values[v].batched) in[k].shape.dims[0] = g->values[v].shape.dims[0];
      }
    }
    for (int j = 0; j < n->n_out; j++) {
      out[j].data = s->ptr[n->out[j]];
      out[j].shape = s->shapes[n->out[j]];
      if (once) out[j].shape.dims[0] = g->values[n->out[j]].shape.dims[0];
    }
    camd_op_ctx ctx = {n, n->params, in, out, NULL, NULL, s->scratch};
    n->op->forward(&ctx);
    if (once) {
      for (int j = 0; j < n->n_out; j++) {
        if (out[j].data) replicate_item0(s, n->out[j], batch);
      }
    }
    if (hook_value >= 0) {
      for (int j = 0; j < n->n_out; j++) {
        if (n->out[j] == hook_value) {
          opts->hook(opts->hook_ctx, hook_value, s->ptr[hook_value], &s->shapes[hook_value]);
        }
      }
    }
  }
  s->cur = p;
  s->cur_batch = batch;
  if (shared && !reuse) p->prefix_batch = batch;
  if (!shared) p->prefix_batch = 0;
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

int camd_session_backward(camd_session *s, int from, const float *seed, camd_error *err) {
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
  memset(s->grad_live, 0, (size_t)g->n_values);
  float *gfrom = p->mem + p->grad_off[from];
  memcpy(gfrom, seed, camd_shape_count(&s->shapes[from]) * sizeof(float));
  s->grad_live[from] = 1;
  camd_tensor in[CAMD_NODE_MAX_IO], out[CAMD_NODE_MAX_IO];
  camd_tensor gin[CAMD_NODE_MAX_IO], gout[CAMD_NODE_MAX_IO];
  for (int t = 0; t < p->n_bwd; t++) {
    const camd_node *n = &g->nodes[p->bwd_nodes[t]];
    bool any = false;
    for (int j = 0; j < n->n_out; j++) {
      int v = n->out[j];
      out[j].data = s->ptr[v];
      out[j].shape = s->shapes[v];
      gout[j].shape = s->shapes[v];
      gout[j].data = s->grad_live[v] ? p->mem + p->grad_off[v] : NULL;
      any |= gout[j].data != NULL;
    }
    if (!any) continue;
    for (int k = 0; k < n->n_in; k++) {
      int v = n->in[k];
      in[k].data = v >= 0 ? s->ptr[v] : NULL;
      in[k].shape = v >= 0 ? s->shapes[v] : (camd_shape){.ndim = -1};
      gin[k].shape = in[k].shape;
      gin[k].data = NULL;
      if (v >= 0 && (n->op->grad_inputs & (1u << k)) && p->grad_off[v] != CAMD_NO_OFFSET) {
        float *gv = p->mem + p->grad_off[v];
        if (!s->grad_live[v]) {
          memset(gv, 0, camd_shape_count(&s->shapes[v]) * sizeof(float));
          s->grad_live[v] = 1;
        }
        gin[k].data = gv;
      }
    }
    camd_op_ctx ctx = {n, n->params, in, out, gout, gin, s->scratch};
    n->op->backward(&ctx);
    /* The outputs' gradient buffers may be reused from here on. */
    for (int j = 0; j < n->n_out; j++) {
      if (n->out[j] != p->grad_to && !g->values[n->out[j]].is_output) s->grad_live[n->out[j]] = 0;
    }
  }
  int t = p->grad_view >= 0 ? g->nodes[g->values[p->grad_to].producer].in[0] : p->grad_to;
  if (!s->grad_live[t]) {
    memset(p->mem + p->grad_off[t], 0, camd_shape_count(&s->shapes[t]) * sizeof(float));
    s->grad_live[t] = 1;
  }
  if (p->grad_view >= 0) {
    const camd_node *inv = &g->nodes[g->values[p->grad_view].producer];
    camd__bn_inverse_grad(inv, &s->shapes[p->grad_view], p->mem + p->grad_off[t],
                          p->mem + p->view_off);
  }
  s->have_backward = true;
  return 0;
}

const float *camd_session_grad(camd_session *s, int value_id, camd_shape *shape) {
  camd_plan *p = s->cur;
  if (!p || !s->have_backward || value_id < 0 || value_id >= s->g->n_values) return NULL;
  if (value_id == p->grad_view) {
    if (shape) *shape = s->shapes[value_id];
    return p->mem + p->view_off;
  }
  if (p->grad_off[value_id] == CAMD_NO_OFFSET || !s->grad_live[value_id]) return NULL;
  if (shape) *shape = s->shapes[value_id];
  return p->mem + p->grad_off[value_id];
}
