/* libFuzzer target for the ONNX loader: arbitrary bytes → camd_onnx_load_buffer (no external
 * data). Not built by default. Build and run (from the repository root):
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCAMD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
 *         -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link -DBUILD_TESTING=OFF
 *   cmake --build build-fuzz --target camd_lib -j2
 *   clang -g -fsanitize=fuzzer,address,undefined -Iinclude tests/fuzz/fuzz_onnx.c \
 *         build-fuzz/libcamd_lib.a build-fuzz/libcamd_onnx_proto.a \
 *         $(pkg-config --libs libprotobuf-c openblas libmicrohttpd jansson libpng libjpeg) \
 *         -lm -lpthread -o build-fuzz/fuzz_onnx
 *   mkdir -p build-fuzz/corpus && /usr/bin/python3 tests/onnx/make_models.py build-fuzz/gen && \
 *     cp build-fuzz/gen/models/[a-z]*.onnx build-fuzz/corpus/
 *   build-fuzz/fuzz_onnx -max_len=65536 -rss_limit_mb=1024 build-fuzz/corpus
 */
#include <stddef.h>
#include <stdint.h>

#include "camd/engine.h"
#include "camd/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  camd_onnx_options opts = {.max_file_bytes = (size_t)1 << 20, .max_external_bytes = 0};
  camd_error err;
  camd_model *m = NULL;
  if (camd_onnx_load_buffer(data, size, NULL, &opts, &m, &err) == 0) camd_model_release(m);
  return 0;
}
