# camd quick start: `make run` builds and serves the default model; `make check` builds and runs
# every test. Both install the Debian 12 packages they need (as root, or through sudo).
#
# `make check` runs the tests in tiers (tests/tier.sh), each a ctest label selection:
#   fast   hermetic: no network, nothing written outside the build tree (unit, onnx, fuzz, image,
#          explain, exporters, models, oracle and cam with their cached references, service
#          without timing, lint.format, lint.cppcheck)
#   asan   the hermetic tier again under AddressSanitizer + UBSan (lint and label slow excluded:
#          the exporter matrix repeats the numeric paths the other asan tests cover), in a build
#          with allocation failure injection (tests/fault: every allocation of a request fails
#          in turn)
#   full   what needs more than the build tree or minutes: timing-dependent service tests (label
#          timing), the npm registry on first use (network: deployment lint, browser), rootful
#          podman (container; its settings live in the build tree through CONTAINERS_CONF) and
#          the oracle's transformer-sized models (heavy: ~10 min of float64 generation)
# Its last lines list every tier's result and each test that did not run (SKIPPED) with the
# reason; CAMD_STRICT=1 turns such a test into a failure. `make test` is the fast tier alone.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
CONFIG ?= config/camd.json

# Build and run dependencies.
DEPS_BUILD := build-essential g++ cmake pkg-config protobuf-c-compiler libprotobuf-c-dev libonnx-dev libgnutls28-dev \
  libopenblas-dev libmicrohttpd-dev libjansson-dev libpng-dev libjpeg-dev libdcmtk-dev \
  libopenjp2-7-dev libdnnl-dev
# What the tests add: PyTorch as the oracle, reference images, DICOM references (pydicom,
# nibabel's files, GDCM's gdcmconv, dicom3tools' dciodvfy, OpenJPH's ojph_compress/ojph_expand
# for High-Throughput JPEG 2000 test files), HTTP client, browser, containers.
DEPS_TEST := python3 python3-torch python3-torchvision python3-onnx python3-numpy python3-pil \
  python3-skimage imagemagick dataset-fashion-mnist curl openssl chromium clang-format cppcheck \
  python3-pydicom python3-nibabel libgdcm-tools dicom3tools openjph-tools \
  podman runc debootstrap podman-compose golang-github-containernetworking-plugin-dnsname

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps deps-test build run check test asan-test clean

deps:
	@missing=$$(dpkg-query -W -f='$${Package} $${Status}\n' $(DEPS_BUILD) 2>/dev/null | grep -v 'install ok installed' | cut -d' ' -f1; \
	  for p in $(DEPS_BUILD); do dpkg-query -W $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; fi

deps-test: deps
	@missing=$$(for p in $(DEPS_TEST); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done; \
	  command -v npm >/dev/null 2>&1 || echo nodejs npm); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j$(JOBS)

run: build
	./$(BUILD)/camd serve --config $(CONFIG)

NOT_FAST := container|network|timing|heavy
TIER := JOBS=$(JOBS) sh tests/tier.sh

# Release build with -Werror; the fast tier, the sanitizer tier, then the full tier; the report
# of every tier comes last even when one failed (and the exit status says so).
check: deps-test
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCAMD_WERROR=ON
	cmake --build $(BUILD) -j$(JOBS)
	@rm -f $(BUILD)/tier-* $(ASAN_BUILD)/tier-*
	@s=0; \
	$(TIER) $(BUILD) fast -LE '$(NOT_FAST)' || s=1; \
	$(MAKE) --no-print-directory asan-test || s=1; \
	$(TIER) $(BUILD) full -L '$(NOT_FAST)' || s=1; \
	$(TIER) --report $(BUILD) $(ASAN_BUILD) || s=1; \
	exit $$s

# The fast (hermetic) tier alone, on the Release build.
test: build
	@rm -f $(BUILD)/tier-*
	@s=0; $(TIER) $(BUILD) fast -LE '$(NOT_FAST)' || s=1; $(TIER) --report $(BUILD) || s=1; exit $$s

asan-test:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCAMD_SANITIZE=ON -DCAMD_WERROR=ON -DCAMD_FAULT_INJECT=ON \
	  -DCAMD_ORACLE_DIR=$(CURDIR)/$(BUILD)/oracle -DCAMD_CAM_REFS_DIR=$(CURDIR)/$(BUILD)/cam_refs
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(TIER) $(ASAN_BUILD) asan -LE '$(NOT_FAST)|lint|slow'

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
