/* CAM methods on channels-last models: a tiny CNN built twice, NCHW (Conv → Relu → GAP → Gemm)
 * and as a Keras / tf2onnx export writes it (NHWC input, Conv between Transposes, the Relu map
 * channels-last, ReduceMean over axes 1, 2, MatMul + Add), must give the same maps for every
 * method, with and without aug_smooth; a Reshape-made map of undecided layout needs
 * layer_layout; attention internals (queries, keys, weights) are not CAM layers. Sizes are all
 * different (C = 3, H = 5, W = 7) so no axis mix-up can pass. Last: Poly-CAM's default layers
 * (the stage ends) on a strided CNN. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "camd/cam.h"
#include "camd/core.h"
#include "camd/engine.h"
#include "camd/graph.h"
#include "helper_graph.h"
#include "testlib.h"

enum { CI = 2, H = 5, W = 7, HW = H * W, C = 3, K = 4 };

static float x_nchw[CI * HW], x_nhwc[CI * HW], w_conv[C * CI * 9], b_conv[C], w_fc[K * C],
    w_fct[C * K], b_fc[K];

static void init_data(void) {
  camd_rng r;
  camd_rng_seed(&r, 11);
  for (int i = 0; i < CI * HW; i++) x_nchw[i] = (float)camd_rng_normal(&r);
  for (int c = 0; c < CI; c++)
    for (int p = 0; p < HW; p++) x_nhwc[p * CI + c] = x_nchw[c * HW + p];
  for (int i = 0; i < C * CI * 9; i++) w_conv[i] = (float)(0.5 * camd_rng_normal(&r));
  for (int i = 0; i < C; i++) b_conv[i] = (float)(0.4 + 0.1 * camd_rng_normal(&r));
  for (int i = 0; i < K * C; i++) w_fc[i] = (float)camd_rng_normal(&r);
  for (int k = 0; k < K; k++)
    for (int c = 0; c < C; c++) w_fct[c * K + k] = w_fc[k * C + c];
  for (int i = 0; i < K; i++) b_fc[i] = (float)(0.5 * camd_rng_normal(&r));
}

/* The convolution and classifier constants of every test graph: wc (C x CI x 3 x 3), bc, and the
 * classifier wf / bf, wf as K x C (Gemm transB) or, with fc_channels_last, C x K (tf2onnx). */
typedef struct {
  int wc, bc, wf, bf;
} test_weights;

static test_weights add_weights(camd_graph *g, bool fc_channels_last, camd_error *err) {
  camd_shape wcs = {4, {C, CI, 3, 3}}, bcs = {1, {C}}, bfs = {1, {K}};
  camd_shape wfs = fc_channels_last ? (camd_shape){2, {C, K}} : (camd_shape){2, {K, C}};
  test_weights t;
  t.wc = camd_graph_add_constant(g, "wc", CAMD_FLOAT32, &wcs,
                                 camd_test_copy_floats(w_conv, C * CI * 9), err);
  t.bc =
      camd_graph_add_constant(g, "bc", CAMD_FLOAT32, &bcs, camd_test_copy_floats(b_conv, C), err);
  t.wf =
      camd_graph_add_constant(g, "wf", CAMD_FLOAT32, &wfs,
                              camd_test_copy_floats(fc_channels_last ? w_fct : w_fc, K * C), err);
  t.bf = camd_graph_add_constant(g, "bf", CAMD_FLOAT32, &bfs, camd_test_copy_floats(b_fc, K), err);
  return t;
}

/* The NCHW model; *layer receives the Relu map's id. */
static camd_model *build_nchw(int *layer) {
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape xs = {4, {1, CI, H, W}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  test_weights tw = add_weights(g, false, &err);
  int wc = tw.wc, bc = tw.bc, wf = tw.wf, bf = tw.bf;
  int64_t pads[4] = {1, 1, 1, 1}, ks[2] = {3, 3};
  camd_attr ca[2] = {{.name = "pads", .type = CAMD_ATTR_INTS, .ints = pads, .n = 4},
                     {.name = "kernel_shape", .type = CAMD_ATTR_INTS, .ints = ks, .n = 2}};
  camd_attr ga[1] = {{.name = "transB", .type = CAMD_ATTR_INT, .i = 1}};
  int conv = camd_test_node(g, "Conv", "conv", 3, (const int[]){x, wc, bc}, ca, 2);
  int act = camd_test_node(g, "Relu", "act", 1, &conv, NULL, 0);
  int gap = camd_test_node(g, "GlobalAveragePool", "gap", 1, &act, NULL, 0);
  int flat = camd_test_node(g, "Flatten", "flat", 1, &gap, NULL, 0);
  int logits = camd_test_node(g, "Gemm", "logits", 3, (const int[]){flat, wf, bf}, ga, 1);
  CHECK(!camd_graph_mark_output(g, logits, &err));
  camd_model *m = NULL;
  CHECK_MSG(!camd_graph_finalize(g, NULL, &m, &err), "%s", err.message);
  *layer = m ? camd_model_find_value(m, "act") : -1;
  return m;
}

/* The same function as tf2onnx writes it. With `reshaped`, the map goes through a Reshape pair
 * (tokens and back) before the head, and *layer is that Reshape's result (undecided layout). */
static camd_model *build_nhwc(bool reshaped, int *layer) {
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape xs = {4, {1, H, W, CI}}, s3 = {1, {3}}, s4 = {1, {4}};
  int x = camd_graph_add_input(g, "input_1:0", &xs, &err);
  CHECK(!camd_graph_set_input_layout(g, x, CAMD_LAYOUT_NHWC, &err));
  test_weights tw = add_weights(g, true, &err);
  int wc = tw.wc, bc = tw.bc, wf = tw.wf, bf = tw.bf;
  int tok = camd_graph_add_constant(g, "tok", CAMD_INT64, &s3,
                                    camd_test_copy_ints((const int64_t[]){1, HW, C}, 3), &err);
  int map = camd_graph_add_constant(g, "map", CAMD_INT64, &s4,
                                    camd_test_copy_ints((const int64_t[]){1, H, W, C}, 4), &err);
  int64_t pads[4] = {1, 1, 1, 1}, ks[2] = {3, 3}, to_nchw[4] = {0, 3, 1, 2},
          to_nhwc[4] = {0, 2, 3, 1}, axes[2] = {1, 2};
  camd_attr ca[2] = {{.name = "pads", .type = CAMD_ATTR_INTS, .ints = pads, .n = 4},
                     {.name = "kernel_shape", .type = CAMD_ATTR_INTS, .ints = ks, .n = 2}};
  camd_attr t1[1] = {{.name = "perm", .type = CAMD_ATTR_INTS, .ints = to_nchw, .n = 4}};
  camd_attr t2[1] = {{.name = "perm", .type = CAMD_ATTR_INTS, .ints = to_nhwc, .n = 4}};
  camd_attr ra[2] = {{.name = "axes", .type = CAMD_ATTR_INTS, .ints = axes, .n = 2},
                     {.name = "keepdims", .type = CAMD_ATTR_INT, .i = 0}};
  int xt = camd_test_node(g, "Transpose", "model/conv/Conv2D__6:0", 1, &x, t1, 1);
  int conv =
      camd_test_node(g, "Conv", "model/conv/Conv2D_nchw:0", 3, (const int[]){xt, wc, bc}, ca, 2);
  int conv_l = camd_test_node(g, "Transpose", "model/conv/BiasAdd:0", 1, &conv, t2, 1);
  int act = camd_test_node(g, "Relu", "model/conv/Relu:0", 1, &conv_l, NULL, 0);
  int head = act;
  if (reshaped) {
    int t = camd_test_node(g, "Reshape", "model/tokens:0", 2, (const int[]){act, tok}, NULL, 0);
    head = camd_test_node(g, "Reshape", "model/map:0", 2, (const int[]){t, map}, NULL, 0);
  }
  int mean = camd_test_node(g, "ReduceMean", "model/avg_pool/Mean:0", 1, &head, ra, 2);
  int mm = camd_test_node(g, "MatMul", "model/dense/MatMul:0", 2, (const int[]){mean, wf}, NULL, 0);
  int logits = camd_test_node(g, "Add", "model/dense/BiasAdd:0", 2, (const int[]){mm, bf}, NULL, 0);
  CHECK(!camd_graph_mark_output(g, logits, &err));
  camd_model *m = NULL;
  CHECK_MSG(!camd_graph_finalize(g, NULL, &m, &err), "%s", err.message);
  *layer = head;
  return m;
}

static const int classes[2] = {0, 2};

/* Maps (2 × H × W) of one method; 0 or the status. */
static int run(camd_model *m, int layer, camd_layout layer_layout, const float *x,
               camd_cam_method method, bool aug, float *maps, camd_error *err) {
  camd_session *s = NULL;
  camd_cam_workspace *w = NULL;
  int rc = camd_session_create(m, 4, &s, err);
  if (!rc) rc = camd_cam_workspace_create(&w, err);
  if (!rc) {
    camd_cam_request req;
    camd_cam_request_init(&req);
    req.method = method;
    req.layer = layer;
    req.layer_layout = layer_layout;
    req.output = camd_model_output(m, 0);
    req.classes = classes;
    req.n_classes = 2;
    req.aug_smooth = aug;
    req.n_samples = 3;
    req.max_batch = 2; /* extra forwards in batches of 2: several per method */
    camd_cam_maps out;
    rc = camd_cam_compute(s, w, x, &req, &out, err);
    if (!rc) {
      CHECK(out.width == W && out.height == H);
      memcpy(maps, out.maps, sizeof(float) * 2 * HW);
    }
  }
  camd_cam_workspace_destroy(w);
  camd_session_destroy(s);
  return rc;
}

static void compare(const char *what, const float *a, const float *b) {
  double mx = 0, diff = 0;
  for (int i = 0; i < 2 * HW; i++) {
    mx = fmax(mx, fabs(b[i]));
    diff = fmax(diff, fabs((double)a[i] - b[i]));
  }
  CHECK_MSG(mx > 0 && diff <= 1e-5 * mx, "%s: maps differ by %g (largest %g)", what, diff, mx);
}

static void test_channels_last_model(void) {
  init_data();
  int l_ref, l_tf;
  camd_model *ref = build_nchw(&l_ref), *tf = build_nhwc(false, &l_tf);
  if (!ref || !tf) goto done;
  CHECK_EQ_INT(camd_model_value_layout(tf, camd_model_input(tf, 0)), CAMD_LAYOUT_NHWC);
  CHECK_EQ_INT(camd_model_value_layout(tf, l_tf), CAMD_LAYOUT_NHWC);
  CHECK_EQ_INT(camd_model_suggest_cam_layer(tf), l_tf);
  float a[2 * HW], b[2 * HW];
  for (int mth = 0; mth < CAMD_CAM_METHOD_COUNT; mth++) {
    for (int aug = 0; aug < 2; aug++) {
      camd_error err = {0};
      char what[96];
      snprintf(what, sizeof(what), "%s%s", camd_cam_method_name((camd_cam_method)mth),
               aug ? " aug_smooth" : "");
      int rc1 = run(ref, l_ref, CAMD_LAYOUT_UNKNOWN, x_nchw, (camd_cam_method)mth, aug, a, &err);
      if (aug && (mth == CAMD_CAM_GUIDEDBACKPROP || mth == CAMD_CAM_GUIDEDGRADCAM ||
                  mth == CAMD_CAM_FULLGRAD || mth == CAMD_CAM_POLYCAM_PLUS ||
                  mth == CAMD_CAM_POLYCAM_MINUS || mth == CAMD_CAM_POLYCAM_PLUSMINUS)) {
        /* The guided methods, fullgrad and Poly-CAM refuse aug_smooth, in either layout. */
        CHECK_MSG(rc1 == CAMD_E_INVALID && strstr(err.message, "aug_smooth"), "%s: %s", what,
                  err.message);
        rc1 = run(tf, l_tf, CAMD_LAYOUT_UNKNOWN, x_nhwc, (camd_cam_method)mth, aug, b, &err);
        CHECK_MSG(rc1 == CAMD_E_INVALID, "%s NHWC: %s", what, err.message);
        continue;
      }
      CHECK_MSG(rc1 == 0, "%s NCHW: %s", what, err.message);
      int rc2 = run(tf, l_tf, CAMD_LAYOUT_UNKNOWN, x_nhwc, (camd_cam_method)mth, aug, b, &err);
      CHECK_MSG(rc2 == 0, "%s NHWC: %s", what, err.message);
      if (!rc1 && !rc2) compare(what, b, a);
    }
  }
  /* Declaring the graph's own layout is fine; contradicting it names layer_layout. */
  camd_error err = {0};
  CHECK(!run(tf, l_tf, CAMD_LAYOUT_NHWC, x_nhwc, CAMD_CAM_GRADCAM, false, b, &err));
  CHECK_EQ_INT(run(tf, l_tf, CAMD_LAYOUT_NCHW, x_nhwc, CAMD_CAM_GRADCAM, false, b, &err),
               CAMD_E_INVALID);
  CHECK(strstr(err.message, "layer_layout") && strstr(err.message, "NHWC"));
done:
  camd_model_release(ref);
  camd_model_release(tf);
}

static void test_undecided_layer(void) {
  init_data();
  int l_ref, l_tf;
  camd_model *ref = build_nchw(&l_ref), *tf = build_nhwc(true, &l_tf);
  if (!ref || !tf) goto done;
  CHECK_EQ_INT(camd_model_value_layout(tf, l_tf), CAMD_LAYOUT_UNKNOWN);
  CHECK(camd_model_is_cam_layer(tf, l_tf));
  /* the suggestion skips the undecided map for the last one of known layout */
  CHECK_EQ_INT(camd_model_suggest_cam_layer(tf), camd_model_find_value(tf, "model/conv/Relu:0"));
  float a[2 * HW], b[2 * HW];
  camd_error err = {0};
  CHECK_EQ_INT(run(tf, l_tf, CAMD_LAYOUT_UNKNOWN, x_nhwc, CAMD_CAM_CAM, false, b, &err),
               CAMD_E_INVALID);
  CHECK_MSG(strstr(err.message, "layer_layout") && strstr(err.message, "model/map:0"), "%s",
            err.message);
  for (int mth = 0; mth < CAMD_CAM_METHOD_COUNT; mth++) {
    int rc1 = run(ref, l_ref, CAMD_LAYOUT_UNKNOWN, x_nchw, (camd_cam_method)mth, false, a, &err);
    CHECK_MSG(rc1 == 0, "%s: %s", camd_cam_method_name((camd_cam_method)mth), err.message);
    int rc2 = run(tf, l_tf, CAMD_LAYOUT_NHWC, x_nhwc, (camd_cam_method)mth, false, b, &err);
    CHECK_MSG(rc2 == 0, "%s: %s", camd_cam_method_name((camd_cam_method)mth), err.message);
    if (!rc1 && !rc2) compare(camd_cam_method_name((camd_cam_method)mth), b, a);
  }
done:
  camd_model_release(ref);
  camd_model_release(tf);
}

/* A Swin-like graph (torchvision's Swin keeps its maps N x H x W x C): Conv, permute to NHWC,
 * a window partition/merge (Reshape to tokens and back: undecided by itself) added to the map,
 * a zero Pad and an attention product of the tokens, permute back to NCHW before the pool. The
 * residual Add is NHWC (its known input decides), the merged map is NHWC (read by the Add with
 * the Add's shape), and the suggestion is the last map before the attention product, not the
 * zero Pad's copy of it. */
static void test_swin_like_layouts(void) {
  init_data();
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape xs = {4, {1, CI, H, W}}, s3 = {1, {3}}, s4 = {1, {4}}, s8 = {1, {8}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  test_weights tw = add_weights(g, false, &err);
  int wc = tw.wc, bc = tw.bc, wf = tw.wf, bf = tw.bf;
  int tok = camd_graph_add_constant(g, "tok", CAMD_INT64, &s3,
                                    camd_test_copy_ints((const int64_t[]){1, HW, C}, 3), &err);
  int map = camd_graph_add_constant(g, "map", CAMD_INT64, &s4,
                                    camd_test_copy_ints((const int64_t[]){1, H, W, C}, 4), &err);
  int zero = camd_graph_add_constant(
      g, "zero_pads", CAMD_INT64, &s8,
      camd_test_copy_ints((const int64_t[]){0, 0, 0, 0, 0, 0, 0, 0}, 8), &err);
  int64_t pads[4] = {1, 1, 1, 1}, ks[2] = {3, 3}, to_nchw[4] = {0, 3, 1, 2},
          to_nhwc[4] = {0, 2, 3, 1}, swap[3] = {0, 2, 1};
  camd_attr ca[2] = {{.name = "pads", .type = CAMD_ATTR_INTS, .ints = pads, .n = 4},
                     {.name = "kernel_shape", .type = CAMD_ATTR_INTS, .ints = ks, .n = 2}};
  camd_attr t1[1] = {{.name = "perm", .type = CAMD_ATTR_INTS, .ints = to_nchw, .n = 4}};
  camd_attr t2[1] = {{.name = "perm", .type = CAMD_ATTR_INTS, .ints = to_nhwc, .n = 4}};
  camd_attr t3[1] = {{.name = "perm", .type = CAMD_ATTR_INTS, .ints = swap, .n = 3}};
  camd_attr ga[1] = {{.name = "transB", .type = CAMD_ATTR_INT, .i = 1}};
  int conv = camd_test_node(g, "Conv", "embed", 3, (const int[]){x, wc, bc}, ca, 2);
  int emb = camd_test_node(g, "Transpose", "embed_nhwc", 1, &conv, t2, 1);
  int win = camd_test_node(g, "Reshape", "windows", 2, (const int[]){emb, tok}, NULL, 0);
  int merged = camd_test_node(g, "Reshape", "merged", 2, (const int[]){win, map}, NULL, 0);
  int res = camd_test_node(g, "Add", "res", 2, (const int[]){emb, merged}, NULL, 0);
  int pad = camd_test_node(g, "Pad", "pad", 2, (const int[]){res, zero}, NULL, 0);
  int q = camd_test_node(g, "Reshape", "q", 2, (const int[]){pad, tok}, NULL, 0);
  int qt = camd_test_node(g, "Transpose", "qt", 1, &q, t3, 1);
  int scores = camd_test_node(g, "MatMul", "scores", 2, (const int[]){q, qt}, NULL, 0);
  int ctx = camd_test_node(g, "MatMul", "ctx", 2, (const int[]){scores, q}, NULL, 0);
  int back = camd_test_node(g, "Reshape", "back", 2, (const int[]){ctx, map}, NULL, 0);
  int res2 = camd_test_node(g, "Add", "res2", 2, (const int[]){res, back}, NULL, 0);
  int perm = camd_test_node(g, "Transpose", "perm", 1, &res2, t1, 1);
  int gap = camd_test_node(g, "GlobalAveragePool", "gap", 1, &perm, NULL, 0);
  int flat = camd_test_node(g, "Flatten", "flat", 1, &gap, NULL, 0);
  int logits = camd_test_node(g, "Gemm", "logits", 3, (const int[]){flat, wf, bf}, ga, 1);
  CHECK(!camd_graph_mark_output(g, logits, &err));
  camd_model *m = NULL;
  CHECK_MSG(!camd_graph_finalize(g, NULL, &m, &err), "%s", err.message);
  if (!m) return;
  static const struct {
    const char *name;
    camd_layout layout;
  } want[] = {{"embed", CAMD_LAYOUT_NCHW},  {"embed_nhwc", CAMD_LAYOUT_NHWC},
              {"merged", CAMD_LAYOUT_NHWC}, {"res", CAMD_LAYOUT_NHWC},
              {"pad", CAMD_LAYOUT_NHWC},    {"back", CAMD_LAYOUT_NHWC},
              {"res2", CAMD_LAYOUT_NHWC},   {"perm", CAMD_LAYOUT_NCHW}};
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    camd_layout got = camd_model_value_layout(m, camd_model_find_value(m, want[i].name));
    CHECK_MSG(got == want[i].layout, "%s: layout %s, expected %s", want[i].name,
              camd_layout_name(got), camd_layout_name(want[i].layout));
  }
  CHECK_MSG(camd_model_suggest_cam_layer(m) == camd_model_find_value(m, "res"), "suggested %d",
            camd_model_suggest_cam_layer(m));
  camd_model_release(m);
}

/* Only the permute before the pool tells the layout: a map made by Reshape from a token
 * sequence, scaled, permuted to NCHW and pooled is NHWC (read backwards from the Transpose). */
static void test_layout_from_readers(void) {
  init_data();
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape xs = {4, {1, CI, H, W}}, s3 = {1, {3}}, s4 = {1, {4}}, s0 = {0, {0}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  test_weights tw = add_weights(g, false, &err);
  int wc = tw.wc, bc = tw.bc, wf = tw.wf, bf = tw.bf;
  int half = camd_graph_add_constant(g, "half", CAMD_FLOAT32, &s0,
                                     camd_test_copy_floats((const float[]){0.5f}, 1), &err);
  int chw = camd_graph_add_constant(g, "chw", CAMD_INT64, &s3,
                                    camd_test_copy_ints((const int64_t[]){1, C, HW}, 3), &err);
  int map = camd_graph_add_constant(g, "map", CAMD_INT64, &s4,
                                    camd_test_copy_ints((const int64_t[]){1, H, W, C}, 4), &err);
  int64_t pads[4] = {1, 1, 1, 1}, ks[2] = {3, 3}, to_nchw[4] = {0, 3, 1, 2}, swap[3] = {0, 2, 1};
  camd_attr ca[2] = {{.name = "pads", .type = CAMD_ATTR_INTS, .ints = pads, .n = 4},
                     {.name = "kernel_shape", .type = CAMD_ATTR_INTS, .ints = ks, .n = 2}};
  camd_attr t1[1] = {{.name = "perm", .type = CAMD_ATTR_INTS, .ints = to_nchw, .n = 4}};
  camd_attr t3[1] = {{.name = "perm", .type = CAMD_ATTR_INTS, .ints = swap, .n = 3}};
  camd_attr ga[1] = {{.name = "transB", .type = CAMD_ATTR_INT, .i = 1}};
  int conv = camd_test_node(g, "Conv", "embed", 3, (const int[]){x, wc, bc}, ca, 2);
  int flat3 = camd_test_node(g, "Reshape", "flat3", 2, (const int[]){conv, chw}, NULL, 0);
  int tokens = camd_test_node(g, "Transpose", "tokens", 1, &flat3, t3, 1);
  int grid = camd_test_node(g, "Reshape", "grid", 2, (const int[]){tokens, map}, NULL, 0);
  int scaled = camd_test_node(g, "Mul", "scaled", 2, (const int[]){grid, half}, NULL, 0);
  int perm = camd_test_node(g, "Transpose", "perm", 1, &scaled, t1, 1);
  int gap = camd_test_node(g, "GlobalAveragePool", "gap", 1, &perm, NULL, 0);
  int flat = camd_test_node(g, "Flatten", "flat", 1, &gap, NULL, 0);
  int logits = camd_test_node(g, "Gemm", "logits", 3, (const int[]){flat, wf, bf}, ga, 1);
  CHECK(!camd_graph_mark_output(g, logits, &err));
  camd_model *m = NULL;
  CHECK_MSG(!camd_graph_finalize(g, NULL, &m, &err), "%s", err.message);
  if (!m) return;
  CHECK_EQ_INT(camd_model_value_layout(m, grid), CAMD_LAYOUT_NHWC);
  CHECK_EQ_INT(camd_model_value_layout(m, scaled), CAMD_LAYOUT_NHWC);
  CHECK_EQ_INT(camd_model_value_layout(m, perm), CAMD_LAYOUT_NCHW);
  CHECK_EQ_INT(camd_model_suggest_cam_layer(m), perm);
  /* Grad-CAM on the NHWC map equals Grad-CAM on its NCHW permutation (the same numbers). */
  float a[2 * HW], b[2 * HW];
  CHECK(!run(m, perm, CAMD_LAYOUT_UNKNOWN, x_nchw, CAMD_CAM_GRADCAM, false, a, &err));
  CHECK_MSG(!run(m, scaled, CAMD_LAYOUT_UNKNOWN, x_nchw, CAMD_CAM_GRADCAM, false, b, &err), "%s",
            err.message);
  compare("gradcam NHWC vs NCHW", b, a);
  camd_model_release(m);
}

/* A conv weight of shape co × ci × k × k (seeded), as a new constant named `name`. */
static int conv_weight(camd_graph *g, const char *name, int co, int ci, int k, camd_error *err) {
  camd_shape ws = {4, {co, ci, k, k}};
  size_t n = (size_t)co * ci * k * k;
  float *w = malloc(n * sizeof(float));
  camd_rng r;
  camd_rng_seed(&r, 5);
  for (size_t i = 0; i < n; i++) w[i] = (float)(0.3 * camd_rng_normal(&r));
  return camd_graph_add_constant(g, name, CAMD_FLOAT32, &ws, w, err);
}

/* Poly-CAM's default layers (camd_cam_stage_layers): input 32² → r32 (32², the input's size:
 * never a stage) → a16 (16²) → b16 (1 × 1 conv, 16²: the last 16² map) → a8 → a4; walking back
 * from a4 the stage ends are b16, a8, a4, in forward order, the deepest `max` of them. */
static void test_stage_layers(void) {
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape xs = {4, {1, 2, 32, 32}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  int64_t p1[4] = {1, 1, 1, 1}, p0[4] = {0, 0, 0, 0}, k3[2] = {3, 3}, k1[2] = {1, 1},
          s1[2] = {1, 1}, s2[2] = {2, 2};
  camd_attr c3s1[3] = {{.name = "pads", .type = CAMD_ATTR_INTS, .ints = p1, .n = 4},
                       {.name = "kernel_shape", .type = CAMD_ATTR_INTS, .ints = k3, .n = 2},
                       {.name = "strides", .type = CAMD_ATTR_INTS, .ints = s1, .n = 2}};
  camd_attr c3s2[3] = {{.name = "pads", .type = CAMD_ATTR_INTS, .ints = p1, .n = 4},
                       {.name = "kernel_shape", .type = CAMD_ATTR_INTS, .ints = k3, .n = 2},
                       {.name = "strides", .type = CAMD_ATTR_INTS, .ints = s2, .n = 2}};
  camd_attr c1[3] = {{.name = "pads", .type = CAMD_ATTR_INTS, .ints = p0, .n = 4},
                     {.name = "kernel_shape", .type = CAMD_ATTR_INTS, .ints = k1, .n = 2},
                     {.name = "strides", .type = CAMD_ATTR_INTS, .ints = s1, .n = 2}};
  int w1 = conv_weight(g, "w1", 3, 2, 3, &err), w2 = conv_weight(g, "w2", 3, 3, 3, &err);
  int w3 = conv_weight(g, "w3", 3, 3, 1, &err), w4 = conv_weight(g, "w4", 3, 3, 3, &err);
  int w5 = conv_weight(g, "w5", 3, 3, 3, &err);
  int v = camd_test_node(g, "Conv", "conv1", 2, (const int[]){x, w1}, c3s1, 3);
  v = camd_test_node(g, "Relu", "r32", 1, &v, NULL, 0);
  v = camd_test_node(g, "Conv", "conv2", 2, (const int[]){v, w2}, c3s2, 3);
  v = camd_test_node(g, "Relu", "a16", 1, &v, NULL, 0);
  v = camd_test_node(g, "Conv", "b16", 2, (const int[]){v, w3}, c1, 3);
  v = camd_test_node(g, "Conv", "conv4", 2, (const int[]){v, w4}, c3s2, 3);
  v = camd_test_node(g, "Relu", "a8", 1, &v, NULL, 0);
  v = camd_test_node(g, "Conv", "conv5", 2, (const int[]){v, w5}, c3s2, 3);
  v = camd_test_node(g, "Relu", "a4", 1, &v, NULL, 0);
  v = camd_test_node(g, "GlobalAveragePool", "gap", 1, &v, NULL, 0);
  v = camd_test_node(g, "Flatten", "flat", 1, &v, NULL, 0);
  CHECK(!camd_graph_mark_output(g, v, &err));
  camd_model *m = NULL;
  CHECK_MSG(!camd_graph_finalize(g, NULL, &m, &err), "%s", err.message);
  if (!m) return;
  const char *want[3] = {"b16", "a8", "a4"};
  int a4 = camd_model_find_value(m, "a4"), ids[CAMD_CAM_MAX_LAYERS];
  CHECK(a4 >= 0);
  for (int max = 1; max <= 4; max++) {
    int n = camd_cam_stage_layers(m, a4, ids, max);
    int expect = max < 3 ? max : 3;
    CHECK_MSG(n == expect, "max %d: %d layers, expected %d", max, n, expect);
    for (int i = 0; i < n && n == expect; i++) {
      camd_value_info vi;
      CHECK(camd_model_value_info(m, ids[i], &vi) == 0);
      CHECK_MSG(vi.name && !strcmp(vi.name, want[3 - expect + i]), "max %d: layer %d is %s", max, i,
                vi.name ? vi.name : "?");
    }
  }
  /* From a8 the list ends there. */
  int n = camd_cam_stage_layers(m, camd_model_find_value(m, "a8"), ids, CAMD_CAM_MAX_LAYERS);
  CHECK_MSG(n == 2 && ids[0] == camd_model_find_value(m, "b16"), "from a8: %d layers", n);
  camd_model_release(m);
}
/* Swin's attention block as torchvision exports it: the NHWC map split into heads (Reshape to
 * [1, heads, tokens, dim]), q·kᵀ, Softmax, ·v, merged back (Reshape) and rolled back by the
 * cyclic shift (Slice + Concat along H) before the residual Add. The queries, keys, scores,
 * weights and context are attention internals: not CAM layers, listed nowhere, refused by name
 * with the suggested layer in the message (and by camd_cam_compute). The merged and rolled maps
 * are NHWC, read back from the Add through the Concat and Slices. */
static void test_attention_internals(void) {
  init_data();
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape xs = {4, {1, CI, H, W}}, s1 = {1, {1}}, s4 = {1, {4}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  test_weights tw = add_weights(g, false, &err);
  int wc = tw.wc, bc = tw.bc, wf = tw.wf, bf = tw.bf;
  int heads = camd_graph_add_constant(g, "heads", CAMD_INT64, &s4,
                                      camd_test_copy_ints((const int64_t[]){1, 1, HW, C}, 4), &err);
  int map = camd_graph_add_constant(g, "map", CAMD_INT64, &s4,
                                    camd_test_copy_ints((const int64_t[]){1, H, W, C}, 4), &err);
  int c0 = camd_graph_add_constant(g, "c0", CAMD_INT64, &s1,
                                   camd_test_copy_ints((const int64_t[]){0}, 1), &err);
  int c2 = camd_graph_add_constant(g, "c2", CAMD_INT64, &s1,
                                   camd_test_copy_ints((const int64_t[]){2}, 1), &err);
  int cH = camd_graph_add_constant(g, "cH", CAMD_INT64, &s1,
                                   camd_test_copy_ints((const int64_t[]){H}, 1), &err);
  int ax1 = camd_graph_add_constant(g, "ax1", CAMD_INT64, &s1,
                                    camd_test_copy_ints((const int64_t[]){1}, 1), &err);
  int64_t pads[4] = {1, 1, 1, 1}, ks[2] = {3, 3}, to_nchw[4] = {0, 3, 1, 2},
          to_nhwc[4] = {0, 2, 3, 1}, kt[4] = {0, 1, 3, 2};
  camd_attr ca[2] = {{.name = "pads", .type = CAMD_ATTR_INTS, .ints = pads, .n = 4},
                     {.name = "kernel_shape", .type = CAMD_ATTR_INTS, .ints = ks, .n = 2}};
  camd_attr t1[1] = {{.name = "perm", .type = CAMD_ATTR_INTS, .ints = to_nchw, .n = 4}};
  camd_attr t2[1] = {{.name = "perm", .type = CAMD_ATTR_INTS, .ints = to_nhwc, .n = 4}};
  camd_attr t3[1] = {{.name = "perm", .type = CAMD_ATTR_INTS, .ints = kt, .n = 4}};
  camd_attr sm[1] = {{.name = "axis", .type = CAMD_ATTR_INT, .i = -1}};
  camd_attr cat[1] = {{.name = "axis", .type = CAMD_ATTR_INT, .i = 1}};
  camd_attr ga[1] = {{.name = "transB", .type = CAMD_ATTR_INT, .i = 1}};
  int conv = camd_test_node(g, "Conv", "embed", 3, (const int[]){x, wc, bc}, ca, 2);
  int emb = camd_test_node(g, "Transpose", "embed_nhwc", 1, &conv, t2, 1);
  int q = camd_test_node(g, "Reshape", "q", 2, (const int[]){emb, heads}, NULL, 0);
  int kT = camd_test_node(g, "Transpose", "kT", 1, &q, t3, 1);
  int scores = camd_test_node(g, "MatMul", "scores", 2, (const int[]){q, kT}, NULL, 0);
  int probs = camd_test_node(g, "Softmax", "probs", 1, &scores, sm, 1);
  int ctx = camd_test_node(g, "MatMul", "ctx", 2, (const int[]){probs, q}, NULL, 0);
  int merged = camd_test_node(g, "Reshape", "merged", 2, (const int[]){ctx, map}, NULL, 0);
  int tail = camd_test_node(g, "Slice", "tail", 4, (const int[]){merged, c2, cH, ax1}, NULL, 0);
  int head = camd_test_node(g, "Slice", "head", 4, (const int[]){merged, c0, c2, ax1}, NULL, 0);
  int rolled = camd_test_node(g, "Concat", "rolled", 2, (const int[]){tail, head}, cat, 1);
  int res = camd_test_node(g, "Add", "res", 2, (const int[]){emb, rolled}, NULL, 0);
  int perm = camd_test_node(g, "Transpose", "perm", 1, &res, t1, 1);
  int gap = camd_test_node(g, "GlobalAveragePool", "gap", 1, &perm, NULL, 0);
  int flat = camd_test_node(g, "Flatten", "flat", 1, &gap, NULL, 0);
  int logits = camd_test_node(g, "Gemm", "logits", 3, (const int[]){flat, wf, bf}, ga, 1);
  CHECK(!camd_graph_mark_output(g, logits, &err));
  camd_model *m = NULL;
  CHECK_MSG(!camd_graph_finalize(g, NULL, &m, &err), "%s", err.message);
  if (!m) return;
  (void)kT, (void)scores, (void)probs, (void)tail, (void)head, (void)res;
  const int sug = camd_model_suggest_cam_layer(m);
  camd_value_info si;
  CHECK(sug >= 0 && !camd_model_value_info(m, sug, &si));
  CHECK_MSG(sug == camd_model_find_value(m, "embed_nhwc"), "suggested %s", sug >= 0 ? si.name : "");
  static const char *const internals[] = {"q", "kT", "scores", "probs", "ctx"};
  for (size_t i = 0; i < sizeof(internals) / sizeof(internals[0]); i++) {
    int v = camd_model_find_value(m, internals[i]);
    CHECK_MSG(camd_model_is_attention_value(m, v), "%s: not an attention internal", internals[i]);
    CHECK_MSG(!camd_model_is_cam_layer(m, v), "%s: listed as a CAM layer", internals[i]);
    CHECK_EQ_INT(camd_model_value_layout(m, v), CAMD_LAYOUT_UNKNOWN);
    int id = -1;
    err.message[0] = 0;
    CHECK_EQ_INT(camd_model_check_target(m, internals[i], &id, &err), CAMD_E_INVALID);
    CHECK_MSG(strstr(err.message, "attention") && strstr(err.message,
                                                         "suggested layer is "
                                                         "'embed_nhwc'"),
              "%s: %s", internals[i], err.message);
  }
  float a[2 * HW];
  CHECK_EQ_INT(run(m, scores, CAMD_LAYOUT_NHWC, x_nchw, CAMD_CAM_GRADCAM, false, a, &err),
               CAMD_E_INVALID);
  static const char *const maps[] = {"embed_nhwc", "merged", "tail", "head", "rolled", "res"};
  for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
    int v = camd_model_find_value(m, maps[i]);
    CHECK_MSG(camd_model_value_layout(m, v) == CAMD_LAYOUT_NHWC && camd_model_is_cam_layer(m, v) &&
                  !camd_model_is_attention_value(m, v),
              "%s: layout %s", maps[i], camd_layout_name(camd_model_value_layout(m, v)));
  }
  /* A Grad-CAM on the merged map runs (its layout comes from the graph). */
  CHECK_MSG(!run(m, merged, CAMD_LAYOUT_UNKNOWN, x_nchw, CAMD_CAM_GRADCAM, false, a, &err), "%s",
            err.message);
  camd_model_release(m);
}

CAMD_TEST_MAIN(CAMD_TEST(test_channels_last_model), CAMD_TEST(test_undecided_layer),
               CAMD_TEST(test_swin_like_layouts), CAMD_TEST(test_layout_from_readers),
               CAMD_TEST(test_stage_layers), CAMD_TEST(test_attention_internals))
