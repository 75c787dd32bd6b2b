/* Reductions along axes: ReduceMean (axes attribute before opset 18, constant input from 18),
 * Softmax and LogSoftmax (opset < 13: flattened to 2-D at `axis`; 13+: along one axis), with
 * backward.
 *
 * ReduceMean walks the input once with the output's strides (0 on reduced axes), collapsed by
 * camd__bc_loop so that e.g. a mean over H×W is one contiguous run per (n, c). Softmax works on
 * [outer, n, inner] with the reduced axis of length n and stride inner.
 */
#include <math.h>
#include <string.h>

#include "engine/op.h"
#include "engine/op_bcast.h"

/* ---- ReduceMean ---- */

typedef struct reduce_params {
  int rank;      /* input rank */
  unsigned mask; /* bit d: axis d is reduced */
  bool keepdims;
  bool noop; /* empty axes with noop_with_empty_axes=1: identity */
} reduce_params;

static int reduce_add_axes(const camd_node *node, reduce_params *p, const int64_t *axes, size_t n,
                           camd_error *err) {
  for (size_t i = 0; i < n; i++) {
    int64_t a = axes[i];
    if (a < -p->rank || a >= p->rank) {
      return camd__node_error(err, node, CAMD_E_INVALID, "axis %lld is out of range for rank %d",
                              (long long)a, p->rank);
    }
    if (a < 0) a += p->rank;
    if (p->mask & (1u << a)) {
      return camd__node_error(err, node, CAMD_E_INVALID, "axis %lld is repeated",
                              (long long)axes[i]);
    }
    p->mask |= 1u << a;
  }
  return 0;
}

static int reducemean_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  int max_in = node->opset >= 18 ? 2 : 1;
  if (node->n_in < 1 || node->n_in > max_in || node->in[0] < 0 || node->n_out != 1) {
    return camd__node_error(err, node, CAMD_E_INVALID,
                            "expects 1 to %d inputs and 1 output, got %d and %d", max_in,
                            node->n_in, node->n_out);
  }
  camd_shape s;
  camd_dtype dt;
  const void *data;
  int rc = camd__node_input(g, node, 0, &s, &dt, &data);
  if (rc) return camd__node_error(err, node, rc, "input 0 is missing");
  if (dt != CAMD_FLOAT32) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED, "input 0 is not float32");
  }
  reduce_params *p = camd__node_params_alloc(g, sizeof *p);
  if (!p) return camd__node_error(err, node, CAMD_E_NOMEM, "out of memory");
  node->params = p;
  p->rank = s.ndim;
  int64_t keep = 1, noop = 0;
  rc = camd__attr_int(node, "keepdims", 1, &keep, err);
  if (rc) return rc;
  p->keepdims = keep != 0;
  const int64_t *axes = NULL;
  size_t n_axes = 0;
  if (node->opset < 18) {
    rc = camd__attr_ints(node, "axes", &axes, &n_axes, err);
    if (rc) return rc;
  } else {
    rc = camd__attr_int(node, "noop_with_empty_axes", 0, &noop, err);
    if (rc) return rc;
    if (node->n_in == 2 && node->in[1] >= 0) {
      camd_shape as;
      camd_dtype adt;
      const void *adata;
      rc = camd__node_input(g, node, 1, &as, &adt, &adata);
      if (rc) return camd__node_error(err, node, rc, "input 'axes' is missing");
      if (!adata || adt != CAMD_INT64) {
        return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                                "input 'axes' must be a constant int64 tensor");
      }
      axes = adata;
      n_axes = camd_shape_count(&as);
    }
  }
  if (n_axes == 0) {
    if (noop) {
      p->noop = true;
    } else {
      p->mask = s.ndim > 0 ? (unsigned)((1ull << s.ndim) - 1) : 0;
    }
  } else {
    rc = reduce_add_axes(node, p, axes, n_axes, err);
    if (rc) return rc;
  }
  /* Averaging over the batch axis mixes batch items: the model then runs one item at a time
   * (the shapes alone do not always show it, e.g. with keepdims=1). */
  if ((p->mask & 1u) && (node->in_batched & 1u)) camd__node_mark_batch_mixed(g);
  return 0;
}

static int reducemean_infer(const camd_node *node, const camd_shape *in, camd_shape *out,
                            camd_error *err) {
  const reduce_params *p = node->params;
  if (in[0].ndim != p->rank) {
    return camd__node_error(err, node, CAMD_E_SHAPE, "input rank %d, expected %d", in[0].ndim,
                            p->rank);
  }
  if (p->noop) {
    out[0] = in[0];
    return 0;
  }
  int n = 0;
  for (int d = 0; d < in[0].ndim; d++) {
    if (!(p->mask & (1u << d))) {
      out[0].dims[n++] = in[0].dims[d];
    } else if (p->keepdims) {
      out[0].dims[n++] = 1;
    }
  }
  out[0].ndim = n;
  return 0;
}

/* Iteration over the input (A: dense) with the output's strides (B: 0 on reduced axes).
 * Returns the number of input elements averaged into each output element. */
static int64_t reduce_loop(const reduce_params *p, const camd_shape *in, camd__bc_loop *l) {
  int64_t st[CAMD_BC_MAX_OPS][CAMD_BC_MAX_DIMS];
  int64_t st_in = 1, st_out = 1, count = 1;
  for (int d = in->ndim - 1; d >= 0; d--) {
    st[0][d] = st_in;
    st_in *= in->dims[d];
    if (p->mask & (1u << d)) {
      st[1][d] = 0;
      count *= in->dims[d];
    } else {
      st[1][d] = st_out;
      st_out *= in->dims[d];
    }
  }
  camd__bc_setup(l, in->ndim, in->dims, 2, st);
  return count;
}

static void reducemean_forward(const camd_op_ctx *ctx) {
  const reduce_params *p = ctx->params;
  const float *x = ctx->in[0].data;
  float *y = ctx->out[0].data;
  size_t n_out = camd_shape_count(&ctx->out[0].shape);
  if (p->noop) {
    memcpy(y, x, n_out * sizeof(float));
    return;
  }
  camd__bc_loop l;
  int64_t count = reduce_loop(p, &ctx->in[0].shape, &l);
  memset(y, 0, n_out * sizeof(float));
  int64_t n = l.dims[l.nd - 1], so = l.st[1][l.nd - 1];
  int64_t rows = camd__bc_rows(&l), idx[CAMD_BC_MAX_DIMS] = {0}, off[CAMD_BC_MAX_OPS] = {0};
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + off[0];
    float *yr = y + off[1];
    if (so == 0) {
      double s = 0;
      for (int64_t i = 0; i < n; i++) s += xr[i];
      yr[0] += (float)s;
    } else {
      for (int64_t i = 0; i < n; i++) yr[i] += xr[i];
    }
    camd__bc_next(&l, 2, idx, off);
  }
  const float inv = count > 0 ? (float)(1.0 / (double)count) : 0.f;
  for (size_t i = 0; i < n_out; i++) y[i] *= inv;
}

static void reducemean_backward(const camd_op_ctx *ctx) {
  const reduce_params *p = ctx->params;
  const float *gy = ctx->grad_out[0].data;
  float *gx = ctx->grad_in[0].data;
  if (!gy || !gx) return;
  if (p->noop) {
    size_t n = camd_shape_count(&ctx->in[0].shape);
    for (size_t i = 0; i < n; i++) gx[i] += gy[i];
    return;
  }
  camd__bc_loop l;
  int64_t count = reduce_loop(p, &ctx->in[0].shape, &l);
  const float inv = count > 0 ? (float)(1.0 / (double)count) : 0.f;
  int64_t n = l.dims[l.nd - 1], so = l.st[1][l.nd - 1];
  int64_t rows = camd__bc_rows(&l), idx[CAMD_BC_MAX_DIMS] = {0}, off[CAMD_BC_MAX_OPS] = {0};
  for (int64_t r = 0; r < rows; r++) {
    float *gr = gx + off[0];
    const float *gyr = gy + off[1];
    if (so == 0) {
      const float v = gyr[0] * inv;
      for (int64_t i = 0; i < n; i++) gr[i] += v;
    } else {
      for (int64_t i = 0; i < n; i++) gr[i] += gyr[i] * inv;
    }
    camd__bc_next(&l, 2, idx, off);
  }
}

/* ---- Softmax ---- */

typedef struct softmax_params {
  int rank;
  int axis;    /* normalised, 0 <= axis < rank */
  bool legacy; /* opset < 13: softmax over the flattened axes [axis, rank) */
} softmax_params;

static int softmax_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  if (node->n_in != 1 || node->in[0] < 0 || node->n_out != 1) {
    return camd__node_error(err, node, CAMD_E_INVALID,
                            "expects 1 input and 1 output, got %d and %d", node->n_in, node->n_out);
  }
  camd_shape s;
  camd_dtype dt;
  const void *data;
  int rc = camd__node_input(g, node, 0, &s, &dt, &data);
  if (rc) return camd__node_error(err, node, rc, "input 0 is missing");
  if (dt != CAMD_FLOAT32) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED, "input 0 is not float32");
  }
  softmax_params *p = camd__node_params_alloc(g, sizeof *p);
  if (!p) return camd__node_error(err, node, CAMD_E_NOMEM, "out of memory");
  node->params = p;
  p->rank = s.ndim;
  p->legacy = node->opset < 13;
  int64_t axis = 0;
  rc = camd__attr_int(node, "axis", p->legacy ? 1 : -1, &axis, err);
  if (rc) return rc;
  if (s.ndim == 0 || axis < -s.ndim || axis >= s.ndim) {
    return camd__node_error(err, node, CAMD_E_INVALID, "axis %lld is out of range for rank %d",
                            (long long)axis, s.ndim);
  }
  if (axis < 0) axis += s.ndim;
  p->axis = (int)axis;
  /* Softmax over the batch axis mixes batch items: the model then runs one item at a time. */
  if (p->axis == 0 && (node->in_batched & 1u)) camd__node_mark_batch_mixed(g);
  return 0;
}

static int softmax_infer(const camd_node *node, const camd_shape *in, camd_shape *out,
                         camd_error *err) {
  const softmax_params *p = node->params;
  if (in[0].ndim != p->rank) {
    return camd__node_error(err, node, CAMD_E_SHAPE, "input rank %d, expected %d", in[0].ndim,
                            p->rank);
  }
  out[0] = in[0];
  return 0;
}

/* Splits the run's shape into [outer, n, inner]: softmax over n elements with stride inner. */
static void softmax_dims(const softmax_params *p, const camd_shape *s, int64_t *outer, int64_t *n,
                         int64_t *inner) {
  *outer = 1;
  *n = 1;
  *inner = 1;
  for (int d = 0; d < s->ndim; d++) {
    if (d < p->axis) {
      *outer *= s->dims[d];
    } else if (d == p->axis || p->legacy) {
      *n *= s->dims[d];
    } else {
      *inner *= s->dims[d];
    }
  }
}

/* Softmax of n elements with stride st (called with a literal 1 for the contiguous case). */
static inline void softmax_row(const float *restrict x, float *restrict y, int64_t n, int64_t st) {
  float m = x[0];
  for (int64_t i = 1; i < n; i++) m = x[i * st] > m ? x[i * st] : m;
  double s = 0;
  for (int64_t i = 0; i < n; i++) {
    float e = expf(x[i * st] - m);
    y[i * st] = e;
    s += e;
  }
  const float inv = (float)(1.0 / s);
  for (int64_t i = 0; i < n; i++) y[i * st] *= inv;
}

static void softmax_forward(const camd_op_ctx *ctx) {
  const softmax_params *p = ctx->params;
  int64_t outer, n, inner;
  softmax_dims(p, &ctx->in[0].shape, &outer, &n, &inner);
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t j = 0; j < inner; j++) {
      const float *x = ctx->in[0].data + o * n * inner + j;
      float *y = ctx->out[0].data + o * n * inner + j;
      if (inner == 1) {
        softmax_row(x, y, n, 1);
      } else {
        softmax_row(x, y, n, inner);
      }
    }
  }
}

/* dx += y * (dy - sum(dy * y)) over n elements with stride st. */
static inline void softmax_grad_row(const float *restrict y, const float *restrict gy,
                                    float *restrict gx, int64_t n, int64_t st) {
  double dot = 0;
  for (int64_t i = 0; i < n; i++) dot += (double)gy[i * st] * y[i * st];
  const float d = (float)dot;
  for (int64_t i = 0; i < n; i++) gx[i * st] += y[i * st] * (gy[i * st] - d);
}

bool camd__softmax_covers_item(const camd_node *n, const camd_shape *per_sample) {
  const softmax_params *p = n->params;
  if (!p || per_sample->ndim != p->rank) return false;
  int64_t outer, len, inner;
  softmax_dims(p, per_sample, &outer, &len, &inner);
  return outer == 1 && inner == 1; /* dims before the axis: only the batch axis, of size 1 */
}

static void softmax_backward(const camd_op_ctx *ctx) {
  const softmax_params *p = ctx->params;
  const float *gy_all = ctx->grad_out[0].data;
  float *gx_all = ctx->grad_in[0].data;
  if (!gy_all || !gx_all) return;
  int64_t outer, n, inner;
  softmax_dims(p, &ctx->in[0].shape, &outer, &n, &inner);
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t j = 0; j < inner; j++) {
      int64_t base = o * n * inner + j;
      const float *y = ctx->out[0].data + base, *gy = gy_all + base;
      float *gx = gx_all + base;
      if (inner == 1) {
        softmax_grad_row(y, gy, gx, n, 1);
      } else {
        softmax_grad_row(y, gy, gx, n, inner);
      }
    }
  }
}

/* ---- LogSoftmax: y = x - max - log(sum exp(x - max)); dx += dy - exp(y) * sum(dy) ---- */

static inline void log_softmax_row(const float *restrict x, float *restrict y, int64_t n,
                                   int64_t st) {
  float m = x[0];
  for (int64_t i = 1; i < n; i++) m = x[i * st] > m ? x[i * st] : m;
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += exp((double)x[i * st] - m);
  /* s >= 1: the maximum's own term is exp(0) */
  /* cppcheck-suppress invalidFunctionArg */
  const double lse = (double)m + log(s);
  for (int64_t i = 0; i < n; i++) y[i * st] = (float)((double)x[i * st] - lse);
}

static void log_softmax_forward(const camd_op_ctx *ctx) {
  const softmax_params *p = ctx->params;
  int64_t outer, n, inner;
  softmax_dims(p, &ctx->in[0].shape, &outer, &n, &inner);
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t j = 0; j < inner; j++) {
      const int64_t base = o * n * inner + j;
      log_softmax_row(ctx->in[0].data + base, ctx->out[0].data + base, n, inner);
    }
  }
}

static void log_softmax_backward(const camd_op_ctx *ctx) {
  const softmax_params *p = ctx->params;
  const float *gy_all = ctx->grad_out[0].data;
  float *gx_all = ctx->grad_in[0].data;
  if (!gy_all || !gx_all) return;
  int64_t outer, n, inner;
  softmax_dims(p, &ctx->in[0].shape, &outer, &n, &inner);
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t j = 0; j < inner; j++) {
      const int64_t base = o * n * inner + j;
      const float *y = ctx->out[0].data + base, *gy = gy_all + base;
      float *gx = gx_all + base;
      double sum = 0;
      for (int64_t i = 0; i < n; i++) sum += gy[i * inner];
      for (int64_t i = 0; i < n; i++) {
        gx[i * inner] += (float)((double)gy[i * inner] - exp((double)y[i * inner]) * sum);
      }
    }
  }
}

/* ReduceMean 1..17: axes attribute; 18..22: axes input + noop_with_empty_axes. */
const camd_op_desc camd__op_reducemean = {.op_type = "ReduceMean",
                                          .opset_min = 1,
                                          .opset_max = 22,
                                          .prepare = reducemean_prepare,
                                          .infer = reducemean_infer,
                                          .forward = reducemean_forward,
                                          .backward = reducemean_backward,
                                          .bwd_needs_inputs = 0,
                                          .bwd_needs_outputs = false,
                                          .grad_inputs = 0x1};
/* Softmax 1..12: coerced to 2-D at axis (default 1); 13: one axis (default -1). */
const camd_op_desc camd__op_softmax = {.op_type = "Softmax",
                                       .opset_min = 1,
                                       .opset_max = 22,
                                       .prepare = softmax_prepare,
                                       .infer = softmax_infer,
                                       .forward = softmax_forward,
                                       .backward = softmax_backward,
                                       .bwd_needs_inputs = 0,
                                       .bwd_needs_outputs = true,
                                       .grad_inputs = 0x1};
/* LogSoftmax: the same axis rules as Softmax. */
const camd_op_desc camd__op_logsoftmax = {.op_type = "LogSoftmax",
                                          .opset_min = 1,
                                          .opset_max = 22,
                                          .prepare = softmax_prepare,
                                          .infer = softmax_infer,
                                          .forward = log_softmax_forward,
                                          .backward = log_softmax_backward,
                                          .bwd_needs_inputs = 0,
                                          .bwd_needs_outputs = true,
                                          .grad_inputs = 0x1};
