#!/usr/bin/env bash
# Builds the core (no libtorch) with AddressSanitizer + UndefinedBehaviorSanitizer
# (-DDUALTUNE_SANITIZE=ON, g++) into build-asan and runs test_core and test_serve (the
# HTTP service: request parsing, limits, concurrent searches and backfill) under it.
# Any ASan error or UBSan report fails the run (-fno-sanitize-recover=undefined,
# halt_on_error=1).
# LeakSanitizer stays on (ASan's default): test_core is leak-free, also with OpenBLAS/
# OpenMP's thread pools (checked with and without OMP_NUM_THREADS=1). Should a system
# library's one-time allocation ever be reported, prefer an LSan suppression file
# (LSAN_OPTIONS=suppressions=...) to ASAN_OPTIONS=detect_leaks=0.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build-asan
start=$SECONDS
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDUALTUNE_WITH_TORCH=OFF -DDUALTUNE_SANITIZE=ON >/dev/null
cmake --build "$BUILD" -j2 --target test_core test_serve
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# One BLAS/OpenMP thread: the tests are tiny and ASan makes extra threads slower, not faster.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
"$BUILD/test_core" --gtest_brief=1
"$BUILD/test_serve" --gtest_brief=1
echo "sanitize: test_core and test_serve passed under ASan+UBSan in $((SECONDS - start)) s"
