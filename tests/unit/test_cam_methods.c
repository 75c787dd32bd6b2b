/* CAM unit tests on a tiny hand-built graph (Conv → Relu → GlobalAveragePool → Flatten → Gemm)
 * whose maps are computed exactly here by independent double-precision loops. */
#include <stdlib.h>

#include "camd/cam.h"
#include "camd/core.h"
#include "camd/engine.h"
#include "camd/graph.h"
#include "helper_graph.h"
#include "testlib.h"

enum { CI = 2, H = 5, W = 5, HW = H * W, C = 3, K = 4 };

static float x_in[CI * HW], w_conv[C * CI * 9], b_conv[C], w_fc[K * C], b_fc[K];
/* setup(): channel 2 of the conv repeats channel 0 (same filter and bias: the same plane). */
static bool repeat_channel;

typedef struct fixture {
  camd_model *m;
  camd_session *s;
  camd_cam_workspace *w;
  int conv, act, logits;
} fixture;

/* Double reference forward: act[C][HW] (after ReLU), logits[K]. */
static void ref_forward(const double *x, double *act, double *logits) {
  for (int c = 0; c < C; c++) {
    for (int y = 0; y < H; y++) {
      for (int xx = 0; xx < W; xx++) {
        double acc = b_conv[c];
        for (int ci = 0; ci < CI; ci++) {
          for (int ky = 0; ky < 3; ky++) {
            for (int kx = 0; kx < 3; kx++) {
              int iy = y + ky - 1, ix = xx + kx - 1;
              if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
              acc += (double)w_conv[((c * CI + ci) * 3 + ky) * 3 + kx] * x[ci * HW + iy * W + ix];
            }
          }
        }
        act[c * HW + y * W + xx] = acc > 0 ? acc : 0;
      }
    }
  }
  for (int k = 0; k < K; k++) {
    double acc = b_fc[k];
    for (int c = 0; c < C; c++) {
      double mean = 0;
      for (int p = 0; p < HW; p++) mean += act[c * HW + p];
      acc += (double)w_fc[k * C + c] * mean / HW;
    }
    logits[k] = acc;
  }
}

static void setup(fixture *f) {
  camd_rng r;
  camd_rng_seed(&r, 7);
  for (int i = 0; i < CI * HW; i++) x_in[i] = (float)camd_rng_normal(&r);
  for (int i = 0; i < C * CI * 9; i++) w_conv[i] = (float)(0.4 * camd_rng_normal(&r));
  for (int i = 0; i < C; i++) b_conv[i] = (float)(0.3 + 0.1 * camd_rng_normal(&r));
  for (int i = 0; i < K * C; i++) w_fc[i] = (float)camd_rng_normal(&r);
  for (int i = 0; i < K; i++) b_fc[i] = (float)(0.5 * camd_rng_normal(&r));
  if (repeat_channel) {
    memcpy(w_conv + 2 * CI * 9, w_conv, sizeof(float) * CI * 9);
    b_conv[2] = b_conv[0];
  }
  camd_error err;
  camd_graph *g = camd_graph_new();
  camd_shape xs = {4, {1, CI, H, W}}, wcs = {4, {C, CI, 3, 3}}, bcs = {1, {C}};
  camd_shape wfs = {2, {K, C}}, bfs = {1, {K}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  int wc = camd_graph_add_constant(g, "wc", CAMD_FLOAT32, &wcs,
                                   camd_test_copy_floats(w_conv, C * CI * 9), &err);
  int bc =
      camd_graph_add_constant(g, "bc", CAMD_FLOAT32, &bcs, camd_test_copy_floats(b_conv, C), &err);
  int wf = camd_graph_add_constant(g, "wf", CAMD_FLOAT32, &wfs, camd_test_copy_floats(w_fc, K * C),
                                   &err);
  int bf =
      camd_graph_add_constant(g, "bf", CAMD_FLOAT32, &bfs, camd_test_copy_floats(b_fc, K), &err);
  int64_t pads[4] = {1, 1, 1, 1}, ks[2] = {3, 3};
  camd_attr conv_attrs[2] = {{.name = "pads", .type = CAMD_ATTR_INTS, .ints = pads, .n = 4},
                             {.name = "kernel_shape", .type = CAMD_ATTR_INTS, .ints = ks, .n = 2}};
  camd_attr gemm_attrs[1] = {{.name = "transB", .type = CAMD_ATTR_INT, .i = 1}};
  int in_conv[3] = {x, wc, bc}, conv, act, gap, flat, in_gemm[3], logits;
  const char *n_conv[1] = {"conv"}, *n_act[1] = {"act"}, *n_gap[1] = {"gap"};
  const char *n_flat[1] = {"flat"}, *n_logits[1] = {"logits"};
  CHECK(!camd_graph_add_node(g, "Conv", "conv", 13, 3, in_conv, 1, n_conv, conv_attrs, 2, &conv,
                             &err));
  CHECK(!camd_graph_add_node(g, "Relu", "relu", 13, 1, &conv, 1, n_act, NULL, 0, &act, &err));
  CHECK(!camd_graph_add_node(g, "GlobalAveragePool", "gap", 13, 1, &act, 1, n_gap, NULL, 0, &gap,
                             &err));
  CHECK(
      !camd_graph_add_node(g, "Flatten", "flatten", 13, 1, &gap, 1, n_flat, NULL, 0, &flat, &err));
  in_gemm[0] = flat;
  in_gemm[1] = wf;
  in_gemm[2] = bf;
  CHECK(!camd_graph_add_node(g, "Gemm", "fc", 13, 3, in_gemm, 1, n_logits, gemm_attrs, 1, &logits,
                             &err));
  CHECK(!camd_graph_mark_output(g, logits, &err));
  CHECK(!camd_graph_finalize(g, NULL, &f->m, &err));
  CHECK(!camd_session_create(f->m, 4, &f->s, &err));
  CHECK(!camd_cam_workspace_create(&f->w, &err));
  f->conv = camd_model_find_value(f->m, "conv");
  f->act = camd_model_find_value(f->m, "act");
  f->logits = camd_model_find_value(f->m, "logits");
}

static void teardown(fixture *f) {
  camd_cam_workspace_destroy(f->w);
  camd_session_destroy(f->s);
  camd_model_release(f->m);
}

static const int classes[2] = {1, 3};

static int run(fixture *f, camd_cam_method method, camd_cam_score score, float *maps,
               camd_cam_request *tweak, camd_error *err) {
  camd_cam_request req;
  camd_cam_request_init(&req);
  if (tweak) req = *tweak;
  req.method = method;
  req.layer = f->act;
  req.output = f->logits;
  req.classes = classes;
  req.n_classes = 2;
  req.score = score;
  camd_cam_maps out;
  int rc = camd_cam_compute(f->s, f->w, x_in, &req, &out, err);
  if (rc == 0) {
    CHECK_EQ_INT(out.width, W);
    CHECK_EQ_INT(out.height, H);
    memcpy(maps, out.maps, sizeof(float) * 2 * HW);
  }
  return rc;
}

/* Compares maps (2 × HW) with ref within 1e-4 × max|ref|. */
static void check_maps(const char *what, const float *maps, const double *ref) {
  double mx = 0, d = 0;
  for (int i = 0; i < 2 * HW; i++) mx = fmax(mx, fabs(ref[i]));
  for (int i = 0; i < 2 * HW; i++) d = fmax(d, fabs(maps[i] - ref[i]));
  CHECK_MSG(d <= 1e-4 * fmax(mx, 1e-12), "%s: max diff %.3g (max|ref| %.3g)", what, d, mx);
}

/* ref[k][p] = Σ_c weights[k][c] act[c][p] */
static void weighted(const double *act, const double *weights, double *ref) {
  for (int k = 0; k < 2; k++) {
    for (int p = 0; p < HW; p++) {
      double acc = 0;
      for (int c = 0; c < C; c++) acc += weights[k * C + c] * act[c * HW + p];
      ref[k * HW + p] = acc;
    }
  }
}

static void clean(double *act, double *logits) {
  double x[CI * HW];
  for (int i = 0; i < CI * HW; i++) x[i] = x_in[i];
  ref_forward(x, act, logits);
}

static void test_gap_linear_methods(void) {
  fixture f;
  setup(&f);
  camd_error err;
  double act[C * HW], logits[K], wts[2 * C], ref[2 * HW];
  float maps[2 * HW];
  clean(act, logits);
  /* cam: weights of the linear layer. */
  for (int k = 0; k < 2; k++) {
    for (int c = 0; c < C; c++) wts[k * C + c] = w_fc[classes[k] * C + c];
  }
  CHECK(run(&f, CAMD_CAM_CAM, CAMD_SCORE_LOGIT, maps, NULL, &err) == 0);
  weighted(act, wts, ref);
  check_maps("cam", maps, ref);
  /* Gradient of a logit at the ReLU output: W[k][c] / HW everywhere, so Grad-CAM = CAM / HW,
   * HiResCAM = the same, LayerCAM = Σ ReLU(g) A, XGrad-CAM = g ΣA / (ΣA + 1e-7). */
  double g[2 * C];
  for (int i = 0; i < 2 * C; i++) g[i] = wts[i] / HW;
  CHECK(run(&f, CAMD_CAM_GRADCAM, CAMD_SCORE_LOGIT, maps, NULL, &err) == 0);
  weighted(act, g, ref);
  check_maps("gradcam", maps, ref);
  CHECK(run(&f, CAMD_CAM_HIRESCAM, CAMD_SCORE_LOGIT, maps, NULL, &err) == 0);
  check_maps("hirescam", maps, ref);
  double lw[2 * C], xw[2 * C], pw[2 * C];
  for (int k = 0; k < 2; k++) {
    for (int c = 0; c < C; c++) {
      double gg = g[k * C + c], sa = 0;
      for (int p = 0; p < HW; p++) sa += act[c * HW + p];
      lw[k * C + c] = gg > 0 ? gg : 0;
      xw[k * C + c] = gg * sa / (sa + 1e-7);
      pw[k * C + c] = gg > 0 ? HW * gg * (gg * gg / (2 * gg * gg + sa * gg * gg * gg + 1e-6)) : 0;
    }
  }
  CHECK(run(&f, CAMD_CAM_LAYERCAM, CAMD_SCORE_LOGIT, maps, NULL, &err) == 0);
  weighted(act, lw, ref);
  check_maps("layercam", maps, ref);
  CHECK(run(&f, CAMD_CAM_XGRADCAM, CAMD_SCORE_LOGIT, maps, NULL, &err) == 0);
  weighted(act, xw, ref);
  check_maps("xgradcam", maps, ref);
  CHECK(run(&f, CAMD_CAM_GRADCAMPP, CAMD_SCORE_LOGIT, maps, NULL, &err) == 0);
  weighted(act, pw, ref);
  check_maps("gradcam++", maps, ref);
  /* Smooth Grad-CAM++ without noise is Grad-CAM++. */
  camd_cam_request tw;
  camd_cam_request_init(&tw);
  tw.noise_std = 0.0f;
  tw.n_samples = 3;
  tw.max_batch = 2;
  CHECK(run(&f, CAMD_CAM_SMOOTHGRADCAMPP, CAMD_SCORE_LOGIT, maps, &tw, &err) == 0);
  check_maps("smoothgradcam++ (no noise)", maps, ref);
  /* Softmax score: d p_k / d A_c = Σ_j p_k (δ_kj − p_j) W[j][c] / HW. */
  double mx = logits[0], sum = 0, p[K];
  for (int j = 1; j < K; j++) mx = fmax(mx, logits[j]);
  for (int j = 0; j < K; j++) sum += exp(logits[j] - mx);
  for (int j = 0; j < K; j++) p[j] = exp(logits[j] - mx) / sum;
  for (int k = 0; k < 2; k++) {
    for (int c = 0; c < C; c++) {
      double acc = 0;
      for (int j = 0; j < K; j++) {
        acc += p[classes[k]] * ((j == classes[k]) - p[j]) * w_fc[j * C + c] / HW;
      }
      g[k * C + c] = acc;
    }
  }
  CHECK(run(&f, CAMD_CAM_GRADCAM, CAMD_SCORE_SOFTMAX, maps, NULL, &err) == 0);
  weighted(act, g, ref);
  check_maps("gradcam softmax", maps, ref);
  /* Ablation: zeroing channel c lowers logit k by W[k][c] · mean(A_c). */
  for (int c = 0; c < C; c++) {
    double mean = 0;
    for (int q = 0; q < HW; q++) mean += act[c * HW + q];
    for (int k = 0; k < 2; k++) {
      double s0 = logits[classes[k]];
      double sk = s0 - w_fc[classes[k] * C + c] * mean / HW;
      wts[k * C + c] = (s0 - sk) / s0;
    }
  }
  tw.max_batch = 2; /* 3 channels: a full batch and a batch of one */
  CHECK(run(&f, CAMD_CAM_ABLATIONCAM, CAMD_SCORE_LOGIT, maps, &tw, &err) == 0);
  weighted(act, wts, ref);
  check_maps("ablationcam", maps, ref);
  teardown(&f);
}

/* Score-CAM's maps in double: the layer has the input's resolution, so the bilinear upsampling
 * is the identity and the masks are the min-max normalised channels. act: the clean forward's. */
static void scorecam_reference(const double *act, double *ref) {
  double scores[C][2], wts[2 * C];
  for (int c = 0; c < C; c++) {
    double lo = INFINITY, hi = -INFINITY;
    for (int q = 0; q < HW; q++) {
      lo = fmin(lo, act[c * HW + q]);
      hi = fmax(hi, act[c * HW + q]);
    }
    double x[CI * HW], a2[C * HW], l2[K];
    for (int ci = 0; ci < CI; ci++) {
      for (int q = 0; q < HW; q++) {
        x[ci * HW + q] = x_in[ci * HW + q] * ((act[c * HW + q] - lo) / (hi - lo + 1e-8));
      }
    }
    ref_forward(x, a2, l2);
    for (int k = 0; k < 2; k++) scores[c][k] = l2[classes[k]];
  }
  for (int k = 0; k < 2; k++) {
    double sum = 0;
    for (int c = 0; c < C; c++) sum += exp(scores[c][k]);
    for (int c = 0; c < C; c++) wts[k * C + c] = exp(scores[c][k]) / sum;
  }
  weighted(act, wts, ref);
}

static void test_score_and_eigen(void) {
  fixture f;
  setup(&f);
  camd_error err;
  double act[C * HW], logits[K], ref[2 * HW];
  float maps[2 * HW];
  clean(act, logits);
  scorecam_reference(act, ref);
  camd_cam_request tw;
  camd_cam_request_init(&tw);
  tw.max_batch = 2;
  CHECK(run(&f, CAMD_CAM_SCORECAM, CAMD_SCORE_LOGIT, maps, &tw, &err) == 0);
  check_maps("scorecam", maps, ref);
  tw.noise_std = 0.0f;
  CHECK(run(&f, CAMD_CAM_SSCAM, CAMD_SCORE_LOGIT, maps, &tw, &err) == 0);
  check_maps("sscam (no noise)", maps, ref);
  tw.n_samples = 1;
  CHECK(run(&f, CAMD_CAM_ISCAM, CAMD_SCORE_LOGIT, maps, &tw, &err) == 0);
  check_maps("iscam (1 step)", maps, ref);
  /* Eigen-CAM: top eigenvector of the centred C × C Gram matrix by plain power iteration. */
  double xc[C * HW], gram[C * C], v[C] = {1, 1, 1};
  for (int c = 0; c < C; c++) {
    double mean = 0;
    for (int q = 0; q < HW; q++) mean += act[c * HW + q];
    for (int q = 0; q < HW; q++) xc[c * HW + q] = act[c * HW + q] - mean / HW;
  }
  for (int a = 0; a < C; a++) {
    for (int b = 0; b < C; b++) {
      double acc = 0;
      for (int q = 0; q < HW; q++) acc += xc[a * HW + q] * xc[b * HW + q];
      gram[a * C + b] = acc;
    }
  }
  for (int it = 0; it < 5000; it++) {
    double t[C], n = 0;
    for (int a = 0; a < C; a++) {
      t[a] = 0;
      for (int b = 0; b < C; b++) t[a] += gram[a * C + b] * v[b];
      n += t[a] * t[a];
    }
    for (int a = 0; a < C; a++) v[a] = t[a] / sqrt(n);
  }
  double dot = 0;
  for (int q = 0; q < HW; q++) {
    double pr = 0, sum = 0;
    for (int c = 0; c < C; c++) {
      pr += xc[c * HW + q] * v[c];
      sum += act[c * HW + q];
    }
    ref[q] = ref[HW + q] = pr;
    dot += pr * sum;
  }
  if (dot < 0) {
    for (int i = 0; i < 2 * HW; i++) ref[i] = -ref[i];
  }
  CHECK(run(&f, CAMD_CAM_EIGENCAM, CAMD_SCORE_LOGIT, maps, NULL, &err) == 0);
  check_maps("eigencam", maps, ref);
  teardown(&f);
}

/* A channel whose plane repeats another's is scored once (its scores copied): the maps are
 * still the reference's, over all three channels, and the session ran 1 clean + 2 masked
 * forward items instead of 1 + 3 (1 + 2 × 2 for SS-CAM's two samples). */
static void test_score_repeated_channel(void) {
  fixture f;
  repeat_channel = true;
  setup(&f);
  repeat_channel = false;
  camd_error err;
  double act[C * HW], logits[K], ref[2 * HW];
  float maps[2 * HW];
  clean(act, logits);
  CHECK(!memcmp(act, act + 2 * HW, sizeof(double) * HW)); /* the fixture: planes 0 and 2 equal */
  scorecam_reference(act, ref);
  camd_cam_request tw;
  camd_cam_request_init(&tw);
  tw.max_batch = 2;
  uint64_t before = camd_session_forward_items(f.s);
  CHECK(run(&f, CAMD_CAM_SCORECAM, CAMD_SCORE_LOGIT, maps, &tw, &err) == 0);
  check_maps("scorecam, repeated channel", maps, ref);
  CHECK_EQ_INT((int)(camd_session_forward_items(f.s) - before), 1 + 2);
  tw.noise_std = 0.0f;
  tw.n_samples = 2;
  before = camd_session_forward_items(f.s);
  CHECK(run(&f, CAMD_CAM_SSCAM, CAMD_SCORE_LOGIT, maps, &tw, &err) == 0);
  check_maps("sscam (no noise), repeated channel", maps, ref);
  CHECK_EQ_INT((int)(camd_session_forward_items(f.s) - before), 1 + 2 * 2);
  teardown(&f);
}

static void test_refusals_and_helpers(void) {
  fixture f;
  setup(&f);
  camd_error err;
  camd_cam_request req;
  camd_cam_request_init(&req);
  req.method = CAMD_CAM_CAM;
  req.layer = f.conv; /* feeds Relu, not the pooling */
  req.output = f.logits;
  req.classes = classes;
  req.n_classes = 2;
  camd_cam_maps out;
  CHECK_EQ_INT(camd_cam_compute(f.s, f.w, x_in, &req, &out, &err), CAMD_E_UNSUPPORTED);
  CHECK(strstr(err.message, "gradcam") != NULL);
  req.layer = f.act;
  int bad[1] = {K};
  req.classes = bad;
  req.n_classes = 1;
  CHECK_EQ_INT(camd_cam_compute(f.s, f.w, x_in, &req, &out, &err), CAMD_E_INVALID);
  teardown(&f);

  camd_cam_method m;
  CHECK(camd_cam_method_parse("gradcam++", &m, &err) == 0 && m == CAMD_CAM_GRADCAMPP);
  CHECK(camd_cam_method_parse("nope", &m, &err) == CAMD_E_INVALID);
  CHECK(strstr(err.message, "scorecam") != NULL);
  for (int i = 0; i < CAMD_CAM_METHOD_COUNT; i++) {
    CHECK(camd_cam_method_parse(camd_cam_method_name((camd_cam_method)i), &m, &err) == 0 &&
          m == (camd_cam_method)i);
  }
  CHECK(camd_cam_method_needs_gradient(CAMD_CAM_LAYERCAM));
  CHECK(!camd_cam_method_needs_gradient(CAMD_CAM_SCORECAM));

  float v[4] = {-1, 0, 1, 3};
  camd_cam_postprocess(v, 4, true, true);
  CHECK_NEAR(v[0], 0, 1e-7);
  CHECK_NEAR(v[2], 1.0 / 3, 1e-7);
  CHECK_NEAR(v[3], 1, 1e-7);
  float z[3] = {2, 2, 2};
  camd_cam_postprocess(z, 3, false, true);
  CHECK(z[0] == 0 && z[2] == 0);
  CHECK_NEAR(camd_box_iou(0, 0, 2, 2, 1, 1, 3, 3), 1.0 / 7, 1e-12);
  CHECK_NEAR(camd_box_iou(0, 0, 1, 1, 2, 2, 3, 3), 0, 0);
  CHECK_NEAR(camd_box_iou(0, 0, 1, 1, 0, 0, 1, 1), 1, 1e-12);
}

/* select_topk: the classes come from the CAM's own forward, ranked here from the double
 * reference logits; the maps equal those of the same classes given explicitly. */
static void test_select_topk(void) {
  fixture f;
  setup(&f);
  double act[C * HW], logits[K];
  clean(act, logits);
  int order[K];
  for (int i = 0; i < K; i++) order[i] = i;
  for (int i = 0; i < K; i++) { /* selection sort, best first, ties: lower index */
    for (int j = i + 1; j < K; j++) {
      if (logits[order[j]] > logits[order[i]] ||
          (logits[order[j]] == logits[order[i]] && order[j] < order[i])) {
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
      }
    }
  }
  const camd_cam_method methods[] = {CAMD_CAM_GRADCAM, CAMD_CAM_CAM, CAMD_CAM_SCORECAM};
  for (int mi = 0; mi < 3; mi++) {
    camd_error err = {0};
    camd_cam_request req;
    camd_cam_request_init(&req);
    req.method = methods[mi];
    req.layer = f.act;
    req.output = f.logits;
    req.select_topk = 3;
    camd_cam_maps out;
    CHECK_MSG(camd_cam_compute(f.s, f.w, x_in, &req, &out, &err) == 0, "%s", err.message);
    CHECK_EQ_INT(out.n_classes, 3);
    float sel[3 * HW];
    memcpy(sel, out.maps, sizeof(sel));
    for (int k = 0; k < 3; k++) CHECK_EQ_INT(out.classes[k], order[k]);
    req.select_topk = 0;
    req.classes = order;
    req.n_classes = 3;
    CHECK_MSG(camd_cam_compute(f.s, f.w, x_in, &req, &out, &err) == 0, "%s", err.message);
    CHECK(memcmp(sel, out.maps, sizeof(sel)) == 0);
  }
  camd_error err = {0};
  camd_cam_request req;
  camd_cam_request_init(&req);
  req.layer = f.act;
  req.output = f.logits;
  req.select_topk = K + 1; /* more than the output has */
  camd_cam_maps out;
  CHECK_EQ_INT(camd_cam_compute(f.s, f.w, x_in, &req, &out, &err), CAMD_E_INVALID);
  teardown(&f);
}

CAMD_TEST_MAIN(CAMD_TEST(test_gap_linear_methods), CAMD_TEST(test_score_and_eigen),
               CAMD_TEST(test_score_repeated_channel), CAMD_TEST(test_refusals_and_helpers),
               CAMD_TEST(test_select_topk))
