/* libFuzzer target for explain options: camd_explain_options_set over arbitrary key/value pairs,
 * without an explainer and with the tiny 5-class fixture model (tests/fuzz/data/tiny.onnx; its
 * labels contain a comma and differ only by case, which exercises label resolution).
 *
 * Input: lines "key=value" (a line without '=' is a key with an empty value; the whole input
 * after a NUL byte is one more value for key "target", so long values are reachable too).
 * After every call the options must still satisfy the documented ranges.
 * Build: tests/fuzz/build.sh (libFuzzer) or the ctest suite (tests/fuzz/suite.cmake). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "camd/explain.h"

#ifndef CAMD_FUZZ_DATA_DIR
#define CAMD_FUZZ_DATA_DIR "tests/fuzz/data"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static camd_explainer *tiny;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  const char *dir = getenv("CAMD_FUZZ_DATA_DIR");
  if (!dir) dir = CAMD_FUZZ_DATA_DIR;
  camd_model_config cfg;
  camd_model_config_init(&cfg);
  snprintf(cfg.name, sizeof(cfg.name), "tiny");
  snprintf(cfg.path, sizeof(cfg.path), "%s/tiny.onnx", dir);
  snprintf(cfg.labels_path, sizeof(cfg.labels_path), "%s/tiny.labels.txt", dir);
  cfg.preprocess.width = cfg.preprocess.height = 32;
  cfg.preprocess.mode = CAMD_RESIZE_STRETCH;
  camd_error err = {0};
  if (camd_explainer_open(&cfg, &tiny, &err) != 0) {
    fprintf(stderr, "fuzz_options: cannot open %s (%s); fuzzing without an explainer\n", cfg.path,
            err.message);
    tiny = NULL;
  }
  return 0;
}

static void check(const camd_explain_options *o, const camd_explainer *e) {
  int classes = e ? camd_explainer_num_labels(e) : 1000000;
  if (o->n_targets < 0 || o->n_targets > CAMD_MAX_TARGETS) abort();
  for (int i = 0; i < o->n_targets; i++) {
    if (o->targets[i] < 0 || o->targets[i] >= classes) abort();
  }
  if (o->target_topk < 1 || o->target_topk > CAMD_MAX_TARGETS) abort();
  if (o->topk < 1 || o->topk > 1000) abort();
  if (!(o->alpha >= 0.f && o->alpha <= 1.f)) abort();
  if (!(o->bbox_threshold >= 0.f && o->bbox_threshold <= 1.f)) abort();
  if (o->n_samples < 1 || o->n_samples > 256) abort();
  if (!(o->noise_std >= 0.f && o->noise_std <= 100.f)) abort();
  if ((unsigned)o->method >= CAMD_CAM_METHOD_COUNT ||
      (unsigned)o->score >= CAMD_EXPLAIN_SCORE_COUNT ||
      (unsigned)o->normalize >= CAMD_NORMALIZE_COUNT || (o->outputs & ~CAMD_OUT_ALL) ||
      !memchr(o->layer, 0, sizeof(o->layer)))
    abort();
}

static void set(camd_explain_options *o, const camd_explainer *e, const char *k, const char *v) {
  camd_explain_options before = *o;
  camd_error err = {0};
  int rc = camd_explain_options_set(o, e, k, v, &err);
  if (rc != 0) {
    if (memcmp(&before, o, sizeof(before)) != 0) abort(); /* on error *o is unchanged */
    if (!err.message[0]) abort();
  }
  check(o, e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  size_t first_len = strlen(text);
  const char *tail = first_len < size ? text + first_len + 1 : NULL;
  camd_explain_options a, b;
  camd_explain_options_init(&a, NULL);
  camd_explain_options_init(&b, tiny);
  check(&a, NULL);
  check(&b, tiny);
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *eq = strchr(line, '=');
    const char *value = "";
    if (eq) {
      *eq = '\0';
      value = eq + 1;
    }
    set(&a, NULL, line, value);
    if (tiny) set(&b, tiny, line, value);
  }
  if (tail) {
    set(&a, NULL, "target", tail);
    if (tiny) set(&b, tiny, "target", tail);
  }
  free(text);
  return 0;
}
