# camd container image: build + unit tests in one stage, a slim runtime in the other.
#
#   podman build --format docker -t camd .        (or: docker build -t camd .)
#   podman run --rm -p 127.0.0.1:8080:8080 camd
#
# The runtime image serves the default model (baked in at /opt/camd/models) on 0.0.0.0:8080 as
# a non-root user. Every setting comes from CAMD_* environment variables (see
# `podman run --rm camd serve --help`); your own models go in a directory mounted at /models
# together with a camd.json that names them, selected with CAMD_CONFIG=/models/camd.json.
ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim

# ---- build: compile (CMake Release) and run the unit tests ----------------------------------
FROM ${DEBIAN_IMAGE} AS build
ARG DEBIAN_FRONTEND=noninteractive
# The same list as the Makefile's DEPS_BUILD.
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      build-essential g++ cmake pkg-config protobuf-c-compiler libprotobuf-c-dev libonnx-dev \
      libopenblas-dev libmicrohttpd-dev libjansson-dev libpng-dev libjpeg-dev libdcmtk-dev \
      libopenjp2-7-dev libdnnl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY include include
COPY src src
# CAMD_NATIVE=OFF: the image must run on any x86-64 CPU, not only the build machine's
# (OpenBLAS still picks its kernels for the CPU it runs on). Pass --build-arg CAMD_NATIVE=ON
# for an image that only ever runs where it was built.
ARG CAMD_NATIVE=OFF
ARG JOBS=2
# The binary first (tests/ edits then only rebuild the tests), ...
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCAMD_NATIVE=${CAMD_NATIVE} -DBUILD_TESTING=OFF \
 && cmake --build build -j${JOBS} --target camd
# ... then the unit tests that need no Python fixture (there is no PyTorch here; the others
# run in `make check` on the host).
COPY tests tests
COPY docker/unit-tests.cmake /usr/local/share/camd/unit-tests.cmake
RUN cmake -S . -B build -DBUILD_TESTING=ON \
 && cmake --build build -j${JOBS} \
 && cd build && cmake -DJOBS=${JOBS} -P /usr/local/share/camd/unit-tests.cmake \
 && install -D -m 0755 camd /out/usr/local/bin/camd \
 && strip --strip-debug /out/usr/local/bin/camd

# ---- runtime --------------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      libopenblas0-pthread libmicrohttpd12 libjansson4 libpng16-16 libjpeg62-turbo \
      libprotobuf-c1 libdcmtk17 libopenjp2-7 libdnnl2 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 camd \
 && useradd --system --uid 10001 --gid camd --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin camd \
 && mkdir -p /models /opt/camd/config /opt/camd/models
COPY --from=build /out/ /
COPY docker/healthcheck.sh /usr/local/bin/camd-healthcheck
# The default model and the repository's config (its model paths are relative to the config
# file: ../models/...). CAMD_* variables override the file's server settings.
COPY models/fashion_cam.onnx models/fashion_cam.labels.txt models/fashion_cam.json \
     /opt/camd/models/
COPY config/camd.json /opt/camd/config/camd.json
ENV CAMD_CONFIG=/opt/camd/config/camd.json \
    CAMD_LISTEN=0.0.0.0 \
    CAMD_PORT=8080
WORKDIR /opt/camd
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/camd-healthcheck"]
# Exec form: camd is PID 1 and handles SIGTERM itself (stop accepting, drain, exit 0).
ENTRYPOINT ["/usr/local/bin/camd"]
CMD ["serve"]
