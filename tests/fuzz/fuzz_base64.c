/* libFuzzer target for base64: camd_base64_decode on arbitrary text (both alphabets,
 * whitespace, padding); a successful decode must re-encode to text that decodes to the same
 * bytes, and encoding the raw input must round-trip exactly.
 * Build: tests/fuzz/build.sh (libFuzzer) or the ctest suite (tests/fuzz/suite.cmake). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(const void *bytes, size_t n) {
  size_t tlen = 0;
  char *text = camd_base64_encode(bytes, n, &tlen);
  if (!text) abort();
  if (tlen != (n + 2) / 3 * 4 || text[tlen] != '\0') abort();
  size_t back_len = 0;
  camd_error err = {0};
  unsigned char *back = camd_base64_decode(text, tlen, &back_len, &err);
  if (!back || back_len != n || (n && memcmp(back, bytes, n))) abort();
  free(back);
  free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t n = 0;
  camd_error err = {0};
  unsigned char *out = camd_base64_decode((const char *)data, size, &n, &err);
  if (out) {
    if (n > size / 4 * 3 + 3) abort();
    roundtrip(out, n);
    free(out);
  } else if (err.status != CAMD_E_FORMAT && err.status != CAMD_E_NOMEM) {
    abort();
  }
  roundtrip(data, size);
  return 0;
}
