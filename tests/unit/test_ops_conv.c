/* Conv op tests: engine forward/backward against a direct double-precision reference
 * convolution written from the ONNX spec (stride, padding, auto_pad, dilation, groups,
 * depthwise, 1x1 fast paths, 1-D), plus load-time errors. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "camd/graph.h"
#include "opcheck.h"
#include "testlib.h"

typedef struct conv_case {
  int nsp;           /* 1 or 2 spatial dims */
  int64_t stride[2]; /* per real spatial dim; 0 = 1 */
  int64_t dil[2];    /* 0 = 1 */
  int64_t pads[4];   /* ONNX order: begins then ends */
  const char *auto_pad;
  int64_t group;
  bool bias; /* set by run_conv */
} conv_case;

static int64_t or1(int64_t v) {
  return v ? v : 1;
}

/* Resolves one axis: output size and leading pad. */
static int64_t axis_out(const conv_case *c, int ax, int64_t in, int64_t k, int64_t *pb) {
  const int64_t s = or1(c->stride[ax]), d = or1(c->dil[ax]), dk = (k - 1) * d + 1;
  const char *ap = c->auto_pad ? c->auto_pad : "NOTSET";
  if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
    int64_t out = (in + s - 1) / s;
    int64_t total = (out - 1) * s + dk - in;
    if (total < 0) total = 0;
    *pb = !strcmp(ap, "SAME_UPPER") ? total / 2 : (total + 1) / 2;
    return out;
  }
  if (!strcmp(ap, "VALID")) {
    *pb = 0;
    return (in - dk) / s + 1;
  }
  *pb = c->pads[ax];
  return (in + c->pads[ax] + c->pads[c->nsp + ax] - dk) / s + 1;
}

static void conv_ref(void *vctx, const double *const *in, const camd_shape *is, double *const *out,
                     const camd_shape *os) {
  const conv_case *c = vctx;
  const int nsp = c->nsp;
  const int64_t N = is[0].dims[0], C = is[0].dims[1];
  const int64_t H = nsp == 2 ? is[0].dims[2] : 1, W = is[0].dims[is[0].ndim - 1];
  const int64_t M = is[1].dims[0], Cg = is[1].dims[1];
  const int64_t KH = nsp == 2 ? is[1].dims[2] : 1, KW = is[1].dims[is[1].ndim - 1];
  int64_t pt = 0, pl = 0, OH = 1, OW;
  if (nsp == 2) OH = axis_out(c, 0, H, KH, &pt);
  OW = axis_out(c, nsp - 1, W, KW, &pl);
  const int64_t sh = nsp == 2 ? or1(c->stride[0]) : 1, sw = or1(c->stride[nsp - 1]);
  const int64_t dh = nsp == 2 ? or1(c->dil[0]) : 1, dw = or1(c->dil[nsp - 1]);
  const size_t total = camd_shape_count(&os[0]);
  if (os[0].dims[1] != M || (nsp == 2 && os[0].dims[2] != OH) || os[0].dims[os[0].ndim - 1] != OW) {
    for (size_t i = 0; i < total; i++) out[0][i] = NAN;
    return;
  }
  const int64_t G = or1(c->group), Mg = M / G;
  const double *x = in[0], *w = in[1], *b = c->bias ? in[2] : NULL;
  for (int64_t n = 0; n < N; n++)
    for (int64_t m = 0; m < M; m++) {
      const int64_t g = m / Mg;
      for (int64_t oh = 0; oh < OH; oh++)
        for (int64_t ow = 0; ow < OW; ow++) {
          double s = b ? b[m] : 0.0;
          for (int64_t ci = 0; ci < Cg; ci++)
            for (int64_t ki = 0; ki < KH; ki++)
              for (int64_t kj = 0; kj < KW; kj++) {
                const int64_t ih = oh * sh - pt + ki * dh, iw = ow * sw - pl + kj * dw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                s += x[((n * C + g * Cg + ci) * H + ih) * W + iw] *
                     w[((m * Cg + ci) * KH + ki) * KW + kj];
              }
          out[0][((n * M + m) * OH + oh) * OW + ow] = s;
        }
    }
}

/* Large cases check the forward only (finite differences over every input would be slow). */
static bool skip_grad;

/* Runs one conv case: x [N, C, spatial...], kernel spatial dims k, M output channels. */
static int run_conv(const char *label, const conv_case *cin, int64_t n, int64_t ch,
                    const int64_t *sp, int64_t m, const int64_t *k, bool bias, bool kernel_attr) {
  conv_case cc = *cin;
  const conv_case *c = &cc;
  cc.bias = bias;
  opcheck_spec s;
  memset(&s, 0, sizeof(s));
  s.op_type = "Conv";
  s.opset = 17;
  s.n_in = bias ? 3 : 2;
  const int64_t g = or1(c->group);
  if (c->nsp == 2) {
    s.in_shapes[0] = opcheck_shape(4, n, ch, sp[0], sp[1]);
    s.in_shapes[1] = opcheck_shape(4, m, ch / g, k[0], k[1]);
  } else {
    s.in_shapes[0] = opcheck_shape(3, n, ch, sp[0]);
    s.in_shapes[1] = opcheck_shape(3, m, ch / g, k[0]);
  }
  if (bias) s.in_shapes[2] = opcheck_shape(1, m);
  s.in_const = bias ? 6u : 2u;
  s.n_out = 1;
  camd_attr attrs[8];
  int na = 0;
  int64_t strides[2], dils[2];
  for (int i = 0; i < c->nsp; i++) {
    strides[i] = or1(c->stride[i]);
    dils[i] = or1(c->dil[i]);
  }
  attrs[na++] = opcheck_attr_ints("strides", strides, (size_t)c->nsp);
  attrs[na++] = opcheck_attr_ints("dilations", dils, (size_t)c->nsp);
  if (c->auto_pad) {
    attrs[na++] = opcheck_attr_string("auto_pad", c->auto_pad);
  } else {
    attrs[na++] = opcheck_attr_ints("pads", c->pads, (size_t)(2 * c->nsp));
  }
  if (c->group) attrs[na++] = opcheck_attr_int("group", c->group);
  if (kernel_attr) attrs[na++] = opcheck_attr_ints("kernel_shape", k, (size_t)c->nsp);
  s.attrs = attrs;
  s.n_attrs = na;
  s.ref = conv_ref;
  s.ref_ctx = (void *)c;
  s.grad_check = skip_grad ? 0u : 1u;
  s.seed = 1234u + (uint64_t)strlen(label);
  s.label = label;
  return opcheck_run(&s);
}

#define K2(a, b) ((const int64_t[]){a, b})
#define K1(a) ((const int64_t[]){a})

static void test_conv_basic(void) {
  conv_case c = {.nsp = 2, .pads = {1, 1, 1, 1}};
  CHECK_EQ_INT(run_conv("3x3 pad 1", &c, 2, 3, K2(5, 5), 4, K2(3, 3), true, true), 0);
  conv_case c0 = {.nsp = 2};
  CHECK_EQ_INT(run_conv("3x3 no pad no bias", &c0, 2, 2, K2(6, 5), 3, K2(3, 3), false, false), 0);
  conv_case big = {.nsp = 2, .pads = {1, 1, 1, 1}};
  CHECK_EQ_INT(run_conv("kernel wider than input", &big, 1, 2, K2(2, 2), 2, K2(3, 3), true, true),
               0);
}

static void test_conv_stride_pad(void) {
  conv_case c = {.nsp = 2, .stride = {2, 2}, .pads = {1, 1, 1, 1}};
  CHECK_EQ_INT(run_conv("stride 2 pad 1", &c, 2, 3, K2(7, 6), 4, K2(3, 3), true, false), 0);
  conv_case c7 = {.nsp = 2, .stride = {2, 2}, .pads = {3, 3, 3, 3}};
  CHECK_EQ_INT(run_conv("7x7 stride 2 pad 3", &c7, 2, 3, K2(11, 12), 2, K2(7, 7), true, false), 0);
  conv_case c3 = {.nsp = 2, .stride = {3, 1}, .pads = {0, 2, 1, 0}};
  CHECK_EQ_INT(run_conv("stride 3x1", &c3, 2, 2, K2(8, 5), 3, K2(2, 3), true, false), 0);
}

static void test_conv_asymmetric(void) {
  conv_case c = {.nsp = 2, .pads = {0, 1, 2, 1}};
  CHECK_EQ_INT(run_conv("asymmetric pads", &c, 2, 3, K2(5, 6), 2, K2(2, 3), true, false), 0);
  conv_case c2 = {.nsp = 2, .stride = {2, 2}, .pads = {2, 0, 0, 1}};
  CHECK_EQ_INT(run_conv("asymmetric pads stride 2", &c2, 2, 2, K2(6, 7), 3, K2(3, 3), true, false),
               0);
}

static void test_conv_dilation(void) {
  conv_case c = {.nsp = 2, .dil = {2, 2}, .pads = {2, 2, 2, 2}};
  CHECK_EQ_INT(run_conv("dilation 2", &c, 2, 2, K2(9, 8), 3, K2(3, 3), true, false), 0);
  conv_case c3 = {.nsp = 2, .dil = {1, 2}, .stride = {1, 3}, .pads = {1, 2, 0, 1}};
  CHECK_EQ_INT(run_conv("dilation 2 stride 3 (column phases)", &c3, 2, 2, K2(7, 13), 3, K2(3, 3),
                        true, false),
               0);
  conv_case c4 = {.nsp = 2, .stride = {2, 2}};
  CHECK_EQ_INT(run_conv("stride 2 no pad (phases, VALID-like)", &c4, 2, 2, K2(7, 8), 2, K2(3, 3),
                        true, false),
               0);
  conv_case c2 = {.nsp = 2, .dil = {3, 1}, .stride = {1, 2}, .pads = {1, 0, 0, 1}};
  CHECK_EQ_INT(run_conv("dilation 3x1 stride 1x2", &c2, 2, 2, K2(9, 8), 2, K2(2, 3), false, false),
               0);
}

static void test_conv_groups(void) {
  conv_case c = {.nsp = 2, .group = 2, .pads = {1, 1, 1, 1}};
  CHECK_EQ_INT(run_conv("groups 2", &c, 2, 4, K2(5, 5), 6, K2(3, 3), true, false), 0);
  conv_case c3 = {.nsp = 2, .group = 3, .stride = {2, 2}, .pads = {0, 1, 1, 0}};
  CHECK_EQ_INT(run_conv("groups 3 stride 2", &c3, 2, 6, K2(6, 5), 3, K2(3, 2), true, false), 0);
}

static void test_conv_depthwise(void) {
  conv_case c = {.nsp = 2, .group = 3, .pads = {1, 1, 1, 1}};
  CHECK_EQ_INT(run_conv("depthwise 3x3", &c, 2, 3, K2(6, 5), 3, K2(3, 3), true, false), 0);
  conv_case c2 = {.nsp = 2, .group = 4, .stride = {2, 2}, .pads = {0, 1, 2, 1}};
  CHECK_EQ_INT(
      run_conv("depthwise x2 stride 2 asym", &c2, 2, 4, K2(7, 8), 8, K2(3, 3), true, false), 0);
  conv_case c3 = {.nsp = 2, .group = 2, .dil = {2, 2}, .stride = {1, 3}, .pads = {2, 2, 2, 2}};
  CHECK_EQ_INT(run_conv("depthwise dilated", &c3, 2, 2, K2(7, 9), 2, K2(3, 3), false, false), 0);
  conv_case c4 = {.nsp = 2, .group = 3, .auto_pad = "SAME_UPPER", .stride = {2, 2}};
  CHECK_EQ_INT(run_conv("depthwise 5x5 same", &c4, 2, 3, K2(8, 7), 3, K2(5, 5), true, false), 0);
  /* The 3x3 one-pass path (op_dw_kernel.h): wide rows, both strides, left pads 0..2, odd widths. */
  conv_case f1 = {.nsp = 2, .group = 2, .pads = {1, 1, 1, 1}};
  CHECK_EQ_INT(run_conv("dw3 wide s1 p1", &f1, 1, 2, K2(5, 37), 2, K2(3, 3), true, false), 0);
  conv_case f2 = {.nsp = 2, .group = 2, .stride = {2, 2}, .pads = {1, 1, 1, 1}};
  CHECK_EQ_INT(run_conv("dw3 wide s2 p1", &f2, 1, 2, K2(7, 41), 2, K2(3, 3), true, false), 0);
  conv_case f3 = {.nsp = 2, .group = 2, .stride = {2, 2}};
  CHECK_EQ_INT(run_conv("dw3 s2 valid", &f3, 1, 2, K2(6, 36), 2, K2(3, 3), false, false), 0);
  conv_case f4 = {.nsp = 2, .group = 2, .pads = {2, 2, 0, 2}};
  CHECK_EQ_INT(run_conv("dw3 s1 p2", &f4, 1, 2, K2(5, 21), 4, K2(3, 3), true, false), 0);
  conv_case f5 = {.nsp = 2, .group = 2, .stride = {2, 2}, .pads = {2, 2, 1, 1}};
  CHECK_EQ_INT(run_conv("dw3 s2 p2", &f5, 1, 2, K2(6, 23), 2, K2(3, 3), true, false), 0);
}

static void test_conv_1x1(void) {
  conv_case c = {.nsp = 2};
  CHECK_EQ_INT(run_conv("1x1", &c, 2, 3, K2(5, 4), 5, K2(1, 1), true, false), 0);
  CHECK_EQ_INT(run_conv("1x1 no bias", &c, 3, 4, K2(3, 3), 2, K2(1, 1), false, false), 0);
  conv_case g = {.nsp = 2, .group = 2};
  CHECK_EQ_INT(run_conv("1x1 groups 2", &g, 2, 4, K2(3, 5), 6, K2(1, 1), true, false), 0);
  CHECK_EQ_INT(run_conv("1x1 on 1x1 (batched GEMM)", &c, 3, 6, K2(1, 1), 4, K2(1, 1), true, false),
               0);
  CHECK_EQ_INT(run_conv("1x1 on 1x1 no bias", &c, 2, 5, K2(1, 1), 3, K2(1, 1), false, false), 0);
  conv_case s2 = {.nsp = 2, .stride = {2, 2}};
  CHECK_EQ_INT(run_conv("1x1 stride 2", &s2, 2, 3, K2(5, 6), 4, K2(1, 1), true, false), 0);
  conv_case p1 = {.nsp = 2, .pads = {1, 0, 0, 1}};
  CHECK_EQ_INT(run_conv("1x1 padded", &p1, 2, 3, K2(3, 4), 2, K2(1, 1), true, false), 0);
}

static void test_conv_auto_pad(void) {
  conv_case u = {.nsp = 2, .auto_pad = "SAME_UPPER", .stride = {2, 2}};
  CHECK_EQ_INT(run_conv("SAME_UPPER stride 2", &u, 2, 2, K2(7, 6), 3, K2(3, 3), true, false), 0);
  conv_case l = {.nsp = 2, .auto_pad = "SAME_LOWER", .stride = {2, 2}};
  CHECK_EQ_INT(run_conv("SAME_LOWER stride 2", &l, 2, 2, K2(7, 6), 3, K2(3, 3), true, false), 0);
  conv_case u2 = {.nsp = 2, .auto_pad = "SAME_UPPER"};
  CHECK_EQ_INT(run_conv("SAME_UPPER even kernel", &u2, 2, 2, K2(5, 4), 2, K2(2, 4), true, false),
               0);
  conv_case l2 = {.nsp = 2, .auto_pad = "SAME_LOWER"};
  CHECK_EQ_INT(run_conv("SAME_LOWER even kernel", &l2, 2, 2, K2(5, 4), 2, K2(2, 4), true, false),
               0);
  conv_case v = {.nsp = 2, .auto_pad = "VALID", .stride = {2, 1}};
  CHECK_EQ_INT(run_conv("VALID", &v, 2, 2, K2(7, 6), 3, K2(3, 2), true, false), 0);
}

static void test_conv_1d(void) {
  conv_case c = {.nsp = 1, .stride = {2}, .dil = {2}, .pads = {1, 2}};
  CHECK_EQ_INT(run_conv("1-D stride 2 dilation 2", &c, 2, 3, K1(11), 4, K1(3), true, true), 0);
  conv_case d = {.nsp = 1, .group = 3, .pads = {1, 1}};
  CHECK_EQ_INT(run_conv("1-D depthwise", &d, 2, 3, K1(7), 6, K1(3), true, false), 0);
  conv_case o = {.nsp = 1};
  CHECK_EQ_INT(run_conv("1-D 1x1", &o, 2, 3, K1(5), 2, K1(1), false, false), 0);
  conv_case s = {.nsp = 1, .auto_pad = "SAME_LOWER", .stride = {3}};
  CHECK_EQ_INT(run_conv("1-D SAME_LOWER", &s, 2, 2, K1(10), 2, K1(4), true, false), 0);
}

/* Load-time errors: a computed weight, bad group, unsupported rank. */
/* Large enough that im2col runs in several bands of output rows. */
static void test_conv_bands(void) {
  conv_case c = {.nsp = 2, .pads = {1, 1, 1, 1}};
  CHECK_EQ_INT(run_conv("bands 3x3", &c, 1, 32, K2(64, 16), 2, K2(3, 3), true, false), 0);
  conv_case s = {.nsp = 2, .stride = {2, 2}, .pads = {1, 0, 0, 1}};
  CHECK_EQ_INT(run_conv("bands stride 2", &s, 1, 32, K2(320, 12), 2, K2(3, 3), true, false), 0);
  /* The parallel splits (op_conv.c "Threads"): one band with W split into row chunks (80 rows:
   * 32 + 32 + 16), >= 4 bands run as one task each, 1x1 row chunks on a wide and a small plane. */
  CHECK_EQ_INT(run_conv("row chunks", &c, 2, 8, K2(6, 7), 80, K2(3, 3), true, false), 0);
  skip_grad = true;
  CHECK_EQ_INT(run_conv("band tasks", &c, 2, 64, K2(64, 32), 4, K2(3, 3), true, false), 0);
  conv_case u = {.nsp = 2};
  CHECK_EQ_INT(run_conv("1x1 wide plane", &u, 2, 4, K2(32, 40), 6, K2(1, 1), true, false), 0);
  CHECK_EQ_INT(run_conv("1x1 row split", &u, 2, 16, K2(5, 6), 70, K2(1, 1), false, false), 0);
  skip_grad = false;
}

static void test_conv_errors(void) {
  camd_error err;
  camd_graph *g = camd_graph_new();
  CHECK(g != NULL);
  camd_shape xs = opcheck_shape(4, 1, 4, 5, 5), ws = opcheck_shape(4, 1, 4, 3, 3);
  int x = camd_graph_add_input(g, "x", &xs, &err);
  int wact = camd_graph_add_input(g, "w_act", &ws, &err);
  CHECK(x >= 0 && wact >= 0);
  int ins[2] = {x, wact}, out = -1;
  int rc = camd_graph_add_node(g, "Conv", "c1", 17, 2, ins, 1, (const char *const[]){"y"}, NULL, 0,
                               &out, &err);
  CHECK(rc == CAMD_E_UNSUPPORTED);
  CHECK(strstr(err.message, "constant") != NULL);

  float *wd = calloc(4 * 9, sizeof(float));
  camd_shape ws3 = opcheck_shape(4, 1, 3, 3, 3); /* 4 channels: group 1 needs Cg == 4 */
  int w3 = camd_graph_add_constant(g, "w3", CAMD_FLOAT32, &ws3, wd, &err);
  CHECK(w3 >= 0);
  ins[1] = w3;
  rc = camd_graph_add_node(g, "Conv", "c2", 17, 2, ins, 1, (const char *const[]){"y2"}, NULL, 0,
                           &out, &err);
  CHECK(rc == CAMD_E_SHAPE);

  float *wd2 = calloc(2 * 4 * 9, sizeof(float));
  camd_shape ws2 = opcheck_shape(4, 2, 4, 3, 3);
  int w2 = camd_graph_add_constant(g, "w2", CAMD_FLOAT32, &ws2, wd2, &err);
  ins[1] = w2;
  camd_attr grp = opcheck_attr_int("group", 3);
  rc = camd_graph_add_node(g, "Conv", "c3", 17, 2, ins, 1, (const char *const[]){"y3"}, &grp, 1,
                           &out, &err);
  CHECK(rc == CAMD_E_SHAPE);
  camd_attr bad = opcheck_attr_string("auto_pad", "SAME");
  rc = camd_graph_add_node(g, "Conv", "c4", 17, 2, ins, 1, (const char *const[]){"y4"}, &bad, 1,
                           &out, &err);
  CHECK(rc == CAMD_E_INVALID);
  camd_graph_free(g);
}

CAMD_TEST_MAIN(CAMD_TEST(test_conv_basic), CAMD_TEST(test_conv_stride_pad),
               CAMD_TEST(test_conv_asymmetric), CAMD_TEST(test_conv_dilation),
               CAMD_TEST(test_conv_groups), CAMD_TEST(test_conv_depthwise),
               CAMD_TEST(test_conv_1x1), CAMD_TEST(test_conv_auto_pad), CAMD_TEST(test_conv_1d),
               CAMD_TEST(test_conv_bands), CAMD_TEST(test_conv_errors))
