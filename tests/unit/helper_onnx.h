/* Helpers shared by the ONNX loader tests: where the generated models are, file reading. */
#ifndef CAMD_TEST_HELPER_ONNX_H
#define CAMD_TEST_HELPER_ONNX_H

#include <stddef.h>

/* "<dir>/models/<file>" in a static buffer, dir = env CAMD_ONNX_TEST_DIR or default_dir (the
 * generator's output directory, compiled into the test by tests/onnx/suite.cmake). */
const char *camd_test_onnx_path_in(const char *default_dir, const char *file);
#ifndef CAMD_ONNX_TEST_DIR
#define CAMD_ONNX_TEST_DIR "onnx_models"
#endif
#define camd_test_onnx_path(file) camd_test_onnx_path_in(CAMD_ONNX_TEST_DIR, file)
/* Reads a whole file (malloc'd; caller frees) or returns NULL. */
unsigned char *camd_test_read_file(const char *path, size_t *len);
/* Reads a float32 file; *count receives the element count. NULL on failure. */
float *camd_test_read_f32(const char *path, size_t *count);

#endif
