/* Gather on an activation with constant indices (a transformer's class token x[:, 0], index
 * lists with repeats and negative entries): forward against a double reference, backward
 * against finite differences (repeated indices accumulate), and the load-time errors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "camd/graph.h"
#include "opcheck.h"
#include "testlib.h"

typedef struct gather_ref {
  int axis;
  const int64_t *idx;
  int64_t count;
} gather_ref;

static void ref_gather(void *vctx, const double *const *in, const camd_shape *is,
                       double *const *out, const camd_shape *os) {
  const gather_ref *r = vctx;
  (void)os;
  int64_t outer = 1, inner = 1, dim = is[0].dims[r->axis];
  for (int d = 0; d < r->axis; d++) outer *= is[0].dims[d];
  for (int d = r->axis + 1; d < is[0].ndim; d++) inner *= is[0].dims[d];
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t j = 0; j < r->count; j++) {
      int64_t v = r->idx[j] < 0 ? r->idx[j] + dim : r->idx[j];
      for (int64_t k = 0; k < inner; k++) {
        out[0][(o * r->count + j) * inner + k] = in[0][(o * dim + v) * inner + k];
      }
    }
  }
}

static int run_gather(const char *label, camd_shape x, int axis, const int64_t *idx,
                      camd_shape ishape) {
  gather_ref r = {axis < 0 ? axis + x.ndim : axis, idx, (int64_t)camd_shape_count(&ishape)};
  opcheck_spec s;
  memset(&s, 0, sizeof(s));
  s.op_type = "Gather";
  s.opset = 13;
  s.n_in = 2;
  s.in_shapes[0] = x;
  s.in_shapes[1] = ishape;
  s.int_inputs[1] = idx;
  s.n_out = 1;
  camd_attr a = opcheck_attr_int("axis", axis);
  s.attrs = &a;
  s.n_attrs = 1;
  s.ref = ref_gather;
  s.ref_ctx = &r;
  s.grad_check = 1u;
  s.seed = 21u + (uint64_t)strlen(label);
  s.label = label;
  return opcheck_run(&s);
}

static void test_gather(void) {
  static const int64_t zero[1] = {0}, list[4] = {2, 0, -1, 2}, pair[2] = {1, 3};
  /* ViT's class token: [N, T, C] -> [N, C] (scalar index). */
  CHECK_EQ_INT(run_gather("class token", opcheck_shape(3, 2, 5, 6), 1, zero, opcheck_shape(0)), 0);
  /* Repeated and negative indices on the last axis. */
  CHECK_EQ_INT(run_gather("list", opcheck_shape(3, 2, 3, 4), -1, list, opcheck_shape(1, 4)), 0);
  /* 2-D indices in the middle of a 4-D tensor. */
  CHECK_EQ_INT(
      run_gather("2-D indices", opcheck_shape(4, 2, 4, 3, 2), 1, list, opcheck_shape(2, 2, 2)), 0);
  CHECK_EQ_INT(run_gather("pair", opcheck_shape(3, 1, 4, 5), 1, pair, opcheck_shape(1, 2)), 0);
}

static void test_gather_errors(void) {
  camd_error err;
  camd_graph *g = camd_graph_new();
  camd_shape xs = opcheck_shape(3, 1, 4, 6), is = opcheck_shape(1, 1);
  int ins[2];
  ins[0] = camd_graph_add_input(g, "x", &xs, &err);
  int64_t *bad = malloc(sizeof(int64_t));
  *bad = 4;
  ins[1] = camd_graph_add_constant(g, "i", CAMD_INT64, &is, bad, &err);
  camd_attr a1 = opcheck_attr_int("axis", 1), a0 = opcheck_attr_int("axis", 0);
  int out;
  /* Index out of range. */
  int rc = camd_graph_add_node(g, "Gather", "g1", 13, 2, ins, 1, (const char *const[]){"y1"}, &a1,
                               1, &out, &err);
  CHECK_EQ_INT(rc, CAMD_E_INVALID);
  CHECK_MSG(strstr(err.message, "out of range") != NULL, "%s", err.message);
  /* Along axis 0 (here the batch axis, size 1 at load): index 4 is out of range too. */
  rc = camd_graph_add_node(g, "Gather", "g2", 13, 2, ins, 1, (const char *const[]){"y2"}, &a0, 1,
                           &out, &err);
  CHECK_EQ_INT(rc, CAMD_E_INVALID);
  /* Computed indices. */
  ins[1] = camd_graph_add_input(g, "computed", &xs, &err);
  rc = camd_graph_add_node(g, "Gather", "g3", 13, 2, ins, 1, (const char *const[]){"y3"}, &a1, 1,
                           &out, &err);
  CHECK(rc != 0);
  camd_graph_free(g);
}

CAMD_TEST_MAIN(CAMD_TEST(test_gather), CAMD_TEST(test_gather_errors))
