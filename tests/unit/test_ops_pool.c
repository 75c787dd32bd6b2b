/* Pooling op tests: MaxPool / AveragePool / GlobalAveragePool / GlobalMaxPool against direct
 * double-precision references (PyTorch's rules for ceil_mode and count_include_pad), forward
 * and backward, plus load-time errors. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "camd/graph.h"
#include "opcheck.h"
#include "testlib.h"

typedef struct pool_case {
  bool is_max;
  int nsp;
  int64_t kernel[2];
  int64_t stride[2]; /* 0 = 1 */
  int64_t dil[2];    /* 0 = 1 */
  int64_t pads[4];   /* begins then ends */
  const char *auto_pad;
  bool ceil_mode;
  bool count_include_pad;
} pool_case;

static int64_t or1(int64_t v) {
  return v ? v : 1;
}

/* One axis: output size, leading and trailing pad. */
static int64_t axis(const pool_case *c, int ax, int64_t in, int64_t *pb, int64_t *pe) {
  const int64_t k = c->kernel[ax], s = or1(c->stride[ax]), d = or1(c->dil[ax]);
  const int64_t dk = (k - 1) * d + 1;
  const char *ap = c->auto_pad ? c->auto_pad : "NOTSET";
  if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
    int64_t out = (in + s - 1) / s, total = (out - 1) * s + dk - in;
    if (total < 0) total = 0;
    *pb = !strcmp(ap, "SAME_UPPER") ? total / 2 : (total + 1) / 2;
    *pe = total - *pb;
    return out;
  }
  *pb = !strcmp(ap, "VALID") ? 0 : c->pads[ax];
  *pe = !strcmp(ap, "VALID") ? 0 : c->pads[c->nsp + ax];
  const int64_t span = in + *pb + *pe - dk;
  int64_t out = (c->ceil_mode ? (span + s - 1) / s : span / s) + 1;
  if (c->ceil_mode && (out - 1) * s >= in + *pb) out--;
  return out;
}

static void pool_ref(void *vctx, const double *const *in, const camd_shape *is, double *const *out,
                     const camd_shape *os) {
  const pool_case *c = vctx;
  const int nsp = c->nsp;
  const int64_t N = is[0].dims[0], C = is[0].dims[1];
  const int64_t H = nsp == 2 ? is[0].dims[2] : 1, W = is[0].dims[is[0].ndim - 1];
  int64_t pt = 0, pb = 0, pl, pr, OH = 1, OW;
  if (nsp == 2) OH = axis(c, 0, H, &pt, &pb);
  OW = axis(c, nsp - 1, W, &pl, &pr);
  const int64_t KH = nsp == 2 ? c->kernel[0] : 1, KW = c->kernel[nsp - 1];
  const int64_t sh = nsp == 2 ? or1(c->stride[0]) : 1, sw = or1(c->stride[nsp - 1]);
  const int64_t dh = nsp == 2 ? or1(c->dil[0]) : 1, dw = or1(c->dil[nsp - 1]);
  const size_t total = camd_shape_count(&os[0]);
  if ((nsp == 2 && os[0].dims[2] != OH) || os[0].dims[os[0].ndim - 1] != OW) {
    for (size_t i = 0; i < total; i++) out[0][i] = NAN;
    return;
  }
  for (int64_t p = 0; p < N * C; p++)
    for (int64_t oh = 0; oh < OH; oh++)
      for (int64_t ow = 0; ow < OW; ow++) {
        double best = -INFINITY, sum = 0.0;
        int64_t valid = 0, padded = 0;
        for (int64_t ki = 0; ki < KH; ki++)
          for (int64_t kj = 0; kj < KW; kj++) {
            const int64_t ih = oh * sh - pt + ki * dh, iw = ow * sw - pl + kj * dw;
            if (ih >= -pt && ih < H + pb && iw >= -pl && iw < W + pr) padded++;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
            const double v = in[0][(p * H + ih) * W + iw];
            valid++;
            sum += v;
            if (v > best) best = v;
          }
        double r;
        if (c->is_max) {
          r = best;
        } else {
          r = sum / (double)(c->count_include_pad ? padded : valid);
        }
        out[0][(p * OH + oh) * OW + ow] = r;
      }
}

static int run_pool(const char *label, const pool_case *c, int64_t n, int64_t ch,
                    const int64_t *sp) {
  opcheck_spec s;
  memset(&s, 0, sizeof(s));
  s.op_type = c->is_max ? "MaxPool" : "AveragePool";
  s.opset = 19;
  s.n_in = 1;
  s.in_shapes[0] =
      c->nsp == 2 ? opcheck_shape(4, n, ch, sp[0], sp[1]) : opcheck_shape(3, n, ch, sp[0]);
  s.n_out = 1;
  camd_attr attrs[8];
  int na = 0;
  int64_t strides[2], dils[2];
  for (int i = 0; i < c->nsp; i++) {
    strides[i] = or1(c->stride[i]);
    dils[i] = or1(c->dil[i]);
  }
  attrs[na++] = opcheck_attr_ints("kernel_shape", c->kernel, (size_t)c->nsp);
  attrs[na++] = opcheck_attr_ints("strides", strides, (size_t)c->nsp);
  attrs[na++] = opcheck_attr_ints("dilations", dils, (size_t)c->nsp);
  if (c->auto_pad) {
    attrs[na++] = opcheck_attr_string("auto_pad", c->auto_pad);
  } else {
    attrs[na++] = opcheck_attr_ints("pads", c->pads, (size_t)(2 * c->nsp));
  }
  attrs[na++] = opcheck_attr_int("ceil_mode", c->ceil_mode);
  if (!c->is_max) attrs[na++] = opcheck_attr_int("count_include_pad", c->count_include_pad);
  s.attrs = attrs;
  s.n_attrs = na;
  s.ref = pool_ref;
  s.ref_ctx = (void *)c;
  s.grad_check = 1u;
  s.seed = 99u + (uint64_t)strlen(label);
  s.label = label;
  return opcheck_run(&s);
}

#define K2(a, b) ((const int64_t[]){a, b})
#define K1(a) ((const int64_t[]){a})

static void test_maxpool(void) {
  pool_case r = {
      .is_max = true, .nsp = 2, .kernel = {3, 3}, .stride = {2, 2}, .pads = {1, 1, 1, 1}};
  CHECK_EQ_INT(run_pool("max 3x3 s2 p1", &r, 2, 3, K2(8, 7)), 0);
  pool_case a = {.is_max = true, .nsp = 2, .kernel = {2, 3}, .pads = {0, 1, 1, 2}};
  CHECK_EQ_INT(run_pool("max asymmetric pads", &a, 2, 2, K2(5, 6)), 0);
  pool_case d = {.is_max = true, .nsp = 2, .kernel = {2, 2}, .dil = {2, 2}, .stride = {1, 2}};
  CHECK_EQ_INT(run_pool("max dilation 2", &d, 2, 2, K2(6, 7)), 0);
  pool_case c = {.is_max = true, .nsp = 2, .kernel = {2, 2}, .stride = {2, 2}, .ceil_mode = true};
  CHECK_EQ_INT(run_pool("max ceil_mode", &c, 2, 2, K2(5, 7)), 0);
  pool_case cp = {.is_max = true,
                  .nsp = 2,
                  .kernel = {2, 2},
                  .stride = {2, 2},
                  .pads = {1, 1, 1, 1},
                  .ceil_mode = true};
  CHECK_EQ_INT(run_pool("max ceil_mode last window in padding dropped", &cp, 2, 2, K2(5, 6)), 0);
  pool_case su = {
      .is_max = true, .nsp = 2, .kernel = {3, 2}, .stride = {2, 2}, .auto_pad = "SAME_UPPER"};
  CHECK_EQ_INT(run_pool("max SAME_UPPER", &su, 2, 2, K2(7, 6)), 0);
  pool_case sl = {.is_max = true, .nsp = 2, .kernel = {2, 2}, .auto_pad = "SAME_LOWER"};
  CHECK_EQ_INT(run_pool("max SAME_LOWER", &sl, 2, 2, K2(5, 4)), 0);
  pool_case v = {.is_max = true, .nsp = 2, .kernel = {3, 3}, .stride = {2, 2}, .auto_pad = "VALID"};
  CHECK_EQ_INT(run_pool("max VALID", &v, 1, 3, K2(8, 9)), 0);
  pool_case o = {
      .is_max = true, .nsp = 1, .kernel = {3}, .stride = {2}, .pads = {1, 1}, .ceil_mode = true};
  CHECK_EQ_INT(run_pool("max 1-D", &o, 2, 3, K1(8)), 0);
}

static void test_avgpool(void) {
  pool_case a = {.nsp = 2, .kernel = {3, 3}, .stride = {2, 2}, .pads = {1, 1, 1, 1}};
  CHECK_EQ_INT(run_pool("avg exclude pad", &a, 2, 3, K2(7, 6)), 0);
  pool_case b = a;
  b.count_include_pad = true;
  CHECK_EQ_INT(run_pool("avg include pad", &b, 2, 3, K2(7, 6)), 0);
  pool_case c = {
      .nsp = 2, .kernel = {3, 3}, .stride = {2, 2}, .pads = {1, 1, 1, 1}, .ceil_mode = true};
  CHECK_EQ_INT(run_pool("avg ceil exclude pad", &c, 2, 2, K2(6, 8)), 0);
  pool_case d = c;
  d.count_include_pad = true;
  CHECK_EQ_INT(run_pool("avg ceil include pad", &d, 2, 2, K2(6, 8)), 0);
  pool_case e = {
      .nsp = 2, .kernel = {2, 2}, .stride = {2, 2}, .ceil_mode = true, .count_include_pad = true};
  CHECK_EQ_INT(run_pool("avg ceil no pads include pad", &e, 2, 2, K2(5, 7)), 0);
  pool_case f = {.nsp = 2, .kernel = {2, 3}, .pads = {0, 2, 1, 0}, .count_include_pad = true};
  CHECK_EQ_INT(run_pool("avg asymmetric include pad", &f, 2, 2, K2(4, 5)), 0);
  pool_case g = {.nsp = 2, .kernel = {3, 3}, .stride = {2, 2}, .auto_pad = "SAME_UPPER"};
  CHECK_EQ_INT(run_pool("avg SAME_UPPER", &g, 2, 2, K2(6, 7)), 0);
  pool_case h = {
      .nsp = 2, .kernel = {2, 2}, .dil = {2, 1}, .pads = {1, 0, 1, 1}, .count_include_pad = true};
  CHECK_EQ_INT(run_pool("avg dilated include pad", &h, 2, 2, K2(6, 5)), 0);
  pool_case o = {.nsp = 1, .kernel = {3}, .stride = {2}, .pads = {1, 0}, .ceil_mode = true};
  CHECK_EQ_INT(run_pool("avg 1-D ceil", &o, 2, 3, K1(8)), 0);
}

static void global_ref(void *vctx, const double *const *in, const camd_shape *is,
                       double *const *out, const camd_shape *os) {
  const bool is_max = vctx != NULL;
  (void)os;
  int64_t sz = 1;
  for (int i = 2; i < is[0].ndim; i++) sz *= is[0].dims[i];
  for (int64_t p = 0; p < is[0].dims[0] * is[0].dims[1]; p++) {
    double best = -INFINITY, sum = 0.0;
    for (int64_t i = 0; i < sz; i++) {
      const double v = in[0][p * sz + i];
      sum += v;
      if (v > best) best = v;
    }
    out[0][p] = is_max ? best : sum / (double)sz;
  }
}

static int run_global(const char *label, bool is_max, camd_shape shape) {
  opcheck_spec s;
  memset(&s, 0, sizeof(s));
  s.op_type = is_max ? "GlobalMaxPool" : "GlobalAveragePool";
  s.opset = 13;
  s.n_in = 1;
  s.in_shapes[0] = shape;
  s.n_out = 1;
  s.ref = global_ref;
  s.ref_ctx = is_max ? (void *)1 : NULL;
  s.grad_check = 1u;
  s.seed = 7u + (uint64_t)strlen(label);
  s.label = label;
  return opcheck_run(&s);
}

static void test_global(void) {
  CHECK_EQ_INT(run_global("gap 4-D", false, opcheck_shape(4, 2, 3, 4, 5)), 0);
  CHECK_EQ_INT(run_global("gap 3-D", false, opcheck_shape(3, 2, 3, 7)), 0);
  CHECK_EQ_INT(run_global("gap 1x1", false, opcheck_shape(4, 2, 3, 1, 1)), 0);
  CHECK_EQ_INT(run_global("gmp 4-D", true, opcheck_shape(4, 2, 3, 4, 5)), 0);
  CHECK_EQ_INT(run_global("gmp 3-D", true, opcheck_shape(3, 2, 4, 6)), 0);
}

static void test_pool_errors(void) {
  camd_error err;
  camd_graph *g = camd_graph_new();
  camd_shape xs = opcheck_shape(4, 1, 2, 5, 5);
  int x = camd_graph_add_input(g, "x", &xs, &err);
  CHECK(x >= 0);
  int64_t k[2] = {2, 2};
  camd_attr ka = opcheck_attr_ints("kernel_shape", k, 2);
  int outs[2];
  int rc = camd_graph_add_node(g, "MaxPool", "m1", 13, 1, &x, 2, (const char *const[]){"y", "i"},
                               &ka, 1, outs, &err);
  CHECK(rc == CAMD_E_UNSUPPORTED);
  CHECK(strstr(err.message, "Indices") != NULL);
  rc = camd_graph_add_node(g, "MaxPool", "m2", 13, 1, &x, 1, (const char *const[]){"y2"}, NULL, 0,
                           outs, &err);
  CHECK(rc == CAMD_E_INVALID); /* kernel_shape is required */
  int64_t big[2] = {7, 7};
  camd_attr kb = opcheck_attr_ints("kernel_shape", big, 2);
  rc = camd_graph_add_node(g, "AveragePool", "a1", 13, 1, &x, 1, (const char *const[]){"y3"}, &kb,
                           1, outs, &err);
  CHECK(rc == CAMD_E_SHAPE);
  camd_graph_free(g);
}

CAMD_TEST_MAIN(CAMD_TEST(test_maxpool), CAMD_TEST(test_avgpool), CAMD_TEST(test_global),
               CAMD_TEST(test_pool_errors))
