/* Load-time constant evaluator: folds ONNX shape sub-graphs (Shape, Gather, Concat, ...) and
 * other nodes whose inputs are all constants into engine constants (int64 / float32).
 *
 * Every folded output is added to the graph under its ONNX name with camd_graph_add_constant,
 * so later nodes (and the engine's Reshape) see plain constants. Results are capped at
 * CAMD__ONNX_MAX_FOLD_ELEMS elements. Bools are represented as int64 0/1.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "onnx/onnx_fold.h"

/* ---- shared helpers (onnx_fold.h) ---- */

int camd__fold_err(camd__fold *f, int status, const char *fmt, ...) {
  char msg[CAMD_ERROR_MESSAGE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  return camd_error_set(f->err, status, "node '%s' (%s): %s", f->name,
                        camd__onnx_str(f->node->op_type), msg);
}

size_t camd__fold_esize(camd_dtype d) {
  return d == CAMD_INT64 ? 8 : 4;
}

const Onnx__AttributeProto *camd__fold_attr(const Onnx__NodeProto *n, const char *name) {
  for (size_t k = 0; k < n->n_attribute; k++) {
    if (n->attribute[k]->name && strcmp(n->attribute[k]->name, name) == 0) return n->attribute[k];
  }
  return NULL;
}

int camd__fold_attr_int(camd__fold *f, const char *name, int64_t def, int64_t *out) {
  const Onnx__AttributeProto *a = camd__fold_attr(f->node, name);
  *out = def;
  if (!a) return 0;
  if (!a->has_i || (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT))
    return camd__fold_err(f, CAMD_E_FORMAT, "attribute '%s' must be an integer", name);
  *out = a->i;
  return 0;
}

int camd__fold_attr_float(camd__fold *f, const char *name, float def, float *out) {
  const Onnx__AttributeProto *a = camd__fold_attr(f->node, name);
  *out = def;
  if (!a) return 0;
  if (!a->has_f || (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT))
    return camd__fold_err(f, CAMD_E_FORMAT, "attribute '%s' must be a float", name);
  *out = a->f;
  return 0;
}

int camd__fold_attr_ints(camd__fold *f, const char *name, const int64_t **v, size_t *n,
                         bool *present) {
  const Onnx__AttributeProto *a = camd__fold_attr(f->node, name);
  *v = NULL;
  *n = 0;
  *present = a != NULL;
  if (!a) return 0;
  if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS)
    return camd__fold_err(f, CAMD_E_FORMAT, "attribute '%s' must be a list of integers", name);
  *v = a->ints;
  *n = a->n_ints;
  return 0;
}

bool camd__fold_has_input(const camd__fold *f, size_t k) {
  return k < f->node->n_input && f->node->input[k][0] != '\0';
}

int camd__fold_input(camd__fold *f, size_t k, camd__fold_view *v) {
  if (!camd__fold_has_input(f, k))
    return camd__fold_err(f, CAMD_E_FORMAT, "input %zu is missing", k);
  const char *in = f->node->input[k];
  int id = camd_graph_find(f->ctx->g, in);
  if (id < 0)
    return camd__fold_err(f, CAMD_E_FORMAT, "input '%s' is not defined before this node", in);
  bool batched = false;
  int rc = camd_graph_value(f->ctx->g, id, &v->shape, &v->dtype, &v->data, &batched);
  if (rc < 0) return rc;
  if (!v->data) return 1; /* not a constant: cannot fold */
  if (!camd__onnx_shape_count(&v->shape, &v->count))
    return camd__fold_err(f, CAMD_E_INTERNAL, "input '%s' has an invalid shape", in);
  return 0;
}

int camd__fold_ints(camd__fold *f, size_t k, const int64_t **vals, size_t *n) {
  camd__fold_view v;
  int rc = camd__fold_input(f, k, &v);
  if (rc != 0) return rc;
  if (v.dtype != CAMD_INT64 || v.shape.ndim > 1)
    return camd__fold_err(f, CAMD_E_INVALID, "input '%s' must be an int64 scalar or 1-D tensor",
                          f->node->input[k]);
  *vals = v.data;
  *n = v.count;
  return 0;
}

void *camd__fold_alloc(camd__fold *f, size_t count, camd_dtype dt, int *rc) {
  if (count > CAMD__ONNX_MAX_FOLD_ELEMS) {
    if (!camd__onnx_loader_only(camd__onnx_str(f->node->op_type))) {
      *rc = 1;
      return NULL;
    }
    *rc = camd__fold_err(f, CAMD_E_LIMIT, "result has %zu elements; camd folds at most %zu at load",
                         count, CAMD__ONNX_MAX_FOLD_ELEMS);
    return NULL;
  }
  if (f->ctx->folded_elems + count > CAMD__ONNX_MAX_FOLD_TOTAL) {
    *rc = camd__fold_err(f, CAMD_E_LIMIT,
                         "constants computed at load would exceed %zu elements in total",
                         CAMD__ONNX_MAX_FOLD_TOTAL);
    return NULL;
  }
  void *p = malloc(count ? count * camd__fold_esize(dt) : 1);
  if (!p) {
    *rc = camd__fold_err(f, CAMD_E_NOMEM, "out of memory");
    return NULL;
  }
  f->ctx->folded_elems += count;
  return p;
}

int camd__fold_emit(camd__fold *f, size_t k, camd_dtype dt, const camd_shape *s, void *data) {
  if (k >= f->node->n_output || !f->node->output[k][0]) {
    free(data);
    return 0; /* unnamed / absent optional output */
  }
  int id = camd_graph_add_constant(f->ctx->g, f->node->output[k], dt, s, data, f->err);
  return id < 0 ? id : 0;
}

static int emit_copy(camd__fold *f, const camd__fold_view *v, const camd_shape *s) {
  int rc = 0;
  void *p = camd__fold_alloc(f, v->count, v->dtype, &rc);
  if (!p) return rc;
  memcpy(p, v->data, v->count * camd__fold_esize(v->dtype));
  return camd__fold_emit(f, 0, v->dtype, s, p);
}

int camd__fold_axis(camd__fold *f, int64_t axis, int rank, int64_t *out) {
  if (axis < -(int64_t)rank || axis >= rank)
    return camd__fold_err(f, CAMD_E_INVALID, "axis %lld is out of range for rank %d",
                          (long long)axis, rank);
  *out = axis < 0 ? axis + rank : axis;
  return 0;
}

bool camd__fold_bcast(const camd_shape *a, const camd_shape *b, camd_shape *o) {
  int r = a->ndim > b->ndim ? a->ndim : b->ndim;
  o->ndim = r;
  for (int i = 0; i < r; i++) {
    int ia = i - (r - a->ndim), ib = i - (r - b->ndim);
    int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
    if (da != db && da != 1 && db != 1) return false;
    o->dims[i] = da == 1 ? db : da;
  }
  return true;
}

size_t camd__fold_bcast_offset(const camd_shape *in, const camd_shape *out, size_t k) {
  size_t off = 0, stride = 1;
  for (int i = out->ndim - 1, j = in->ndim - 1; i >= 0; i--, j--) {
    size_t idx = k % (size_t)out->dims[i];
    k /= (size_t)out->dims[i];
    if (j >= 0) {
      if (in->dims[j] != 1) off += idx * stride;
      stride *= (size_t)in->dims[j];
    }
  }
  return off;
}

/* ---- the ops ---- */

static int fold_constant(camd__fold *f) {
  const Onnx__NodeProto *n = f->node;
  if (n->n_attribute != 1)
    return camd__fold_err(f, CAMD_E_FORMAT, "needs exactly one value attribute, has %zu",
                          n->n_attribute);
  const Onnx__AttributeProto *a = n->attribute[0];
  const char *an = camd__onnx_str(a->name);
  camd_shape s = {0};
  int rc = 0;
  if (strcmp(an, "value") == 0 && a->t) {
    char what[CAMD_ERROR_MESSAGE_MAX / 2];
    snprintf(what, sizeof(what), "node '%s' (Constant): attribute 'value'", f->name);
    camd__onnx_tensor t;
    rc = camd__onnx_tensor_decode(f->ctx, a->t, what, &t, f->err);
    if (rc < 0) return rc;
    return camd__fold_emit(f, 0, t.dtype, &t.shape, t.data);
  }
  if (strcmp(an, "value_float") == 0 || strcmp(an, "value_int") == 0) {
    bool isf = an[6] == 'f';
    void *p = camd__fold_alloc(f, 1, isf ? CAMD_FLOAT32 : CAMD_INT64, &rc);
    if (!p) return rc;
    if (isf)
      *(float *)p = a->f;
    else
      *(int64_t *)p = a->i;
    return camd__fold_emit(f, 0, isf ? CAMD_FLOAT32 : CAMD_INT64, &s, p);
  }
  if (strcmp(an, "value_floats") == 0 || strcmp(an, "value_ints") == 0) {
    bool isf = an[6] == 'f';
    size_t cnt = isf ? a->n_floats : a->n_ints;
    camd_dtype dt = isf ? CAMD_FLOAT32 : CAMD_INT64;
    void *p =
        malloc(cnt ? cnt * camd__fold_esize(dt) : 1); /* bounded by the file size: no fold cap */
    if (!p) return camd__fold_err(f, CAMD_E_NOMEM, "out of memory");
    if (cnt)
      memcpy(p, isf ? (const void *)a->floats : (const void *)a->ints, cnt * camd__fold_esize(dt));
    s.ndim = 1;
    s.dims[0] = (int64_t)cnt;
    return camd__fold_emit(f, 0, dt, &s, p);
  }
  return camd__fold_err(f, CAMD_E_UNSUPPORTED,
                        "attribute '%s' is not supported (camd handles value, value_float(s), "
                        "value_int(s))",
                        an);
}

static int fold_shape(camd__fold *f, bool size_only) {
  if (!camd__fold_has_input(f, 0)) return camd__fold_err(f, CAMD_E_FORMAT, "input 0 is missing");
  int id = camd_graph_find(f->ctx->g, f->node->input[0]);
  if (id < 0)
    return camd__fold_err(f, CAMD_E_FORMAT, "input '%s' is not defined before this node",
                          f->node->input[0]);
  camd_shape in;
  camd_dtype dt;
  const void *data;
  bool batched;
  int rc = camd_graph_value(f->ctx->g, id, &in, &dt, &data, &batched);
  if (rc < 0) return rc;
  camd_shape s = {0};
  if (size_only) {
    size_t cnt;
    if (!camd__onnx_shape_count(&in, &cnt))
      return camd__fold_err(f, CAMD_E_INTERNAL, "bad input shape");
    int64_t *p = camd__fold_alloc(f, 1, CAMD_INT64, &rc);
    if (!p) return rc;
    *p = (int64_t)cnt;
    return camd__fold_emit(f, 0, CAMD_INT64, &s, p);
  }
  int64_t start = 0, end = in.ndim;
  if ((rc = camd__fold_attr_int(f, "start", 0, &start)) < 0) return rc;
  if ((rc = camd__fold_attr_int(f, "end", in.ndim, &end)) < 0) return rc;
  if (start < 0) start += in.ndim;
  if (end < 0) end += in.ndim;
  start = start < 0 ? 0 : (start > in.ndim ? in.ndim : start);
  end = end < 0 ? 0 : (end > in.ndim ? in.ndim : end);
  size_t cnt = end > start ? (size_t)(end - start) : 0;
  int64_t *p = camd__fold_alloc(f, cnt, CAMD_INT64, &rc);
  if (!p) return rc;
  for (size_t k = 0; k < cnt; k++) p[k] = in.dims[start + (int64_t)k];
  s.ndim = 1;
  s.dims[0] = (int64_t)cnt;
  return camd__fold_emit(f, 0, CAMD_INT64, &s, p);
}

static int fold_gather(camd__fold *f) {
  camd__fold_view d, ix;
  int rc;
  if ((rc = camd__fold_input(f, 0, &d)) != 0 || (rc = camd__fold_input(f, 1, &ix)) != 0) return rc;
  if (ix.dtype != CAMD_INT64) return camd__fold_err(f, CAMD_E_INVALID, "indices must be integers");
  if (d.shape.ndim < 1) return camd__fold_err(f, CAMD_E_INVALID, "data must have rank >= 1");
  int64_t axis;
  if ((rc = camd__fold_attr_int(f, "axis", 0, &axis)) < 0) return rc;
  if ((rc = camd__fold_axis(f, axis, d.shape.ndim, &axis)) < 0) return rc;
  int r = d.shape.ndim, q = ix.shape.ndim;
  if (r - 1 + q > CAMD_MAX_DIMS)
    return camd__fold_err(f, CAMD_E_UNSUPPORTED, "result would have more than %d dimensions",
                          CAMD_MAX_DIMS);
  camd_shape s = {.ndim = r - 1 + q};
  size_t outer = 1, inner = 1, dim = (size_t)d.shape.dims[axis];
  int o = 0;
  for (int k = 0; k < axis; k++) outer *= (size_t)(s.dims[o++] = d.shape.dims[k]);
  for (int k = 0; k < q; k++) s.dims[o++] = ix.shape.dims[k];
  for (int k = (int)axis + 1; k < r; k++) inner *= (size_t)(s.dims[o++] = d.shape.dims[k]);
  size_t cnt;
  if (!camd__onnx_shape_count(&s, &cnt))
    return camd__fold_err(f, CAMD_E_LIMIT, "result is too large");
  char *p = camd__fold_alloc(f, cnt, d.dtype, &rc);
  if (!p) return rc;
  const int64_t *idx = ix.data;
  size_t es = camd__fold_esize(d.dtype), row = inner * es;
  for (size_t a = 0; a < outer; a++) {
    for (size_t j = 0; j < ix.count; j++) {
      int64_t v = idx[j];
      if (v < 0) v += (int64_t)dim;
      if (v < 0 || v >= (int64_t)dim) {
        free(p);
        return camd__fold_err(f, CAMD_E_INVALID, "index %lld is out of range for axis of size %zu",
                              (long long)idx[j], dim);
      }
      memcpy(p + (a * ix.count + j) * row, (const char *)d.data + (a * dim + (size_t)v) * row, row);
    }
  }
  return camd__fold_emit(f, 0, d.dtype, &s, p);
}

/* Axes of Squeeze/Unsqueeze: attribute before opset 13, optional input 1 from 13 on. */
static int get_axes(camd__fold *f, const int64_t **axes, size_t *n, bool *present) {
  if (f->ctx->opset < 13) return camd__fold_attr_ints(f, "axes", axes, n, present);
  *present = camd__fold_has_input(f, 1);
  *axes = NULL;
  *n = 0;
  return *present ? camd__fold_ints(f, 1, axes, n) : 0;
}

static int fold_unsqueeze(camd__fold *f) {
  camd__fold_view d;
  const int64_t *axes;
  size_t n;
  bool present;
  int rc;
  if ((rc = camd__fold_input(f, 0, &d)) != 0 || (rc = get_axes(f, &axes, &n, &present)) != 0)
    return rc;
  if (!present || n == 0) return camd__fold_err(f, CAMD_E_INVALID, "axes are required");
  if ((size_t)d.shape.ndim + n > CAMD_MAX_DIMS)
    return camd__fold_err(f, CAMD_E_UNSUPPORTED, "result would have more than %d dimensions",
                          CAMD_MAX_DIMS);
  int r = d.shape.ndim + (int)n;
  bool mark[CAMD_MAX_DIMS] = {false};
  for (size_t k = 0; k < n; k++) {
    int64_t a = 0;
    if ((rc = camd__fold_axis(f, axes[k], r, &a)) < 0) return rc;
    if (mark[a])
      return camd__fold_err(f, CAMD_E_INVALID, "axis %lld is repeated", (long long)axes[k]);
    mark[a] = true;
  }
  camd_shape s = {.ndim = r};
  for (int k = 0, j = 0; k < r; k++) s.dims[k] = mark[k] ? 1 : d.shape.dims[j++];
  return emit_copy(f, &d, &s);
}

static int fold_squeeze(camd__fold *f) {
  camd__fold_view d;
  const int64_t *axes;
  size_t n;
  bool present;
  int rc;
  if ((rc = camd__fold_input(f, 0, &d)) != 0 || (rc = get_axes(f, &axes, &n, &present)) != 0)
    return rc;
  bool mark[CAMD_MAX_DIMS] = {false};
  for (size_t k = 0; k < n; k++) {
    int64_t a = 0;
    if ((rc = camd__fold_axis(f, axes[k], d.shape.ndim, &a)) < 0) return rc;
    if (d.shape.dims[a] != 1)
      return camd__fold_err(f, CAMD_E_INVALID, "cannot squeeze axis %lld of size %lld",
                            (long long)a, (long long)d.shape.dims[a]);
    mark[a] = true;
  }
  camd_shape s = {0};
  for (int k = 0; k < d.shape.ndim; k++) {
    bool drop = n ? mark[k] : d.shape.dims[k] == 1;
    if (!drop) s.dims[s.ndim++] = d.shape.dims[k];
  }
  return emit_copy(f, &d, &s);
}

static int fold_reshape(camd__fold *f) {
  if (f->ctx->opset < 5) return 1; /* Reshape-1 takes an attribute: left to the engine */
  camd__fold_view d;
  const int64_t *sh;
  size_t n;
  int rc;
  if ((rc = camd__fold_input(f, 0, &d)) != 0 || (rc = camd__fold_ints(f, 1, &sh, &n)) != 0)
    return rc;
  int64_t allowzero = 0;
  if (f->ctx->opset >= 14 && (rc = camd__fold_attr_int(f, "allowzero", 0, &allowzero)) < 0)
    return rc;
  if (n > CAMD_MAX_DIMS)
    return camd__fold_err(f, CAMD_E_UNSUPPORTED, "target shape has %zu dimensions (max %d)", n,
                          CAMD_MAX_DIMS);
  camd_shape s = {.ndim = (int)n};
  int infer = -1;
  size_t known = 1;
  for (size_t k = 0; k < n; k++) {
    int64_t v = sh[k];
    if (v == 0 && !allowzero) {
      if ((int)k >= d.shape.ndim)
        return camd__fold_err(f, CAMD_E_SHAPE, "target dim %zu is 0 but the input has rank %d", k,
                              d.shape.ndim);
      v = d.shape.dims[k];
    }
    if (v == -1) {
      if (infer >= 0) return camd__fold_err(f, CAMD_E_INVALID, "target shape has more than one -1");
      infer = (int)k;
      continue;
    }
    if (v < 0) return camd__fold_err(f, CAMD_E_INVALID, "target dim %lld is invalid", (long long)v);
    s.dims[k] = v;
    if (!camd_size_mul(known, (size_t)v, &known))
      return camd__fold_err(f, CAMD_E_SHAPE, "target shape overflows");
  }
  if (infer >= 0) {
    if (known == 0 || d.count % known)
      return camd__fold_err(f, CAMD_E_SHAPE, "cannot infer -1: %zu elements do not divide by %zu",
                            d.count, known);
    s.dims[infer] = (int64_t)(d.count / known);
    known = d.count;
  }
  if (known != d.count)
    return camd__fold_err(f, CAMD_E_SHAPE, "cannot reshape %zu elements into %zu", d.count, known);
  return emit_copy(f, &d, &s);
}

static int fold_flatten(camd__fold *f) {
  camd__fold_view d;
  int rc;
  if ((rc = camd__fold_input(f, 0, &d)) != 0) return rc;
  int64_t axis;
  if ((rc = camd__fold_attr_int(f, "axis", 1, &axis)) < 0) return rc;
  if (axis < -(int64_t)d.shape.ndim || axis > d.shape.ndim)
    return camd__fold_err(f, CAMD_E_INVALID, "axis %lld is out of range", (long long)axis);
  if (axis < 0) axis += d.shape.ndim;
  camd_shape s = {.ndim = 2, .dims = {1, 1}};
  for (int k = 0; k < d.shape.ndim; k++) s.dims[k < axis ? 0 : 1] *= d.shape.dims[k];
  return emit_copy(f, &d, &s);
}

static int fold_concat(camd__fold *f) {
  size_t n = f->node->n_input;
  if (n == 0 || n > 4096) return camd__fold_err(f, CAMD_E_INVALID, "needs 1 to 4096 inputs");
  camd__fold_view *v = calloc(n, sizeof(camd__fold_view));
  if (!v) return camd__fold_err(f, CAMD_E_NOMEM, "out of memory");
  int rc = 0;
  int64_t axis = 0;
  camd_shape s;
  char *p = NULL;
  for (size_t k = 0; k < n && rc == 0; k++) rc = camd__fold_input(f, k, &v[k]);
  if (rc != 0) goto done;
  if ((rc = camd__fold_attr_int(f, "axis", 0, &axis)) < 0) goto done;
  if (!camd__fold_attr(f->node, "axis")) {
    rc = camd__fold_err(f, CAMD_E_FORMAT, "attribute 'axis' is required");
    goto done;
  }
  s = v[0].shape;
  if ((rc = camd__fold_axis(f, axis, s.ndim, &axis)) < 0) goto done;
  s.dims[axis] = 0;
  for (size_t k = 0; k < n; k++) {
    bool ok = v[k].dtype == v[0].dtype && v[k].shape.ndim == s.ndim;
    for (int a = 0; ok && a < s.ndim; a++) ok = a == axis || v[k].shape.dims[a] == s.dims[a];
    if (!ok) {
      rc = camd__fold_err(f, CAMD_E_SHAPE, "input '%s' does not match the others in type or shape",
                          f->node->input[k]);
      goto done;
    }
    s.dims[axis] += v[k].shape.dims[axis];
  }
  size_t cnt, outer = 1, inner = 1, es = camd__fold_esize(v[0].dtype), off = 0;
  if (!camd__onnx_shape_count(&s, &cnt)) {
    rc = camd__fold_err(f, CAMD_E_LIMIT, "result is too large");
    goto done;
  }
  if (!(p = camd__fold_alloc(f, cnt, v[0].dtype, &rc))) goto done;
  for (int a = 0; a < axis; a++) outer *= (size_t)s.dims[a];
  for (int a = (int)axis + 1; a < s.ndim; a++) inner *= (size_t)s.dims[a];
  for (size_t o = 0; o < outer; o++) {
    for (size_t k = 0; k < n; k++) {
      size_t chunk = (size_t)v[k].shape.dims[axis] * inner * es;
      memcpy(p + off, (const char *)v[k].data + o * chunk, chunk);
      off += chunk;
    }
  }
  rc = camd__fold_emit(f, 0, v[0].dtype, &s, p);
  p = NULL;
done:
  free(p);
  free(v);
  return rc;
}

static int fold_constant_of_shape(camd__fold *f) {
  const int64_t *sh;
  size_t n;
  int rc;
  if ((rc = camd__fold_ints(f, 0, &sh, &n)) != 0) return rc;
  if (n > CAMD_MAX_DIMS)
    return camd__fold_err(f, CAMD_E_UNSUPPORTED, "shape has %zu dimensions (max %d)", n,
                          CAMD_MAX_DIMS);
  camd_shape s = {.ndim = (int)n};
  for (size_t k = 0; k < n; k++) {
    if (sh[k] < 0)
      return camd__fold_err(f, CAMD_E_INVALID, "negative dimension %lld", (long long)sh[k]);
    s.dims[k] = sh[k];
  }
  size_t cnt;
  if (!camd__onnx_shape_count(&s, &cnt)) return camd__fold_err(f, CAMD_E_LIMIT, "shape overflows");
  camd_dtype dt = CAMD_FLOAT32;
  float fv = 0;
  int64_t iv = 0;
  const Onnx__AttributeProto *a = camd__fold_attr(f->node, "value");
  if (a) {
    if (!a->t) return camd__fold_err(f, CAMD_E_FORMAT, "attribute 'value' must be a tensor");
    char what[CAMD_ERROR_MESSAGE_MAX / 2];
    snprintf(what, sizeof(what), "node '%s' (ConstantOfShape): attribute 'value'", f->name);
    camd__onnx_tensor t;
    if ((rc = camd__onnx_tensor_decode(f->ctx, a->t, what, &t, f->err)) < 0) return rc;
    size_t tc;
    camd__onnx_shape_count(&t.shape, &tc);
    if (tc != 1) {
      free(t.data);
      return camd__fold_err(f, CAMD_E_INVALID, "attribute 'value' must hold one element, has %zu",
                            tc);
    }
    dt = t.dtype;
    if (dt == CAMD_FLOAT32)
      fv = *(float *)t.data;
    else
      iv = *(int64_t *)t.data;
    free(t.data);
  }
  void *p = camd__fold_alloc(f, cnt, dt, &rc);
  if (!p) return rc;
  for (size_t k = 0; k < cnt; k++) {
    if (dt == CAMD_FLOAT32)
      ((float *)p)[k] = fv;
    else
      ((int64_t *)p)[k] = iv;
  }
  return camd__fold_emit(f, 0, dt, &s, p);
}

static int fold_cast(camd__fold *f) {
  camd__fold_view d;
  int rc;
  if ((rc = camd__fold_input(f, 0, &d)) != 0) return rc;
  int64_t to;
  if ((rc = camd__fold_attr_int(f, "to", 0, &to)) < 0) return rc;
  camd_dtype dt;
  bool to_bool = to == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL;
  switch (to) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
      dt = CAMD_FLOAT32;
      break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
      dt = CAMD_INT64;
      break;
    default:
      return camd__fold_err(f, CAMD_E_UNSUPPORTED, "cast to %s is not supported",
                            camd__onnx_type_name((int32_t)to));
  }
  void *p = camd__fold_alloc(f, d.count, dt, &rc);
  if (!p) return rc;
  for (size_t k = 0; k < d.count; k++) {
    if (d.dtype == CAMD_FLOAT32) {
      float x = ((const float *)d.data)[k];
      if (dt == CAMD_FLOAT32) {
        ((float *)p)[k] = x;
      } else if (to_bool) {
        ((int64_t *)p)[k] = x != 0;
      } else {
        if (!(x > -9.2e18f && x < 9.2e18f)) {
          free(p);
          return camd__fold_err(f, CAMD_E_INVALID, "value %g does not fit an integer", (double)x);
        }
        ((int64_t *)p)[k] = (int64_t)x;
      }
    } else {
      int64_t x = ((const int64_t *)d.data)[k];
      if (dt == CAMD_FLOAT32)
        ((float *)p)[k] = (float)x;
      else
        ((int64_t *)p)[k] = to_bool ? x != 0 : x;
    }
  }
  return camd__fold_emit(f, 0, dt, &d.shape, p);
}

static int fold_slice(camd__fold *f) {
  camd__fold_view d;
  int rc;
  if ((rc = camd__fold_input(f, 0, &d)) != 0) return rc;
  const int64_t *starts = NULL, *ends = NULL, *axes = NULL, *steps = NULL;
  size_t ns = 0, ne = 0, na = 0, nst = 0;
  bool present;
  if (f->ctx->opset < 10) {
    if ((rc = camd__fold_attr_ints(f, "starts", &starts, &ns, &present)) < 0 ||
        (rc = camd__fold_attr_ints(f, "ends", &ends, &ne, &present)) < 0 ||
        (rc = camd__fold_attr_ints(f, "axes", &axes, &na, &present)) < 0)
      return rc;
  } else {
    if ((rc = camd__fold_ints(f, 1, &starts, &ns)) != 0 ||
        (rc = camd__fold_ints(f, 2, &ends, &ne)) != 0)
      return rc;
    if (camd__fold_has_input(f, 3) && (rc = camd__fold_ints(f, 3, &axes, &na)) != 0) return rc;
    if (camd__fold_has_input(f, 4) && (rc = camd__fold_ints(f, 4, &steps, &nst)) != 0) return rc;
  }
  if (ne != ns || (axes && na != ns) || (steps && nst != ns) || ns > (size_t)d.shape.ndim)
    return camd__fold_err(f, CAMD_E_INVALID,
                          "starts, ends, axes and steps must have the same length");
  int r = d.shape.ndim;
  int64_t st[CAMD_MAX_DIMS], sp[CAMD_MAX_DIMS];
  bool seen[CAMD_MAX_DIMS] = {false};
  camd_shape s = d.shape;
  for (int a = 0; a < r; a++) st[a] = 0, sp[a] = 1;
  for (size_t j = 0; j < ns; j++) {
    int64_t a = axes ? axes[j] : (int64_t)j;
    if ((rc = camd__fold_axis(f, a, r, &a)) < 0) return rc;
    if (seen[a]) return camd__fold_err(f, CAMD_E_INVALID, "axis %lld is repeated", (long long)a);
    seen[a] = true;
    int64_t dim = d.shape.dims[a], b = starts[j], e = ends[j], step = steps ? steps[j] : 1;
    if (step == 0) return camd__fold_err(f, CAMD_E_INVALID, "step must not be 0");
    if (b < 0) b += dim;
    if (e < 0) e += dim;
    uint64_t n = 0;
    if (step > 0) {
      b = b < 0 ? 0 : (b > dim ? dim : b);
      e = e < 0 ? 0 : (e > dim ? dim : e);
      if (e > b) n = (uint64_t)(e - b - 1) / (uint64_t)step + 1;
    } else {
      b = b < 0 ? 0 : (b > dim - 1 ? dim - 1 : b);
      e = e < -1 ? -1 : (e > dim - 1 ? dim - 1 : e);
      if (b > e) n = (uint64_t)(b - e - 1) / ((uint64_t)0 - (uint64_t)step) + 1;
    }
    st[a] = b;
    sp[a] = step;
    s.dims[a] = (int64_t)n;
  }
  size_t cnt;
  if (!camd__onnx_shape_count(&s, &cnt))
    return camd__fold_err(f, CAMD_E_LIMIT, "result is too large");
  char *p = camd__fold_alloc(f, cnt, d.dtype, &rc);
  if (!p) return rc;
  int64_t stride[CAMD_MAX_DIMS] = {0};
  int64_t acc = 1;
  for (int a = r - 1; a >= 0; a--) {
    stride[a] = acc;
    acc *= d.shape.dims[a];
  }
  size_t es = camd__fold_esize(d.dtype);
  for (size_t k = 0; k < cnt; k++) {
    size_t rem = k;
    int64_t off = 0;
    for (int a = r - 1; a >= 0; a--) {
      int64_t i = (int64_t)(rem % (size_t)s.dims[a]);
      rem /= (size_t)s.dims[a];
      off += (st[a] + i * sp[a]) * stride[a];
    }
    memcpy(p + k * es, (const char *)d.data + (size_t)off * es, es);
  }
  return camd__fold_emit(f, 0, d.dtype, &s, p);
}

static int fold_range(camd__fold *f) {
  camd__fold_view v[3];
  int rc;
  for (size_t k = 0; k < 3; k++) {
    if ((rc = camd__fold_input(f, k, &v[k])) != 0) return rc;
    if (v[k].count != 1 || v[k].dtype != v[0].dtype)
      return camd__fold_err(f, CAMD_E_INVALID,
                            "start, limit and delta must be scalars of one type");
  }
  camd_shape s = {.ndim = 1};
  size_t n = 0;
  void *p;
  if (v[0].dtype == CAMD_INT64) {
    int64_t a = *(const int64_t *)v[0].data, b = *(const int64_t *)v[1].data,
            dl = *(const int64_t *)v[2].data, diff;
    if (dl == 0) return camd__fold_err(f, CAMD_E_INVALID, "delta must not be 0");
    if (__builtin_sub_overflow(b, a, &diff))
      return camd__fold_err(f, CAMD_E_LIMIT, "range overflows");
    if (dl > 0 && diff > 0) n = (size_t)((uint64_t)(diff - 1) / (uint64_t)dl + 1);
    if (dl < 0 && diff < 0)
      n = (size_t)(((uint64_t)0 - (uint64_t)diff - 1) / ((uint64_t)0 - (uint64_t)dl) + 1);
    if (!(p = camd__fold_alloc(f, n, CAMD_INT64, &rc))) return rc;
    for (size_t k = 0; k < n; k++) ((int64_t *)p)[k] = a + (int64_t)k * dl;
  } else {
    float a = *(const float *)v[0].data, b = *(const float *)v[1].data,
          dl = *(const float *)v[2].data;
    double nd = dl != 0 ? ceil(((double)b - a) / dl) : -1;
    if (!(nd >= 0 && nd <= (double)CAMD__ONNX_MAX_FOLD_ELEMS))
      return camd__fold_err(f, CAMD_E_INVALID, "invalid range (start %g, limit %g, delta %g)",
                            (double)a, (double)b, (double)dl);
    n = (size_t)nd;
    if (!(p = camd__fold_alloc(f, n, CAMD_FLOAT32, &rc))) return rc;
    for (size_t k = 0; k < n; k++) ((float *)p)[k] = a + (float)k * dl;
  }
  s.dims[0] = (int64_t)n;
  return camd__fold_emit(f, 0, v[0].dtype, &s, p);
}

static int fold_where(camd__fold *f) {
  camd__fold_view c, x, y;
  int rc;
  if ((rc = camd__fold_input(f, 0, &c)) != 0 || (rc = camd__fold_input(f, 1, &x)) != 0 ||
      (rc = camd__fold_input(f, 2, &y)) != 0)
    return rc;
  if (x.dtype != y.dtype) return camd__fold_err(f, CAMD_E_INVALID, "X and Y have different types");
  if (c.dtype != CAMD_INT64) return camd__fold_err(f, CAMD_E_INVALID, "condition must be bool");
  camd_shape t, s;
  if (!camd__fold_bcast(&c.shape, &x.shape, &t) || !camd__fold_bcast(&t, &y.shape, &s))
    return camd__fold_err(f, CAMD_E_SHAPE, "input shapes do not broadcast");
  size_t cnt, es = camd__fold_esize(x.dtype);
  if (!camd__onnx_shape_count(&s, &cnt))
    return camd__fold_err(f, CAMD_E_LIMIT, "result is too large");
  char *p = camd__fold_alloc(f, cnt, x.dtype, &rc);
  if (!p) return rc;
  for (size_t k = 0; k < cnt; k++) {
    bool cond = ((const int64_t *)c.data)[camd__fold_bcast_offset(&c.shape, &s, k)] != 0;
    const camd__fold_view *src = cond ? &x : &y;
    memcpy(p + k * es, (const char *)src->data + camd__fold_bcast_offset(&src->shape, &s, k) * es,
           es);
  }
  return camd__fold_emit(f, 0, x.dtype, &s, p);
}

/* ScatterND (reduction "none"): a copy of data with the slices named by indices [..., k]
 * replaced by updates (Swin's shifted-window attention mask is built this way). */
static int fold_scatternd(camd__fold *f) {
  camd__fold_view d, ix, u;
  int rc;
  if ((rc = camd__fold_input(f, 0, &d)) != 0 || (rc = camd__fold_input(f, 1, &ix)) != 0 ||
      (rc = camd__fold_input(f, 2, &u)) != 0)
    return rc;
  const Onnx__AttributeProto *red = camd__fold_attr(f->node, "reduction");
  if (red && red->s.len && !(red->s.len == 4 && !memcmp(red->s.data, "none", 4)))
    return camd__fold_err(f, CAMD_E_UNSUPPORTED, "only reduction \"none\" is supported");
  if (ix.dtype != CAMD_INT64) return camd__fold_err(f, CAMD_E_INVALID, "indices must be integers");
  if (u.dtype != d.dtype)
    return camd__fold_err(f, CAMD_E_INVALID, "updates and data differ in type");
  const int q = ix.shape.ndim, r = d.shape.ndim;
  const int k = q > 0 ? (int)ix.shape.dims[q - 1] : -1;
  if (q < 1 || k < 1 || k > r || u.shape.ndim != q - 1 + r - k)
    return camd__fold_err(f, CAMD_E_SHAPE, "indices / updates shapes do not match data");
  for (int a = 0; a < q - 1; a++)
    if (u.shape.dims[a] != ix.shape.dims[a])
      return camd__fold_err(f, CAMD_E_SHAPE, "updates do not match the indices' shape");
  size_t slice = 1;
  for (int a = k; a < r; a++) {
    if (u.shape.dims[q - 1 + a - k] != d.shape.dims[a])
      return camd__fold_err(f, CAMD_E_SHAPE, "updates do not match the data's trailing shape");
    slice *= (size_t)d.shape.dims[a];
  }
  const size_t es = camd__fold_esize(d.dtype), n_idx = ix.count / (size_t)k;
  char *o = camd__fold_alloc(f, d.count, d.dtype, &rc);
  if (!o) return rc;
  memcpy(o, d.data, d.count * es);
  const int64_t *iv = ix.data;
  for (size_t j = 0; j < n_idx; j++) {
    size_t off = 0;
    for (int a = 0; a < k; a++) {
      int64_t v = iv[j * (size_t)k + (size_t)a], dim = d.shape.dims[a];
      if (v < 0) v += dim;
      if (v < 0 || v >= dim) {
        free(o);
        return camd__fold_err(f, CAMD_E_INVALID, "index %lld is out of range for axis of size %lld",
                              (long long)iv[j * (size_t)k + (size_t)a], (long long)dim);
      }
      off = off * (size_t)dim + (size_t)v;
    }
    memcpy(o + off * slice * es, (const char *)u.data + j * slice * es, slice * es);
  }
  return camd__fold_emit(f, 0, d.dtype, &d.shape, o);
}

static int fold_transpose(camd__fold *f) {
  camd__fold_view d;
  int rc;
  if ((rc = camd__fold_input(f, 0, &d)) != 0) return rc;
  const int64_t *perm;
  size_t n;
  bool present;
  if ((rc = camd__fold_attr_ints(f, "perm", &perm, &n, &present)) < 0) return rc;
  int r = d.shape.ndim;
  int64_t p[CAMD_MAX_DIMS];
  bool seen[CAMD_MAX_DIMS] = {false};
  if (present && n != (size_t)r)
    return camd__fold_err(f, CAMD_E_INVALID, "perm has %zu entries for rank %d", n, r);
  for (int k = 0; k < r; k++) {
    p[k] = present ? perm[k] : r - 1 - k;
    if (p[k] < 0 || p[k] >= r || seen[p[k]])
      return camd__fold_err(f, CAMD_E_INVALID, "perm is not a permutation of 0..%d", r - 1);
    seen[p[k]] = true;
  }
  camd_shape s = {.ndim = r};
  int64_t in_stride[CAMD_MAX_DIMS], acc = 1;
  for (int k = r - 1; k >= 0; k--) {
    in_stride[k] = acc;
    acc *= d.shape.dims[k];
  }
  for (int k = 0; k < r; k++) s.dims[k] = d.shape.dims[p[k]];
  size_t es = camd__fold_esize(d.dtype);
  char *o = camd__fold_alloc(f, d.count, d.dtype, &rc);
  if (!o) return rc;
  for (size_t k = 0; k < d.count; k++) {
    size_t rem = k, off = 0;
    for (int a = r - 1; a >= 0; a--) {
      size_t i = rem % (size_t)s.dims[a];
      rem /= (size_t)s.dims[a];
      off += i * (size_t)in_stride[p[a]];
    }
    memcpy(o + k * es, (const char *)d.data + off * es, es);
  }
  return camd__fold_emit(f, 0, d.dtype, &s, o);
}

/* Expand (bidirectional broadcast to a shape) and Tile (repeats per axis). */
static int fold_expand_tile(camd__fold *f, bool tile) {
  camd__fold_view d;
  const int64_t *sh;
  size_t n;
  int rc;
  if ((rc = camd__fold_input(f, 0, &d)) != 0 || (rc = camd__fold_ints(f, 1, &sh, &n)) != 0)
    return rc;
  if (n > CAMD_MAX_DIMS)
    return camd__fold_err(f, CAMD_E_UNSUPPORTED, "shape has %zu dimensions (max %d)", n,
                          CAMD_MAX_DIMS);
  camd_shape s = {.ndim = (int)n}, t;
  for (size_t k = 0; k < n; k++) {
    if (sh[k] < 0)
      return camd__fold_err(f, CAMD_E_INVALID, "negative %s %lld", tile ? "repeat" : "dimension",
                            (long long)sh[k]);
    s.dims[k] = sh[k];
  }
  if (tile) {
    if (s.ndim != d.shape.ndim)
      return camd__fold_err(f, CAMD_E_INVALID, "repeats has %d entries for rank %d", s.ndim,
                            d.shape.ndim);
    t = d.shape;
    for (int k = 0; k < t.ndim; k++) {
      if (d.shape.dims[k] && s.dims[k] > INT64_MAX / d.shape.dims[k])
        return camd__fold_err(f, CAMD_E_LIMIT, "result is too large");
      t.dims[k] = d.shape.dims[k] * s.dims[k];
    }
  } else if (!camd__fold_bcast(&d.shape, &s, &t)) {
    return camd__fold_err(f, CAMD_E_SHAPE, "input shape does not broadcast to the target shape");
  }
  size_t cnt, es = camd__fold_esize(d.dtype);
  if (!camd__onnx_shape_count(&t, &cnt))
    return camd__fold_err(f, CAMD_E_LIMIT, "result is too large");
  char *o = camd__fold_alloc(f, cnt, d.dtype, &rc);
  if (!o) return rc;
  for (size_t k = 0; k < cnt; k++) {
    size_t off;
    if (tile) { /* index modulo the input's size on every axis */
      size_t rem = k, stride = 1;
      off = 0;
      for (int a = t.ndim - 1; a >= 0; a--) {
        size_t i = rem % (size_t)t.dims[a];
        rem /= (size_t)t.dims[a];
        off += (i % (size_t)d.shape.dims[a]) * stride;
        stride *= (size_t)d.shape.dims[a];
      }
    } else {
      off = camd__fold_bcast_offset(&d.shape, &t, k);
    }
    memcpy(o + k * es, (const char *)d.data + off * es, es);
  }
  return camd__fold_emit(f, 0, d.dtype, &t, o);
}

static int fold_identity(camd__fold *f) {
  camd__fold_view d;
  int rc = camd__fold_input(f, 0, &d);
  return rc != 0 ? rc : emit_copy(f, &d, &d.shape);
}

/* ---- dispatch ---- */

typedef struct fold_op {
  const char *op_type;
  bool loader_only; /* no engine op exists: the node must fold */
  bool any_input;   /* folds whatever its inputs are (reads shapes only) */
  int (*fn)(camd__fold *f);
} fold_op;

static int fold_shape_op(camd__fold *f) {
  return fold_shape(f, false);
}
static int fold_size_op(camd__fold *f) {
  return fold_shape(f, true);
}
static int fold_expand(camd__fold *f) {
  return fold_expand_tile(f, false);
}
static int fold_tile(camd__fold *f) {
  return fold_expand_tile(f, true);
}

/* Every op the loader evaluates. Ops the engine also implements (loader_only false) run in the
 * engine when an input is an activation; the others must fold. */
static const fold_op fold_ops[] = {
    {"Constant", true, true, fold_constant},
    {"Shape", true, true, fold_shape_op},
    {"Size", true, true, fold_size_op},
    {"ConstantOfShape", true, false, fold_constant_of_shape},
    {"Gather", false, false, fold_gather},
    {"Cast", true, false, fold_cast},
    {"Range", true, false, fold_range},
    {"Where", false, false, fold_where},
    {"Expand", false, false, fold_expand},
    {"Tile", false, false, fold_tile},
    {"ScatterND", true, false, fold_scatternd},
    {"Identity", false, false, fold_identity},
    {"Unsqueeze", false, false, fold_unsqueeze},
    {"Squeeze", false, false, fold_squeeze},
    {"Concat", false, false, fold_concat},
    {"Slice", false, false, fold_slice},
    {"Reshape", false, false, fold_reshape},
    {"Flatten", false, false, fold_flatten},
    {"Transpose", false, false, fold_transpose},
    {"Clip", false, false, camd__fold_clip},
    /* onnx_fold_math.c */
    {"Add", false, false, camd__fold_arith},
    {"Sub", false, false, camd__fold_arith},
    {"Mul", false, false, camd__fold_arith},
    {"Div", false, false, camd__fold_arith},
    {"Mod", true, false, camd__fold_arith},
    {"Pow", false, false, camd__fold_arith},
    {"Max", true, false, camd__fold_arith},
    {"Min", true, false, camd__fold_arith},
    {"Equal", true, false, camd__fold_arith},
    {"Less", true, false, camd__fold_arith},
    {"LessOrEqual", true, false, camd__fold_arith},
    {"Greater", true, false, camd__fold_arith},
    {"GreaterOrEqual", true, false, camd__fold_arith},
    {"And", true, false, camd__fold_arith},
    {"Or", true, false, camd__fold_arith},
    {"Xor", true, false, camd__fold_arith},
    {"Ceil", true, false, camd__fold_unary},
    {"Floor", true, false, camd__fold_unary},
    {"Round", true, false, camd__fold_unary},
    {"Neg", true, false, camd__fold_unary},
    {"Abs", true, false, camd__fold_unary},
    {"Sqrt", false, false, camd__fold_unary},
    {"Reciprocal", true, false, camd__fold_unary},
    {"Sign", true, false, camd__fold_unary},
    {"Not", true, false, camd__fold_unary},
    {"ReduceSum", true, false, camd__fold_reduce},
    {"ReduceProd", true, false, camd__fold_reduce},
    {"ReduceMax", true, false, camd__fold_reduce},
    {"ReduceMin", true, false, camd__fold_reduce},
    {"ReduceMean", false, false, camd__fold_reduce},
    {"DequantizeLinear", true, false, camd__fold_dequantize},
};

static const fold_op *find_fold(const char *op_type) {
  for (size_t k = 0; k < sizeof(fold_ops) / sizeof(fold_ops[0]); k++) {
    if (strcmp(fold_ops[k].op_type, op_type) == 0) return &fold_ops[k];
  }
  return NULL;
}

bool camd__onnx_fold_known(const char *op_type) {
  return find_fold(op_type) != NULL;
}

bool camd__onnx_loader_only(const char *op_type) {
  const fold_op *o = find_fold(op_type);
  return o && o->loader_only;
}

bool camd__onnx_fold_possible(const char *op_type, bool const_in) {
  const fold_op *o = find_fold(op_type);
  return o && (o->any_input || const_in);
}

size_t camd__onnx_fold_list(char *buf, size_t size, bool loader_only) {
  size_t pos = 0;
  if (size) buf[0] = '\0';
  for (size_t k = 0; k < sizeof(fold_ops) / sizeof(fold_ops[0]); k++) {
    if (fold_ops[k].loader_only != loader_only) continue;
    int n = snprintf(buf + pos, pos < size ? size - pos : 0, "%s%s", pos ? ", " : "",
                     fold_ops[k].op_type);
    if (n > 0) pos += (size_t)n;
  }
  return pos;
}

int camd__onnx_fold(camd__onnx_ctx *ctx, const Onnx__NodeProto *node, const char *node_name,
                    camd_error *err) {
  camd__fold f = {ctx, node, node_name, err};
  const fold_op *o = find_fold(camd__onnx_str(node->op_type));
  return o ? o->fn(&f) : 1;
}
