/* libFuzzer target for the server's request-body parsing (src/server/body.c, the functions the
 * daemon calls): the first byte picks the body kind (0 raw image, 1 JSON / KServe v1, 2 multipart
 * form fields replayed as libmicrohttpd post-processor callbacks), the rest is the body; then the
 * options are applied as start_job applies them (camd__http_apply_options, no explainer).
 * Limits are the defaults with smaller option caps so the limit paths are hit. libmicrohttpd's
 * own multipart parser is not covered (it needs a live connection).
 * Contract: an error is a 4xx/5xx of the status table; an accepted body has 1..max_instances
 * images. Build: tests/fuzz/build.sh (libFuzzer) or the ctest suite (tests/fuzz/suite.cmake). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/http_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const camd__http_limits limits = {1 << 20, 24, 512, 8};

/* Records [key length: 1][key][data length: 2, LE][data][flags: 1; bit 0: continuation (off >
 * 0), bit 1: no key], replayed as the post-processor's callbacks. */
static void replay_form(camd__request *r, const unsigned char *p, const unsigned char *end) {
  while (end - p >= 1) {
    size_t kl = *p++;
    if ((size_t)(end - p) < kl + 2) break;
    char key[256];
    memcpy(key, p, kl);
    key[kl] = '\0';
    p += kl;
    size_t dl = (size_t)p[0] | (size_t)p[1] << 8;
    p += 2;
    if ((size_t)(end - p) < dl + 1) break;
    const char *d = (const char *)p;
    p += dl;
    unsigned flags = *p++;
    r->received += dl;
    if (r->received > (size_t)r->lim.max_body_bytes) break;
    camd__http_form_iter(r, MHD_POSTDATA_KIND, (flags & 2) ? NULL : key, NULL, NULL, NULL, d,
                         (flags & 1) ? 1 : 0, dl);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int kind = data[0] % 3;
  data++, size--;
  camd__request *r = camd__request_new(NULL, &limits);
  if (!r) return 0;
  r->kind = kind == 1 ? CAMD__BODY_JSON : kind == 2 ? CAMD__BODY_FORM : CAMD__BODY_RAW;
  if (r->kind == CAMD__BODY_FORM) {
    replay_form(r, data, data + size);
  } else {
    size_t half = size / 2; /* two upload calls */
    if (half) camd__http_absorb(r, (const char *)data, half);
    if (size - half) camd__http_absorb(r, (const char *)data + half, size - half);
  }
  camd__opt_list l = {0};
  json_t *root = NULL;
  const char *model = NULL;
  camd__http_collect_body(r, &l, &root, &model);
  camd_explain_options o;
  camd__http_apply_options(r, NULL, &l, &o);
  camd__http_opts_free(&l);
  int http = r->err_status ? camd_status_http(r->err_status) : 0;
  bool broken = http ? http < 400 || http > 599
                     : r->job.n_inputs < 1 || r->job.n_inputs > limits.max_instances;
  json_decref(root);
  camd__request_free(r);
  if (broken) abort();
  return 0;
}
