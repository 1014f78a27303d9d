#!/usr/bin/env bash
# Build cnf and run the whole test suite (ctest over the CUnit suites).
#   scripts/test.sh             Release build in build/
#   scripts/test.sh --sanitize  AddressSanitizer + UBSan + CNF_ENABLE_CHECKS build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
dir=build
flags=(-DCMAKE_BUILD_TYPE=Release)
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  flags=(-DCMAKE_BUILD_TYPE=Debug -DCNF_SANITIZE=ON -DCNF_ENABLE_CHECKS=ON -DCNF_BUILD_BENCH=OFF)
fi
[ "${CI:-}" = "true" ] && flags+=(-DCNF_WERROR=ON)
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
ctest --test-dir "$dir" --output-on-failure -j "$(nproc)"
