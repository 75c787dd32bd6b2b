/* Shape ops: Flatten, Reshape, Squeeze, Unsqueeze (plain copies under a new shape) and Transpose.
 *
 * Reshape keeps the batch: when its data input is batched and the target's first entry is 1, 0
 * or -1 while the remaining entries resolve from the per-sample size, the output's first dim is
 * the run's batch (a PyTorch export at batch 1 writes [1, 512] or [1, -1]). Any other target is
 * computed by the ONNX rules on the full shape; the graph's batch check then decides whether the
 * model can run several items at once. Squeeze without axes never removes a batch axis.
 */
#include <string.h>

#include "engine/op.h"
#include "engine/op_strided.h"

/* ---- shared helpers ---- */

static bool has_input(const camd_node *n, int i) {
  return i < n->n_in && n->in[i] >= 0;
}

/* Copies the int64 constant input i (scalar or 1-D) into out[max]; *count receives its size. */
static int const_ints(camd_graph *g, const camd_node *n, int i, const char *what, int64_t *out,
                      size_t max, size_t *count, camd_error *err) {
  camd_shape s;
  camd_dtype dt;
  const void *data = NULL;
  int rc = camd__node_input(g, n, i, &s, &dt, &data);
  if (rc < 0) return camd__node_error(err, n, rc, "input '%s' is missing", what);
  if (dt != CAMD_INT64 || !data)
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED,
                            "input '%s' must be a constant int64 tensor", what);
  if (s.ndim > 1)
    return camd__node_error(err, n, CAMD_E_INVALID, "input '%s' must be 1-D (has %d dims)", what,
                            s.ndim);
  size_t c = camd_shape_count(&s);
  if (c > max)
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED, "input '%s' has %zu entries (max %zu)",
                            what, c, max);
  memcpy(out, data, c * sizeof(int64_t));
  *count = c;
  return 0;
}

/* Rank of the data input (input 0) at load time. */
static int data_rank(camd_graph *g, const camd_node *n, int *rank, camd_error *err) {
  camd_shape s;
  camd_dtype dt;
  if (n->n_in < 1 || n->n_out < 1)
    return camd__node_error(err, n, CAMD_E_INVALID, "needs at least one input and one output");
  int rc = camd__node_input(g, n, 0, &s, &dt, NULL);
  if (rc < 0) return camd__node_error(err, n, rc, "data input is missing");
  if (dt != CAMD_FLOAT32)
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED, "data input must be float32");
  *rank = s.ndim;
  return 0;
}

/* Normalizes axis a into [0, rank); false if out of range. */
static bool norm_axis(int64_t a, int rank, int *out) {
  if (a < -(int64_t)rank || a >= (int64_t)rank) return false;
  *out = (int)(a < 0 ? a + rank : a);
  return true;
}

static void copy_forward(const camd_op_ctx *ctx) {
  size_t c = camd_shape_count(&ctx->out[0].shape);
  memcpy(ctx->out[0].data, ctx->in[0].data, c * sizeof(float));
}

static void copy_backward(const camd_op_ctx *ctx) {
  float *gi = ctx->grad_in[0].data;
  const float *go = ctx->grad_out[0].data;
  if (!gi || !go) return;
  size_t c = camd_shape_count(&ctx->in[0].shape);
  for (size_t i = 0; i < c; i++) gi[i] += go[i];
}

/* ---- Flatten ---- */

typedef struct flatten_params {
  int64_t axis; /* as given; normalized in infer against the input rank */
} flatten_params;

static int flatten_prepare(camd_graph *g, camd_node *n, camd_error *err) {
  int rank = 0, rc = data_rank(g, n, &rank, err);
  if (rc < 0) return rc;
  int64_t axis;
  if ((rc = camd__attr_int(n, "axis", 1, &axis, err)) < 0) return rc;
  if (axis < -(int64_t)rank || axis > (int64_t)rank)
    return camd__node_error(err, n, CAMD_E_INVALID, "axis %lld out of range for rank %d",
                            (long long)axis, rank);
  flatten_params *p = camd__node_params_alloc(g, sizeof(*p));
  if (!p) return camd__node_error(err, n, CAMD_E_NOMEM, "out of memory");
  p->axis = axis < 0 ? axis + rank : axis;
  n->params = p;
  return 0;
}

static int flatten_infer(const camd_node *n, const camd_shape *in, camd_shape *out,
                         camd_error *err) {
  const flatten_params *p = n->params;
  if (p->axis > in[0].ndim)
    return camd__node_error(err, n, CAMD_E_SHAPE, "axis %lld out of range for rank %d",
                            (long long)p->axis, in[0].ndim);
  int64_t a = 1, b = 1;
  for (int d = 0; d < in[0].ndim; d++) {
    if (d < p->axis)
      a *= in[0].dims[d];
    else
      b *= in[0].dims[d];
  }
  out[0].ndim = 2;
  out[0].dims[0] = a;
  out[0].dims[1] = b;
  return 0;
}

const camd_op_desc camd__op_flatten = {.op_type = "Flatten",
                                       .opset_min = 1,
                                       .opset_max = 21,
                                       .prepare = flatten_prepare,
                                       .infer = flatten_infer,
                                       .forward = copy_forward,
                                       .backward = copy_backward,
                                       .bwd_needs_inputs = 0,
                                       .bwd_needs_outputs = false,
                                       .grad_inputs = CAMD_IN(0)};

/* ---- Reshape ---- */

typedef struct reshape_params {
  int n;
  bool allowzero;
  int64_t target[CAMD_MAX_DIMS];
} reshape_params;

static int reshape_prepare(camd_graph *g, camd_node *n, camd_error *err) {
  int rank = 0, rc = data_rank(g, n, &rank, err);
  if (rc < 0) return rc;
  (void)rank;
  reshape_params *p = camd__node_params_alloc(g, sizeof(*p));
  if (!p) return camd__node_error(err, n, CAMD_E_NOMEM, "out of memory");
  size_t cnt = 0;
  if (n->opset < 5) {
    const int64_t *v;
    if ((rc = camd__attr_ints(n, "shape", &v, &cnt, err)) < 0) return rc;
    if (!camd__attr_find(n, "shape"))
      return camd__node_error(err, n, CAMD_E_INVALID, "attribute 'shape' is missing");
    if (cnt > CAMD_MAX_DIMS)
      return camd__node_error(err, n, CAMD_E_UNSUPPORTED, "target has %zu dims (max %d)", cnt,
                              CAMD_MAX_DIMS);
    if (cnt) memcpy(p->target, v, cnt * sizeof(int64_t));
  } else {
    if (!has_input(n, 1))
      return camd__node_error(err, n, CAMD_E_INVALID, "input 'shape' is missing");
    if ((rc = const_ints(g, n, 1, "shape", p->target, CAMD_MAX_DIMS, &cnt, err)) < 0) return rc;
  }
  int64_t allowzero = 0;
  if (n->opset >= 14 && (rc = camd__attr_int(n, "allowzero", 0, &allowzero, err)) < 0) return rc;
  p->n = (int)cnt;
  p->allowzero = allowzero != 0;
  int minus = 0, zero = 0;
  for (int i = 0; i < p->n; i++) {
    if (p->target[i] < -1)
      return camd__node_error(err, n, CAMD_E_INVALID, "target dim %d is %lld", i,
                              (long long)p->target[i]);
    if (p->target[i] == -1) minus++;
    if (p->target[i] == 0) zero++;
  }
  if (minus > 1) return camd__node_error(err, n, CAMD_E_INVALID, "target has more than one -1");
  if (minus && zero && p->allowzero)
    return camd__node_error(err, n, CAMD_E_INVALID, "allowzero=1 with both 0 and -1 in target");
  n->params = p;
  return 0;
}

/* Resolves target entries [from, n) against `count` elements; dims 0 copy in->dims[i] unless
 * allowzero. Writes out->dims[from..n). Returns false if they do not resolve. */
static bool reshape_resolve(const reshape_params *p, const camd_shape *in, int from, int64_t count,
                            camd_shape *out) {
  int64_t known = 1;
  int infer_at = -1;
  for (int i = from; i < p->n; i++) {
    int64_t t = p->target[i];
    if (t == 0 && !p->allowzero) {
      if (i >= in->ndim) return false;
      t = in->dims[i];
    }
    if (t == -1) {
      if (infer_at >= 0) return false;
      infer_at = i;
      continue;
    }
    if (t < 0 || (t > 0 && known > INT64_MAX / t)) return false;
    out->dims[i] = t;
    known *= t;
  }
  if (infer_at >= 0) {
    if (known == 0 || count % known != 0) return false;
    out->dims[infer_at] = count / known;
  } else if (known != count) {
    return false;
  }
  return true;
}

static int reshape_infer(const camd_node *n, const camd_shape *in, camd_shape *out,
                         camd_error *err) {
  const reshape_params *p = n->params;
  int64_t count = (int64_t)camd_shape_count(&in[0]);
  out[0].ndim = p->n;
  int64_t t0 = p->n > 0 ? p->target[0] : 2;
  bool batch_rule_applies = (n->in_batched & 1u) && in[0].ndim >= 1 && in[0].dims[0] > 0 &&
                            (t0 == 1 || t0 == -1 || (t0 == 0 && !p->allowzero));
  if (batch_rule_applies) {
    int64_t batch = in[0].dims[0];
    if (reshape_resolve(p, &in[0], 1, count / batch, &out[0])) {
      out[0].dims[0] = batch;
      return 0;
    }
  }
  if (!reshape_resolve(p, &in[0], 0, count, &out[0])) {
    char a[128];
    camd_shape_format(&in[0], a, sizeof(a));
    return camd__node_error(err, n, CAMD_E_SHAPE, "cannot reshape %s to the target", a);
  }
  return 0;
}

const camd_op_desc camd__op_reshape = {.op_type = "Reshape",
                                       .opset_min = 1,
                                       .opset_max = 21,
                                       .prepare = reshape_prepare,
                                       .infer = reshape_infer,
                                       .forward = copy_forward,
                                       .backward = copy_backward,
                                       .bwd_needs_inputs = 0,
                                       .bwd_needs_outputs = false,
                                       .grad_inputs = CAMD_IN(0)};

/* ---- Squeeze / Unsqueeze ---- */

typedef struct axes_params {
  unsigned mask; /* Squeeze: input axes; Unsqueeze: output axes */
  int n_axes;
} axes_params;

/* Reads axes from the attribute (opset < 13) or the optional constant input 1. */
static int read_axes(camd_graph *g, const camd_node *n, int64_t *axes, size_t *count,
                     camd_error *err) {
  *count = 0;
  if (n->opset < 13) {
    const int64_t *v;
    int rc = camd__attr_ints(n, "axes", &v, count, err);
    if (rc < 0) return rc;
    if (*count > CAMD_MAX_DIMS)
      return camd__node_error(err, n, CAMD_E_INVALID, "too many axes (%zu)", *count);
    if (*count) memcpy(axes, v, *count * sizeof(int64_t));
    return 0;
  }
  if (!has_input(n, 1)) return 0;
  return const_ints(g, n, 1, "axes", axes, CAMD_MAX_DIMS, count, err);
}

static int squeeze_prepare(camd_graph *g, camd_node *n, camd_error *err) {
  int rank = 0, rc = data_rank(g, n, &rank, err);
  if (rc < 0) return rc;
  int64_t axes[CAMD_MAX_DIMS];
  size_t cnt;
  if ((rc = read_axes(g, n, axes, &cnt, err)) < 0) return rc;
  axes_params *p = camd__node_params_alloc(g, sizeof(*p));
  if (!p) return camd__node_error(err, n, CAMD_E_NOMEM, "out of memory");
  for (size_t i = 0; i < cnt; i++) {
    int a;
    if (!norm_axis(axes[i], rank, &a))
      return camd__node_error(err, n, CAMD_E_INVALID, "axis %lld out of range for rank %d",
                              (long long)axes[i], rank);
    if (p->mask & (1u << a)) return camd__node_error(err, n, CAMD_E_INVALID, "axis %d repeated", a);
    p->mask |= 1u << a;
  }
  p->n_axes = (int)cnt;
  n->params = p;
  return 0;
}

static int squeeze_infer(const camd_node *n, const camd_shape *in, camd_shape *out,
                         camd_error *err) {
  const axes_params *p = n->params;
  int o = 0;
  for (int d = 0; d < in[0].ndim; d++) {
    bool drop;
    if (p->n_axes > 0) {
      drop = (p->mask >> d) & 1u;
      if (drop && in[0].dims[d] != 1)
        return camd__node_error(err, n, CAMD_E_SHAPE, "cannot squeeze axis %d of size %lld", d,
                                (long long)in[0].dims[d]);
    } else {
      drop = in[0].dims[d] == 1 && !(d == 0 && (n->in_batched & 1u));
    }
    if (!drop) out[0].dims[o++] = in[0].dims[d];
  }
  out[0].ndim = o;
  return 0;
}

const camd_op_desc camd__op_squeeze = {.op_type = "Squeeze",
                                       .opset_min = 1,
                                       .opset_max = 21,
                                       .prepare = squeeze_prepare,
                                       .infer = squeeze_infer,
                                       .forward = copy_forward,
                                       .backward = copy_backward,
                                       .bwd_needs_inputs = 0,
                                       .bwd_needs_outputs = false,
                                       .grad_inputs = CAMD_IN(0)};

static int unsqueeze_prepare(camd_graph *g, camd_node *n, camd_error *err) {
  int rank = 0, rc = data_rank(g, n, &rank, err);
  if (rc < 0) return rc;
  if (n->opset >= 13 && !has_input(n, 1))
    return camd__node_error(err, n, CAMD_E_INVALID, "input 'axes' is missing");
  int64_t axes[CAMD_MAX_DIMS];
  size_t cnt;
  if ((rc = read_axes(g, n, axes, &cnt, err)) < 0) return rc;
  if (cnt == 0) return camd__node_error(err, n, CAMD_E_INVALID, "axes are missing");
  int out_rank = rank + (int)cnt;
  if (out_rank > CAMD_MAX_DIMS)
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED, "output rank %d exceeds %d", out_rank,
                            CAMD_MAX_DIMS);
  axes_params *p = camd__node_params_alloc(g, sizeof(*p));
  if (!p) return camd__node_error(err, n, CAMD_E_NOMEM, "out of memory");
  for (size_t i = 0; i < cnt; i++) {
    int a;
    if (!norm_axis(axes[i], out_rank, &a))
      return camd__node_error(err, n, CAMD_E_INVALID, "axis %lld out of range for rank %d",
                              (long long)axes[i], out_rank);
    if (p->mask & (1u << a)) return camd__node_error(err, n, CAMD_E_INVALID, "axis %d repeated", a);
    p->mask |= 1u << a;
  }
  p->n_axes = (int)cnt;
  n->params = p;
  return 0;
}

static int unsqueeze_infer(const camd_node *n, const camd_shape *in, camd_shape *out,
                           camd_error *err) {
  const axes_params *p = n->params;
  int out_rank = in[0].ndim + p->n_axes;
  if (out_rank > CAMD_MAX_DIMS)
    return camd__node_error(err, n, CAMD_E_SHAPE, "output rank %d exceeds %d", out_rank,
                            CAMD_MAX_DIMS);
  int j = 0;
  for (int d = 0; d < out_rank; d++) out[0].dims[d] = ((p->mask >> d) & 1u) ? 1 : in[0].dims[j++];
  out[0].ndim = out_rank;
  return 0;
}

const camd_op_desc camd__op_unsqueeze = {.op_type = "Unsqueeze",
                                         .opset_min = 1,
                                         .opset_max = 21,
                                         .prepare = unsqueeze_prepare,
                                         .infer = unsqueeze_infer,
                                         .forward = copy_forward,
                                         .backward = copy_backward,
                                         .bwd_needs_inputs = 0,
                                         .bwd_needs_outputs = false,
                                         .grad_inputs = CAMD_IN(0)};

/* ---- Transpose ---- */

typedef struct transpose_params {
  int rank;
  int perm[CAMD_MAX_DIMS]; /* output axis d reads input axis perm[d] */
} transpose_params;

static int transpose_prepare(camd_graph *g, camd_node *n, camd_error *err) {
  int rank = 0, rc = data_rank(g, n, &rank, err);
  if (rc < 0) return rc;
  const int64_t *perm;
  size_t cnt;
  if ((rc = camd__attr_ints(n, "perm", &perm, &cnt, err)) < 0) return rc;
  transpose_params *p = camd__node_params_alloc(g, sizeof(*p));
  if (!p) return camd__node_error(err, n, CAMD_E_NOMEM, "out of memory");
  p->rank = rank;
  if (cnt == 0) {
    for (int d = 0; d < rank; d++) p->perm[d] = rank - 1 - d;
  } else {
    if (cnt != (size_t)rank)
      return camd__node_error(err, n, CAMD_E_INVALID, "perm has %zu entries for rank %d", cnt,
                              rank);
    unsigned seen = 0;
    for (int d = 0; d < rank; d++) {
      int a;
      if (!norm_axis(perm[d], rank, &a) || (seen & (1u << a)))
        return camd__node_error(err, n, CAMD_E_INVALID, "perm is not a permutation of 0..%d",
                                rank - 1);
      seen |= 1u << a;
      p->perm[d] = a;
    }
  }
  n->params = p;
  return 0;
}

static int transpose_infer(const camd_node *n, const camd_shape *in, camd_shape *out,
                           camd_error *err) {
  const transpose_params *p = n->params;
  if (in[0].ndim != p->rank)
    return camd__node_error(err, n, CAMD_E_SHAPE, "input rank %d, expected %d", in[0].ndim,
                            p->rank);
  out[0].ndim = p->rank;
  for (int d = 0; d < p->rank; d++) out[0].dims[d] = in[0].dims[p->perm[d]];
  return 0;
}

/* Source strides of the output view: output axis d steps input axis perm[d]. */
static void transpose_view(const transpose_params *p, const camd_shape *in, int64_t *strides) {
  int64_t in_strides[CAMD_MAX_DIMS];
  camd__shape_strides(in, in_strides);
  for (int d = 0; d < p->rank; d++) strides[d] = in_strides[p->perm[d]];
}

static void transpose_forward(const camd_op_ctx *ctx) {
  const transpose_params *p = ctx->params;
  int64_t strides[CAMD_MAX_DIMS];
  transpose_view(p, &ctx->in[0].shape, strides);
  camd__strided_gather(ctx->out[0].data, ctx->in[0].data, p->rank, ctx->out[0].shape.dims, strides);
}

static void transpose_backward(const camd_op_ctx *ctx) {
  const transpose_params *p = ctx->params;
  if (!ctx->grad_in[0].data || !ctx->grad_out[0].data) return;
  int64_t strides[CAMD_MAX_DIMS];
  transpose_view(p, &ctx->in[0].shape, strides);
  camd__strided_scatter_add(ctx->grad_in[0].data, ctx->grad_out[0].data, p->rank,
                            ctx->out[0].shape.dims, strides);
}

const camd_op_desc camd__op_transpose = {.op_type = "Transpose",
                                         .opset_min = 1,
                                         .opset_max = 21,
                                         .prepare = transpose_prepare,
                                         .infer = transpose_infer,
                                         .forward = transpose_forward,
                                         .backward = transpose_backward,
                                         .bwd_needs_inputs = 0,
                                         .bwd_needs_outputs = false,
                                         .grad_inputs = CAMD_IN(0)};
