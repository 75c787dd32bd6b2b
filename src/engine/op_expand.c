/* Run-time broadcasting ops: Expand (numpy broadcast to a constant shape), Tile (constant
 * repeats) and Where (a constant condition choosing between X and Y, both broadcast).
 *
 * The loader folds all three when every input is a constant; these kernels run them on
 * activations. The shape, the repeats and the condition must be constants at load time (camd has
 * no run-time int64 or bool tensors): a data-dependent one fails the load in prepare. Each op is a
 * strided walk over its dense output (a camd__bc_loop, op_bcast.h); each backward adds the output
 * gradient back through the same walk, so the gradient of an input is summed over the axes it was
 * broadcast or repeated along.
 */
#include <string.h>

#include "engine/op.h"
#include "engine/op_bcast.h"

/* ---- strided walks over the dense output (camd__bc_loop, op_bcast.h) ---- */

/* One-operand walk of a plain broadcast (Expand): operand 0 is the input. */
static void walk_bcast(camd__bc_loop *w, const camd_shape *in, const camd_shape *out) {
  int64_t st[CAMD_BC_MAX_OPS][CAMD_BC_MAX_DIMS];
  camd__bc_strides(in, out->ndim, out->dims, st[0]);
  camd__bc_setup(w, out->ndim, out->dims, 1, st);
}

/* Copies operand 0 of a one-operand walk into the dense output. */
static void walk_copy(const camd__bc_loop *w, const float *in, float *out) {
  const int64_t n = w->dims[w->nd - 1], s = w->st[0][w->nd - 1], rows = camd__bc_rows(w);
  int64_t idx[CAMD_BC_MAX_DIMS] = {0}, off[CAMD_BC_MAX_OPS] = {0};
  for (int64_t r = 0; r < rows; r++) {
    const float *a = in + off[0];
    float *o = out + r * n;
    if (s == 1) {
      memcpy(o, a, sizeof(float) * (size_t)n);
    } else {
      for (int64_t i = 0; i < n; i++) o[i] = a[i * s];
    }
    camd__bc_next(w, 1, idx, off);
  }
}

/* Adds the dense output gradient g back into operand 0's gradient t (sum over the repeats). */
static void walk_add_back(const camd__bc_loop *w, const float *g, float *t) {
  const int64_t n = w->dims[w->nd - 1], s = w->st[0][w->nd - 1], rows = camd__bc_rows(w);
  int64_t idx[CAMD_BC_MAX_DIMS] = {0}, off[CAMD_BC_MAX_OPS] = {0};
  for (int64_t r = 0; r < rows; r++) {
    const float *gr = g + r * n;
    float *tr = t + off[0];
    if (s == 0) {
      double sum = 0;
      for (int64_t i = 0; i < n; i++) sum += gr[i];
      tr[0] += (float)sum;
    } else {
      for (int64_t i = 0; i < n; i++) tr[i * s] += gr[i];
    }
    camd__bc_next(w, 1, idx, off);
  }
}

/* ---- shared prepare helpers ---- */

static int check_io(const camd_node *n, int n_in, camd_error *err) {
  if (n->n_in != n_in || n->n_out != 1)
    return camd__node_error(err, n, CAMD_E_INVALID, "expects %d inputs and 1 output, got %d and %d",
                            n_in, n->n_in, n->n_out);
  for (int i = 0; i < n_in; i++) {
    if (n->in[i] < 0) return camd__node_error(err, n, CAMD_E_INVALID, "input %d is missing", i);
  }
  return 0;
}

static int check_float(camd_graph *g, const camd_node *n, int i, const char *what,
                       camd_error *err) {
  camd_shape s;
  camd_dtype dt;
  int rc = camd__node_input(g, n, i, &s, &dt, NULL);
  if (rc) return camd__node_error(err, n, rc, "input '%s' is missing", what);
  if (dt != CAMD_FLOAT32)
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED,
                            "input '%s' is not float32 (integer tensors are only supported when "
                            "the loader folds them)",
                            what);
  return 0;
}

/* Copies the constant 1-D int64 input i into out[CAMD_MAX_DIMS]; *count receives its length. */
static int const_dims(camd_graph *g, const camd_node *n, int i, const char *what, int64_t *out,
                      int *count, camd_error *err) {
  camd_shape s;
  camd_dtype dt;
  const void *data = NULL;
  int rc = camd__node_input(g, n, i, &s, &dt, &data);
  if (rc) return camd__node_error(err, n, rc, "input '%s' is missing", what);
  if (dt != CAMD_INT64 || !data)
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED,
                            "input '%s' must be a constant int64 tensor at load time (a "
                            "data-dependent %s is not supported)",
                            what, what);
  if (s.ndim != 1)
    return camd__node_error(err, n, CAMD_E_INVALID, "input '%s' must be 1-D (has %d dims)", what,
                            s.ndim);
  if (s.dims[0] > CAMD_MAX_DIMS)
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED, "input '%s' has %lld entries (max %d)",
                            what, (long long)s.dims[0], CAMD_MAX_DIMS);
  const int64_t *v = data;
  for (int64_t k = 0; k < s.dims[0]; k++) {
    if (v[k] < 0)
      return camd__node_error(err, n, CAMD_E_INVALID, "input '%s' has a negative entry %lld", what,
                              (long long)v[k]);
    out[k] = v[k];
  }
  *count = (int)s.dims[0];
  return 0;
}

static void format_shapes(const camd_shape *a, const camd_shape *b, char *sa, char *sb,
                          size_t size) {
  camd_shape_format(a, sa, size);
  camd_shape_format(b, sb, size);
}

/* ---- Expand ---- */

typedef struct expand_params {
  camd_shape shape; /* the constant target shape */
} expand_params;

static int expand_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  int rc = check_io(node, 2, err);
  if (!rc) rc = check_float(g, node, 0, "input", err);
  if (rc) return rc;
  expand_params *p = camd__node_params_alloc(g, sizeof *p);
  if (!p) return camd__node_error(err, node, CAMD_E_NOMEM, "out of memory");
  rc = const_dims(g, node, 1, "shape", p->shape.dims, &p->shape.ndim, err);
  if (rc) return rc;
  node->params = p;
  return 0;
}

static int expand_infer(const camd_node *node, const camd_shape *in, camd_shape *out,
                        camd_error *err) {
  const expand_params *p = node->params;
  if (camd__broadcast_shape(&in[0], &p->shape, &out[0]) != 0) {
    char sa[128], sb[128];
    format_shapes(&in[0], &p->shape, sa, sb, sizeof sa);
    return camd__node_error(err, node, CAMD_E_SHAPE, "cannot broadcast input %s to shape %s", sa,
                            sb);
  }
  return 0;
}

static void expand_forward(const camd_op_ctx *ctx) {
  camd__bc_loop w;
  walk_bcast(&w, &ctx->in[0].shape, &ctx->out[0].shape);
  walk_copy(&w, ctx->in[0].data, ctx->out[0].data);
}

static void expand_backward(const camd_op_ctx *ctx) {
  if (!ctx->grad_out[0].data || !ctx->grad_in[0].data) return;
  camd__bc_loop w;
  walk_bcast(&w, &ctx->in[0].shape, &ctx->out[0].shape);
  walk_add_back(&w, ctx->grad_out[0].data, ctx->grad_in[0].data);
}

/* Opset 8 (numpy broadcasting); 13 only adds types. */
const camd_op_desc camd__op_expand = {.op_type = "Expand",
                                      .opset_min = 8,
                                      .opset_max = 22,
                                      .prepare = expand_prepare,
                                      .infer = expand_infer,
                                      .forward = expand_forward,
                                      .backward = expand_backward,
                                      .bwd_needs_inputs = 0,
                                      .bwd_needs_outputs = false,
                                      .grad_inputs = CAMD_IN(0)};

/* ---- Tile ---- */

typedef struct tile_params {
  int64_t repeats[CAMD_MAX_DIMS];
  int rank;
} tile_params;

static int tile_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  int rc = check_io(node, 2, err);
  if (!rc) rc = check_float(g, node, 0, "input", err);
  if (rc) return rc;
  tile_params *p = camd__node_params_alloc(g, sizeof *p);
  if (!p) return camd__node_error(err, node, CAMD_E_NOMEM, "out of memory");
  rc = const_dims(g, node, 1, "repeats", p->repeats, &p->rank, err);
  if (rc) return rc;
  node->params = p;
  return 0;
}

static int tile_infer(const camd_node *node, const camd_shape *in, camd_shape *out,
                      camd_error *err) {
  const tile_params *p = node->params;
  if (in[0].ndim != p->rank)
    return camd__node_error(err, node, CAMD_E_SHAPE,
                            "repeats has %d entries but the input has rank %d", p->rank,
                            in[0].ndim);
  out[0].ndim = p->rank;
  for (int d = 0; d < p->rank; d++) {
    if (p->repeats[d] > 0 && in[0].dims[d] > INT64_MAX / p->repeats[d])
      return camd__node_error(err, node, CAMD_E_LIMIT, "output axis %d is too large", d);
    out[0].dims[d] = in[0].dims[d] * p->repeats[d];
  }
  return 0;
}

/* Output axis d of length r·n is walked as (repeat r, element n): the repeat axis has stride 0
 * into the input. */
static void tile_walk(camd__bc_loop *w, const tile_params *p, const camd_shape *in) {
  int64_t it[CAMD_BC_MAX_DIMS], st[CAMD_BC_MAX_OPS][CAMD_BC_MAX_DIMS], in_st[CAMD_MAX_DIMS];
  camd__shape_strides(in, in_st);
  for (int d = 0; d < p->rank; d++) {
    it[2 * d] = p->repeats[d];
    st[0][2 * d] = 0;
    it[2 * d + 1] = in->dims[d];
    st[0][2 * d + 1] = in_st[d];
  }
  camd__bc_setup(w, 2 * p->rank, it, 1, st);
}

static void tile_forward(const camd_op_ctx *ctx) {
  camd__bc_loop w;
  tile_walk(&w, ctx->params, &ctx->in[0].shape);
  walk_copy(&w, ctx->in[0].data, ctx->out[0].data);
}

static void tile_backward(const camd_op_ctx *ctx) {
  if (!ctx->grad_out[0].data || !ctx->grad_in[0].data) return;
  camd__bc_loop w;
  tile_walk(&w, ctx->params, &ctx->in[0].shape);
  walk_add_back(&w, ctx->grad_out[0].data, ctx->grad_in[0].data);
}

/* Opset 6 (repeats input; opset 1's tiles/axis inputs are not supported); 13 only adds types. */
const camd_op_desc camd__op_tile = {.op_type = "Tile",
                                    .opset_min = 6,
                                    .opset_max = 22,
                                    .prepare = tile_prepare,
                                    .infer = tile_infer,
                                    .forward = tile_forward,
                                    .backward = tile_backward,
                                    .bwd_needs_inputs = 0,
                                    .bwd_needs_outputs = false,
                                    .grad_inputs = CAMD_IN(0)};

/* ---- Where ---- */

typedef struct where_params {
  camd_shape cond_shape;
  const unsigned char *cond; /* 0 / 1 per element of the constant condition (graph-owned) */
} where_params;

static int where_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  int rc = check_io(node, 3, err);
  if (!rc) rc = check_float(g, node, 1, "X", err);
  if (!rc) rc = check_float(g, node, 2, "Y", err);
  if (rc) return rc;
  camd_shape s;
  camd_dtype dt;
  const void *data = NULL;
  rc = camd__node_input(g, node, 0, &s, &dt, &data);
  if (rc) return camd__node_error(err, node, rc, "input 'condition' is missing");
  /* The loader stores bool constants as int64 0 / 1; camd has no run-time bool tensors. */
  if (!data)
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                            "input 'condition' must be a constant at load time (camd has no "
                            "run-time bool tensors)");
  if (dt != CAMD_INT64)
    return camd__node_error(err, node, CAMD_E_INVALID, "input 'condition' must be bool");
  size_t n = camd_shape_count(&s);
  where_params *p = camd__node_params_alloc(g, sizeof *p + (n ? n : 1));
  if (!p) return camd__node_error(err, node, CAMD_E_NOMEM, "out of memory");
  unsigned char *c = (unsigned char *)(p + 1);
  for (size_t k = 0; k < n; k++) c[k] = ((const int64_t *)data)[k] != 0;
  p->cond_shape = s;
  p->cond = c;
  node->params = p;
  return 0;
}

static int where_infer(const camd_node *node, const camd_shape *in, camd_shape *out,
                       camd_error *err) {
  const where_params *p = node->params;
  camd_shape t;
  if (camd__broadcast_shape(&p->cond_shape, &in[1], &t) != 0 ||
      camd__broadcast_shape(&t, &in[2], &out[0]) != 0) {
    char sc[128], sx[128], sy[128];
    camd_shape_format(&p->cond_shape, sc, sizeof sc);
    format_shapes(&in[1], &in[2], sx, sy, sizeof sx);
    return camd__node_error(err, node, CAMD_E_SHAPE,
                            "condition %s, X %s and Y %s do not broadcast together", sc, sx, sy);
  }
  return 0;
}

/* Three-operand walk: condition, X, Y. */
static void where_walk(camd__bc_loop *w, const camd_op_ctx *ctx) {
  const where_params *p = ctx->params;
  const camd_shape *o = &ctx->out[0].shape;
  int64_t st[CAMD_BC_MAX_OPS][CAMD_BC_MAX_DIMS];
  camd__bc_strides(&p->cond_shape, o->ndim, o->dims, st[0]);
  camd__bc_strides(&ctx->in[1].shape, o->ndim, o->dims, st[1]);
  camd__bc_strides(&ctx->in[2].shape, o->ndim, o->dims, st[2]);
  camd__bc_setup(w, o->ndim, o->dims, 3, st);
}

static void where_forward(const camd_op_ctx *ctx) {
  const where_params *p = ctx->params;
  camd__bc_loop w;
  where_walk(&w, ctx);
  const float *x = ctx->in[1].data, *y = ctx->in[2].data;
  float *o = ctx->out[0].data;
  const int64_t n = w.dims[w.nd - 1], sc = w.st[0][w.nd - 1], sx = w.st[1][w.nd - 1],
                sy = w.st[2][w.nd - 1], rows = camd__bc_rows(&w);
  int64_t idx[CAMD_BC_MAX_DIMS] = {0}, off[CAMD_BC_MAX_OPS] = {0};
  for (int64_t r = 0; r < rows; r++) {
    const unsigned char *c = p->cond + off[0];
    const float *xr = x + off[1], *yr = y + off[2];
    float *orow = o + r * n;
    for (int64_t i = 0; i < n; i++) orow[i] = c[i * sc] ? xr[i * sx] : yr[i * sy];
    camd__bc_next(&w, 3, idx, off);
  }
}

/* X's gradient is the output gradient where the condition holds, Y's where it does not; each
 * summed over the axes that input was broadcast along. */
static void where_backward(const camd_op_ctx *ctx) {
  if (!ctx->grad_out[0].data) return;
  if (!ctx->grad_in[1].data && !ctx->grad_in[2].data) return;
  const where_params *p = ctx->params;
  camd__bc_loop w;
  where_walk(&w, ctx);
  const float *g = ctx->grad_out[0].data;
  const int64_t n = w.dims[w.nd - 1], sc = w.st[0][w.nd - 1], rows = camd__bc_rows(&w);
  for (int which = 1; which <= 2; which++) {
    float *t = ctx->grad_in[which].data;
    if (!t) continue;
    const unsigned char want = which == 1;
    const int64_t s = w.st[which][w.nd - 1];
    int64_t idx[CAMD_BC_MAX_DIMS] = {0}, off[CAMD_BC_MAX_OPS] = {0};
    for (int64_t r = 0; r < rows; r++) {
      const unsigned char *c = p->cond + off[0];
      const float *gr = g + r * n;
      float *tr = t + off[which];
      if (s == 0) {
        double sum = 0;
        for (int64_t i = 0; i < n; i++) sum += c[i * sc] == want ? gr[i] : 0.f;
        tr[0] += (float)sum;
      } else {
        for (int64_t i = 0; i < n; i++) {
          if (c[i * sc] == want) tr[i * s] += gr[i];
        }
      }
      camd__bc_next(&w, 3, idx, off);
    }
  }
}

/* Opset 9 (numpy broadcasting); 16 only adds types. */
const camd_op_desc camd__op_where = {.op_type = "Where",
                                     .opset_min = 9,
                                     .opset_max = 22,
                                     .prepare = where_prepare,
                                     .infer = where_infer,
                                     .forward = where_forward,
                                     .backward = where_backward,
                                     .bwd_needs_inputs = 0,
                                     .bwd_needs_outputs = false,
                                     .grad_inputs = CAMD_IN(1) | CAMD_IN(2)};
