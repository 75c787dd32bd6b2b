/* Plan-time layout pass: which values of a plan hold channel-blocked data (engine/dnnl.h).
 *
 * Values are grouped into classes that must share one layout: an element-wise op whose
 * activation inputs all have its output's shape (Relu, Clip, Sigmoid, Add, Mul, ...; constant
 * inputs only as scalars) joins its inputs and its output into one class, because it runs the
 * same flat loop whatever the order of the elements. A class is blocked when every member is a
 * 4-D activation with channels a multiple of the block, nobody outside the plan's forward can
 * read it (not kept: not a graph output, not a value the caller keeps, not read by the partial
 * backward), and every node that writes or reads a member is either such an element-wise op or
 * a convolution oneDNN runs (its input and output may each be blocked or NCHW: it reorders an
 * NCHW side itself; it runs through oneDNN in every plan, even with both sides NCHW, so a
 * value never depends on which other values a request keeps: predict and explain, or two CAM
 * layers, give the same scores), or GlobalAveragePool (reads blocked input; its [N, C, 1, 1] output
 * is the same in both layouts and counts as NCHW), or a 2-D MaxPool (its input and output are
 * one class: both blocked or both NCHW). Every other reader or writer pins the class to NCHW. In a
 * shared-input plan (Score-CAM's masked batches) nothing is blocked, but the convolutions still run
 * through oneDNN on NCHW values. The primitives a plan needs are created here
 * (camd__dnnl_worker_prepare), before the plan is cached, so a forward never creates or allocates
 * anything.
 */
#include "engine/plan_layout.h"

#include <stdlib.h>
#include <string.h>

#include "engine/dnnl.h"

static int find(int *parent, int v) {
  while (parent[v] != v) {
    parent[v] = parent[parent[v]];
    v = parent[v];
  }
  return v;
}

static void join(int *parent, int a, int b) {
  a = find(parent, a), b = find(parent, b);
  if (a != b) parent[a < b ? b : a] = a < b ? a : b;
}

static bool is_activation(const camd_graph *g, int v) {
  return v >= 0 && !g->values[v].data && g->values[v].batched;
}

/* Element-wise over inputs of the output's shape (scalar constants allowed). */
static bool layout_agnostic(const camd_graph *g, const camd_node *n) {
  static const char *const ops[] = {"Relu",      "Clip",        "Sigmoid",   "Tanh",
                                    "LeakyRelu", "HardSigmoid", "HardSwish", "Add",
                                    "Sub",       "Mul",         "Div"};
  bool known = false;
  for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]) && !known; i++)
    known = !strcmp(n->op_type, ops[i]);
  if (!known || n->n_out != 1) return false;
  const camd_shape *os = &g->values[n->out[0]].shape;
  for (int k = 0; k < n->n_in; k++) {
    const int v = n->in[k];
    if (v < 0) continue;
    if (is_activation(g, v)) {
      if (!camd_shape_equal(&g->values[v].shape, os)) return false;
    } else if (camd_shape_count(&g->values[v].shape) != 1) {
      return false;
    }
  }
  return true;
}

static int out_value(const camd__layout_plan *lp, const camd_node *n, int k, int j) {
  return j == 0 && lp->write_to[k] >= 0 ? lp->write_to[k] : n->out[j];
}

/* The plan's only non-skipped reader of value v, or -1 (none or several). */
static int only_reader(const camd_graph *g, const camd__layout_plan *lp, int v) {
  int reader = -1, reads = 0;
  for (int i = 0; i < lp->n_fwd; i++) {
    const int k = lp->fwd_nodes[i];
    if (lp->skip[k]) continue;
    for (int q = 0; q < g->nodes[k].n_in; q++) {
      if (g->nodes[k].in[q] == v) reads++, reader = k;
    }
  }
  return reads == 1 ? reader : -1;
}

/* Residual Add on blocked data: Add(v, r) where v comes straight from a oneDNN convolution
 * that runs after r is computed, and nothing else reads v. The convolution then writes the
 * Add's output itself (r copied in first, a `sum` post-op adds the convolution), and applies
 * the activation that is the Add output's only reader (Relu / Clip) as a further post-op. The
 * float operations are the Add's and the activation's: (conv + r), then the activation. */
static int fuse_residual_adds(const camd_graph *g, camd__dnnl_worker *w,
                              const camd__layout_plan *lp, const unsigned char *dnnl_node,
                              const unsigned *in_blk, unsigned *out_blk, camd_error *err) {
  int *pos = malloc(sizeof(int) * ((size_t)g->n_nodes + 1));
  if (!pos) return camd_error_set(err, CAMD_E_NOMEM, "out of memory planning layouts");
  for (int k = 0; k < g->n_nodes; k++) pos[k] = -1;
  for (int i = 0; i < lp->n_fwd; i++) pos[lp->fwd_nodes[i]] = i;
  int rc = 0;
  for (int i = 0; i < lp->n_fwd && !rc; i++) {
    const int a = lp->fwd_nodes[i];
    const camd_node *an = &g->nodes[a];
    if (lp->skip[a] || strcmp(an->op_type, "Add") || an->n_in != 2 || an->n_out != 1 ||
        in_blk[a] != 3u || !(out_blk[a] & 1u) || lp->kept[an->out[0]])
      continue;
    /* The input whose producer runs last. */
    const int p0 = g->values[an->in[0]].producer, p1 = g->values[an->in[1]].producer;
    const int q = (p0 >= 0 ? pos[p0] : -1) > (p1 >= 0 ? pos[p1] : -1) ? 0 : 1;
    const int v = an->in[q], r = an->in[1 - q], k = g->values[v].producer;
    if (k < 0 || pos[k] < 0 || !dnnl_node[k] || lp->skip[k] || lp->write_to[k] >= 0 ||
        lp->sum_from[k] >= 0 || !(out_blk[k] & 1u) || v == r || only_reader(g, lp, v) != a)
      continue;
    /* The activation after the Add, when it is the Add output's only reader. */
    const int act = only_reader(g, lp, an->out[0]);
    camd_post_op po = {CAMD_POST_NONE, 0, 0};
    const camd_node *actn = act >= 0 ? &g->nodes[act] : NULL;
    bool fuse_act = actn && actn->op->as_post_op && actn->n_out == 1 && actn->in[0] == an->out[0] &&
                    actn->op->as_post_op(actn, &po) && (out_blk[act] & 1u);
    if (!fuse_act) po.kind = CAMD_POST_NONE;
    const camd__dnnl_conv *conv = camd__conv_dnnl(&g->nodes[k]);
    rc = camd__dnnl_worker_prepare(w, conv, k, fuse_act ? &po : NULL, true, !(in_blk[k] & 1u),
                                   false, err);
    if (rc == CAMD_E_UNSUPPORTED && fuse_act) { /* another post-op for this node: sum only */
      fuse_act = false;
      rc = camd__dnnl_worker_prepare(w, conv, k, NULL, true, !(in_blk[k] & 1u), false, err);
    }
    if (rc == CAMD_E_UNSUPPORTED) {
      rc = 0;
      continue;
    }
    if (rc) break;
    lp->skip[a] = 1;
    lp->sum_from[k] = r;
    lp->computed[v] = 0;
    if (fuse_act) {
      lp->skip[act] = 1;
      lp->post[k] = po;
      lp->write_to[k] = actn->out[0];
      lp->computed[an->out[0]] = 0;
    } else {
      lp->write_to[k] = an->out[0];
    }
    out_blk[k] = 1u;
  }
  free(pos);
  return rc;
}

int camd__plan_layout(const camd_graph *g, camd__dnnl_worker *w, const camd__layout_plan *lp,
                      unsigned *in_blk, unsigned *out_blk, camd_error *err) {
  const int nv = g->n_values, nn = g->n_nodes;
  memset(in_blk, 0, sizeof(unsigned) * (size_t)nn);
  memset(out_blk, 0, sizeof(unsigned) * (size_t)nn);
  for (int k = 0; k < nn; k++) lp->sum_from[k] = -1;
  const int B = camd__dnnl_block();
  if (!B || !w) return 0;
  int *parent = malloc(sizeof(int) * ((size_t)nv + 1));
  unsigned char *ok = malloc((size_t)nv + 1);
  unsigned char *dnnl_node = calloc((size_t)nn + 1, 1);
  if (!parent || !ok || !dnnl_node) {
    free(parent);
    free(ok);
    free(dnnl_node);
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory planning layouts");
  }
  for (int v = 0; v < nv; v++) {
    const camd_value *val = &g->values[v];
    parent[v] = v;
    ok[v] = is_activation(g, v) && val->dtype == CAMD_FLOAT32 && val->shape.ndim == 4 &&
            val->shape.dims[1] % B == 0 && !val->is_input && !val->is_output && !lp->kept[v] &&
            !lp->no_blocking; /* shared-input plans: oneDNN convolutions on NCHW values */
  }
  int rc = 0;
  for (int i = 0; i < lp->n_fwd && !rc; i++) {
    const int k = lp->fwd_nodes[i];
    const camd_node *n = &g->nodes[k];
    if (lp->skip[k]) continue;
    const camd__dnnl_conv *conv = camd__conv_dnnl(n);
    if (conv) {
      const camd_post_op *po = lp->write_to[k] >= 0 ? &lp->post[k] : NULL;
      rc = camd__dnnl_worker_prepare(w, conv, k, po, false, false, false, err);
      if (rc == CAMD_E_UNSUPPORTED) { /* camd's kernel: it reads the NCHW weights */
        rc = camd__dnnl_conv_nchw_weights(conv)
                 ? 0
                 : camd_error_set(err, CAMD_E_NOMEM, "out of memory (convolution weights)");
        conv = NULL;
      }
      if (rc) break;
    }
    if (conv) {
      dnnl_node[k] = 1;
      if (!camd__dnnl_conv_src_blockable(conv)) ok[n->in[0]] = 0;
      continue;
    }
    if (!strcmp(n->op_type, "GlobalAveragePool") && n->n_out == 1) {
      /* Reads a blocked input with a stride (op_pool.c); [N, C, 1, 1] out is NCHW. */
      ok[out_value(lp, n, k, 0)] = 0;
      continue;
    }
    if (!strcmp(n->op_type, "MaxPool") && n->n_out == 1 && is_activation(g, n->in[0]) &&
        g->values[n->in[0]].shape.ndim == 4) {
      /* Blocked in, blocked out, or both NCHW (op_pool.c): one class for both. */
      join(parent, n->in[0], out_value(lp, n, k, 0));
      continue;
    }
    const bool agnostic = layout_agnostic(g, n);
    const int first = out_value(lp, n, k, 0);
    for (int q = 0; q < n->n_in; q++) {
      if (!is_activation(g, n->in[q])) continue;
      if (agnostic)
        join(parent, n->in[q], first);
      else
        ok[n->in[q]] = 0;
    }
    for (int j = 0; j < n->n_out; j++) {
      if (!agnostic) ok[out_value(lp, n, k, j)] = 0;
    }
  }
  if (!rc) {
    for (int v = 0; v < nv; v++) {
      const int r = find(parent, v);
      if (!ok[v]) ok[r] = 0;
    }
    for (int i = 0; i < lp->n_fwd && !rc; i++) {
      const int k = lp->fwd_nodes[i];
      const camd_node *n = &g->nodes[k];
      if (lp->skip[k]) continue;
      for (int q = 0; q < n->n_in; q++) {
        const int v = n->in[q];
        if (is_activation(g, v) && ok[v] && ok[find(parent, v)]) in_blk[k] |= CAMD_IN(q);
      }
      for (int j = 0; j < n->n_out; j++) {
        const int v = out_value(lp, n, k, j);
        if (ok[v] && ok[find(parent, v)]) out_blk[k] |= CAMD_IN(j);
      }
      if (dnnl_node[k]) { /* every plan: the same kernel for a node (see the top) */
        const camd_post_op *po = lp->write_to[k] >= 0 ? &lp->post[k] : NULL;
        rc = camd__dnnl_worker_prepare(w, camd__conv_dnnl(n), k, po, false, !(in_blk[k] & 1u),
                                       !(out_blk[k] & 1u), err);
      }
    }
  }
  if (!rc) rc = fuse_residual_adds(g, w, lp, dnnl_node, in_blk, out_blk, err);
  free(parent);
  free(ok);
  free(dnnl_node);
  return rc;
}
