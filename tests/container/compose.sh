#!/bin/bash
# Compose test (ctest label "container"): docker/compose.yaml with podman-compose: three camd
# replicas behind nginx; every replica must get explain requests through the load balancer,
# and `down` must stop them cleanly. Uses the image tests/container/run.sh built
# (localhost/camd:latest) and builds the nginx image. Exits 77 without root, podman,
# podman-compose or the camd image.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "not root"
# podman/buildah settings for this test only (setup-host.sh writes them); /etc is not touched.
export CONTAINERS_CONF=${CONTAINERS_CONF:-${TMPDIR:-/tmp}/camd-containers.conf}
sh "$here/setup-host.sh" --conf-only >/dev/null 2>&1 || { echo "FAIL: cannot write $CONTAINERS_CONF"; exit 1; }
command -v podman >/dev/null 2>&1 || skip "podman not installed"
command -v podman-compose >/dev/null 2>&1 || skip "podman-compose not installed (apt-get install podman-compose golang-github-containernetworking-plugin-dnsname)"
podman image exists localhost/camd:latest || skip "localhost/camd:latest not built (tests/container/run.sh builds it)"

project=camdtest$$
work=$(mktemp -d "${TMPDIR:-/tmp}/camd-compose-test.XXXXXX")
port=""
for _ in $(seq 1 50); do
  p=$(( 20000 + RANDOM % 20000 ))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
export CAMD_LB_PORT=$port
compose() { (cd "$root/docker" && podman-compose -p "$project" "$@") >>"$work/compose.log" 2>&1; }
cleanup() {
  compose down -t 5
  podman network rm -f "${project}_default" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -30 "$work/compose.log"; exit 1; }

echo "== podman build docker/lb"
podman build --format docker -t localhost/camd-lb:latest "$root/docker/lb" >>"$work/compose.log" 2>&1 ||
  fail "building the nginx image"
echo "== podman-compose up (load balancer on 127.0.0.1:$port)"
compose up -d || fail "podman-compose up"
base=http://127.0.0.1:$port
ok=""
for _ in $(seq 1 120); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$base/readyz")" = 200 ]; then ok=1; break; fi
  sleep 0.5
done
[ -n "$ok" ] || fail "GET /readyz through nginx never answered 200"
img=$( (ls "$root"/models/examples/scene_*.png; ls "$root"/models/examples/*.png) 2>/dev/null | head -1)
[ -n "$img" ] || fail "no example image in models/examples"
for i in $(seq 1 9); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 -F "image=@$img" "$base/v1/models/fashion_cam/explain")
  [ "$code" = 200 ] || fail "explain request $i through nginx answered $code"
done
for c in camd1 camd2 camd3; do
  n=$(podman logs "${project}_${c}_1" 2>&1 | grep -c '"route":"explain"')
  echo "  $c served $n explain request(s)"
  [ "$n" -ge 1 ] || fail "$c got no request: the load balancer does not spread the load"
done
echo "== podman-compose down"
compose down -t 10 || fail "podman-compose down"
for c in camd1 camd2 camd3; do
  podman container exists "${project}_${c}_1" && fail "$c still exists after down"
done
echo "PASS"
