#!/bin/sh
# Builds every libFuzzer target (tests/fuzz/fuzz_*.c) with clang, -fsanitize=fuzzer,address,
# undefined, against a sanitizer build of the camd module libraries (CMake, clang/clang++ for the
# DICOM unit, -fsanitize=fuzzer-no-link); targets are linked with clang++ (camd_image holds C++).
#   tests/fuzz/build.sh [BUILD_DIR]        (default: build-fuzz, relative to the repository root)
# Needs Debian's clang and libclang-rt-14-dev (apt-get install -y clang libclang-rt-14-dev).
# Then, e.g.:  build-fuzz/fuzz_body -max_total_time=120 build-fuzz/corpus/body
# (run.sh-style loop: see tests/fuzz/README.md).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build-fuzz}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
CC=${CC:-clang}
CXX=${CXX:-clang++}
JOBS=${JOBS:-2}
command -v "$CC" >/dev/null || { echo "build.sh: $CC not found (apt-get install -y clang libclang-rt-14-dev)" >&2; exit 1; }

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCAMD_SANITIZE=ON -DCAMD_NATIVE=OFF -DBUILD_TESTING=OFF \
  -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link" -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link" >/dev/null
cmake --build "$BUILD" --target camd_server camd_onnx -j"$JOBS"

# the module libraries (CMakeLists.txt camd_module), users before what they use
LIBS=""
for m in server explain onnx cam image engine core onnx_proto; do LIBS="$LIBS $BUILD/libcamd_$m.a"; done
LIBS="$LIBS \
  $(pkg-config --libs libprotobuf-c openblas libmicrohttpd jansson libpng libjpeg libopenjp2 zlib) \
  -ldcmjpls -ldcmjpeg -ldcmdata -loflog -lofstd -lm -lpthread"
for src in "$ROOT"/tests/fuzz/fuzz_*.c; do
  t=$(basename "$src" .c)
  echo "build.sh: $BUILD/$t"
  # shellcheck disable=SC2086
  "$CC" -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -Wall -Wextra -Werror \
    -DCAMD_FUZZ_DATA_DIR="\"$ROOT/tests/fuzz/data\"" -I"$ROOT/include" -I"$ROOT/src" \
    -c "$src" -o "$BUILD/$t.o"
  "$CXX" -g -fsanitize=fuzzer,address,undefined "$BUILD/$t.o" $LIBS -o "$BUILD/$t"
  # a writable copy of the seed corpus (libFuzzer adds what it finds to the first directory)
  mkdir -p "$BUILD/corpus/${t#fuzz_}"
  cp -n "$ROOT/tests/fuzz/corpus/${t#fuzz_}/"* "$BUILD/corpus/${t#fuzz_}/" 2>/dev/null || true
done
echo "build.sh: done; run e.g. $BUILD/fuzz_body -max_total_time=120 $BUILD/corpus/body"
