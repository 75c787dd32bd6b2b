/* Load-time evaluation of arithmetic on constants: the elementwise ops, Clip, reductions and
 * DequantizeLinear, as shape sub-graphs (TF "SAME" padding, torch's pad arithmetic) and
 * quantised weights use them.
 *
 * ONNX semantics on the folded types (int64, float32): integer Div truncates toward zero, Mod
 * follows the divisor's sign unless fmod = 1, Round is half-to-even; float results are computed
 * in double and rounded once to float32 (the correctly rounded float32 result for + - * /).
 * Integer overflow, division by zero and negative integer exponents are load errors naming the
 * node, never undefined behaviour.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx_fold.h"

#define MAX_VARIADIC 32 /* inputs of Max / Min folded at once */

typedef enum arith {
  A_ADD,
  A_SUB,
  A_MUL,
  A_DIV,
  A_MOD,
  A_POW,
  A_MAX,
  A_MIN,
  A_EQ,
  A_LT,
  A_LE,
  A_GT,
  A_GE,
  A_AND,
  A_OR,
  A_XOR
} arith;

static const struct {
  const char *name;
  arith op;
} arith_ops[] = {{"Add", A_ADD},           {"Sub", A_SUB}, {"Mul", A_MUL},        {"Div", A_DIV},
                 {"Mod", A_MOD},           {"Pow", A_POW}, {"Max", A_MAX},        {"Min", A_MIN},
                 {"Equal", A_EQ},          {"Less", A_LT}, {"LessOrEqual", A_LE}, {"Greater", A_GT},
                 {"GreaterOrEqual", A_GE}, {"And", A_AND}, {"Or", A_OR},          {"Xor", A_XOR}};

static double fget(const camd__fold_view *v, size_t i) {
  return v->dtype == CAMD_FLOAT32 ? (double)((const float *)v->data)[i]
                                  : (double)((const int64_t *)v->data)[i];
}

static int64_t iget(const camd__fold_view *v, size_t i) {
  return ((const int64_t *)v->data)[i];
}

/* Integer power with overflow detection; false on overflow. */
static bool ipow(int64_t b, int64_t e, int64_t *out) {
  int64_t r = 1;
  while (e > 0) {
    if ((e & 1) && __builtin_mul_overflow(r, b, &r)) return false;
    e >>= 1;
    if (e && __builtin_mul_overflow(b, b, &b)) return false;
  }
  *out = r;
  return true;
}

/* One integer operation; false on overflow / division by zero / negative exponent. */
static bool iop(arith op, bool fmod_mode, int64_t x, int64_t y, int64_t *z) {
  switch (op) {
    case A_ADD:
      return !__builtin_add_overflow(x, y, z);
    case A_SUB:
      return !__builtin_sub_overflow(x, y, z);
    case A_MUL:
      return !__builtin_mul_overflow(x, y, z);
    case A_DIV:
      if (y == 0 || (x == INT64_MIN && y == -1)) return false;
      *z = x / y;
      return true;
    case A_MOD:
      if (y == 0 || (x == INT64_MIN && y == -1)) return false;
      *z = x % y;
      if (!fmod_mode && *z != 0 && ((*z < 0) != (y < 0))) *z += y; /* the divisor's sign */
      return true;
    case A_POW:
      return y >= 0 && ipow(x, y, z);
    case A_MAX:
      *z = x > y ? x : y;
      return true;
    case A_MIN:
      *z = x < y ? x : y;
      return true;
    case A_EQ:
      *z = x == y;
      return true;
    case A_LT:
      *z = x < y;
      return true;
    case A_LE:
      *z = x <= y;
      return true;
    case A_GT:
      *z = x > y;
      return true;
    case A_GE:
      *z = x >= y;
      return true;
    case A_AND:
      *z = (x != 0) && (y != 0);
      return true;
    case A_OR:
      *z = (x != 0) || (y != 0);
      return true;
    case A_XOR:
      *z = (x != 0) != (y != 0);
      return true;
  }
  return false;
}

static double fop(arith op, double x, double y) {
  switch (op) {
    case A_ADD:
      return x + y;
    case A_SUB:
      return x - y;
    case A_MUL:
      return x * y;
    case A_DIV:
      return x / y;
    case A_MOD:
      return fmod(x, y);
    case A_POW:
      return pow(x, y);
    case A_MAX:
      return isnan(x) || isnan(y) ? NAN : (x > y ? x : y);
    case A_MIN:
      return isnan(x) || isnan(y) ? NAN : (x < y ? x : y);
    case A_EQ:
      return x == y;
    case A_LT:
      return x < y;
    case A_LE:
      return x <= y;
    case A_GT:
      return x > y;
    case A_GE:
      return x >= y;
    default:
      return NAN; /* logic ops take bools (int64) only */
  }
}

int camd__fold_arith(camd__fold *f) {
  const char *type = camd__onnx_str(f->node->op_type);
  arith op = A_ADD;
  bool found = false;
  for (size_t k = 0; k < sizeof(arith_ops) / sizeof(arith_ops[0]) && !found; k++) {
    if (!strcmp(type, arith_ops[k].name)) op = arith_ops[k].op, found = true;
  }
  if (!found) return 1;
  size_t n = f->node->n_input;
  bool variadic = op == A_MAX || op == A_MIN;
  if (variadic ? (n < 1 || n > MAX_VARIADIC) : n != 2)
    return camd__fold_err(f, CAMD_E_INVALID, "has %zu inputs; it takes %s", n,
                          variadic ? "1 to 32" : "2");
  camd__fold_view v[MAX_VARIADIC] = {{0}};
  camd_shape s = {0};
  int rc;
  for (size_t k = 0; k < n; k++) {
    if ((rc = camd__fold_input(f, k, &v[k])) != 0) return rc;
    if (k == 0) {
      s = v[0].shape;
    } else {
      camd_shape t = s;
      if (!camd__fold_bcast(&t, &v[k].shape, &s))
        return camd__fold_err(f, CAMD_E_SHAPE, "input shapes do not broadcast");
    }
    if (v[k].dtype != v[0].dtype && op != A_POW)
      return camd__fold_err(f, CAMD_E_INVALID, "inputs have different element types");
  }
  bool logic = op == A_AND || op == A_OR || op == A_XOR;
  if (logic && v[0].dtype != CAMD_INT64)
    return camd__fold_err(f, CAMD_E_INVALID, "takes bool inputs");
  bool cmp = (op >= A_EQ && op <= A_GE) || logic;
  /* Integer arithmetic stays integer; anything with a float (Pow's exponent too) is float. */
  bool ints = v[0].dtype == CAMD_INT64 && (op != A_POW || v[1].dtype == CAMD_INT64);
  camd_dtype odt = cmp ? CAMD_INT64 : v[0].dtype;
  int64_t fmod_mode = 0;
  if (op == A_MOD && (rc = camd__fold_attr_int(f, "fmod", 0, &fmod_mode)) < 0) return rc;
  if (op == A_MOD && !ints && !fmod_mode)
    return camd__fold_err(f, CAMD_E_INVALID, "float Mod needs fmod = 1");
  size_t cnt;
  if (!camd__onnx_shape_count(&s, &cnt))
    return camd__fold_err(f, CAMD_E_LIMIT, "result is too large");
  void *p = camd__fold_alloc(f, cnt, odt, &rc);
  if (!p) return rc;
  for (size_t k = 0; k < cnt; k++) {
    size_t o0 = camd__fold_bcast_offset(&v[0].shape, &s, k);
    if (ints) {
      int64_t acc = iget(&v[0], o0);
      for (size_t j = 1; j < n; j++) {
        int64_t y = iget(&v[j], camd__fold_bcast_offset(&v[j].shape, &s, k)), z;
        if (!iop(op, fmod_mode != 0, acc, y, &z)) {
          free(p);
          return camd__fold_err(f, CAMD_E_INVALID,
                                "integer overflow, division by zero or negative exponent "
                                "(%lld, %lld)",
                                (long long)acc, (long long)y);
        }
        acc = z;
      }
      ((int64_t *)p)[k] = acc;
    } else {
      double acc = fget(&v[0], o0);
      for (size_t j = 1; j < n; j++)
        acc = fop(op, acc, fget(&v[j], camd__fold_bcast_offset(&v[j].shape, &s, k)));
      if (cmp)
        ((int64_t *)p)[k] = acc != 0.0;
      else if (odt == CAMD_FLOAT32)
        ((float *)p)[k] = (float)acc;
      else /* integer base, float exponent: ONNX keeps the base's type */
        ((int64_t *)p)[k] = isfinite(acc) && fabs(acc) < 9.2e18 ? (int64_t)acc : 0;
    }
  }
  return camd__fold_emit(f, 0, odt, &s, p);
}

int camd__fold_unary(camd__fold *f) {
  const char *op = camd__onnx_str(f->node->op_type);
  camd__fold_view d;
  int rc;
  if ((rc = camd__fold_input(f, 0, &d)) != 0) return rc;
  bool is_not = !strcmp(op, "Not");
  bool float_only = !strcmp(op, "Sqrt") || !strcmp(op, "Reciprocal");
  if (float_only && d.dtype != CAMD_FLOAT32)
    return camd__fold_err(f, CAMD_E_INVALID, "takes a float input");
  if (is_not && d.dtype != CAMD_INT64) return camd__fold_err(f, CAMD_E_INVALID, "takes a bool");
  void *p = camd__fold_alloc(f, d.count, d.dtype, &rc);
  if (!p) return rc;
  for (size_t k = 0; k < d.count; k++) {
    if (d.dtype == CAMD_INT64) {
      int64_t x = iget(&d, k), z = x; /* Ceil / Floor / Round of an integer: itself */
      if (is_not) {
        z = x == 0;
      } else if (!strcmp(op, "Sign")) {
        z = (x > 0) - (x < 0);
      } else if (!strcmp(op, "Neg") || (!strcmp(op, "Abs") && x < 0)) {
        if (x == INT64_MIN) {
          free(p);
          return camd__fold_err(f, CAMD_E_INVALID, "integer overflow");
        }
        z = -x;
      }
      ((int64_t *)p)[k] = z;
    } else {
      double x = fget(&d, k), z;
      if (!strcmp(op, "Ceil"))
        z = ceil(x);
      else if (!strcmp(op, "Floor"))
        z = floor(x);
      else if (!strcmp(op, "Round"))
        z = nearbyint(x); /* default rounding mode: half to even */
      else if (!strcmp(op, "Neg"))
        z = -x;
      else if (!strcmp(op, "Abs"))
        z = fabs(x);
      else if (!strcmp(op, "Sqrt"))
        z = sqrt(x);
      else if (!strcmp(op, "Reciprocal"))
        z = 1.0 / x;
      else /* Sign */
        z = isnan(x) ? x : (double)((x > 0) - (x < 0));
      ((float *)p)[k] = (float)z;
    }
  }
  return camd__fold_emit(f, 0, d.dtype, &d.shape, p);
}

int camd__fold_clip(camd__fold *f) {
  camd__fold_view d, lo_v, hi_v;
  int rc;
  if ((rc = camd__fold_input(f, 0, &d)) != 0) return rc;
  double lo = -INFINITY, hi = INFINITY;
  if (f->ctx->opset < 11) {
    float a;
    if ((rc = camd__fold_attr_float(f, "min", -INFINITY, &a)) < 0) return rc;
    lo = a;
    if ((rc = camd__fold_attr_float(f, "max", INFINITY, &a)) < 0) return rc;
    hi = a;
  } else {
    const camd__fold_view *bounds[2] = {&lo_v, &hi_v};
    for (size_t k = 1; k <= 2; k++) {
      if (!camd__fold_has_input(f, k)) continue;
      camd__fold_view *b = (camd__fold_view *)bounds[k - 1];
      if ((rc = camd__fold_input(f, k, b)) != 0) return rc;
      if (b->count != 1 || b->dtype != d.dtype)
        return camd__fold_err(f, CAMD_E_INVALID, "min and max must be scalars of the input's type");
      *(k == 1 ? &lo : &hi) = fget(b, 0);
    }
  }
  void *p = camd__fold_alloc(f, d.count, d.dtype, &rc);
  if (!p) return rc;
  for (size_t k = 0; k < d.count; k++) {
    if (d.dtype == CAMD_INT64) {
      int64_t x = iget(&d, k);
      /* int64 bounds are exact in double only up to 2^53: compare as integers when given. */
      if (lo > -INFINITY && (double)x < lo) x = (int64_t)lo;
      if (hi < INFINITY && (double)x > hi) x = (int64_t)hi;
      ((int64_t *)p)[k] = x;
    } else {
      double x = fget(&d, k);
      if (x < lo) x = lo;
      if (x > hi) x = hi;
      ((float *)p)[k] = (float)x;
    }
  }
  return camd__fold_emit(f, 0, d.dtype, &d.shape, p);
}

int camd__fold_reduce(camd__fold *f) {
  const char *op = camd__onnx_str(f->node->op_type);
  camd__fold_view d;
  int rc;
  if ((rc = camd__fold_input(f, 0, &d)) != 0) return rc;
  bool sum = !strcmp(op, "ReduceSum"), prod = !strcmp(op, "ReduceProd"),
       mx = !strcmp(op, "ReduceMax"), mean = !strcmp(op, "ReduceMean");
  if (mean && d.dtype != CAMD_FLOAT32) return camd__fold_err(f, CAMD_E_INVALID, "takes floats");
  /* axes: an input from opset 13 (ReduceSum) / 18 (the others), an attribute before. */
  const int64_t *axes = NULL;
  size_t na = 0;
  bool present = false;
  int from = sum ? 13 : 18;
  if (f->ctx->opset >= from) {
    present = camd__fold_has_input(f, 1);
    if (present && (rc = camd__fold_ints(f, 1, &axes, &na)) != 0) return rc;
  } else if ((rc = camd__fold_attr_ints(f, "axes", &axes, &na, &present)) < 0) {
    return rc;
  }
  int64_t keep, noop;
  if ((rc = camd__fold_attr_int(f, "keepdims", 1, &keep)) < 0 ||
      (rc = camd__fold_attr_int(f, "noop_with_empty_axes", 0, &noop)) < 0)
    return rc;
  int r = d.shape.ndim;
  bool red[CAMD_MAX_DIMS] = {false};
  if (na == 0 && noop) { /* no axes and noop_with_empty_axes: the input itself */
    void *q = camd__fold_alloc(f, d.count, d.dtype, &rc);
    if (!q) return rc;
    memcpy(q, d.data, d.count * camd__fold_esize(d.dtype));
    return camd__fold_emit(f, 0, d.dtype, &d.shape, q);
  }
  for (int a = 0; a < r; a++) red[a] = na == 0;
  for (size_t k = 0; k < na; k++) {
    int64_t a;
    if ((rc = camd__fold_axis(f, axes[k], r, &a)) < 0) return rc;
    red[a] = true;
  }
  camd_shape s = {0};
  size_t group = 1;
  for (int a = 0; a < r; a++) {
    if (red[a]) group *= (size_t)d.shape.dims[a];
    if (!red[a] || keep) s.dims[s.ndim++] = red[a] ? 1 : d.shape.dims[a];
  }
  size_t cnt;
  if (!camd__onnx_shape_count(&s, &cnt))
    return camd__fold_err(f, CAMD_E_LIMIT, "result is too large");
  if (group == 0 && (mx || !strcmp(op, "ReduceMin")))
    return camd__fold_err(f, CAMD_E_INVALID, "reduces an empty axis");
  void *p = camd__fold_alloc(f, cnt, d.dtype, &rc);
  if (!p) return rc;
  double *acc = calloc(cnt ? cnt : 1, sizeof(double));
  int64_t *iacc = calloc(cnt ? cnt : 1, sizeof(int64_t));
  bool *seen = calloc(cnt ? cnt : 1, sizeof(bool));
  if (!acc || !iacc || !seen) {
    free(acc), free(iacc), free(seen), free(p);
    return camd__fold_err(f, CAMD_E_NOMEM, "out of memory");
  }
  bool overflow = false;
  for (size_t k = 0; k < d.count && !overflow; k++) {
    size_t rem = k, o = 0, stride = 1;
    for (int a = r - 1; a >= 0; a--) { /* output index: reduced axes dropped */
      size_t i = rem % (size_t)d.shape.dims[a];
      rem /= (size_t)d.shape.dims[a];
      if (!red[a]) {
        o += i * stride;
        stride *= (size_t)d.shape.dims[a];
      }
    }
    if (d.dtype == CAMD_INT64) {
      int64_t x = iget(&d, k), z = x;
      if (seen[o]) {
        if (sum)
          overflow = __builtin_add_overflow(iacc[o], x, &z);
        else if (prod)
          overflow = __builtin_mul_overflow(iacc[o], x, &z);
        else
          z = mx ? (x > iacc[o] ? x : iacc[o]) : (x < iacc[o] ? x : iacc[o]);
      }
      iacc[o] = z;
    } else {
      double x = fget(&d, k), z = x;
      if (seen[o]) {
        if (sum || mean)
          z = acc[o] + x;
        else if (prod)
          z = acc[o] * x;
        else
          z = isnan(x) || isnan(acc[o]) ? NAN : (mx ? fmax(x, acc[o]) : fmin(x, acc[o]));
      }
      acc[o] = z;
    }
    seen[o] = true;
  }
  for (size_t o = 0; o < cnt; o++) {
    if (d.dtype == CAMD_INT64)
      ((int64_t *)p)[o] = seen[o] ? iacc[o] : (prod ? 1 : 0);
    else
      ((float *)p)[o] = (float)(seen[o] ? (mean ? acc[o] / (double)group : acc[o])
                                        : (prod ? 1.0 : (mean ? NAN : 0.0)));
  }
  free(acc), free(iacc), free(seen);
  if (overflow) {
    free(p);
    return camd__fold_err(f, CAMD_E_INVALID, "integer overflow");
  }
  return camd__fold_emit(f, 0, d.dtype, &s, p);
}

int camd__fold_dequantize(camd__fold *f) {
  camd__fold_view x, sc, zp = {0};
  int rc;
  if ((rc = camd__fold_input(f, 0, &x)) != 0 || (rc = camd__fold_input(f, 1, &sc)) != 0) return rc;
  bool has_zp = camd__fold_has_input(f, 2);
  if (has_zp && (rc = camd__fold_input(f, 2, &zp)) != 0) return rc;
  if (x.dtype != CAMD_INT64 || sc.dtype != CAMD_FLOAT32 || (has_zp && zp.dtype != CAMD_INT64))
    return camd__fold_err(f, CAMD_E_INVALID,
                          "needs an integer input, a float scale and an integer zero point");
  if (has_zp && zp.count != sc.count)
    return camd__fold_err(f, CAMD_E_INVALID, "scale and zero point differ in size");
  int64_t axis = 1;
  if ((rc = camd__fold_attr_int(f, "axis", 1, &axis)) < 0) return rc;
  size_t outer = 1, inner = 1, dim = 1;
  if (sc.count > 1) { /* per-axis when the scale has several entries ([1] is per-tensor) */
    if (sc.shape.ndim != 1)
      return camd__fold_err(f, CAMD_E_INVALID, "scale must be a scalar or 1-D");
    if ((rc = camd__fold_axis(f, axis, x.shape.ndim, &axis)) < 0) return rc;
    dim = (size_t)x.shape.dims[axis];
    if (dim != sc.count)
      return camd__fold_err(f, CAMD_E_INVALID, "scale has %zu entries for an axis of %zu", sc.count,
                            dim);
    for (int a = 0; a < axis; a++) outer *= (size_t)x.shape.dims[a];
    for (int a = (int)axis + 1; a < x.shape.ndim; a++) inner *= (size_t)x.shape.dims[a];
  } else {
    inner = x.count;
  }
  float *p = camd__fold_alloc(f, x.count, CAMD_FLOAT32, &rc);
  if (!p) return rc;
  const float *s = sc.data;
  for (size_t o = 0, k = 0; o < outer; o++) {
    for (size_t c = 0; c < dim; c++) {
      int64_t z = has_zp ? iget(&zp, c) : 0;
      for (size_t i = 0; i < inner; i++, k++) {
        int64_t q;
        if (__builtin_sub_overflow(iget(&x, k), z, &q)) {
          free(p);
          return camd__fold_err(f, CAMD_E_INVALID, "integer overflow");
        }
        p[k] = (float)q * s[c];
      }
    }
  }
  return camd__fold_emit(f, 0, CAMD_FLOAT32, &x.shape, p);
}
