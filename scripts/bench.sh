#!/usr/bin/env bash
# Build the Release benchmarks in build-bench/ and measure one dynamics
# evaluation of the MLP (docs/performance.md).
#
#   scripts/bench.sh [-o FILE] [-- BENCH_ARGS...]
#       Configure and build build-bench (Release), run bench_dyn with
#       BENCH_ARGS and then bench_act, and write the markdown, preceded by
#       a description of the machine, to FILE (default
#       build-bench/bench_dyn.md) and to stdout.
#
#   scripts/bench.sh --sweep "64 128 256 512 1024 4096" [--rounds N] [-o FILE]
#       Build a copy of the library for each MLP_CHUNK_ROWS value (under
#       build-bench/sweep/; the source tree is not touched) and compare them
#       with bench_chunk, which loads every build into one process and
#       alternates between them sample by sample, so that all builds see
#       the same machine load.  The first value is the baseline of the
#       ratios; arguments after -- go to bench_chunk (--samples N,
#       --sample-ms MS).  With --rounds N > 0, also run each build's bench_dyn
#       --sweep-row N times, interleaved, and tabulate medians and minima.
#       Default FILE: build-bench/chunk_sweep.md.
#
# The machine is shared: figures are medians of repeated samples, single-
# threaded ones in thread CPU time, and every reference is measured in the
# same run (bench/bench_dyn.c).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=build-bench
out=""
sweep=""
rounds=0
bench_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out=$2; shift 2 ;;
    --sweep) sweep=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --) shift; bench_args=("$@"); break ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
jobs=$(nproc 2>/dev/null || echo 2)
weights=tests/data/ffjord8g_weights.txt

machine() {
  echo "## Machine"
  echo
  echo '```'
  lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|L1d|L2|L3)'
  echo "AVX2: $(grep -qw avx2 /proc/cpuinfo && echo yes || echo no)," \
    "FMA: $(grep -qw fma /proc/cpuinfo && echo yes || echo no)"
  echo "Memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
  dpkg-query -W -f='${Package} ${Version}\n' libopenblas0-pthread libopenblas-dev \
    libsundials-dev libc6 2>/dev/null || true
  echo "Compiler: $(cc --version | head -n 1)"
  echo "Load average (1, 5, 15 min) before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo '```'
  echo
}

# Configure and build targets ($3...) for the source tree $1 in the build
# directory $2.  Uses the top-level project when it adds bench/ (target
# bench_dyn exists), else configures bench/ on its own, which pulls in the
# library as a subproject.  Sets tree to the directory holding bench/ and
# the library's binary directory in lib_dir.
build_tree() {
  local src=$1 bdir=$2
  shift 2
  mkdir -p "$bdir"
  cmake -S "$src" -B "$bdir" -DCMAKE_BUILD_TYPE=Release -DCNF_BUILD_BENCH=ON \
    -DCNF_BUILD_TESTS=OFF -DCNF_BUILD_EXAMPLES=OFF >"$bdir/configure.log" 2>&1 ||
    { cat "$bdir/configure.log" >&2; return 1; }
  if cmake --build "$bdir" --target help 2>/dev/null | grep -q 'bench_dyn'; then
    tree=$bdir/bench
    lib_dir=$bdir
    cmake --build "$bdir" -j "$jobs" --target "$@" >&2
  else
    cmake -S "$src/bench" -B "$bdir/standalone" -DCMAKE_BUILD_TYPE=Release \
      >"$bdir/configure-standalone.log" 2>&1 ||
      { cat "$bdir/configure-standalone.log" >&2; return 1; }
    tree=$bdir/standalone
    lib_dir=$bdir/standalone/cnf
    cmake --build "$bdir/standalone" -j "$jobs" --target "$@" >&2
  fi
}

if [ -z "$sweep" ]; then
  build_tree "$root" "$root/$dir" bench_dyn bench_act
  [ -n "$out" ] || out=$dir/bench_dyn.md
  args=(--ffjord "$weights")
  [ -f "$weights" ] || args=()
  {
    machine
    echo "Command: \`scripts/bench.sh${bench_args[*]:+ -- ${bench_args[*]}}\`"
    echo "(runs \`bench_dyn ${args[*]} ${bench_args[*]:-}\` and \`bench_act\`;" \
      "$(date -u +%Y-%m-%d))"
    echo
    "$tree/bench_dyn" ${args[@]+"${args[@]}"} ${bench_args[@]+"${bench_args[@]}"}
    echo
    "$tree/bench_act"
    echo
    echo "Load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
  } | tee "$out.tmp"
  mv "$out.tmp" "$out"
  echo "bench.sh: wrote $out" >&2
  exit 0
fi

# ---- chunk-size sweep ----------------------------------------------------
[ -n "$out" ] || out=$dir/chunk_sweep.md
build_tree "$root" "$root/$dir" bench_chunk
chunk_exe=$tree/bench_chunk
mkdir -p "$dir/sweep"
libs=()
exes=()
for n in $sweep; do
  case "$n" in *[!0-9]*|"") echo "bench.sh: bad chunk size '$n'" >&2; exit 2 ;; esac
  src=$dir/sweep/src-$n
  rm -rf "$src"
  mkdir -p "$src"
  cp -R CMakeLists.txt cmake include src bench "$src"/
  sed -i -E "s/^#define MLP_CHUNK_ROWS [0-9]+/#define MLP_CHUNK_ROWS $n/" "$src/src/cnf/mlp.c"
  grep -q "^#define MLP_CHUNK_ROWS $n\$" "$src/src/cnf/mlp.c" ||
    { echo "bench.sh: could not set MLP_CHUNK_ROWS in $src" >&2; exit 1; }
  echo "bench.sh: building MLP_CHUNK_ROWS = $n" >&2
  if [ "$rounds" -gt 0 ]; then
    build_tree "$root/$src" "$root/$dir/sweep/build-$n" cnf bench_dyn
    exes+=("$tree/bench_dyn")
  else
    build_tree "$root/$src" "$root/$dir/sweep/build-$n" cnf
  fi
  lib=$(ls "$lib_dir"/libcnf.so 2>/dev/null || true)
  [ -n "$lib" ] || { echo "bench.sh: no shared libcnf in $lib_dir" >&2; exit 1; }
  libs+=("$n=$lib")
done

# Per chunk size and cell: the median over rounds of the runs' medians
# (rows "| N |"), or the minimum over rounds of the runs' minima (rows
# "| N min |"); $2 selects "median" or "min".
aggregate() {
  awk -F'|' -v want="$2" '
    { tag = ($2 ~ /min/) ? "min" : "median"; if (tag != want) next
      key = $2 + 0; if (!(key in seen)) { seen[key] = 1; keys[++nk] = key }
      n = ++cnt[key]; nf = NF
      for (c = 3; c < NF; c++) v[key, c, n] = $c + 0 }
    END {
      for (i = 2; i <= nk; i++)  # sort keys ascending
        for (j = i; j > 1 && keys[j - 1] > keys[j]; j--) { t = keys[j]; keys[j] = keys[j - 1]; keys[j - 1] = t }
      for (i = 1; i <= nk; i++) {
        k = keys[i]; m = cnt[k]; line = "| " k " |"
        for (c = 3; c < nf; c++) {
          for (a = 1; a <= m; a++) s[a] = v[k, c, a]
          for (a = 2; a <= m; a++)
            for (b = a; b > 1 && s[b - 1] > s[b]; b--) { t = s[b]; s[b] = s[b - 1]; s[b - 1] = t }
          x = want == "min" ? s[1] : ((m % 2) ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2)
          line = line sprintf(c < nf - 2 ? " %.1f |" : " %.2f |", x)
        }
        print line
      }
    }' "$1"
}

{
  machine
  rounds_arg=""
  [ "$rounds" -gt 0 ] && rounds_arg=" --rounds $rounds"
  echo "Command: \`scripts/bench.sh --sweep \"$sweep\"$rounds_arg${bench_args[*]:+ -- ${bench_args[*]}}\`"
  echo
  echo "### Interleaved in one process (bench_chunk)"
  echo
  "$chunk_exe" ${bench_args[@]+"${bench_args[@]}"} "${libs[@]}"
  if [ "$rounds" -gt 0 ]; then
    raw=$dir/sweep/rows.md
    : >"$raw"
    for r in $(seq 1 "$rounds"); do
      for exe in "${exes[@]}"; do
        echo "bench.sh: round $r, $exe" >&2
        "$exe" --sweep-row >>"$raw"
      done
    done
    echo
    echo "### Separate runs of bench_dyn, $rounds interleaved rounds"
    echo
    echo "1 OpenBLAS thread, thread CPU time, µs per call (solve columns: ms per"
    echo "whole forward solve of the random flow).  Median over the rounds of each"
    echo "run's median:"
    echo
    "${exes[0]}" --sweep-header
    aggregate "$raw" median
    echo
    echo "Minimum over the rounds of each run's minimum (the least disturbed calls):"
    echo
    "${exes[0]}" --sweep-header
    aggregate "$raw" min
  fi
  echo
  echo "Load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out.tmp"
mv "$out.tmp" "$out"
echo "bench.sh: wrote $out" >&2
