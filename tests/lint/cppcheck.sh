#!/bin/sh
# Static analysis lint (ctest label "lint"): cppcheck's warning, portability and performance
# checks over src/ must report nothing.
#   tests/lint/cppcheck.sh [ROOT]
# Exits 77 (ctest SKIPPED) when cppcheck is not installed (apt-get install cppcheck).
# One configuration: the product build (oneDNN on, no fault injection). Not checked: cppcheck's
# "style" class (C++ cast advice and scope hints, noise for C11 code).
# Suppressed for the whole tree: invalidPointerCast — the engine's arenas are unsigned char
# blocks carved into float tensors on purpose (aligned, one owner). A single finding that is
# wrong is suppressed where it occurs with a /* cppcheck-suppress ID */ line and a comment why.
set -u
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v cppcheck >/dev/null 2>&1 ||
  { echo "SKIPPED: cppcheck not installed (apt-get install cppcheck)"; exit 77; }
cd "$root" || exit 1
jansson=/usr/include/jansson.h
[ -f "$jansson" ] || { echo "SKIPPED: $jansson not found (apt-get install libjansson-dev)"; exit 77; }
out=$(cppcheck --quiet --std=c11 --enable=warning,portability,performance -I include -I src \
  --include="$jansson" --inline-suppr --suppress=invalidPointerCast --max-configs=1 -DCAMD_HAVE_ONEDNN=1 -j2 \
  --template='{file}:{line}: {severity}: {message} [{id}]' src 2>&1)
rc=$?
findings=$(printf '%s\n' "$out" | grep -cE '^src/')
printf '%s\n' "$out" | grep -E '^src/'
echo "cppcheck $(cppcheck --version | cut -d' ' -f2): $findings finding(s) in src/ (exit $rc)"
[ "$rc" = 0 ] && [ "$findings" = 0 ]
