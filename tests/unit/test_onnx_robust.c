/* ONNX loader robustness: every truncation and thousands of random byte flips of valid model
 * files go through camd_onnx_load_buffer without a crash or over-read (run under ASan in CI). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "camd/engine.h"
#include "camd/onnx.h"
#include "helper_onnx.h"
#include "testlib.h"

static const char *const models[] = {"cnn.onnx", "shape_subgraph.onnx", "fold.onnx", "typed.onnx"};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void) { /* xorshift64*: deterministic, independent of camd */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ull;
}

/* Loads a heap copy of exactly len bytes so ASan catches any read past the end. */
static int load_copy(const unsigned char *data, size_t len, camd_error *err) {
  unsigned char *copy = malloc(len ? len : 1);
  if (!copy) return CAMD_E_NOMEM;
  if (len) memcpy(copy, data, len);
  camd_model *m = NULL;
  int rc = camd_onnx_load_buffer(copy, len, NULL, NULL, &m, err);
  if (rc == 0)
    CHECK(m != NULL);
  else
    CHECK(m == NULL && err->status == rc && err->message[0] != '\0');
  camd_model_release(m);
  free(copy);
  return rc;
}

static void test_valid_models_load(void) {
  for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
    size_t len = 0;
    unsigned char *data = camd_test_read_file(camd_test_onnx_path(models[i]), &len);
    CHECK_MSG(data != NULL, "cannot read %s", models[i]);
    if (!data) continue;
    camd_error err = {0};
    CHECK_MSG(load_copy(data, len, &err) == 0, "%s: %s", models[i], err.message);
    free(data);
  }
}

static void test_truncations_fail(void) {
  for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
    size_t len = 0;
    unsigned char *data = camd_test_read_file(camd_test_onnx_path(models[i]), &len);
    if (!data) continue;
    for (size_t cut = 0; cut < len; cut++) {
      camd_error err = {0};
      int rc = load_copy(data, cut, &err);
      /* opset_import is the last field written, so every strict prefix is invalid */
      CHECK_MSG(rc < 0, "%s truncated to %zu bytes loaded", models[i], cut);
    }
    free(data);
  }
}

static void test_byte_flips_do_not_crash(void) {
  int loaded = 0, rejected = 0;
  for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
    size_t len = 0;
    unsigned char *data = camd_test_read_file(camd_test_onnx_path(models[i]), &len);
    if (!data || !len) continue;
    unsigned char *mut = malloc(len);
    for (int iter = 0; mut && iter < 1500; iter++) {
      memcpy(mut, data, len);
      int flips = 1 + (int)(next_rand() % 4);
      for (int k = 0; k < flips; k++) {
        size_t pos = (size_t)(next_rand() % len);
        if (next_rand() & 1)
          mut[pos] ^= (unsigned char)(1u << (next_rand() % 8));
        else
          mut[pos] = (unsigned char)next_rand();
      }
      camd_error err = {0};
      if (load_copy(mut, len, &err) == 0)
        loaded++;
      else
        rejected++;
    }
    free(mut);
    free(data);
  }
  CHECK(rejected > 0); /* flips in structure must be caught */
  fprintf(stderr, "byte flips: %d loaded, %d rejected\n", loaded, rejected);
}

static void test_random_buffers(void) {
  unsigned char buf[512];
  for (int iter = 0; iter < 2000; iter++) {
    size_t len = (size_t)(next_rand() % sizeof(buf)) + 1;
    for (size_t k = 0; k < len; k++) buf[k] = (unsigned char)next_rand();
    camd_error err = {0};
    load_copy(buf, len, &err);
  }
}

CAMD_TEST_MAIN(CAMD_TEST(test_valid_models_load), CAMD_TEST(test_truncations_fail),
               CAMD_TEST(test_byte_flips_do_not_crash), CAMD_TEST(test_random_buffers))
