#!/bin/sh
# The tiers of `make check` (see the Makefile):
#   tests/tier.sh BUILD NAME [ctest args...]   runs one tier: ctest -j$JOBS --output-on-failure
#       with the given label selection in BUILD; the log is BUILD/tier-NAME.log and the tests that
#       did not run (exit 77 = SKIPPED, or Not Run) go to BUILD/tier-NAME.skipped with the reason
#       their output gave. Exits with ctest's status.
#   tests/tier.sh --report BUILD...            the last lines of `make check`: every tier that ran,
#       its result, and each test that did not run, with its reason. Exits 1 when a tier failed,
#       or when CAMD_STRICT=1 and a test did not run.
set -u
if [ "${1:-}" = --report ]; then
  shift
  status=0
  skipped=0
  echo "== make check: tiers =="
  for b in "$@"; do
    for r in "$b"/tier-*.result; do
      [ -f "$r" ] || continue
      t=$(basename "$r" .result)
      t=${t#tier-}
      res=$(cat "$r")
      printf '  %-6s %s (%s)\n' "$t" "$res" "$b"
      [ "$res" = passed ] || status=1
      if [ -s "$b/tier-$t.skipped" ]; then
        while IFS= read -r line; do
          printf '         did not run: %s\n' "$line"
          skipped=$((skipped + 1))
        done <"$b/tier-$t.skipped"
      fi
    done
  done
  if [ "$skipped" = 0 ]; then
    echo "make check: every selected test ran"
  else
    echo "make check: $skipped test(s) did not run (listed above)$([ "${CAMD_STRICT:-0}" = 1 ] && echo '; CAMD_STRICT=1: failing' || echo '; CAMD_STRICT=1 makes this a failure')"
    [ "${CAMD_STRICT:-0}" = 1 ] && status=1
  fi
  exit $status
fi

build=$1
name=$2
shift 2
log=$build/tier-$name.log
rm -f "$build/tier-$name.result" "$build/tier-$name.skipped"
(cd "$build" && ctest --output-on-failure -j"${JOBS:-2}" "$@") 2>&1 | tee "$log"
# ctest's verdict from its log (a pipe into tee loses its exit status in POSIX sh).
if grep -qE 'The following tests FAILED|Errors while running CTest' "$log"; then
  rc=1
  echo failed >"$build/tier-$name.result"
else
  rc=0
  echo passed >"$build/tier-$name.result"
fi
# Tests that did not run, with the SKIPPED line of their output (Testing/Temporary/LastTest.log).
last=$build/Testing/Temporary/LastTest.log
grep -E '\*\*\*(Skipped|Not Run)' "$log" | grep -v 'Disabled' |
  sed -E 's/.*Test +#[0-9]+: ([^ ]+) .*\*\*\*(Skipped|Not Run).*/\1/' | while IFS= read -r t; do
  why=$(awk -v t="$t" '
    /^[0-9]+\/[0-9]+ Test: / { cur = $3 }
    cur == t && /SKIPPED/ { sub(/^.*SKIPPED:? */, ""); print; exit }' "$last" 2>/dev/null)
  echo "$t${why:+ (SKIPPED: $why)}"
done >"$build/tier-$name.skipped"
exit $rc
