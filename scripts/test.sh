#!/usr/bin/env bash
# Build cnf and run the whole test suite (ctest over the CUnit suites).
#   scripts/test.sh             Release build in build/
#   scripts/test.sh --sanitize  AddressSanitizer + UBSan + CNF_ENABLE_CHECKS build in build-asan/
#   scripts/test.sh --tsan      ThreadSanitizer build in build-tsan/ of the suites that run
#                               threads: the MLP's thread pool (test_cnf, test_cli's
#                               --threads 2) and two contexts on two threads (test_threads)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
dir=build
flags=(-DCMAKE_BUILD_TYPE=Release)
targets=()
tests=()
case "${1:-}" in
  --sanitize)
    dir=build-asan
    flags=(-DCMAKE_BUILD_TYPE=Debug -DCNF_SANITIZE=ON -DCNF_ENABLE_CHECKS=ON -DCNF_BUILD_BENCH=OFF) ;;
  --tsan)
    dir=build-tsan
    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCNF_SANITIZE_THREAD=ON -DCNF_BUILD_BENCH=OFF
           -DCNF_BUILD_EXAMPLES=OFF)
    targets=(--target cnf_cli test_cnf test_cli test_threads)
    tests=(-R '^(test_cnf|test_cli|test_threads)$')
    # OpenBLAS, GSL and SUNDIALS are not instrumented, and need no suppressions: the
    # pool's threads give each call into them buffers of their own.  OpenBLAS must not
    # start threads of its own, whose writes TSan cannot see.  halt_on_error makes the first report fail
    # the test at once (TSan's exit status 66 would fail it at the end anyway).
    export OPENBLAS_NUM_THREADS=1
    export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ;;
  "") ;;
  *) echo "usage: scripts/test.sh [--sanitize | --tsan]" >&2; exit 2 ;;
esac
[ "${CI:-}" = "true" ] && flags+=(-DCNF_WERROR=ON)
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)" "${targets[@]}"
ctest --test-dir "$dir" --output-on-failure -j "$(nproc)" "${tests[@]}"
