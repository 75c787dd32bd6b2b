/* BatchNormalization (inference) tests: forward/backward against the spec formula in double,
 * ranks 2..4, epsilon, spatial = 0 (opset 7), and the training-mode rejection.
 * LayerNormalization tests: forward against the spec formula in double, backward against finite
 * differences, axis -1 (transformer tokens), a middle axis, axis 1 of NCHW, without B, errors. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "camd/graph.h"
#include "opcheck.h"
#include "testlib.h"

typedef struct bn_case {
  double eps;
  bool per_element; /* spatial = 0: statistics per element of C x D1 x ... */
} bn_case;

static void bn_ref(void *vctx, const double *const *in, const camd_shape *is, double *const *out,
                   const camd_shape *os) {
  const bn_case *c = vctx;
  (void)os;
  const int64_t N = is[0].dims[0], C = is[0].dims[1];
  int64_t inner = 1;
  for (int i = 2; i < is[0].ndim; i++) inner *= is[0].dims[i];
  for (int64_t n = 0; n < N; n++)
    for (int64_t ch = 0; ch < C; ch++)
      for (int64_t i = 0; i < inner; i++) {
        const int64_t e = (n * C + ch) * inner + i;
        const int64_t s = c->per_element ? ch * inner + i : ch;
        out[0][e] = (in[0][e] - in[3][s]) / sqrt(in[4][s] + c->eps) * in[1][s] + in[2][s];
      }
}

static int run_bn(const char *label, camd_shape x, bool per_element, double eps, int opset) {
  bn_case c = {eps, per_element};
  opcheck_spec s;
  memset(&s, 0, sizeof(s));
  s.op_type = "BatchNormalization";
  s.opset = opset;
  s.n_in = 5;
  s.in_shapes[0] = x;
  int64_t cnt = x.dims[1];
  if (per_element) {
    for (int i = 2; i < x.ndim; i++) cnt *= x.dims[i];
  }
  camd_shape ps = opcheck_shape(1, cnt);
  if (per_element) {
    ps = x;
    for (int i = 0; i < x.ndim - 1; i++) ps.dims[i] = x.dims[i + 1];
    ps.ndim = x.ndim - 1;
  }
  for (int i = 1; i < 5; i++) s.in_shapes[i] = ps;
  s.in_const = 30u;
  float *var = malloc((size_t)cnt * sizeof(float));
  for (int64_t i = 0; i < cnt; i++) var[i] = 0.25f + 0.1f * (float)(i % 7);
  s.float_values[4] = var;
  s.n_out = 1;
  camd_attr attrs[2];
  int na = 0;
  attrs[na++] = opcheck_attr_float("epsilon", (float)eps);
  if (per_element) attrs[na++] = opcheck_attr_int("spatial", 0);
  s.attrs = attrs;
  s.n_attrs = na;
  s.ref = bn_ref;
  s.ref_ctx = &c;
  s.grad_check = 1u;
  s.seed = 5u + (uint64_t)strlen(label);
  s.label = label;
  int rc = opcheck_run(&s);
  free(var);
  return rc;
}

static void test_bn(void) {
  CHECK_EQ_INT(run_bn("bn 4-D", opcheck_shape(4, 2, 3, 4, 5), false, 1e-5, 15), 0);
  CHECK_EQ_INT(run_bn("bn 2-D eps 1e-3", opcheck_shape(2, 3, 6), false, 1e-3, 15), 0);
  CHECK_EQ_INT(run_bn("bn 3-D", opcheck_shape(3, 2, 4, 7), false, 1e-5, 9), 0);
  CHECK_EQ_INT(run_bn("bn spatial=0 opset 7", opcheck_shape(4, 2, 3, 2, 2), true, 1e-5, 7), 0);
  /* Large enough for several pieces of whole planes on the pool (1 vs 3 threads bit for bit). */
  CHECK_EQ_INT(run_bn("bn 4-D, pieces", opcheck_shape(4, 2, 40, 30, 30), false, 1e-5, 15), 0);
  CHECK_EQ_INT(run_bn("bn 4-D, planes of 7x7", opcheck_shape(4, 1, 1000, 7, 7), false, 1e-5, 15),
               0);
}

static void test_bn_errors(void) {
  camd_error err;
  camd_graph *g = camd_graph_new();
  camd_shape xs = opcheck_shape(4, 1, 2, 3, 3), ps = opcheck_shape(1, 2);
  int ins[5];
  ins[0] = camd_graph_add_input(g, "x", &xs, &err);
  static const char *const names[4] = {"s", "b", "m", "v"};
  for (int i = 0; i < 4; i++) {
    float *d = malloc(2 * sizeof(float));
    d[0] = d[1] = 1.0f;
    ins[i + 1] = camd_graph_add_constant(g, names[i], CAMD_FLOAT32, &ps, d, &err);
  }
  camd_attr tm = opcheck_attr_int("training_mode", 1);
  int out;
  int rc = camd_graph_add_node(g, "BatchNormalization", "bn", 15, 5, ins, 1,
                               (const char *const[]){"y"}, &tm, 1, &out, &err);
  CHECK(rc == CAMD_E_UNSUPPORTED);
  /* A computed scale is rejected. */
  camd_shape ss = opcheck_shape(1, 2);
  ins[1] = camd_graph_add_input(g, "scale_act", &ss, &err);
  rc = camd_graph_add_node(g, "BatchNormalization", "bn2", 15, 5, ins, 1,
                           (const char *const[]){"y2"}, NULL, 0, &out, &err);
  CHECK(rc != 0);
  camd_graph_free(g);
}

typedef struct ln_case {
  int axis; /* normalised */
  double eps;
  bool bias;
} ln_case;

static void ln_ref(void *vctx, const double *const *in, const camd_shape *is, double *const *out,
                   const camd_shape *os) {
  const ln_case *c = vctx;
  (void)os;
  int64_t rows = 1, d = 1;
  for (int i = 0; i < is[0].ndim; i++) {
    if (i < c->axis)
      rows *= is[0].dims[i];
    else
      d *= is[0].dims[i];
  }
  for (int64_t r = 0; r < rows; r++) {
    const double *x = in[0] + r * d;
    double m = 0, v = 0;
    for (int64_t i = 0; i < d; i++) m += x[i];
    m /= (double)d;
    for (int64_t i = 0; i < d; i++) v += (x[i] - m) * (x[i] - m);
    v /= (double)d;
    for (int64_t i = 0; i < d; i++) {
      out[0][r * d + i] = (x[i] - m) / sqrt(v + c->eps) * in[1][i] + (c->bias ? in[2][i] : 0.0);
    }
  }
}

static int run_ln(const char *label, camd_shape x, int64_t axis, double eps, bool bias) {
  ln_case c = {(int)(axis < 0 ? axis + x.ndim : axis), eps, bias};
  opcheck_spec s;
  memset(&s, 0, sizeof(s));
  s.op_type = "LayerNormalization";
  s.opset = 17;
  s.n_in = bias ? 3 : 2;
  s.in_shapes[0] = x;
  camd_shape ps = {0};
  for (int i = c.axis; i < x.ndim; i++) ps.dims[ps.ndim++] = x.dims[i];
  s.in_shapes[1] = ps;
  s.in_shapes[2] = ps;
  s.in_const = 6u;
  s.n_out = 1;
  camd_attr attrs[2] = {opcheck_attr_float("epsilon", (float)eps), opcheck_attr_int("axis", axis)};
  s.attrs = attrs;
  s.n_attrs = 2;
  s.ref = ln_ref;
  s.ref_ctx = &c;
  s.grad_check = 1u;
  s.seed = 11u + (uint64_t)strlen(label);
  s.label = label;
  return opcheck_run(&s);
}

static void test_ln(void) {
  CHECK_EQ_INT(run_ln("ln tokens", opcheck_shape(3, 2, 5, 16), -1, 1e-6, true), 0);
  CHECK_EQ_INT(run_ln("ln NHWC", opcheck_shape(4, 2, 3, 4, 8), -1, 1e-6, true), 0);
  CHECK_EQ_INT(run_ln("ln two axes", opcheck_shape(4, 2, 3, 4, 5), 2, 1e-5, true), 0);
  CHECK_EQ_INT(run_ln("ln axis 1 no bias", opcheck_shape(4, 2, 3, 2, 2), 1, 1e-5, false), 0);
}

static void test_ln_errors(void) {
  camd_error err;
  camd_graph *g = camd_graph_new();
  camd_shape xs = opcheck_shape(3, 1, 4, 6), ps = opcheck_shape(1, 5);
  int ins[3];
  ins[0] = camd_graph_add_input(g, "x", &xs, &err);
  float *d = calloc(5, sizeof(float));
  ins[1] = camd_graph_add_constant(g, "s", CAMD_FLOAT32, &ps, d, &err);
  int out;
  /* Scale of the wrong length. */
  int rc = camd_graph_add_node(g, "LayerNormalization", "ln", 17, 2, ins, 1,
                               (const char *const[]){"y"}, NULL, 0, &out, &err);
  CHECK_EQ_INT(rc, CAMD_E_SHAPE);
  CHECK_MSG(strstr(err.message, "Scale") != NULL, "%s", err.message);
  /* Axis out of range. */
  camd_attr ax = opcheck_attr_int("axis", 3);
  rc = camd_graph_add_node(g, "LayerNormalization", "ln2", 17, 2, ins, 1,
                           (const char *const[]){"y2"}, &ax, 1, &out, &err);
  CHECK_EQ_INT(rc, CAMD_E_INVALID);
  /* Computed scale. */
  camd_shape ss = opcheck_shape(1, 6);
  ins[1] = camd_graph_add_input(g, "scale_act", &ss, &err);
  rc = camd_graph_add_node(g, "LayerNormalization", "ln3", 17, 2, ins, 1,
                           (const char *const[]){"y3"}, NULL, 0, &out, &err);
  CHECK_EQ_INT(rc, CAMD_E_UNSUPPORTED);
  /* Not before opset 17. */
  rc = camd_graph_add_node(g, "LayerNormalization", "ln4", 16, 2, ins, 1,
                           (const char *const[]){"y4"}, NULL, 0, &out, &err);
  CHECK_EQ_INT(rc, CAMD_E_UNSUPPORTED);
  camd_graph_free(g);
}

CAMD_TEST_MAIN(CAMD_TEST(test_bn), CAMD_TEST(test_bn_errors), CAMD_TEST(test_ln),
               CAMD_TEST(test_ln_errors))
