#!/bin/sh
# Offline lint of the deployment files (ctest labels "lint;network"):
#   run.sh manifests    docker/k8s/*.yaml against the Kubernetes API schemas
#   run.sh dockerfile   Dockerfile (+ docker/*/Dockerfile) with dockerfile-utils
# The npm packages of package.json (package-lock.json) are installed into $CAMD_NPM_DIR (ctest:
# <build>/npm/k8s; by hand: ${TMPDIR:-/tmp}/camd-npm-k8s) with the npm cache there too, never
# into the source tree; the first run needs the npm registry, later runs are offline. The checking
# scripts are copied next to their node_modules (ES modules resolve packages from their own
# directory). Exits 77 (ctest SKIPPED) when node/npm are missing or the install fails (offline).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
what=${1:-all}
npm_dir=${CAMD_NPM_DIR:-${TMPDIR:-/tmp}/camd-npm-k8s}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "SKIPPED: node/npm not installed (apt-get install nodejs npm)"
  exit 77
fi
mkdir -p "$npm_dir" || exit 1
export npm_config_cache="$npm_dir/.npm-cache"
need_install() {
  for m in kubernetes-models dockerfile-utils yaml; do
    [ -f "$npm_dir/node_modules/$m/package.json" ] || return 0
  done
  [ "$here/package.json" -nt "$npm_dir/node_modules/.package-lock.json" ] && return 0
  return 1
}
# One installer at a time (ctest may run both tests in parallel).
(
  flock 9
  cp "$here/package.json" "$here"/*.mjs "$npm_dir/"
  [ -f "$here/package-lock.json" ] && cp "$here/package-lock.json" "$npm_dir/"
  if need_install; then
    echo "npm install in $npm_dir"
    cd "$npm_dir" && timeout 600 npm install --no-audit --no-fund --loglevel=error
  fi
) 9>"$npm_dir/.install.lock"
rc=$?
if [ $rc -ne 0 ] || need_install; then
  echo "SKIPPED: npm install failed (offline?)"
  exit 77
fi

status=0
case $what in
  manifests | all)
    node "$npm_dir/validate_manifests.mjs" "$root/docker/k8s" || status=1 ;;
esac
case $what in
  dockerfile | all)
    set -- --image "$root/Dockerfile" --other
    for f in "$root"/docker/*/Dockerfile; do [ -f "$f" ] && set -- "$@" "$f"; done
    node "$npm_dir/lint_dockerfile.mjs" "$@" || status=1 ;;
esac
exit $status
