/* Allocation-failure sweep through the library path of one explanation (tests/fault).
 *
 *   test_fault_explain MODEL.onnx IMAGE.png
 *
 * Phase "open": for N = 1, 2, ...: arm the N-th allocation to fail, open the model
 * (camd_explainer_open); it must fail with CAMD_E_NOMEM and a message, or succeed; until the
 * armed failure no longer happens.
 * Phase "run": for N = 1, 2, ...: arm, create a fresh explain context (so its engine session
 * builds its plans inside the sweep), explain the image (gradcam, top-2 targets, every output)
 * and write the JSON; that must fail with CAMD_E_NOMEM or succeed. Then, disarmed, the SAME
 * context explains the image again and must give the reference answer (the known latent bug: a
 * plan cached without its memory would overrun it here; ASan sees that).
 * Leaks are LeakSanitizer's (the ASan build runs this test). Bounded: at most 20000 steps per
 * phase. Exit 77 when the build has no failure injection. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "camd/explain.h"

#define MAX_STEPS 20000

static int failures;

/* The run's JSON without timings (NULL when a step failed). */
static char *run_json(camd_explain_ctx *ctx, camd_explainer *e, const camd_explain_input *in,
                      int *rc_out, camd_error *err) {
  camd_explain_options o;
  camd_explain_options_init(&o, e);
  int rc = camd_explain_options_set(&o, e, "target", "top2", err);
  if (!rc) rc = camd_explain_options_set(&o, e, "outputs", "all", err);
  camd_explain_result res;
  memset(&res, 0, sizeof(res));
  if (!rc) rc = camd_explain_run(ctx, e, &o, in, 1, false, NULL, &res, err);
  char *text = NULL;
  if (!rc) {
    json_t *j = camd_explain_item_json(&res, 0, 0);
    if (j) {
      json_object_del(j, "timings_ms");
      text = camd_explain_json_text(j, &res, NULL); /* what the server sends */
      json_decref(j);
    }
    if (!text) rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory writing the JSON");
  }
  camd_explain_result_free(&res);
  *rc_out = rc;
  return text;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s MODEL.onnx IMAGE.png\n", argv[0]);
    return 2;
  }
  if (!camd_fault_enabled()) {
    printf("SKIPPED: not a CAMD_FAULT_INJECT build\n");
    return 77;
  }
  json_set_alloc_funcs(malloc, free);
  camd_model_config cfg;
  camd_model_config_init(&cfg);
  snprintf(cfg.name, sizeof(cfg.name), "tiny");
  snprintf(cfg.path, sizeof(cfg.path), "%s", argv[1]);
  cfg.preprocess.width = cfg.preprocess.height = 32;
  cfg.width_given = cfg.height_given = true;
  size_t img_len = 0;
  unsigned char *img = NULL;
  camd_error err = {0};
  if (camd_read_file(argv[2], 1 << 24, &img, &img_len, &err)) {
    fprintf(stderr, "%s\n", err.message);
    return 1;
  }
  camd_explain_input in = {.data = img, .len = img_len};

  /* phase open */
  long n = 1, nomem = 0;
  for (; n <= MAX_STEPS; n++) {
    camd_explainer *e = NULL;
    camd_error_clear(&err);
    camd_fault_arm(n);
    int rc = camd_explainer_open(&cfg, &e, &err);
    bool fired = camd_fault_fired();
    camd_fault_arm(0);
    if (rc) {
      nomem++;
      if (rc != CAMD_E_NOMEM || !err.message[0] || !fired) {
        fprintf(stderr, "open, allocation %ld: status %s (%s), fired %d\n", n, camd_status_code(rc),
                err.message, fired);
        failures++;
      }
    } else {
      camd_explainer_release(e);
    }
    if (!fired) break;
  }
  printf("open: %ld allocations swept, %ld answered out_of_memory, the rest recovered\n", n - 1,
         nomem);

  camd_explainer *e = NULL;
  if (camd_explainer_open(&cfg, &e, &err)) {
    fprintf(stderr, "open: %s\n", err.message);
    free(img);
    return 1;
  }
  camd_explain_ctx *ref_ctx = NULL;
  int rc = camd_explain_ctx_create(1, &ref_ctx, &err);
  char *ref = rc ? NULL : run_json(ref_ctx, e, &in, &rc, &err);
  camd_explain_ctx_destroy(ref_ctx);
  if (!ref) {
    fprintf(stderr, "reference run: %s\n", err.message);
    camd_explainer_release(e);
    free(img);
    return 1;
  }

  /* phase run */
  long fails = 0;
  for (n = 1; n <= MAX_STEPS; n++) {
    camd_explain_ctx *ctx = NULL;
    camd_error_clear(&err);
    camd_fault_arm(n);
    rc = camd_explain_ctx_create(1, &ctx, &err);
    char *text = rc ? NULL : run_json(ctx, e, &in, &rc, &err);
    bool fired = camd_fault_fired();
    camd_fault_arm(0);
    if (rc) {
      fails++;
      if (rc != CAMD_E_NOMEM || !err.message[0]) {
        fprintf(stderr, "run, allocation %ld: status %s (%s)\n", n, camd_status_code(rc),
                err.message);
        failures++;
      }
    } else if (strcmp(text, ref) != 0) {
      size_t k = 0;
      while (text[k] && text[k] == ref[k]) k++;
      fprintf(stderr,
              "run, allocation %ld: the answer differs from the reference at byte %zu: "
              "'%.80s' vs '%.80s'\n",
              n, k, text + (k > 40 ? k - 40 : 0), ref + (k > 40 ? k - 40 : 0));
      failures++;
    }
    free(text);
    if (ctx) { /* the next identical request on the same context */
      camd_error_clear(&err);
      int rc2;
      char *again = run_json(ctx, e, &in, &rc2, &err);
      if (!again || strcmp(again, ref) != 0) {
        fprintf(stderr, "run, allocation %ld: the next request %s (%s)\n", n,
                again ? "differs from the reference" : "failed", err.message);
        failures++;
      }
      free(again);
      camd_explain_ctx_destroy(ctx);
    }
    if (!fired) break;
  }
  printf("run: %ld allocations swept, %ld answered out_of_memory, the rest recovered\n", n - 1,
         fails);
  if (n > MAX_STEPS) {
    fprintf(stderr, "the sweep did not finish within %d steps\n", MAX_STEPS);
    failures++;
  }
  free(ref);
  camd_explainer_release(e);
  free(img);
  printf("%s\n", failures ? "FAILED" : "passed");
  return failures ? 1 : 0;
}
