/* CAM suite: runs every CAM method of camd on a model and compares with PyTorch references.
 *
 * Usage: test_cam REFS_DIR MODEL
 *   REFS_DIR/MODEL is written by tests/cam/gen_cam_refs.py (model.onnx, input.bin, meta.json,
 *   one <case>.ref.bin per case: float32 n_classes × h × w raw maps). Each camd map and its
 *   reference are min-max normalised (and, separately, ReLU'd then min-max normalised, as the
 *   pipeline shows them); the case fails when either max |difference| exceeds 1e-3, or, for a
 *   case with a "kink_env" (<case>.kink.bin, float32 like the reference: per pixel, how far
 *   float32 ReLU flips at near-zero inputs may move the normalised map), when a difference
 *   exceeds 1e-3 plus the envelope at its pixel. Cases
 *   with "expect_error" must fail with that status. Noise methods must give identical maps when
 *   run twice. A case whose layer is a comma list runs camd_cam_compute_layers (fused maps at
 *   the input size). Prints one line per case with the margins and the time camd took. With
 *   CAMD_CAM_DUMP_DIR set, camd's raw maps are also written there as <case>.camd.bin (float32,
 *   the reference's shape) for looking at a difference.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/cam.h"
#include "camd/core.h"
#include "camd/engine.h"
#include "camd/onnx.h"

#define TOL 1e-3

static int failures = 0;

static float *read_floats(const char *dir, const char *name, size_t count) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    return NULL;
  }
  float *buf = malloc(count * sizeof(float) + 1);
  size_t got = buf ? fread(buf, sizeof(float), count, f) : 0;
  int extra = fgetc(f);
  fclose(f);
  if (got != count || extra != EOF) {
    fprintf(stderr, "%s: expected exactly %zu floats\n", path, count);
    free(buf);
    return NULL;
  }
  return buf;
}

/* Min-max normalisation in double (optionally after ReLU) into out. */
static void normalise(const float *in, size_t n, bool relu, double *out) {
  double lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < n; i++) {
    double v = in[i];
    if (relu && v < 0) v = 0;
    out[i] = v;
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  for (size_t i = 0; i < n; i++) out[i] = hi > lo ? (out[i] - lo) / (hi - lo) : 0.0;
}

/* max |difference| of the normalised maps; with env (the case's kink envelope, per pixel), also
 * *beyond = max(|difference| - env), what the tolerance must cover. */
static double max_diff(const float *a, const float *b, size_t n, bool relu, const float *env,
                       double *beyond) {
  double *na = malloc(n * sizeof(double)), *nb = malloc(n * sizeof(double));
  normalise(a, n, relu, na);
  normalise(b, n, relu, nb);
  double d = 0, over = -INFINITY;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(na[i] - nb[i]);
    d = fmax(d, e);
    over = fmax(over, e - (env ? env[i] : 0.0));
  }
  free(na);
  free(nb);
  *beyond = over;
  return d;
}

static int json_int_or(json_t *o, const char *key, int def) {
  json_t *v = json_object_get(o, key);
  return json_is_integer(v) ? (int)json_integer_value(v) : def;
}

static void run_case(const char *dir, camd_model *m, camd_session *s, camd_cam_workspace *w,
                     const float *input, json_t *c, const int *classes, int n_classes) {
  const char *name = json_string_value(json_object_get(c, "name"));
  const char *method = json_string_value(json_object_get(c, "method"));
  const char *layer = json_string_value(json_object_get(c, "layer"));
  const char *expect = json_string_value(json_object_get(c, "expect_error"));
  const char *score = json_string_value(json_object_get(c, "score"));
  camd_error err;
  camd_cam_request req;
  camd_cam_request_init(&req);
  if (camd_cam_method_parse(method, &req.method, &err) != 0) {
    fprintf(stderr, "FAIL %s: %s\n", name, err.message);
    failures++;
    return;
  }
  /* "a,b": the layers fused by camd_cam_compute_layers. */
  int layers[CAMD_CAM_MAX_LAYERS];
  camd_layout layouts[CAMD_CAM_MAX_LAYERS];
  int n_layers = 0;
  char list[1024];
  snprintf(list, sizeof(list), "%s", layer ? layer : "");
  for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    if (n_layers == CAMD_CAM_MAX_LAYERS ||
        camd_model_check_target(m, tok, &layers[n_layers], &err) != 0) {
      fprintf(stderr, "FAIL %s: layer '%s': %s\n", name, tok, err.message);
      failures++;
      return;
    }
    layouts[n_layers++] = CAMD_LAYOUT_UNKNOWN;
  }
  req.output = camd_model_find_value(m, "logits");
  req.classes = classes;
  req.n_classes = n_classes;
  req.score = !score                          ? CAMD_SCORE_LOGIT
              : strcmp(score, "softmax") == 0 ? CAMD_SCORE_SOFTMAX
              : strcmp(score, "sigmoid") == 0 ? CAMD_SCORE_SIGMOID
                                              : CAMD_SCORE_LOGIT;
  req.aug_smooth = json_is_true(json_object_get(c, "aug_smooth"));
  req.eigen_smooth = json_is_true(json_object_get(c, "eigen_smooth"));
  req.n_samples = json_int_or(c, "n_samples", req.n_samples);
  json_t *std = json_object_get(c, "noise_std");
  if (json_is_number(std)) req.noise_std = (float)json_number_value(std);
  req.seed = (uint64_t)json_int_or(c, "seed", 0);
  req.max_batch = json_int_or(c, "max_batch", 8);
  json_t *alpha = json_object_get(c, "finer_alpha"), *gamma = json_object_get(c, "gamma");
  if (json_is_number(alpha)) req.finer_alpha = (float)json_number_value(alpha);
  req.finer_compare = json_int_or(c, "finer_compare", req.finer_compare);
  if (json_is_number(gamma)) req.kpca_gamma = (float)json_number_value(gamma);

  camd_cam_maps out;
  uint64_t t0 = camd_now_ns();
  int rc = camd_cam_compute_layers(s, w, input, &req, layers, layouts, n_layers, &out, &err);
  double ms = (double)(camd_now_ns() - t0) / 1e6;
  if (expect) {
    bool ok = rc != 0 && strcmp(camd_status_code(rc), expect) == 0;
    printf("%-28s %s: got %s as expected: %s\n", name, ok ? "ok  " : "FAIL",
           rc ? camd_status_code(rc) : "success", rc ? err.message : "");
    if (!ok) failures++;
    return;
  }
  if (rc != 0) {
    printf("%-28s FAIL: %s (%s)\n", name, err.message, camd_status_code(rc));
    failures++;
    return;
  }
  json_t *shape = json_object_get(c, "shape");
  int h = (int)json_integer_value(json_array_get(shape, 1));
  int wd = (int)json_integer_value(json_array_get(shape, 2));
  if (out.height != h || out.width != wd) {
    printf("%-28s FAIL: map is %d x %d, reference %d x %d\n", name, out.height, out.width, h, wd);
    failures++;
    return;
  }
  size_t hw = (size_t)h * (size_t)wd;
  float *ref =
      read_floats(dir, json_string_value(json_object_get(c, "ref")), hw * (size_t)n_classes);
  if (!ref) {
    failures++;
    return;
  }
  float *mine = malloc(hw * (size_t)n_classes * sizeof(float));
  memcpy(mine, out.maps, hw * (size_t)n_classes * sizeof(float));
  const char *dump = getenv("CAMD_CAM_DUMP_DIR"); /* debugging: camd's raw maps, float32 */
  if (dump && *dump) {
    char dpath[4200];
    snprintf(dpath, sizeof(dpath), "%s/%s.camd.bin", dump, name);
    FILE *df = fopen(dpath, "wb");
    if (df) {
      fwrite(mine, sizeof(float), hw * (size_t)n_classes, df);
      fclose(df);
    }
  }
  /* The kink envelope (gen_cam_refs.py kink_envelope): per pixel, how far float32 ReLU flips
   * may move the normalised map; allowed on top of the tolerance, pixel by pixel. */
  const char *env_file = json_string_value(json_object_get(c, "kink_env"));
  float *env = env_file ? read_floats(dir, env_file, hw * (size_t)n_classes) : NULL;
  if (env_file && !env) {
    failures++;
    free(ref);
    free(mine);
    return;
  }
  double worst = 0, worst_relu = 0, beyond = -INFINITY, env_max = 0;
  char per_class[256] = "";
  for (int k = 0; k < n_classes; k++) {
    const float *ek = env ? env + k * hw : NULL;
    double b, br;
    double d = max_diff(mine + k * hw, ref + k * hw, hw, false, ek, &b);
    double dr = max_diff(mine + k * hw, ref + k * hw, hw, true, ek, &br);
    worst = fmax(worst, d);
    worst_relu = fmax(worst_relu, dr);
    beyond = fmax(beyond, fmax(b, br));
    size_t len = strlen(per_class);
    snprintf(per_class + len, sizeof(per_class) - len, " [class %d: %.1e/%.1e]", classes[k], d, dr);
  }
  for (size_t i = 0; env && i < hw * (size_t)n_classes; i++) env_max = fmax(env_max, env[i]);
  bool ok = env ? beyond <= TOL : worst <= TOL && worst_relu <= TOL;
  char kink[160] = "";
  if (env)
    snprintf(kink, sizeof(kink), ", beyond the kink envelope %.2e (envelope max %.1e, %d units)",
             beyond, env_max, json_int_or(c, "kink_units", 0));
  double t_fwd = out.ms_forward, t_bwd = out.ms_backward, t_cam = out.ms_cam;
  /* Noise methods: the same request gives the same map. */
  const char *det = "";
  if (req.method == CAMD_CAM_SMOOTHGRADCAMPP || req.method == CAMD_CAM_SSCAM) {
    rc = camd_cam_compute_layers(s, w, input, &req, layers, layouts, n_layers, &out, &err);
    bool same = rc == 0 && memcmp(mine, out.maps, hw * (size_t)n_classes * sizeof(float)) == 0;
    det = same ? ", rerun identical" : ", RERUN DIFFERS";
    ok = ok && same;
  }
  printf(
      "%-28s %s: max|diff| minmax %.2e, relu+minmax %.2e%s (tol %.0e) %dx%d %8.1f ms "
      "(fwd %.1f, bwd %.1f, cam %.1f)%s\n",
      name, ok ? "ok  " : "FAIL", worst, worst_relu, kink, TOL, h, wd, ms, t_fwd, t_bwd, t_cam,
      det);
  if (!ok) {
    printf("    per class (minmax/relu+minmax):%s\n", per_class);
    failures++;
  }
  free(env);
  free(ref);
  free(mine);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s REFS_DIR MODEL\n", argv[0]);
    return 2;
  }
  char dir[4096], path[4200];
  snprintf(dir, sizeof(dir), "%s/%s", argv[1], argv[2]);
  snprintf(path, sizeof(path), "%s/meta.json", dir);
  json_error_t jerr;
  json_t *meta = json_load_file(path, 0, &jerr);
  if (!meta) {
    fprintf(stderr, "%s: %s\n", path, jerr.text);
    return 1;
  }
  snprintf(path, sizeof(path), "%s/model.onnx", dir);
  camd_error err;
  camd_model *m = NULL;
  if (camd_onnx_load(path, NULL, &m, &err) != 0) {
    fprintf(stderr, "FAIL: %s\n", err.message);
    return 1;
  }
  json_t *cases = json_object_get(meta, "cases");
  int max_batch = 1;
  for (size_t i = 0; i < json_array_size(cases); i++) {
    int b = json_int_or(json_array_get(cases, i), "max_batch", 8);
    max_batch = b > max_batch ? b : max_batch;
  }
  camd_session *s = NULL;
  camd_cam_workspace *w = NULL;
  if (camd_session_create(m, max_batch, &s, &err) != 0 ||
      camd_cam_workspace_create(&w, &err) != 0) {
    fprintf(stderr, "FAIL: %s\n", err.message);
    return 1;
  }
  float *input = read_floats(dir, "input.bin", 3 * 224 * 224);
  json_t *jc = json_object_get(meta, "classes");
  int classes[8], n_classes = (int)json_array_size(jc);
  for (int k = 0; k < n_classes && k < 8; k++) {
    classes[k] = (int)json_integer_value(json_array_get(jc, (size_t)k));
  }
  if (!input || n_classes < 1 || n_classes > 8) return 1;
  printf("%s: %zu cases, classes", argv[2], json_array_size(cases));
  for (int k = 0; k < n_classes; k++) printf(" %d", classes[k]);
  printf("\n");
  uint64_t t0 = camd_now_ns();
  for (size_t i = 0; i < json_array_size(cases); i++) {
    run_case(dir, m, s, w, input, json_array_get(cases, i), classes, n_classes);
  }
  printf("%s: %d failure(s), %.1f s\n", argv[2], failures, (double)(camd_now_ns() - t0) / 1e9);
  free(input);
  camd_cam_workspace_destroy(w);
  camd_session_destroy(s);
  camd_model_release(m);
  json_decref(meta);
  return failures ? 1 : 0;
}
