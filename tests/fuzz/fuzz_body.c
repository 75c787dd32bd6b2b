/* libFuzzer target for the server's request-body parsing (src/server/http.c through
 * camd__server_parse_body_for_fuzz): the first byte picks the body kind (0 raw image, 1 JSON /
 * KServe v1, 2 multipart form fields replayed as libmicrohttpd post-processor callbacks), the
 * rest is the body. Limits are the defaults with smaller option caps so the limit paths are hit.
 * libmicrohttpd's own multipart parser is not covered (it needs a live connection).
 * Build: tests/fuzz/build.sh (libFuzzer) or the ctest suite (tests/fuzz/suite.cmake). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "server/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static camd_server_config *cfg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!cfg) {
    cfg = calloc(1, sizeof(*cfg));
    if (!cfg) abort();
    camd__server_config_init(cfg);
    cfg->max_options = 24;
    cfg->max_option_bytes = 512;
    cfg->max_instances = 8;
    cfg->max_body_bytes = 1 << 20;
  }
  if (size < 1) return 0;
  int rc = camd__server_parse_body_for_fuzz(cfg, data[0] % 3, data + 1, size - 1);
  if (rc < 0 || (rc != 0 && (rc < 400 || rc > 599))) abort();
  return 0;
}
