/* Tests of Add, Sub, Mul, Div: numpy broadcasting in every arrangement (constant or batched
 * operands on either side), legacy opset-6 axis broadcasting, forward and both gradients. */
#include <stdint.h>
#include <stdlib.h>

#include "camd/graph.h"
#include "opcheck.h"
#include "testlib.h"

enum { K_ADD, K_SUB, K_MUL, K_DIV };
static const char *const kind_name[] = {"Add", "Sub", "Mul", "Div"};

typedef struct bin_ref {
  int kind;
  /* Legacy broadcast: B is viewed with this shape (ndim 0 = use B's own shape). */
  camd_shape b_view;
} bin_ref;

static void ref_binary(void *vctx, const double *const *in, const camd_shape *in_shapes,
                       double *const *out, const camd_shape *out_shapes) {
  const bin_ref *r = vctx;
  const camd_shape *sa = &in_shapes[0];
  const camd_shape *sb = r->b_view.ndim > 0 ? &r->b_view : &in_shapes[1];
  const camd_shape *so = &out_shapes[0];
  size_t n = camd_shape_count(so);
  int64_t idx[CAMD_MAX_DIMS] = {0};
  for (size_t i = 0; i < n; i++) {
    opcheck_unravel(i, so, idx);
    double a = in[0][opcheck_bidx(sa, so->ndim, idx)], b = in[1][opcheck_bidx(sb, so->ndim, idx)];
    double v;
    switch (r->kind) {
      case K_ADD:
        v = a + b;
        break;
      case K_SUB:
        v = a - b;
        break;
      case K_MUL:
        v = a * b;
        break;
      default:
        v = a / b;
        break;
    }
    out[0][i] = v;
  }
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* Values of magnitude in [0.5, 1.5] with random sign: safe denominators. */
static float *denominators(const camd_shape *s) {
  size_t n = camd_shape_count(s);
  float *v = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) {
    double m = 0.5 + urand();
    v[i] = (float)(urand() < 0.5 ? -m : m);
  }
  return v;
}

/* Runs all four ops on shapes a, b; const_mask says which inputs are constants. */
static void check_all(const char *label, camd_shape a, camd_shape b, unsigned const_mask) {
  for (int k = 0; k < 4; k++) {
    bin_ref r = {k, {0}};
    opcheck_spec s = {0};
    s.op_type = kind_name[k];
    s.opset = 14;
    s.n_in = 2;
    s.in_shapes[0] = a;
    s.in_shapes[1] = b;
    s.in_const = const_mask;
    s.n_out = 1;
    s.ref = ref_binary;
    s.ref_ctx = &r;
    s.grad_check = ~const_mask & 0x3u;
    s.seed = 1000 + (uint64_t)k;
    s.label = label;
    float *den = NULL;
    if (k == K_DIV) {
      den = denominators(&b);
      s.float_values[1] = den;
    }
    int fails = opcheck_run(&s);
    CHECK_MSG(fails == 0, "%s %s: %d failures", kind_name[k], label, fails);
    free(den);
  }
}

static void test_same_shape_const(void) {
  check_all("[2,3,4,5] + const [1,3,4,5]", opcheck_shape(4, 2, 3, 4, 5),
            opcheck_shape(4, 1, 3, 4, 5), 0x2);
  check_all("[2,3,4,5] + const [3,4,5]", opcheck_shape(4, 2, 3, 4, 5), opcheck_shape(3, 3, 4, 5),
            0x2);
}

static void test_both_batched_same(void) {
  check_all("residual [2,3,4,5] + [2,3,4,5]", opcheck_shape(4, 2, 3, 4, 5),
            opcheck_shape(4, 2, 3, 4, 5), 0x0);
}

static void test_per_channel(void) {
  check_all("[2,3,4,5] + const [3,1,1]", opcheck_shape(4, 2, 3, 4, 5), opcheck_shape(3, 3, 1, 1),
            0x2);
}

static void test_per_channel_first(void) {
  check_all("const [3,1,1] + [2,3,4,5]", opcheck_shape(3, 3, 1, 1), opcheck_shape(4, 2, 3, 4, 5),
            0x1);
}

static void test_last_axis(void) {
  check_all("[2,3,4,5] + const [1,1,5]", opcheck_shape(4, 2, 3, 4, 5), opcheck_shape(3, 1, 1, 5),
            0x2);
  check_all("[2,3,4,5] + const [5]", opcheck_shape(4, 2, 3, 4, 5), opcheck_shape(1, 5), 0x2);
}

static void test_scalar(void) {
  check_all("[2,3,4,5] + const scalar", opcheck_shape(4, 2, 3, 4, 5), opcheck_shape(0), 0x2);
  check_all("const scalar + [2,3,4,5]", opcheck_shape(0), opcheck_shape(4, 2, 3, 4, 5), 0x1);
  check_all("[2,3,4,5] + const [1]", opcheck_shape(4, 2, 3, 4, 5), opcheck_shape(1, 1), 0x2);
}

static void test_two_sided(void) {
  check_all("[2,1,4,1] + const [1,3,1,5]", opcheck_shape(4, 2, 1, 4, 1),
            opcheck_shape(4, 1, 3, 1, 5), 0x2);
  check_all("batched [2,1,4,1] + batched [2,3,1,5]", opcheck_shape(4, 2, 1, 4, 1),
            opcheck_shape(4, 2, 3, 1, 5), 0x0);
  check_all("batched [2,3,1,5] + batched [2,1,4,1]", opcheck_shape(4, 2, 3, 1, 5),
            opcheck_shape(4, 2, 1, 4, 1), 0x0);
}

static void test_batched_broadcast(void) {
  /* Both batched, one broadcast over the spatial axes (squeeze-excitation style). */
  check_all("batched [2,3,4,5] * batched [2,3,1,1]", opcheck_shape(4, 2, 3, 4, 5),
            opcheck_shape(4, 2, 3, 1, 1), 0x0);
  check_all("batched [2,3,1,1] * batched [2,3,4,5]", opcheck_shape(4, 2, 3, 1, 1),
            opcheck_shape(4, 2, 3, 4, 5), 0x0);
}

static void test_awkward_ranks(void) {
  check_all("rank 6 [3,1,2,1,3,1] + const [4,1,1,3,2]", opcheck_shape(6, 3, 1, 2, 1, 3, 1),
            opcheck_shape(5, 4, 1, 1, 3, 2), 0x2);
  check_all("rank 2 [1,7] + const [7]", opcheck_shape(2, 1, 7), opcheck_shape(1, 7), 0x2);
  check_all("rank 1 [3] + const [1]", opcheck_shape(1, 3), opcheck_shape(1, 1), 0x2);
  check_all("[2,1,1,1] + const [1,1,1]", opcheck_shape(4, 2, 1, 1, 1), opcheck_shape(3, 1, 1, 1),
            0x2);
  check_all("rank 8", opcheck_shape(8, 2, 1, 2, 1, 2, 1, 2, 3),
            opcheck_shape(7, 2, 1, 2, 1, 2, 1, 1), 0x2);
}

static void test_legacy_broadcast(void) {
  /* Opset 6: B [3] aligned at axis 1 of [2,3,4,5] (viewed as [3,1,1]). */
  for (int k = 0; k < 4; k++) {
    bin_ref r = {k, opcheck_shape(3, 3, 1, 1)};
    camd_attr attrs[2] = {opcheck_attr_int("broadcast", 1), opcheck_attr_int("axis", 1)};
    opcheck_spec s = {0};
    s.op_type = kind_name[k];
    s.opset = 6;
    s.n_in = 2;
    s.in_shapes[0] = opcheck_shape(4, 2, 3, 4, 5);
    s.in_shapes[1] = opcheck_shape(1, 3);
    s.in_const = 0x2;
    s.n_out = 1;
    s.attrs = attrs;
    s.n_attrs = 2;
    s.ref = ref_binary;
    s.ref_ctx = &r;
    s.grad_check = 0x1;
    s.seed = 77;
    s.label = "legacy axis=1";
    float *den = NULL;
    if (k == K_DIV) {
      den = denominators(&s.in_shapes[1]);
      s.float_values[1] = den;
    }
    CHECK_EQ_INT(opcheck_run(&s), 0);
    free(den);
  }
  /* Opset 6, suffix alignment (no axis): B [4,5]. */
  bin_ref r = {K_ADD, {0}};
  camd_attr attrs[1] = {opcheck_attr_int("broadcast", 1)};
  opcheck_spec s = {0};
  s.op_type = "Add";
  s.opset = 6;
  s.n_in = 2;
  s.in_shapes[0] = opcheck_shape(4, 2, 3, 4, 5);
  s.in_shapes[1] = opcheck_shape(2, 4, 5);
  s.in_const = 0x2;
  s.n_out = 1;
  s.attrs = attrs;
  s.n_attrs = 1;
  s.ref = ref_binary;
  s.ref_ctx = &r;
  s.grad_check = 0x1;
  s.label = "legacy suffix";
  CHECK_EQ_INT(opcheck_run(&s), 0);
}

/* Shapes that cannot broadcast fail at load with a message naming the node. */
static void test_bad_shapes(void) {
  camd_graph *g = camd_graph_new();
  camd_error err = {0};
  camd_shape sa = opcheck_shape(4, 1, 3, 4, 5);
  int a = camd_graph_add_input(g, "a", &sa, &err);
  camd_shape sb = opcheck_shape(1, 4);
  float *bd = calloc(4, sizeof(float));
  int b = camd_graph_add_constant(g, "b", CAMD_FLOAT32, &sb, bd, &err);
  CHECK(a >= 0 && b >= 0);
  int ins[2] = {a, b}, out = -1;
  const char *names[1] = {"y"};
  int rc = camd_graph_add_node(g, "Add", "bad_add", 14, 2, ins, 1, names, NULL, 0, &out, &err);
  CHECK_EQ_INT(rc, CAMD_E_SHAPE);
  CHECK_MSG(strstr(err.message, "bad_add") != NULL, "%s", err.message);
  camd_graph_free(g);
}

CAMD_TEST_MAIN(CAMD_TEST(test_same_shape_const), CAMD_TEST(test_both_batched_same),
               CAMD_TEST(test_per_channel), CAMD_TEST(test_per_channel_first),
               CAMD_TEST(test_last_axis), CAMD_TEST(test_scalar), CAMD_TEST(test_two_sided),
               CAMD_TEST(test_batched_broadcast), CAMD_TEST(test_awkward_ranks),
               CAMD_TEST(test_legacy_broadcast), CAMD_TEST(test_bad_shapes))
