/* Default model check: camd's accuracy and logits on the held-out Fashion-MNIST scene set.
 *
 * Usage: test_default_model MODEL.onnx CONFIG.json HELDOUT_DIR
 *   HELDOUT_DIR is written by models/heldout.py (inputs.f32, labels.i32, logits.f32,
 *   heldout.json). Fails when camd's accuracy is more than 1 percentage point below the
 *   config's "test_accuracy" (PyTorch's own evaluation of the same scenes at training time),
 *   when camd's logits differ from PyTorch's by more than 1e-4 * max(1, max|ref|), or when the
 *   config's default_layer is not a usable CAM layer of the loaded model.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/engine.h"
#include "camd/onnx.h"
#include "camd/status.h"

#define MAX_BATCH 16

static int failures = 0;

#define FAIL(...)                          \
  do {                                     \
    fprintf(stderr, "FAIL: " __VA_ARGS__); \
    fputc('\n', stderr);                   \
    failures++;                            \
  } while (0)

/* Reads a whole file of exactly `bytes` bytes into a new buffer; NULL on error (reported). */
static void *read_exact(const char *dir, const char *name, size_t bytes) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    return NULL;
  }
  void *buf = malloc(bytes ? bytes : 1);
  size_t got = buf ? fread(buf, 1, bytes, f) : 0;
  int extra = fgetc(f);
  fclose(f);
  if (!buf || got != bytes || extra != EOF) {
    fprintf(stderr, "%s: expected exactly %zu bytes (read %zu)\n", path, bytes, got);
    free(buf);
    return NULL;
  }
  return buf;
}

static int json_int(json_t *obj, const char *key, long long *out) {
  json_t *v = json_object_get(obj, key);
  if (!json_is_integer(v)) {
    fprintf(stderr, "JSON key '%s' missing or not an integer\n", key);
    return -1;
  }
  *out = json_integer_value(v);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s MODEL.onnx CONFIG.json HELDOUT_DIR\n", argv[0]);
    return 2;
  }
  const char *model_path = argv[1], *config_path = argv[2], *dir = argv[3];

  /* Config: recorded accuracy and default layer. */
  json_error_t jerr;
  json_t *cfg = json_load_file(config_path, 0, &jerr);
  if (!cfg) {
    fprintf(stderr, "%s:%d: %s\n", config_path, jerr.line, jerr.text);
    return 1;
  }
  json_t *jacc = json_object_get(cfg, "test_accuracy");
  const char *default_layer = json_string_value(json_object_get(cfg, "default_layer"));
  if (!json_is_number(jacc) || !default_layer) {
    fprintf(stderr, "%s: needs numeric \"test_accuracy\" and string \"default_layer\"\n",
            config_path);
    return 1;
  }
  double recorded = json_number_value(jacc);

  /* Held-out set metadata. */
  char meta_path[4096];
  snprintf(meta_path, sizeof meta_path, "%s/heldout.json", dir);
  json_t *meta = json_load_file(meta_path, 0, &jerr);
  if (!meta) {
    fprintf(stderr, "%s:%d: %s (run models/heldout.py first)\n", meta_path, jerr.line, jerr.text);
    return 1;
  }
  long long n, c, h, w, k;
  if (json_int(meta, "n", &n) || json_int(meta, "channels", &c) || json_int(meta, "height", &h) ||
      json_int(meta, "width", &w) || json_int(meta, "classes", &k))
    return 1;
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || k <= 0 || n > 1000000 || c * h * w > (1 << 26)) {
    fprintf(stderr, "%s: implausible sizes\n", meta_path);
    return 1;
  }
  size_t per = (size_t)(c * h * w);
  float *inputs = read_exact(dir, "inputs.f32", (size_t)n * per * sizeof(float));
  int32_t *labels = read_exact(dir, "labels.i32", (size_t)n * sizeof(int32_t));
  float *ref = read_exact(dir, "logits.f32", (size_t)(n * k) * sizeof(float));
  if (!inputs || !labels || !ref) return 1;

  /* Model. */
  camd_error err;
  camd_error_clear(&err);
  camd_model *model = NULL;
  int rc = camd_onnx_load(model_path, NULL, &model, &err);
  if (rc != 0) {
    fprintf(stderr, "camd_onnx_load(%s): %s (%s)\n", model_path, err.message, camd_status_code(rc));
    return 1;
  }
  if (camd_model_num_inputs(model) != 1 || camd_model_num_outputs(model) < 1) {
    fprintf(stderr, "model must have one input and at least one output\n");
    return 1;
  }
  int in_id = camd_model_input(model, 0), out_id = camd_model_output(model, 0);
  camd_value_info vi;
  if (camd_model_value_info(model, in_id, &vi) == 0 &&
      (camd_shape_count(&vi.shape) != per || vi.shape.ndim != 4)) {
    char buf[128];
    camd_shape_format(&vi.shape, buf, sizeof buf);
    FAIL("model input shape %s does not match held-out %lldx%lldx%lld", buf, c, h, w);
  }

  /* Default CAM layer from the config must exist and be a CAM layer. */
  int layer_id = camd_model_find_value(model, default_layer);
  if (layer_id < 0)
    FAIL("default_layer '%s' not found in the model", default_layer);
  else if (!camd_model_is_cam_layer(model, layer_id))
    FAIL("default_layer '%s' is not a CAM layer", default_layer);
  int suggested = camd_model_suggest_cam_layer(model);
  if (suggested != layer_id) {
    camd_value_info si;
    const char *sname = "(none)";
    if (suggested >= 0 && camd_model_value_info(model, suggested, &si) == 0) sname = si.name;
    printf("note: engine suggests CAM layer '%s', config says '%s'\n", sname, default_layer);
  }

  int max_batch = camd_model_max_batch(model);
  if (max_batch > MAX_BATCH) max_batch = MAX_BATCH;
  if (max_batch < 1) max_batch = 1;
  camd_session *sess = NULL;
  rc = camd_session_create(model, max_batch, &sess, &err);
  if (rc != 0) {
    fprintf(stderr, "camd_session_create: %s (%s)\n", err.message, camd_status_code(rc));
    return 1;
  }

  double ref_max = 0.0, max_diff = 0.0;
  for (long long i = 0; i < n * k; i++)
    if (fabs(ref[i]) > ref_max) ref_max = fabs(ref[i]);
  long long correct = 0, ref_correct = 0, worst_item = -1;
  for (long long b0 = 0; b0 < n; b0 += max_batch) {
    int b = (int)(n - b0 < max_batch ? n - b0 : max_batch);
    rc = camd_session_forward(sess, b, inputs + (size_t)b0 * per, NULL, &err);
    if (rc != 0) {
      fprintf(stderr, "camd_session_forward (items %lld..): %s (%s)\n", b0, err.message,
              camd_status_code(rc));
      return 1;
    }
    camd_shape os;
    const float *out = camd_session_value(sess, out_id, &os);
    if (!out || camd_shape_count(&os) != (size_t)b * (size_t)k) {
      char buf[128] = "?";
      if (out) camd_shape_format(&os, buf, sizeof buf);
      fprintf(stderr, "output 0 missing or shaped %s, expected [%d, %lld]\n", buf, b, k);
      return 1;
    }
    for (int j = 0; j < b; j++) {
      const float *o = out + (size_t)j * k, *r = ref + (size_t)(b0 + j) * k;
      int arg = 0, rarg = 0;
      for (int q = 0; q < k; q++) {
        double d = fabs((double)o[q] - (double)r[q]);
        if (!(d <= max_diff)) { /* also catches NaN */
          max_diff = isnan(d) ? INFINITY : d;
          worst_item = b0 + j;
        }
        if (o[q] > o[arg]) arg = q;
        if (r[q] > r[rarg]) rarg = q;
      }
      correct += arg == labels[b0 + j];
      ref_correct += rarg == labels[b0 + j];
    }
  }
  double acc = (double)correct / (double)n, ref_acc = (double)ref_correct / (double)n;
  double tol = 1e-4 * (ref_max > 1.0 ? ref_max : 1.0);
  printf("camd accuracy %.4f on %lld held-out scenes (PyTorch on same file %.4f, recorded %.4f)\n",
         acc, n, ref_acc, recorded);
  printf("max |camd - PyTorch| logit diff %.3g (tolerance %.3g, worst item %lld)\n", max_diff, tol,
         worst_item);
  if (acc < recorded - 0.01)
    FAIL("camd accuracy %.4f is more than 1 point below the recorded %.4f", acc, recorded);
  if (!(max_diff <= tol)) FAIL("logits differ from PyTorch by %.3g > %.3g", max_diff, tol);

  camd_session_destroy(sess);
  camd_model_release(model);
  free(inputs);
  free(labels);
  free(ref);
  json_decref(meta);
  json_decref(cfg);
  if (failures)
    fprintf(stderr, "%d failure(s)\n", failures);
  else
    printf("ok\n");
  return failures ? 1 : 0;
}
