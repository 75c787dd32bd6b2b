/* Unit tests of the model config entry parser (camd_model_config_from_json_text): every key,
 * every alias, every error path; and of camd_model_config_set (one key, the CLI's flags). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "camd/explain.h"
#include "testlib.h"

/* Parses `json`; expects `status` and, on error, every needle in the message. */
static void expect_error(const char *json, int status, const char *n1, const char *n2) {
  camd_model_config cfg;
  camd_model_config_init(&cfg);
  snprintf(cfg.name, sizeof(cfg.name), "untouched");
  camd_error err = {0};
  int rc = camd_model_config_from_json_text(json, "/base", &cfg, &err);
  CHECK_MSG(rc == status, "%s: rc %d, expected %d (%s)", json, rc, status, err.message);
  CHECK_EQ_INT(err.status, status);
  if (n1) CHECK_MSG(strstr(err.message, n1), "%s: message '%s' lacks '%s'", json, err.message, n1);
  if (n2) CHECK_MSG(strstr(err.message, n2), "%s: message '%s' lacks '%s'", json, err.message, n2);
  CHECK_MSG(!strcmp(cfg.name, "untouched"), "%s: config modified on error", json);
}

static void test_defaults(void) {
  camd_model_config c;
  camd_model_config_init(&c);
  CHECK_EQ_INT(c.preprocess.mode, CAMD_RESIZE_SHORTER);
  CHECK_EQ_INT(c.preprocess.width, 224);
  CHECK_EQ_INT(c.preprocess.height, 224);
  CHECK_EQ_INT(c.preprocess.resize_shorter, 256);
  CHECK_NEAR(c.preprocess.mean[0], 0.485, 1e-7);
  CHECK_NEAR(c.preprocess.std[2], 0.225, 1e-7);
  CHECK_NEAR(c.preprocess.scale, 1.0 / 255.0, 1e-9);
  CHECK_EQ_INT(c.preprocess.channels, 3);
  CHECK(!c.preprocess.bgr);
  CHECK_EQ_INT(c.activation, CAMD_ACTIVATION_AUTO);
  CHECK(!strcmp(c.default_method, "gradcam"));
  CHECK(!c.default_layer[0] && !c.labels_path[0] && !c.path[0]);
  camd_error err = {0};
  CHECK_MSG(!camd_model_config_from_json_text(
                "{\"name\": \"a\", \"path\": \"m\", \"activation\": \"auto\"}", NULL, &c, &err),
            "%s", err.message);
  CHECK_EQ_INT(c.activation, CAMD_ACTIVATION_AUTO);
}

static void test_minimal_and_paths(void) {
  camd_model_config c;
  camd_error err = {0};
  CHECK_EQ_INT(camd_model_config_from_json_text("{\"name\": \"r-18.v1_x\", \"path\": \"m.onnx\"}",
                                                "/base", &c, &err),
               0);
  CHECK(!strcmp(c.name, "r-18.v1_x"));
  CHECK(!strcmp(c.path, "/base/m.onnx"));
  CHECK(!c.labels_path[0]);
  CHECK_EQ_INT(c.preprocess.width, 224); /* defaults kept */
  CHECK_EQ_INT(
      camd_model_config_from_json_text(
          "{\"name\": \"a\", \"path\": \"/abs/m.onnx\", \"labels\": \"l.txt\"}", "/base", &c, &err),
      0);
  CHECK(!strcmp(c.path, "/abs/m.onnx"));
  CHECK(!strcmp(c.labels_path, "/base/l.txt"));
  CHECK_EQ_INT(camd_model_config_from_json_text(
                   "{\"name\": \"a\", \"path\": \"m.onnx\", \"labels\": null}", NULL, &c, &err),
               0);
  CHECK(!strcmp(c.path, "m.onnx"));
  CHECK(!c.labels_path[0]);
}

static void test_all_keys(void) {
  const char *j =
      "{\"name\": \"m\", \"path\": \"m.onnx\", \"labels\": \"l.txt\", \"input_size\": [320, 240],"
      " \"resize\": \"stretch\", \"resize_shorter\": 300, \"mean\": [0.5, 0.25, 0.125],"
      " \"std\": [2, 4, 8], \"scale\": 1.0, \"bgr\": true, \"channels\": 3,"
      " \"default_layer\": \"layer4\", \"default_method\": \"scorecam\", \"activation\": "
      "\"sigmoid\", \"input_name\": \"x\", \"output_name\": \"y\"}";
  camd_model_config c;
  camd_error err = {0};
  CHECK_MSG(camd_model_config_from_json_text(j, "", &c, &err) == 0, "%s", err.message);
  CHECK_EQ_INT(c.preprocess.width, 320);
  CHECK_EQ_INT(c.preprocess.height, 240);
  CHECK_EQ_INT(c.preprocess.mode, CAMD_RESIZE_STRETCH);
  CHECK_EQ_INT(c.preprocess.resize_shorter, 300);
  CHECK_NEAR(c.preprocess.mean[2], 0.125, 0);
  CHECK_NEAR(c.preprocess.std[1], 4, 0);
  CHECK_NEAR(c.preprocess.scale, 1, 0);
  CHECK(c.preprocess.bgr);
  CHECK(!strcmp(c.default_layer, "layer4"));
  CHECK(!strcmp(c.default_method, "scorecam"));
  CHECK_EQ_INT(c.activation, CAMD_ACTIVATION_SIGMOID);
  CHECK(!strcmp(c.input_name, "x") && !strcmp(c.output_name, "y"));
  CHECK(!strcmp(c.path, "m.onnx"));

  /* Gray, one mean/std for every channel, square input_size, width/height keys. */
  CHECK_EQ_INT(camd_model_config_from_json_text(
                   "{\"name\": \"g\", \"path\": \"g.onnx\", \"channels\": 1, \"mean\": [0.5], "
                   "\"std\": [0.25], \"input_size\": 28, \"activation\": \"none\"}",
                   NULL, &c, &err),
               0);
  CHECK_EQ_INT(c.preprocess.channels, 1);
  CHECK_NEAR(c.preprocess.mean[1], 0.5, 0);
  CHECK_NEAR(c.preprocess.std[2], 0.25, 0);
  CHECK_EQ_INT(c.preprocess.width, 28);
  CHECK_EQ_INT(c.preprocess.height, 28);
  CHECK_EQ_INT(c.activation, CAMD_ACTIVATION_NONE);
  CHECK_EQ_INT(camd_model_config_from_json_text(
                   "{\"name\": \"g\", \"path\": \"g.onnx\", \"width\": 64, \"height\": 48, "
                   "\"resize\": \"shorter\"}",
                   NULL, &c, &err),
               0);
  CHECK_EQ_INT(c.preprocess.width, 64);
  CHECK_EQ_INT(c.preprocess.height, 48);
  CHECK_EQ_INT(c.preprocess.mode, CAMD_RESIZE_SHORTER);
}

/* The spelling the scripts in models/ write (train_default.py, export_torchvision.py). */
static void test_aliases(void) {
  const char *j =
      "{\"name\": \"fashion_cam\", \"description\": \"d\", \"onnx\": \"f.onnx\","
      " \"labels\": \"f.labels.txt\", \"input_name\": \"input\", \"output_name\": \"logits\","
      " \"input_width\": 128, \"input_height\": 96, \"channels\": 3, \"channel_order\": \"BGR\","
      " \"layout\": \"NCHW\", \"resize\": \"shorter\", \"resize_size\": 144, \"crop\": "
      "\"center\", \"interpolation\": \"bilinear\", \"scale\": 0.00392156862745098,"
      " \"mean\": [0.1, 0.2, 0.3], \"std\": [0.4, 0.5, 0.6], \"output_activation\": \"sigmoid\","
      " \"default_layer\": \"/f/Relu_output_0\", \"default_method\": \"gradcam\","
      " \"test_accuracy\": 0.9, \"test_accuracy_set\": {\"n\": 1}, \"training\": {\"seed\": 1},"
      " \"torchvision_metrics\": {}, \"torchvision_num_params\": 5}";
  camd_model_config c;
  camd_error err = {0};
  CHECK_MSG(camd_model_config_from_json_text(j, "/m", &c, &err) == 0, "%s", err.message);
  CHECK(!strcmp(c.path, "/m/f.onnx"));
  CHECK(!strcmp(c.labels_path, "/m/f.labels.txt"));
  CHECK_EQ_INT(c.preprocess.width, 128);
  CHECK_EQ_INT(c.preprocess.height, 96);
  CHECK_EQ_INT(c.preprocess.resize_shorter, 144);
  CHECK(c.preprocess.bgr);
  CHECK_EQ_INT(c.activation, CAMD_ACTIVATION_SIGMOID);
  CHECK_NEAR(c.preprocess.scale, 1.0 / 255.0, 1e-9);
  CHECK_EQ_INT(c.layout, CAMD_LAYOUT_NCHW);
  CHECK(c.width_given && c.height_given);
}

/* Layouts and which sizes were given (only given sizes fix a model's free height / width). */
static void test_layouts(void) {
  camd_model_config c;
  camd_error err = {0};
  CHECK(camd_model_config_from_json_text("{\"name\": \"a\", \"path\": \"m\"}", NULL, &c, &err) ==
        0);
  CHECK_EQ_INT(c.layout, CAMD_LAYOUT_UNKNOWN);
  CHECK_EQ_INT(c.layer_layout, CAMD_LAYOUT_UNKNOWN);
  CHECK(!c.width_given && !c.height_given);
  CHECK_MSG(camd_model_config_from_json_text("{\"name\": \"a\", \"path\": \"m\", \"layout\": "
                                             "\"NHWC\", \"layer_layout\": \"NCHW\", \"width\": 64}",
                                             NULL, &c, &err) == 0,
            "%s", err.message);
  CHECK_EQ_INT(c.layout, CAMD_LAYOUT_NHWC);
  CHECK_EQ_INT(c.layer_layout, CAMD_LAYOUT_NCHW);
  CHECK(c.width_given && !c.height_given);
  CHECK_EQ_INT(c.task, CAMD_TASK_AUTO);
  CHECK(camd_model_config_from_json_text("{\"name\": \"a\", \"path\": \"m\", \"task\": "
                                         "\"embedding\"}",
                                         NULL, &c, &err) == 0);
  CHECK_EQ_INT(c.task, CAMD_TASK_EMBEDDING);
  CHECK(camd_model_config_from_json_text(
            "{\"name\": \"a\", \"path\": \"m\", \"layout\": \"auto\", \"input_size\": 32}", NULL,
            &c, &err) == 0);
  CHECK_EQ_INT(c.layout, CAMD_LAYOUT_UNKNOWN);
  CHECK(c.width_given && c.height_given && c.preprocess.height == 32);
}

static void test_errors(void) {
  expect_error("{\"name\": \"a\", \"path\": ", CAMD_E_FORMAT, "invalid JSON", "line 1");
  expect_error("[1, 2]", CAMD_E_INVALID, "must be a JSON object", NULL);
  expect_error("{\"path\": \"m.onnx\"}", CAMD_E_INVALID, "\"name\" is missing", NULL);
  expect_error("{\"name\": \"\", \"path\": \"m.onnx\"}", CAMD_E_INVALID, "\"name\" is empty", NULL);
  expect_error("{\"name\": 5, \"path\": \"m.onnx\"}", CAMD_E_INVALID, "\"name\" must be a string",
               NULL);
  expect_error("{\"name\": \"a/b\", \"path\": \"m.onnx\"}", CAMD_E_INVALID, "contains '/'",
               "letters, digits");
  expect_error("{\"name\": \"a\"}", CAMD_E_INVALID, "model 'a'", "\"path\"");
  expect_error("{\"name\": \"a\", \"path\": 3}", CAMD_E_INVALID, "\"path\" must be a string", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"\"}", CAMD_E_INVALID, "\"path\" is empty", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m.onnx\", \"colour\": 1}", CAMD_E_INVALID,
               "unknown key \"colour\"", "keys are: name, path");
  expect_error("{\"name\": \"a\", \"path\": \"m.onnx\", \"path\": \"n.onnx\"}", CAMD_E_FORMAT,
               "duplicate", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m.onnx\", \"onnx\": \"n.onnx\"}", CAMD_E_INVALID,
               "\"path\" and \"onnx\"", "only one");
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"input_size\": 0}", CAMD_E_INVALID,
               "\"input_size\" must be an integer within 1..16384", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"input_size\": \"224\"}", CAMD_E_INVALID,
               "[width, height]", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"input_size\": [224]}", CAMD_E_INVALID,
               "[width, height]", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"input_size\": [224, 0]}", CAMD_E_INVALID,
               "input_size[1] (height)", "1..16384");
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"input_size\": 224, \"width\": 10}",
               CAMD_E_INVALID, "\"input_size\" and \"width\"", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"width\": 20000}", CAMD_E_INVALID,
               "\"width\" must be an integer within 1..16384", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"height\": 2.5}", CAMD_E_INVALID,
               "\"height\" must be an integer", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"resize\": \"crop\"}", CAMD_E_INVALID,
               "\"crop\"", "\"stretch\", \"shorter\"");
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"resize\": 1}", CAMD_E_INVALID,
               "must be a string", "\"stretch\"");
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"resize_shorter\": 0}", CAMD_E_INVALID,
               "\"resize_shorter\" must be an integer within 1..65536", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"resize_size\": 9, \"resize_shorter\": 9}",
               CAMD_E_INVALID, "give only one", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"mean\": [1, 2]}", CAMD_E_INVALID,
               "\"mean\" must be an array of 3 numbers", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"mean\": 0.5}", CAMD_E_INVALID,
               "\"mean\" must be an array", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"mean\": [1, \"x\", 2]}", CAMD_E_INVALID,
               "\"mean\"[1] must be a finite number", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"mean\": [1, 1e39, 2]}", CAMD_E_INVALID,
               "outside float range", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"std\": [1, 0, 2]}", CAMD_E_INVALID,
               "\"std\"[1] is 0", "non-zero");
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"scale\": 0}", CAMD_E_INVALID,
               "\"scale\" must be non-zero", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"scale\": \"1/255\"}", CAMD_E_INVALID,
               "\"scale\" must be a finite number", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"bgr\": 1}", CAMD_E_INVALID,
               "\"bgr\" must be true or false", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"channel_order\": \"RBG\"}", CAMD_E_INVALID,
               "\"RBG\"", "\"RGB\", \"BGR\"");
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"bgr\": true, \"channel_order\": \"RGB\"}",
               CAMD_E_INVALID, "give only one", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"channels\": 2}", CAMD_E_INVALID,
               "\"channels\" must be 1 (gray) or 3", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"channels\": 1, \"bgr\": true}", CAMD_E_INVALID,
               "BGR needs", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"default_method\": \"gradcram\"}",
               CAMD_E_INVALID, "default_method", "gradcam");
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"default_layer\": 4}", CAMD_E_INVALID,
               "\"default_layer\" must be a string", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"activation\": \"relu\"}", CAMD_E_INVALID,
               "\"relu\"", "\"softmax\", \"sigmoid\", \"none\"");
  expect_error(
      "{\"name\": \"a\", \"path\": \"m\", \"activation\": \"none\", "
      "\"output_activation\": \"none\"}",
      CAMD_E_INVALID, "give only one", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"layout\": \"NWHC\"}", CAMD_E_INVALID,
               "\"NWHC\"", "\"NCHW\", \"NHWC\", \"auto\"");
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"layer_layout\": \"nhwc\"}", CAMD_E_INVALID,
               "\"layer_layout\"", "\"NHWC\"");
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"task\": \"detection\"}", CAMD_E_INVALID,
               "\"detection\"", "\"segmentation\", \"embedding\"");
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"crop\": \"random\"}", CAMD_E_INVALID,
               "\"random\"", "\"center\"");
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"interpolation\": \"bicubic\"}", CAMD_E_INVALID,
               "\"bicubic\"", "\"bilinear\"");
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"labels\": 7}", CAMD_E_INVALID,
               "\"labels\" must be a string", NULL);
  expect_error("{\"name\": \"a\", \"path\": \"m\", \"input_name\": [\"x\"]}", CAMD_E_INVALID,
               "\"input_name\" must be a string", NULL);
  expect_error("{\"name\": \"a\\u0000b\", \"path\": \"m\"}", CAMD_E_FORMAT, "u0000", NULL);

  char big[400];
  memset(big, 'x', sizeof(big));
  big[sizeof(big) - 1] = 0;
  char json[600];
  snprintf(json, sizeof(json), "{\"name\": \"%s\", \"path\": \"m\"}", big);
  expect_error(json, CAMD_E_INVALID, "\"name\" is 399 bytes long", "limit is 127");
  /* A path that does not fit once joined with the base directory. */
  char *longp = malloc(4200), *j2 = malloc(4400);
  memset(longp, 'p', 4090);
  longp[4090] = 0;
  snprintf(j2, 4400, "{\"name\": \"a\", \"path\": \"%s\"}", longp);
  expect_error(j2, CAMD_E_INVALID, "longer than 4095", NULL);
  free(longp);
  free(j2);
  /* More than 1 MiB of JSON. */
  size_t n = ((size_t)1 << 20) + 10;
  char *huge = malloc(n + 1);
  memset(huge, ' ', n);
  huge[0] = '{';
  huge[n - 1] = '}';
  huge[n] = 0;
  expect_error(huge, CAMD_E_LIMIT, "limit is 1048576", NULL);
  free(huge);

  camd_error err = {0};
  CHECK_EQ_INT(camd_model_config_from_json_text(NULL, NULL, NULL, &err), CAMD_E_INVALID);
}

/* One key at a time: the entry parser's rules and messages; cfg unchanged on error. */
static void test_set_one_key(void) {
  camd_model_config c;
  camd_model_config_init(&c);
  snprintf(c.name, sizeof(c.name), "m1");
  camd_error err = {0};
  json_t *v = json_pack("[ii]", 320, 240);
  CHECK_MSG(camd_model_config_set(&c, "input_size", v, NULL, &err) == 0, "%s", err.message);
  json_decref(v);
  CHECK(c.preprocess.width == 320 && c.preprocess.height == 240);
  v = json_integer(100);
  CHECK(camd_model_config_set(&c, "input_height", v, NULL, &err) == 0); /* alias */
  json_decref(v);
  CHECK_EQ_INT(c.preprocess.height, 100);
  v = json_string("rel/m.onnx");
  CHECK(camd_model_config_set(&c, "onnx", v, "/base", &err) == 0);
  json_decref(v);
  CHECK(!strcmp(c.path, "/base/rel/m.onnx"));

  camd_model_config before = c;
  v = json_integer(0);
  CHECK_EQ_INT(camd_model_config_set(&c, "width", v, NULL, &err), CAMD_E_INVALID);
  json_decref(v);
  CHECK(strstr(err.message, "model 'm1'") && strstr(err.message, "1..16384"));
  v = json_string("crop");
  CHECK_EQ_INT(camd_model_config_set(&c, "resize", v, NULL, &err), CAMD_E_INVALID);
  json_decref(v);
  CHECK(strstr(err.message, "\"stretch\", \"shorter\""));
  v = json_integer(1);
  CHECK_EQ_INT(camd_model_config_set(&c, "colour", v, NULL, &err), CAMD_E_INVALID);
  CHECK(strstr(err.message, "unknown key \"colour\"") && strstr(err.message, "path (alias onnx)"));
  CHECK_EQ_INT(camd_model_config_set(&c, "name", v, NULL, &err), CAMD_E_INVALID);
  json_decref(v);
  CHECK(!memcmp(&before, &c, sizeof(c))); /* errors leave cfg as it was */
  /* rules across keys: BGR needs 3 channels */
  v = json_true();
  CHECK(camd_model_config_set(&c, "bgr", v, NULL, &err) == 0);
  json_decref(v);
  before = c;
  v = json_integer(1);
  CHECK_EQ_INT(camd_model_config_set(&c, "channels", v, NULL, &err), CAMD_E_INVALID);
  json_decref(v);
  CHECK(strstr(err.message, "BGR needs"));
  CHECK(!memcmp(&before, &c, sizeof(c)));
}

CAMD_TEST_MAIN(CAMD_TEST(test_defaults), CAMD_TEST(test_set_one_key),
               CAMD_TEST(test_minimal_and_paths), CAMD_TEST(test_all_keys), CAMD_TEST(test_aliases),
               CAMD_TEST(test_layouts), CAMD_TEST(test_errors))
