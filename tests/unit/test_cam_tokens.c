/* CAM methods on a transformer-style token map: a tiny patch-embedding model built twice, as a
 * CNN (Conv with kernel = stride → Relu → GAP → Gemm) and as a ViT exports it (the same Conv,
 * Reshape + Transpose to N × 16 tokens × C, a class token concatenated in front, Relu, the patch
 * tokens sliced back out, ReduceMean, MatMul + Add). The token value must be detected as layout
 * TOKENS (grid 4 × 4, one prefix token) and every method but `cam` must give the conv map's
 * maps: the loader's token reading drops the class token and reshapes like pytorch-grad-cam's
 * reshape_transform. Channel and class counts differ (C = 3, K = 5) so no axis mix-up passes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "camd/cam.h"
#include "camd/core.h"
#include "camd/engine.h"
#include "camd/graph.h"
#include "helper_graph.h"
#include "testlib.h"

enum { CI = 2, P = 2, G = 4, S = G * P, HW = G * G, C = 3, K = 5 };

static float x_in[CI * S * S], w_conv[C * CI * P * P], b_conv[C], w_fc[K * C], w_fct[C * K],
    b_fc[K], cls_tok[C];

static void init_data(void) {
  camd_rng r;
  camd_rng_seed(&r, 5);
  for (int i = 0; i < CI * S * S; i++) x_in[i] = (float)camd_rng_normal(&r);
  for (int i = 0; i < C * CI * P * P; i++) w_conv[i] = (float)(0.5 * camd_rng_normal(&r));
  for (int i = 0; i < C; i++) b_conv[i] = (float)(0.4 + 0.1 * camd_rng_normal(&r));
  for (int i = 0; i < K * C; i++) w_fc[i] = (float)camd_rng_normal(&r);
  for (int k = 0; k < K; k++)
    for (int c = 0; c < C; c++) w_fct[c * K + k] = w_fc[k * C + c];
  for (int i = 0; i < K; i++) b_fc[i] = (float)(0.5 * camd_rng_normal(&r));
  for (int i = 0; i < C; i++) cls_tok[i] = (float)camd_rng_normal(&r);
}

/* The patch-embedding Conv on input x of graph g. */
static int patch_conv(camd_graph *g, int x) {
  camd_error err = {0};
  camd_shape wcs = {4, {C, CI, P, P}}, bcs = {1, {C}};
  int wc = camd_graph_add_constant(g, "wc", CAMD_FLOAT32, &wcs,
                                   camd_test_copy_floats(w_conv, C * CI * P * P), &err);
  int bc =
      camd_graph_add_constant(g, "bc", CAMD_FLOAT32, &bcs, camd_test_copy_floats(b_conv, C), &err);
  static int64_t ks[2] = {P, P}, st[2] = {P, P};
  camd_attr ca[2] = {{.name = "strides", .type = CAMD_ATTR_INTS, .ints = st, .n = 2},
                     {.name = "kernel_shape", .type = CAMD_ATTR_INTS, .ints = ks, .n = 2}};
  return camd_test_node(g, "Conv", "patch", 3, (const int[]){x, wc, bc}, ca, 2);
}

static camd_model *finish(camd_graph *g, int logits) {
  camd_error err = {0};
  CHECK(!camd_graph_mark_output(g, logits, &err));
  camd_model *m = NULL;
  CHECK_MSG(!camd_graph_finalize(g, NULL, &m, &err), "%s", err.message);
  return m;
}

/* CNN form; *layer: the conv map. */
static camd_model *build_cnn(int *layer) {
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape xs = {4, {1, CI, S, S}}, wfs = {2, {K, C}}, bfs = {1, {K}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  int wf = camd_graph_add_constant(g, "wf", CAMD_FLOAT32, &wfs, camd_test_copy_floats(w_fc, K * C),
                                   &err);
  int bf =
      camd_graph_add_constant(g, "bf", CAMD_FLOAT32, &bfs, camd_test_copy_floats(b_fc, K), &err);
  camd_attr ga[1] = {{.name = "transB", .type = CAMD_ATTR_INT, .i = 1}};
  int conv = patch_conv(g, x);
  int act = camd_test_node(g, "Relu", "act", 1, &conv, NULL, 0);
  int gap = camd_test_node(g, "GlobalAveragePool", "gap", 1, &act, NULL, 0);
  int flat = camd_test_node(g, "Flatten", "flat", 1, &gap, NULL, 0);
  int logits = camd_test_node(g, "Gemm", "logits", 3, (const int[]){flat, wf, bf}, ga, 1);
  camd_model *m = finish(g, logits);
  *layer = m ? camd_model_find_value(m, "patch") : -1;
  return m;
}

/* ViT form; *layer: the tokens with the class token in front. */
static camd_model *build_vit(int *layer) {
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape xs = {4, {1, CI, S, S}}, wfs = {2, {C, K}}, bfs = {1, {K}}, s3 = {1, {3}};
  camd_shape cs = {3, {1, 1, C}}, s1 = {1, {1}};
  int x = camd_graph_add_input(g, "x", &xs, &err);
  int wf = camd_graph_add_constant(g, "wf", CAMD_FLOAT32, &wfs, camd_test_copy_floats(w_fct, K * C),
                                   &err);
  int bf =
      camd_graph_add_constant(g, "bf", CAMD_FLOAT32, &bfs, camd_test_copy_floats(b_fc, K), &err);
  int cls =
      camd_graph_add_constant(g, "cls", CAMD_FLOAT32, &cs, camd_test_copy_floats(cls_tok, C), &err);
  int flat_shape = camd_graph_add_constant(
      g, "flat_shape", CAMD_INT64, &s3, camd_test_copy_ints((const int64_t[]){1, C, HW}, 3), &err);
  int st = camd_graph_add_constant(g, "st", CAMD_INT64, &s1,
                                   camd_test_copy_ints((const int64_t[]){1}, 1), &err);
  int en = camd_graph_add_constant(g, "en", CAMD_INT64, &s1,
                                   camd_test_copy_ints((const int64_t[]){1 + HW}, 1), &err);
  int ax = camd_graph_add_constant(g, "ax", CAMD_INT64, &s1,
                                   camd_test_copy_ints((const int64_t[]){1}, 1), &err);
  static int64_t perm[3] = {0, 2, 1}, axes[1] = {1};
  camd_attr ta[1] = {{.name = "perm", .type = CAMD_ATTR_INTS, .ints = perm, .n = 3}};
  camd_attr ca[1] = {{.name = "axis", .type = CAMD_ATTR_INT, .i = 1}};
  camd_attr ra[2] = {{.name = "axes", .type = CAMD_ATTR_INTS, .ints = axes, .n = 1},
                     {.name = "keepdims", .type = CAMD_ATTR_INT, .i = 0}};
  int conv = patch_conv(g, x);
  int flat = camd_test_node(g, "Reshape", "flat", 2, (const int[]){conv, flat_shape}, NULL, 0);
  int tok = camd_test_node(g, "Transpose", "tok", 1, &flat, ta, 1);
  int with_cls = camd_test_node(g, "Concat", "tokens", 2, (const int[]){cls, tok}, ca, 1);
  int act = camd_test_node(g, "Relu", "act", 1, &with_cls, NULL, 0);
  int patches = camd_test_node(g, "Slice", "patches", 4, (const int[]){act, st, en, ax}, NULL, 0);
  int mean = camd_test_node(g, "ReduceMean", "mean", 1, &patches, ra, 2);
  int mm = camd_test_node(g, "MatMul", "mm", 2, (const int[]){mean, wf}, NULL, 0);
  int logits = camd_test_node(g, "Add", "logits", 2, (const int[]){mm, bf}, NULL, 0);
  camd_model *m = finish(g, logits);
  *layer = m ? camd_model_find_value(m, "tokens") : -1;
  return m;
}

static const int classes[2] = {0, 3};

static int run(camd_model *m, int layer, camd_cam_method method, bool aug, float *maps,
               camd_error *err) {
  camd_session *s = NULL;
  camd_cam_workspace *w = NULL;
  int rc = camd_session_create(m, 4, &s, err);
  if (!rc) rc = camd_cam_workspace_create(&w, err);
  if (!rc) {
    camd_cam_request req;
    camd_cam_request_init(&req);
    req.method = method;
    req.layer = layer;
    req.output = camd_model_output(m, 0);
    req.classes = classes;
    req.n_classes = 2;
    req.aug_smooth = aug;
    req.n_samples = 3;
    req.max_batch = 2;
    camd_cam_maps out;
    rc = camd_cam_compute(s, w, x_in, &req, &out, err);
    if (!rc) {
      /* Guided methods and fullgrad answer at the input's resolution (S x S), the others at the
       * layer's. */
      bool guided = method == CAMD_CAM_GUIDEDBACKPROP || method == CAMD_CAM_GUIDEDGRADCAM ||
                    method == CAMD_CAM_FULLGRAD;
      int side = guided ? S : G;
      CHECK(out.width == side && out.height == side);
      if (out.width == side && out.height == side)
        memcpy(maps, out.maps, sizeof(float) * 2 * (size_t)side * (size_t)side);
    }
  }
  camd_cam_workspace_destroy(w);
  camd_session_destroy(s);
  return rc;
}

static void test_token_maps(void) {
  init_data();
  int l_cnn, l_vit;
  camd_model *cnn = build_cnn(&l_cnn), *vit = build_vit(&l_vit);
  if (!cnn || !vit) goto done;
  CHECK_EQ_INT(camd_model_value_layout(vit, l_vit), CAMD_LAYOUT_TOKENS);
  CHECK(camd_model_is_cam_layer(vit, l_vit));
  camd_value_info vi;
  CHECK(!camd_model_value_info(vit, l_vit, &vi));
  int64_t c = 0, h = 0, w = 0;
  CHECK(camd_layout_geometry(&vi.shape, CAMD_LAYOUT_TOKENS, &c, &h, &w));
  CHECK(c == C && h == G && w == G);
  CHECK_EQ_INT((int)camd_layout_token_prefix(&vi.shape, CAMD_LAYOUT_TOKENS), 1);
  /* No attention product: the token maps are not suggested (the conv map is). */
  CHECK_EQ_INT(camd_model_suggest_cam_layer(vit), camd_model_find_value(vit, "patch"));
  static float a[2 * S * S], b[2 * S * S]; /* room for input-resolution (guided) maps */
  for (int mth = 0; mth < CAMD_CAM_METHOD_COUNT; mth++) {
    camd_error err = {0};
    const char *name = camd_cam_method_name((camd_cam_method)mth);
    if (mth == CAMD_CAM_CAM) {
      CHECK_EQ_INT(run(vit, l_vit, CAMD_CAM_CAM, false, b, &err), CAMD_E_UNSUPPORTED);
      CHECK_MSG(strstr(err.message, "gradcam") != NULL, "%s", err.message);
      continue;
    }
    int rc1 = run(cnn, l_cnn, (camd_cam_method)mth, mth == CAMD_CAM_GRADCAM, a, &err);
    CHECK_MSG(rc1 == 0, "%s CNN: %s", name, err.message);
    int rc2 = run(vit, l_vit, (camd_cam_method)mth, mth == CAMD_CAM_GRADCAM, b, &err);
    CHECK_MSG(rc2 == 0, "%s tokens: %s", name, err.message);
    if (rc1 || rc2) continue;
    bool guided =
        mth == CAMD_CAM_GUIDEDBACKPROP || mth == CAMD_CAM_GUIDEDGRADCAM || mth == CAMD_CAM_FULLGRAD;
    int n = guided ? 2 * S * S : 2 * HW;
    double mx = 0, diff = 0;
    for (int i = 0; i < n; i++) {
      mx = fmax(mx, fabs(a[i]));
      diff = fmax(diff, fabs((double)a[i] - b[i]));
    }
    CHECK_MSG(mx > 0 && diff <= 1e-5 * mx, "%s: maps differ by %g (largest %g)", name, diff, mx);
  }
done:
  camd_model_release(cnn);
  camd_model_release(vit);
}

CAMD_TEST_MAIN(CAMD_TEST(test_token_maps))
