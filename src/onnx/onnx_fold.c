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
#include "onnx/onnx_internal.h"

typedef struct fold {
  camd__onnx_ctx *ctx;
  const Onnx__NodeProto *node;
  const char *name;
  camd_error *err;
} fold;

/* A constant input: borrowed data owned by the graph. */
typedef struct view {
  camd_dtype dtype;
  camd_shape shape;
  const void *data;
  size_t count;
} view;

static int ferr(fold *f, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int ferr(fold *f, int status, const char *fmt, ...) {
  char msg[CAMD_ERROR_MESSAGE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  return camd_error_set(f->err, status, "node '%s' (%s): %s", f->name,
                        camd__onnx_str(f->node->op_type), msg);
}

static size_t esize(camd_dtype d) {
  return d == CAMD_INT64 ? 8 : 4;
}

static const char *dtype_name(camd_dtype d) {
  return d == CAMD_INT64 ? "int64" : "float32";
}

static const Onnx__AttributeProto *find_attr(const Onnx__NodeProto *n, const char *name) {
  for (size_t k = 0; k < n->n_attribute; k++) {
    if (n->attribute[k]->name && strcmp(n->attribute[k]->name, name) == 0) return n->attribute[k];
  }
  return NULL;
}

static int attr_int(fold *f, const char *name, int64_t def, int64_t *out) {
  const Onnx__AttributeProto *a = find_attr(f->node, name);
  *out = def;
  if (!a) return 0;
  if (!a->has_i || (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT))
    return ferr(f, CAMD_E_FORMAT, "attribute '%s' must be an integer", name);
  *out = a->i;
  return 0;
}

static int attr_ints(fold *f, const char *name, const int64_t **v, size_t *n, bool *present) {
  const Onnx__AttributeProto *a = find_attr(f->node, name);
  *v = NULL;
  *n = 0;
  *present = a != NULL;
  if (!a) return 0;
  if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS)
    return ferr(f, CAMD_E_FORMAT, "attribute '%s' must be a list of integers", name);
  *v = a->ints;
  *n = a->n_ints;
  return 0;
}

static bool has_input(const fold *f, size_t k) {
  return k < f->node->n_input && f->node->input[k][0] != '\0';
}

/* Constant input k (must be present and constant). */
static int get_input(fold *f, size_t k, view *v) {
  if (!has_input(f, k)) return ferr(f, CAMD_E_FORMAT, "input %zu is missing", k);
  const char *in = f->node->input[k];
  int id = camd_graph_find(f->ctx->g, in);
  if (id < 0) return ferr(f, CAMD_E_FORMAT, "input '%s' is not defined before this node", in);
  bool batched = false;
  int rc = camd_graph_value(f->ctx->g, id, &v->shape, &v->dtype, &v->data, &batched);
  if (rc < 0) return rc;
  if (!v->data) return 1; /* not a constant: cannot fold */
  if (!camd__onnx_shape_count(&v->shape, &v->count))
    return ferr(f, CAMD_E_INTERNAL, "input '%s' has an invalid shape", in);
  return 0;
}

/* Input k as a list of int64 (scalar or 1-D). */
static int get_ints(fold *f, size_t k, const int64_t **vals, size_t *n) {
  view v;
  int rc = get_input(f, k, &v);
  if (rc != 0) return rc;
  if (v.dtype != CAMD_INT64 || v.shape.ndim > 1)
    return ferr(f, CAMD_E_INVALID, "input '%s' must be an int64 scalar or 1-D tensor",
                f->node->input[k]);
  *vals = v.data;
  *n = v.count;
  return 0;
}

/* Output buffer of count elements. Over the fold limit, ops the engine also implements are
 * left to the engine (*rc = 1); loader-only ops fail. */
static void *alloc_out(fold *f, size_t count, camd_dtype dt, int *rc) {
  if (count > CAMD__ONNX_MAX_FOLD_ELEMS) {
    if (!camd__onnx_loader_only(camd__onnx_str(f->node->op_type))) {
      *rc = 1;
      return NULL;
    }
    *rc = ferr(f, CAMD_E_LIMIT, "result has %zu elements; camd folds at most %zu at load", count,
               CAMD__ONNX_MAX_FOLD_ELEMS);
    return NULL;
  }
  void *p = malloc(count ? count * esize(dt) : 1);
  if (!p) *rc = ferr(f, CAMD_E_NOMEM, "out of memory");
  return p;
}

/* Adds output k as a constant; takes ownership of data in every case. */
static int emit(fold *f, size_t k, camd_dtype dt, const camd_shape *s, void *data) {
  if (k >= f->node->n_output || !f->node->output[k][0]) {
    free(data);
    return 0; /* unnamed / absent optional output */
  }
  int id = camd_graph_add_constant(f->ctx->g, f->node->output[k], dt, s, data, f->err);
  return id < 0 ? id : 0;
}

static int emit_copy(fold *f, const view *v, const camd_shape *s) {
  int rc = 0;
  void *p = alloc_out(f, v->count, v->dtype, &rc);
  if (!p) return rc;
  memcpy(p, v->data, v->count * esize(v->dtype));
  return emit(f, 0, v->dtype, s, p);
}

static int norm_axis(fold *f, int64_t axis, int rank, int64_t *out) {
  if (axis < -(int64_t)rank || axis >= rank)
    return ferr(f, CAMD_E_INVALID, "axis %lld is out of range for rank %d", (long long)axis, rank);
  *out = axis < 0 ? axis + rank : axis;
  return 0;
}

/* ---- the ops ---- */

static int fold_constant(fold *f) {
  const Onnx__NodeProto *n = f->node;
  if (n->n_attribute != 1)
    return ferr(f, CAMD_E_FORMAT, "needs exactly one value attribute, has %zu", n->n_attribute);
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
    return emit(f, 0, t.dtype, &t.shape, t.data);
  }
  if (strcmp(an, "value_float") == 0 || strcmp(an, "value_int") == 0) {
    bool isf = an[6] == 'f';
    void *p = alloc_out(f, 1, isf ? CAMD_FLOAT32 : CAMD_INT64, &rc);
    if (!p) return rc;
    if (isf)
      *(float *)p = a->f;
    else
      *(int64_t *)p = a->i;
    return emit(f, 0, isf ? CAMD_FLOAT32 : CAMD_INT64, &s, p);
  }
  if (strcmp(an, "value_floats") == 0 || strcmp(an, "value_ints") == 0) {
    bool isf = an[6] == 'f';
    size_t cnt = isf ? a->n_floats : a->n_ints;
    camd_dtype dt = isf ? CAMD_FLOAT32 : CAMD_INT64;
    void *p = malloc(cnt ? cnt * esize(dt) : 1); /* bounded by the file size: no fold cap */
    if (!p) return ferr(f, CAMD_E_NOMEM, "out of memory");
    if (cnt) memcpy(p, isf ? (const void *)a->floats : (const void *)a->ints, cnt * esize(dt));
    s.ndim = 1;
    s.dims[0] = (int64_t)cnt;
    return emit(f, 0, dt, &s, p);
  }
  return ferr(f, CAMD_E_UNSUPPORTED,
              "attribute '%s' is not supported (camd handles value, value_float(s), "
              "value_int(s))",
              an);
}

static int fold_shape(fold *f, bool size_only) {
  if (!has_input(f, 0)) return ferr(f, CAMD_E_FORMAT, "input 0 is missing");
  int id = camd_graph_find(f->ctx->g, f->node->input[0]);
  if (id < 0)
    return ferr(f, CAMD_E_FORMAT, "input '%s' is not defined before this node", f->node->input[0]);
  camd_shape in;
  camd_dtype dt;
  const void *data;
  bool batched;
  int rc = camd_graph_value(f->ctx->g, id, &in, &dt, &data, &batched);
  if (rc < 0) return rc;
  camd_shape s = {0};
  if (size_only) {
    size_t cnt;
    if (!camd__onnx_shape_count(&in, &cnt)) return ferr(f, CAMD_E_INTERNAL, "bad input shape");
    int64_t *p = alloc_out(f, 1, CAMD_INT64, &rc);
    if (!p) return rc;
    *p = (int64_t)cnt;
    return emit(f, 0, CAMD_INT64, &s, p);
  }
  int64_t start = 0, end = in.ndim;
  if ((rc = attr_int(f, "start", 0, &start)) < 0) return rc;
  if ((rc = attr_int(f, "end", in.ndim, &end)) < 0) return rc;
  if (start < 0) start += in.ndim;
  if (end < 0) end += in.ndim;
  start = start < 0 ? 0 : (start > in.ndim ? in.ndim : start);
  end = end < 0 ? 0 : (end > in.ndim ? in.ndim : end);
  size_t cnt = end > start ? (size_t)(end - start) : 0;
  int64_t *p = alloc_out(f, cnt, CAMD_INT64, &rc);
  if (!p) return rc;
  for (size_t k = 0; k < cnt; k++) p[k] = in.dims[start + (int64_t)k];
  s.ndim = 1;
  s.dims[0] = (int64_t)cnt;
  return emit(f, 0, CAMD_INT64, &s, p);
}

static int fold_gather(fold *f) {
  view d, ix;
  int rc;
  if ((rc = get_input(f, 0, &d)) != 0 || (rc = get_input(f, 1, &ix)) != 0) return rc;
  if (ix.dtype != CAMD_INT64) return ferr(f, CAMD_E_INVALID, "indices must be integers");
  if (d.shape.ndim < 1) return ferr(f, CAMD_E_INVALID, "data must have rank >= 1");
  int64_t axis;
  if ((rc = attr_int(f, "axis", 0, &axis)) < 0) return rc;
  if ((rc = norm_axis(f, axis, d.shape.ndim, &axis)) < 0) return rc;
  int r = d.shape.ndim, q = ix.shape.ndim;
  if (r - 1 + q > CAMD_MAX_DIMS)
    return ferr(f, CAMD_E_UNSUPPORTED, "result would have more than %d dimensions", CAMD_MAX_DIMS);
  camd_shape s = {.ndim = r - 1 + q};
  size_t outer = 1, inner = 1, dim = (size_t)d.shape.dims[axis];
  int o = 0;
  for (int k = 0; k < axis; k++) outer *= (size_t)(s.dims[o++] = d.shape.dims[k]);
  for (int k = 0; k < q; k++) s.dims[o++] = ix.shape.dims[k];
  for (int k = (int)axis + 1; k < r; k++) inner *= (size_t)(s.dims[o++] = d.shape.dims[k]);
  size_t cnt;
  if (!camd__onnx_shape_count(&s, &cnt)) return ferr(f, CAMD_E_LIMIT, "result is too large");
  char *p = alloc_out(f, cnt, d.dtype, &rc);
  if (!p) return rc;
  const int64_t *idx = ix.data;
  size_t es = esize(d.dtype), row = inner * es;
  for (size_t a = 0; a < outer; a++) {
    for (size_t j = 0; j < ix.count; j++) {
      int64_t v = idx[j];
      if (v < 0) v += (int64_t)dim;
      if (v < 0 || v >= (int64_t)dim) {
        free(p);
        return ferr(f, CAMD_E_INVALID, "index %lld is out of range for axis of size %zu",
                    (long long)idx[j], dim);
      }
      memcpy(p + (a * ix.count + j) * row, (const char *)d.data + (a * dim + (size_t)v) * row, row);
    }
  }
  return emit(f, 0, d.dtype, &s, p);
}

/* Axes of Squeeze/Unsqueeze: attribute before opset 13, optional input 1 from 13 on. */
static int get_axes(fold *f, const int64_t **axes, size_t *n, bool *present) {
  if (f->ctx->opset < 13) return attr_ints(f, "axes", axes, n, present);
  *present = has_input(f, 1);
  *axes = NULL;
  *n = 0;
  return *present ? get_ints(f, 1, axes, n) : 0;
}

static int fold_unsqueeze(fold *f) {
  view d;
  const int64_t *axes;
  size_t n;
  bool present;
  int rc;
  if ((rc = get_input(f, 0, &d)) != 0 || (rc = get_axes(f, &axes, &n, &present)) != 0) return rc;
  if (!present || n == 0) return ferr(f, CAMD_E_INVALID, "axes are required");
  if ((size_t)d.shape.ndim + n > CAMD_MAX_DIMS)
    return ferr(f, CAMD_E_UNSUPPORTED, "result would have more than %d dimensions", CAMD_MAX_DIMS);
  int r = d.shape.ndim + (int)n;
  bool mark[CAMD_MAX_DIMS] = {false};
  for (size_t k = 0; k < n; k++) {
    int64_t a = 0;
    if ((rc = norm_axis(f, axes[k], r, &a)) < 0) return rc;
    if (mark[a]) return ferr(f, CAMD_E_INVALID, "axis %lld is repeated", (long long)axes[k]);
    mark[a] = true;
  }
  camd_shape s = {.ndim = r};
  for (int k = 0, j = 0; k < r; k++) s.dims[k] = mark[k] ? 1 : d.shape.dims[j++];
  return emit_copy(f, &d, &s);
}

static int fold_squeeze(fold *f) {
  view d;
  const int64_t *axes;
  size_t n;
  bool present;
  int rc;
  if ((rc = get_input(f, 0, &d)) != 0 || (rc = get_axes(f, &axes, &n, &present)) != 0) return rc;
  bool mark[CAMD_MAX_DIMS] = {false};
  for (size_t k = 0; k < n; k++) {
    int64_t a = 0;
    if ((rc = norm_axis(f, axes[k], d.shape.ndim, &a)) < 0) return rc;
    if (d.shape.dims[a] != 1)
      return ferr(f, CAMD_E_INVALID, "cannot squeeze axis %lld of size %lld", (long long)a,
                  (long long)d.shape.dims[a]);
    mark[a] = true;
  }
  camd_shape s = {0};
  for (int k = 0; k < d.shape.ndim; k++) {
    bool drop = n ? mark[k] : d.shape.dims[k] == 1;
    if (!drop) s.dims[s.ndim++] = d.shape.dims[k];
  }
  return emit_copy(f, &d, &s);
}

static int fold_reshape(fold *f) {
  if (f->ctx->opset < 5) return 1; /* Reshape-1 takes an attribute: left to the engine */
  view d;
  const int64_t *sh;
  size_t n;
  int rc;
  if ((rc = get_input(f, 0, &d)) != 0 || (rc = get_ints(f, 1, &sh, &n)) != 0) return rc;
  int64_t allowzero = 0;
  if (f->ctx->opset >= 14 && (rc = attr_int(f, "allowzero", 0, &allowzero)) < 0) return rc;
  if (n > CAMD_MAX_DIMS)
    return ferr(f, CAMD_E_UNSUPPORTED, "target shape has %zu dimensions (max %d)", n,
                CAMD_MAX_DIMS);
  camd_shape s = {.ndim = (int)n};
  int infer = -1;
  size_t known = 1;
  for (size_t k = 0; k < n; k++) {
    int64_t v = sh[k];
    if (v == 0 && !allowzero) {
      if ((int)k >= d.shape.ndim)
        return ferr(f, CAMD_E_SHAPE, "target dim %zu is 0 but the input has rank %d", k,
                    d.shape.ndim);
      v = d.shape.dims[k];
    }
    if (v == -1) {
      if (infer >= 0) return ferr(f, CAMD_E_INVALID, "target shape has more than one -1");
      infer = (int)k;
      continue;
    }
    if (v < 0) return ferr(f, CAMD_E_INVALID, "target dim %lld is invalid", (long long)v);
    s.dims[k] = v;
    if (!camd_size_mul(known, (size_t)v, &known))
      return ferr(f, CAMD_E_SHAPE, "target shape overflows");
  }
  if (infer >= 0) {
    if (known == 0 || d.count % known)
      return ferr(f, CAMD_E_SHAPE, "cannot infer -1: %zu elements do not divide by %zu", d.count,
                  known);
    s.dims[infer] = (int64_t)(d.count / known);
    known = d.count;
  }
  if (known != d.count)
    return ferr(f, CAMD_E_SHAPE, "cannot reshape %zu elements into %zu", d.count, known);
  return emit_copy(f, &d, &s);
}

static int fold_flatten(fold *f) {
  view d;
  int rc;
  if ((rc = get_input(f, 0, &d)) != 0) return rc;
  int64_t axis;
  if ((rc = attr_int(f, "axis", 1, &axis)) < 0) return rc;
  if (axis < -(int64_t)d.shape.ndim || axis > d.shape.ndim)
    return ferr(f, CAMD_E_INVALID, "axis %lld is out of range", (long long)axis);
  if (axis < 0) axis += d.shape.ndim;
  camd_shape s = {.ndim = 2, .dims = {1, 1}};
  for (int k = 0; k < d.shape.ndim; k++) s.dims[k < axis ? 0 : 1] *= d.shape.dims[k];
  return emit_copy(f, &d, &s);
}

static int fold_concat(fold *f) {
  size_t n = f->node->n_input;
  if (n == 0 || n > 4096) return ferr(f, CAMD_E_INVALID, "needs 1 to 4096 inputs");
  view *v = calloc(n, sizeof(view));
  if (!v) return ferr(f, CAMD_E_NOMEM, "out of memory");
  int rc = 0;
  int64_t axis = 0;
  camd_shape s;
  char *p = NULL;
  for (size_t k = 0; k < n && rc == 0; k++) rc = get_input(f, k, &v[k]);
  if (rc != 0) goto done;
  if ((rc = attr_int(f, "axis", 0, &axis)) < 0) goto done;
  if (!find_attr(f->node, "axis")) {
    rc = ferr(f, CAMD_E_FORMAT, "attribute 'axis' is required");
    goto done;
  }
  s = v[0].shape;
  if ((rc = norm_axis(f, axis, s.ndim, &axis)) < 0) goto done;
  s.dims[axis] = 0;
  for (size_t k = 0; k < n; k++) {
    bool ok = v[k].dtype == v[0].dtype && v[k].shape.ndim == s.ndim;
    for (int a = 0; ok && a < s.ndim; a++) ok = a == axis || v[k].shape.dims[a] == s.dims[a];
    if (!ok) {
      rc = ferr(f, CAMD_E_SHAPE, "input '%s' does not match the others in type or shape",
                f->node->input[k]);
      goto done;
    }
    s.dims[axis] += v[k].shape.dims[axis];
  }
  size_t cnt, outer = 1, inner = 1, es = esize(v[0].dtype), off = 0;
  if (!camd__onnx_shape_count(&s, &cnt)) {
    rc = ferr(f, CAMD_E_LIMIT, "result is too large");
    goto done;
  }
  if (!(p = alloc_out(f, cnt, v[0].dtype, &rc))) goto done;
  for (int a = 0; a < axis; a++) outer *= (size_t)s.dims[a];
  for (int a = (int)axis + 1; a < s.ndim; a++) inner *= (size_t)s.dims[a];
  for (size_t o = 0; o < outer; o++) {
    for (size_t k = 0; k < n; k++) {
      size_t chunk = (size_t)v[k].shape.dims[axis] * inner * es;
      memcpy(p + off, (const char *)v[k].data + o * chunk, chunk);
      off += chunk;
    }
  }
  rc = emit(f, 0, v[0].dtype, &s, p);
  p = NULL;
done:
  free(p);
  free(v);
  return rc;
}

static int fold_constant_of_shape(fold *f) {
  const int64_t *sh;
  size_t n;
  int rc;
  if ((rc = get_ints(f, 0, &sh, &n)) != 0) return rc;
  if (n > CAMD_MAX_DIMS)
    return ferr(f, CAMD_E_UNSUPPORTED, "shape has %zu dimensions (max %d)", n, CAMD_MAX_DIMS);
  camd_shape s = {.ndim = (int)n};
  for (size_t k = 0; k < n; k++) {
    if (sh[k] < 0) return ferr(f, CAMD_E_INVALID, "negative dimension %lld", (long long)sh[k]);
    s.dims[k] = sh[k];
  }
  size_t cnt;
  if (!camd__onnx_shape_count(&s, &cnt)) return ferr(f, CAMD_E_LIMIT, "shape overflows");
  camd_dtype dt = CAMD_FLOAT32;
  float fv = 0;
  int64_t iv = 0;
  const Onnx__AttributeProto *a = find_attr(f->node, "value");
  if (a) {
    if (!a->t) return ferr(f, CAMD_E_FORMAT, "attribute 'value' must be a tensor");
    char what[CAMD_ERROR_MESSAGE_MAX / 2];
    snprintf(what, sizeof(what), "node '%s' (ConstantOfShape): attribute 'value'", f->name);
    camd__onnx_tensor t;
    if ((rc = camd__onnx_tensor_decode(f->ctx, a->t, what, &t, f->err)) < 0) return rc;
    size_t tc;
    camd__onnx_shape_count(&t.shape, &tc);
    if (tc != 1) {
      free(t.data);
      return ferr(f, CAMD_E_INVALID, "attribute 'value' must hold one element, has %zu", tc);
    }
    dt = t.dtype;
    if (dt == CAMD_FLOAT32)
      fv = *(float *)t.data;
    else
      iv = *(int64_t *)t.data;
    free(t.data);
  }
  void *p = alloc_out(f, cnt, dt, &rc);
  if (!p) return rc;
  for (size_t k = 0; k < cnt; k++) {
    if (dt == CAMD_FLOAT32)
      ((float *)p)[k] = fv;
    else
      ((int64_t *)p)[k] = iv;
  }
  return emit(f, 0, dt, &s, p);
}

static int fold_cast(fold *f) {
  view d;
  int rc;
  if ((rc = get_input(f, 0, &d)) != 0) return rc;
  int64_t to;
  if ((rc = attr_int(f, "to", 0, &to)) < 0) return rc;
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
      return ferr(f, CAMD_E_UNSUPPORTED, "cast to %s is not supported",
                  camd__onnx_type_name((int32_t)to));
  }
  void *p = alloc_out(f, d.count, dt, &rc);
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
          return ferr(f, CAMD_E_INVALID, "value %g does not fit an integer", (double)x);
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
  return emit(f, 0, dt, &d.shape, p);
}

static int fold_slice(fold *f) {
  view d;
  int rc;
  if ((rc = get_input(f, 0, &d)) != 0) return rc;
  const int64_t *starts = NULL, *ends = NULL, *axes = NULL, *steps = NULL;
  size_t ns = 0, ne = 0, na = 0, nst = 0;
  bool present;
  if (f->ctx->opset < 10) {
    if ((rc = attr_ints(f, "starts", &starts, &ns, &present)) < 0 ||
        (rc = attr_ints(f, "ends", &ends, &ne, &present)) < 0 ||
        (rc = attr_ints(f, "axes", &axes, &na, &present)) < 0)
      return rc;
  } else {
    if ((rc = get_ints(f, 1, &starts, &ns)) != 0 || (rc = get_ints(f, 2, &ends, &ne)) != 0)
      return rc;
    if (has_input(f, 3) && (rc = get_ints(f, 3, &axes, &na)) != 0) return rc;
    if (has_input(f, 4) && (rc = get_ints(f, 4, &steps, &nst)) != 0) return rc;
  }
  if (ne != ns || (axes && na != ns) || (steps && nst != ns) || ns > (size_t)d.shape.ndim)
    return ferr(f, CAMD_E_INVALID, "starts, ends, axes and steps must have the same length");
  int r = d.shape.ndim;
  int64_t st[CAMD_MAX_DIMS], sp[CAMD_MAX_DIMS];
  bool seen[CAMD_MAX_DIMS] = {false};
  camd_shape s = d.shape;
  for (int a = 0; a < r; a++) st[a] = 0, sp[a] = 1;
  for (size_t j = 0; j < ns; j++) {
    int64_t a = axes ? axes[j] : (int64_t)j;
    if ((rc = norm_axis(f, a, r, &a)) < 0) return rc;
    if (seen[a]) return ferr(f, CAMD_E_INVALID, "axis %lld is repeated", (long long)a);
    seen[a] = true;
    int64_t dim = d.shape.dims[a], b = starts[j], e = ends[j], step = steps ? steps[j] : 1;
    if (step == 0) return ferr(f, CAMD_E_INVALID, "step must not be 0");
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
  if (!camd__onnx_shape_count(&s, &cnt)) return ferr(f, CAMD_E_LIMIT, "result is too large");
  char *p = alloc_out(f, cnt, d.dtype, &rc);
  if (!p) return rc;
  int64_t stride[CAMD_MAX_DIMS];
  int64_t acc = 1;
  for (int a = r - 1; a >= 0; a--) {
    stride[a] = acc;
    acc *= d.shape.dims[a];
  }
  size_t es = esize(d.dtype);
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
  return emit(f, 0, d.dtype, &s, p);
}

static int fold_range(fold *f) {
  view v[3];
  int rc;
  for (size_t k = 0; k < 3; k++) {
    if ((rc = get_input(f, k, &v[k])) != 0) return rc;
    if (v[k].count != 1 || v[k].dtype != v[0].dtype)
      return ferr(f, CAMD_E_INVALID, "start, limit and delta must be scalars of one type");
  }
  camd_shape s = {.ndim = 1};
  size_t n = 0;
  void *p;
  if (v[0].dtype == CAMD_INT64) {
    int64_t a = *(const int64_t *)v[0].data, b = *(const int64_t *)v[1].data,
            dl = *(const int64_t *)v[2].data, diff;
    if (dl == 0) return ferr(f, CAMD_E_INVALID, "delta must not be 0");
    if (__builtin_sub_overflow(b, a, &diff)) return ferr(f, CAMD_E_LIMIT, "range overflows");
    if (dl > 0 && diff > 0) n = (size_t)((uint64_t)(diff - 1) / (uint64_t)dl + 1);
    if (dl < 0 && diff < 0)
      n = (size_t)(((uint64_t)0 - (uint64_t)diff - 1) / ((uint64_t)0 - (uint64_t)dl) + 1);
    if (!(p = alloc_out(f, n, CAMD_INT64, &rc))) return rc;
    for (size_t k = 0; k < n; k++) ((int64_t *)p)[k] = a + (int64_t)k * dl;
  } else {
    float a = *(const float *)v[0].data, b = *(const float *)v[1].data,
          dl = *(const float *)v[2].data;
    double nd = dl != 0 ? ceil(((double)b - a) / dl) : -1;
    if (!(nd >= 0 && nd <= (double)CAMD__ONNX_MAX_FOLD_ELEMS))
      return ferr(f, CAMD_E_INVALID, "invalid range (start %g, limit %g, delta %g)", (double)a,
                  (double)b, (double)dl);
    n = (size_t)nd;
    if (!(p = alloc_out(f, n, CAMD_FLOAT32, &rc))) return rc;
    for (size_t k = 0; k < n; k++) ((float *)p)[k] = a + (float)k * dl;
  }
  s.dims[0] = (int64_t)n;
  return emit(f, 0, v[0].dtype, &s, p);
}

/* numpy broadcast of a and b into o; false if incompatible. */
static bool bcast(const camd_shape *a, const camd_shape *b, camd_shape *o) {
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

/* Offset into `in` of the element broadcast to flat position k of `out`. */
static size_t bcast_offset(const camd_shape *in, const camd_shape *out, size_t k) {
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

typedef enum { B_ADD, B_SUB, B_MUL, B_DIV, B_EQ, B_LT, B_GT } binop;

static int fold_binary(fold *f, binop op) {
  view a, b;
  int rc;
  if ((rc = get_input(f, 0, &a)) != 0 || (rc = get_input(f, 1, &b)) != 0) return rc;
  if (a.dtype != b.dtype)
    return ferr(f, CAMD_E_INVALID, "inputs have different types (%s and %s)", dtype_name(a.dtype),
                dtype_name(b.dtype));
  camd_shape s;
  if (!bcast(&a.shape, &b.shape, &s)) return ferr(f, CAMD_E_SHAPE, "input shapes do not broadcast");
  size_t cnt;
  if (!camd__onnx_shape_count(&s, &cnt)) return ferr(f, CAMD_E_LIMIT, "result is too large");
  bool cmp = op >= B_EQ;
  camd_dtype odt = cmp ? CAMD_INT64 : a.dtype;
  void *p = alloc_out(f, cnt, odt, &rc);
  if (!p) return rc;
  for (size_t k = 0; k < cnt; k++) {
    size_t ia = bcast_offset(&a.shape, &s, k), ib = bcast_offset(&b.shape, &s, k);
    if (a.dtype == CAMD_FLOAT32) {
      float x = ((const float *)a.data)[ia], y = ((const float *)b.data)[ib];
      switch (op) {
        case B_ADD:
          ((float *)p)[k] = x + y;
          break;
        case B_SUB:
          ((float *)p)[k] = x - y;
          break;
        case B_MUL:
          ((float *)p)[k] = x * y;
          break;
        case B_DIV:
          ((float *)p)[k] = x / y;
          break;
        case B_EQ:
          ((int64_t *)p)[k] = x == y;
          break;
        case B_LT:
          ((int64_t *)p)[k] = x < y;
          break;
        case B_GT:
          ((int64_t *)p)[k] = x > y;
          break;
      }
    } else {
      int64_t x = ((const int64_t *)a.data)[ia], y = ((const int64_t *)b.data)[ib], z = 0;
      bool bad = false;
      switch (op) {
        case B_ADD:
          bad = __builtin_add_overflow(x, y, &z);
          break;
        case B_SUB:
          bad = __builtin_sub_overflow(x, y, &z);
          break;
        case B_MUL:
          bad = __builtin_mul_overflow(x, y, &z);
          break;
        case B_DIV:
          bad = y == 0 || (x == INT64_MIN && y == -1);
          if (!bad) z = x / y;
          break;
        case B_EQ:
          z = x == y;
          break;
        case B_LT:
          z = x < y;
          break;
        case B_GT:
          z = x > y;
          break;
      }
      if (bad) {
        free(p);
        return ferr(f, CAMD_E_INVALID, "integer overflow or division by zero (%lld, %lld)",
                    (long long)x, (long long)y);
      }
      ((int64_t *)p)[k] = z;
    }
  }
  return emit(f, 0, odt, &s, p);
}

static int fold_where(fold *f) {
  view c, x, y;
  int rc;
  if ((rc = get_input(f, 0, &c)) != 0 || (rc = get_input(f, 1, &x)) != 0 ||
      (rc = get_input(f, 2, &y)) != 0)
    return rc;
  if (x.dtype != y.dtype) return ferr(f, CAMD_E_INVALID, "X and Y have different types");
  if (c.dtype != CAMD_INT64) return ferr(f, CAMD_E_INVALID, "condition must be bool");
  camd_shape t, s;
  if (!bcast(&c.shape, &x.shape, &t) || !bcast(&t, &y.shape, &s))
    return ferr(f, CAMD_E_SHAPE, "input shapes do not broadcast");
  size_t cnt, es = esize(x.dtype);
  if (!camd__onnx_shape_count(&s, &cnt)) return ferr(f, CAMD_E_LIMIT, "result is too large");
  char *p = alloc_out(f, cnt, x.dtype, &rc);
  if (!p) return rc;
  for (size_t k = 0; k < cnt; k++) {
    bool cond = ((const int64_t *)c.data)[bcast_offset(&c.shape, &s, k)] != 0;
    const view *src = cond ? &x : &y;
    memcpy(p + k * es, (const char *)src->data + bcast_offset(&src->shape, &s, k) * es, es);
  }
  return emit(f, 0, x.dtype, &s, p);
}

/* ---- dispatch ---- */

typedef struct fold_op {
  const char *op_type;
  bool loader_only; /* no engine op exists */
  bool any_input;   /* folds whatever its inputs are (reads shapes only) */
} fold_op;

static const fold_op fold_ops[] = {
    {"Constant", true, true},  {"Shape", true, true},
    {"Size", true, true},      {"ConstantOfShape", true, false},
    {"Gather", true, false},   {"Cast", true, false},
    {"Range", true, false},    {"Equal", true, false},
    {"Less", true, false},     {"Greater", true, false},
    {"Where", true, false},    {"Unsqueeze", false, false},
    {"Squeeze", false, false}, {"Concat", false, false},
    {"Slice", false, false},   {"Reshape", false, false},
    {"Flatten", false, false}, {"Add", false, false},
    {"Sub", false, false},     {"Mul", false, false},
    {"Div", false, false},
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

int camd__onnx_fold(camd__onnx_ctx *ctx, const Onnx__NodeProto *node, const char *node_name,
                    camd_error *err) {
  fold f = {ctx, node, node_name, err};
  const char *op = camd__onnx_str(node->op_type);
  if (!camd__onnx_fold_known(op)) return 1;
  if (!strcmp(op, "Constant")) return fold_constant(&f);
  if (!strcmp(op, "Shape")) return fold_shape(&f, false);
  if (!strcmp(op, "Size")) return fold_shape(&f, true);
  if (!strcmp(op, "ConstantOfShape")) return fold_constant_of_shape(&f);
  if (!strcmp(op, "Gather")) return fold_gather(&f);
  if (!strcmp(op, "Cast")) return fold_cast(&f);
  if (!strcmp(op, "Range")) return fold_range(&f);
  if (!strcmp(op, "Where")) return fold_where(&f);
  if (!strcmp(op, "Unsqueeze")) return fold_unsqueeze(&f);
  if (!strcmp(op, "Squeeze")) return fold_squeeze(&f);
  if (!strcmp(op, "Concat")) return fold_concat(&f);
  if (!strcmp(op, "Slice")) return fold_slice(&f);
  if (!strcmp(op, "Reshape")) return fold_reshape(&f);
  if (!strcmp(op, "Flatten")) return fold_flatten(&f);
  static const struct {
    const char *name;
    binop op;
  } bins[] = {{"Add", B_ADD},  {"Sub", B_SUB}, {"Mul", B_MUL},   {"Div", B_DIV},
              {"Equal", B_EQ}, {"Less", B_LT}, {"Greater", B_GT}};
  for (size_t k = 0; k < sizeof(bins) / sizeof(bins[0]); k++) {
    if (!strcmp(op, bins[k].name)) return fold_binary(&f, bins[k].op);
  }
  return 1;
}
