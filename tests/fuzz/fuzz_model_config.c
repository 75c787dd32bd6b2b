/* libFuzzer target for the model configuration parser: camd_model_config_from_json_text on
 * arbitrary text (one "models" entry), with and without a base directory. On success the entry
 * must satisfy the documented constraints; on error cfg must be untouched.
 * Build: tests/fuzz/build.sh (libFuzzer) or the ctest suite (tests/fuzz/suite.cmake). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "camd/explain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_ok(const camd_model_config *c) {
  if (!memchr(c->name, 0, sizeof(c->name)) || !memchr(c->path, 0, sizeof(c->path)) ||
      !memchr(c->labels_path, 0, sizeof(c->labels_path)) ||
      !memchr(c->default_layer, 0, sizeof(c->default_layer)) ||
      !memchr(c->default_method, 0, sizeof(c->default_method)) ||
      !memchr(c->input_name, 0, sizeof(c->input_name)) ||
      !memchr(c->output_name, 0, sizeof(c->output_name)))
    abort();
  if (!c->name[0] || !c->path[0]) abort();
  for (const char *p = c->name; *p; p++) {
    char ch = *p;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '.' || ch == '_' || ch == '-'))
      abort();
  }
  const camd_preprocess_opts *p = &c->preprocess;
  if (p->width < 1 || p->width > 16384 || p->height < 1 || p->height > 16384) abort();
  for (int i = 0; i < 3; i++) {
    if (p->std[i] == 0.f || !isfinite(p->std[i]) || !isfinite(p->mean[i])) abort();
  }
  if (p->scale == 0.f || !isfinite(p->scale)) abort(); /* documented: non-zero, finite */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  static const char *const bases[] = {NULL, "/srv/models"};
  for (int b = 0; b < 2; b++) {
    camd_model_config cfg, before;
    memset(&cfg, 0xA5, sizeof(cfg));
    before = cfg;
    camd_error err = {0};
    int rc = camd_model_config_from_json_text(text, bases[b], &cfg, &err);
    if (rc == 0) {
      check_ok(&cfg);
    } else {
      if (memcmp(&cfg, &before, sizeof(cfg)) != 0) abort(); /* cfg is untouched on error */
      if (!err.message[0]) abort();
    }
  }
  free(text);
  return 0;
}
