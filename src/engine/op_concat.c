/* Data-movement ops along axes: Concat, Split, Slice, Pad (constant, reflect, edge, wrap) and
 * Gather (constant indices on an activation, e.g. a transformer's class token x[:, 0]).
 *
 * All of them work on the whole batched tensor at once (no scratch). Their backward passes are
 * the adjoint copies: Concat splits the gradient, Split concatenates it (absent output
 * gradients count as zero), Slice scatters it into the sliced positions, Pad adds every output
 * gradient into the input element it was copied from (so reflect/edge/wrap positions
 * accumulate). Negative pads crop: the input is cropped first, then padded, so reflect/edge/wrap
 * read from the cropped tensor. Gather's backward adds each output row into the row it was
 * read from (repeated indices accumulate).
 */
#include <string.h>

#include "engine/op.h"
#include "engine/op_strided.h"
#include "engine/pool.h"

/* ---- shared helpers ---- */

static bool has_input(const camd_node *n, int i) {
  return i < n->n_in && n->in[i] >= 0;
}

static bool norm_axis(int64_t a, int rank, int *out) {
  if (a < -(int64_t)rank || a >= (int64_t)rank) return false;
  *out = (int)(a < 0 ? a + rank : a);
  return true;
}

/* Shape of input i at load time; error if absent. */
static int input_shape(camd_graph *g, const camd_node *n, int i, camd_shape *s, camd_dtype *dt,
                       const void **data, camd_error *err) {
  if (!has_input(n, i)) return camd__node_error(err, n, CAMD_E_INVALID, "input %d is missing", i);
  int rc = camd__node_input(g, n, i, s, dt, data);
  if (rc < 0) return camd__node_error(err, n, rc, "input %d is missing", i);
  return 0;
}

/* Copies the int64 constant input i (scalar or 1-D) into out[max]. */
static int const_ints(camd_graph *g, const camd_node *n, int i, const char *what, int64_t *out,
                      size_t max, size_t *count, camd_error *err) {
  camd_shape s;
  camd_dtype dt;
  const void *data = NULL;
  int rc = input_shape(g, n, i, &s, &dt, &data, err);
  if (rc < 0) return rc;
  if (dt != CAMD_INT64 || !data)
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED,
                            "input '%s' must be a constant int64 tensor", what);
  if (s.ndim > 1) return camd__node_error(err, n, CAMD_E_INVALID, "input '%s' must be 1-D", what);
  size_t c = camd_shape_count(&s);
  if (c > max)
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED, "input '%s' has %zu entries (max %zu)",
                            what, c, max);
  if (c) memcpy(out, data, c * sizeof(int64_t));
  *count = c;
  return 0;
}

static int float_data_rank(camd_graph *g, const camd_node *n, int *rank, camd_error *err) {
  camd_shape s;
  camd_dtype dt;
  if (n->n_in < 1 || n->n_out < 1)
    return camd__node_error(err, n, CAMD_E_INVALID, "needs at least one input and one output");
  int rc = input_shape(g, n, 0, &s, &dt, NULL, err);
  if (rc < 0) return rc;
  if (dt != CAMD_FLOAT32)
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED, "data input must be float32");
  *rank = s.ndim;
  return 0;
}

/* outer = prod(dims[:axis]), inner = prod(dims[axis+1:]). */
static void outer_inner(const camd_shape *s, int axis, size_t *outer, size_t *inner) {
  size_t o = 1, in = 1;
  for (int d = 0; d < s->ndim; d++) {
    if (d < axis)
      o *= (size_t)s->dims[d];
    else if (d > axis)
      in *= (size_t)s->dims[d];
  }
  *outer = o;
  *inner = in;
}

/* ---- Concat ---- */

typedef struct axis_params {
  int axis; /* normalized */
} axis_params;

static int concat_prepare(camd_graph *g, camd_node *n, camd_error *err) {
  int rank = 0, rc = float_data_rank(g, n, &rank, err);
  if (rc < 0) return rc;
  if (n->n_out != 1) return camd__node_error(err, n, CAMD_E_INVALID, "needs one output");
  for (int i = 0; i < n->n_in; i++) {
    camd_shape s;
    camd_dtype dt;
    if ((rc = input_shape(g, n, i, &s, &dt, NULL, err)) < 0) return rc;
    if (dt != CAMD_FLOAT32 || s.ndim != rank)
      return camd__node_error(err, n, CAMD_E_UNSUPPORTED, "input %d must be float32 of rank %d", i,
                              rank);
  }
  if (n->opset >= 4 && !camd__attr_find(n, "axis"))
    return camd__node_error(err, n, CAMD_E_INVALID, "attribute 'axis' is missing");
  int64_t axis;
  if ((rc = camd__attr_int(n, "axis", 1, &axis, err)) < 0) return rc;
  axis_params *p = camd__node_params_alloc(g, sizeof(*p));
  if (!p) return camd__node_error(err, n, CAMD_E_NOMEM, "out of memory");
  if (!norm_axis(axis, rank, &p->axis))
    return camd__node_error(err, n, CAMD_E_INVALID, "axis %lld out of range for rank %d",
                            (long long)axis, rank);
  n->params = p;
  return 0;
}

static int concat_infer(const camd_node *n, const camd_shape *in, camd_shape *out,
                        camd_error *err) {
  const axis_params *p = n->params;
  out[0] = in[0];
  for (int i = 1; i < n->n_in; i++) {
    bool ok = in[i].ndim == in[0].ndim;
    for (int d = 0; ok && d < in[0].ndim; d++)
      if (d != p->axis && in[i].dims[d] != in[0].dims[d]) ok = false;
    if (!ok) {
      char a[128], b[128];
      camd_shape_format(&in[0], a, sizeof(a));
      camd_shape_format(&in[i], b, sizeof(b));
      return camd__node_error(err, n, CAMD_E_SHAPE, "cannot concat %s and %s on axis %d", a, b,
                              p->axis);
    }
    out[0].dims[p->axis] += in[i].dims[p->axis];
  }
  return 0;
}

/* Concat as a plain copy of the output in pieces of CAMD_POOL_CHUNK floats on the session's
 * threads (DenseNet concatenates every earlier feature map before each layer): piece k covers
 * output floats [k * chunk, (k + 1) * chunk), copied from whichever inputs hold them. */
typedef struct concat_job {
  const camd_op_ctx *ctx;
  size_t row, inner, total;
  int axis;
} concat_job;

static void concat_range(void *arg, int64_t begin, int64_t end) {
  const concat_job *j = arg;
  const camd_op_ctx *ctx = j->ctx;
  size_t e = (size_t)begin;
  while (e < (size_t)end) {
    const size_t o = e / j->row, in_row = e % j->row; /* outer index, offset in its row */
    size_t off = 0;
    int i = 0;
    size_t len = (size_t)ctx->in[0].shape.dims[j->axis] * j->inner;
    while (in_row >= off + len) { /* the input that holds this offset of the row */
      off += len;
      len = (size_t)ctx->in[++i].shape.dims[j->axis] * j->inner;
    }
    size_t n = off + len - in_row; /* to the end of this input's part of the row */
    if (n > (size_t)end - e) n = (size_t)end - e;
    memcpy(ctx->out[0].data + e, ctx->in[i].data + o * len + (in_row - off), n * sizeof(float));
    e += n;
  }
}

static void concat_forward(const camd_op_ctx *ctx) {
  const axis_params *p = ctx->params;
  size_t outer, inner;
  outer_inner(&ctx->out[0].shape, p->axis, &outer, &inner);
  const size_t row = (size_t)ctx->out[0].shape.dims[p->axis] * inner;
  concat_job j = {ctx, row, inner, outer * row, p->axis};
  if (row == 0) return;
  camd__pool_range(ctx->pool, (int64_t)j.total, CAMD_POOL_CHUNK, concat_range, &j);
}

static void concat_backward(const camd_op_ctx *ctx) {
  const axis_params *p = ctx->params;
  const float *go = ctx->grad_out[0].data;
  if (!go) return;
  size_t outer, inner;
  outer_inner(&ctx->out[0].shape, p->axis, &outer, &inner);
  size_t row = (size_t)ctx->out[0].shape.dims[p->axis] * inner, off = 0;
  for (int i = 0; i < ctx->node->n_in; i++) {
    size_t len = (size_t)ctx->in[i].shape.dims[p->axis] * inner;
    float *gi = ctx->grad_in[i].data;
    if (gi) {
      for (size_t o = 0; o < outer; o++) {
        const float *s = go + o * row + off;
        float *t = gi + o * len;
        for (size_t k = 0; k < len; k++) t[k] += s[k];
      }
    }
    off += len;
  }
}

const camd_op_desc camd__op_concat = {.op_type = "Concat",
                                      .opset_min = 1,
                                      .opset_max = 21,
                                      .prepare = concat_prepare,
                                      .infer = concat_infer,
                                      .forward = concat_forward,
                                      .backward = concat_backward,
                                      .bwd_needs_inputs = 0,
                                      .bwd_needs_outputs = false,
                                      .grad_inputs = ~0u};

/* ---- Split ---- */

typedef enum split_mode { SPLIT_SIZES, SPLIT_EQUAL, SPLIT_CEIL } split_mode;

typedef struct split_params {
  int axis;
  split_mode mode;
  int64_t sizes[]; /* n_out entries when mode == SPLIT_SIZES */
} split_params;

static int split_prepare(camd_graph *g, camd_node *n, camd_error *err) {
  int rank = 0, rc = float_data_rank(g, n, &rank, err);
  if (rc < 0) return rc;
  int64_t axis;
  if ((rc = camd__attr_int(n, "axis", 0, &axis, err)) < 0) return rc;
  split_params *p = camd__node_params_alloc(g, sizeof(*p) + (size_t)n->n_out * sizeof(p->sizes[0]));
  if (!p) return camd__node_error(err, n, CAMD_E_NOMEM, "out of memory");
  if (!norm_axis(axis, rank, &p->axis))
    return camd__node_error(err, n, CAMD_E_INVALID, "axis %lld out of range for rank %d",
                            (long long)axis, rank);
  size_t cnt = 0;
  bool have_sizes = false;
  if (has_input(n, 1)) { /* opset 1 and 13+ */
    if ((rc = const_ints(g, n, 1, "split", p->sizes, (size_t)n->n_out, &cnt, err)) < 0) return rc;
    have_sizes = true;
  } else if (n->opset < 13 && camd__attr_find(n, "split")) {
    const int64_t *v;
    if ((rc = camd__attr_ints(n, "split", &v, &cnt, err)) < 0) return rc;
    if (cnt > (size_t)n->n_out)
      return camd__node_error(err, n, CAMD_E_INVALID, "'split' has %zu entries for %d outputs", cnt,
                              n->n_out);
    if (cnt) memcpy(p->sizes, v, cnt * sizeof(int64_t));
    have_sizes = true;
  }
  int64_t num_outputs = 0;
  if (n->opset >= 18 && (rc = camd__attr_int(n, "num_outputs", 0, &num_outputs, err)) < 0)
    return rc;
  if (have_sizes) {
    if (num_outputs)
      return camd__node_error(err, n, CAMD_E_INVALID, "both 'split' and 'num_outputs' given");
    if (cnt != (size_t)n->n_out)
      return camd__node_error(err, n, CAMD_E_INVALID, "'split' has %zu entries for %d outputs", cnt,
                              n->n_out);
    for (int j = 0; j < n->n_out; j++)
      if (p->sizes[j] < 0) return camd__node_error(err, n, CAMD_E_INVALID, "negative split size");
    p->mode = SPLIT_SIZES;
  } else if (num_outputs) {
    if (num_outputs != n->n_out)
      return camd__node_error(err, n, CAMD_E_INVALID, "num_outputs=%lld but %d outputs",
                              (long long)num_outputs, n->n_out);
    p->mode = SPLIT_CEIL;
  } else {
    p->mode = SPLIT_EQUAL;
  }
  n->params = p;
  return 0;
}

static int split_infer(const camd_node *n, const camd_shape *in, camd_shape *out, camd_error *err) {
  const split_params *p = n->params;
  if (p->axis >= in[0].ndim) return camd__node_error(err, n, CAMD_E_SHAPE, "axis out of range");
  int64_t dim = in[0].dims[p->axis], k = n->n_out, total = 0;
  for (int j = 0; j < n->n_out; j++) {
    int64_t size;
    if (p->mode == SPLIT_SIZES) {
      size = p->sizes[j];
    } else if (p->mode == SPLIT_EQUAL) {
      if (dim % k != 0)
        return camd__node_error(err, n, CAMD_E_SHAPE, "dim %lld is not divisible into %lld parts",
                                (long long)dim, (long long)k);
      size = dim / k;
    } else {
      int64_t chunk = (dim + k - 1) / k;
      size = j + 1 < n->n_out ? chunk : dim - chunk * (k - 1);
      if (size < 0)
        return camd__node_error(err, n, CAMD_E_SHAPE, "dim %lld cannot be split into %lld parts",
                                (long long)dim, (long long)k);
    }
    out[j] = in[0];
    out[j].dims[p->axis] = size;
    total += size;
  }
  if (total != dim)
    return camd__node_error(err, n, CAMD_E_SHAPE, "split sizes sum to %lld, axis has %lld",
                            (long long)total, (long long)dim);
  return 0;
}

static void split_forward(const camd_op_ctx *ctx) {
  const split_params *p = ctx->params;
  size_t outer, inner;
  outer_inner(&ctx->in[0].shape, p->axis, &outer, &inner);
  size_t row = (size_t)ctx->in[0].shape.dims[p->axis] * inner, off = 0;
  for (int j = 0; j < ctx->node->n_out; j++) {
    size_t len = (size_t)ctx->out[j].shape.dims[p->axis] * inner;
    float *dst = ctx->out[j].data;
    if (dst)
      for (size_t o = 0; o < outer; o++)
        memcpy(dst + o * len, ctx->in[0].data + o * row + off, len * sizeof(float));
    off += len;
  }
}

static void split_backward(const camd_op_ctx *ctx) {
  const split_params *p = ctx->params;
  float *gi = ctx->grad_in[0].data;
  if (!gi) return;
  size_t outer, inner;
  outer_inner(&ctx->in[0].shape, p->axis, &outer, &inner);
  size_t row = (size_t)ctx->in[0].shape.dims[p->axis] * inner, off = 0;
  for (int j = 0; j < ctx->node->n_out; j++) {
    size_t len = (size_t)ctx->out[j].shape.dims[p->axis] * inner;
    const float *go = ctx->grad_out[j].data;
    if (go) {
      for (size_t o = 0; o < outer; o++) {
        float *t = gi + o * row + off;
        const float *s = go + o * len;
        for (size_t k = 0; k < len; k++) t[k] += s[k];
      }
    }
    off += len;
  }
}

const camd_op_desc camd__op_split = {.op_type = "Split",
                                     .opset_min = 1,
                                     .opset_max = 21,
                                     .prepare = split_prepare,
                                     .infer = split_infer,
                                     .forward = split_forward,
                                     .backward = split_backward,
                                     .bwd_needs_inputs = 0,
                                     .bwd_needs_outputs = false,
                                     .grad_inputs = CAMD_IN(0)};

/* ---- Slice ---- */

typedef struct slice_params {
  int rank;
  int n; /* number of sliced axes */
  int axes[CAMD_MAX_DIMS];
  int64_t starts[CAMD_MAX_DIMS], ends[CAMD_MAX_DIMS], steps[CAMD_MAX_DIMS];
} slice_params;

static int slice_prepare(camd_graph *g, camd_node *n, camd_error *err) {
  int rank = 0, rc = float_data_rank(g, n, &rank, err);
  if (rc < 0) return rc;
  slice_params *p = camd__node_params_alloc(g, sizeof(*p));
  if (!p) return camd__node_error(err, n, CAMD_E_NOMEM, "out of memory");
  p->rank = rank;
  int64_t axes[CAMD_MAX_DIMS];
  size_t ns = 0, ne = 0, na = 0, nst = 0;
  bool have_axes = false, have_steps = false;
  if (n->opset < 10) {
    const int64_t *v;
    if (!camd__attr_find(n, "starts") || !camd__attr_find(n, "ends"))
      return camd__node_error(err, n, CAMD_E_INVALID, "attributes 'starts' and 'ends' needed");
    if ((rc = camd__attr_ints(n, "starts", &v, &ns, err)) < 0) return rc;
    if (ns > CAMD_MAX_DIMS) return camd__node_error(err, n, CAMD_E_INVALID, "too many starts");
    if (ns) memcpy(p->starts, v, ns * sizeof(int64_t));
    if ((rc = camd__attr_ints(n, "ends", &v, &ne, err)) < 0) return rc;
    if (ne > CAMD_MAX_DIMS) return camd__node_error(err, n, CAMD_E_INVALID, "too many ends");
    if (ne) memcpy(p->ends, v, ne * sizeof(int64_t));
    if (camd__attr_find(n, "axes")) {
      if ((rc = camd__attr_ints(n, "axes", &v, &na, err)) < 0) return rc;
      if (na > CAMD_MAX_DIMS) return camd__node_error(err, n, CAMD_E_INVALID, "too many axes");
      if (na) memcpy(axes, v, na * sizeof(int64_t));
      have_axes = true;
    }
  } else {
    if ((rc = const_ints(g, n, 1, "starts", p->starts, CAMD_MAX_DIMS, &ns, err)) < 0) return rc;
    if ((rc = const_ints(g, n, 2, "ends", p->ends, CAMD_MAX_DIMS, &ne, err)) < 0) return rc;
    if (has_input(n, 3)) {
      if ((rc = const_ints(g, n, 3, "axes", axes, CAMD_MAX_DIMS, &na, err)) < 0) return rc;
      have_axes = true;
    }
    if (has_input(n, 4)) {
      if ((rc = const_ints(g, n, 4, "steps", p->steps, CAMD_MAX_DIMS, &nst, err)) < 0) return rc;
      have_steps = true;
    }
  }
  if (ne != ns || (have_axes && na != ns) || (have_steps && nst != ns))
    return camd__node_error(err, n, CAMD_E_INVALID,
                            "starts, ends, axes and steps must have the same length");
  if (ns > (size_t)rank)
    return camd__node_error(err, n, CAMD_E_INVALID, "%zu slice entries for rank %d", ns, rank);
  unsigned seen = 0;
  for (size_t i = 0; i < ns; i++) {
    int a = (int)i;
    if (have_axes && !norm_axis(axes[i], rank, &a))
      return camd__node_error(err, n, CAMD_E_INVALID, "axis %lld out of range for rank %d",
                              (long long)axes[i], rank);
    if (seen & (1u << a)) return camd__node_error(err, n, CAMD_E_INVALID, "axis %d repeated", a);
    seen |= 1u << a;
    p->axes[i] = a;
    if (!have_steps) p->steps[i] = 1;
    if (p->steps[i] == 0) return camd__node_error(err, n, CAMD_E_INVALID, "step is 0");
  }
  p->n = (int)ns;
  n->params = p;
  return 0;
}

/* Effective start, step and length of the slice along every axis of `in` (ONNX clamping). */
static void slice_resolve(const slice_params *p, const camd_shape *in, int64_t *start,
                          int64_t *step, int64_t *len) {
  for (int d = 0; d < in->ndim; d++) {
    start[d] = 0;
    step[d] = 1;
    len[d] = in->dims[d];
  }
  for (int i = 0; i < p->n; i++) {
    int d = p->axes[i];
    int64_t dim = in->dims[d], st = p->steps[i];
    int64_t s = p->starts[i], e = p->ends[i];
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    int64_t l;
    if (st > 0) {
      s = s < 0 ? 0 : (s > dim ? dim : s);
      e = e < 0 ? 0 : (e > dim ? dim : e);
      l = e > s ? (e - s - 1) / st + 1 : 0;
    } else {
      s = s < 0 ? 0 : (s > dim - 1 ? dim - 1 : s);
      e = e < -1 ? -1 : (e > dim - 1 ? dim - 1 : e);
      /* -st overflows for INT64_MIN; any step beyond the range takes one element */
      l = s > e ? (st < -dim ? 1 : (s - e - 1) / (-st) + 1) : 0;
    }
    start[d] = l > 0 ? s : 0;
    step[d] = l > 1 ? st : 1;
    len[d] = l;
  }
}

static int slice_infer(const camd_node *n, const camd_shape *in, camd_shape *out, camd_error *err) {
  const slice_params *p = n->params;
  if (in[0].ndim != p->rank)
    return camd__node_error(err, n, CAMD_E_SHAPE, "input rank %d, expected %d", in[0].ndim,
                            p->rank);
  int64_t start[CAMD_MAX_DIMS], step[CAMD_MAX_DIMS];
  out[0].ndim = in[0].ndim;
  slice_resolve(p, &in[0], start, step, out[0].dims);
  return 0;
}

/* Base offset and per-output-axis source strides of the slice view. */
static int64_t slice_view(const slice_params *p, const camd_shape *in, int64_t *strides) {
  int64_t start[CAMD_MAX_DIMS], step[CAMD_MAX_DIMS], len[CAMD_MAX_DIMS], in_strides[CAMD_MAX_DIMS];
  slice_resolve(p, in, start, step, len);
  camd__shape_strides(in, in_strides);
  int64_t base = 0;
  for (int d = 0; d < in->ndim; d++) {
    base += start[d] * in_strides[d];
    strides[d] = step[d] * in_strides[d];
  }
  return base;
}

static void slice_forward(const camd_op_ctx *ctx) {
  const slice_params *p = ctx->params;
  if (camd_shape_count(&ctx->out[0].shape) == 0) return;
  int64_t strides[CAMD_MAX_DIMS];
  int64_t base = slice_view(p, &ctx->in[0].shape, strides);
  camd__strided_gather(ctx->out[0].data, ctx->in[0].data + base, ctx->out[0].shape.ndim,
                       ctx->out[0].shape.dims, strides);
}

static void slice_backward(const camd_op_ctx *ctx) {
  const slice_params *p = ctx->params;
  if (!ctx->grad_in[0].data || !ctx->grad_out[0].data) return;
  if (camd_shape_count(&ctx->out[0].shape) == 0) return;
  int64_t strides[CAMD_MAX_DIMS];
  int64_t base = slice_view(p, &ctx->in[0].shape, strides);
  camd__strided_scatter_add(ctx->grad_in[0].data + base, ctx->grad_out[0].data,
                            ctx->out[0].shape.ndim, ctx->out[0].shape.dims, strides);
}

const camd_op_desc camd__op_slice = {.op_type = "Slice",
                                     .opset_min = 1,
                                     .opset_max = 21,
                                     .prepare = slice_prepare,
                                     .infer = slice_infer,
                                     .forward = slice_forward,
                                     .backward = slice_backward,
                                     .bwd_needs_inputs = 0,
                                     .bwd_needs_outputs = false,
                                     .grad_inputs = CAMD_IN(0)};

/* ---- Pad ---- */

typedef enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP } pad_mode;

typedef struct pad_params {
  int rank;
  pad_mode mode;
  float value;
  int64_t begin[CAMD_MAX_DIMS], end[CAMD_MAX_DIMS]; /* per axis; negative = crop */
} pad_params;

static int pad_prepare(camd_graph *g, camd_node *n, camd_error *err) {
  int rank = 0, rc = float_data_rank(g, n, &rank, err);
  if (rc < 0) return rc;
  pad_params *p = camd__node_params_alloc(g, sizeof(*p));
  if (!p) return camd__node_error(err, n, CAMD_E_NOMEM, "out of memory");
  p->rank = rank;
  const char *mode = camd__attr_string(n, "mode", "constant");
  if (strcmp(mode, "constant") == 0)
    p->mode = PAD_CONSTANT;
  else if (strcmp(mode, "reflect") == 0)
    p->mode = PAD_REFLECT;
  else if (strcmp(mode, "edge") == 0)
    p->mode = PAD_EDGE;
  else if (strcmp(mode, "wrap") == 0 && n->opset >= 19)
    p->mode = PAD_WRAP;
  else
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED, "unsupported mode '%s'", mode);

  int64_t pads[2 * CAMD_MAX_DIMS], axes_v[CAMD_MAX_DIMS];
  size_t np = 0, na = 0;
  bool have_axes = false;
  if (n->opset < 11) {
    const int64_t *v;
    if (!camd__attr_find(n, "pads"))
      return camd__node_error(err, n, CAMD_E_INVALID, "attribute 'pads' is missing");
    if ((rc = camd__attr_ints(n, "pads", &v, &np, err)) < 0) return rc;
    if (np > 2 * CAMD_MAX_DIMS) return camd__node_error(err, n, CAMD_E_INVALID, "too many pads");
    if (np) memcpy(pads, v, np * sizeof(int64_t));
    if ((rc = camd__attr_float(n, "value", 0.0f, &p->value, err)) < 0) return rc;
  } else {
    if ((rc = const_ints(g, n, 1, "pads", pads, 2 * CAMD_MAX_DIMS, &np, err)) < 0) return rc;
    if (has_input(n, 2)) {
      camd_shape s;
      camd_dtype dt;
      const void *data = NULL;
      if ((rc = input_shape(g, n, 2, &s, &dt, &data, err)) < 0) return rc;
      if (dt != CAMD_FLOAT32 || !data || camd_shape_count(&s) != 1)
        return camd__node_error(err, n, CAMD_E_UNSUPPORTED,
                                "constant_value must be a constant float32 scalar");
      p->value = *(const float *)data;
    }
    if (n->opset >= 18 && has_input(n, 3)) {
      if ((rc = const_ints(g, n, 3, "axes", axes_v, CAMD_MAX_DIMS, &na, err)) < 0) return rc;
      have_axes = true;
    }
  }
  size_t n_axes = have_axes ? na : (size_t)rank;
  if (np != 2 * n_axes)
    return camd__node_error(err, n, CAMD_E_INVALID, "pads has %zu entries, expected %zu", np,
                            2 * n_axes);
  unsigned seen = 0;
  for (size_t i = 0; i < n_axes; i++) {
    int a = (int)i;
    if (have_axes && !norm_axis(axes_v[i], rank, &a))
      return camd__node_error(err, n, CAMD_E_INVALID, "axis %lld out of range for rank %d",
                              (long long)axes_v[i], rank);
    if (seen & (1u << a)) return camd__node_error(err, n, CAMD_E_INVALID, "axis %d repeated", a);
    seen |= 1u << a;
    p->begin[a] = pads[i];
    p->end[a] = pads[i + n_axes];
  }
  n->params = p;
  return 0;
}

static int pad_infer(const camd_node *n, const camd_shape *in, camd_shape *out, camd_error *err) {
  const pad_params *p = n->params;
  if (in[0].ndim != p->rank)
    return camd__node_error(err, n, CAMD_E_SHAPE, "input rank %d, expected %d", in[0].ndim,
                            p->rank);
  out[0].ndim = p->rank;
  for (int d = 0; d < p->rank; d++) {
    int64_t dim = in[0].dims[d], b = p->begin[d], e = p->end[d];
    int64_t kept = dim - (b < 0 ? -b : 0) - (e < 0 ? -e : 0);
    int64_t o = dim + b + e;
    if (kept < 0 || o < 0)
      return camd__node_error(err, n, CAMD_E_SHAPE, "pads crop more than axis %d holds", d);
    if (kept == 0 && o > 0 && p->mode != PAD_CONSTANT)
      return camd__node_error(err, n, CAMD_E_SHAPE, "cannot pad empty axis %d in this mode", d);
    out[0].dims[d] = o;
  }
  return 0;
}

/* Input index along one axis for output index o, or -1 for a constant fill. */
static int64_t pad_map(pad_mode mode, int64_t o, int64_t dim, int64_t b, int64_t e) {
  int64_t crop_b = b < 0 ? -b : 0, pad_b = b > 0 ? b : 0;
  int64_t len = dim - crop_b - (e < 0 ? -e : 0);
  int64_t j = o - pad_b;
  if (j >= 0 && j < len) return crop_b + j;
  switch (mode) {
    case PAD_CONSTANT:
      return -1;
    case PAD_EDGE:
      j = j < 0 ? 0 : len - 1;
      break;
    case PAD_REFLECT:
      if (len == 1) {
        j = 0;
      } else {
        int64_t period = 2 * (len - 1);
        j %= period;
        if (j < 0) j += period;
        if (j >= len) j = period - j;
      }
      break;
    case PAD_WRAP:
      j %= len;
      if (j < 0) j += len;
      break;
  }
  return crop_b + j;
}

/* Walks every output row (all axes but the last) and calls the row kernel with, per output
 * index of the last axis, the mapped input offset or -1. forward=true copies, else adds the
 * gradient back. */
static void pad_run(const pad_params *p, const camd_shape *is, const camd_shape *os,
                    const float *src, float *dst, bool forward) {
  int r = p->rank;
  if (camd_shape_count(os) == 0) return;
  if (r == 0) {
    if (forward)
      dst[0] = src[0];
    else
      dst[0] += src[0];
    return;
  }
  int64_t in_strides[CAMD_MAX_DIMS];
  camd__shape_strides(is, in_strides);
  int64_t inner = os->dims[r - 1], rows = 1;
  for (int d = 0; d + 1 < r; d++) rows *= os->dims[d];
  int64_t idx[CAMD_MAX_DIMS] = {0};
  int last = r - 1;
  for (int64_t row = 0; row < rows; row++) {
    int64_t base = 0;
    bool fill = false;
    for (int d = 0; d < last; d++) {
      int64_t m = pad_map(p->mode, idx[d], is->dims[d], p->begin[d], p->end[d]);
      if (m < 0) {
        fill = true;
        break;
      }
      base += m * in_strides[d];
    }
    size_t o = (size_t)(row * inner);
    if (forward) {
      float *t = dst + o;
      if (fill) {
        for (int64_t k = 0; k < inner; k++) t[k] = p->value;
      } else {
        for (int64_t k = 0; k < inner; k++) {
          int64_t m = pad_map(p->mode, k, is->dims[last], p->begin[last], p->end[last]);
          t[k] = m < 0 ? p->value : src[base + m];
        }
      }
    } else if (!fill) {
      const float *g = src + o;
      for (int64_t k = 0; k < inner; k++) {
        int64_t m = pad_map(p->mode, k, is->dims[last], p->begin[last], p->end[last]);
        if (m >= 0) dst[base + m] += g[k];
      }
    }
    for (int d = last - 1; d >= 0; d--) {
      if (++idx[d] < os->dims[d]) break;
      idx[d] = 0;
    }
  }
}

static void pad_forward(const camd_op_ctx *ctx) {
  pad_run(ctx->params, &ctx->in[0].shape, &ctx->out[0].shape, ctx->in[0].data, ctx->out[0].data,
          true);
}

static void pad_backward(const camd_op_ctx *ctx) {
  if (!ctx->grad_in[0].data || !ctx->grad_out[0].data) return;
  pad_run(ctx->params, &ctx->in[0].shape, &ctx->out[0].shape, ctx->grad_out[0].data,
          ctx->grad_in[0].data, false);
}

const camd_op_desc camd__op_pad = {.op_type = "Pad",
                                   .opset_min = 2,
                                   .opset_max = 21,
                                   .prepare = pad_prepare,
                                   .infer = pad_infer,
                                   .forward = pad_forward,
                                   .backward = pad_backward,
                                   .bwd_needs_inputs = 0,
                                   .bwd_needs_outputs = false,
                                   .grad_inputs = CAMD_IN(0)};

/* ---- Gather (opset 1..22) on an activation, with constant int64 indices ----
 * Output dims: data[:axis] + indices + data[axis+1:]. Along axis 0 of a batched value (the batch
 * axis, or what a Transpose moved there, as Swin's qkv[0]) the size must stay the load-time one:
 * at batch 2 infer fails, so the graph's batch check runs the model one image at a time.
 * Gather on constants folds at load (onnx_fold.c) and never reaches the engine. */
typedef struct gather_params {
  int axis;    /* normalized */
  int64_t dim; /* data's size along axis (fixed: not the batch axis) */
  camd_shape ishape;
  size_t count;
  int64_t *idx; /* count indices, normalized to [0, dim) */
} gather_params;

static int gather_prepare(camd_graph *g, camd_node *n, camd_error *err) {
  int rank = 0, rc = float_data_rank(g, n, &rank, err);
  if (rc < 0) return rc;
  if (n->n_in != 2 || n->n_out != 1)
    return camd__node_error(err, n, CAMD_E_INVALID, "expects inputs data, indices and one output");
  camd_shape ds, is;
  camd_dtype dt;
  const void *data = NULL;
  if ((rc = input_shape(g, n, 0, &ds, &dt, NULL, err)) < 0) return rc;
  if ((rc = input_shape(g, n, 1, &is, &dt, &data, err)) < 0) return rc;
  if (dt != CAMD_INT64 || !data || !(n->in_const & CAMD_IN(1)))
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED,
                            "input 'indices' must be a constant integer tensor (computed indices "
                            "are not supported)");
  int64_t axis;
  if ((rc = camd__attr_int(n, "axis", 0, &axis, err)) < 0) return rc;
  int ax;
  if (!norm_axis(axis, rank, &ax))
    return camd__node_error(err, n, CAMD_E_INVALID, "axis %lld out of range for rank %d",
                            (long long)axis, rank);
  if (rank - 1 + is.ndim > CAMD_MAX_DIMS)
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED, "result would have more than %d dimensions",
                            CAMD_MAX_DIMS);
  size_t count = camd_shape_count(&is);
  gather_params *p = camd__node_params_alloc(g, sizeof(*p) + count * sizeof(int64_t));
  if (!p) return camd__node_error(err, n, CAMD_E_NOMEM, "out of memory");
  p->axis = ax;
  p->dim = ds.dims[ax];
  p->ishape = is;
  p->count = count;
  p->idx = (int64_t *)(p + 1);
  const int64_t *iv = data;
  for (size_t k = 0; k < count; k++) {
    int64_t v = iv[k] < 0 ? iv[k] + p->dim : iv[k];
    if (v < 0 || v >= p->dim)
      return camd__node_error(err, n, CAMD_E_INVALID,
                              "index %lld is out of range for axis of size %lld", (long long)iv[k],
                              (long long)p->dim);
    p->idx[k] = v;
  }
  n->params = p;
  return 0;
}

static int gather_infer(const camd_node *n, const camd_shape *in, camd_shape *out,
                        camd_error *err) {
  const gather_params *p = n->params;
  if (in[0].ndim <= p->axis || in[0].dims[p->axis] != p->dim) {
    char a[128];
    camd_shape_format(&in[0], a, sizeof(a));
    return camd__node_error(err, n, CAMD_E_SHAPE,
                            "data %s does not match the shape the node was loaded with", a);
  }
  int o = 0;
  for (int d = 0; d < p->axis; d++) out[0].dims[o++] = in[0].dims[d];
  for (int d = 0; d < p->ishape.ndim; d++) out[0].dims[o++] = p->ishape.dims[d];
  for (int d = p->axis + 1; d < in[0].ndim; d++) out[0].dims[o++] = in[0].dims[d];
  out[0].ndim = o;
  return 0;
}

static void gather_forward(const camd_op_ctx *ctx) {
  const gather_params *p = ctx->params;
  size_t outer, inner;
  outer_inner(&ctx->in[0].shape, p->axis, &outer, &inner);
  const float *x = ctx->in[0].data;
  float *y = ctx->out[0].data;
  for (size_t o = 0; o < outer; o++) {
    for (size_t j = 0; j < p->count; j++) {
      memcpy(y + (o * p->count + j) * inner, x + (o * (size_t)p->dim + (size_t)p->idx[j]) * inner,
             inner * sizeof(float));
    }
  }
}

static void gather_backward(const camd_op_ctx *ctx) {
  const gather_params *p = ctx->params;
  const float *go = ctx->grad_out[0].data;
  float *gi = ctx->grad_in[0].data;
  if (!go || !gi) return;
  size_t outer, inner;
  outer_inner(&ctx->in[0].shape, p->axis, &outer, &inner);
  for (size_t o = 0; o < outer; o++) {
    for (size_t j = 0; j < p->count; j++) {
      const float *s = go + (o * p->count + j) * inner;
      float *t = gi + (o * (size_t)p->dim + (size_t)p->idx[j]) * inner;
      for (size_t k = 0; k < inner; k++) t[k] += s[k];
    }
  }
}

const camd_op_desc camd__op_gather = {.op_type = "Gather",
                                      .opset_min = 1,
                                      .opset_max = 22,
                                      .prepare = gather_prepare,
                                      .infer = gather_infer,
                                      .forward = gather_forward,
                                      .backward = gather_backward,
                                      .bwd_needs_inputs = 0,
                                      .bwd_needs_outputs = false,
                                      .grad_inputs = CAMD_IN(0)};
