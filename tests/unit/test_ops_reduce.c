/* Tests of ReduceMean (axes attribute, opset-18 axes input, keepdims, noop_with_empty_axes) and
 * Softmax and LogSoftmax (opset < 13 flattening, opset 13 single axis): forward and backward. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "camd/engine.h"
#include "camd/graph.h"
#include "opcheck.h"
#include "testlib.h"

/* ---- ReduceMean reference ---- */

typedef struct mean_ref {
  unsigned mask; /* reduced axes of the input */
  bool noop;
} mean_ref;

static void ref_mean(void *vctx, const double *const *in, const camd_shape *in_shapes,
                     double *const *out, const camd_shape *out_shapes) {
  const mean_ref *r = vctx;
  const camd_shape *s = &in_shapes[0];
  size_t n_in = camd_shape_count(s), n_out = camd_shape_count(&out_shapes[0]);
  if (r->noop) {
    for (size_t i = 0; i < n_in; i++) out[0][i] = in[0][i];
    return;
  }
  double count = 1;
  for (int d = 0; d < s->ndim; d++) {
    if (r->mask & (1u << d)) count *= (double)s->dims[d];
  }
  for (size_t j = 0; j < n_out; j++) out[0][j] = 0;
  for (size_t i = 0; i < n_in; i++) {
    /* output index: the kept coordinates in order */
    size_t rem = i, o = 0, mul = 1;
    for (int d = s->ndim - 1; d >= 0; d--) {
      size_t c = rem % (size_t)s->dims[d];
      rem /= (size_t)s->dims[d];
      if (!(r->mask & (1u << d))) {
        o += c * mul;
        mul *= (size_t)s->dims[d];
      }
    }
    out[0][o] += in[0][i] / count;
  }
}

static int run_mean(int opset, camd_shape shape, const int64_t *axes, size_t n_axes, int keepdims,
                    int noop, unsigned mask, bool axes_as_input, const char *label) {
  mean_ref r = {mask, noop == 1 && n_axes == 0};
  camd_attr attrs[3];
  int na = 0;
  if (keepdims >= 0) attrs[na++] = opcheck_attr_int("keepdims", keepdims);
  if (noop >= 0) attrs[na++] = opcheck_attr_int("noop_with_empty_axes", noop);
  if (!axes_as_input && n_axes) attrs[na++] = opcheck_attr_ints("axes", axes, n_axes);
  opcheck_spec s = {0};
  s.op_type = "ReduceMean";
  s.opset = opset;
  s.n_in = 1;
  s.in_shapes[0] = shape;
  if (axes_as_input) {
    s.n_in = 2;
    if (axes) {
      s.in_shapes[1] = opcheck_shape(1, (int64_t)n_axes);
      s.int_inputs[1] = axes;
    } else {
      s.in_absent = 0x2;
    }
  }
  s.n_out = 1;
  s.attrs = attrs;
  s.n_attrs = na;
  s.ref = ref_mean;
  s.ref_ctx = &r;
  s.grad_check = 0x1;
  s.seed = 5;
  s.label = label;
  int fails = opcheck_run(&s);
  CHECK_MSG(fails == 0, "%s: %d failures", label, fails);
  return fails;
}

static void test_mean_spatial(void) {
  static const int64_t ax[2] = {2, 3};
  camd_shape s = opcheck_shape(4, 2, 3, 4, 5);
  run_mean(13, s, ax, 2, 1, -1, 0xC, false, "axes [2,3] keepdims 1");
  run_mean(13, s, ax, 2, 0, -1, 0xC, false, "axes [2,3] keepdims 0");
  run_mean(11, s, ax, 2, -1, -1, 0xC, false, "axes [2,3] keepdims default");
  run_mean(18, s, ax, 2, 1, -1, 0xC, true, "opset 18 axes input [2,3] keepdims 1");
  run_mean(18, s, ax, 2, 0, -1, 0xC, true, "opset 18 axes input [2,3] keepdims 0");
}

static void test_mean_other_axes(void) {
  static const int64_t a1[1] = {1}, am1[1] = {-1}, a13[2] = {3, 1}, a2[1] = {-2};
  camd_shape s = opcheck_shape(4, 2, 3, 4, 5);
  run_mean(13, s, a1, 1, 1, -1, 0x2, false, "axis 1 (channels)");
  run_mean(13, s, am1, 1, 0, -1, 0x8, false, "axis -1");
  run_mean(13, s, a13, 2, 1, -1, 0xA, false, "axes [3,1] (non adjacent)");
  run_mean(18, s, a2, 1, 0, 0, 0x4, true, "opset 18 axis -2");
  camd_shape s3 = opcheck_shape(3, 3, 1, 7);
  run_mean(13, s3, a1, 1, 0, -1, 0x2, false, "size-1 axis");
  camd_shape s2 = opcheck_shape(2, 2, 9);
  run_mean(13, s2, am1, 1, 1, -1, 0x2, false, "rank 2 last axis");
}

static void test_mean_all_and_noop(void) {
  /* All axes (including the batch): only valid for batch 1 runs. */
  camd_shape s1 = opcheck_shape(4, 1, 3, 4, 5);
  run_mean(13, s1, NULL, 0, 1, -1, 0xF, false, "no axes: all, keepdims 1");
  run_mean(13, s1, NULL, 0, 0, -1, 0xF, false, "no axes: all, keepdims 0");
  run_mean(18, s1, NULL, 0, 1, 0, 0xF, true, "opset 18 no axes: all");
  camd_shape s = opcheck_shape(4, 2, 3, 4, 5);
  run_mean(18, s, NULL, 0, 1, 1, 0, true, "opset 18 noop_with_empty_axes");
}

/* Builds x [1,4,5] -> op -> y and returns the model's max batch (0 on a load error). */
static int max_batch_of(const char *op, int opset, const camd_attr *attrs, int n_attrs) {
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape s = opcheck_shape(3, 1, 4, 5);
  int x = camd_graph_add_input(g, "x", &s, &err);
  int out = -1;
  const char *names[1] = {"y"};
  int rc = camd_graph_add_node(g, op, "n", opset, 1, &x, 1, names, attrs, n_attrs, &out, &err);
  if (!rc) rc = camd_graph_mark_output(g, out, &err);
  if (rc) {
    CHECK_MSG(0, "%s", err.message);
    camd_graph_free(g);
    return 0;
  }
  camd_model *m = NULL;
  rc = camd_graph_finalize(g, NULL, &m, &err);
  CHECK_MSG(rc == 0, "%s", err.message);
  int mb = m ? camd_model_max_batch(m) : 0;
  camd_model_release(m);
  return mb;
}

/* Reducing or normalising over the batch axis makes the model run one item at a time; other
 * axes keep batching. */
static void test_batch_axis(void) {
  static const int64_t ax0[1] = {0}, ax1[1] = {1};
  camd_attr a0 = opcheck_attr_ints("axes", ax0, 1), a1 = opcheck_attr_ints("axes", ax1, 1);
  CHECK_EQ_INT(max_batch_of("ReduceMean", 13, &a0, 1), 1);
  CHECK(max_batch_of("ReduceMean", 13, &a1, 1) > 1);
  camd_attr s0 = opcheck_attr_int("axis", 0), s1 = opcheck_attr_int("axis", 1);
  CHECK_EQ_INT(max_batch_of("Softmax", 13, &s0, 1), 1);
  CHECK_EQ_INT(max_batch_of("Softmax", 11, &s0, 1), 1);
  CHECK(max_batch_of("Softmax", 13, &s1, 1) > 1);
  CHECK(max_batch_of("Softmax", 11, NULL, 0) > 1);
}

/* ---- Softmax reference ---- */

typedef struct softmax_ref {
  int axis;    /* normalised */
  bool legacy; /* flatten [axis, rank) */
} softmax_ref;

static void ref_softmax(void *vctx, const double *const *in, const camd_shape *in_shapes,
                        double *const *out, const camd_shape *out_shapes) {
  (void)out_shapes;
  const softmax_ref *r = vctx;
  const camd_shape *s = &in_shapes[0];
  size_t outer = 1, n = 1, inner = 1;
  for (int d = 0; d < s->ndim; d++) {
    if (d < r->axis)
      outer *= (size_t)s->dims[d];
    else if (d == r->axis || r->legacy)
      n *= (size_t)s->dims[d];
    else
      inner *= (size_t)s->dims[d];
  }
  for (size_t o = 0; o < outer; o++) {
    for (size_t j = 0; j < inner; j++) {
      const double *x = in[0] + o * n * inner + j;
      double *y = out[0] + o * n * inner + j;
      double m = -INFINITY, sum = 0;
      for (size_t i = 0; i < n; i++) m = fmax(m, x[i * inner]);
      for (size_t i = 0; i < n; i++) sum += exp(x[i * inner] - m);
      for (size_t i = 0; i < n; i++) y[i * inner] = exp(x[i * inner] - m) / sum;
    }
  }
}

/* log(softmax(x)) in double. */
static void ref_log_softmax(void *vctx, const double *const *in, const camd_shape *in_shapes,
                            double *const *out, const camd_shape *out_shapes) {
  ref_softmax(vctx, in, in_shapes, out, out_shapes);
  size_t count = camd_shape_count(&out_shapes[0]);
  for (size_t i = 0; i < count; i++) out[0][i] = log(out[0][i]);
}

static void run_softmax_op(const char *op, int opset, camd_shape shape, int axis_attr,
                           bool has_axis, int axis_norm, const char *label) {
  softmax_ref r = {axis_norm, opset < 13};
  camd_attr a = opcheck_attr_int("axis", axis_attr);
  opcheck_spec s = {0};
  s.op_type = op;
  s.opset = opset;
  s.n_in = 1;
  s.in_shapes[0] = shape;
  s.n_out = 1;
  s.attrs = has_axis ? &a : NULL;
  s.n_attrs = has_axis ? 1 : 0;
  s.ref = strcmp(op, "Softmax") ? ref_log_softmax : ref_softmax;
  s.ref_ctx = &r;
  s.grad_check = 0x1;
  s.seed = 11;
  s.label = label;
  int fails = opcheck_run(&s);
  CHECK_MSG(fails == 0, "%s %s: %d failures", op, label, fails);
}

static void run_softmax(int opset, camd_shape shape, int axis_attr, bool has_axis, int axis_norm,
                        const char *label) {
  run_softmax_op("Softmax", opset, shape, axis_attr, has_axis, axis_norm, label);
}

static void test_log_softmax(void) {
  camd_shape s = opcheck_shape(4, 2, 3, 4, 5);
  run_softmax_op("LogSoftmax", 13, s, -1, true, 3, "opset 13 axis -1");
  run_softmax_op("LogSoftmax", 13, s, 1, true, 1, "opset 13 axis 1 (strided)");
  run_softmax_op("LogSoftmax", 11, s, 1, true, 1, "opset 11 axis 1 (flattened)");
  run_softmax_op("LogSoftmax", 13, opcheck_shape(2, 3, 1000), 0, false, 1, "opset 13 [3,1000]");
}

static void test_softmax_legacy(void) {
  camd_shape s = opcheck_shape(4, 2, 3, 4, 5);
  run_softmax(11, s, 1, true, 1, "opset 11 axis 1 on 4-D (flattened)");
  run_softmax(11, s, 2, true, 2, "opset 11 axis 2 on 4-D (flattened)");
  run_softmax(11, s, -1, true, 3, "opset 11 axis -1");
  run_softmax(9, s, 0, false, 1, "opset 9 default axis (1)");
  run_softmax(11, opcheck_shape(2, 3, 10), 1, true, 1, "opset 11 [3,10]");
}

static void test_softmax13(void) {
  camd_shape s = opcheck_shape(4, 2, 3, 4, 5);
  run_softmax(13, s, -1, true, 3, "opset 13 axis -1");
  run_softmax(13, s, 1, true, 1, "opset 13 axis 1 (strided)");
  run_softmax(13, s, 2, true, 2, "opset 13 axis 2 (strided)");
  run_softmax(13, opcheck_shape(2, 4, 1000), 0, false, 1, "opset 13 default axis [4,1000]");
  run_softmax(13, opcheck_shape(3, 2, 1, 6), 1, true, 1, "opset 13 axis of size 1");
}

/* Large logits must not overflow (max subtraction). */
static void test_softmax_large(void) {
  float v[8] = {1000.f, 999.f, -1000.f, 0.f, 88.f, 89.f, 90.f, 91.f};
  softmax_ref r = {1, false};
  opcheck_spec s = {0};
  s.op_type = "Softmax";
  s.opset = 13;
  s.n_in = 1;
  s.in_shapes[0] = opcheck_shape(2, 2, 4);
  s.float_values[0] = v;
  s.n_out = 1;
  s.ref = ref_softmax;
  s.ref_ctx = &r;
  s.grad_check = 0x1;
  s.label = "large logits";
  CHECK_EQ_INT(opcheck_run(&s), 0);
}

CAMD_TEST_MAIN(CAMD_TEST(test_mean_spatial), CAMD_TEST(test_mean_other_axes),
               CAMD_TEST(test_mean_all_and_noop), CAMD_TEST(test_batch_axis),
               CAMD_TEST(test_softmax_legacy), CAMD_TEST(test_softmax13),
               CAMD_TEST(test_softmax_large), CAMD_TEST(test_log_softmax))
