/* Tests of the elementwise activations (Relu, LeakyRelu, Clip at opsets 6 and 13, Sigmoid,
 * HardSigmoid, HardSwish, Tanh, Erf, Gelu, Sqrt, Pow, Identity, Dropout): forward against a double
 * reference, backward against finite differences, and PyTorch's gradient convention at the kinks.
 */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>

#include "camd/engine.h"
#include "camd/graph.h"
#include "opcheck.h"
#include "testlib.h"

enum {
  A_RELU,
  A_LEAKY,
  A_CLIP,
  A_SIGMOID,
  A_HSIGMOID,
  A_HSWISH,
  A_TANH,
  A_IDENTITY,
  A_ERF,
  A_GELU,
  A_GELU_TANH,
  A_SQRT,
  A_POW
};

typedef struct act_ref {
  int kind;
  double alpha, beta, lo, hi;
} act_ref;

static double ref_one(const act_ref *r, double x) {
  switch (r->kind) {
    case A_RELU:
      return x > 0 ? x : 0;
    case A_LEAKY:
      return x >= 0 ? x : r->alpha * x;
    case A_CLIP:
      return x < r->lo ? r->lo : (x > r->hi ? r->hi : x);
    case A_SIGMOID:
      return 1.0 / (1.0 + exp(-x));
    case A_HSIGMOID: {
      double t = r->alpha * x + r->beta;
      return t < 0 ? 0 : (t > 1 ? 1 : t);
    }
    case A_HSWISH: {
      double t = x / 6.0 + 0.5;
      return x * (t < 0 ? 0 : (t > 1 ? 1 : t));
    }
    case A_TANH:
      return tanh(x);
    case A_ERF:
      return erf(x);
    case A_GELU: /* PyTorch's gelu: x * Phi(x) */
      return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case A_GELU_TANH:
      return 0.5 * x *
             (1.0 + tanh(0.7978845608028654 /* sqrt(2 / pi) */ * (x + 0.044715 * x * x * x)));
    case A_SQRT:
      return sqrt(x);
    case A_POW: /* alpha: the exponent */
      return pow(x, r->alpha);
    default:
      return x;
  }
}

static void ref_act(void *ctx, const double *const *in, const camd_shape *in_shapes,
                    double *const *out, const camd_shape *out_shapes) {
  (void)out_shapes;
  size_t n = camd_shape_count(&in_shapes[0]);
  for (size_t i = 0; i < n; i++) out[0][i] = ref_one(ctx, in[0][i]);
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static double urand(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* n values uniform in [-range, range], kept at least 0.05 away from every kink. */
static float *values_avoiding(size_t n, double range, const double *kinks, int n_kinks) {
  float *v = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) {
    double x;
    bool near;
    do {
      x = (2 * urand() - 1) * range;
      near = false;
      for (int k = 0; k < n_kinks; k++) near |= fabs(x - kinks[k]) < 0.05;
    } while (near);
    v[i] = (float)x;
  }
  return v;
}

/* One opcheck run of a unary op on `shape` with values avoiding the kinks. */
static int run_act(const char *op, int opset, const act_ref *r, camd_shape shape,
                   const camd_attr *attrs, int n_attrs, const double *kinks, int n_kinks,
                   const char *label) {
  opcheck_spec s = {0};
  s.op_type = op;
  s.opset = opset;
  s.n_in = 1;
  s.in_shapes[0] = shape;
  s.n_out = 1;
  s.attrs = attrs;
  s.n_attrs = n_attrs;
  s.ref = ref_act;
  s.ref_ctx = (void *)r;
  s.grad_check = 0x1;
  s.seed = 42;
  s.label = label;
  float *v = values_avoiding(camd_shape_count(&shape), 4.0, kinks, n_kinks);
  s.float_values[0] = v;
  int fails = opcheck_run(&s);
  free(v);
  return fails;
}

static const camd_shape *shapes_list(int *n) {
  static camd_shape list[4];
  list[0] = opcheck_shape(4, 2, 3, 4, 5);
  list[1] = opcheck_shape(2, 3, 7);
  list[2] = opcheck_shape(1, 1);
  list[3] = opcheck_shape(3, 2, 1, 9);
  *n = 4;
  return list;
}

static void check_unary(const char *op, int opset, act_ref r, const camd_attr *attrs, int n_attrs,
                        const double *kinks, int n_kinks) {
  int ns;
  const camd_shape *shapes = shapes_list(&ns);
  for (int i = 0; i < ns; i++) {
    int fails = run_act(op, opset, &r, shapes[i], attrs, n_attrs, kinks, n_kinks, op);
    CHECK_MSG(fails == 0, "%s opset %d shape #%d: %d failures", op, opset, i, fails);
  }
}

static void test_relu(void) {
  double k[] = {0};
  check_unary("Relu", 14, (act_ref){A_RELU, 0, 0, 0, 0}, NULL, 0, k, 1);
  check_unary("Relu", 6, (act_ref){A_RELU, 0, 0, 0, 0}, NULL, 0, k, 1);
}

static void test_leakyrelu(void) {
  double k[] = {0};
  check_unary("LeakyRelu", 16, (act_ref){A_LEAKY, 0.01, 0, 0, 0}, NULL, 0, k, 1);
  camd_attr a = opcheck_attr_float("alpha", 0.3f);
  check_unary("LeakyRelu", 6, (act_ref){A_LEAKY, (double)0.3f, 0, 0, 0}, &a, 1, k, 1);
}

static void test_clip_opset6(void) {
  double k[] = {-1.5, 2.0};
  camd_attr a[2] = {opcheck_attr_float("min", -1.5f), opcheck_attr_float("max", 2.0f)};
  check_unary("Clip", 6, (act_ref){A_CLIP, 0, 0, -1.5, 2.0}, a, 2, k, 2);
  /* Only max given: min defaults to -FLT_MAX. */
  check_unary("Clip", 6, (act_ref){A_CLIP, 0, 0, -DBL_MAX, 2.0}, &a[1], 1, k, 2);
  /* ReLU6 as exported before opset 11. */
  double k6[] = {0, 6};
  camd_attr r6[2] = {opcheck_attr_float("min", 0.f), opcheck_attr_float("max", 6.f)};
  check_unary("Clip", 6, (act_ref){A_CLIP, 0, 0, 0, 6}, r6, 2, k6, 2);
}

/* Clip at opset 11+ with min/max given as constant scalar inputs (optionally absent). */
static int clip_inputs(int opset, const float *lo, const float *hi, act_ref r, camd_shape shape,
                       const double *kinks, int n_kinks) {
  opcheck_spec s = {0};
  s.op_type = "Clip";
  s.opset = opset;
  s.n_in = 3;
  s.in_shapes[0] = shape;
  s.in_shapes[1] = opcheck_shape(0);
  s.in_shapes[2] = opcheck_shape(0);
  s.in_const = 0x6;
  if (!lo) s.in_absent |= 0x2;
  if (!hi) s.in_absent |= 0x4;
  s.float_values[1] = lo;
  s.float_values[2] = hi;
  s.n_out = 1;
  s.ref = ref_act;
  s.ref_ctx = &r;
  s.grad_check = 0x1;
  s.seed = 7;
  s.label = "Clip inputs";
  float *v = values_avoiding(camd_shape_count(&shape), 8.0, kinks, n_kinks);
  s.float_values[0] = v;
  int fails = opcheck_run(&s);
  free(v);
  return fails;
}

static void test_clip_opset13(void) {
  float lo = -1.5f, hi = 2.0f, zero = 0.f, six = 6.f;
  double k[] = {-1.5, 2.0}, k6[] = {0, 6};
  camd_shape s4 = opcheck_shape(4, 2, 3, 4, 5), s2 = opcheck_shape(2, 3, 11);
  CHECK_EQ_INT(clip_inputs(13, &lo, &hi, (act_ref){A_CLIP, 0, 0, -1.5, 2.0}, s4, k, 2), 0);
  CHECK_EQ_INT(clip_inputs(11, &lo, &hi, (act_ref){A_CLIP, 0, 0, -1.5, 2.0}, s2, k, 2), 0);
  CHECK_EQ_INT(clip_inputs(13, &zero, &six, (act_ref){A_CLIP, 0, 0, 0, 6}, s4, k6, 2), 0);
  CHECK_EQ_INT(clip_inputs(13, NULL, &hi, (act_ref){A_CLIP, 0, 0, -DBL_MAX, 2.0}, s4, k, 2), 0);
  CHECK_EQ_INT(clip_inputs(13, &lo, NULL, (act_ref){A_CLIP, 0, 0, -1.5, DBL_MAX}, s2, k, 2), 0);
  CHECK_EQ_INT(clip_inputs(13, NULL, NULL, (act_ref){A_CLIP, 0, 0, -DBL_MAX, DBL_MAX}, s2, k, 0),
               0);
}

static void test_sigmoid_tanh(void) {
  check_unary("Sigmoid", 13, (act_ref){A_SIGMOID, 0, 0, 0, 0}, NULL, 0, NULL, 0);
  check_unary("Tanh", 13, (act_ref){A_TANH, 0, 0, 0, 0}, NULL, 0, NULL, 0);
}

static void test_hardsigmoid(void) {
  double k[] = {-2.5, 2.5};
  check_unary("HardSigmoid", 6, (act_ref){A_HSIGMOID, (double)0.2f, 0.5, 0, 0}, NULL, 0, k, 2);
  camd_attr a[2] = {opcheck_attr_float("alpha", 1.f / 6.f), opcheck_attr_float("beta", 0.5f)};
  double k2[] = {-3, 3};
  check_unary("HardSigmoid", 6, (act_ref){A_HSIGMOID, (double)(1.f / 6.f), 0.5, 0, 0}, a, 2, k2, 2);
}

static void test_hardswish(void) {
  double k[] = {-3, 3};
  check_unary("HardSwish", 14, (act_ref){A_HSWISH, 0, 0, 0, 0}, NULL, 0, k, 2);
}

static void test_identity_dropout(void) {
  check_unary("Identity", 13, (act_ref){A_IDENTITY, 0, 0, 0, 0}, NULL, 0, NULL, 0);
  check_unary("Dropout", 7, (act_ref){A_IDENTITY, 0, 0, 0, 0}, NULL, 0, NULL, 0);
  camd_attr r = opcheck_attr_float("ratio", 0.5f);
  check_unary("Dropout", 10, (act_ref){A_IDENTITY, 0, 0, 0, 0}, &r, 1, NULL, 0);
  /* Opset 13: ratio as a constant input, training_mode constant false. */
  static const int64_t off[1] = {0};
  float ratio = 0.3f;
  act_ref ref = {A_IDENTITY, 0, 0, 0, 0};
  opcheck_spec s = {0};
  s.op_type = "Dropout";
  s.opset = 13;
  s.n_in = 3;
  s.in_shapes[0] = opcheck_shape(4, 2, 3, 4, 5);
  s.in_shapes[1] = opcheck_shape(0);
  s.in_shapes[2] = opcheck_shape(0);
  s.in_const = 0x2;
  s.float_values[1] = &ratio;
  s.int_inputs[2] = off;
  s.n_out = 1;
  s.ref = ref_act;
  s.ref_ctx = &ref;
  s.grad_check = 0x1;
  s.label = "Dropout-13";
  CHECK_EQ_INT(opcheck_run(&s), 0);
}

/* ---- direct runs through a session: exact kink values and load errors ---- */

typedef struct one_node {
  camd_graph *g;
  int x, y;
} one_node;

/* Builds input x [1, n] -> op -> y; extra inputs are float scalar constants (NaN = absent). */
static int build_unary(one_node *t, const char *op, int opset, int64_t n, const camd_attr *attrs,
                       int n_attrs, int n_extra, const float *extra, int n_out, camd_error *err) {
  t->g = camd_graph_new();
  camd_shape s = opcheck_shape(2, 1, n);
  t->x = camd_graph_add_input(t->g, "x", &s, err);
  int ins[4] = {t->x, -1, -1, -1};
  for (int i = 0; i < n_extra; i++) {
    if (isnan(extra[i])) continue;
    camd_shape sc = opcheck_shape(0);
    float *d = malloc(sizeof(float));
    *d = extra[i];
    char name[16];
    snprintf(name, sizeof name, "c%d", i);
    ins[1 + i] = camd_graph_add_constant(t->g, name, CAMD_FLOAT32, &sc, d, err);
  }
  const char *names[2] = {"y", "mask"};
  int outs[2];
  int rc = camd_graph_add_node(t->g, op, "node", opset, 1 + n_extra, ins, n_out, names, attrs,
                               n_attrs, outs, err);
  t->y = rc ? -1 : outs[0];
  return rc;
}

/* Runs forward and backward (seed 1) on x; fills y and gx. */
static void run_unary(one_node *t, const float *x, size_t n, float *y, float *gx) {
  camd_error err = {0};
  camd_model *m = NULL;
  CHECK_EQ_INT(camd_graph_mark_output(t->g, t->y, &err), 0);
  int rc = camd_graph_finalize(t->g, NULL, &m, &err);
  t->g = NULL;
  CHECK_MSG(rc == 0, "%s", err.message);
  if (rc) return;
  camd_session *s = NULL;
  rc = camd_session_create(m, 1, &s, &err);
  CHECK_MSG(rc == 0, "%s", err.message);
  if (!rc) {
    camd_forward_opts o;
    camd_forward_opts_init(&o);
    o.grad_to = t->x;
    CHECK_EQ_INT(camd_session_forward(s, 1, x, &o, &err), 0);
    const float *yv = camd_session_value(s, t->y, NULL);
    CHECK(yv != NULL);
    if (yv) memcpy(y, yv, n * sizeof(float));
    float *seed = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) seed[i] = 1.f;
    rc = camd_session_backward(s, t->y, seed, &err);
    CHECK_MSG(rc == 0, "%s", err.message);
    const float *g = camd_session_grad(s, t->x, NULL);
    CHECK(g != NULL);
    if (g) memcpy(gx, g, n * sizeof(float));
    free(seed);
    camd_session_destroy(s);
  }
  camd_model_release(m);
}

static void test_kinks_relu_clip(void) {
  const float x[6] = {-1.f, 0.f, 0.5f, 6.f, 7.f, -0.f};
  float y[6], gx[6];
  camd_error err = {0};
  one_node t;
  /* Relu: gradient 0 at exactly 0 (passes where y > 0). */
  CHECK_EQ_INT(build_unary(&t, "Relu", 14, 6, NULL, 0, 0, NULL, 1, &err), 0);
  run_unary(&t, x, 6, y, gx);
  const float ry[6] = {0, 0, 0.5f, 6, 7, 0}, rg[6] = {0, 0, 1, 1, 1, 0};
  for (int i = 0; i < 6; i++) {
    CHECK_NEAR(y[i], ry[i], 0);
    CHECK_NEAR(gx[i], rg[i], 0);
  }
  /* Clip(0, 6) (ReLU6): gradient only strictly inside (hardtanh). */
  const float b[2] = {0.f, 6.f};
  CHECK_EQ_INT(build_unary(&t, "Clip", 13, 6, NULL, 0, 2, b, 1, &err), 0);
  run_unary(&t, x, 6, y, gx);
  const float cy[6] = {0, 0, 0.5f, 6, 6, 0}, cg[6] = {0, 0, 1, 0, 0, 0};
  for (int i = 0; i < 6; i++) {
    CHECK_NEAR(y[i], cy[i], 0);
    CHECK_NEAR(gx[i], cg[i], 0);
  }
  /* LeakyRelu: slope alpha at exactly 0 (PyTorch: x > 0 ? 1 : alpha). */
  camd_attr a = opcheck_attr_float("alpha", 0.25f);
  CHECK_EQ_INT(build_unary(&t, "LeakyRelu", 16, 6, &a, 1, 0, NULL, 1, &err), 0);
  run_unary(&t, x, 6, y, gx);
  const float ly[6] = {-0.25f, 0, 0.5f, 6, 7, 0}, lg[6] = {0.25f, 0.25f, 1, 1, 1, 0.25f};
  for (int i = 0; i < 6; i++) {
    CHECK_NEAR(y[i], ly[i], 0);
    CHECK_NEAR(gx[i], lg[i], 0);
  }
  /* HardSwish at -3 and 3 (PyTorch: x < -3 -> 0, x <= 3 -> x/3 + 1/2, else 1). */
  const float hx[6] = {-4.f, -3.f, 0.f, 3.f, 4.f, 1.5f};
  CHECK_EQ_INT(build_unary(&t, "HardSwish", 14, 6, NULL, 0, 0, NULL, 1, &err), 0);
  run_unary(&t, hx, 6, y, gx);
  const float hy[6] = {0, 0, 0, 3, 4, 1.125f}, hg[6] = {0, -0.5f, 0.5f, 1.5f, 1, 1};
  for (int i = 0; i < 6; i++) {
    CHECK_NEAR(y[i], hy[i], 1e-6);
    CHECK_NEAR(gx[i], hg[i], 1e-6);
  }
}

static void test_clip_nan_and_inverted(void) {
  const float x[4] = {NAN, -5.f, 0.f, 5.f};
  float y[4], gx[4];
  camd_error err = {0};
  one_node t;
  /* min > max: every value becomes max (ONNX); NaN propagates. */
  camd_attr a[2] = {opcheck_attr_float("min", 2.f), opcheck_attr_float("max", 1.f)};
  CHECK_EQ_INT(build_unary(&t, "Clip", 6, 4, a, 2, 0, NULL, 1, &err), 0);
  run_unary(&t, x, 4, y, gx);
  CHECK(isnan(y[0]));
  for (int i = 1; i < 4; i++) CHECK_NEAR(y[i], 1.f, 0);
}

static void test_load_errors(void) {
  camd_error err = {0};
  one_node t;
  /* Dropout's mask output cannot be produced. */
  int rc = build_unary(&t, "Dropout", 13, 4, NULL, 0, 0, NULL, 2, &err);
  CHECK_EQ_INT(rc, CAMD_E_UNSUPPORTED);
  CHECK_MSG(strstr(err.message, "mask") != NULL, "%s", err.message);
  camd_graph_free(t.g);
  /* HardSwish does not exist before opset 14. */
  rc = build_unary(&t, "HardSwish", 13, 4, NULL, 0, 0, NULL, 1, &err);
  CHECK_EQ_INT(rc, CAMD_E_UNSUPPORTED);
  camd_graph_free(t.g);
  /* Clip with a computed (non-constant) bound. */
  t.g = camd_graph_new();
  camd_shape s = opcheck_shape(2, 1, 4);
  int x = camd_graph_add_input(t.g, "x", &s, &err);
  int lo = camd_graph_add_input(t.g, "lo", &s, &err);
  int ins[2] = {x, lo}, out;
  const char *names[1] = {"y"};
  rc = camd_graph_add_node(t.g, "Clip", "clip", 13, 2, ins, 1, names, NULL, 0, &out, &err);
  CHECK_EQ_INT(rc, CAMD_E_UNSUPPORTED);
  CHECK_MSG(strstr(err.message, "clip") != NULL, "%s", err.message);
  camd_graph_free(t.g);
}

static void test_dropout_training_mode(void) {
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape s = opcheck_shape(2, 1, 4), sc = opcheck_shape(0);
  int x = camd_graph_add_input(g, "x", &s, &err);
  float *r = malloc(sizeof(float));
  *r = 0.5f;
  int ratio = camd_graph_add_constant(g, "ratio", CAMD_FLOAT32, &sc, r, &err);
  int64_t *tm = malloc(sizeof(int64_t));
  *tm = 1;
  int train = camd_graph_add_constant(g, "train", CAMD_INT64, &sc, tm, &err);
  int ins[3] = {x, ratio, train}, out;
  const char *names[1] = {"y"};
  int rc = camd_graph_add_node(g, "Dropout", "drop", 13, 3, ins, 1, names, NULL, 0, &out, &err);
  CHECK_EQ_INT(rc, CAMD_E_UNSUPPORTED);
  CHECK_MSG(strstr(err.message, "training_mode") != NULL, "%s", err.message);
  camd_graph_free(g);
}

static void test_erf_gelu(void) {
  check_unary("Erf", 13, (act_ref){A_ERF, 0, 0, 0, 0}, NULL, 0, NULL, 0);
  check_unary("Erf", 9, (act_ref){A_ERF, 0, 0, 0, 0}, NULL, 0, NULL, 0);
  check_unary("Gelu", 20, (act_ref){A_GELU, 0, 0, 0, 0}, NULL, 0, NULL, 0);
  camd_attr a = opcheck_attr_string("approximate", "tanh");
  check_unary("Gelu", 20, (act_ref){A_GELU_TANH, 0, 0, 0, 0}, &a, 1, NULL, 0);
  /* Gelu does not exist before opset 20; an unknown approximation is an error. */
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape s = opcheck_shape(2, 1, 4);
  int x = camd_graph_add_input(g, "x", &s, &err), out;
  const char *names[1] = {"y"};
  CHECK_EQ_INT(camd_graph_add_node(g, "Gelu", "g", 17, 1, &x, 1, names, NULL, 0, &out, &err),
               CAMD_E_UNSUPPORTED);
  camd_attr bad = opcheck_attr_string("approximate", "cubic");
  CHECK_EQ_INT(camd_graph_add_node(g, "Gelu", "g", 20, 1, &x, 1, names, &bad, 1, &out, &err),
               CAMD_E_INVALID);
  CHECK_MSG(strstr(err.message, "cubic") != NULL, "%s", err.message);
  camd_graph_free(g);
}

/* Sqrt and Pow on inputs in [lo, 4.5]. */
static int run_positive(const char *op, int opset, act_ref r, const float *exponent,
                        const char *label, double lo) {
  camd_shape shape = opcheck_shape(4, 2, 3, 4, 5);
  opcheck_spec s = {0};
  s.op_type = op;
  s.opset = opset;
  s.n_in = exponent ? 2 : 1;
  s.in_shapes[0] = shape;
  s.in_shapes[1] = opcheck_shape(0);
  s.in_const = exponent ? 0x2 : 0;
  s.float_values[1] = exponent;
  s.n_out = 1;
  s.ref = ref_act;
  s.ref_ctx = &r;
  s.grad_check = 0x1;
  s.seed = 3;
  s.label = label;
  size_t n = camd_shape_count(&shape);
  float *v = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) v[i] = (float)(lo + (4.5 - lo) * urand());
  s.float_values[0] = v;
  int fails = opcheck_run(&s);
  free(v);
  return fails;
}

static void test_sqrt_pow(void) {
  CHECK_EQ_INT(run_positive("Sqrt", 13, (act_ref){A_SQRT, 0, 0, 0, 0}, NULL, "Sqrt", 0.5), 0);
  const float e2 = 2.f, e3 = 3.f, eh = -0.5f;
  CHECK_EQ_INT(run_positive("Pow", 13, (act_ref){A_POW, 2, 0, 0, 0}, &e2, "Pow 2", 0.5), 0);
  CHECK_EQ_INT(run_positive("Pow", 15, (act_ref){A_POW, 3, 0, 0, 0}, &e3, "Pow 3", 0.5), 0);
  CHECK_EQ_INT(run_positive("Pow", 7, (act_ref){A_POW, -0.5, 0, 0, 0}, &eh, "Pow -0.5", 0.5), 0);
  /* Pow 2 on negative values too (x * x). */
  CHECK_EQ_INT(run_positive("Pow", 13, (act_ref){A_POW, 2, 0, 0, 0}, &e2, "Pow 2 signed", -4.5), 0);
  /* A computed exponent is not supported. */
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape s = opcheck_shape(2, 1, 4);
  int ins[2] = {camd_graph_add_input(g, "x", &s, &err), camd_graph_add_input(g, "e", &s, &err)};
  int out;
  const char *names[1] = {"y"};
  CHECK_EQ_INT(camd_graph_add_node(g, "Pow", "p", 13, 2, ins, 1, names, NULL, 0, &out, &err),
               CAMD_E_UNSUPPORTED);
  CHECK_MSG(strstr(err.message, "exponent") != NULL, "%s", err.message);
  camd_graph_free(g);
}

CAMD_TEST_MAIN(CAMD_TEST(test_relu), CAMD_TEST(test_leakyrelu), CAMD_TEST(test_clip_opset6),
               CAMD_TEST(test_clip_opset13), CAMD_TEST(test_sigmoid_tanh),
               CAMD_TEST(test_hardsigmoid), CAMD_TEST(test_hardswish),
               CAMD_TEST(test_identity_dropout), CAMD_TEST(test_kinks_relu_clip),
               CAMD_TEST(test_clip_nan_and_inverted), CAMD_TEST(test_load_errors),
               CAMD_TEST(test_dropout_training_mode), CAMD_TEST(test_erf_gelu),
               CAMD_TEST(test_sqrt_pow))
