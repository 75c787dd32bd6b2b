/* Execution plans: which nodes a kind of request runs, what is fused, and where every value and
 * gradient lives in the session's block (greedy interval packing). session.c's DESIGN comment
 * describes plans; session.c caches them and runs them.
 *
 * Code map: plan_select (nodes) → plan_backward_set → plan_mark_kept → plan_fuse → the layout
 * pass (plan_layout.c) → plan_fwd_layout → plan_grad_layout → plan_scratch, all called by
 * camd__plan_build with one cleanup ladder. */
#include "engine/plan.h"

#include <stdlib.h>
#include <string.h>

#include "engine/dnnl.h"
#include "engine/engine_assert.h"
#include "engine/plan_layout.h"

static size_t align_floats(size_t n) {
  return (n + CAMD_ALIGN_FLOATS - 1) / CAMD_ALIGN_FLOATS * CAMD_ALIGN_FLOATS;
}

/* ---- interval packing ---- */

typedef struct camd__interval {
  int value;
  int start, end; /* inclusive steps */
  size_t size;    /* floats, aligned */
  size_t offset;
  int avoid; /* a value whose buffer this one should rather not take (plan_fwd_layout), or -1 */
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

/* The lowest offset where `size` floats fit between the n intervals of ov (sorted here). */
static size_t first_fit(camd__interval **ov, int n, size_t size) {
  qsort(ov, (size_t)n, sizeof(*ov), cmp_interval_offset);
  size_t off = 0;
  for (int j = 0; j < n; j++) {
    if (ov[j]->offset >= off + size) break;
    const size_t end = ov[j]->offset + ov[j]->size;
    if (end > off) off = end;
  }
  return off;
}

/* Assigns offsets; returns the total floats needed, or CAMD_NO_OFFSET on out of memory. An
 * interval with `avoid` set takes another place than that value's buffer when one is free
 * below the total reached anyway. */
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
    camd__interval *avoid = NULL;
    for (int j = 0; j < n_placed; j++) {
      if (placed[j]->start <= iv[i].end && iv[i].start <= placed[j]->end) {
        overlap[n_ov++] = placed[j];
      } else if (placed[j]->value == iv[i].avoid) {
        avoid = placed[j];
      }
    }
    size_t off = first_fit(overlap, n_ov, iv[i].size);
    if (avoid && off < avoid->offset + avoid->size && avoid->offset < off + iv[i].size) {
      /* Elsewhere, if that needs no more memory than the total this placement reaches. */
      overlap[n_ov++] = avoid;
      const size_t alt = first_fit(overlap, n_ov, iv[i].size);
      const size_t reach = off + iv[i].size > total ? off + iv[i].size : total;
      if (alt + iv[i].size <= reach) off = alt;
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

void camd__plan_free(camd_plan *p) {
  if (!p) return;
  free(p->retain);
  free(p->fwd_nodes);
  free(p->bwd_nodes);
  free(p->fwd_off);
  free(p->grad_off);
  free(p->kept);
  free(p->computed);
  free(p->after);
  free(p->write_to);
  free(p->skip);
  free(p->post);
  free(p->in_blk);
  free(p->out_blk);
  free(p->sum_from);
  free(p);
}

static camd_plan *plan_alloc(int nv, int nn, int n_retain) {
  camd_plan *p = calloc(1, sizeof(*p));
  if (!p) return NULL;
  p->retain = malloc(sizeof(int) * (size_t)(n_retain + 1));
  p->fwd_nodes = malloc(sizeof(int) * (size_t)(nn + 1));
  p->bwd_nodes = malloc(sizeof(int) * (size_t)(nn + 1));
  p->fwd_off = malloc(sizeof(size_t) * (size_t)(nv + 1));
  p->grad_off = malloc(sizeof(size_t) * (size_t)(nv + 1));
  p->kept = calloc((size_t)nv + 1, 1);
  p->computed = calloc((size_t)nv + 1, 1);
  p->write_to = malloc(sizeof(int) * (size_t)(nn + 1));
  p->skip = calloc((size_t)nn + 1, 1);
  p->post = calloc((size_t)nn + 1, sizeof(camd_post_op));
  p->in_blk = calloc((size_t)nn + 1, sizeof(unsigned));
  p->out_blk = calloc((size_t)nn + 1, sizeof(unsigned));
  p->sum_from = malloc(sizeof(int) * ((size_t)nn + 1));
  if (!p->retain || !p->fwd_nodes || !p->bwd_nodes || !p->fwd_off || !p->grad_off || !p->kept ||
      !p->computed || !p->write_to || !p->skip || !p->post || !p->in_blk || !p->out_blk ||
      !p->sum_from) {
    camd__plan_free(p);
    return NULL;
  }
  return p;
}

static size_t value_floats(const camd_graph *g, int v, int capacity) {
  const camd_value *val = &g->values[v];
  size_t n = camd_shape_count(&val->shape);
  if (val->batched) n *= (size_t)capacity;
  return align_floats(n);
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

/* Temporary per-build arrays (one ladder frees them). */
typedef struct plan_tmp {
  unsigned char *needed, *desc, *run_node, *has_grad;
  int *first, *last;
  int *alias; /* per value: the value whose buffer it shares (plan_fwd_layout), or -1 */
  int *avoid; /* per value: a buffer it should rather not take (plan_avoid_shared), or -1 */
  camd__interval *iv;
} plan_tmp;

static void plan_tmp_free(plan_tmp *t) {
  free(t->needed);
  free(t->desc);
  free(t->run_node);
  free(t->has_grad);
  free(t->first);
  free(t->last);
  free(t->alias);
  free(t->avoid);
  free(t->iv);
}

static int plan_tmp_alloc(plan_tmp *t, int nv, int nn) {
  memset(t, 0, sizeof(*t));
  t->needed = calloc((size_t)nv + 1, 1);
  t->desc = calloc((size_t)nv + 1, 1);
  t->run_node = calloc((size_t)nn + 1, 1);
  t->has_grad = calloc((size_t)nv + 1, 1);
  t->first = malloc(sizeof(int) * ((size_t)nv + 1));
  t->last = malloc(sizeof(int) * ((size_t)nv + 1));
  t->alias = malloc(sizeof(int) * ((size_t)nv + 1));
  t->avoid = malloc(sizeof(int) * ((size_t)nv + 1));
  t->iv = malloc(sizeof(camd__interval) * ((size_t)nv + 1));
  return t->needed && t->desc && t->run_node && t->has_grad && t->first && t->last && t->alias &&
                 t->avoid && t->iv
             ? 0
             : CAMD_E_NOMEM;
}

/* Which nodes run: ancestors of the outputs, the kept values and the backward root. */
static void plan_select(const camd_graph *g, camd_plan *p, plan_tmp *t) {
  for (int i = 0; i < g->n_outputs; i++) t->needed[g->outputs[i]] = 1;
  for (int i = 0; i < p->n_retain; i++) t->needed[p->retain[i]] = 1;
  if (p->grad_root >= 0) t->needed[p->grad_root] = 1;
  for (int k = g->n_nodes - 1; k >= 0; k--) {
    const camd_node *n = &g->nodes[k];
    bool want = false;
    for (int j = 0; j < n->n_out; j++) want |= t->needed[n->out[j]] != 0;
    if (!want) continue;
    t->run_node[k] = 1;
    for (int i = 0; i < n->n_in; i++) {
      if (n->in[i] >= 0) t->needed[n->in[i]] = 1;
    }
  }
  p->n_fwd = 0;
  for (int k = 0; k < g->n_nodes; k++) {
    if (t->run_node[k]) p->fwd_nodes[p->n_fwd++] = k;
  }
  for (int i = 0; i < g->n_inputs; i++) p->computed[g->inputs[i]] = 1;
  for (int i = 0; i < p->n_fwd; i++) {
    const camd_node *n = &g->nodes[p->fwd_nodes[i]];
    for (int j = 0; j < n->n_out; j++) p->computed[n->out[j]] = 1;
  }
}

/* Backward: nodes on paths from grad_root onwards through differentiable inputs (the view node
 * excepted: its gradient is derived by grad_view), in reverse topological order. */
static int plan_backward_set(const camd_graph *g, camd_plan *p, plan_tmp *t, camd_error *err) {
  p->n_bwd = 0;
  if (p->grad_root < 0) return 0;
  t->desc[p->grad_root] = 1;
  t->has_grad[p->grad_root] = 1;
  for (int i = 0; i < p->n_fwd; i++) {
    const int k = p->fwd_nodes[i];
    const camd_node *n = &g->nodes[k];
    if (k == p->view_node) continue;
    bool flows = false;
    for (int j = 0; j < n->n_in; j++) {
      if (n->in[j] >= 0 && t->desc[n->in[j]] && (n->op->grad_inputs & CAMD_IN(j))) flows = true;
    }
    if (!flows) continue;
    if (!n->op->backward) {
      return camd_error_set(err, CAMD_E_UNSUPPORTED,
                            "cannot back-propagate through node '%s' (%s): the operator has no "
                            "gradient in camd; choose a layer after it",
                            n->name, n->op_type);
    }
    for (int j = 0; j < n->n_out; j++) {
      t->desc[n->out[j]] = 1;
      t->has_grad[n->out[j]] = 1;
    }
    for (int j = 0; j < n->n_in; j++) {
      if (n->in[j] >= 0 && t->desc[n->in[j]] && (n->op->grad_inputs & CAMD_IN(j))) {
        t->has_grad[n->in[j]] = 1;
      }
    }
    p->bwd_nodes[p->n_bwd++] = k;
  }
  for (int i = 0; i < p->n_bwd / 2; i++) {
    int tmp = p->bwd_nodes[i];
    p->bwd_nodes[i] = p->bwd_nodes[p->n_bwd - 1 - i];
    p->bwd_nodes[p->n_bwd - 1 - i] = tmp;
  }
  return 0;
}

/* Values that must survive the forward. */
static void plan_mark_kept(const camd_graph *g, camd_plan *p) {
  for (int i = 0; i < g->n_outputs; i++) p->kept[g->outputs[i]] = 1;
  for (int i = 0; i < p->n_retain; i++) p->kept[p->retain[i]] = 1;
  if (p->grad_root >= 0) p->kept[p->grad_root] = 1;
  for (int i = 0; i < p->n_bwd; i++) {
    const camd_node *n = &g->nodes[p->bwd_nodes[i]];
    for (int k = 0; k < n->n_in; k++) {
      if (n->in[k] >= 0 && (n->op->bwd_needs_inputs & CAMD_IN(k))) p->kept[n->in[k]] = 1;
    }
    if (n->op->bwd_needs_outputs) {
      for (int j = 0; j < n->n_out; j++) p->kept[n->out[j]] = 1;
    }
  }
  if (p->shared_hook >= 0) keep_prefix(g, p, p->shared_hook, p->after);
}

/* Plan-time fusion: a producer that accepts a post-op (Conv) followed by its value's only reader
 * in this plan, an activation expressible as a post-op (Relu, Clip), becomes one step: the
 * producer writes the activation's output and applies it while the tile is in cache. Likewise a
 * Sigmoid whose only reader is Mul(x, Sigmoid(x)) (SiLU) writes the Mul's output. Only for
 * values nobody can observe: not kept, not on the backward path, not in shared-input plans. The
 * same float operations run, so results do not change. */
static void plan_fuse(const camd_graph *g, camd_plan *p, const plan_tmp *t) {
  for (int k = 0; k < g->n_nodes; k++) p->write_to[k] = -1;
  p->n_fused = 0;
  if (p->shared_hook >= 0) return;
  for (int i = 0; i < p->n_fwd; i++) {
    const camd_node *n = &g->nodes[p->fwd_nodes[i]];
    const bool sigmoid = !strcmp(n->op_type, "Sigmoid") && n->n_in == 1;
    if ((!n->op->accepts_post_op && !sigmoid) || n->n_out != 1) continue;
    const int v = n->out[0];
    if (p->kept[v] || t->has_grad[v] || g->values[v].is_output) continue;
    int reader = -1, reads = 0;
    for (int j = i + 1; j < p->n_fwd; j++) {
      const camd_node *c = &g->nodes[p->fwd_nodes[j]];
      for (int q = 0; q < c->n_in; q++) {
        if (c->in[q] != v) continue;
        reads++;
        reader = p->fwd_nodes[j];
      }
    }
    if (reads != 1) continue;
    const camd_node *a = &g->nodes[reader];
    camd_post_op po;
    if (sigmoid) { /* SiLU as exporters write it: Mul(x, Sigmoid(x)), either order */
      const int x = n->in[0];
      if (strcmp(a->op_type, "Mul") || a->n_in != 2 || a->n_out != 1 ||
          !((a->in[0] == x && a->in[1] == v) || (a->in[0] == v && a->in[1] == x)))
        continue;
      po = (camd_post_op){CAMD_POST_MUL_INPUT, 0.0f, 0.0f};
    } else if (!a->op->as_post_op || a->in[0] != v || a->n_out != 1 || !a->op->as_post_op(a, &po)) {
      continue;
    }
    p->write_to[p->fwd_nodes[i]] = a->out[0];
    p->post[p->fwd_nodes[i]] = po;
    p->skip[reader] = 1;
    p->computed[v] = 0;
    p->n_fused++;
  }
}

/* For a Conv node with 4-D weights [M, C/group, kh, kw]: M and C/group (a depthwise convolution
 * has C/group = 1 and M > 1; in a dense one every output reads C/group > 1 input channels).
 * False for any other node. */
static bool conv_weights_dims(const camd_graph *g, const camd_node *n, int64_t *m, int64_t *cg) {
  if (strcmp(n->op_type, "Conv") || n->n_in < 2 || n->in[1] < 0) return false;
  const camd_shape *w = &g->values[n->in[1]].shape;
  if (w->ndim != 4) return false;
  *m = w->dims[0], *cg = w->dims[1];
  return true;
}

/* Threads (README "Threads"): a convolution's tasks split its output channels, so each thread
 * reads all of a dense convolution's input; afterwards that input's cache lines sit in both
 * cores' caches, and a kernel that next writes there must first take every line away from the
 * other core. A depthwise convolution is all stores and few products: MobileNetV2's 384- and
 * 960-channel ones ran no faster at 2 threads than at 1 when their output took the buffer the
 * projection before them had just read (blocks 9-11, 15-16; the first block of a stage, whose
 * output lay elsewhere, ran 1.8x faster). So a depthwise output avoids the buffer of the input
 * of the last dense convolution before it (when free); a dense convolution, whose stores are
 * few beside its products, takes that buffer instead. Offsets only: no result changes. */
static int newest_dead(const plan_tmp *t, const int *recent, int n, int w) {
  for (int j = n - 1; j >= 0; j--) {
    const int u = t->alias[recent[j]] >= 0 ? t->alias[recent[j]] : recent[j];
    if (t->last[u] >= 0 && t->last[u] < t->first[w]) return u;
  }
  return -1;
}

static void remember(int *recent, int *n, int cap, int v) {
  if (*n == cap) memmove(recent, recent + 1, sizeof(int) * (size_t)(cap - 1)), (*n)--;
  recent[(*n)++] = v;
}

static void plan_avoid_shared(const camd_graph *g, const camd_plan *p, plan_tmp *t) {
  enum { RECENT = 4 };
  int dense_in[RECENT], n_dense = 0; /* inputs of the last dense convolutions, newest last */
  int dw_in[RECENT], n_dw = 0;       /* inputs of the last depthwise convolutions */
  for (int v = 0; v < g->n_values; v++) t->avoid[v] = -1;
  for (int i = 0; i < p->n_fwd; i++) {
    const int k = p->fwd_nodes[i];
    const camd_node *n = &g->nodes[k];
    int64_t m, cg;
    if (p->skip[k] || n->in[0] < 0 || !conv_weights_dims(g, n, &m, &cg)) continue;
    const int w = p->write_to[k] >= 0 ? p->write_to[k] : n->out[0];
    if (w < 0) continue;
    if (cg == 1 && m > 1) {
      t->avoid[w] = newest_dead(t, dense_in, n_dense, w);
      remember(dw_in, &n_dw, RECENT, n->in[0]);
    } else if (cg > 1) {
      t->avoid[w] = newest_dead(t, dw_in, n_dw, w);
      remember(dense_in, &n_dense, RECENT, n->in[0]);
    }
  }
}

/* Forward live intervals and offsets; returns the floats the values need (CAMD_NO_OFFSET: out
 * of memory). A fused producer's step writes the activation's output; the activation has no step
 * of its own. */
static size_t plan_fwd_layout(const camd_graph *g, camd_plan *p, plan_tmp *t) {
  const int nv = g->n_values;
  int *first = t->first, *last = t->last;
  for (int v = 0; v < nv; v++) {
    first[v] = last[v] = -1;
    p->fwd_off[v] = CAMD_NO_OFFSET;
    p->grad_off[v] = CAMD_NO_OFFSET;
  }
  for (int i = 0; i < g->n_inputs; i++) first[g->inputs[i]] = last[g->inputs[i]] = 0;
  for (int i = 0; i < p->n_fwd; i++) {
    const int k = p->fwd_nodes[i];
    const camd_node *n = &g->nodes[k];
    const int step = i + 1;
    if (p->skip[k]) continue;
    for (int q = 0; q < n->n_in; q++) {
      int v = n->in[q];
      if (v >= 0 && !g->values[v].data && step > last[v]) last[v] = step;
    }
    if (p->sum_from[k] >= 0 && step > last[p->sum_from[k]]) last[p->sum_from[k]] = step;
    for (int j = 0; j < n->n_out; j++) {
      const int w = j == 0 && p->write_to[k] >= 0 ? p->write_to[k] : n->out[j];
      first[w] = last[w] = step;
    }
  }
  /* A convolution with a fused residual Add (plan_layout.c) computes y = conv(x) + r in y; when
   * r dies at that step (not kept, read by nobody later, not the convolution's own input) and
   * has y's size, y takes r's buffer, so the sum post-op adds into r where it lies and no copy
   * of r is made (dnnl.c skips it). The same float operations: the bits do not change. */
  int *alias = t->alias;
  for (int v = 0; v < nv; v++) alias[v] = -1;
  for (int i = 0; i < p->n_fwd; i++) {
    const int k = p->fwd_nodes[i], r = p->sum_from[k], y = p->write_to[k];
    if (p->skip[k] || r < 0 || y < 0 || p->kept[r] || g->values[r].data || g->values[r].is_input ||
        last[r] != i + 1 || value_floats(g, r, p->capacity) != value_floats(g, y, p->capacity))
      continue;
    bool reads_r = false;
    for (int q = 0; q < g->nodes[k].n_in; q++) reads_r |= g->nodes[k].in[q] == r;
    if (!reads_r) alias[y] = alias[r] >= 0 ? alias[r] : r;
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
    if (alias[v] >= 0) { /* its root's interval covers it */
      const int end = p->kept[v] ? CAMD_STEP_END : last[v], root = alias[v];
      if (end > last[root]) last[root] = end;
      continue;
    }
  }
  plan_avoid_shared(g, p, t);
  for (int v = 0; v < nv; v++) {
    if (g->values[v].data || first[v] < 0 || alias[v] >= 0) continue;
    t->iv[n_iv++] = (camd__interval){
        v, first[v],   p->kept[v] ? CAMD_STEP_END : last[v], value_floats(g, v, p->capacity),
        0, t->avoid[v]};
  }
  size_t total = pack_intervals(t->iv, n_iv);
  if (total == CAMD_NO_OFFSET) return total;
  for (int i = 0; i < n_iv; i++) p->fwd_off[t->iv[i].value] = t->iv[i].offset;
  for (int v = 0; v < nv; v++) {
    if (alias[v] >= 0 && first[v] >= 0) p->fwd_off[v] = p->fwd_off[alias[v]];
  }
  return total;
}

/* Gradient live intervals (steps of the backward order), placed after `base` floats; returns
 * the floats the gradients need (CAMD_NO_OFFSET: out of memory). */
static size_t plan_grad_layout(const camd_graph *g, camd_plan *p, plan_tmp *t, size_t base) {
  if (p->grad_root < 0) return 0;
  const int nv = g->n_values;
  int *first = t->first, *last = t->last;
  for (int v = 0; v < nv; v++) {
    first[v] = CAMD_STEP_END;
    last[v] = -1;
  }
  for (int i = 0; i < g->n_outputs; i++) {
    if (t->has_grad[g->outputs[i]]) first[g->outputs[i]] = -1;
  }
  for (int s = 0; s < p->n_bwd; s++) {
    const camd_node *n = &g->nodes[p->bwd_nodes[s]];
    for (int k = 0; k < n->n_in; k++) {
      int v = n->in[k];
      if (v >= 0 && t->has_grad[v] && (n->op->grad_inputs & CAMD_IN(k)) && s < first[v]) {
        first[v] = s;
      }
    }
    for (int j = 0; j < n->n_out; j++) {
      int v = n->out[j];
      if (s > last[v]) last[v] = s;
      if (first[v] > s) first[v] = -1; /* seeded (a graph output) or never written */
    }
  }
  last[p->grad_root] = CAMD_STEP_END;
  if (first[p->grad_root] == CAMD_STEP_END) first[p->grad_root] = -1;
  int n_iv = 0;
  for (int v = 0; v < nv; v++) {
    if (!t->has_grad[v]) continue;
    camd__interval *iv = &t->iv[n_iv++];
    iv->value = v;
    iv->start = first[v] == CAMD_STEP_END ? -1 : first[v];
    iv->end = g->values[v].is_output ? CAMD_STEP_END : last[v];
    if (iv->end < iv->start) iv->end = iv->start;
    iv->size = value_floats(g, v, p->capacity);
    iv->avoid = -1;
  }
  size_t total = pack_intervals(t->iv, n_iv);
  if (total == CAMD_NO_OFFSET) return total;
  for (int i = 0; i < n_iv; i++) p->grad_off[t->iv[i].value] = base + t->iv[i].offset;
  return total;
}

/* Largest kernel scratch of the nodes the plan runs, forward and backward: shared floats and
 * floats per thread. */
static void plan_scratch(const camd_graph *g, camd_plan *p) {
  size_t s = 0, t = 0;
  for (int i = 0; i < p->n_fwd; i++) {
    const camd_node *n = &g->nodes[p->fwd_nodes[i]];
    if (n->scratch_floats > s) s = n->scratch_floats;
    if (n->thread_scratch_floats > t) t = n->thread_scratch_floats;
  }
  for (int i = 0; i < p->n_bwd; i++) {
    const camd_node *n = &g->nodes[p->bwd_nodes[i]];
    if (n->bwd_scratch_floats > s) s = n->bwd_scratch_floats;
  }
  p->scratch_floats = align_floats(s);
  p->thread_floats = align_floats(t);
}

int camd__plan_build(const camd_graph *g, camd__dnnl_worker **dnnl, int threads,
                     const int *retain_sorted, int n_retain, int grad_to, int shared_hook,
                     int capacity, camd_plan **out, camd_error *err) {
  plan_tmp t;
  camd_plan *p = plan_alloc(g->n_values, g->n_nodes, n_retain);
  int rc = plan_tmp_alloc(&t, g->n_values, g->n_nodes);
  if (!p || rc) goto nomem;
  if (n_retain) memcpy(p->retain, retain_sorted, sizeof(int) * (size_t)n_retain);
  p->n_retain = n_retain;
  p->grad_to = p->grad_root = grad_to;
  p->shared_hook = shared_hook;
  p->capacity = capacity;
  p->view_node = -1;
  if (grad_to >= 0 && g->values[grad_to].producer >= 0) {
    const camd_node *pn = &g->nodes[g->values[grad_to].producer];
    if (pn->op->grad_view) {
      CAMD_ASSERT(pn->n_in >= 1 && pn->in[0] >= 0 && pn->n_out == 1);
      p->view_node = g->values[grad_to].producer;
      p->grad_root = pn->in[0];
    }
  }
  if (shared_hook >= 0 && !(p->after = malloc((size_t)g->n_values + 1))) goto nomem;

  plan_select(g, p, &t);
  if ((rc = plan_backward_set(g, p, &t, err))) goto fail;
  plan_mark_kept(g, p);
  plan_fuse(g, p, &t);
  /* oneDNN at any thread count: the slices run on the session's pool (dnnl.h, Threads). */
  if (!*dnnl && camd__dnnl_block() &&
      (rc = camd__dnnl_worker_create(g->n_nodes, threads, dnnl, err)))
    goto fail;
  const camd__layout_plan lp = {p->fwd_nodes, p->n_fwd,    p->skip, p->write_to,     p->post,
                                p->sum_from,  p->computed, p->kept, shared_hook >= 0};
  if ((rc = camd__plan_layout(g, *dnnl, &lp, p->in_blk, p->out_blk, err))) goto fail;
  /* The NCHW weights of oneDNN convolutions the backward runs through (dnnl.h: built once, on
   * first need), made here so a backward never allocates. */
  for (int i = 0; i < p->n_bwd; i++) {
    const camd__dnnl_conv *c = camd__conv_dnnl(&g->nodes[p->bwd_nodes[i]]);
    if (c && !camd__dnnl_conv_nchw_weights(c)) goto nomem;
  }
  size_t fwd_total = plan_fwd_layout(g, p, &t);
  if (fwd_total == CAMD_NO_OFFSET) goto nomem;
  size_t grad_total = plan_grad_layout(g, p, &t, fwd_total);
  if (grad_total == CAMD_NO_OFFSET) goto nomem;
  p->view_off = fwd_total + grad_total;
  if (p->view_node >= 0) grad_total += value_floats(g, grad_to, capacity);
  p->mem_floats = align_floats(fwd_total + grad_total);
  plan_scratch(g, p);
  plan_tmp_free(&t);
  *out = p;
  return 0;
nomem:
  rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory building an execution plan");
fail:
  plan_tmp_free(&t);
  camd__plan_free(p);
  return rc;
}
