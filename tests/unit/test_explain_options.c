/* Unit tests of explain options (every key, every error path), explainer loading (labels,
 * checks, metadata) and camd_explain_run's request errors, on the explain fixture's tiny model. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "camd/cam.h"
#include "camd/core.h"
#include "camd/explain.h"
#include "testlib.h"

#ifndef CAMD_EXPLAIN_FIXTURE_DIR
#define CAMD_EXPLAIN_FIXTURE_DIR "tests/explain/fixture"
#endif

static const char *fixture(const char *file) {
  static char buf[8][4096];
  static int next;
  char *b = buf[next++ % 8];
  const char *dir = getenv("CAMD_EXPLAIN_FIXTURE_DIR");
  snprintf(b, 4096, "%s/%s", dir ? dir : CAMD_EXPLAIN_FIXTURE_DIR, file);
  return b;
}

static const char *tmp_file(const char *name, const void *data, size_t len) {
  static char buf[4][512];
  static int next;
  char *b = buf[next++ % 4];
  const char *t = getenv("TMPDIR");
  snprintf(b, 512, "%s/camd_test_explain_%d_%s", t ? t : "/tmp", (int)getpid(), name);
  FILE *f = fopen(b, "wb");
  CHECK(f != NULL);
  if (f) {
    fwrite(data, 1, len, f);
    fclose(f);
  }
  return b;
}

/* Sets key=value on o (explainer e may be NULL); expects status and needles in the message. */
static void expect_set(camd_explain_options *o, const camd_explainer *e, const char *key,
                       const char *value, int status, const char *n1, const char *n2) {
  camd_error err = {0};
  int rc = camd_explain_options_set(o, e, key, value, &err);
  CHECK_MSG(rc == status, "%s=%s: rc %d, expected %d (%s)", key, value ? value : "(null)", rc,
            status, err.message);
  if (n1) CHECK_MSG(strstr(err.message, n1), "%s=%s: '%s' lacks '%s'", key, value, err.message, n1);
  if (n2) CHECK_MSG(strstr(err.message, n2), "%s=%s: '%s' lacks '%s'", key, value, err.message, n2);
}
#define OK(o, e, k, v) expect_set(o, e, k, v, 0, NULL, NULL)
#define BAD(o, e, k, v, n1, n2) expect_set(o, e, k, v, CAMD_E_INVALID, n1, n2)

static void test_defaults(void) {
  camd_explain_options o;
  camd_explain_options_init(&o, NULL);
  CHECK_EQ_INT(o.method, CAMD_CAM_GRADCAM);
  CHECK(!o.layer[0]);
  CHECK_EQ_INT(o.n_targets, 0);
  CHECK_EQ_INT(o.target_topk, 1);
  CHECK_EQ_INT(o.topk, 5);
  CHECK_EQ_INT(o.score, CAMD_EXPLAIN_SCORE_LOGIT);
  CHECK(o.relu);
  CHECK_EQ_INT(o.normalize, CAMD_NORMALIZE_MINMAX);
  CHECK(!o.aug_smooth && !o.eigen_smooth);
  CHECK_EQ_INT(o.colormap, CAMD_COLORMAP_JET);
  CHECK_NEAR(o.alpha, 0.5, 0);
  CHECK_EQ_INT(o.outputs, CAMD_OUT_OVERLAY | CAMD_OUT_BBOX);
  CHECK_NEAR(o.bbox_threshold, 0.2, 1e-7);
  CHECK_EQ_INT(o.n_samples, 16);
  CHECK_NEAR(o.noise_std, 0.2, 1e-7);
  CHECK_EQ_INT(o.seed, 0);
  CHECK_NEAR(o.finer_alpha, 1.0, 0);
  CHECK_EQ_INT(o.finer_compare, 3);
  CHECK_NEAR(o.kpca_gamma, 0.0, 0); /* auto: 1 / channels */
}

static void test_simple_keys(void) {
  camd_explain_options o;
  camd_explain_options_init(&o, NULL);
  OK(&o, NULL, "method", "scorecam");
  CHECK_EQ_INT(o.method, CAMD_CAM_SCORECAM);
  OK(&o, NULL, "method", "gradcam++");
  BAD(&o, NULL, "method", "gradcma", "method='gradcma'", "gradcam");
  BAD(&o, NULL, "method", "", "method", "layercam");
  CHECK_EQ_INT(o.method, CAMD_CAM_GRADCAMPP);

  OK(&o, NULL, "topk", "10");
  CHECK_EQ_INT(o.topk, 10);
  BAD(&o, NULL, "topk", "0", "topk='0'", "1..1000");
  BAD(&o, NULL, "topk", "1001", "1..1000", NULL);
  BAD(&o, NULL, "topk", "5x", "1..1000", NULL);
  BAD(&o, NULL, "topk", " 5", "1..1000", NULL);
  BAD(&o, NULL, "topk", "", "1..1000", NULL);
  CHECK_EQ_INT(o.topk, 10);

  OK(&o, NULL, "score", "softmax");
  CHECK_EQ_INT(o.score, CAMD_EXPLAIN_SCORE_SOFTMAX);
  OK(&o, NULL, "score", "output");
  CHECK_EQ_INT(o.score, CAMD_EXPLAIN_SCORE_OUTPUT);
  BAD(&o, NULL, "score", "prob", "score='prob'", "logit, softmax, sigmoid");

  OK(&o, NULL, "relu", "off");
  CHECK(!o.relu);
  OK(&o, NULL, "relu", "TRUE");
  CHECK(o.relu);
  BAD(&o, NULL, "relu", "maybe", "relu='maybe'", "true, false");
  OK(&o, NULL, "aug_smooth", "1");
  OK(&o, NULL, "eigen_smooth", "yes");
  CHECK(o.aug_smooth && o.eigen_smooth);
  BAD(&o, NULL, "aug_smooth", "2", "aug_smooth", "true, false");
  BAD(&o, NULL, "eigen_smooth", "", "eigen_smooth", NULL);

  OK(&o, NULL, "normalize", "none");
  CHECK_EQ_INT(o.normalize, CAMD_NORMALIZE_NONE);
  BAD(&o, NULL, "normalize", "max", "normalize='max'", "minmax, none");

  OK(&o, NULL, "colormap", "viridis");
  CHECK_EQ_INT(o.colormap, CAMD_COLORMAP_VIRIDIS);
  BAD(&o, NULL, "colormap", "rainbow", "colormap='rainbow'", "turbo");

  OK(&o, NULL, "alpha", "0.25");
  CHECK_NEAR(o.alpha, 0.25, 0);
  OK(&o, NULL, "alpha", "1e-1");
  CHECK_NEAR(o.alpha, 0.1, 1e-7);
  OK(&o, NULL, "alpha", "1");
  const char *bad_num[] = {"nan",  "inf", "1.01", "-0.1",  "0x1", "",   " 0.5",
                           "0.5 ", ".",   "1e",   "1e400", "+",   "0,5"};
  for (size_t i = 0; i < sizeof(bad_num) / sizeof(bad_num[0]); i++)
    BAD(&o, NULL, "alpha", bad_num[i], "alpha", "0..1");
  CHECK_NEAR(o.alpha, 1, 0);
  OK(&o, NULL, "bbox_threshold", "0");
  CHECK_NEAR(o.bbox_threshold, 0, 0);
  BAD(&o, NULL, "bbox_threshold", "2", "bbox_threshold='2'", "0..1");

  OK(&o, NULL, "n_samples", "256");
  CHECK_EQ_INT(o.n_samples, 256);
  BAD(&o, NULL, "n_samples", "0", "n_samples", "1..256");
  BAD(&o, NULL, "n_samples", "257", "1..256", NULL);
  BAD(&o, NULL, "n_samples", "1.5", "1..256", NULL);
  OK(&o, NULL, "noise_std", "0");
  OK(&o, NULL, "noise_std", "1.5");
  CHECK_NEAR(o.noise_std, 1.5, 0);
  BAD(&o, NULL, "noise_std", "-1", "noise_std", "0..100");
  BAD(&o, NULL, "noise_std", "101", "0..100", NULL);

  /* finercam's alpha and compared classes, kpcacam's gamma */
  OK(&o, NULL, "finer_alpha", "0");
  OK(&o, NULL, "finer_alpha", "0.25");
  CHECK_NEAR(o.finer_alpha, 0.25, 0);
  BAD(&o, NULL, "finer_alpha", "-0.5", "finer_alpha='-0.5'", "0..100");
  BAD(&o, NULL, "finer_alpha", "100.5", "0..100", NULL);
  BAD(&o, NULL, "finer_alpha", "nan", "0..100", NULL);
  OK(&o, NULL, "finer_compare", "64");
  CHECK_EQ_INT(o.finer_compare, 64);
  BAD(&o, NULL, "finer_compare", "0", "finer_compare='0'", "1..64");
  BAD(&o, NULL, "finer_compare", "65", "1..64", NULL);
  BAD(&o, NULL, "finer_compare", "2.5", "1..64", NULL);
  OK(&o, NULL, "gamma", "0.001");
  CHECK_NEAR(o.kpca_gamma, 0.001, 1e-10);
  OK(&o, NULL, "gamma", "1e-9");
  OK(&o, NULL, "gamma", "auto");
  CHECK_NEAR(o.kpca_gamma, 0.0, 0);
  BAD(&o, NULL, "gamma", "0", "gamma='0'", "1e-09..1e+06");
  BAD(&o, NULL, "gamma", "2e6", "auto", "1e-09..1e+06");
  BAD(&o, NULL, "gamma", "-1", "1e-09..1e+06", NULL);

  OK(&o, NULL, "seed", "9007199254740991");
  CHECK(o.seed == 9007199254740991ULL);
  OK(&o, NULL, "seed", "0");
  BAD(&o, NULL, "seed", "9007199254740992", "seed", "2^53");
  BAD(&o, NULL, "seed", "-1", "seed", NULL);
  BAD(&o, NULL, "seed", "99999999999999999999999", "seed", NULL);

  OK(&o, NULL, "layer", "whatever/name");
  CHECK(!strcmp(o.layer, "whatever/name"));
  OK(&o, NULL, "layer", "");
  CHECK(!o.layer[0]);
  char longv[600];
  memset(longv, 'l', sizeof(longv));
  longv[599] = 0;
  BAD(&o, NULL, "layer", longv, "511 bytes", NULL);

  CHECK_EQ_INT(o.layer_layout, CAMD_LAYOUT_UNKNOWN);
  OK(&o, NULL, "layer_layout", "NHWC");
  CHECK_EQ_INT(o.layer_layout, CAMD_LAYOUT_NHWC);
  OK(&o, NULL, "layer_layout", "NCHW");
  CHECK_EQ_INT(o.layer_layout, CAMD_LAYOUT_NCHW);
  BAD(&o, NULL, "layer_layout", "nhwc", "layer_layout", "NCHW, NHWC, tokens, auto");
  CHECK_EQ_INT(o.layer_layout, CAMD_LAYOUT_NCHW);
  OK(&o, NULL, "layer_layout", "auto");
  CHECK_EQ_INT(o.layer_layout, CAMD_LAYOUT_UNKNOWN);

  BAD(&o, NULL, "colour", "jet", "unknown option 'colour'", "method, layer, layer_layout, target");
  BAD(&o, NULL, "method", NULL, "method", "needs a value");
  char *huge = malloc(5000);
  memset(huge, '1', 4999);
  huge[4999] = 0;
  BAD(&o, NULL, "target", huge, "4999 bytes", "limit is 4096");
  free(huge);
}

static void test_outputs(void) {
  camd_explain_options o;
  camd_explain_options_init(&o, NULL);
  OK(&o, NULL, "outputs", "raw,mask");
  CHECK_EQ_INT(o.outputs, CAMD_OUT_RAW | CAMD_OUT_MASK);
  OK(&o, NULL, "outputs", " heatmap , BBOX ");
  CHECK_EQ_INT(o.outputs, CAMD_OUT_HEATMAP | CAMD_OUT_BBOX);
  OK(&o, NULL, "outputs", "all"); /* every picture output; the DICOM object only when named */
  CHECK_EQ_INT(o.outputs, 0x1F);
  OK(&o, NULL, "outputs", "bbox,dicom");
  CHECK_EQ_INT(o.outputs, CAMD_OUT_BBOX | CAMD_OUT_DICOM);
  OK(&o, NULL, "outputs", "none");
  CHECK_EQ_INT(o.outputs, 0);
  BAD(&o, NULL, "outputs", "", "outputs", "overlay, heatmap, mask, raw, bbox, dicom");
  BAD(&o, NULL, "outputs", "overlay,,mask", "outputs", "overlay, heatmap");
  BAD(&o, NULL, "outputs", "overlay,svg", "unknown output 'svg'", "overlay, heatmap");
  CHECK_EQ_INT(o.outputs, 0);
}

/* Equality is field by field: what the batching of the server relies on. */
static void test_equal(void) {
  camd_explain_options a, b;
  camd_explain_options_init(&a, NULL);
  memset(&b, 0xA5, sizeof(b)); /* stale bytes must not matter */
  camd_explain_options_init(&b, NULL);
  CHECK(camd_explain_options_equal(&a, &b));
  b.targets[5] = 9;                  /* beyond n_targets */
  snprintf(b.layer + 10, 8, "junk"); /* after the layer's NUL */
  CHECK(camd_explain_options_equal(&a, &b));
  OK(&a, NULL, "target", "1,2");
  CHECK(!camd_explain_options_equal(&a, &b));
  OK(&b, NULL, "target", "1,2");
  CHECK(camd_explain_options_equal(&a, &b));
  OK(&b, NULL, "target", "1,3");
  CHECK(!camd_explain_options_equal(&a, &b));
  OK(&b, NULL, "target", "1,2");
  const char *kv[][2] = {{"method", "scorecam"}, {"layer", "x"},        {"topk", "3"},
                         {"score", "output"},    {"relu", "false"},     {"normalize", "none"},
                         {"aug_smooth", "1"},    {"eigen_smooth", "1"}, {"colormap", "gray"},
                         {"alpha", "0.3"},       {"outputs", "raw"},    {"bbox_threshold", "0.5"},
                         {"n_samples", "3"},     {"noise_std", "1"},    {"seed", "7"},
                         {"target", "top2"},     {"window", "lung"},    {"window", "auto"},
                         {"window", "40,80"},    {"window", "dicom:1"}, {"frame", "2"},
                         {"quality", "true"},    {"metrics", "road"},   {"quality_steps", "8"},
                         {"road_noise", "0"},    {"box", "1,2,3,4"},    {"finer_alpha", "2"},
                         {"finer_compare", "2"}, {"gamma", "0.5"}};
  for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
    camd_explain_options c = b;
    OK(&c, NULL, kv[i][0], kv[i][1]);
    CHECK_MSG(!camd_explain_options_equal(&b, &c), "%s=%s must make the options differ", kv[i][0],
              kv[i][1]);
  }
}

/* box and mask (segmentation regions): parsing and the limits; whether the box lies inside the
 * image is checked when the image is decoded (tests/targets). */
static void test_box_mask(void) {
  camd_explain_options o;
  camd_explain_options_init(&o, NULL);
  CHECK(!o.has_box);
  OK(&o, NULL, "box", "3, 4 ,10,20");
  CHECK(o.has_box && o.box[0] == 3 && o.box[1] == 4 && o.box[2] == 10 && o.box[3] == 20);
  OK(&o, NULL, "box", "5,5,5,5"); /* one pixel */
  BAD(&o, NULL, "box", "1,2,3", "x0,y0,x1,y1", NULL);
  BAD(&o, NULL, "box", "1,2,3,4,5", "x0,y0,x1,y1", NULL);
  BAD(&o, NULL, "box", "1,2,-3,4", "x0,y0,x1,y1", NULL);
  BAD(&o, NULL, "box", "1,2,3,1000001", "0..1000000", NULL);
  BAD(&o, NULL, "box", "1,2,3.5,4", "integers", NULL);
  BAD(&o, NULL, "box", "9,2,3,4", "x0 <= x1", NULL);
  BAD(&o, NULL, "box", "1,9,3,4", "y0 <= y1", NULL);
  CHECK(o.box[0] == 5 && o.box[3] == 5); /* unchanged on error */
  OK(&o, NULL, "mask", "argmax");
  CHECK(!o.has_box);
  BAD(&o, NULL, "mask", "largest", "argmax", "PNG");
}

/* window and frame: the DICOM / gray-image options. */
static void test_window_frame(void) {
  camd_explain_options o;
  camd_explain_options_init(&o, NULL);
  CHECK_EQ_INT(o.window.kind, CAMD_WINDOW_DEFAULT);
  CHECK_EQ_INT(o.window.index, 0);
  CHECK_EQ_INT((int)o.frame, 0);
  OK(&o, NULL, "window", "lung");
  CHECK(o.window.kind == CAMD_WINDOW_EXPLICIT && o.window.center == -600 &&
        o.window.width == 1500 && !strcmp(o.window.name, "lung"));
  OK(&o, NULL, "window", " -600 , 1500 ");
  CHECK(o.window.kind == CAMD_WINDOW_EXPLICIT && o.window.center == -600 && !o.window.name[0]);
  OK(&o, NULL, "window", "AUTO");
  CHECK_EQ_INT(o.window.kind, CAMD_WINDOW_AUTO);
  BAD(&o, NULL, "window", "garbage", "option window='garbage'", "lung");
  BAD(&o, NULL, "window", "40,0", "option window", NULL);
  CHECK_EQ_INT(o.window.kind, CAMD_WINDOW_AUTO); /* unchanged on error */
  OK(&o, NULL, "frame", "14");
  CHECK_EQ_INT((int)o.frame, 14);
  BAD(&o, NULL, "frame", "-1", "option frame='-1'", "0..1000000");
  BAD(&o, NULL, "frame", "1e3", "option frame", NULL);
  CHECK_EQ_INT((int)o.frame, 14);
}

/* quality, metrics, quality_steps, road_noise: the quality metrics on request. */
static void test_quality(void) {
  camd_explain_options o;
  camd_explain_options_init(&o, NULL);
  CHECK_EQ_INT((int)o.metrics, 0);
  CHECK_EQ_INT(o.quality_steps, 16);
  CHECK(o.road_noise == 0.01f);
  CHECK_EQ_INT((int)camd_explain_quality_forwards(&o), 0);
  OK(&o, NULL, "quality", "true");
  CHECK_EQ_INT((int)o.metrics, (int)CAMD_METRIC_ALL);
  CHECK_EQ_INT((int)camd_explain_quality_forwards(&o), 1 + 16 + 16 + 18);
  OK(&o, NULL, "quality", "off");
  CHECK_EQ_INT((int)o.metrics, 0);
  OK(&o, NULL, "metrics", " Deletion , road ");
  CHECK_EQ_INT((int)o.metrics, (int)(CAMD_METRIC_DELETION | CAMD_METRIC_ROAD));
  OK(&o, NULL, "quality_steps", "4");
  CHECK_EQ_INT((int)camd_explain_quality_forwards(&o), 4 + 18);
  OK(&o, NULL, "metrics", "drop_increase,insertion");
  CHECK_EQ_INT((int)camd_explain_quality_forwards(&o), 1 + 4);
  OK(&o, NULL, "metrics", "all");
  CHECK_EQ_INT((int)o.metrics, (int)CAMD_METRIC_ALL);
  OK(&o, NULL, "metrics", "none");
  CHECK_EQ_INT((int)o.metrics, 0);
  OK(&o, NULL, "metrics", "road");
  BAD(&o, NULL, "metrics", "road,bogus", "unknown metric 'bogus'", "drop_increase, deletion");
  BAD(&o, NULL, "metrics", "road,", "option metrics", "drop_increase");
  BAD(&o, NULL, "quality", "maybe", "option quality='maybe'", "true, false");
  CHECK_EQ_INT((int)o.metrics, (int)CAMD_METRIC_ROAD); /* unchanged on error */
  BAD(&o, NULL, "quality_steps", "0", "option quality_steps='0'", "1..1024");
  BAD(&o, NULL, "quality_steps", "1025", "option quality_steps", "1..1024");
  CHECK_EQ_INT(o.quality_steps, 4);
  OK(&o, NULL, "road_noise", "0.5");
  CHECK(o.road_noise == 0.5f);
  BAD(&o, NULL, "road_noise", "-0.1", "option road_noise", "0..1");
  BAD(&o, NULL, "road_noise", "nan", "option road_noise", NULL);
  for (int i = 0; i < CAMD_METRIC_COUNT; i++) CHECK(camd_explain_metric_name(i) != NULL);
  CHECK(camd_explain_metric_name(CAMD_METRIC_COUNT) == NULL);
  CHECK(!strcmp(camd_explain_metric_name(CAMD_METRIC_BIT_ROAD), "road"));
}

static void test_targets_without_model(void) {
  camd_explain_options o;
  camd_explain_options_init(&o, NULL);
  OK(&o, NULL, "target", "281");
  CHECK_EQ_INT(o.n_targets, 1);
  CHECK_EQ_INT(o.targets[0], 281);
  OK(&o, NULL, "target", " 1, 2 ,3");
  CHECK_EQ_INT(o.n_targets, 3);
  CHECK_EQ_INT(o.targets[2], 3);
  OK(&o, NULL, "target", "top3");
  CHECK_EQ_INT(o.n_targets, 0);
  CHECK_EQ_INT(o.target_topk, 3);
  OK(&o, NULL, "target", "TOP16");
  CHECK_EQ_INT(o.target_topk, 16);
  BAD(&o, NULL, "target", "top0", "target='top0'", "1..16");
  BAD(&o, NULL, "target", "top17", "1..16", NULL);
  BAD(&o, NULL, "target", "top-1", "without a model", NULL);
  BAD(&o, NULL, "target", "tabby", "'tabby'", "without a model");
  BAD(&o, NULL, "target", "1,,2", "empty item", NULL);
  BAD(&o, NULL, "target", "1,", "empty item", NULL);
  BAD(&o, NULL, "target", "", "empty item", NULL);
  BAD(&o, NULL, "target", "4,5,4", "class 4 is given twice", NULL);
  BAD(&o, NULL, "target", "-1", "outside 0..999999", NULL);
  BAD(&o, NULL, "target", "1000000", "outside 0..999999", NULL);
  BAD(&o, NULL, "target", "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", "more than 16", NULL);
  CHECK_EQ_INT(o.n_targets, 0); /* failed sets leave the previous value */
  CHECK_EQ_INT(o.target_topk, 16);
}

static camd_explainer *open_tiny(camd_model_config *cfg) {
  camd_model_config_init(cfg);
  snprintf(cfg->name, sizeof(cfg->name), "tiny");
  snprintf(cfg->path, sizeof(cfg->path), "%s", fixture("tiny.onnx"));
  snprintf(cfg->labels_path, sizeof(cfg->labels_path), "%s", fixture("tiny.labels.txt"));
  cfg->preprocess.width = cfg->preprocess.height = 32;
  cfg->preprocess.mode = CAMD_RESIZE_STRETCH;
  camd_explainer *e = NULL;
  camd_error err = {0};
  int rc = camd_explainer_open(cfg, &e, &err);
  CHECK_MSG(rc == 0, "open tiny: %s", err.message);
  return e;
}

static void test_explainer(void) {
  camd_model_config cfg;
  camd_explainer *e = open_tiny(&cfg);
  if (!e) return;
  CHECK_EQ_INT(camd_explainer_num_labels(e), 5);
  CHECK(!strcmp(camd_explainer_label(e, 1), "Tabby, tabby cat"));
  CHECK(camd_explainer_label(e, 5) == NULL && camd_explainer_label(e, -1) == NULL);
  CHECK(!strcmp(camd_explainer_config(e)->name, "tiny"));
  CHECK(camd_explainer_model(e) != NULL);
  unsigned char *sha = NULL;
  size_t n = 0;
  camd_error err = {0};
  CHECK(camd_read_file(fixture("tiny.sha256"), 1000, &sha, &n, &err) == 0);
  if (sha) CHECK(n == 64 && !memcmp(sha, camd_explainer_sha256(e), 64)); /* hashlib's digest */
  free(sha);
  const char *layer = camd_explainer_default_layer(e);
  CHECK(layer && layer[0]);
  {
    camd_explain_options fo; /* finer_compare: fewer than the model's 5 outputs */
    camd_explain_options_init(&fo, e);
    OK(&fo, e, "finer_compare", "4");
    BAD(&fo, e, "finer_compare", "5", "1..4", "fewer than the model's outputs");
  }
  CHECK(camd_explainer_retain(e) == e);
  camd_explainer_release(e);

  char *info = camd_explainer_info_json(e);
  json_t *j = json_loads(info, 0, NULL);
  CHECK(j != NULL);
  if (j) {
    CHECK(!strcmp(json_string_value(json_object_get(j, "name")), "tiny"));
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "num_labels")), 5);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "labels")), 5);
    json_t *shape = json_object_get(json_object_get(j, "input"), "shape");
    CHECK_EQ_INT(json_integer_value(json_array_get(shape, 1)), 3);
    CHECK_EQ_INT(json_integer_value(json_array_get(shape, 3)), 32);
    CHECK(!strcmp(json_string_value(json_object_get(j, "default_layer")), layer));
    CHECK(!strcmp(json_string_value(json_object_get(j, "default_method")), "gradcam"));
    CHECK_EQ_INT(json_array_size(json_object_get(j, "methods")), CAMD_CAM_METHOD_COUNT);
    json_t *pre = json_object_get(j, "preprocessing");
    CHECK(!strcmp(json_string_value(json_object_get(pre, "resize")), "stretch"));
    bool found = false;
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(j, "layers"), i, l) {
      if (!strcmp(json_string_value(json_object_get(l, "name")), layer)) {
        found = true;
        CHECK_EQ_INT(json_integer_value(json_array_get(json_object_get(l, "shape"), 2)), 16);
      }
    }
    CHECK_MSG(found, "default layer %s not among the layers", layer);
    json_decref(j);
  }
  free(info);

  camd_explain_options o;
  camd_explain_options_init(&o, e);
  CHECK_EQ_INT(o.topk, 5);
  CHECK(!strcmp(o.layer, layer));
  OK(&o, e, "target", "tabby, tabby cat"); /* a whole label with a comma */
  CHECK(o.n_targets == 1 && o.targets[0] == 1);
  OK(&o, e, "target", "TABBY, TABBY CAT");
  CHECK(o.n_targets == 1 && o.targets[0] == 1);
  OK(&o, e, "target", "cat, dog");
  CHECK(o.n_targets == 2 && o.targets[0] == 0 && o.targets[1] == 2);
  OK(&o, e, "target", "Crane"); /* exact match wins over an earlier case-insensitive one */
  CHECK(o.n_targets == 1 && o.targets[0] == 4);
  OK(&o, e, "target", "CRANE");
  CHECK(o.n_targets == 1 && o.targets[0] == 3);
  OK(&o, e, "target", "4,cat");
  CHECK(o.n_targets == 2 && o.targets[0] == 4 && o.targets[1] == 0);
  OK(&o, e, "target", "top5");
  BAD(&o, e, "target", "top6", "1..5", "number of classes");
  BAD(&o, e, "target", "5", "outside 0..4", "model's classes");
  BAD(&o, e, "target", "cat,0", "class 0 is given twice", NULL);
  BAD(&o, e, "target", "horse",
      "'horse' is neither a class index (0..4) nor a label of model "
      "'tiny'",
      "topK");
  BAD(&o, e, "target", "tabby kitten", "similar labels: 1 'Tabby, tabby cat'", NULL);
  OK(&o, e, "topk", "5");
  BAD(&o, e, "topk", "6", "1..5", "number of classes");
  OK(&o, e, "layer", layer);
  BAD(&o, e, "layer", "nope", "layer 'nope' not found", "CAM layers");
  BAD(&o, e, "layer", "logits", "not a 4-D activation", NULL);
  camd_explainer_release(e);
}

/* camd_explainer_open failures: each names the model, the file and the fix. */
static void expect_open_error(camd_model_config *cfg, int status, const char *n1, const char *n2) {
  camd_explainer *e = NULL;
  camd_error err = {0};
  int rc = camd_explainer_open(cfg, &e, &err);
  CHECK_MSG(rc == status, "rc %d, expected %d (%s)", rc, status, err.message);
  CHECK(e == NULL);
  if (n1) CHECK_MSG(strstr(err.message, n1), "'%s' lacks '%s'", err.message, n1);
  if (n2) CHECK_MSG(strstr(err.message, n2), "'%s' lacks '%s'", err.message, n2);
  camd_explainer_release(e);
}

static void test_explainer_errors(void) {
  camd_model_config cfg;
  camd_explainer *e = open_tiny(&cfg);
  camd_explainer_release(e);
  camd_model_config c = cfg;
  c.name[0] = 0;
  expect_open_error(&c, CAMD_E_INVALID, "needs a name", NULL);
  c = cfg;
  c.path[0] = 0;
  expect_open_error(&c, CAMD_E_INVALID, "no .onnx path", NULL);
  c = cfg;
  snprintf(c.path, sizeof(c.path), "/nonexistent/m.onnx");
  expect_open_error(&c, CAMD_E_NOT_FOUND, "model 'tiny'", "/nonexistent/m.onnx");
  c = cfg;
  snprintf(c.path, sizeof(c.path), "%s", fixture("tiny.labels.txt"));
  expect_open_error(&c, CAMD_E_FORMAT, "model 'tiny'", "tiny.labels.txt");
  c = cfg;
  c.preprocess.width = 64;
  expect_open_error(&c, CAMD_E_INVALID, "[1, 3, 32, 64]", "[1, 3, 32, 32]");
  c = cfg;
  c.preprocess.channels = 1;
  expect_open_error(&c, CAMD_E_INVALID, "[1, 1, 32, 32]", "channels");
  c = cfg;
  snprintf(c.default_layer, sizeof(c.default_layer), "nope");
  expect_open_error(&c, CAMD_E_INVALID, "default_layer", "'nope' not found");
  c = cfg;
  snprintf(c.default_method, sizeof(c.default_method), "bogus");
  expect_open_error(&c, CAMD_E_INVALID, "default_method", "gradcam");
  c = cfg;
  snprintf(c.input_name, sizeof(c.input_name), "image");
  expect_open_error(&c, CAMD_E_INVALID, "input_name 'image'", "'input'");
  c = cfg;
  snprintf(c.output_name, sizeof(c.output_name), "probs");
  expect_open_error(&c, CAMD_E_INVALID, "output_name 'probs'", "'logits'");
  c = cfg;
  snprintf(c.labels_path, sizeof(c.labels_path), "/nonexistent/labels.txt");
  expect_open_error(&c, CAMD_E_NOT_FOUND, "labels", "/nonexistent/labels.txt");

  static const struct {
    const char *text, *n1, *n2;
  } bad_labels[] = {
      {"a\nb\nc\nd\n", "has 4 lines", "has 5 values"},
      {"a\nb\nc\nd\ne\nf", "has 6 lines", "one label per line"},
      {"a\nb\n\nd\ne\n", "line 3 is empty", NULL},
      {"a\nb\nc\r\nd\n\xff\xfe\n", "line 5 is not valid UTF-8", NULL},
      {"a\nb\nc\nd\n\xc0\xaf\n", "line 5 is not valid UTF-8", NULL},     /* overlong '/' */
      {"a\nb\n\xed\xa0\x80\nd\ne\n", "line 3 is not valid UTF-8", NULL}, /* surrogate */
  };
  for (size_t i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++) {
    c = cfg;
    snprintf(c.labels_path, sizeof(c.labels_path), "%s",
             tmp_file("labels.txt", bad_labels[i].text, strlen(bad_labels[i].text)));
    expect_open_error(&c, CAMD_E_INVALID, bad_labels[i].n1, bad_labels[i].n2);
  }
  char nul[] = "a\nb\nc\nd\ne\0x\n";
  c = cfg;
  snprintf(c.labels_path, sizeof(c.labels_path), "%s",
           tmp_file("labels.txt", nul, sizeof(nul) - 1));
  expect_open_error(&c, CAMD_E_INVALID, "line 5 contains a NUL byte", NULL);

  /* Accepted: BOM, CRLF, no final newline, UTF-8; no labels file gives class_<i>. */
  const char *good =
      "\xef\xbb\xbf"
      "chat\r\nK\xc3\xa4tzchen\r\n\xe7\x8c\xab\nd\ne";
  c = cfg;
  snprintf(c.labels_path, sizeof(c.labels_path), "%s", tmp_file("labels.txt", good, strlen(good)));
  camd_error err = {0};
  e = NULL;
  CHECK_MSG(camd_explainer_open(&c, &e, &err) == 0, "%s", err.message);
  if (e) {
    CHECK(!strcmp(camd_explainer_label(e, 0), "chat"));
    CHECK(!strcmp(camd_explainer_label(e, 1), "K\xc3\xa4tzchen"));
    CHECK(!strcmp(camd_explainer_label(e, 4), "e"));
  }
  camd_explainer_release(e);
  c = cfg;
  c.labels_path[0] = 0;
  e = NULL;
  CHECK(camd_explainer_open(&c, &e, &err) == 0);
  if (e) CHECK(!strcmp(camd_explainer_label(e, 3), "class_3"));
  camd_explainer_release(e);
  remove(tmp_file("labels.txt", "", 0));
}

static void test_run(void) {
  camd_model_config cfg;
  camd_explainer *e = open_tiny(&cfg);
  if (!e) return;
  camd_explain_ctx *ctx = NULL;
  camd_error err = {0};
  CHECK_EQ_INT(camd_explain_ctx_create(0, &ctx, &err), CAMD_E_INVALID);
  CHECK_EQ_INT(camd_explain_ctx_create(257, &ctx, &err), CAMD_E_INVALID);
  CHECK(camd_explain_ctx_create(2, &ctx, &err) == 0);
  unsigned char *png = NULL, *jpg = NULL;
  size_t png_len = 0, jpg_len = 0;
  CHECK(camd_read_file(fixture("chelsea.png"), 1 << 24, &png, &png_len, &err) == 0);
  CHECK(camd_read_file(fixture("corrupt.jpg"), 1 << 24, &jpg, &jpg_len, &err) == 0);
  camd_explain_options o;
  camd_explain_options_init(&o, e);
  camd_explain_result r = {0};
  camd_explain_input in[3] = {
      {.data = png, .len = png_len}, {.data = png, .len = png_len}, {.data = png, .len = png_len}};

  CHECK_EQ_INT(camd_explain_run(ctx, e, &o, in, 0, false, NULL, &r, &err), CAMD_E_LIMIT);
  CHECK_EQ_INT(camd_explain_run(ctx, e, &o, in, 3, false, NULL, &r, &err), CAMD_E_LIMIT);
  CHECK(strstr(err.message, "3 images") && strstr(err.message, "1..2"));

  /* A bad image fails alone: its item has the status, the other one is complete. */
  camd_explain_input bad[2] = {{.data = png, .len = png_len}, {.data = jpg, .len = jpg_len}};
  CHECK_EQ_INT(camd_explain_run(ctx, e, &o, bad, 2, false, NULL, &r, &err), CAMD_E_FORMAT);
  CHECK_MSG(strstr(err.message, "image 1"), "%s", err.message);
  CHECK_EQ_INT(r.n_items, 2);
  if (r.n_items == 2) {
    CHECK_EQ_INT(r.items[1].status, CAMD_E_FORMAT);
    CHECK(r.items[1].message && !strstr(r.items[1].message, "image 1"));
    CHECK(r.items[1].n_maps == 0 && r.items[1].n_predictions == 0);
    CHECK(camd_explain_item_json(&r, 1, 1) == NULL);
    CHECK_EQ_INT(r.items[0].status, 0);
    CHECK_EQ_INT(r.items[0].n_maps, 1);
    CHECK_EQ_INT(r.items[0].n_predictions, 5);
    CHECK(r.items[0].maps && r.items[0].maps[0].overlay.data);
  }
  camd_explain_result_free(&r);
  CHECK(r.n_items == 0 && r.items == NULL && r.explainer == NULL);
  camd_explain_input text = {.data = "hello", .len = 5};
  CHECK_EQ_INT(camd_explain_run(ctx, e, &o, &text, 1, false, NULL, &r, &err), CAMD_E_MEDIA);
  CHECK_MSG(strstr(err.message, "image 0"), "%s", err.message);
  camd_explain_result_free(&r);
  camd_explain_limits lim = {{100, 100, 0}, 0, 0, 0};
  CHECK_EQ_INT(camd_explain_run(ctx, e, &o, in, 1, false, &lim, &r, &err), CAMD_E_LIMIT);
  camd_explain_result_free(&r);
  /* Quality metrics over the caller's max_quality_forwards: the whole call fails, naming it. */
  camd_explain_limits qlim;
  memset(&qlim, 0, sizeof(qlim));
  camd_image_limits_default(&qlim.image);
  qlim.max_quality_forwards = 50; /* quality=true costs 1 + 16 + 16 + 18 = 51 per map */
  camd_explain_options oq = o;
  OK(&oq, e, "quality", "true");
  CHECK_EQ_INT(camd_explain_run(ctx, e, &oq, in, 1, false, &qlim, &r, &err), CAMD_E_LIMIT);
  CHECK_MSG(strstr(err.message, "max_quality_forwards is 50") && strstr(err.message, "51"), "%s",
            err.message);
  CHECK(r.n_items == 0);
  camd_explain_result_free(&r);
  /* Score-CAM over the caller's max_cam_forwards (one masked forward per channel of the layer,
   * × n_samples for sscam): refused before any work, naming the limit and the count; a gradient
   * method costs none. */
  camd_explain_limits clim = qlim;
  clim.max_quality_forwards = 0;
  clim.max_cam_forwards = 1;
  camd_explain_options os = o;
  OK(&os, e, "method", "scorecam");
  CHECK_EQ_INT(camd_explain_run(ctx, e, &os, in, 1, false, &clim, &r, &err), CAMD_E_LIMIT);
  CHECK_MSG(strstr(err.message, "max_cam_forwards is 1") && strstr(err.message, "scorecam"), "%s",
            err.message);
  long need1 = 0, need3 = 0;
  const char *at = strstr(err.message, "needs ");
  CHECK(at && sscanf(at, "needs %ld", &need1) == 1 && need1 > 1);
  camd_explain_result_free(&r);
  OK(&os, e, "method", "sscam");
  OK(&os, e, "n_samples", "3");
  CHECK_EQ_INT(camd_explain_run(ctx, e, &os, in, 1, false, &clim, &r, &err), CAMD_E_LIMIT);
  at = strstr(err.message, "needs ");
  CHECK(at && sscanf(at, "needs %ld", &need3) == 1);
  CHECK_MSG(need3 == 3 * need1, "sscam n_samples=3: %ld masked forwards, scorecam %ld", need3,
            need1);
  camd_explain_result_free(&r);
  CHECK_EQ_INT(camd_explain_run(ctx, e, &o, in, 1, false, &clim, &r, &err), 0);
  camd_explain_result_free(&r);

  /* Options checked again at run time (they may have been set without the model). */
  camd_explain_options o2 = o;
  o2.targets[0] = 7;
  o2.n_targets = 1;
  CHECK_EQ_INT(camd_explain_run(ctx, e, &o2, in, 1, false, NULL, &r, &err), CAMD_E_INVALID);
  CHECK(strstr(err.message, "outside 0..4"));
  o2 = o;
  snprintf(o2.layer, sizeof(o2.layer), "nope");
  CHECK_EQ_INT(camd_explain_run(ctx, e, &o2, in, 1, false, NULL, &r, &err), CAMD_E_INVALID);
  CHECK(strstr(err.message, "CAM layers"));
  o2 = o;
  o2.topk = 6;
  CHECK_EQ_INT(camd_explain_run(ctx, e, &o2, in, 1, true, NULL, &r, &err), CAMD_E_INVALID);
  o2 = o;
  o2.method = CAMD_CAM_METHOD_COUNT;
  CHECK_EQ_INT(camd_explain_run(ctx, e, &o2, in, 1, false, NULL, &r, &err), CAMD_E_INVALID);
  o2 = o;
  o2.score = CAMD_EXPLAIN_SCORE_COUNT;
  CHECK_EQ_INT(camd_explain_run(ctx, e, &o2, in, 1, false, NULL, &r, &err), CAMD_E_INVALID);
  o2 = o;
  o2.outputs = CAMD_OUT_ALL + 1;
  CHECK_EQ_INT(camd_explain_run(ctx, e, &o2, in, 1, false, NULL, &r, &err), CAMD_E_INVALID);
  CHECK(r.n_items == 0 && r.items == NULL); /* a failed call leaves the result empty */

  /* One image: its item, and its JSON object; the overlay PNG in the map. */
  OK(&o, e, "outputs", "all");
  OK(&o, e, "target", "top2");
  CHECK_MSG(camd_explain_run(ctx, e, &o, in, 1, false, NULL, &r, &err) == 0, "%s", err.message);
  CHECK_EQ_INT(r.n_items, 1);
  CHECK_EQ_INT(r.timings.batch_size, 1);
  CHECK(r.timings.total_ms >= r.timings.ms[CAMD_STAGE_DECODE]);
  json_t *j = camd_explain_item_json(&r, 0, 0);
  CHECK(j && json_is_object(j));
  if (r.n_items == 1) {
    const camd_explain_item *it = &r.items[0];
    CHECK_EQ_INT(it->n_maps, 2);
    const camd_explain_blob *ov = it->n_maps ? &it->maps[0].overlay : NULL;
    CHECK(ov && ov->data && ov->len > 8 && !memcmp(ov->data, "\x89PNG", 4));
    /* In the JSON text every picture is the item's PNG, base64-encoded (the tree holds
     * references that camd_explain_json_text replaces). */
    size_t text_len = 0;
    char *text = camd_explain_json_text(j, &r, &text_len);
    json_t *parsed = text ? json_loadb(text, text_len, 0, NULL) : NULL;
    CHECK(parsed && strlen(text) == text_len);
    const char *keys[] = {"overlay", "heatmap", "mask"};
    for (int k = 0; k < it->n_maps && k < 2; k++) {
      const camd_explain_blob *blobs[] = {&it->maps[k].overlay, &it->maps[k].heatmap,
                                          &it->maps[k].mask};
      for (int b = 0; b < 3; b++) {
        const char *b64 = json_string_value(json_object_get(
            json_array_get(json_object_get(parsed, "explanations"), (size_t)k), keys[b]));
        size_t dec_len = 0;
        unsigned char *dec = b64 ? camd_base64_decode(b64, strlen(b64), &dec_len, NULL) : NULL;
        CHECK_MSG(dec && blobs[b]->data && dec_len == blobs[b]->len &&
                      !memcmp(dec, blobs[b]->data, dec_len),
                  "map %d %s", k, keys[b]);
        free(dec);
      }
    }
    json_decref(parsed);
    free(text);
    CHECK_EQ_INT(it->width, 451);
    CHECK_EQ_INT(it->n_predictions, 5);
    if (it->n_maps == 2 && it->n_predictions == 5) {
      CHECK_EQ_INT(it->maps[0].target.index, it->predictions[0].index);
      CHECK_EQ_INT(it->maps[1].target.index, it->predictions[1].index);
      CHECK_EQ_INT(it->maps[0].raw_width, 16);
      CHECK(it->maps[1].mask.data != NULL);
    }
  }
  if (j) {
    json_t *ex = json_object_get(j, "explanations");
    CHECK_EQ_INT(json_array_size(ex), 2);
    json_t *preds = json_object_get(j, "predictions");
    CHECK_EQ_INT(json_array_size(preds), 5);
    /* topK explains the best classes, in order */
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(ex, 0), "index")),
                 json_integer_value(json_object_get(json_array_get(preds, 0), "index")));
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(ex, 1), "index")),
                 json_integer_value(json_object_get(json_array_get(preds, 1), "index")));
    double psum = 0;
    for (size_t k = 0; k < 5; k++)
      psum += json_real_value(json_object_get(json_array_get(preds, k), "probability"));
    CHECK_NEAR(psum, 1.0, 1e-5); /* all 5 classes of a softmax model */
    json_t *raw = json_object_get(json_array_get(ex, 0), "raw");
    CHECK_EQ_INT(json_integer_value(json_object_get(raw, "width")), 16);
    CHECK_EQ_INT(json_array_size(json_object_get(raw, "values")), 256);
    CHECK(json_object_get(json_array_get(ex, 1), "mask") != NULL);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(j, "image"), "width")), 451);
    /* the README's key order */
    const char *order[] = {"model", "camd_version", "method",       "layer",   "image",
                           "input", "predictions",  "explanations", "options", "timings_ms"};
    const char *key;
    json_t *v;
    size_t k = 0;
    json_object_foreach(j, key, v) {
      CHECK_MSG(k < 10 && !strcmp(key, order[k]), "key %zu is '%s'", k, key);
      k++;
    }
    CHECK_EQ_INT(k, 10);
  }
  json_decref(j);
  camd_explain_result_free(&r);
  CHECK(r.n_items == 0 && r.items == NULL);

  /* Two images: two items; predict_only has no explanations; the JSON index is the caller's. */
  CHECK(camd_explain_run(ctx, e, &o, in, 2, true, NULL, &r, &err) == 0);
  CHECK_EQ_INT(r.n_items, 2);
  j = camd_explain_item_json(&r, 1, 7);
  CHECK(j != NULL);
  if (j) {
    CHECK(json_object_get(j, "explanations") == NULL);
    CHECK(json_object_get(j, "method") == NULL);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "predictions")), 5);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(j, "image"), "index")), 7);
  }
  json_decref(j);
  if (r.n_items == 2) CHECK(r.items[1].n_maps == 0 && r.items[1].maps == NULL);
  camd_explain_result_free(&r);

  /* A second explainer on the same ctx gets its own session; dropping it frees it later. */
  camd_model_config cfg2;
  camd_explainer *e2 = open_tiny(&cfg2);
  if (e2) {
    camd_explain_options o3;
    camd_explain_options_init(&o3, e2);
    CHECK(camd_explain_run(ctx, e2, &o3, in, 1, false, NULL, &r, &err) == 0);
    camd_explain_result_free(&r);
    camd_explainer_release(e2);
  }
  CHECK(camd_explain_run(ctx, e, &o, in, 1, false, NULL, &r, &err) == 0);
  camd_explain_result_free(&r);

  camd_explain_ctx_destroy(ctx);
  camd_explainer_release(e);
  free(png);
  free(jpg);
}

CAMD_TEST_MAIN(CAMD_TEST(test_defaults), CAMD_TEST(test_simple_keys), CAMD_TEST(test_outputs),
               CAMD_TEST(test_equal), CAMD_TEST(test_window_frame), CAMD_TEST(test_quality),
               CAMD_TEST(test_targets_without_model), CAMD_TEST(test_explainer),
               CAMD_TEST(test_explainer_errors), CAMD_TEST(test_run), CAMD_TEST(test_box_mask))
