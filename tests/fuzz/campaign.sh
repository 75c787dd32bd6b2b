#!/bin/sh
# Reruns the libFuzzer campaign: every target in tests/fuzz for a fixed number of executions,
# one after another, and prints a table (target, executions, coverage, features, corpus, time,
# crashes) to BUILD/campaign.txt and stdout.
#   tests/fuzz/campaign.sh [RUNS_PER_TARGET] [BUILD_DIR]
#     RUNS_PER_TARGET   executions per target (default 1500000: 7 targets > 10^7 in total)
#     BUILD_DIR         as for build.sh (default build-fuzz); built first when missing
# Environment: FUZZ_MAX_SECONDS caps one target's time (default 3600), FUZZ_TARGETS limits the
# list ("body image"), FUZZ_NICE is the nice level (default 19); with chrt available and
# FUZZ_IDLE=1 (the default) the targets run as SCHED_IDLE, so the campaign only takes CPU time
# nothing else wants (on a busy machine libFuzzer then reports starved inputs as slow units:
# they are listed apart from the crashes).
# A crash, leak, timeout or OOM leaves crash-*/leak-*/timeout-*/oom-* in BUILD/artifacts/TARGET/
# and is counted (slow-unit-* files are counted apart: rerun them alone to see their real time); reproduce with BUILD/fuzz_TARGET FILE. New corpus entries land in
# BUILD/corpus/TARGET (seeded from tests/fuzz/corpus and tests/fuzz/corpus-campaign); keep what adds
# coverage with `-merge=1` into tests/fuzz/corpus-campaign/TARGET (see README.md).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${1:-1500000}
BUILD=${2:-build-fuzz}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
MAXT=${FUZZ_MAX_SECONDS:-3600}
NICE=${FUZZ_NICE:-19}
TARGETS=${FUZZ_TARGETS:-"base64 options model_config body image onnx dicom"}

IDLE=""
[ "${FUZZ_IDLE:-1}" = 1 ] && command -v chrt >/dev/null && IDLE="chrt -i 0"
[ -x "$BUILD/fuzz_body" ] || sh "$ROOT/tests/fuzz/build.sh" "$BUILD"

# Per-target flags: input size caps and memory limits sized to what each parser accepts.
flags_for() {
  case $1 in
    onnx) echo "-max_len=65536 -rss_limit_mb=2048 -malloc_limit_mb=1024" ;;
    image) echo "-max_len=200000 -rss_limit_mb=2048" ;;
    dicom) echo "-max_len=200000 -rss_limit_mb=2048 -malloc_limit_mb=512" ;;
    body) echo "-max_len=65536" ;;
    *) echo "-max_len=16384" ;;
  esac
}

out=$BUILD/campaign.txt
printf '%-13s %10s %7s %8s %7s %7s %8s %5s\n' target execs cov ft corpus seconds crashes slow | tee "$out"
total=0
for t in $TARGETS; do
  art=$BUILD/artifacts/$t
  mkdir -p "$art" "$BUILD/corpus/$t"
  cp -n "$ROOT/tests/fuzz/corpus-campaign/$t/"* "$BUILD/corpus/$t/" 2>/dev/null || true
  log=$BUILD/campaign-$t.log
  start=$(date +%s)
  # shellcheck disable=SC2046
  $IDLE nice -n "$NICE" "$BUILD/fuzz_$t" -runs="$RUNS" -max_total_time="$MAXT" -timeout=25 \
    -print_final_stats=1 -artifact_prefix="$art/" $(flags_for "$t") "$BUILD/corpus/$t" \
    >"$log" 2>&1 || true
  secs=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
  crashes=$(find "$art" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' \) | wc -l)
  slow=$(find "$art" -type f -name 'slow-unit-*' | wc -l)
  total=$((total + ${execs:-0}))
  printf '%-13s %10s %7s %8s %7s %7s %8s %5s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
    "${corp:-?}" "$secs" "$crashes" "$slow" | tee -a "$out"
done
echo "total executions: $total" | tee -a "$out"
