/* Unit tests for the shape and data-movement ops (Flatten, Reshape, Transpose, Squeeze,
 * Unsqueeze, Concat, Split, Slice, Pad): engine vs straightforward double references written
 * from the ONNX spec, gradients vs finite differences, inferred shapes vs expected ones, and the
 * Reshape batch rule through the public session API. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "camd/engine.h"
#include "camd/graph.h"
#include "opcheck.h"
#include "testlib.h"

/* ---- reference helpers ---- */

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

typedef struct ref_ctx {
  int64_t batch; /* expectations hold when the reference sees this batch */
  int n_expect;
  camd_shape expect[OPCHECK_MAX_IO];
  int axis;                /* Concat, Split (normalized) */
  int perm[CAMD_MAX_DIMS]; /* Transpose */
  int n;                   /* Slice: entries */
  int axes[CAMD_MAX_DIMS];
  int64_t starts[CAMD_MAX_DIMS], ends[CAMD_MAX_DIMS], steps[CAMD_MAX_DIMS];
  int mode; /* Pad */
  double value;
  int64_t begin[CAMD_MAX_DIMS], end[CAMD_MAX_DIMS];
} ref_ctx;

static size_t count_of(const camd_shape *s) {
  size_t c = 1;
  for (int d = 0; d < s->ndim; d++) c *= (size_t)s->dims[d];
  return c;
}

static size_t ravel(const int64_t *c, const camd_shape *s) {
  size_t f = 0;
  for (int d = 0; d < s->ndim; d++) f = f * (size_t)s->dims[d] + (size_t)c[d];
  return f;
}

static void check_expect(const ref_ctx *r, const camd_shape *in0, const camd_shape *outs) {
  if (in0->dims[0] != r->batch) return;
  for (int j = 0; j < r->n_expect; j++) {
    char a[128], b[128];
    camd_shape_format(&outs[j], a, sizeof(a));
    camd_shape_format(&r->expect[j], b, sizeof(b));
    CHECK_MSG(camd_shape_equal(&outs[j], &r->expect[j]), "output %d shape %s, expected %s", j, a,
              b);
  }
}

static void ref_copy(void *ctx, const double *const *in, const camd_shape *is, double *const *out,
                     const camd_shape *os) {
  check_expect(ctx, &is[0], os);
  CHECK_EQ_INT(count_of(&is[0]), count_of(&os[0]));
  memcpy(out[0], in[0], count_of(&is[0]) * sizeof(double));
}

static void ref_transpose(void *ctx, const double *const *in, const camd_shape *is,
                          double *const *out, const camd_shape *os) {
  const ref_ctx *r = ctx;
  check_expect(r, &is[0], os);
  int64_t oc[CAMD_MAX_DIMS], ic[CAMD_MAX_DIMS];
  for (size_t o = 0; o < count_of(&os[0]); o++) {
    opcheck_unravel(o, &os[0], oc);
    for (int d = 0; d < os[0].ndim; d++) ic[r->perm[d]] = oc[d];
    out[0][o] = in[0][ravel(ic, &is[0])];
  }
}

/* Concat over all n inputs (n given by the ctx's n field). */
static void ref_concat(void *ctx, const double *const *in, const camd_shape *is, double *const *out,
                       const camd_shape *os) {
  const ref_ctx *r = ctx;
  check_expect(r, &is[0], os);
  int64_t oc[CAMD_MAX_DIMS];
  for (size_t o = 0; o < count_of(&os[0]); o++) {
    opcheck_unravel(o, &os[0], oc);
    int i = 0;
    while (oc[r->axis] >= is[i].dims[r->axis]) oc[r->axis] -= is[i++].dims[r->axis];
    out[0][o] = in[i][ravel(oc, &is[i])];
  }
}

static void ref_split(void *ctx, const double *const *in, const camd_shape *is, double *const *out,
                      const camd_shape *os) {
  const ref_ctx *r = ctx;
  check_expect(r, &is[0], os);
  int64_t c[CAMD_MAX_DIMS], offset = 0;
  for (int j = 0; j < r->n_expect; j++) {
    for (size_t o = 0; o < count_of(&os[j]); o++) {
      opcheck_unravel(o, &os[j], c);
      c[r->axis] += offset;
      out[j][o] = in[0][ravel(c, &is[0])];
    }
    offset += os[j].dims[r->axis];
  }
}

/* Selected indices of one sliced axis, written as the spec's loop. */
static int64_t slice_indices(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *list) {
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = start < 0 ? 0 : start > dim ? dim : start;
    end = end < 0 ? 0 : end > dim ? dim : end;
  } else {
    start = start < 0 ? 0 : start > dim - 1 ? dim - 1 : start;
    end = end < -1 ? -1 : end > dim - 1 ? dim - 1 : end;
  }
  int64_t n = 0;
  for (int64_t i = start; step > 0 ? i < end : i > end;) {
    list[n++] = i;
    /* stop before i + step passes end (written so that no step overflows) */
    if (step > 0 ? end - i <= step : i - end - 1 < -(step + 1)) break;
    i += step;
  }
  return n;
}

static void ref_slice(void *ctx, const double *const *in, const camd_shape *is, double *const *out,
                      const camd_shape *os) {
  const ref_ctx *r = ctx;
  check_expect(r, &is[0], os);
  static int64_t lists[CAMD_MAX_DIMS][256];
  for (int d = 0; d < is[0].ndim; d++) {
    int64_t n = is[0].dims[d];
    for (int64_t k = 0; k < n; k++) lists[d][k] = k;
    for (int i = 0; i < r->n; i++) {
      if (r->axes[i] != d) continue;
      n = slice_indices(is[0].dims[d], r->starts[i], r->ends[i], r->steps[i], lists[d]);
    }
    CHECK_EQ_INT(n, os[0].dims[d]);
    if (n != os[0].dims[d]) return;
  }
  int64_t oc[CAMD_MAX_DIMS], ic[CAMD_MAX_DIMS];
  for (size_t o = 0; o < count_of(&os[0]); o++) {
    opcheck_unravel(o, &os[0], oc);
    for (int d = 0; d < os[0].ndim; d++) ic[d] = lists[d][oc[d]];
    out[0][o] = in[0][ravel(ic, &is[0])];
  }
}

/* Pad: crop by the negative pads, then numpy.pad-style padding of the cropped axis. */
static int64_t pad_source(int mode, int64_t o, int64_t dim, int64_t b, int64_t e) {
  int64_t cb = b < 0 ? -b : 0, ce = e < 0 ? -e : 0, pb = b > 0 ? b : 0;
  int64_t len = dim - cb - ce;
  int64_t j = o - pb;
  if (j < 0 || j >= len) {
    if (mode == PAD_CONSTANT) return -1;
    if (mode == PAD_EDGE) j = j < 0 ? 0 : len - 1;
    if (mode == PAD_WRAP) {
      while (j < 0) j += len;
      while (j >= len) j -= len;
    }
    if (mode == PAD_REFLECT) {
      if (len == 1) j = 0;
      while (j < 0 || j >= len) {
        if (j < 0) j = -j;
        if (j >= len) j = 2 * (len - 1) - j;
      }
    }
  }
  return cb + j;
}

static void ref_pad(void *ctx, const double *const *in, const camd_shape *is, double *const *out,
                    const camd_shape *os) {
  const ref_ctx *r = ctx;
  check_expect(r, &is[0], os);
  int64_t oc[CAMD_MAX_DIMS], ic[CAMD_MAX_DIMS];
  for (size_t o = 0; o < count_of(&os[0]); o++) {
    opcheck_unravel(o, &os[0], oc);
    bool fill = false;
    for (int d = 0; d < os[0].ndim; d++) {
      ic[d] = pad_source(r->mode, oc[d], is[0].dims[d], r->begin[d], r->end[d]);
      if (ic[d] < 0) fill = true;
    }
    out[0][o] = fill ? r->value : in[0][ravel(ic, &is[0])];
  }
}

/* ---- spec building ---- */

static opcheck_spec spec_new(const char *op, int opset, const char *label, ref_ctx *r,
                             opcheck_ref_fn fn, camd_shape in0) {
  opcheck_spec s;
  memset(&s, 0, sizeof(s));
  s.op_type = op;
  s.opset = opset;
  s.n_in = 1;
  s.in_shapes[0] = in0;
  s.n_out = 1;
  s.ref = fn;
  s.ref_ctx = r;
  s.grad_check = 1u;
  s.label = label;
  s.seed = 0x5eedu + (uint64_t)strlen(label) * 977u;
  r->batch = in0.dims[0];
  return s;
}

/* Adds an int64 constant input (1-D of n entries) at index i. */
static void spec_ints(opcheck_spec *s, int i, const int64_t *v, int64_t n) {
  s->in_shapes[i] = opcheck_shape(1, n);
  s->int_inputs[i] = v;
  if (s->n_in <= i) s->n_in = i + 1;
}

static void expect1(ref_ctx *r, camd_shape e) {
  r->n_expect = 1;
  r->expect[0] = e;
}

#define RUN(spec) CHECK_MSG(opcheck_run(&(spec)) == 0, "%s", (spec).label)

/* ---- Flatten ---- */

static void test_flatten(void) {
  static const struct {
    int64_t axis;
    int opset;
    int64_t batch;
    camd_shape expect;
  } cases[] = {
      /* axis 1 keeps the batch */
      {1, 13, 2, {2, {2, 60}}},
      {-3, 11, 3, {2, {3, 60}}},
      {1, 1, 2, {2, {2, 60}}},
      /* other axes fold it: batch 1 only */
      {2, 13, 1, {2, {3, 20}}},
      {-1, 13, 1, {2, {12, 5}}},
      {4, 13, 1, {2, {60, 1}}},
      {0, 9, 1, {2, {1, 60}}},
  };
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    ref_ctx r = {0};
    char label[64];
    snprintf(label, sizeof(label), "Flatten axis=%lld opset=%d", (long long)cases[c].axis,
             cases[c].opset);
    opcheck_spec s = spec_new("Flatten", cases[c].opset, label, &r, ref_copy,
                              opcheck_shape(4, cases[c].batch, 3, 4, 5));
    camd_attr a = opcheck_attr_int("axis", cases[c].axis);
    s.attrs = &a;
    s.n_attrs = 1;
    expect1(&r, cases[c].expect);
    RUN(s);
  }
}

/* ---- Reshape ---- */

static void test_reshape(void) {
  static const int64_t t_batch1[] = {1, -1};
  static const int64_t t_zero[] = {0, -1};
  static const int64_t t_minus_first[] = {-1, 5, 4};
  static const int64_t t_mid_zero[] = {1, 0, -1};
  static const int64_t t_split[] = {0, 2, 2, 5};
  static const int64_t t_fixed[] = {1, 20};
  static const struct {
    const int64_t *t;
    int64_t n;
    int opset;
    camd_shape expect;
  } cases[] = {
      {t_batch1, 2, 13, {2, {3, 20}}},        {t_zero, 2, 13, {2, {3, 20}}},
      {t_minus_first, 3, 13, {3, {3, 5, 4}}}, {t_mid_zero, 3, 14, {3, {3, 4, 5}}},
      {t_split, 4, 5, {4, {3, 2, 2, 5}}},     {t_fixed, 2, 19, {2, {3, 20}}},
  };
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    ref_ctx r = {0};
    char label[64];
    snprintf(label, sizeof(label), "Reshape case %zu (batch 3)", c);
    opcheck_spec s =
        spec_new("Reshape", cases[c].opset, label, &r, ref_copy, opcheck_shape(3, 3, 4, 5));
    spec_ints(&s, 1, cases[c].t, cases[c].n);
    expect1(&r, cases[c].expect);
    RUN(s);
  }
  /* opset < 5: target as attribute */
  ref_ctx r = {0};
  opcheck_spec s =
      spec_new("Reshape", 4, "Reshape opset 4 attribute", &r, ref_copy, opcheck_shape(3, 2, 4, 5));
  camd_attr a = opcheck_attr_ints("shape", t_batch1, 2);
  s.attrs = &a;
  s.n_attrs = 1;
  expect1(&r, opcheck_shape(2, 2, 20));
  RUN(s);
}

/* Builds Input[1,4,5] -> Reshape(target) and returns the model (or NULL). */
static camd_model *reshape_model(const int64_t *target, int64_t n) {
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  if (!g) return NULL;
  camd_shape is = opcheck_shape(3, 1, 4, 5);
  int x = camd_graph_add_input(g, "x", &is, &err);
  int64_t *t = malloc((size_t)n * sizeof(int64_t));
  if (t) memcpy(t, target, (size_t)n * sizeof(int64_t));
  camd_shape ts = opcheck_shape(1, n);
  int tid = camd_graph_add_constant(g, "t", CAMD_INT64, &ts, t, &err);
  int ins[2] = {x, tid}, y = -1;
  const char *names[1] = {"y"};
  int rc = (x < 0 || tid < 0)
               ? -1
               : camd_graph_add_node(g, "Reshape", "r", 13, 2, ins, 1, names, NULL, 0, &y, &err);
  CHECK_MSG(rc == 0, "%s", err.message);
  if (rc == 0) rc = camd_graph_mark_output(g, y, &err);
  camd_model *m = NULL;
  if (rc == 0)
    rc = camd_graph_finalize(g, NULL, &m, &err);
  else
    camd_graph_free(g);
  CHECK_MSG(rc == 0, "%s", err.message);
  return rc == 0 ? m : NULL;
}

static void test_reshape_batch_rule_session(void) {
  static const int64_t target[] = {1, -1};
  camd_model *m = reshape_model(target, 2);
  if (!m) return;
  CHECK(camd_model_max_batch(m) >= 3);
  camd_session *s = NULL;
  camd_error err = {0};
  int rc = camd_session_create(m, 3, &s, &err);
  CHECK_MSG(rc == 0, "%s", err.message);
  if (rc == 0) {
    float x[60];
    for (int i = 0; i < 60; i++) x[i] = (float)i * 0.5f - 3.0f;
    camd_forward_opts o;
    camd_forward_opts_init(&o);
    rc = camd_session_forward(s, 3, x, &o, &err);
    CHECK_MSG(rc == 0, "%s", err.message);
    camd_shape ys;
    const float *y = camd_session_value(s, camd_model_output(m, 0), &ys);
    CHECK(y != NULL);
    CHECK(camd_shape_equal(&ys, &(camd_shape){2, {3, 20}}));
    if (y)
      for (int i = 0; i < 60; i++) CHECK(y[i] == x[i]);
    camd_session_destroy(s);
  }
  camd_model_release(m);
  /* A target that folds the batch is computed per ONNX and makes the model single-batch. */
  static const int64_t folding[] = {-1, 4};
  m = reshape_model(folding, 2);
  if (!m) return;
  CHECK_EQ_INT(camd_model_max_batch(m), 1);
  camd_value_info info;
  CHECK(camd_model_value_info(m, camd_model_output(m, 0), &info) == 0);
  CHECK(camd_shape_equal(&info.shape, &(camd_shape){2, {5, 4}}));
  camd_model_release(m);
}

static void test_reshape_errors(void) {
  static const int64_t bad[] = {7, -1};
  static const int64_t two_minus[] = {-1, -1};
  camd_error err = {0};
  const int64_t *targets[] = {bad, two_minus};
  for (int k = 0; k < 2; k++) {
    camd_graph *g = camd_graph_new();
    camd_shape is = opcheck_shape(3, 1, 4, 5);
    int x = camd_graph_add_input(g, "x", &is, &err);
    int64_t *t = malloc(2 * sizeof(int64_t));
    memcpy(t, targets[k], 2 * sizeof(int64_t));
    camd_shape ts = opcheck_shape(1, 2);
    int tid = camd_graph_add_constant(g, "t", CAMD_INT64, &ts, t, &err);
    int ins[2] = {x, tid}, y;
    int rc = camd_graph_add_node(g, "Reshape", "r", 13, 2, ins, 1, NULL, NULL, 0, &y, &err);
    CHECK(rc < 0);
    CHECK(strstr(err.message, "'r'") != NULL);
    camd_graph_free(g);
  }
}

/* ---- Transpose ---- */

static void test_transpose(void) {
  static const int64_t p4[] = {0, 2, 1, 3};
  static const int64_t p5[] = {0, 2, 1, 3, 4};
  static const int64_t p4b[] = {0, 3, 1, 2};
  static const int64_t p3neg[] = {0, -1, 1};
  struct {
    const int64_t *perm;
    int n;
    camd_shape in, expect;
  } cases[] = {
      {p4, 4, {4, {2, 3, 4, 5}}, {4, {2, 4, 3, 5}}},
      {p5, 5, {5, {2, 2, 3, 4, 5}}, {5, {2, 3, 2, 4, 5}}}, /* ShuffleNet channel shuffle */
      {p4b, 4, {4, {3, 2, 3, 5}}, {4, {3, 5, 2, 3}}},
      {p3neg, 3, {3, {2, 1, 7}}, {3, {2, 7, 1}}},
      {NULL, 3, {3, {1, 3, 4}}, {3, {4, 3, 1}}}, /* default: reverse (batch 1 only) */
  };
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    ref_ctx r = {0};
    char label[64];
    snprintf(label, sizeof(label), "Transpose case %zu", c);
    opcheck_spec s = spec_new("Transpose", 13, label, &r, ref_transpose, cases[c].in);
    camd_attr a;
    if (cases[c].perm) {
      a = opcheck_attr_ints("perm", cases[c].perm, (size_t)cases[c].n);
      s.attrs = &a;
      s.n_attrs = 1;
      for (int d = 0; d < cases[c].n; d++)
        r.perm[d] = (int)(cases[c].perm[d] < 0 ? cases[c].perm[d] + cases[c].n : cases[c].perm[d]);
    } else {
      for (int d = 0; d < cases[c].n; d++) r.perm[d] = cases[c].n - 1 - d;
    }
    expect1(&r, cases[c].expect);
    RUN(s);
  }
}

/* ---- Squeeze / Unsqueeze ---- */

static void test_squeeze(void) {
  static const int64_t ax13[] = {1, 3};
  static const int64_t axneg[] = {-1};
  /* opset 11, attribute */
  {
    ref_ctx r = {0};
    opcheck_spec s =
        spec_new("Squeeze", 11, "Squeeze attr axes", &r, ref_copy, opcheck_shape(4, 2, 1, 3, 1));
    camd_attr a = opcheck_attr_ints("axes", ax13, 2);
    s.attrs = &a;
    s.n_attrs = 1;
    expect1(&r, opcheck_shape(2, 2, 3));
    RUN(s);
  }
  /* opset 13, input, negative axis */
  {
    ref_ctx r = {0};
    opcheck_spec s = spec_new("Squeeze", 13, "Squeeze input axes -1", &r, ref_copy,
                              opcheck_shape(4, 3, 1, 3, 1));
    spec_ints(&s, 1, axneg, 1);
    expect1(&r, opcheck_shape(3, 3, 1, 3));
    RUN(s);
  }
  /* no axes: every 1 except the batch */
  for (int64_t b = 1; b <= 2; b++) {
    ref_ctx r = {0};
    opcheck_spec s = spec_new("Squeeze", 13, b == 1 ? "Squeeze all, batch 1" : "Squeeze all", &r,
                              ref_copy, opcheck_shape(4, b, 1, 3, 1));
    expect1(&r, opcheck_shape(2, b, 3));
    RUN(s);
  }
}

static void test_unsqueeze(void) {
  static const int64_t ax1[] = {1};
  static const int64_t ax_neg[] = {-1, 1};
  static const int64_t ax23[] = {2, 3};
  {
    ref_ctx r = {0};
    opcheck_spec s =
        spec_new("Unsqueeze", 13, "Unsqueeze [1]", &r, ref_copy, opcheck_shape(2, 2, 3));
    spec_ints(&s, 1, ax1, 1);
    expect1(&r, opcheck_shape(3, 2, 1, 3));
    RUN(s);
  }
  {
    ref_ctx r = {0};
    opcheck_spec s =
        spec_new("Unsqueeze", 13, "Unsqueeze [-1,1]", &r, ref_copy, opcheck_shape(2, 2, 3));
    spec_ints(&s, 1, ax_neg, 2);
    expect1(&r, opcheck_shape(4, 2, 1, 3, 1));
    RUN(s);
  }
  {
    ref_ctx r = {0};
    opcheck_spec s =
        spec_new("Unsqueeze", 11, "Unsqueeze attr [2,3]", &r, ref_copy, opcheck_shape(2, 3, 4));
    camd_attr a = opcheck_attr_ints("axes", ax23, 2);
    s.attrs = &a;
    s.n_attrs = 1;
    expect1(&r, opcheck_shape(4, 3, 4, 1, 1));
    RUN(s);
  }
}

/* ---- Concat / Split ---- */

static void test_concat(void) {
  {
    ref_ctx r = {0};
    opcheck_spec s =
        spec_new("Concat", 13, "Concat axis 1 x3", &r, ref_concat, opcheck_shape(3, 2, 3, 4));
    s.n_in = 3;
    s.in_shapes[1] = opcheck_shape(3, 2, 1, 4);
    s.in_shapes[2] = opcheck_shape(3, 2, 5, 4);
    s.grad_check = 7u;
    camd_attr a = opcheck_attr_int("axis", 1);
    s.attrs = &a;
    s.n_attrs = 1;
    r.axis = 1;
    expect1(&r, opcheck_shape(3, 2, 9, 4));
    RUN(s);
  }
  {
    ref_ctx r = {0};
    opcheck_spec s =
        spec_new("Concat", 11, "Concat axis -1", &r, ref_concat, opcheck_shape(4, 3, 2, 3, 2));
    s.n_in = 2;
    s.in_shapes[1] = opcheck_shape(4, 3, 2, 3, 5);
    s.grad_check = 3u;
    camd_attr a = opcheck_attr_int("axis", -1);
    s.attrs = &a;
    s.n_attrs = 1;
    r.axis = 3;
    expect1(&r, opcheck_shape(4, 3, 2, 3, 7));
    RUN(s);
  }
  { /* large: the copy runs in pieces of 16384 floats that start inside inputs and rows */
    ref_ctx r = {0};
    opcheck_spec s = spec_new("Concat", 13, "Concat axis 1 x3, pieces", &r, ref_concat,
                              opcheck_shape(4, 2, 3, 70, 90));
    s.n_in = 3;
    s.in_shapes[1] = opcheck_shape(4, 2, 5, 70, 90);
    s.in_shapes[2] = opcheck_shape(4, 2, 1, 70, 90);
    camd_attr a = opcheck_attr_int("axis", 1);
    s.attrs = &a;
    s.n_attrs = 1;
    r.axis = 1;
    expect1(&r, opcheck_shape(4, 2, 9, 70, 90));
    RUN(s);
  }
  {
    ref_ctx r = {0};
    opcheck_spec s = spec_new("Concat", 13, "Concat axis 2, pieces", &r, ref_concat,
                              opcheck_shape(4, 2, 3, 50, 40));
    s.n_in = 2;
    s.in_shapes[1] = opcheck_shape(4, 2, 3, 31, 40);
    camd_attr a = opcheck_attr_int("axis", 2);
    s.attrs = &a;
    s.n_attrs = 1;
    r.axis = 2;
    expect1(&r, opcheck_shape(4, 2, 3, 81, 40));
    RUN(s);
  }
  {
    ref_ctx r = {0};
    opcheck_spec s =
        spec_new("Concat", 13, "Concat single input", &r, ref_concat, opcheck_shape(2, 2, 5));
    camd_attr a = opcheck_attr_int("axis", 1);
    s.attrs = &a;
    s.n_attrs = 1;
    r.axis = 1;
    expect1(&r, opcheck_shape(2, 2, 5));
    RUN(s);
  }
}

static void test_split(void) {
  static const int64_t sizes3[] = {2, 4, 1};
  static const int64_t sizes2[] = {3, 4};
  /* opset 13: unequal sizes from the input */
  {
    ref_ctx r = {0};
    opcheck_spec s =
        spec_new("Split", 13, "Split [2,4,1] input", &r, ref_split, opcheck_shape(3, 2, 7, 3));
    spec_ints(&s, 1, sizes3, 3);
    s.n_out = 3;
    camd_attr a = opcheck_attr_int("axis", 1);
    s.attrs = &a;
    s.n_attrs = 1;
    r.axis = 1;
    r.n_expect = 3;
    r.expect[0] = opcheck_shape(3, 2, 2, 3);
    r.expect[1] = opcheck_shape(3, 2, 4, 3);
    r.expect[2] = opcheck_shape(3, 2, 1, 3);
    RUN(s);
  }
  /* opset 11: attribute sizes on a negative axis */
  {
    ref_ctx r = {0};
    opcheck_spec s =
        spec_new("Split", 11, "Split attr [3,4] axis -1", &r, ref_split, opcheck_shape(3, 2, 3, 7));
    camd_attr a[2] = {opcheck_attr_int("axis", -1), opcheck_attr_ints("split", sizes2, 2)};
    s.attrs = a;
    s.n_attrs = 2;
    s.n_out = 2;
    r.axis = 2;
    r.n_expect = 2;
    r.expect[0] = opcheck_shape(3, 2, 3, 3);
    r.expect[1] = opcheck_shape(3, 2, 3, 4);
    RUN(s);
  }
  /* equal split */
  {
    ref_ctx r = {0};
    opcheck_spec s =
        spec_new("Split", 13, "Split equal x3", &r, ref_split, opcheck_shape(3, 2, 6, 3));
    camd_attr a = opcheck_attr_int("axis", 1);
    s.attrs = &a;
    s.n_attrs = 1;
    s.n_out = 3;
    r.axis = 1;
    r.n_expect = 3;
    for (int j = 0; j < 3; j++) r.expect[j] = opcheck_shape(3, 2, 2, 3);
    RUN(s);
  }
  /* opset 18 num_outputs: 7 -> 3,3,1 */
  {
    ref_ctx r = {0};
    opcheck_spec s =
        spec_new("Split", 18, "Split num_outputs=3", &r, ref_split, opcheck_shape(3, 2, 7, 2));
    camd_attr a[2] = {opcheck_attr_int("axis", 1), opcheck_attr_int("num_outputs", 3)};
    s.attrs = a;
    s.n_attrs = 2;
    s.n_out = 3;
    r.axis = 1;
    r.n_expect = 3;
    r.expect[0] = opcheck_shape(3, 2, 3, 2);
    r.expect[1] = opcheck_shape(3, 2, 3, 2);
    r.expect[2] = opcheck_shape(3, 2, 1, 2);
    RUN(s);
  }
}

/* ---- Slice ---- */

static void slice_case(const char *label, int opset, camd_shape in, int n, const int64_t *starts,
                       const int64_t *ends, const int64_t *axes, const int64_t *steps,
                       camd_shape expect) {
  ref_ctx r = {0};
  opcheck_spec s = spec_new("Slice", opset, label, &r, ref_slice, in);
  camd_attr a[3];
  if (opset < 10) {
    a[0] = opcheck_attr_ints("starts", starts, (size_t)n);
    a[1] = opcheck_attr_ints("ends", ends, (size_t)n);
    s.n_attrs = 2;
    if (axes) a[s.n_attrs++] = opcheck_attr_ints("axes", axes, (size_t)n);
    s.attrs = a;
  } else {
    spec_ints(&s, 1, starts, n);
    spec_ints(&s, 2, ends, n);
    if (axes) spec_ints(&s, 3, axes, n);
    if (steps) {
      spec_ints(&s, 4, steps, n);
      if (!axes) {
        s.in_absent |= 1u << 3;
        s.in_shapes[3].ndim = 0;
      }
    }
  }
  r.n = n;
  for (int i = 0; i < n; i++) {
    int64_t ax = axes ? axes[i] : i;
    r.axes[i] = (int)(ax < 0 ? ax + in.ndim : ax);
    r.starts[i] = starts[i];
    r.ends[i] = ends[i];
    r.steps[i] = steps ? steps[i] : 1;
  }
  expect1(&r, expect);
  RUN(s);
}

static void test_slice(void) {
  /* opset 9 attributes, default axes */
  {
    static const int64_t st[] = {0, 1, -3}, en[] = {100, 3, -1};
    slice_case("Slice opset 9", 9, opcheck_shape(3, 2, 4, 5), 3, st, en, NULL, NULL,
               opcheck_shape(3, 2, 2, 2));
  }
  /* opset 9 attributes with axes */
  {
    static const int64_t st[] = {1}, en[] = {4}, ax[] = {2};
    slice_case("Slice opset 9 axes", 9, opcheck_shape(3, 2, 4, 5), 1, st, en, ax, NULL,
               opcheck_shape(3, 2, 4, 3));
  }
  /* negative steps with INT64_MIN clamping, axes out of order */
  {
    static const int64_t st[] = {5, -1}, en[] = {0, INT64_MIN}, ax[] = {2, 1}, sp[] = {-3, -2};
    slice_case("Slice negative steps", 13, opcheck_shape(3, 2, 7, 6), 2, st, en, ax, sp,
               opcheck_shape(3, 2, 4, 2));
  }
  /* INT64_MAX end, step 2, negative axis, start clamped from -100 */
  {
    static const int64_t st[] = {-100}, en[] = {INT64_MAX}, ax[] = {-1}, sp[] = {2};
    slice_case("Slice clamp step 2", 10, opcheck_shape(3, 3, 2, 7), 1, st, en, ax, sp,
               opcheck_shape(3, 3, 2, 4));
  }
  /* reverse a whole axis: start INT64_MAX, end INT64_MIN, step -1 */
  {
    static const int64_t st[] = {INT64_MAX}, en[] = {INT64_MIN}, ax[] = {1}, sp[] = {-1};
    slice_case("Slice full reverse", 13, opcheck_shape(3, 2, 5, 3), 1, st, en, ax, sp,
               opcheck_shape(3, 2, 5, 3));
  }
  /* huge step takes one element; steps without axes (axes absent) */
  {
    static const int64_t st[] = {0, 1}, en[] = {2, 4}, sp[] = {1, INT64_MAX};
    slice_case("Slice huge step, absent axes", 13, opcheck_shape(3, 2, 5, 3), 2, st, en, NULL, sp,
               opcheck_shape(3, 2, 1, 3));
  }
  {
    static const int64_t st[] = {4}, en[] = {0}, ax[] = {1}, sp[] = {INT64_MIN};
    slice_case("Slice INT64_MIN step", 13, opcheck_shape(3, 2, 5, 3), 1, st, en, ax, sp,
               opcheck_shape(3, 2, 1, 3));
  }
}

/* ---- Pad ---- */

static void pad_case(const char *label, int opset, camd_shape in, int mode, const int64_t *pads,
                     int n_axes, const int64_t *axes, double value, camd_shape expect) {
  static const char *modes[] = {"constant", "reflect", "edge", "wrap"};
  ref_ctx r = {0};
  opcheck_spec s = spec_new("Pad", opset, label, &r, ref_pad, in);
  camd_attr a[3];
  s.attrs = a;
  a[s.n_attrs++] = opcheck_attr_string("mode", modes[mode]);
  static float cv;
  cv = (float)value;
  if (opset < 11) {
    a[s.n_attrs++] = opcheck_attr_ints("pads", pads, 2 * (size_t)n_axes);
    a[s.n_attrs++] = opcheck_attr_float("value", (float)value);
  } else {
    spec_ints(&s, 1, pads, 2 * n_axes);
    s.n_in = 3;
    s.in_shapes[2] = opcheck_shape(0);
    s.in_const |= 1u << 2;
    s.float_values[2] = &cv;
    if (axes) spec_ints(&s, 3, axes, n_axes);
  }
  r.mode = mode;
  r.value = value;
  for (int i = 0; i < n_axes; i++) {
    int ax = axes ? (int)(axes[i] < 0 ? axes[i] + in.ndim : axes[i]) : i;
    r.begin[ax] = pads[i];
    r.end[ax] = pads[i + n_axes];
  }
  expect1(&r, expect);
  RUN(s);
}

static void test_pad(void) {
  {
    static const int64_t p[] = {0, 1, 2, 0, 2, 1};
    pad_case("Pad constant asymmetric", 13, opcheck_shape(3, 2, 3, 4), PAD_CONSTANT, p, 3, NULL,
             1.5, opcheck_shape(3, 2, 6, 7));
  }
  {
    static const int64_t p[] = {0, 0, 2, 1, 0, 0, 1, 3};
    pad_case("Pad reflect asymmetric", 13, opcheck_shape(4, 2, 2, 4, 5), PAD_REFLECT, p, 4, NULL,
             0.0, opcheck_shape(4, 2, 2, 7, 9));
  }
  {
    static const int64_t p[] = {0, 0, 3, 1, 0, 0, 0, 2};
    pad_case("Pad edge asymmetric", 13, opcheck_shape(4, 2, 2, 3, 4), PAD_EDGE, p, 4, NULL, 0.0,
             opcheck_shape(4, 2, 2, 6, 7));
  }
  {
    static const int64_t p[] = {0, -1, 2, 0, 1, -2};
    pad_case("Pad constant negative", 13, opcheck_shape(3, 2, 3, 5), PAD_CONSTANT, p, 3, NULL, -0.5,
             opcheck_shape(3, 2, 3, 5));
  }
  {
    static const int64_t p[] = {0, -1, 2, 0, 2, -1};
    pad_case("Pad reflect negative", 13, opcheck_shape(3, 2, 4, 5), PAD_REFLECT, p, 3, NULL, 0.0,
             opcheck_shape(3, 2, 5, 6));
  }
  {
    static const int64_t p[] = {0, 2, -1, 0, -1, 3};
    pad_case("Pad edge negative", 13, opcheck_shape(3, 2, 4, 5), PAD_EDGE, p, 3, NULL, 0.0,
             opcheck_shape(3, 2, 5, 7));
  }
  {
    static const int64_t p[] = {0, 0, 1, 1, 0, 0, 1, 1};
    pad_case("Pad opset 2 attributes", 2, opcheck_shape(4, 2, 3, 3, 3), PAD_REFLECT, p, 4, NULL,
             0.0, opcheck_shape(4, 2, 3, 5, 5));
  }
  {
    static const int64_t p[] = {0, 0, 1, 2, 0, 0, 2, 1};
    pad_case("Pad opset 10 constant attr", 10, opcheck_shape(4, 2, 1, 3, 3), PAD_CONSTANT, p, 4,
             NULL, 2.0, opcheck_shape(4, 2, 1, 6, 6));
  }
  {
    static const int64_t p[] = {3, 1}, ax[] = {-1};
    pad_case("Pad opset 18 axes", 18, opcheck_shape(3, 2, 3, 4), PAD_REFLECT, p, 1, ax, 0.0,
             opcheck_shape(3, 2, 3, 8));
  }
  {
    static const int64_t p[] = {0, 4, 2, 0, 1, 5}; /* wrap wider than the axis */
    pad_case("Pad wrap", 19, opcheck_shape(3, 2, 3, 4), PAD_WRAP, p, 3, NULL, 0.0,
             opcheck_shape(3, 2, 8, 11));
  }
  {
    static const int64_t p[] = {0, 0, 5, 0, 0, 6}; /* reflect wider than the axis */
    pad_case("Pad reflect wide", 13, opcheck_shape(3, 2, 2, 3), PAD_REFLECT, p, 3, NULL, 0.0,
             opcheck_shape(3, 2, 2, 14));
  }
}

/* ---- load-time errors and opset ranges ---- */

/* One node on input x (per-sample shape xs) plus an optional int64 constant as input 1; expects
 * camd_graph_add_node to fail with a message containing `want`. */
static void expect_load_error(const char *op, int opset, camd_shape xs, const int64_t *ints,
                              int64_t n_ints, const camd_attr *attrs, int n_attrs, int n_out,
                              const char *want) {
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  int ins[2] = {camd_graph_add_input(g, "x", &xs, &err), -1};
  int n_in = 1;
  if (ints) {
    int64_t *d = malloc((size_t)(n_ints ? n_ints : 1) * sizeof(int64_t));
    if (n_ints) memcpy(d, ints, (size_t)n_ints * sizeof(int64_t));
    camd_shape ts = opcheck_shape(1, n_ints);
    ins[1] = camd_graph_add_constant(g, "c", CAMD_INT64, &ts, d, &err);
    n_in = 2;
  }
  int outs[4];
  int rc =
      camd_graph_add_node(g, op, "bad", opset, n_in, ins, n_out, NULL, attrs, n_attrs, outs, &err);
  CHECK_MSG(rc < 0, "%s opset %d: expected a load error containing '%s'", op, opset, want);
  if (rc < 0)
    CHECK_MSG(strstr(err.message, want) != NULL && strstr(err.message, "'bad'") != NULL,
              "message '%s' lacks '%s'", err.message, want);
  camd_graph_free(g);
}

static void test_load_errors(void) {
  static const int64_t ax2[] = {2}, ax9[] = {9}, sizes[] = {2, 2}, perm_bad[] = {0, 0, 1},
                       pads_short[] = {1, 1};
  camd_shape x = opcheck_shape(3, 1, 3, 4);
  expect_load_error("Squeeze", 13, x, ax2, 1, NULL, 0, 1, "cannot squeeze axis 2");
  expect_load_error("Squeeze", 13, x, ax9, 1, NULL, 0, 1, "out of range");
  expect_load_error("Unsqueeze", 13, x, NULL, 0, NULL, 0, 1, "missing");
  expect_load_error("Split", 13, x, sizes, 2, NULL, 0, 2, "sum to 4");
  camd_attr pa = opcheck_attr_ints("perm", perm_bad, 3);
  expect_load_error("Transpose", 13, x, NULL, 0, &pa, 1, 1, "permutation");
  expect_load_error("Pad", 13, x, pads_short, 2, NULL, 0, 1, "pads has 2 entries");
  camd_attr wrap = opcheck_attr_string("mode", "wrap");
  expect_load_error("Pad", 18, x, pads_short, 2, &wrap, 1, 1, "unsupported mode");
  camd_attr cax = opcheck_attr_int("axis", 5);
  expect_load_error("Concat", 13, x, NULL, 0, &cax, 1, 1, "out of range");
  expect_load_error("Slice", 13, x, ax2, 1, NULL, 0, 1, "missing");
  camd_attr fa = opcheck_attr_int("axis", 4);
  expect_load_error("Flatten", 13, x, NULL, 0, &fa, 1, 1, "out of range");
}

static void test_opset_ranges(void) {
  static const struct {
    const char *op;
    int lo, hi;
  } r[] = {{"Flatten", 1, 21}, {"Reshape", 1, 21},   {"Transpose", 1, 21},
           {"Squeeze", 1, 21}, {"Unsqueeze", 1, 21}, {"Concat", 1, 21},
           {"Split", 1, 21},   {"Slice", 1, 21},     {"Pad", 2, 21}};
  for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
    int lo = 0, hi = 0;
    CHECK(camd_op_supported(r[i].op, r[i].lo, &lo, &hi));
    CHECK(camd_op_supported(r[i].op, r[i].hi, NULL, NULL));
    CHECK(!camd_op_supported(r[i].op, r[i].hi + 1, NULL, NULL));
    CHECK_EQ_INT(lo, r[i].lo);
    CHECK_EQ_INT(hi, r[i].hi);
  }
  CHECK(!camd_op_supported("Pad", 1, NULL, NULL));
}

CAMD_TEST_MAIN(CAMD_TEST(test_flatten), CAMD_TEST(test_reshape),
               CAMD_TEST(test_reshape_batch_rule_session), CAMD_TEST(test_reshape_errors),
               CAMD_TEST(test_transpose), CAMD_TEST(test_squeeze), CAMD_TEST(test_unsqueeze),
               CAMD_TEST(test_concat), CAMD_TEST(test_split), CAMD_TEST(test_slice),
               CAMD_TEST(test_pad), CAMD_TEST(test_load_errors), CAMD_TEST(test_opset_ranges))
