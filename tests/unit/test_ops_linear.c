/* Linear op tests: Gemm (transA/transB/alpha/beta, broadcast C, non-constant B) and MatMul
 * (numpy broadcasting, 1-D operands, batched/constant operand mixes) against double loops,
 * forward and backward. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "camd/engine.h"
#include "camd/graph.h"
#include "opcheck.h"
#include "testlib.h"

/* ---------------------------------- Gemm ---------------------------------- */

typedef struct gemm_case {
  bool ta, tb, has_c;
  double alpha, beta;
} gemm_case;

static void gemm_ref(void *vctx, const double *const *in, const camd_shape *is, double *const *out,
                     const camd_shape *os) {
  const gemm_case *c = vctx;
  const int64_t M = c->ta ? is[0].dims[1] : is[0].dims[0];
  const int64_t K = c->ta ? is[0].dims[0] : is[0].dims[1];
  const int64_t N = c->tb ? is[1].dims[0] : is[1].dims[1];
  if (os[0].dims[0] != M || os[0].dims[1] != N) {
    for (size_t i = 0; i < camd_shape_count(&os[0]); i++) out[0][i] = NAN;
    return;
  }
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = 0.0;
      for (int64_t k = 0; k < K; k++) {
        const double a = c->ta ? in[0][k * M + i] : in[0][i * K + k];
        const double b = c->tb ? in[1][j * K + k] : in[1][k * N + j];
        s += a * b;
      }
      double cv = 0.0;
      if (c->has_c) {
        const camd_shape *cs = &is[2];
        const int64_t cn = cs->ndim >= 1 ? cs->dims[cs->ndim - 1] : 1;
        const int64_t cm = cs->ndim == 2 ? cs->dims[0] : 1;
        cv = in[2][(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)];
      }
      out[0][i * N + j] = c->alpha * s + c->beta * cv;
    }
}

static int run_gemm(const char *label, const gemm_case *c, camd_shape a, camd_shape b,
                    const camd_shape *cshape, unsigned in_const, int opset) {
  opcheck_spec s;
  memset(&s, 0, sizeof(s));
  s.op_type = "Gemm";
  s.opset = opset;
  s.n_in = c->has_c ? 3 : 2;
  s.in_shapes[0] = a;
  s.in_shapes[1] = b;
  if (c->has_c) s.in_shapes[2] = *cshape;
  s.in_const = in_const;
  s.n_out = 1;
  camd_attr attrs[4];
  attrs[0] = opcheck_attr_int("transA", c->ta);
  attrs[1] = opcheck_attr_int("transB", c->tb);
  attrs[2] = opcheck_attr_float("alpha", (float)c->alpha);
  attrs[3] = opcheck_attr_float("beta", (float)c->beta);
  s.attrs = attrs;
  s.n_attrs = 4;
  s.ref = gemm_ref;
  s.ref_ctx = (void *)c;
  s.grad_check = ~in_const & ((1u << s.n_in) - 1u);
  s.seed = 31u + (uint64_t)strlen(label);
  s.label = label;
  return opcheck_run(&s);
}

static void test_gemm(void) {
  gemm_case fc = {.tb = true, .has_c = true, .alpha = 1.0, .beta = 1.0};
  camd_shape c4 = opcheck_shape(1, 4);
  CHECK_EQ_INT(
      run_gemm("fc transB bias", &fc, opcheck_shape(2, 3, 5), opcheck_shape(2, 4, 5), &c4, 6u, 13),
      0);
  gemm_case ab = {.has_c = true, .alpha = 0.5, .beta = 2.0};
  camd_shape c14 = opcheck_shape(2, 1, 4);
  CHECK_EQ_INT(run_gemm("alpha beta C [1,N]", &ab, opcheck_shape(2, 3, 5), opcheck_shape(2, 5, 4),
                        &c14, 6u, 13),
               0);
  camd_shape c11 = opcheck_shape(2, 1, 1);
  CHECK_EQ_INT(
      run_gemm("C [1,1]", &ab, opcheck_shape(2, 2, 3), opcheck_shape(2, 3, 6), &c11, 6u, 11), 0);
  camd_shape c1 = opcheck_shape(1, 1);
  gemm_case nb = {.tb = true, .has_c = true, .alpha = -1.5, .beta = 0.0};
  CHECK_EQ_INT(
      run_gemm("beta 0 C [1]", &nb, opcheck_shape(2, 3, 4), opcheck_shape(2, 2, 4), &c1, 6u, 9), 0);
  gemm_case noc = {.alpha = 2.0, .beta = 1.0};
  CHECK_EQ_INT(run_gemm("no C", &noc, opcheck_shape(2, 4, 3), opcheck_shape(2, 3, 2), NULL, 2u, 13),
               0);
  /* C batched alongside A: C [batch, N]. */
  gemm_case cb = {.tb = true, .has_c = true, .alpha = 1.0, .beta = 0.75};
  camd_shape cbs = opcheck_shape(2, 3, 4);
  CHECK_EQ_INT(
      run_gemm("batched C", &cb, opcheck_shape(2, 3, 5), opcheck_shape(2, 4, 5), &cbs, 2u, 13), 0);
  /* A classifier's shape class: W [N, K] with N over several 256-column chunks and K not a
   * multiple of the row kernel's 16 lanes (op_linear.c row_dot_*), at batch 1 and batched. */
  gemm_case cls = {.tb = true, .has_c = true, .alpha = 0.75, .beta = 1.25};
  camd_shape cn = opcheck_shape(1, 600);
  CHECK_EQ_INT(run_gemm("classifier rows", &cls, opcheck_shape(2, 3, 101),
                        opcheck_shape(2, 600, 101), &cn, 6u, 13),
               0);
  camd_shape cn1 = opcheck_shape(1, 300);
  CHECK_EQ_INT(run_gemm("classifier rows, batch 1", &cls, opcheck_shape(2, 1, 1283),
                        opcheck_shape(2, 300, 1283), &cn1, 6u, 13),
               0);
  /* Non-constant B (batch 1: the product mixes the batch axis). */
  gemm_case bt = {.tb = true, .has_c = false, .alpha = 1.0, .beta = 1.0};
  CHECK_EQ_INT(run_gemm("batched A and B, transB", &bt, opcheck_shape(2, 1, 5),
                        opcheck_shape(2, 1, 5), NULL, 0u, 13),
               0);
}

/* transA: A must be a constant, so the whole node folds at load; check the folded value. */
static void test_gemm_trans_a(void) {
  camd_error err;
  camd_graph *g = camd_graph_new();
  float *a = malloc(6 * sizeof(float)), *b = malloc(12 * sizeof(float));
  for (int i = 0; i < 6; i++) a[i] = (float)(i + 1);      /* A [3, 2] -> op(A) [2, 3] */
  for (int i = 0; i < 12; i++) b[i] = (float)(i % 5) - 2; /* B [4, 3] -> op(B) [3, 4] */
  camd_shape as = opcheck_shape(2, 3, 2), bs = opcheck_shape(2, 4, 3);
  int ia = camd_graph_add_constant(g, "a", CAMD_FLOAT32, &as, a, &err);
  int ib = camd_graph_add_constant(g, "b", CAMD_FLOAT32, &bs, b, &err);
  CHECK(ia >= 0 && ib >= 0);
  camd_attr attrs[3] = {opcheck_attr_int("transA", 1), opcheck_attr_int("transB", 1),
                        opcheck_attr_float("alpha", 2.0f)};
  int ins[2] = {ia, ib}, out = -1;
  int rc = camd_graph_add_node(g, "Gemm", "g", 13, 2, ins, 1, (const char *const[]){"y"}, attrs, 3,
                               &out, &err);
  CHECK_EQ_INT(rc, 0);
  camd_shape ys;
  camd_dtype yt;
  const void *yd = NULL;
  bool batched = true;
  CHECK_EQ_INT(camd_graph_value(g, out, &ys, &yt, &yd, &batched), 0);
  CHECK(ys.ndim == 2 && ys.dims[0] == 2 && ys.dims[1] == 4);
  CHECK(yd != NULL);
  if (yd) {
    const float *y = yd;
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 4; j++) {
        double s = 0;
        for (int k = 0; k < 3; k++) s += (double)a[k * 2 + i] * b[j * 3 + k];
        CHECK_NEAR(y[i * 4 + j], 2.0 * s, 1e-5);
      }
  }
  /* transA with a batched A is rejected. */
  camd_shape xs = opcheck_shape(2, 1, 3);
  int x = camd_graph_add_input(g, "x", &xs, &err);
  ins[0] = x;
  rc = camd_graph_add_node(g, "Gemm", "g2", 13, 2, ins, 1, (const char *const[]){"y2"}, attrs, 1,
                           &out, &err);
  CHECK(rc == CAMD_E_UNSUPPORTED);
  camd_graph_free(g);
}

/* --------------------------------- MatMul --------------------------------- */

static void matmul_ref(void *vctx, const double *const *in, const camd_shape *is,
                       double *const *out, const camd_shape *os) {
  (void)vctx;
  camd_shape a = is[0], b = is[1];
  const bool av = a.ndim == 1, bv = b.ndim == 1;
  if (av) a = opcheck_shape(2, 1, is[0].dims[0]);
  if (bv) b = opcheck_shape(2, is[1].dims[0], 1);
  const int64_t M = a.dims[a.ndim - 2], K = a.dims[a.ndim - 1], N = b.dims[b.ndim - 1];
  const int nb = (a.ndim > b.ndim ? a.ndim : b.ndim) - 2;
  int64_t ob[8], ad[8], bd[8], total = 1;
  for (int d = 0; d < nb; d++) {
    const int ia = d - (nb - (a.ndim - 2)), ib = d - (nb - (b.ndim - 2));
    ad[d] = ia >= 0 ? a.dims[ia] : 1;
    bd[d] = ib >= 0 ? b.dims[ib] : 1;
    ob[d] = ad[d] > bd[d] ? ad[d] : bd[d];
    total *= ob[d];
  }
  if ((int64_t)camd_shape_count(&os[0]) != total * M * N) {
    for (size_t i = 0; i < camd_shape_count(&os[0]); i++) out[0][i] = NAN;
    return;
  }
  for (int64_t t = 0; t < total; t++) {
    int64_t rem = t, ai = 0, bi = 0, am = 1, bm = 1;
    for (int d = nb - 1; d >= 0; d--) {
      const int64_t idx = rem % ob[d];
      rem /= ob[d];
      ai += (ad[d] == 1 ? 0 : idx) * am;
      bi += (bd[d] == 1 ? 0 : idx) * bm;
      am *= ad[d];
      bm *= bd[d];
    }
    const double *A = in[0] + ai * M * K, *B = in[1] + bi * K * N;
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double s = 0;
        for (int64_t k = 0; k < K; k++) s += A[i * K + k] * B[k * N + j];
        out[0][(t * M + i) * N + j] = s;
      }
  }
}

static int run_matmul(const char *label, camd_shape a, camd_shape b, unsigned in_const) {
  opcheck_spec s;
  memset(&s, 0, sizeof(s));
  s.op_type = "MatMul";
  s.opset = 13;
  s.n_in = 2;
  s.in_shapes[0] = a;
  s.in_shapes[1] = b;
  s.in_const = in_const;
  s.n_out = 1;
  s.ref = matmul_ref;
  s.grad_check = ~in_const & 3u;
  s.seed = 77u + (uint64_t)strlen(label);
  s.label = label;
  return opcheck_run(&s);
}

static void test_matmul(void) {
  CHECK_EQ_INT(run_matmul("[b,K] x [K,N]", opcheck_shape(2, 3, 5), opcheck_shape(2, 5, 4), 2u), 0);
  CHECK_EQ_INT(
      run_matmul("[b,S,K] x [K,N] folded", opcheck_shape(3, 2, 3, 5), opcheck_shape(2, 5, 4), 2u),
      0);
  CHECK_EQ_INT(run_matmul("[b,K] x [K] (1-D B)", opcheck_shape(2, 3, 5), opcheck_shape(1, 5), 2u),
               0);
  CHECK_EQ_INT(run_matmul("[b,3,4,5] x [3,5,2] broadcast", opcheck_shape(4, 2, 3, 4, 5),
                          opcheck_shape(3, 3, 5, 2), 2u),
               0);
  CHECK_EQ_INT(run_matmul("[b,1,4,5] x [3,5,2] A broadcast", opcheck_shape(4, 2, 1, 4, 5),
                          opcheck_shape(3, 3, 5, 2), 2u),
               0);
  CHECK_EQ_INT(run_matmul("[b,3,4,5] x [1,5,2]", opcheck_shape(4, 2, 3, 4, 5),
                          opcheck_shape(3, 1, 5, 2), 2u),
               0);
  CHECK_EQ_INT(run_matmul("[b,4,5] x [b,5,3] both batched", opcheck_shape(3, 2, 4, 5),
                          opcheck_shape(3, 2, 5, 3), 0u),
               0);
  CHECK_EQ_INT(
      run_matmul("[4,5] const x [b,5,3]", opcheck_shape(2, 4, 5), opcheck_shape(3, 2, 5, 3), 1u),
      0);
  CHECK_EQ_INT(
      run_matmul("[5] const x [b,5,3] (1-D A)", opcheck_shape(1, 5), opcheck_shape(3, 2, 5, 3), 1u),
      0);
  CHECK_EQ_INT(run_matmul("[b,2,1,4] x [b,1,4,3] both broadcast", opcheck_shape(4, 2, 2, 1, 4),
                          opcheck_shape(4, 2, 1, 4, 3), 0u),
               0);
}

/* A classifier's backward from sparse seeds (camd reads only the seeded rows of B): a one-hot
 * seed gives alpha * seed * B[j, :] exactly, three seeds of 64 (sparse) and a dense seed agree
 * with a double-precision reference; batch items alone and batched get the same bits. */
static void test_gemm_sparse_seed(void) {
  enum { K = 40, N = 64, NB = 3 };
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape xs = {2, {1, K}}, ws = {2, {N, K}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  float *w = malloc(sizeof(float) * N * K), *wc = malloc(sizeof(float) * N * K);
  camd_rng r;
  camd_rng_seed(&r, 77);
  for (int i = 0; i < N * K; i++) w[i] = wc[i] = (float)(camd_rng_uniform(&r) * 2 - 1);
  int wid = camd_graph_add_constant(g, "w", CAMD_FLOAT32, &ws, wc, &err);
  camd_attr at[2] = {opcheck_attr_int("transB", 1), opcheck_attr_float("alpha", 1.5f)};
  int y = -1;
  CHECK(!camd_graph_add_node(g, "Gemm", "fc", 13, 2, (const int[]){x, wid}, 1,
                             (const char *const[]){"y"}, at, 2, &y, &err));
  CHECK(!camd_graph_mark_output(g, y, &err));
  camd_model *m = NULL;
  CHECK_MSG(!camd_graph_finalize(g, NULL, &m, &err), "%s", err.message);
  camd_session *s = NULL;
  if (!m || camd_session_create(m, NB, &s, &err)) {
    CHECK_MSG(0, "%s", err.message);
    free(w);
    camd_model_release(m);
    return;
  }
  float in[NB * K], seed[NB * N], gx[NB * K];
  for (int i = 0; i < NB * K; i++) in[i] = (float)camd_rng_uniform(&r);
  memset(seed, 0, sizeof(seed));
  seed[0 * N + 17] = 1.0f;                                                           /* one-hot */
  seed[1 * N + 3] = 0.25f, seed[1 * N + 40] = -2.0f, seed[1 * N + 63] = 0.7f;        /* sparse */
  for (int j = 0; j < N; j++) seed[2 * N + j] = (float)(camd_rng_uniform(&r) - 0.5); /* dense */
  camd_forward_opts o;
  camd_forward_opts_init(&o);
  o.grad_to = x;
  CHECK_MSG(!camd_session_forward(s, NB, in, &o, &err), "%s", err.message);
  CHECK_MSG(!camd_session_backward(s, y, seed, &err), "%s", err.message);
  const float *gb = camd_session_grad(s, x, NULL);
  CHECK(gb != NULL);
  if (gb) memcpy(gx, gb, sizeof(gx));
  for (int b = 0; b < NB && gb; b++) {
    for (int k = 0; k < K; k++) {
      double ref = 0.0;
      for (int j = 0; j < N; j++) ref += 1.5 * (double)seed[b * N + j] * w[j * K + k];
      CHECK_NEAR(gx[b * K + k], ref, 1e-5);
    }
  }
  for (int k = 0; k < K && gb; k++) /* one-hot: exactly one product per element */
    CHECK_MSG(gx[k] == 1.5f * w[17 * K + k], "one-hot seed, element %d: %g", k, gx[k]);
  for (int b = 0; b < NB && gb; b++) { /* alone vs batched */
    CHECK(!camd_session_forward(s, 1, in + b * K, &o, &err));
    CHECK(!camd_session_backward(s, y, seed + b * N, &err));
    const float *g1 = camd_session_grad(s, x, NULL);
    CHECK_MSG(g1 && !memcmp(g1, gx + b * K, sizeof(float) * K), "item %d alone differs", b);
  }
  camd_session_destroy(s);
  camd_model_release(m);
  free(w);
}

CAMD_TEST_MAIN(CAMD_TEST(test_gemm), CAMD_TEST(test_gemm_trans_a), CAMD_TEST(test_matmul),
               CAMD_TEST(test_gemm_sparse_seed))
