/* Tests of the run-time Expand, Tile and Where ops: engine forward vs double references written
 * from the ONNX spec (index arithmetic per output element, not the engine's strided walk), input
 * gradients vs finite differences of those references, broadcasting in both directions, batch > 1,
 * constant and batched operands, and the load errors for non-constant shape / repeats. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "camd/engine.h"
#include "camd/graph.h"
#include "opcheck.h"
#include "testlib.h"

/* ---- reference helpers ---- */

/* numpy broadcast of a and b (independent of the engine's camd__broadcast_shape). */
static camd_shape ref_bcast(const camd_shape *a, const camd_shape *b) {
  camd_shape o = {0};
  o.ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int d = 0; d < o.ndim; d++) {
    int da = d - (o.ndim - a->ndim), db = d - (o.ndim - b->ndim);
    int64_t x = da >= 0 ? a->dims[da] : 1, y = db >= 0 ? b->dims[db] : 1;
    o.dims[d] = x == 1 ? y : x;
  }
  return o;
}

static void check_shape_is(const camd_shape *got, const camd_shape *want) {
  char a[128], b[128];
  camd_shape_format(got, a, sizeof a);
  camd_shape_format(want, b, sizeof b);
  CHECK_MSG(camd_shape_equal(got, want), "output shape %s, expected %s", a, b);
}

typedef struct ref_ctx {
  camd_shape target;           /* Expand: the shape input */
  int64_t reps[CAMD_MAX_DIMS]; /* Tile */
  const int64_t *cond;         /* Where */
  camd_shape cond_shape;
} ref_ctx;

static void ref_expand(void *vctx, const double *const *in, const camd_shape *in_shapes,
                       double *const *out, const camd_shape *out_shapes) {
  const ref_ctx *r = vctx;
  const camd_shape want = ref_bcast(&in_shapes[0], &r->target), *so = &out_shapes[0];
  check_shape_is(so, &want);
  int64_t idx[CAMD_MAX_DIMS];
  for (size_t i = 0; i < camd_shape_count(so); i++) {
    opcheck_unravel(i, so, idx);
    out[0][i] = in[0][opcheck_bidx(&in_shapes[0], so->ndim, idx)];
  }
}

static void ref_tile(void *vctx, const double *const *in, const camd_shape *in_shapes,
                     double *const *out, const camd_shape *out_shapes) {
  const ref_ctx *r = vctx;
  const camd_shape *si = &in_shapes[0], *so = &out_shapes[0];
  camd_shape want = *si;
  for (int d = 0; d < si->ndim; d++) want.dims[d] = si->dims[d] * r->reps[d];
  check_shape_is(so, &want);
  int64_t idx[CAMD_MAX_DIMS];
  for (size_t i = 0; i < camd_shape_count(so); i++) {
    opcheck_unravel(i, so, idx);
    size_t off = 0; /* input element: output index modulo the input's length on each axis */
    for (int d = 0; d < si->ndim; d++)
      off = off * (size_t)si->dims[d] + (size_t)(idx[d] % si->dims[d]);
    out[0][i] = in[0][off];
  }
}

static void ref_where(void *vctx, const double *const *in, const camd_shape *in_shapes,
                      double *const *out, const camd_shape *out_shapes) {
  const ref_ctx *r = vctx;
  const camd_shape t = ref_bcast(&r->cond_shape, &in_shapes[1]);
  const camd_shape want = ref_bcast(&t, &in_shapes[2]), *so = &out_shapes[0];
  check_shape_is(so, &want);
  int64_t idx[CAMD_MAX_DIMS];
  for (size_t i = 0; i < camd_shape_count(so); i++) {
    opcheck_unravel(i, so, idx);
    bool c = r->cond[opcheck_bidx(&r->cond_shape, so->ndim, idx)] != 0;
    out[0][i] = c ? in[1][opcheck_bidx(&in_shapes[1], so->ndim, idx)]
                  : in[2][opcheck_bidx(&in_shapes[2], so->ndim, idx)];
  }
}

/* ---- Expand ---- */

static void check_expand(const char *label, camd_shape in, camd_shape target) {
  ref_ctx r = {.target = target};
  int64_t shape_vals[CAMD_MAX_DIMS];
  memcpy(shape_vals, target.dims, sizeof(int64_t) * (size_t)target.ndim);
  opcheck_spec s = {0};
  s.op_type = "Expand";
  s.opset = 13;
  s.n_in = 2;
  s.in_shapes[0] = in;
  s.in_shapes[1] = opcheck_shape(1, (int64_t)target.ndim);
  s.int_inputs[1] = shape_vals;
  s.n_out = 1;
  s.ref = ref_expand;
  s.ref_ctx = &r;
  s.grad_check = 0x1;
  s.seed = 31;
  s.label = label;
  CHECK_MSG(opcheck_run(&s) == 0, "Expand %s", label);
}

static void test_expand(void) {
  check_expand("[2,1,4] to [1,3,4]", opcheck_shape(3, 2, 1, 4), opcheck_shape(3, 1, 3, 4));
  check_expand("[2,3,1,1] to [3,4,5] (lower rank)", opcheck_shape(4, 2, 3, 1, 1),
               opcheck_shape(3, 3, 4, 5));
  check_expand("[3,1,5] to [4,1] (bidirectional)", opcheck_shape(3, 3, 1, 5),
               opcheck_shape(2, 4, 1));
  check_expand("[2,4,1] to [1,1,5] (last axis)", opcheck_shape(3, 2, 4, 1),
               opcheck_shape(3, 1, 1, 5));
  check_expand("[2,3] to [1] (no-op)", opcheck_shape(2, 2, 3), opcheck_shape(1, 1));
  check_expand("[2,1,3,1,2] to [2,1,4,3] (interleaved)", opcheck_shape(5, 2, 1, 3, 1, 2),
               opcheck_shape(4, 2, 1, 4, 1));
}

/* ---- Tile ---- */

static void check_tile(const char *label, camd_shape in, const int64_t *reps) {
  ref_ctx r = {0};
  memcpy(r.reps, reps, sizeof(int64_t) * (size_t)in.ndim);
  opcheck_spec s = {0};
  s.op_type = "Tile";
  s.opset = 13;
  s.n_in = 2;
  s.in_shapes[0] = in;
  s.in_shapes[1] = opcheck_shape(1, (int64_t)in.ndim);
  s.int_inputs[1] = reps;
  s.n_out = 1;
  s.ref = ref_tile;
  s.ref_ctx = &r;
  s.grad_check = 0x1;
  s.seed = 47;
  s.label = label;
  CHECK_MSG(opcheck_run(&s) == 0, "Tile %s", label);
}

static void test_tile(void) {
  check_tile("[2,3,4] x [1,2,3]", opcheck_shape(3, 2, 3, 4), (const int64_t[]){1, 2, 3});
  check_tile("[2,1,3,2] x [1,3,1,2]", opcheck_shape(4, 2, 1, 3, 2), (const int64_t[]){1, 3, 1, 2});
  check_tile("[3,5] x [1,1] (copy)", opcheck_shape(2, 3, 5), (const int64_t[]){1, 1});
  /* 2 x rank > CAMD_MAX_DIMS split axes: every axis but the batch repeated */
  check_tile("[2,2,1,2,3,2] x [1,2,3,2,2,2]", opcheck_shape(6, 2, 2, 1, 2, 3, 2),
             (const int64_t[]){1, 2, 3, 2, 2, 2});
}

/* ---- Where ---- */

static void check_where(const char *label, camd_shape cond_shape, camd_shape x, camd_shape y,
                        unsigned const_mask, uint64_t seed) {
  size_t n = camd_shape_count(&cond_shape);
  int64_t *cond = malloc(sizeof(int64_t) * n);
  uint64_t st = seed * 0x9E3779B97F4A7C15ull + 1;
  size_t ones = 0;
  for (size_t k = 0; k < n; k++) {
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    cond[k] = (int64_t)(st >> 63);
    ones += (size_t)cond[k];
  }
  if (n > 1 && (ones == 0 || ones == n)) cond[0] = !cond[0]; /* both branches are taken */
  ref_ctx r = {.cond = cond, .cond_shape = cond_shape};
  opcheck_spec s = {0};
  s.op_type = "Where";
  s.opset = 16;
  s.n_in = 3;
  s.in_shapes[0] = cond_shape;
  s.in_shapes[1] = x;
  s.in_shapes[2] = y;
  s.int_inputs[0] = cond;
  s.in_const = const_mask;
  s.n_out = 1;
  s.ref = ref_where;
  s.ref_ctx = &r;
  s.grad_check = ~const_mask & 0x6u;
  s.seed = seed;
  s.label = label;
  CHECK_MSG(opcheck_run(&s) == 0, "Where %s", label);
  free(cond);
}

static void test_where(void) {
  check_where("cond [3,4], X [2,3,4], Y [2,3,4]", opcheck_shape(2, 3, 4), opcheck_shape(3, 2, 3, 4),
              opcheck_shape(3, 2, 3, 4), 0x0, 5);
  check_where("cond [1,4], X [2,3,1], Y const [3,4]", opcheck_shape(2, 1, 4),
              opcheck_shape(3, 2, 3, 1), opcheck_shape(2, 3, 4), 0x4, 6);
  check_where("cond [3,1], X const scalar, Y [2,3,4]", opcheck_shape(2, 3, 1), opcheck_shape(0),
              opcheck_shape(3, 2, 3, 4), 0x2, 7);
  check_where("cond [1,1,5], X [2,1,4,1], Y [2,3,1,5] (all broadcast)", opcheck_shape(3, 1, 1, 5),
              opcheck_shape(4, 2, 1, 4, 1), opcheck_shape(4, 2, 3, 1, 5), 0x0, 8);
  check_where("cond scalar, X [2,3], Y [2,3]", opcheck_shape(0), opcheck_shape(2, 2, 3),
              opcheck_shape(2, 2, 3), 0x0, 9);
}

/* ---- load errors ---- */

static void test_load_errors(void) {
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape xs = opcheck_shape(2, 1, 4);
  int x = camd_graph_add_input(g, "x", &xs, &err);
  CHECK(x >= 0);
  /* the shape / repeats / condition are activations: not supported, with a message */
  int ins[3] = {x, x, x};
  const char *outs[1] = {"y"};
  CHECK_EQ_INT(camd_graph_add_node(g, "Expand", "e", 13, 2, ins, 1, outs, NULL, 0, NULL, &err),
               CAMD_E_UNSUPPORTED);
  CHECK_MSG(strstr(err.message, "'shape' must be a constant int64 tensor"), "%s", err.message);
  CHECK_EQ_INT(camd_graph_add_node(g, "Tile", "t", 13, 2, ins, 1, outs, NULL, 0, NULL, &err),
               CAMD_E_UNSUPPORTED);
  CHECK_MSG(strstr(err.message, "'repeats' must be a constant int64 tensor"), "%s", err.message);
  CHECK_EQ_INT(camd_graph_add_node(g, "Where", "w", 16, 3, ins, 1, outs, NULL, 0, NULL, &err),
               CAMD_E_UNSUPPORTED);
  CHECK_MSG(strstr(err.message, "'condition' must be a constant"), "%s", err.message);
  /* a float condition is not a bool */
  float *fc = malloc(sizeof(float) * 4);
  for (int k = 0; k < 4; k++) fc[k] = 1.f;
  camd_shape fs = opcheck_shape(1, 4);
  int f = camd_graph_add_constant(g, "fcond", CAMD_FLOAT32, &fs, fc, &err);
  CHECK(f >= 0);
  int ins_f[3] = {f, x, x};
  const char *outs_f[1] = {"yf"};
  CHECK_EQ_INT(camd_graph_add_node(g, "Where", "wf", 16, 3, ins_f, 1, outs_f, NULL, 0, NULL, &err),
               CAMD_E_INVALID);
  CHECK_MSG(strstr(err.message, "'condition' must be bool"), "%s", err.message);
  /* a shape that does not broadcast */
  int64_t *bad = malloc(sizeof(int64_t) * 2);
  bad[0] = 3;
  bad[1] = 5;
  camd_shape bs = opcheck_shape(1, 2);
  int b = camd_graph_add_constant(g, "bad", CAMD_INT64, &bs, bad, &err);
  CHECK(b >= 0);
  int ins2[2] = {x, b};
  CHECK_EQ_INT(camd_graph_add_node(g, "Expand", "e2", 13, 2, ins2, 1, outs, NULL, 0, NULL, &err),
               CAMD_E_SHAPE);
  CHECK_MSG(strstr(err.message, "cannot broadcast input [1, 4] to shape [3, 5]"), "%s",
            err.message);
  /* an output of 2^82 elements: the graph's shape guard refuses it */
  int64_t *huge = malloc(sizeof(int64_t) * 3);
  huge[0] = INT64_C(1) << 40;
  huge[1] = INT64_C(1) << 40;
  huge[2] = 1;
  camd_shape hs = opcheck_shape(1, 3);
  int h = camd_graph_add_constant(g, "huge", CAMD_INT64, &hs, huge, &err);
  CHECK(h >= 0);
  int ins3[2] = {x, h};
  const char *outs3[1] = {"y3"}, *outs4[1] = {"y4"};
  CHECK_EQ_INT(camd_graph_add_node(g, "Expand", "e3", 13, 2, ins3, 1, outs3, NULL, 0, NULL, &err),
               CAMD_E_LIMIT);
  CHECK_EQ_INT(camd_graph_add_node(g, "Tile", "t3", 13, 2, ins3, 1, outs4, NULL, 0, NULL, &err),
               CAMD_E_SHAPE); /* rank 3 repeats for a rank-2 input */
  camd_graph_free(g);
}

CAMD_TEST_MAIN(CAMD_TEST(test_expand), CAMD_TEST(test_tile), CAMD_TEST(test_where),
               CAMD_TEST(test_load_errors))
