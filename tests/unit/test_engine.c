/* Engine executor tests: plans, kept values, several backward targets, shared-input runs,
 * batch handling and target errors, against double-precision references written here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "camd/engine.h"
#include "camd/graph.h"
#include "testlib.h"

enum { C = 3, H = 4, W = 5, K = 4, B = 3 };

/* Graph: x[B,C,H,W] → Relu → a; b = a * a; c = b + x; g = GlobalAveragePool(c); f = Flatten(g);
 * logits = Gemm(f, Wt[K,C], transB=1) + bias. */
typedef struct fixture {
  camd_model *m;
  int x, a, b, c, logits;
  float wt[K * C], bias[K];
} fixture;

static void build(fixture *f) {
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_rng r;
  camd_rng_seed(&r, 99);
  for (int i = 0; i < K * C; i++) f->wt[i] = (float)(camd_rng_uniform(&r) * 2 - 1);
  for (int i = 0; i < K; i++) f->bias[i] = (float)(camd_rng_uniform(&r) - 0.5);
  camd_shape xs = {4, {1, C, H, W}};
  f->x = camd_graph_add_input(g, "x", &xs, &err);
  CHECK(f->x >= 0);
  camd_shape ws = {2, {K, C}}, bs = {1, {K}};
  float *wd = malloc(sizeof(f->wt)), *bd = malloc(sizeof(f->bias));
  memcpy(wd, f->wt, sizeof(f->wt));
  memcpy(bd, f->bias, sizeof(f->bias));
  int wid = camd_graph_add_constant(g, "W", CAMD_FLOAT32, &ws, wd, &err);
  int bid = camd_graph_add_constant(g, "bias", CAMD_FLOAT32, &bs, bd, &err);
  const char *na[] = {"a"}, *nb[] = {"b"}, *nc[] = {"c"}, *ng[] = {"g"}, *nf[] = {"f"},
             *nl[] = {"logits"};
  int in1[] = {f->x};
  CHECK(!camd_graph_add_node(g, "Relu", "relu", 13, 1, in1, 1, na, NULL, 0, &f->a, &err));
  int in2[] = {f->a, f->a};
  CHECK(!camd_graph_add_node(g, "Mul", "mul", 13, 2, in2, 1, nb, NULL, 0, &f->b, &err));
  int in3[] = {f->b, f->x};
  CHECK(!camd_graph_add_node(g, "Add", "add", 13, 2, in3, 1, nc, NULL, 0, &f->c, &err));
  int gid, fid;
  int in4[] = {f->c};
  CHECK(
      !camd_graph_add_node(g, "GlobalAveragePool", "gap", 13, 1, in4, 1, ng, NULL, 0, &gid, &err));
  int in5[] = {gid};
  CHECK(!camd_graph_add_node(g, "Flatten", "flatten", 13, 1, in5, 1, nf, NULL, 0, &fid, &err));
  camd_attr tb = {.name = "transB", .type = CAMD_ATTR_INT, .i = 1};
  int in6[] = {fid, wid, bid};
  CHECK(!camd_graph_add_node(g, "Gemm", "fc", 13, 3, in6, 1, nl, &tb, 1, &f->logits, &err));
  CHECK(!camd_graph_mark_output(g, f->logits, &err));
  CHECK_MSG(!camd_graph_finalize(g, NULL, &f->m, &err), "%s", err.message);
}

/* Double reference: logits of one item given x (C*H*W); optionally d logits[k] / d a. */
static void reference(const fixture *f, const double *x, double *logits, int k, double *grad_a) {
  double gap[C];
  for (int ch = 0; ch < C; ch++) {
    double s = 0;
    for (int i = 0; i < H * W; i++) {
      double v = x[ch * H * W + i];
      double a = v > 0 ? v : 0;
      s += a * a + v;
    }
    gap[ch] = s / (H * W);
  }
  for (int o = 0; o < K; o++) {
    double s = f->bias[o];
    for (int ch = 0; ch < C; ch++) s += f->wt[o * C + ch] * gap[ch];
    logits[o] = s;
  }
  if (grad_a) {
    for (int ch = 0; ch < C; ch++) {
      for (int i = 0; i < H * W; i++) {
        double v = x[ch * H * W + i];
        double a = v > 0 ? v : 0;
        grad_a[ch * H * W + i] = f->wt[k * C + ch] * 2 * a / (H * W);
      }
    }
  }
}

static void random_input(float *x, size_t n, uint64_t seed) {
  camd_rng r;
  camd_rng_seed(&r, seed);
  for (size_t i = 0; i < n; i++) x[i] = (float)(camd_rng_uniform(&r) * 4 - 2);
}

static void test_forward_and_kept_values(void) {
  fixture f;
  build(&f);
  camd_session *s = NULL;
  camd_error err = {0};
  CHECK(!camd_session_create(f.m, B, &s, &err));
  float x[B * C * H * W];
  random_input(x, B * C * H * W, 1);
  camd_forward_opts o;
  camd_forward_opts_init(&o);
  int keep[] = {f.a};
  o.retain = keep;
  o.n_retain = 1;
  CHECK_MSG(!camd_session_forward(s, B, x, &o, &err), "%s", err.message);
  camd_shape sh;
  const float *logits = camd_session_value(s, f.logits, &sh);
  CHECK(logits != NULL);
  CHECK_EQ_INT(sh.dims[0], B);
  CHECK(camd_session_value(s, f.a, NULL) != NULL);
  /* b is neither kept nor an output: its buffer may be reused, so it is not readable. */
  CHECK(camd_session_value(s, f.b, NULL) == NULL);
  for (int b = 0; b < B; b++) {
    double xd[C * H * W], ref[K];
    for (int i = 0; i < C * H * W; i++) xd[i] = x[b * C * H * W + i];
    reference(&f, xd, ref, 0, NULL);
    for (int k = 0; k < K; k++) CHECK_NEAR(logits[b * K + k], ref[k], 1e-5 * fmax(1, fabs(ref[k])));
  }
  /* A smaller batch on the same session and plan. */
  CHECK(!camd_session_forward(s, 1, x, &o, &err));
  logits = camd_session_value(s, f.logits, &sh);
  CHECK_EQ_INT(sh.dims[0], 1);
  double xd[C * H * W], ref[K];
  for (int i = 0; i < C * H * W; i++) xd[i] = x[i];
  reference(&f, xd, ref, 0, NULL);
  for (int k = 0; k < K; k++) CHECK_NEAR(logits[k], ref[k], 1e-5 * fmax(1, fabs(ref[k])));
  CHECK(camd_session_forward(s, B + 1, x, &o, &err) == CAMD_E_INVALID);
  camd_session_destroy(s);
  camd_model_release(f.m);
}

static void test_several_backward_targets(void) {
  fixture f;
  build(&f);
  camd_session *s = NULL;
  camd_error err = {0};
  CHECK(!camd_session_create(f.m, B, &s, &err));
  float x[B * C * H * W];
  random_input(x, B * C * H * W, 2);
  camd_forward_opts o;
  camd_forward_opts_init(&o);
  o.grad_to = f.a;
  CHECK_MSG(!camd_session_forward(s, B, x, &o, &err), "%s", err.message);
  for (int k = 0; k < K; k++) { /* one forward, K backward passes */
    float seed[B * K];
    memset(seed, 0, sizeof(seed));
    for (int b = 0; b < B; b++) seed[b * K + k] = 1;
    CHECK_MSG(!camd_session_backward(s, f.logits, seed, &err), "%s", err.message);
    const float *ga = camd_session_grad(s, f.a, NULL);
    CHECK(ga != NULL);
    if (!ga) break;
    for (int b = 0; b < B; b++) {
      double xd[C * H * W], ref[K], gref[C * H * W];
      for (int i = 0; i < C * H * W; i++) xd[i] = x[b * C * H * W + i];
      reference(&f, xd, ref, k, gref);
      for (int i = 0; i < C * H * W; i++) CHECK_NEAR(ga[b * C * H * W + i], gref[i], 1e-5);
    }
  }
  /* Backward without grad_to is a state error with a message. */
  camd_forward_opts_init(&o);
  CHECK(!camd_session_forward(s, 1, x, &o, &err));
  float seed[K] = {1, 0, 0, 0};
  CHECK(camd_session_backward(s, f.logits, seed, &err) == CAMD_E_STATE);
  CHECK(strstr(err.message, "grad_to") != NULL);
  camd_session_destroy(s);
  camd_model_release(f.m);
}

static void zero_channel_per_item(void *ctx, int value, float *data, const camd_shape *shape) {
  (void)ctx;
  (void)value;
  size_t per = camd_shape_count(shape) / (size_t)shape->dims[0];
  size_t plane = (size_t)shape->dims[2] * (size_t)shape->dims[3];
  for (int b = 0; b < shape->dims[0]; b++) {
    int ch = b % (int)shape->dims[1];
    memset(data + (size_t)b * per + (size_t)ch * plane, 0, plane * sizeof(float));
  }
}

static void test_shared_input_hook(void) {
  fixture f;
  build(&f);
  camd_session *s = NULL;
  camd_error err = {0};
  CHECK(!camd_session_create(f.m, B, &s, &err));
  float x[B * C * H * W];
  random_input(x, B * C * H * W, 3);
  camd_forward_opts o;
  camd_forward_opts_init(&o);
  o.hook_value = f.a;
  o.hook = zero_channel_per_item;
  o.shared_input = true;
  for (int pass = 0; pass < 3; pass++) {
    /* pass 1 reuses the prefix of pass 0 (same input); pass 2 reuses it at a smaller batch. */
    o.reuse_prefix = pass > 0;
    int nb = pass == 2 ? B - 1 : B;
    float other[B * C * H * W];
    random_input(other, B * C * H * W, 77); /* must be ignored when the prefix is reused */
    CHECK_MSG(!camd_session_forward(s, nb, pass ? other : x, &o, &err), "%s", err.message);
    const float *logits = camd_session_value(s, f.logits, NULL);
    for (int b = 0; b < nb && logits; b++) {
      /* Reference: item b = image 0 with channel b of a zeroed: a*a loses that channel. */
      double xd[C * H * W], ref[K];
      for (int i = 0; i < C * H * W; i++) xd[i] = x[i];
      double gap[C];
      for (int ch = 0; ch < C; ch++) {
        double sum = 0;
        for (int i = 0; i < H * W; i++) {
          double v = xd[ch * H * W + i];
          double a = ch == b ? 0 : (v > 0 ? v : 0);
          sum += a * a + v;
        }
        gap[ch] = sum / (H * W);
      }
      for (int k = 0; k < K; k++) {
        ref[k] = f.bias[k];
        for (int ch = 0; ch < C; ch++) ref[k] += f.wt[k * C + ch] * gap[ch];
        CHECK_NEAR(logits[b * K + k], ref[k], 1e-5 * fmax(1, fabs(ref[k])));
      }
    }
  }
  camd_session_destroy(s);
  camd_model_release(f.m);
}

static void test_targets_and_suggestion(void) {
  fixture f;
  build(&f);
  camd_error err = {0};
  int id = -1;
  CHECK(!camd_model_check_target(f.m, "a", &id, &err));
  CHECK_EQ_INT(id, f.a);
  CHECK(camd_model_check_target(f.m, "nope", &id, &err) == CAMD_E_INVALID);
  CHECK(strstr(err.message, "'nope' not found") != NULL);
  CHECK(strstr(err.message, "'c'") != NULL); /* the message lists usable layers */
  CHECK(camd_model_check_target(f.m, "W", &id, &err) == CAMD_E_INVALID);
  /* The last 4-D activation with spatial size > 1 before global pooling is c. */
  CHECK_EQ_INT(camd_model_suggest_cam_layer(f.m), f.c);
  CHECK(camd_model_max_batch(f.m) > 1);
  camd_model_release(f.m);
}

static void test_batch_folding_graph_is_single_batch(void) {
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape xs = {2, {1, 6}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  int64_t *shp = malloc(sizeof(int64_t));
  shp[0] = -1; /* flattens the batch into one axis */
  camd_shape ss = {1, {1}};
  int sid = camd_graph_add_constant(g, "shape", CAMD_INT64, &ss, shp, &err);
  int in[] = {x, sid}, y;
  const char *ny[] = {"y"};
  CHECK_MSG(!camd_graph_add_node(g, "Reshape", "r", 13, 2, in, 1, ny, NULL, 0, &y, &err), "%s",
            err.message);
  int in2[] = {y}, z;
  const char *nz[] = {"z"};
  CHECK(!camd_graph_add_node(g, "Relu", "relu", 13, 1, in2, 1, nz, NULL, 0, &z, &err));
  CHECK(!camd_graph_mark_output(g, z, &err));
  camd_model *m = NULL;
  CHECK_MSG(!camd_graph_finalize(g, NULL, &m, &err), "%s", err.message);
  if (!m) return;
  CHECK_EQ_INT(camd_model_max_batch(m), 1);
  camd_session *s = NULL;
  CHECK(!camd_session_create(m, 4, &s, &err));
  CHECK_EQ_INT(camd_session_max_batch(s), 1);
  float xin[6] = {-1, 2, -3, 4, -5, 6};
  CHECK(!camd_session_forward(s, 1, xin, NULL, &err));
  const float *out = camd_session_value(s, z, NULL);
  for (int i = 0; i < 6 && out; i++) CHECK_NEAR(out[i], xin[i] > 0 ? xin[i] : 0, 0);
  camd_session_destroy(s);
  camd_model_release(m);
}

static void test_unsupported_op_message(void) {
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape xs = {2, {1, 6}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  int in[] = {x}, y;
  CHECK(camd_graph_add_node(g, "NoSuchOp", "n1", 13, 1, in, 1, NULL, NULL, 0, &y, &err) ==
        CAMD_E_UNSUPPORTED);
  CHECK(strstr(err.message, "NoSuchOp") && strstr(err.message, "n1"));
  CHECK(camd_graph_add_node(g, "Relu", "n2", 99, 1, in, 1, NULL, NULL, 0, &y, &err) ==
        CAMD_E_UNSUPPORTED);
  CHECK(strstr(err.message, "opset 99") != NULL);
  camd_graph_free(g);
}

static int64_t *int64s(int n, const int64_t *v) {
  int64_t *d = malloc(sizeof(int64_t) * (size_t)n);
  memcpy(d, v, sizeof(int64_t) * (size_t)n);
  return d;
}

/* Empty tensors: an activation without elements is refused at load (kernels may assume
 * non-empty tensors), and constants that fold to nothing are folded without computing. */
static void test_empty_tensors(void) {
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape xs = {4, {1, 3, 4, 4}}, one = {1, {1}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  int st = camd_graph_add_constant(g, "st", CAMD_INT64, &one, int64s(1, (int64_t[]){2}), &err);
  int en = camd_graph_add_constant(g, "en", CAMD_INT64, &one, int64s(1, (int64_t[]){2}), &err);
  int ax = camd_graph_add_constant(g, "ax", CAMD_INT64, &one, int64s(1, (int64_t[]){2}), &err);
  int in[] = {x, st, en, ax}, y;
  CHECK(camd_graph_add_node(g, "Slice", "cut", 13, 4, in, 1, NULL, NULL, 0, &y, &err) ==
        CAMD_E_UNSUPPORTED);
  CHECK_MSG(strstr(err.message, "cut") && strstr(err.message, "no elements"), "%s", err.message);
  /* Softmax of a [3, 0] constant (the fuzz crash of shared/crashes/onnx-softmax-fold.onnx). */
  camd_shape es = {2, {3, 0}};
  int e = camd_graph_add_constant(g, "e", CAMD_FLOAT32, &es, malloc(1), &err);
  int in2[] = {e}, z;
  CHECK_MSG(!camd_graph_add_node(g, "Softmax", "sm", 13, 1, in2, 1, NULL, NULL, 0, &z, &err), "%s",
            err.message);
  camd_shape zs;
  CHECK(!camd_graph_value(g, z, &zs, NULL, NULL, NULL) && camd_shape_count(&zs) == 0);
  camd_graph_free(g);
}

/* Conv(1x1) → X → BatchNormalization → Y → Relu → Z: BN is folded at load, yet X keeps its
 * values and its gradient (checked against a double reference of the unfolded graph). */
static void test_batchnorm_folding_keeps_conv_output(void) {
  enum { CI = 3, CO = 4, HW = 6, NB = 2 };
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_rng r;
  camd_rng_seed(&r, 5);
  float w[CO * CI], bias[CO], sc[CO], sh[CO], mu[CO], var[CO];
  for (int i = 0; i < CO * CI; i++) w[i] = (float)(camd_rng_uniform(&r) * 2 - 1);
  for (int i = 0; i < CO; i++) {
    bias[i] = (float)(camd_rng_uniform(&r) - 0.5);
    sc[i] = (float)(camd_rng_uniform(&r) + 0.5);
    sh[i] = (float)(camd_rng_uniform(&r) - 0.5);
    mu[i] = (float)(camd_rng_uniform(&r) - 0.5);
    var[i] = (float)(camd_rng_uniform(&r) + 0.1);
  }
  camd_shape xs = {4, {1, CI, 2, 3}}, ws = {4, {CO, CI, 1, 1}}, vs = {1, {CO}};
  int in = camd_graph_add_input(g, "in", &xs, &err);
  const float *srcs[] = {w, bias, sc, sh, mu, var};
  const char *names[] = {"w", "bias", "scale", "shift", "mean", "var"};
  int ids[6];
  for (int i = 0; i < 6; i++) {
    size_t n = i == 0 ? CO * CI : CO;
    float *d = malloc(n * sizeof(float));
    memcpy(d, srcs[i], n * sizeof(float));
    ids[i] = camd_graph_add_constant(g, names[i], CAMD_FLOAT32, i == 0 ? &ws : &vs, d, &err);
  }
  int x, y, z;
  const char *nx[] = {"X"}, *ny[] = {"Y"}, *nz[] = {"Z"};
  int cin[] = {in, ids[0], ids[1]};
  CHECK(!camd_graph_add_node(g, "Conv", "conv", 13, 3, cin, 1, nx, NULL, 0, &x, &err));
  int bin[] = {x, ids[2], ids[3], ids[4], ids[5]};
  CHECK(!camd_graph_add_node(g, "BatchNormalization", "bn", 13, 5, bin, 1, ny, NULL, 0, &y, &err));
  int rin[] = {y};
  CHECK(!camd_graph_add_node(g, "Relu", "relu", 13, 1, rin, 1, nz, NULL, 0, &z, &err));
  CHECK(!camd_graph_mark_output(g, z, &err));
  camd_model *m = NULL;
  CHECK_MSG(!camd_graph_finalize(g, NULL, &m, &err), "%s", err.message);
  if (!m) return;
  camd_value_info info;
  camd_model_value_info(m, x, &info);
  CHECK(strcmp(info.producer_op, "BnInverse") == 0); /* the fold happened */
  camd_session *s = NULL;
  CHECK(!camd_session_create(m, NB, &s, &err));
  float input[NB * CI * HW], seed[NB * CO * HW];
  random_input(input, NB * CI * HW, 8);
  random_input(seed, NB * CO * HW, 9);
  camd_forward_opts o;
  camd_forward_opts_init(&o);
  int keep[] = {x};
  o.retain = keep;
  o.n_retain = 1;
  o.grad_to = x;
  CHECK_MSG(!camd_session_forward(s, NB, input, &o, &err), "%s", err.message);
  CHECK_MSG(!camd_session_backward(s, z, seed, &err), "%s", err.message);
  const float *xv = camd_session_value(s, x, NULL), *zv = camd_session_value(s, z, NULL);
  const float *gx = camd_session_grad(s, x, NULL);
  CHECK(xv != NULL);
  CHECK(zv != NULL);
  CHECK(gx != NULL);
  for (int b = 0; b < NB && xv && zv && gx; b++) {
    for (int co = 0; co < CO; co++) {
      double a = sc[co] / sqrt((double)var[co] + 1e-5);
      for (int p = 0; p < HW; p++) {
        double xr = bias[co];
        for (int ci = 0; ci < CI; ci++)
          xr += (double)w[co * CI + ci] * input[(b * CI + ci) * HW + p];
        double yr = (xr - mu[co]) * a + sh[co];
        double zr = yr > 0 ? yr : 0;
        double gr = yr > 0 ? seed[(b * CO + co) * HW + p] * a : 0;
        int idx = (b * CO + co) * HW + p;
        CHECK_NEAR(xv[idx], xr, 1e-4 * fmax(1, fabs(xr)));
        CHECK_NEAR(zv[idx], zr, 1e-4 * fmax(1, fabs(zr)));
        CHECK_NEAR(gx[idx], gr, 1e-4 * fmax(1, fabs(gr)));
      }
    }
  }
  camd_session_destroy(s);
  camd_model_release(m);
}

/* Plan-time fusion (session.c plan_fuse): x → Conv 3x3 → Relu → r → Conv 1x1 → Clip(0, 6) → y.
 * A plain run fuses both activations into their convolutions; a run that keeps the convolution
 * outputs cannot. Both must equal the double reference, and each other bit for bit; a fused
 * convolution output is not readable; a backward through the pair still works (no fusion on the
 * backward path). */
static void test_fused_activations(void) {
  enum { FC = 2, FM = 3, FH = 5, FW = 6, FB = 2 };
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_rng r;
  camd_rng_seed(&r, 7);
  float w1[FM * FC * 9], w2[FM * FM], b1[FM];
  for (int i = 0; i < FM * FC * 9; i++) w1[i] = (float)(camd_rng_uniform(&r) * 2 - 1);
  for (int i = 0; i < FM * FM; i++) w2[i] = (float)(camd_rng_uniform(&r) * 4 - 1);
  for (int i = 0; i < FM; i++) b1[i] = (float)(camd_rng_uniform(&r) - 0.5);
  camd_shape xs = {4, {1, FC, FH, FW}}, w1s = {4, {FM, FC, 3, 3}}, w2s = {4, {FM, FM, 1, 1}};
  camd_shape b1s = {1, {FM}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  float *d1 = malloc(sizeof(w1)), *d2 = malloc(sizeof(w2)), *db = malloc(sizeof(b1));
  memcpy(d1, w1, sizeof(w1));
  memcpy(d2, w2, sizeof(w2));
  memcpy(db, b1, sizeof(b1));
  int w1id = camd_graph_add_constant(g, "w1", CAMD_FLOAT32, &w1s, d1, &err);
  int w2id = camd_graph_add_constant(g, "w2", CAMD_FLOAT32, &w2s, d2, &err);
  int b1id = camd_graph_add_constant(g, "b1", CAMD_FLOAT32, &b1s, db, &err);
  const int64_t pads[4] = {1, 1, 1, 1};
  camd_attr pa = {.name = "pads", .type = CAMD_ATTR_INTS, .ints = pads, .n = 4};
  camd_attr lo = {.name = "min", .type = CAMD_ATTR_FLOAT, .f = 0.0f};
  camd_attr hi = {.name = "max", .type = CAMD_ATTR_FLOAT, .f = 6.0f};
  camd_attr clip_attrs[2] = {lo, hi};
  const char *n1[] = {"c1"}, *n2[] = {"r"}, *n3[] = {"c2"}, *n4[] = {"y"};
  int c1, rr, c2, y;
  int i1[] = {x, w1id, b1id}, i2[1], i3[2], i4[1];
  CHECK(!camd_graph_add_node(g, "Conv", "conv1", 13, 3, i1, 1, n1, &pa, 1, &c1, &err));
  i2[0] = c1;
  CHECK(!camd_graph_add_node(g, "Relu", "relu", 13, 1, i2, 1, n2, NULL, 0, &rr, &err));
  i3[0] = rr;
  i3[1] = w2id;
  CHECK(!camd_graph_add_node(g, "Conv", "conv2", 13, 2, i3, 1, n3, NULL, 0, &c2, &err));
  i4[0] = c2;
  CHECK(!camd_graph_add_node(g, "Clip", "clip", 6, 1, i4, 1, n4, clip_attrs, 2, &y, &err));
  CHECK(!camd_graph_mark_output(g, y, &err));
  camd_model *m = NULL;
  CHECK_MSG(!camd_graph_finalize(g, NULL, &m, &err), "%s", err.message);
  float xin[FB * FC * FH * FW];
  random_input(xin, sizeof(xin) / sizeof(xin[0]), 11);
  /* Double reference. */
  double ref[FB * FM * FH * FW];
  for (int b = 0; b < FB; b++) {
    double rv[FM * FH * FW];
    for (int mo = 0; mo < FM; mo++)
      for (int i = 0; i < FH; i++)
        for (int j = 0; j < FW; j++) {
          double acc = b1[mo];
          for (int c = 0; c < FC; c++)
            for (int ki = 0; ki < 3; ki++)
              for (int kj = 0; kj < 3; kj++) {
                int ii = i + ki - 1, jj = j + kj - 1;
                if (ii < 0 || ii >= FH || jj < 0 || jj >= FW) continue;
                acc += (double)w1[((mo * FC + c) * 3 + ki) * 3 + kj] *
                       xin[((b * FC + c) * FH + ii) * FW + jj];
              }
          rv[(mo * FH + i) * FW + j] = acc > 0 ? acc : 0;
        }
    for (int mo = 0; mo < FM; mo++)
      for (int q = 0; q < FH * FW; q++) {
        double acc = 0;
        for (int c = 0; c < FM; c++) acc += (double)w2[mo * FM + c] * rv[c * FH * FW + q];
        ref[(b * FM + mo) * FH * FW + q] = acc < 0 ? 0 : acc > 6 ? 6 : acc;
      }
  }
  camd_session *s = NULL;
  CHECK(!camd_session_create(m, FB, &s, &err));
  float fused[FB * FM * FH * FW];
  CHECK(!camd_session_set_profiling(s, true, &err));
  CHECK_MSG(!camd_session_forward(s, FB, xin, NULL, &err), "%s", err.message);
  /* The profile shows which nodes ran: the convolutions, not the activations fused into them. */
  const uint64_t *ns = camd_session_profile(s);
  CHECK(ns && ns[0] > 0 && ns[1] == 0 && ns[2] > 0 && ns[3] == 0);
  CHECK(!camd_session_set_profiling(s, false, &err));
  const float *out = camd_session_value(s, y, NULL);
  CHECK(out != NULL);
  memcpy(fused, out, sizeof(fused));
  double mx = 0;
  for (int i = 0; i < FB * FM * FH * FW; i++) mx = fmax(mx, fabs(fused[i] - ref[i]));
  CHECK_MSG(mx <= 1e-4, "fused forward differs from the reference by %g", mx);
  CHECK(camd_session_value(s, c1, NULL) == NULL); /* fused away, not observable */
  int keep[2] = {c1, c2};
  camd_forward_opts o;
  camd_forward_opts_init(&o);
  o.retain = keep;
  o.n_retain = 2;
  CHECK_MSG(!camd_session_forward(s, FB, xin, &o, &err), "%s", err.message);
  out = camd_session_value(s, y, NULL);
  CHECK(out != NULL && memcmp(out, fused, sizeof(fused)) == 0);
  CHECK(camd_session_value(s, c1, NULL) != NULL && camd_session_value(s, c2, NULL) != NULL);
  /* Backward from y to x's first convolution output: the pair on the path is not fused. */
  camd_forward_opts_init(&o);
  o.grad_to = c1;
  CHECK_MSG(!camd_session_forward(s, FB, xin, &o, &err), "%s", err.message);
  out = camd_session_value(s, y, NULL);
  CHECK(out != NULL && memcmp(out, fused, sizeof(fused)) == 0);
  float seed[FB * FM * FH * FW];
  for (int i = 0; i < FB * FM * FH * FW; i++) seed[i] = 1.0f;
  CHECK_MSG(!camd_session_backward(s, y, seed, &err), "%s", err.message);
  CHECK(camd_session_grad(s, c1, NULL) != NULL);
  camd_session_destroy(s);
  camd_model_release(m);
}

/* Plan-time fusion of a Relu into the BatchNormalization before it (DenseNet's pre-activation):
 * x → BatchNormalization → Relu → y. The profile shows the BatchNormalization ran and the Relu
 * did not; y equals the double reference (x − mean) / sqrt(var + eps) · scale + B, then max(0, ·);
 * 1 and 3 threads (several pieces of planes) and a run that keeps the BatchNormalization's
 * output (no fusion) give the same bits. */
static void test_fused_batchnorm_relu(void) {
  enum { NB = 2, NC = 6, NH = 64, NW = 64, N = NB * NC * NH * NW };
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_rng r;
  camd_rng_seed(&r, 9);
  float prm[4][NC]; /* scale, B, mean, var */
  for (int c = 0; c < NC; c++) {
    prm[0][c] = (float)(camd_rng_uniform(&r) * 2 - 1);
    prm[1][c] = (float)(camd_rng_uniform(&r) - 0.5);
    prm[2][c] = (float)(camd_rng_uniform(&r) - 0.5);
    prm[3][c] = (float)(camd_rng_uniform(&r) + 0.1);
  }
  camd_shape xs = {4, {1, NC, NH, NW}}, cs = {1, {NC}};
  int in[5];
  in[0] = camd_graph_add_input(g, "x", &xs, &err);
  const char *pn[4] = {"scale", "B", "mean", "var"};
  for (int k = 0; k < 4; k++) {
    float *d = malloc(sizeof(prm[k]));
    memcpy(d, prm[k], sizeof(prm[k]));
    in[k + 1] = camd_graph_add_constant(g, pn[k], CAMD_FLOAT32, &cs, d, &err);
  }
  const float eps = 1e-3f;
  camd_attr ea = {.name = "epsilon", .type = CAMD_ATTR_FLOAT, .f = eps};
  const char *n1[] = {"bn"}, *n2[] = {"y"};
  int bn, y;
  CHECK(!camd_graph_add_node(g, "BatchNormalization", "norm", 15, 5, in, 1, n1, &ea, 1, &bn, &err));
  CHECK(!camd_graph_add_node(g, "Relu", "relu", 14, 1, &bn, 1, n2, NULL, 0, &y, &err));
  CHECK(!camd_graph_mark_output(g, y, &err));
  camd_model *m = NULL;
  CHECK_MSG(!camd_graph_finalize(g, NULL, &m, &err), "%s", err.message);
  float *x = malloc(sizeof(float) * N), *fused = malloc(sizeof(float) * N);
  random_input(x, N, 13);
  camd_session *s = NULL;
  CHECK(!camd_session_create(m, NB, &s, &err));
  CHECK(!camd_session_set_profiling(s, true, &err));
  CHECK_MSG(!camd_session_forward(s, NB, x, NULL, &err), "%s", err.message);
  const uint64_t *ns = camd_session_profile(s);
  CHECK(ns && ns[0] > 0 && ns[1] == 0);
  CHECK(!camd_session_set_profiling(s, false, &err));
  const float *out = camd_session_value(s, y, NULL);
  CHECK(out != NULL);
  double mx = 0;
  for (int i = 0; out && i < N; i++) {
    const int c = i / (NH * NW) % NC;
    double v = ((double)x[i] - prm[2][c]) / sqrt((double)prm[3][c] + eps) * prm[0][c] + prm[1][c];
    mx = fmax(mx, fabs(out[i] - (v > 0 ? v : 0)));
  }
  CHECK_MSG(mx <= 1e-5, "fused BatchNormalization + Relu differs from the reference by %g", mx);
  if (out) memcpy(fused, out, sizeof(float) * N);
  CHECK(camd_session_value(s, bn, NULL) == NULL); /* fused away, not observable */
  CHECK(!camd_session_set_threads(s, 3, &err));
  CHECK_MSG(!camd_session_forward(s, NB, x, NULL, &err), "%s", err.message);
  out = camd_session_value(s, y, NULL);
  CHECK(out != NULL && memcmp(out, fused, sizeof(float) * N) == 0);
  int keep[1] = {bn};
  camd_forward_opts o;
  camd_forward_opts_init(&o);
  o.retain = keep;
  o.n_retain = 1;
  CHECK_MSG(!camd_session_forward(s, NB, x, &o, &err), "%s", err.message);
  out = camd_session_value(s, y, NULL);
  CHECK(out != NULL && memcmp(out, fused, sizeof(float) * N) == 0);
  CHECK(camd_session_value(s, bn, NULL) != NULL);
  free(x);
  free(fused);
  camd_session_destroy(s);
  camd_model_release(m);
}

/* Plan-time SiLU fusion: x → Sigmoid → s → Mul → y, with Mul(x, s) and Mul(s, x). The Sigmoid
 * writes y (the profile shows the Mul did not run); y equals x / (1 + exp(−x)) in double within
 * the Sigmoid kernel's error, and bit for bit the unfused pair (a run that keeps s) at 1 and 3
 * threads. */
static void test_fused_silu(void) {
  enum { NB = 2, NC = 4, NH = 64, NW = 64, N = NB * NC * NH * NW };
  for (int order = 0; order < 2; order++) {
    camd_error err = {0};
    camd_graph *g = camd_graph_new();
    camd_shape xs = {4, {1, NC, NH, NW}};
    int x = camd_graph_add_input(g, "x", &xs, &err), sv, y;
    const char *n1[] = {"s"}, *n2[] = {"y"};
    CHECK(!camd_graph_add_node(g, "Sigmoid", "sigmoid", 13, 1, &x, 1, n1, NULL, 0, &sv, &err));
    int mi[2] = {order ? sv : x, order ? x : sv};
    CHECK(!camd_graph_add_node(g, "Mul", "mul", 14, 2, mi, 1, n2, NULL, 0, &y, &err));
    CHECK(!camd_graph_mark_output(g, y, &err));
    camd_model *m = NULL;
    CHECK_MSG(!camd_graph_finalize(g, NULL, &m, &err), "%s", err.message);
    float *in = malloc(sizeof(float) * N), *fused = malloc(sizeof(float) * N);
    random_input(in, N, 17 + (uint64_t)order);
    in[0] = 100.f, in[1] = -100.f, in[2] = 0.f; /* the clamps */
    camd_session *s = NULL;
    CHECK(!camd_session_create(m, NB, &s, &err));
    CHECK(!camd_session_set_profiling(s, true, &err));
    CHECK_MSG(!camd_session_forward(s, NB, in, NULL, &err), "%s", err.message);
    const uint64_t *ns = camd_session_profile(s);
    CHECK(ns && ns[0] > 0 && ns[1] == 0);
    CHECK(!camd_session_set_profiling(s, false, &err));
    const float *out = camd_session_value(s, y, NULL);
    CHECK(out != NULL && camd_session_value(s, sv, NULL) == NULL);
    double mx = 0;
    for (int i = 0; out && i < N; i++) {
      const double ref = in[i] / (1.0 + exp(-(double)in[i]));
      mx = fmax(mx, fabs(out[i] - ref) / fmax(1.0, fabs(ref)));
    }
    CHECK_MSG(mx <= 1e-6, "fused SiLU differs from the reference by %g", mx);
    if (out) memcpy(fused, out, sizeof(float) * N);
    int keep[1] = {sv};
    camd_forward_opts o;
    camd_forward_opts_init(&o);
    o.retain = keep;
    o.n_retain = 1;
    for (int threads = 1; threads <= 3; threads += 2) {
      CHECK(!camd_session_set_threads(s, threads, &err));
      CHECK_MSG(!camd_session_forward(s, NB, in, &o, &err), "%s", err.message);
      out = camd_session_value(s, y, NULL);
      CHECK(out != NULL && camd_session_value(s, sv, NULL) != NULL);
      CHECK(out != NULL && memcmp(out, fused, sizeof(float) * N) == 0);
      CHECK_MSG(!camd_session_forward(s, NB, in, NULL, &err), "%s", err.message);
      out = camd_session_value(s, y, NULL);
      CHECK(out != NULL && memcmp(out, fused, sizeof(float) * N) == 0);
    }
    free(in);
    free(fused);
    camd_session_destroy(s);
    camd_model_release(m);
  }
}

CAMD_TEST_MAIN(CAMD_TEST(test_batchnorm_folding_keeps_conv_output),
               CAMD_TEST(test_forward_and_kept_values), CAMD_TEST(test_several_backward_targets),
               CAMD_TEST(test_shared_input_hook), CAMD_TEST(test_targets_and_suggestion),
               CAMD_TEST(test_batch_folding_graph_is_single_batch),
               CAMD_TEST(test_unsupported_op_message), CAMD_TEST(test_empty_tensors),
               CAMD_TEST(test_fused_activations), CAMD_TEST(test_fused_batchnorm_relu),
               CAMD_TEST(test_fused_silu))
