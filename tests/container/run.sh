#!/bin/bash
# Container test (ctest label "container"): builds the repository's Dockerfile with podman, runs
# the image, explains an image over HTTP, checks the health check, the non-root user and a
# prompt, clean exit on `podman stop`.
#
#   tests/container/run.sh            (as root; needs podman, runc, debootstrap, curl, python3)
#
# Without registries: tests/container/setup-host.sh makes the debian:bookworm-slim base image
# with debootstrap from the host's Debian mirror; podman's settings come from $CONTAINERS_CONF
# (ctest: in the build tree), not /etc. Exits 77 (ctest SKIPPED) when podman is missing or the
# user is not root. Environment:
#   CAMD_IMAGE          tag to build and test (default localhost/camd:latest)
#   CAMD_TEST_NO_BUILD  1: test the existing CAMD_IMAGE without building
#   CAMD_STOP_MAX_MS    the longest an idle `podman stop` may take (default 2000)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
IMAGE=${CAMD_IMAGE:-localhost/camd:latest}
STOP_MAX_MS=${CAMD_STOP_MAX_MS:-2000}
NAME=camd-test-$$
work=$(mktemp -d "${TMPDIR:-/tmp}/camd-container-test.XXXXXX")
# podman/buildah settings for this test only (setup-host.sh writes them); /etc is not touched.
export CONTAINERS_CONF=${CONTAINERS_CONF:-${TMPDIR:-/tmp}/camd-containers.conf}

skip() { echo "SKIPPED: $*"; exit 77; }
fail() {
  echo "FAIL: $*"
  if podman container exists "$NAME" 2>/dev/null; then
    echo "--- container log (last 40 lines)"
    podman logs "$NAME" 2>&1 | tail -40
  fi
  exit 1
}
cleanup() {
  podman rm -f -t 0 "$NAME" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
ms_now() { date +%s%3N; }
step() { printf '== %s\n' "$*"; }

[ "$(id -u)" = 0 ] || skip "not root (rootful podman is what this test sets up)"
command -v podman >/dev/null 2>&1 || skip "podman not installed (apt-get install podman runc debootstrap)"
command -v curl >/dev/null 2>&1 || skip "curl not installed"
command -v python3 >/dev/null 2>&1 || skip "python3 not installed"

# ---- host setup and base image ----------------------------------------------------------
step "setup (CONTAINERS_CONF=$CONTAINERS_CONF, base image)"
sh "$here/setup-host.sh" --conf-only || fail "setup-host.sh --conf-only failed"
if ! podman image exists docker.io/library/debian:bookworm-slim; then
  command -v debootstrap >/dev/null 2>&1 || skip "debootstrap not installed and no base image"
fi
sh "$here/setup-host.sh" || fail "setup-host.sh failed"

# ---- build --------------------------------------------------------------------------------
if [ "${CAMD_TEST_NO_BUILD:-0}" != 1 ]; then
  for f in models/fashion_cam.onnx models/fashion_cam.labels.txt config/camd.json; do
    [ -f "$root/$f" ] || fail "$f missing: the image bakes in the default model (models/train_default.py)"
  done
  step "podman build --format docker -t $IMAGE (log: $work/build.log)"
  t0=$(ms_now)
  if ! podman build --format docker --build-arg JOBS="$(nproc)" -t "$IMAGE" "$root" \
      >"$work/build.log" 2>&1; then
    tail -60 "$work/build.log"
    cp "$work/build.log" "${TMPDIR:-/tmp}/camd-container-build.log" 2>/dev/null
    fail "image build failed (full log: ${TMPDIR:-/tmp}/camd-container-build.log)"
  fi
  grep -E '^(100% tests passed|[0-9]+% tests passed|Total Test time)' "$work/build.log" | sed 's/^/  build stage ctest: /'
  echo "  built in $(( ($(ms_now) - t0) / 1000 )) s"
fi
podman image exists "$IMAGE" || fail "image $IMAGE not found"
podman image inspect "$IMAGE" --format '  image size {{.Size}} bytes, user {{.Config.User}}, entrypoint {{.Config.Entrypoint}}'

# ---- run ----------------------------------------------------------------------------------
port=""
for _ in $(seq 1 50); do
  p=$(( 20000 + RANDOM % 20000 ))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || fail "no free port"
step "podman run -d -p 127.0.0.1:$port:8080 $IMAGE"
# (Without systemd, podman logs that it cannot schedule health-check timers: harmless, the
# check is run explicitly below.)
podman run -d --name "$NAME" -p "127.0.0.1:$port:8080" "$IMAGE" >/dev/null 2>"$work/run.err" ||
  { cat "$work/run.err"; fail "podman run failed"; }
base="http://127.0.0.1:$port"

ready=""
for _ in $(seq 1 240); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$base/readyz")
  [ "$code" = 200 ] && { ready=1; break; }
  [ "$(podman inspect "$NAME" --format '{{.State.Running}}')" = true ] || fail "container exited"
  sleep 0.5
done
[ -n "$ready" ] || fail "GET /readyz never answered 200"
echo "  ready"

step "checks inside the container"
uid=$(podman exec "$NAME" id -u) || fail "podman exec failed"
[ "$uid" != 0 ] || fail "camd runs as root"
echo "  uid $uid"
# camd may re-execute itself once (OpenBLAS core choice), so compare the command line.
pid1=$(podman exec "$NAME" cat /proc/1/cmdline | tr '\0' ' ')
case $pid1 in
  /usr/local/bin/camd\ serve*) echo "  PID 1: $pid1" ;;
  *) fail "PID 1 is '$pid1', not camd" ;;
esac
podman healthcheck run "$NAME" >/dev/null 2>&1 || fail "podman healthcheck run: unhealthy"
echo "  HEALTHCHECK passes"

curl -sf "$base/healthz" >/dev/null || fail "GET /healthz"
curl -sf "$base/v1/models" >"$work/models.json" || fail "GET /v1/models"
python3 - "$work/models.json" <<'EOF' || fail "GET /v1/models: fashion_cam not listed"
import json, sys
d = json.load(open(sys.argv[1]))
names = [m.get("name") for m in (d.get("models", d) if isinstance(d, dict) else d)]
assert "fashion_cam" in names, names
print("  GET /v1/models:", names)
EOF

# ---- explain ------------------------------------------------------------------------------
# An example image from models/examples when there is one, else a generated PNG.
img=$( (ls "$root"/models/examples/scene_*.png; ls "$root"/models/examples/*.png) 2>/dev/null | head -1)
if [ -z "$img" ]; then
  img=$work/test.png
  python3 - "$img" <<'EOF' || fail "cannot write a test PNG"
import struct, sys, zlib
w = h = 128
rows = []
for y in range(h):
    row = bytearray([0])
    for x in range(w):
        inside = 40 <= x < 88 and 30 <= y < 100   # a bright "garment" on a dark textured field
        v = 220 if inside else (30 + (x * 7 + y * 13) % 40)
        row += bytes((v, v, max(0, v - 20)))
    rows.append(bytes(row))
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) \
    + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
EOF
fi
step "POST /v1/models/fashion_cam/explain (multipart, $(basename "$img"))"
code=$(curl -s -o "$work/explain.json" -w '%{http_code}' --max-time 60 \
  -F "image=@$img;type=image/png" -F method=gradcam "$base/v1/models/fashion_cam/explain")
[ "$code" = 200 ] || { head -c 600 "$work/explain.json"; echo; fail "explain answered $code"; }
python3 - "$work/explain.json" <<'EOF' || fail "explain answer is not what the API promises"
import base64, json, sys
d = json.load(open(sys.argv[1]))
if isinstance(d, list):
    d = d[0]
preds = d["predictions"]
assert preds and all("label" in p and "score" in p for p in preds), preds
ex = d["explanations"][0]
png = base64.b64decode(ex["overlay"])
assert png[:8] == b"\x89PNG\r\n\x1a\n", "overlay is not a PNG"
print("  method %s, layer %s" % (d.get("method"), d.get("layer")))
print("  top prediction %s (%.3f); overlay PNG %d bytes; timings_ms %s" % (
    preds[0]["label"], preds[0].get("probability", preds[0]["score"]), len(png),
    d.get("timings_ms", {}).get("total")))
EOF
step "POST raw image body, Accept: image/png"
code=$(curl -s -o "$work/overlay.png" -w '%{http_code}' --max-time 60 -H 'Content-Type: image/png' \
  -H 'Accept: image/png' --data-binary "@$img" "$base/v1/models/fashion_cam/explain?method=gradcam")
[ "$code" = 200 ] || fail "explain with Accept: image/png answered $code"
[ "$(head -c 8 "$work/overlay.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
  fail "Accept: image/png did not return a PNG"
echo "  overlay PNG $(stat -c %s "$work/overlay.png") bytes"
curl -sf "$base/metrics" | grep -q '^camd_' || fail "GET /metrics has no camd_ series"
echo "  /metrics ok"

# ---- stop ---------------------------------------------------------------------------------
step "podman stop (idle; SIGTERM, at most ${STOP_MAX_MS} ms)"
sleep 1
t0=$(ms_now)
podman stop -t 10 "$NAME" >/dev/null 2>"$work/stop.err" || { cat "$work/stop.err"; fail "podman stop failed"; }
elapsed=$(( $(ms_now) - t0 ))
rc=$(podman inspect "$NAME" --format '{{.State.ExitCode}}')
echo "  stopped in ${elapsed} ms, exit code $rc"
podman logs "$NAME" 2>&1 | tail -3 | sed 's/^/  log: /'
[ "$rc" = 0 ] || fail "exit code $rc after SIGTERM (want 0)"
[ "$elapsed" -lt "$STOP_MAX_MS" ] || fail "stopping took ${elapsed} ms (limit ${STOP_MAX_MS} ms)"
echo "PASS"
