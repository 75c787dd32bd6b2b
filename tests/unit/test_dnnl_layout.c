/* Blocked-layout convolutions (src/engine/dnnl.h, plan_layout.c): a small network of every
 * convolution shape the layout pass hands to oneDNN, against a double-precision reference
 * computed here, with kept values (which must come back in NCHW), per-item vs batched runs and
 * 1 vs 2 vs 3 threads compared bit for bit (oneDNN's output-channel slices on the session's
 * threads), and the NCHW weights the oneDNN pass drops at load rebuilt bit for bit.
 *
 * Network (x: [N, 3, 13, 11]):
 *   a = Relu(Conv 3->32, 3x3, pads 1)            first conv: NCHW input, blocked output
 *   b = Relu(Conv 32->32, 3x3, stride 2, pads 1,0,0,1)   asymmetric padding
 *   c = Conv 32->64, 1x1 (b)           d = Conv 32->64, 1x1 (b), no bias
 *   r = Relu(Add(c, d))                               residual add, element-wise on blocked data
 *   e = Clip(Conv depthwise 64, 3x3, pads 1)(r), 0, 6)
 *   y = Conv 64->16, 3x3, dilation 2, pads 2 (e)      graph output (NCHW)
 * When oneDNN is in use (built with CAMD_ONEDNN, not switched off with CAMD_ONEDNN=0, AVX2 or
 * better) the test
 * also asserts that all six convolutions ran through it, so a silent fallback fails.
 */
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "camd/engine.h"
#include "camd/graph.h"
#include "testlib.h"

enum { C0 = 3, H0 = 13, W0 = 11, MAXB = 3 };

typedef struct conv_spec {
  int c, m, group, k, stride, dil;
  int pt, pl, pb, pr;
  bool bias;
} conv_spec;

enum { NSPECS = 26 };

static const conv_spec specs[NSPECS] = {
    {3, 32, 1, 3, 1, 1, 1, 1, 1, 1, true},   /* a */
    {32, 32, 1, 3, 2, 1, 1, 0, 0, 1, true},  /* b */
    {32, 64, 1, 1, 1, 1, 0, 0, 0, 0, true},  /* c */
    {32, 64, 1, 1, 1, 1, 0, 0, 0, 0, false}, /* d */
    {64, 64, 64, 3, 1, 1, 1, 1, 1, 1, true}, /* e */
    {64, 16, 1, 3, 1, 2, 2, 2, 2, 2, true},  /* y */
    /* the Winograd network (build_winograd) */
    {64, 64, 1, 3, 1, 1, 1, 1, 1, 1, true},  /* wa */
    {64, 64, 1, 3, 1, 1, 1, 1, 1, 1, false}, /* wb */
    /* the padded-channels network (build_padded) */
    {24, 40, 1, 1, 1, 1, 0, 0, 0, 0, true},  /* pa: 24 in, 40 out (blocks of 16: both padded) */
    {40, 64, 1, 3, 1, 1, 1, 1, 1, 1, false}, /* pb: padded input, whole-block output */
    {64, 24, 1, 1, 1, 1, 0, 0, 0, 0, true},  /* pc: blocked input, padded output */
    /* the residual-chain network (build_chain) */
    {128, 128, 1, 1, 1, 1, 0, 0, 0, 0, true},  /* ca */
    {128, 128, 1, 3, 1, 1, 1, 1, 1, 1, true},  /* block 1: 3x3 */
    {128, 128, 1, 1, 1, 1, 0, 0, 0, 0, false}, /* block 1: 1x1, + a */
    {128, 128, 1, 3, 1, 1, 1, 1, 1, 1, true},  /* block 2 */
    {128, 128, 1, 1, 1, 1, 0, 0, 0, 0, true},  /* block 2: + s1 */
    {128, 128, 1, 3, 1, 1, 1, 1, 1, 1, false}, /* block 3 */
    {128, 128, 1, 1, 1, 1, 0, 0, 0, 0, true},  /* block 3: + s2 */
    {128, 128, 1, 1, 1, 1, 0, 0, 0, 0, true},  /* block 4: 1x1 of s3, + s3 */
    {128, 16, 1, 1, 1, 1, 0, 0, 0, 0, true},   /* cy */
    /* the max-pooling network (build_maxpool) */
    {32, 32, 1, 3, 1, 1, 1, 1, 1, 1, true},  /* ma */
    {32, 128, 1, 3, 2, 1, 1, 1, 1, 1, true}, /* my: channels-last (brgemm) into NCHW */
    /* the global-average-pooling network (build_gap) */
    {3, 48, 1, 3, 1, 1, 1, 1, 1, 1, true}, /* ga */
    /* the inverted-residual network (build_invres): expand, depthwise, project */
    {16, 64, 1, 1, 1, 1, 0, 0, 0, 0, true},  /* ie */
    {64, 64, 64, 3, 1, 1, 1, 1, 1, 1, true}, /* id */
    {64, 16, 1, 1, 1, 1, 0, 0, 0, 0, true},  /* ip */
};

typedef struct net {
  camd_model *m;
  float *w[NSPECS], *b[NSPECS];
  int w_id[NSPECS];
  int r_id, y_id;
} net;

static int out_size(int in, int k, int s, int d, int p0, int p1) {
  return (in + p0 + p1 - ((k - 1) * d + 1)) / s + 1;
}

static void rand_fill(camd_rng *r, float *x, size_t n, double scale) {
  for (size_t i = 0; i < n; i++) x[i] = (float)((camd_rng_uniform(r) * 2 - 1) * scale);
}

static int add_conv(camd_graph *g, net *nt, int i, int x, const char *name, camd_rng *r,
                    camd_error *err) {
  const conv_spec *s = &specs[i];
  const int cg = s->c / s->group;
  const size_t nw = (size_t)s->m * cg * s->k * s->k;
  nt->w[i] = malloc(nw * sizeof(float));
  rand_fill(r, nt->w[i], nw, 1.0 / sqrt((double)cg * s->k * s->k));
  float *wd = malloc(nw * sizeof(float));
  memcpy(wd, nt->w[i], nw * sizeof(float));
  camd_shape ws = {4, {s->m, cg, s->k, s->k}};
  char wn[32];
  snprintf(wn, sizeof wn, "%s.w", name);
  int in[3] = {x, camd_graph_add_constant(g, wn, CAMD_FLOAT32, &ws, wd, err), -1};
  nt->w_id[i] = in[1];
  int n_in = 2;
  if (s->bias) {
    nt->b[i] = malloc((size_t)s->m * sizeof(float));
    rand_fill(r, nt->b[i], (size_t)s->m, 0.5);
    float *bd = malloc((size_t)s->m * sizeof(float));
    memcpy(bd, nt->b[i], (size_t)s->m * sizeof(float));
    camd_shape bs = {1, {s->m}};
    snprintf(wn, sizeof wn, "%s.b", name);
    in[2] = camd_graph_add_constant(g, wn, CAMD_FLOAT32, &bs, bd, err);
    n_in = 3;
  }
  const int64_t pads[4] = {s->pt, s->pl, s->pb, s->pr}, strides[2] = {s->stride, s->stride},
                dil[2] = {s->dil, s->dil};
  camd_attr at[4] = {{.name = "pads", .type = CAMD_ATTR_INTS, .ints = pads, .n = 4},
                     {.name = "strides", .type = CAMD_ATTR_INTS, .ints = strides, .n = 2},
                     {.name = "dilations", .type = CAMD_ATTR_INTS, .ints = dil, .n = 2},
                     {.name = "group", .type = CAMD_ATTR_INT, .i = s->group}};
  const char *outs[1] = {name};
  int out = -1;
  if (camd_graph_add_node(g, "Conv", name, 13, n_in, in, 1, outs, at, 4, &out, err)) return -1;
  return out;
}

static int add_unary(camd_graph *g, const char *op, int x, const char *name, camd_error *err) {
  camd_attr clip[2] = {{.name = "min", .type = CAMD_ATTR_FLOAT, .f = 0.0f},
                       {.name = "max", .type = CAMD_ATTR_FLOAT, .f = 6.0f}};
  const char *outs[1] = {name};
  int in[1] = {x}, out = -1;
  bool is_clip = !strcmp(op, "Clip");
  if (camd_graph_add_node(g, op, name, is_clip ? 6 : 13, 1, in, 1, outs, is_clip ? clip : NULL,
                          is_clip ? 2 : 0, &out, err))
    return -1;
  return out;
}

static int build(net *nt) {
  memset(nt, 0, sizeof(*nt));
  camd_error err = {0};
  camd_rng r;
  camd_rng_seed(&r, 12);
  camd_graph *g = camd_graph_new();
  camd_shape xs = {4, {1, C0, H0, W0}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  int a = add_unary(g, "Relu", add_conv(g, nt, 0, x, "conv_a", &r, &err), "a", &err);
  int b = add_unary(g, "Relu", add_conv(g, nt, 1, a, "conv_b", &r, &err), "b", &err);
  int c = add_conv(g, nt, 2, b, "conv_c", &r, &err);
  int d = add_conv(g, nt, 3, b, "conv_d", &r, &err);
  const char *sn[1] = {"sum"};
  int si[2] = {c, d}, sum = -1;
  CHECK(!camd_graph_add_node(g, "Add", "add", 13, 2, si, 1, sn, NULL, 0, &sum, &err));
  nt->r_id = add_unary(g, "Relu", sum, "r", &err);
  int e = add_unary(g, "Clip", add_conv(g, nt, 4, nt->r_id, "conv_e", &r, &err), "e", &err);
  nt->y_id = add_conv(g, nt, 5, e, "y", &r, &err);
  CHECK_MSG(nt->y_id >= 0 && !camd_graph_mark_output(g, nt->y_id, &err), "%s", err.message);
  int rc = camd_graph_finalize(g, NULL, &nt->m, &err);
  CHECK_MSG(!rc, "%s", err.message);
  return rc;
}

static void free_net(net *nt) {
  camd_model_release(nt->m);
  for (int i = 0; i < NSPECS; i++) {
    free(nt->w[i]);
    free(nt->b[i]);
  }
}

/* out[M, OH, OW] = conv_i(in[C, H, W]) in double, for one item. */
static void ref_conv(const net *nt, int i, const double *in, int h, int w, double *out, int *oh,
                     int *ow) {
  const conv_spec *s = &specs[i];
  *oh = out_size(h, s->k, s->stride, s->dil, s->pt, s->pb);
  *ow = out_size(w, s->k, s->stride, s->dil, s->pl, s->pr);
  const int cg = s->c / s->group, mg = s->m / s->group;
  for (int m = 0; m < s->m; m++) {
    const int g = m / mg;
    for (int oy = 0; oy < *oh; oy++)
      for (int ox = 0; ox < *ow; ox++) {
        double acc = nt->b[i] ? nt->b[i][m] : 0.0;
        for (int c = 0; c < cg; c++)
          for (int ky = 0; ky < s->k; ky++)
            for (int kx = 0; kx < s->k; kx++) {
              const int iy = oy * s->stride - s->pt + ky * s->dil;
              const int ix = ox * s->stride - s->pl + kx * s->dil;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              acc += (double)nt->w[i][((m * cg + c) * s->k + ky) * s->k + kx] *
                     in[((g * cg + c) * h + iy) * w + ix];
            }
        out[(m * *oh + oy) * *ow + ox] = acc;
      }
  }
}

/* Reference r and y of one item. */
static void reference(const net *nt, const float *x, double *r_out, size_t *r_n, double *y_out,
                      size_t *y_n) {
  enum { BIG = 64 * H0 * W0 };
  static double in[BIG], a[BIG], b[BIG], c[BIG], d[BIG], e[BIG];
  for (int i = 0; i < C0 * H0 * W0; i++) in[i] = x[i];
  int h, w, h2, w2;
  ref_conv(nt, 0, in, H0, W0, a, &h, &w);
  for (int i = 0; i < 32 * h * w; i++) a[i] = a[i] > 0 ? a[i] : 0;
  ref_conv(nt, 1, a, h, w, b, &h2, &w2);
  for (int i = 0; i < 32 * h2 * w2; i++) b[i] = b[i] > 0 ? b[i] : 0;
  ref_conv(nt, 2, b, h2, w2, c, &h, &w);
  ref_conv(nt, 3, b, h2, w2, d, &h, &w);
  *r_n = (size_t)64 * h * w;
  for (size_t i = 0; i < *r_n; i++) {
    const double s = c[i] + d[i];
    r_out[i] = s > 0 ? s : 0;
  }
  ref_conv(nt, 4, r_out, h, w, e, &h2, &w2);
  for (int i = 0; i < 64 * h2 * w2; i++) e[i] = e[i] < 0 ? 0 : e[i] > 6 ? 6 : e[i];
  ref_conv(nt, 5, e, h2, w2, y_out, &h, &w);
  *y_n = (size_t)16 * h * w;
}

static bool expect_onednn(void) {
#ifdef CAMD_TEST_ONEDNN
  const char *env = getenv("CAMD_ONEDNN"), *cpu = getenv("CAMD_CPU");
  __builtin_cpu_init();
  return !(env && !strcmp(env, "0")) && !(cpu && !strcmp(cpu, "generic")) &&
         __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

static double max_rel_err(const float *got, const double *ref, size_t n) {
  double mx = 1.0, err = 0.0;
  for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(ref[i]));
  for (size_t i = 0; i < n; i++) err = fmax(err, fabs((double)got[i] - ref[i]));
  return err / mx;
}

/* Forward of batch `batch` at `threads`; copies y (and r when keep_r) out. Returns the number of
 * oneDNN convolutions the forward ran, or -1. */
static int run(const net *nt, const float *x, int batch, int threads, bool keep_r, float *y,
               float *r) {
  camd_error err = {0};
  camd_session *s = NULL;
  if (camd_session_create(nt->m, MAXB, &s, &err) || camd_session_set_threads(s, threads, &err)) {
    CHECK_MSG(0, "%s", err.message);
    camd_session_destroy(s);
    return -1;
  }
  camd_forward_opts o;
  camd_forward_opts_init(&o);
  int keep[1] = {nt->r_id};
  if (keep_r) o.retain = keep, o.n_retain = 1;
  int n = -1;
  if (!camd_session_forward(s, batch, x, &o, &err)) {
    camd_shape ys, rs;
    const float *yv = camd_session_value(s, nt->y_id, &ys);
    memcpy(y, yv, camd_shape_count(&ys) * sizeof(float));
    if (keep_r) {
      const float *rv = camd_session_value(s, nt->r_id, &rs);
      CHECK(rv != NULL);
      if (rv) memcpy(r, rv, camd_shape_count(&rs) * sizeof(float));
    }
    n = camd_session_onednn_convs(s);
  } else {
    CHECK_MSG(0, "%s", err.message);
  }
  camd_session_destroy(s);
  return n;
}

static void test_against_reference(void) {
  net nt;
  if (build(&nt)) return;
  enum { XN = C0 * H0 * W0, RN = 64 * 6 * 5, YN = 16 * 6 * 5 };
  float x[MAXB * XN], y[MAXB * YN], r[MAXB * RN];
  camd_rng rng;
  camd_rng_seed(&rng, 5);
  rand_fill(&rng, x, MAXB * XN, 1.0);
  for (int keep = 0; keep < 2; keep++) {
    const int n = run(&nt, x, MAXB, 1, keep, y, r);
    printf("kept r: %d, convolutions through oneDNN: %d\n", keep, n);
    /* Kept r is NCHW: conv_c / conv_d write it through a reorder, conv_e reads it through one. */
    CHECK_EQ_INT(n, expect_onednn() ? 6 : 0);
    double worst_y = 0, worst_r = 0;
    for (int b = 0; b < MAXB; b++) {
      static double rr[RN], yr[YN];
      size_t rn, yn;
      reference(&nt, x + b * XN, rr, &rn, yr, &yn);
      CHECK_EQ_INT(rn, RN);
      CHECK_EQ_INT(yn, YN);
      const double ey = max_rel_err(y + b * YN, yr, YN);
      worst_y = ey > worst_y ? ey : worst_y;
      CHECK_MSG(ey <= 1e-5, "item %d: y differs from the reference by %g (relative)", b, ey);
      if (keep) {
        const double er = max_rel_err(r + b * RN, rr, RN);
        worst_r = er > worst_r ? er : worst_r;
        CHECK_MSG(er <= 1e-5, "item %d: kept r differs by %g (relative)", b, er);
      }
    }
    printf("kept r: %d, max relative error vs the double reference: y %.3g", keep, worst_y);
    if (keep) printf(", r %.3g", worst_r);
    printf(" (bound 1e-5)\n");
  }
  free_net(&nt);
}

/* Same request, same answer: an item alone or in a batch, 1 or 2 threads: the same bits. */
static void test_batch_and_threads_bit_identical(void) {
  net nt;
  if (build(&nt)) return;
  enum { XN = C0 * H0 * W0, RN = 64 * 6 * 5, YN = 16 * 6 * 5 };
  float x[MAXB * XN], y3[MAXB * YN], y1[YN], y2t[MAXB * YN], r[MAXB * RN];
  camd_rng rng;
  camd_rng_seed(&rng, 9);
  rand_fill(&rng, x, MAXB * XN, 1.0);
  run(&nt, x, MAXB, 1, false, y3, r);
  for (int b = 0; b < MAXB; b++) {
    run(&nt, x + b * XN, 1, 1, false, y1, r);
    CHECK_MSG(!memcmp(y1, y3 + b * YN, sizeof(y1)), "item %d alone differs from batched", b);
  }
  /* oneDNN at any thread count (output-channel slices fixed by the shapes, on the session's
   * threads): 2 and 3 threads give the one-thread bits, batched and alone. */
  float y3t[MAXB * YN];
  CHECK_EQ_INT(run(&nt, x, MAXB, 2, false, y2t, r), expect_onednn() ? 6 : 0);
  CHECK_MSG(!memcmp(y2t, y3, sizeof(y3)), "2 threads differ from 1 thread");
  run(&nt, x, MAXB, 3, false, y3t, r);
  CHECK_MSG(!memcmp(y3t, y3, sizeof(y3)), "3 threads differ from 1 thread");
  run(&nt, x + XN, 1, 2, false, y1, r);
  CHECK_MSG(!memcmp(y1, y3 + YN, sizeof(y1)), "item 1 alone at 2 threads differs");
  free_net(&nt);
}

/* The Winograd network (3x3 stride-1 convolutions on a 16x16 map: oneDNN's Winograd kernels on
 * AVX-512):  wa = Relu(Conv 64->64 (x)),  y = Relu(Add(Conv 64->64, no bias (wa), wa)). */
enum { WC = 64, WH = 16, WW = 16 };

static int build_winograd(net *nt) {
  memset(nt, 0, sizeof(*nt));
  camd_error err = {0};
  camd_rng r;
  camd_rng_seed(&r, 31);
  camd_graph *g = camd_graph_new();
  camd_shape xs = {4, {1, WC, WH, WW}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  nt->r_id = add_unary(g, "Relu", add_conv(g, nt, 6, x, "conv_wa", &r, &err), "wa", &err);
  int b = add_conv(g, nt, 7, nt->r_id, "conv_wb", &r, &err);
  const char *sn[1] = {"wsum"};
  int si[2] = {b, nt->r_id}, sum = -1;
  CHECK(!camd_graph_add_node(g, "Add", "wadd", 13, 2, si, 1, sn, NULL, 0, &sum, &err));
  nt->y_id = add_unary(g, "Relu", sum, "wy", &err);
  CHECK_MSG(nt->y_id >= 0 && !camd_graph_mark_output(g, nt->y_id, &err), "%s", err.message);
  int rc = camd_graph_finalize(g, NULL, &nt->m, &err);
  CHECK_MSG(!rc, "%s", err.message);
  return rc;
}

/* oneDNN's Winograd kernels: AVX-512 (avx512_core) only, on unless CAMD_WINOGRAD=0. */
static bool expect_winograd(void) {
  const char *env = getenv("CAMD_WINOGRAD"), *cpu = getenv("CAMD_CPU");
  return expect_onednn() && !(env && !strcmp(env, "0")) && !(cpu && !strcmp(cpu, "avx2")) &&
         __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

/* Forward of the Winograd network; returns the Winograd convolutions the forward ran. */
static int run_winograd(const net *nt, const float *x, int batch, int threads, float *y) {
  camd_error err = {0};
  camd_session *s = NULL;
  int n = -1;
  if (camd_session_create(nt->m, MAXB, &s, &err) || camd_session_set_threads(s, threads, &err) ||
      camd_session_forward(s, batch, x, NULL, &err)) {
    CHECK_MSG(0, "%s", err.message);
  } else {
    camd_shape ys;
    const float *yv = camd_session_value(s, nt->y_id, &ys);
    memcpy(y, yv, camd_shape_count(&ys) * sizeof(float));
    n = camd_session_winograd_convs(s);
  }
  camd_session_destroy(s);
  return n;
}

/* Winograd convolutions (residual Add fused as a sum post-op) against the double-precision
 * reference, and the same bits alone or batched, at 1, 2 and 3 threads. */
static void test_winograd(void) {
  net nt;
  if (build_winograd(&nt)) return;
  enum { N = WC * WH * WW };
  static float x[MAXB * N], y[MAXB * N], y1[N], yt[MAXB * N];
  static double a[N], b[N];
  camd_rng rng;
  camd_rng_seed(&rng, 17);
  rand_fill(&rng, x, MAXB * N, 1.0);
  const int n = run_winograd(&nt, x, MAXB, 1, y);
  printf("Winograd convolutions: %d\n", n);
  CHECK_EQ_INT(n, expect_winograd() ? 2 : 0);
  double worst = 0;
  for (int item = 0; item < MAXB; item++) {
    static double in[N];
    for (int i = 0; i < N; i++) in[i] = x[item * N + i];
    int h, w;
    ref_conv(&nt, 6, in, WH, WW, a, &h, &w);
    for (int i = 0; i < N; i++) a[i] = a[i] > 0 ? a[i] : 0;
    ref_conv(&nt, 7, a, WH, WW, b, &h, &w);
    for (int i = 0; i < N; i++) b[i] = b[i] + a[i] > 0 ? b[i] + a[i] : 0;
    const double e = max_rel_err(y + item * N, b, N);
    worst = e > worst ? e : worst;
    CHECK_MSG(e <= 1e-5, "item %d: y differs from the reference by %g (relative)", item, e);
    run_winograd(&nt, x + item * N, 1, 1, y1);
    CHECK_MSG(!memcmp(y1, y + item * N, sizeof(y1)), "item %d alone differs from batched", item);
  }
  printf("Winograd: max relative error vs the double reference %.3g (bound 1e-5)\n", worst);
  for (int t = 2; t <= 3; t++) {
    run_winograd(&nt, x, MAXB, t, yt);
    CHECK_MSG(!memcmp(yt, y, MAXB * N * sizeof(float)), "%d threads differ from 1 thread", t);
  }
  free_net(&nt);
}

/* The weights the oneDNN pass keeps only in its blocked format come back (rebuilt from it)
 * exactly as the graph was given them, after a forward and before. */
static void test_weights_rebuilt(void) {
  net nt;
  if (build(&nt)) return;
  for (int i = 0; i < 6; i++) {
    const conv_spec *s = &specs[i];
    const size_t nw = (size_t)s->m * (s->c / s->group) * s->k * s->k;
    const float *w = camd_model_constant_data(nt.m, nt.w_id[i]);
    CHECK(w != NULL);
    if (w) CHECK_MSG(!memcmp(w, nt.w[i], nw * sizeof(float)), "conv %d: weights differ", i);
  }
  free_net(&nt);
}

/* The padded-channels network: channel counts that are not whole blocks of 16 (MobileNetV2's
 * 24, EfficientNet's 40) run through oneDNN on zero-padded blocked copies (dnnl.c,
 * src_padded and the padded output slice):
 *   pa = Relu(Conv 24->40, 1x1 (x)),  pb = Clip(Conv 40->64, 3x3, pads 1 (pa), 0, 6),
 *   y = Conv 64->24, 1x1 (pb). */
enum { PC = 24, PH = 9, PW = 7 };

static int build_padded(net *nt) {
  memset(nt, 0, sizeof(*nt));
  camd_error err = {0};
  camd_rng r;
  camd_rng_seed(&r, 43);
  camd_graph *g = camd_graph_new();
  camd_shape xs = {4, {1, PC, PH, PW}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  nt->r_id = add_unary(g, "Relu", add_conv(g, nt, 8, x, "conv_pa", &r, &err), "pa", &err);
  int pb = add_unary(g, "Clip", add_conv(g, nt, 9, nt->r_id, "conv_pb", &r, &err), "pb", &err);
  nt->y_id = add_conv(g, nt, 10, pb, "py", &r, &err);
  CHECK_MSG(nt->y_id >= 0 && !camd_graph_mark_output(g, nt->y_id, &err), "%s", err.message);
  int rc = camd_graph_finalize(g, NULL, &nt->m, &err);
  CHECK_MSG(!rc, "%s", err.message);
  return rc;
}

/* Against the double-precision reference (and the kept pa, NCHW), every convolution through
 * oneDNN; the same bits alone or batched and at 1, 2 and 3 threads; the NCHW weights intact. */
static void test_padded_channels(void) {
  net nt;
  if (build_padded(&nt)) return;
  enum { XN = PC * PH * PW, AN = 40 * PH * PW, YN = 24 * PH * PW };
  static float x[MAXB * XN], y[MAXB * YN], y1[YN], yt[MAXB * YN], ka[MAXB * AN];
  static double a[AN], b[64 * PH * PW], yr[YN];
  camd_rng rng;
  camd_rng_seed(&rng, 23);
  rand_fill(&rng, x, MAXB * XN, 1.0);
  const int n = run(&nt, x, MAXB, 1, true, y, ka);
  printf("padded-channel convolutions through oneDNN: %d\n", n);
  CHECK_EQ_INT(n, expect_onednn() ? 3 : 0);
  double worst = 0;
  for (int item = 0; item < MAXB; item++) {
    static double in[XN];
    for (int i = 0; i < XN; i++) in[i] = x[item * XN + i];
    int h, w;
    ref_conv(&nt, 8, in, PH, PW, a, &h, &w);
    for (int i = 0; i < AN; i++) a[i] = a[i] > 0 ? a[i] : 0;
    ref_conv(&nt, 9, a, PH, PW, b, &h, &w);
    for (int i = 0; i < 64 * PH * PW; i++) b[i] = b[i] < 0 ? 0 : b[i] > 6 ? 6 : b[i];
    ref_conv(&nt, 10, b, PH, PW, yr, &h, &w);
    const double e = max_rel_err(y + item * YN, yr, YN), ea = max_rel_err(ka + item * AN, a, AN);
    worst = fmax(worst, fmax(e, ea));
    CHECK_MSG(e <= 1e-5, "item %d: y differs from the reference by %g (relative)", item, e);
    CHECK_MSG(ea <= 1e-5, "item %d: kept pa differs by %g (relative)", item, ea);
    run(&nt, x + item * XN, 1, 1, false, y1, NULL);
    CHECK_MSG(!memcmp(y1, y + item * YN, sizeof(y1)), "item %d alone differs from batched", item);
  }
  printf("largest relative error %.3g (bound 1e-5)\n", worst);
  for (int t = 2; t <= 3; t++) {
    run(&nt, x, MAXB, t, false, yt, NULL);
    CHECK_MSG(!memcmp(yt, y, sizeof(yt)), "%d threads differ from 1 thread", t);
  }
  for (int i = 8; i < 11; i++) {
    const conv_spec *s = &specs[i];
    const size_t nw = (size_t)s->m * s->c * s->k * s->k;
    const float *w = camd_model_constant_data(nt.m, nt.w_id[i]);
    CHECK(w != NULL);
    if (w) CHECK_MSG(!memcmp(w, nt.w[i], nw * sizeof(float)), "conv %d: weights differ", i);
  }
  free_net(&nt);
}

/* The residual-chain network: residual Adds fused into their convolutions, whose addends
 * may die there (then the sum is added in place into the addend's buffer: session.c
 * plan_fwd_layout) or not:
 *   a  = Relu(Conv 1x1 (x))
 *   s1 = Relu(Add(Conv 1x1 (Relu(Conv 3x3 (a))), a))     a is read again at the end: no reuse
 *   s2 = Relu(Add(Conv 1x1 (Relu(Conv 3x3 (s1))), s1))   in s1's buffer
 *   s3 = Relu(Add(Conv 1x1 (Relu(Conv 3x3 (s2))), s2))   in s2's, i.e. s1's buffer (a chain)
 *   s4 = Relu(Add(Conv 1x1 (s3), s3))                     the convolution reads s3: no reuse
 *   y  = Conv 128->16, 1x1 (Add(s4, a))   (128 channels: the 3x3 run channels-last, dnnl.c)
 * Kept s1 (retained) must come back intact. */
enum { CC = 128, CH = 7, CW = 6 }; /* 3x3 with 128 outputs: channels-last (dnnl.c) */

static int build_chain(net *nt) {
  memset(nt, 0, sizeof(*nt));
  camd_error err = {0};
  camd_rng r;
  camd_rng_seed(&r, 57);
  camd_graph *g = camd_graph_new();
  camd_shape xs = {4, {1, CC, CH, CW}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  int a = add_unary(g, "Relu", add_conv(g, nt, 11, x, "conv_ca", &r, &err), "ca", &err);
  int prev = a;
  for (int blk = 0; blk < 4; blk++) {
    char nm[5][16];
    snprintf(nm[0], sizeof nm[0], "cmid%d", blk), snprintf(nm[1], sizeof nm[1], "cmidr%d", blk);
    snprintf(nm[2], sizeof nm[2], "cout%d", blk), snprintf(nm[3], sizeof nm[3], "csum%d", blk);
    snprintf(nm[4], sizeof nm[4], "cs%d", blk + 1);
    int mid = blk < 3 ? add_unary(g, "Relu", add_conv(g, nt, 12 + 2 * blk, prev, nm[0], &r, &err),
                                  nm[1], &err)
                      : prev;
    int o = add_conv(g, nt, blk < 3 ? 13 + 2 * blk : 18, mid, nm[2], &r, &err);
    const char *sn[1] = {nm[3]};
    int si[2] = {o, prev}, sum = -1;
    CHECK(!camd_graph_add_node(g, "Add", nm[3], 13, 2, si, 1, sn, NULL, 0, &sum, &err));
    prev = add_unary(g, "Relu", sum, nm[4], &err);
    if (!blk) nt->r_id = prev;
  }
  const char *fn[1] = {"cfinal"};
  int fi[2] = {prev, a}, fin = -1;
  CHECK(!camd_graph_add_node(g, "Add", "cfinal", 13, 2, fi, 1, fn, NULL, 0, &fin, &err));
  nt->y_id = add_conv(g, nt, 19, fin, "cy", &r, &err);
  CHECK_MSG(nt->y_id >= 0 && !camd_graph_mark_output(g, nt->y_id, &err), "%s", err.message);
  int rc = camd_graph_finalize(g, NULL, &nt->m, &err);
  CHECK_MSG(!rc, "%s", err.message);
  return rc;
}

/* Reference s1 and y of one item, in double. */
static void chain_reference(const net *nt, const float *x, double *s1, double *y) {
  enum { N = CC * CH * CW };
  static double in[N], a[N], t[N], u[N], s[3][N];
  for (int i = 0; i < N; i++) in[i] = x[i];
  int h, w;
  ref_conv(nt, 11, in, CH, CW, a, &h, &w);
  for (int i = 0; i < N; i++) a[i] = a[i] > 0 ? a[i] : 0;
  const double *prev = a;
  for (int blk = 0; blk < 4; blk++) {
    double *out = blk ? s[blk % 3] : s1;
    if (blk < 3) {
      ref_conv(nt, 12 + 2 * blk, prev, CH, CW, t, &h, &w);
      for (int i = 0; i < N; i++) t[i] = t[i] > 0 ? t[i] : 0;
      ref_conv(nt, 13 + 2 * blk, t, CH, CW, u, &h, &w);
    } else {
      ref_conv(nt, 18, prev, CH, CW, u, &h, &w);
    }
    for (int i = 0; i < N; i++) out[i] = u[i] + prev[i] > 0 ? u[i] + prev[i] : 0;
    prev = out;
  }
  for (int i = 0; i < N; i++) t[i] = prev[i] + a[i];
  ref_conv(nt, 19, t, CH, CW, y, &h, &w);
}

/* Residual sums added in place into their addends' buffers where those die, not where they
 * are read later or by the convolution itself: against the double reference, with and without
 * s1 kept, the same bits alone or batched and at 1, 2 and 3 threads, every convolution through
 * oneDNN. */
static void test_residual_chain_in_place(void) {
  net nt;
  if (build_chain(&nt)) return;
  enum { XN = CC * CH * CW, YN = 16 * CH * CW };
  static float x[MAXB * XN], y[MAXB * YN], yk[MAXB * YN], ks1[MAXB * XN], y1[YN], yt[MAXB * YN];
  static double s1r[XN], yr[YN];
  camd_rng rng;
  camd_rng_seed(&rng, 61);
  rand_fill(&rng, x, MAXB * XN, 1.0);
  const int n = run(&nt, x, MAXB, 1, false, y, NULL);
  printf("residual-chain convolutions through oneDNN: %d\n", n);
  CHECK_EQ_INT(n, expect_onednn() ? 9 : 0);
  CHECK_EQ_INT(run(&nt, x, MAXB, 1, true, yk, ks1), expect_onednn() ? 9 : 0);
  double worst = 0;
  for (int item = 0; item < MAXB; item++) {
    chain_reference(&nt, x + item * XN, s1r, yr);
    const double e = max_rel_err(y + item * YN, yr, YN);
    const double ek = max_rel_err(yk + item * YN, yr, YN);
    const double es = max_rel_err(ks1 + item * XN, s1r, XN);
    worst = fmax(worst, fmax(e, fmax(ek, es)));
    CHECK_MSG(e <= 1e-5, "item %d: y differs from the reference by %g (relative)", item, e);
    CHECK_MSG(ek <= 1e-5, "item %d: y with s1 kept differs by %g (relative)", item, ek);
    CHECK_MSG(es <= 1e-5, "item %d: kept s1 differs by %g (relative)", item, es);
    run(&nt, x + item * XN, 1, 1, false, y1, NULL);
    CHECK_MSG(!memcmp(y1, y + item * YN, sizeof(y1)), "item %d alone differs from batched", item);
  }
  printf("largest relative error %.3g (bound 1e-5)\n", worst);
  CHECK_MSG(!memcmp(yk, y, sizeof(y)), "y with s1 kept differs from y without");
  for (int t = 2; t <= 3; t++) {
    run(&nt, x, MAXB, t, false, yt, NULL);
    CHECK_MSG(!memcmp(yt, y, sizeof(yt)), "%d threads differ from 1 thread", t);
  }
  free_net(&nt);
}

/* The max-pooling network: MaxPool on channel-blocked data (op_pool.c; the layout pass blocks
 * its input and output together):
 *   a = Relu(Conv 3x3, pads 1 (x)),  p1 = MaxPool(a) kernel 3, stride 2, pads 1 (ResNet's),
 *   p2 = MaxPool(p1) kernel 2, stride 1, dilation 2, pads 1,0,0,1,
 *   y = Conv 32->128, 3x3, stride 2, pads 1 (p2) (channels-last, written to NCHW).
 * With p2 kept (then p1 and p2 are NCHW, the plain kernel) the bits must be the same. */
enum { MC = 32, MH = 40, MW = 33 }; /* the first pool: two row bands of the blocked kernel */
static const int64_t mp_k[2][2] = {{3, 3}, {2, 2}}, mp_s[2][2] = {{2, 2}, {1, 1}},
                     mp_d[2][2] = {{1, 1}, {2, 2}}, mp_p[2][4] = {{1, 1, 1, 1}, {1, 0, 0, 1}};

static int build_maxpool(net *nt) {
  memset(nt, 0, sizeof(*nt));
  camd_error err = {0};
  camd_rng r;
  camd_rng_seed(&r, 71);
  camd_graph *g = camd_graph_new();
  camd_shape xs = {4, {1, MC, MH, MW}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  int v = add_unary(g, "Relu", add_conv(g, nt, 20, x, "conv_ma", &r, &err), "ma", &err);
  for (int i = 0; i < 2; i++) {
    camd_attr at[4] = {{.name = "kernel_shape", .type = CAMD_ATTR_INTS, .ints = mp_k[i], .n = 2},
                       {.name = "strides", .type = CAMD_ATTR_INTS, .ints = mp_s[i], .n = 2},
                       {.name = "dilations", .type = CAMD_ATTR_INTS, .ints = mp_d[i], .n = 2},
                       {.name = "pads", .type = CAMD_ATTR_INTS, .ints = mp_p[i], .n = 4}};
    const char *outs[1] = {i ? "mp2" : "mp1"};
    int in[1] = {v};
    CHECK(!camd_graph_add_node(g, "MaxPool", outs[0], 12, 1, in, 1, outs, at, 4, &v, &err));
  }
  nt->r_id = v;
  nt->y_id = add_conv(g, nt, 21, v, "my", &r, &err);
  CHECK_MSG(nt->y_id >= 0 && !camd_graph_mark_output(g, nt->y_id, &err), "%s", err.message);
  int rc = camd_graph_finalize(g, NULL, &nt->m, &err);
  CHECK_MSG(!rc, "%s", err.message);
  return rc;
}

/* out = MaxPool i (in [MC, h, w]) in double, taps outside the input skipped. */
static void ref_maxpool(int i, const double *in, int h, int w, double *out, int *oh, int *ow) {
  const int kh = (int)mp_k[i][0], kw = (int)mp_k[i][1], s = (int)mp_s[i][0], d = (int)mp_d[i][0];
  const int pt = (int)mp_p[i][0], pl = (int)mp_p[i][1];
  *oh = out_size(h, kh, s, d, pt, (int)mp_p[i][2]);
  *ow = out_size(w, kw, s, d, pl, (int)mp_p[i][3]);
  for (int c = 0; c < MC; c++)
    for (int y = 0; y < *oh; y++)
      for (int x = 0; x < *ow; x++) {
        double best = -INFINITY;
        for (int ky = 0; ky < kh; ky++)
          for (int kx = 0; kx < kw; kx++) {
            const int iy = y * s - pt + ky * d, ix = x * s - pl + kx * d;
            if (iy >= 0 && iy < h && ix >= 0 && ix < w)
              best = fmax(best, in[(c * h + iy) * w + ix]);
          }
        out[(c * *oh + y) * *ow + x] = best;
      }
}

/* MaxPool on blocked data against the double reference; the same bits as the NCHW kernel (p2
 * kept), alone or batched, at 1, 2 and 3 threads. */
static void test_maxpool_blocked(void) {
  net nt;
  if (build_maxpool(&nt)) return;
  enum { XN = MC * MH * MW, PN = MC * 19 * 16, YN = 128 * 10 * 8 };
  static float x[MAXB * XN], y[MAXB * YN], yk[MAXB * YN], kp[MAXB * PN], y1[YN], yt[MAXB * YN];
  static double in[XN], a[XN], p1[XN], p2[XN], yr[YN];
  camd_rng rng;
  camd_rng_seed(&rng, 73);
  rand_fill(&rng, x, MAXB * XN, 1.0);
  CHECK_EQ_INT(run(&nt, x, MAXB, 1, false, y, NULL), expect_onednn() ? 2 : 0);
  run(&nt, x, MAXB, 1, true, yk, kp);
  double worst = 0;
  for (int item = 0; item < MAXB; item++) {
    for (int i = 0; i < XN; i++) in[i] = x[item * XN + i];
    int h, w, h1, w1, h2, w2;
    ref_conv(&nt, 20, in, MH, MW, a, &h, &w);
    for (int i = 0; i < XN; i++) a[i] = a[i] > 0 ? a[i] : 0;
    ref_maxpool(0, a, h, w, p1, &h1, &w1);
    ref_maxpool(1, p1, h1, w1, p2, &h2, &w2);
    CHECK_EQ_INT(MC * h2 * w2, PN);
    ref_conv(&nt, 21, p2, h2, w2, yr, &h, &w);
    const double e = max_rel_err(y + item * YN, yr, YN), ep = max_rel_err(kp + item * PN, p2, PN);
    worst = fmax(worst, fmax(e, ep));
    CHECK_MSG(e <= 1e-5, "item %d: y differs from the reference by %g (relative)", item, e);
    CHECK_MSG(ep <= 1e-5, "item %d: kept p2 differs by %g (relative)", item, ep);
    run(&nt, x + item * XN, 1, 1, false, y1, NULL);
    CHECK_MSG(!memcmp(y1, y + item * YN, sizeof(y1)), "item %d alone differs from batched", item);
  }
  printf("max pooling: largest relative error %.3g (bound 1e-5)\n", worst);
  CHECK_MSG(!memcmp(yk, y, sizeof(y)), "blocked max pooling differs from the NCHW kernel");
  for (int t = 2; t <= 3; t++) {
    run(&nt, x, MAXB, t, false, yt, NULL);
    CHECK_MSG(!memcmp(yt, y, sizeof(yt)), "%d threads differ from 1 thread", t);
  }
  free_net(&nt);
}

/* The global-average-pooling network: GlobalAveragePool on channel-blocked data (op_pool.c
 * gap_planes, whole blocks at a time):  a = Relu(Conv 3 -> 48, 3x3, pads 1 (x)),
 * y = GlobalAveragePool(a). A plane of 41 x 33 (not a multiple of the 8 chains) and 48
 * channels, so the pool's pieces of ~16384 input elements (12 planes) start and end inside
 * channel blocks. With a kept (then NCHW, the plain loop) the bits must be the same. */
enum { GH = 41, GW = 33, GC = 48 };

static int build_gap(net *nt) {
  memset(nt, 0, sizeof(*nt));
  camd_error err = {0};
  camd_rng r;
  camd_rng_seed(&r, 83);
  camd_graph *g = camd_graph_new();
  camd_shape xs = {4, {1, 3, GH, GW}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  nt->r_id = add_unary(g, "Relu", add_conv(g, nt, 22, x, "conv_ga", &r, &err), "ga", &err);
  const char *outs[1] = {"gap"};
  int in[1] = {nt->r_id};
  CHECK(!camd_graph_add_node(g, "GlobalAveragePool", "gap", 1, 1, in, 1, outs, NULL, 0, &nt->y_id,
                             &err));
  CHECK_MSG(nt->y_id >= 0 && !camd_graph_mark_output(g, nt->y_id, &err), "%s", err.message);
  int rc = camd_graph_finalize(g, NULL, &nt->m, &err);
  CHECK_MSG(!rc, "%s", err.message);
  return rc;
}

/* Blocked global average pooling against the double reference; the same bits as the NCHW
 * kernel (a kept), alone or batched, at 1, 2 and 3 threads. */
static void test_gap_blocked(void) {
  net nt;
  if (build_gap(&nt)) return;
  enum { XN = 3 * GH * GW, AN = GC * GH * GW };
  static float x[MAXB * XN], y[MAXB * GC], yk[MAXB * GC], ka[MAXB * AN], y1[GC], yt[MAXB * GC];
  static double in[XN], a[AN], yr[GC];
  camd_rng rng;
  camd_rng_seed(&rng, 89);
  rand_fill(&rng, x, MAXB * XN, 1.0);
  CHECK_EQ_INT(run(&nt, x, MAXB, 1, false, y, NULL), expect_onednn() ? 1 : 0);
  run(&nt, x, MAXB, 1, true, yk, ka);
  double worst = 0;
  for (int item = 0; item < MAXB; item++) {
    for (int i = 0; i < XN; i++) in[i] = x[item * XN + i];
    int h, w;
    ref_conv(&nt, 22, in, GH, GW, a, &h, &w);
    for (int c = 0; c < GC; c++) {
      double sum = 0;
      for (int i = 0; i < h * w; i++) sum += a[c * h * w + i] > 0 ? a[c * h * w + i] : 0;
      yr[c] = sum / (h * w);
    }
    const double e = max_rel_err(y + item * GC, yr, GC);
    worst = fmax(worst, e);
    CHECK_MSG(e <= 1e-5, "item %d: y differs from the reference by %g (relative)", item, e);
    run(&nt, x + item * XN, 1, 1, false, y1, NULL);
    CHECK_MSG(!memcmp(y1, y + item * GC, sizeof(y1)), "item %d alone differs from batched", item);
  }
  printf("global average pooling: largest relative error %.3g (bound 1e-5)\n", worst);
  CHECK_MSG(!memcmp(yk, y, sizeof(y)),
            "blocked global average pooling differs from the NCHW kernel");
  for (int t = 2; t <= 3; t++) {
    run(&nt, x, MAXB, t, false, yt, NULL);
    CHECK_MSG(!memcmp(yt, y, sizeof(yt)), "%d threads differ from 1 thread", t);
  }
  free_net(&nt);
}

/* The inverted-residual network (MobileNetV2's blocks; plan.c plan_avoid_shared gives each
 * depthwise output another buffer than the projection before it read):
 *   s0 = x, and 4 times  s_{k+1} = s_k + P(Clip(D(Clip(E(s_k)))))  (E 16 -> 64 1x1,
 *   D depthwise 3x3, P 64 -> 16 1x1; the same weights each block), y = s_4. */
enum { IC = 16, IH = 12, IW = 10, IBLOCKS = 4 };

static int build_invres(net *nt) {
  memset(nt, 0, sizeof(*nt));
  camd_error err = {0};
  camd_rng r;
  camd_rng_seed(&r, 97);
  camd_graph *g = camd_graph_new();
  camd_shape xs = {4, {1, IC, IH, IW}};
  int prev = camd_graph_add_input(g, "x", &xs, &err);
  for (int blk = 0; blk < IBLOCKS; blk++) {
    char nm[6][16];
    const char *fmt[6] = {"ie%d", "iec%d", "id%d", "idc%d", "ip%d", "is%d"};
    for (int q = 0; q < 6; q++) snprintf(nm[q], sizeof nm[q], fmt[q], blk);
    if (blk) { /* the same weights in every block: add_conv keeps the last ones per spec */
      for (int q = 23; q < 26; q++) free(nt->w[q]), free(nt->b[q]), nt->w[q] = nt->b[q] = NULL;
      camd_rng_seed(&r, 97);
    }
    int e = add_unary(g, "Clip", add_conv(g, nt, 23, prev, nm[0], &r, &err), nm[1], &err);
    int d = add_unary(g, "Clip", add_conv(g, nt, 24, e, nm[2], &r, &err), nm[3], &err);
    int o = add_conv(g, nt, 25, d, nm[4], &r, &err);
    const char *sn[1] = {nm[5]};
    int si[2] = {o, prev}, sum = -1;
    CHECK(!camd_graph_add_node(g, "Add", nm[5], 13, 2, si, 1, sn, NULL, 0, &sum, &err));
    prev = sum;
  }
  nt->r_id = -1;
  nt->y_id = prev;
  CHECK_MSG(nt->y_id >= 0 && !camd_graph_mark_output(g, nt->y_id, &err), "%s", err.message);
  int rc = camd_graph_finalize(g, NULL, &nt->m, &err);
  CHECK_MSG(!rc, "%s", err.message);
  return rc;
}

static double clip6(double v) {
  return v < 0 ? 0 : v > 6 ? 6 : v;
}

/* Inverted-residual blocks against the double reference, alone or batched and at 1, 2 and 3
 * threads the same bits, every convolution through oneDNN. */
static void test_inverted_residual(void) {
  net nt;
  if (build_invres(&nt)) return;
  enum { XN = IC * IH * IW, EN = 64 * IH * IW };
  static float x[MAXB * XN], y[MAXB * XN], y1[XN], yt[MAXB * XN];
  static double s[XN], e[EN], d[EN], o[XN];
  camd_rng rng;
  camd_rng_seed(&rng, 101);
  rand_fill(&rng, x, MAXB * XN, 2.0);
  CHECK_EQ_INT(run(&nt, x, MAXB, 1, false, y, NULL), expect_onednn() ? 3 * IBLOCKS : 0);
  double worst = 0;
  for (int item = 0; item < MAXB; item++) {
    for (int i = 0; i < XN; i++) s[i] = x[item * XN + i];
    for (int blk = 0; blk < IBLOCKS; blk++) {
      int h, w;
      ref_conv(&nt, 23, s, IH, IW, e, &h, &w);
      for (int i = 0; i < EN; i++) e[i] = clip6(e[i]);
      ref_conv(&nt, 24, e, IH, IW, d, &h, &w);
      for (int i = 0; i < EN; i++) d[i] = clip6(d[i]);
      ref_conv(&nt, 25, d, IH, IW, o, &h, &w);
      for (int i = 0; i < XN; i++) s[i] += o[i];
    }
    const double err = max_rel_err(y + item * XN, s, XN);
    worst = fmax(worst, err);
    CHECK_MSG(err <= 1e-5, "item %d: y differs from the reference by %g (relative)", item, err);
    run(&nt, x + item * XN, 1, 1, false, y1, NULL);
    CHECK_MSG(!memcmp(y1, y + item * XN, sizeof(y1)), "item %d alone differs from batched", item);
  }
  printf("inverted residual: largest relative error %.3g (bound 1e-5)\n", worst);
  for (int t = 2; t <= 3; t++) {
    run(&nt, x, MAXB, t, false, yt, NULL);
    CHECK_MSG(!memcmp(yt, y, sizeof(yt)), "%d threads differ from 1 thread", t);
  }
  free_net(&nt);
}

CAMD_TEST_MAIN({"against_reference", test_against_reference},
               {"batch_and_threads_bit_identical", test_batch_and_threads_bit_identical},
               {"weights_rebuilt", test_weights_rebuilt}, {"winograd", test_winograd},
               {"padded_channels", test_padded_channels},
               {"residual_chain_in_place", test_residual_chain_in_place},
               {"maxpool_blocked", test_maxpool_blocked}, {"gap_blocked", test_gap_blocked},
               {"inverted_residual", test_inverted_residual})
