#!/bin/sh
# Offline lint of the deployment files (ctest label "lint"):
#   run.sh manifests    docker/k8s/*.yaml against the Kubernetes API schemas
#   run.sh dockerfile   Dockerfile (+ docker/*/Dockerfile) with dockerfile-utils
# Installs the npm packages of package.json into tests/k8s/node_modules on first use.
# Exits 77 (ctest SKIPPED) when node/npm are missing or the install fails (offline).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
what=${1:-all}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "SKIPPED: node/npm not installed (apt-get install nodejs npm)"
  exit 77
fi
# One installer at a time (ctest may run both tests in parallel).
lock="$here/node_modules.lock"
need_install() {
  for m in kubernetes-models dockerfile-utils yaml; do
    [ -f "$here/node_modules/$m/package.json" ] || return 0
  done
  [ "$here/package.json" -nt "$here/node_modules/.package-lock.json" ] && return 0
  return 1
}
(
  flock 9
  if need_install; then
    echo "npm install in $here"
    cd "$here" && timeout 600 npm install --no-audit --no-fund --loglevel=error
  fi
) 9>"$lock"
rc=$?
rm -f "$lock" 2>/dev/null
if [ $rc -ne 0 ] || need_install; then
  echo "SKIPPED: npm install failed (offline?)"
  exit 77
fi

status=0
case $what in
  manifests | all)
    node "$here/validate_manifests.mjs" "$root/docker/k8s" || status=1 ;;
esac
case $what in
  dockerfile | all)
    set -- --image "$root/Dockerfile" --other
    for f in "$root"/docker/*/Dockerfile; do [ -f "$f" ] && set -- "$@" "$f"; done
    node "$here/lint_dockerfile.mjs" "$@" || status=1 ;;
esac
exit $status
