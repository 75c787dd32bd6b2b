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
 * NCHW side itself). Every other reader or writer pins the class to NCHW. A convolution whose
 * input and output both stay NCHW keeps camd's own kernel.
 * The primitives a plan needs are created here (camd__dnnl_worker_prepare), before the plan is
 * cached, so a forward never creates or allocates anything.
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

int camd__plan_layout(const camd_graph *g, camd__dnnl_worker *w, const camd__layout_plan *lp,
                      unsigned *in_blk, unsigned *out_blk, camd_error *err) {
  const int nv = g->n_values, nn = g->n_nodes;
  memset(in_blk, 0, sizeof(unsigned) * (size_t)nn);
  memset(out_blk, 0, sizeof(unsigned) * (size_t)nn);
  const int B = camd__dnnl_block();
  if (!B || !w || lp->no_blocking) return 0;
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
            val->shape.dims[1] % B == 0 && !val->is_input && !val->is_output && !lp->kept[v];
  }
  int rc = 0;
  for (int i = 0; i < lp->n_fwd && !rc; i++) {
    const int k = lp->fwd_nodes[i];
    const camd_node *n = &g->nodes[k];
    if (lp->skip[k]) continue;
    const camd__dnnl_conv *conv = camd__conv_dnnl(n);
    if (conv) {
      const camd_post_op *po = lp->write_to[k] >= 0 ? &lp->post[k] : NULL;
      rc = camd__dnnl_worker_prepare(w, conv, k, po, false, false, err);
      if (rc == CAMD_E_UNSUPPORTED) rc = 0, conv = NULL;
      if (rc) break;
    }
    if (conv) {
      dnnl_node[k] = 1;
      if (!camd__dnnl_conv_src_blockable(conv)) ok[n->in[0]] = 0;
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
      if (dnnl_node[k] && (in_blk[k] & 1u || out_blk[k] & 1u)) {
        const camd_post_op *po = lp->write_to[k] >= 0 ? &lp->post[k] : NULL;
        rc = camd__dnnl_worker_prepare(w, camd__conv_dnnl(n), k, po, !(in_blk[k] & 1u),
                                       !(out_blk[k] & 1u), err);
      }
    }
  }
  free(parent);
  free(ok);
  free(dnnl_node);
  return rc;
}
