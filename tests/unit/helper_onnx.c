/* Helpers shared by the ONNX loader tests: where the generated models are, file reading. */
#include "helper_onnx.h"

#include <stdio.h>
#include <stdlib.h>

const char *camd_test_onnx_path_in(const char *default_dir, const char *file) {
  static char buf[4096];
  const char *dir = getenv("CAMD_ONNX_TEST_DIR");
  if (!dir || !*dir) dir = default_dir;
  snprintf(buf, sizeof(buf), "%s/models/%s", dir, file);
  return buf;
}

unsigned char *camd_test_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  unsigned char *data = NULL;
  long size = -1;
  if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
  if (size >= 0 && fseek(f, 0, SEEK_SET) == 0 && (data = malloc((size_t)size + 1)) != NULL) {
    if (fread(data, 1, (size_t)size, f) != (size_t)size) {
      free(data);
      data = NULL;
    }
  }
  fclose(f);
  if (data) *len = (size_t)size;
  return data;
}

float *camd_test_read_f32(const char *path, size_t *count) {
  size_t len = 0;
  unsigned char *d = camd_test_read_file(path, &len);
  if (!d) return NULL;
  *count = len / 4;
  return (float *)d; /* malloc'd memory is suitably aligned; little-endian host */
}
