#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_*.cc) with clang + ASan + UBSan into build-fuzz
# (core only, no libtorch) and runs each for a fixed number of executions from its seed
# corpus fuzz/corpus/<name>/. Fails on any crash, sanitizer report, leak or timeout; the
# crashing input is left as build-fuzz/artifacts/<name>/crash-* (add it, after the fix,
# to tests/regression/<name>/ so that test_core replays it).
#   FUZZ_RUNS=20000 (per target)   FUZZ_JOBS=2 (targets run in parallel)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${FUZZ_RUNS:-20000}
JOBS=${FUZZ_JOBS:-2}
BUILD=build-fuzz
TARGETS=(fuzz_idx fuzz_npy fuzz_npz fuzz_config fuzz_market_name)

CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDUALTUNE_WITH_TORCH=OFF -DDUALTUNE_FUZZ=ON >/dev/null
cmake --build "$BUILD" -j2 --target "${TARGETS[@]}"

# Leak detection stays on (libFuzzer reports a leaking input as a failure).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
  local t=$1 work="$BUILD/corpus/$1" art="$BUILD/artifacts/$1"
  mkdir -p "$work" "$art"
  # New inputs go to the scratch corpus in build-fuzz; fuzz/corpus/ (the seeds) stays read-only.
  local start=$SECONDS
  if "$BUILD/$t" -runs="$RUNS" -seed=1 -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$art/" -print_final_stats=1 "$work" "fuzz/corpus/$t" >"$BUILD/$t.log" 2>&1; then
    echo "fuzz: $t OK: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$BUILD/$t.log" | grep -o '[0-9]*$') executions, $((SECONDS - start)) s"
  else
    echo "fuzz: $t FAILED (log $BUILD/$t.log, inputs in $art/):"
    tail -n 40 "$BUILD/$t.log"
    return 1
  fi
}
export -f run_one
export BUILD RUNS
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {}'
echo "fuzz: all ${#TARGETS[@]} targets ran $RUNS executions without a crash"
