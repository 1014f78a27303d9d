#!/usr/bin/env bash
# Build the libFuzzer targets of fuzz/ with clang (ASan + UBSan, every
# finding fatal) in build-fuzz/, then run each for SECONDS (default 60) on
# its seed corpus and dictionary (docs/fuzzing.md).  Exits non-zero on the
# first finding (a crash, a leak, undefined behaviour, a timeout of 10 s,
# one allocation above 256 MiB or 2 GiB of memory); the input is kept in
# build-fuzz/findings/TARGET/.
#   scripts/fuzz.sh                      60 s per target (.ci/run)
#   scripts/fuzz.sh 3600                 an hour per target
#   scripts/fuzz.sh 600 fuzz_stack_load  one target
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_csv fuzz_npy fuzz_flow_load fuzz_stack_load)
command -v clang >/dev/null || { echo "fuzz.sh: needs clang (apt-get install clang)" >&2; exit 2; }
dir=build-fuzz
CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCNF_FUZZ=ON \
  -DBUILD_SHARED_LIBS=OFF -DCNF_BUILD_TESTS=OFF -DCNF_BUILD_EXAMPLES=OFF -DCNF_BUILD_BENCH=OFF \
  -DCNF_NATIVE=OFF -DCMAKE_C_FLAGS=-Wno-pass-failed >/dev/null
cmake --build "$dir" -j "$(nproc)" --target "${targets[@]}" >/dev/null
export OPENBLAS_NUM_THREADS=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "${targets[@]}"; do
  dict=fuzz/model.dict
  [ "$t" = fuzz_csv ] && dict=fuzz/csv.dict
  [ "$t" = fuzz_npy ] && dict=fuzz/npy.dict
  work="$dir/corpus/$t" # new inputs go here, the committed seeds stay as they are
  mkdir -p "$work" "$dir/findings/$t"
  echo "fuzz.sh: $t for ${secs} s" >&2
  if ! "$dir/fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -malloc_limit_mb=256 -max_len=8192 -dict="$dict" -print_final_stats=1 \
      -artifact_prefix="$dir/findings/$t/" "$work" "fuzz/corpus/$t" >"$dir/$t.log" 2>&1; then
    tail -n 60 "$dir/$t.log" >&2
    echo "fuzz.sh: $t found a problem; input in $dir/findings/$t/" >&2
    exit 1
  fi
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)|^Done" "$dir/$t.log" >&2 || true
  echo "fuzz.sh: $t: corpus $(ls "$work" | wc -l) inputs, no finding" >&2
done
