/* libFuzzer target for the ONNX loader: arbitrary bytes → camd_onnx_load_buffer (no external
 * data). Build: tests/fuzz/build.sh (libFuzzer; see tests/fuzz/README.md); the ctest suite
 * (tests/fuzz/suite.cmake) replays tests/fuzz/corpus/onnx/ plus mutations without libFuzzer.
 */
#include <stddef.h>
#include <stdint.h>

#include "camd/engine.h"
#include "camd/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* Sizes for free image dimensions, so mutated shape sub-graphs on them fold too. */
  camd_onnx_options opts = {.max_file_bytes = (size_t)1 << 20,
                            .max_external_bytes = 0,
                            .input_height = 9,
                            .input_width = 7,
                            .input_channels = 3};
  camd_error err;
  camd_model *m = NULL;
  if (camd_onnx_load_buffer(data, size, NULL, &opts, &m, &err) == 0) camd_model_release(m);
  return 0;
}
