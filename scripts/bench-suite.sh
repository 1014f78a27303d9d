#!/usr/bin/env bash
# The benchmark suite of docs/performance.md, one command:
#
#   scripts/bench-suite.sh [--iters N] [--mini-iters N] [--data DIR] [--no-doc] [--quick]
#
# Builds Release binaries in build-bench/, then measures and writes, between the
# markers "bench-suite:begin" and "bench-suite:end" of docs/performance.md (and to
# build-bench/suite.md):
#   1. the machine and the commit;
#   2. per-evaluation costs at batch 100, 1000, 10000 (bench_dyn: µs and the fraction
#      of dgemm's rate measured in the same run);
#   3. training with FFJORD's toy settings on 8gaussians, checkerboard, 2spirals for
#      N steps (default 1000): s/iter, NFE (run means and running means at the end),
#      test NLL on 20000 fresh samples, for the exact trace with each adjoint variant,
#      Gaussian Hutchinson, BDF, and RNODE against its unregularised baseline (T = 1
#      fixed, as in Finlay et al.);
#   4. threads: a step at batch 1000 with 1 and 2 threads splitting the batch;
#   5. peak memory of a step per adjoint variant against solver steps (bench_memory);
#   6. MINIBOONE (DIR/miniboone-val.csv to train, DIR/miniboone-test.csv to test;
#      default DIR: the DATA_DIR environment variable, skipped when absent): seconds
#      per epoch and test NLL after --mini-iters steps (default 60, about 10 epochs).
# --quick runs 100 steps and a shorter MINIBOONE run, for checking the script.
# Runs take 30-40 minutes on a quiet 2-core machine; timings need a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
iters=1000
mini_iters=60
data=${DATA_DIR:-}
doc=1
while [ $# -gt 0 ]; do
  case "$1" in
    --iters) iters=$2; shift 2 ;;
    --mini-iters) mini_iters=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --no-doc) doc=0; shift ;;
    --quick) iters=100; mini_iters=6; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "bench-suite.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
dir=build-bench
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCNF_BUILD_TESTS=OFF -DCNF_BUILD_BENCH=ON >/dev/null
cmake --build "$dir" -j "$(nproc)" --target cnf_cli bench_dyn bench_memory >/dev/null
cnf=$root/$dir/cnf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$dir/suite.md
export OPENBLAS_NUM_THREADS=1

get() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k { print $2 }'; }

{
echo "### Machine"
echo
echo "- commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with local changes)'), $(date -u '+%Y-%m-%d')"
echo "- $(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), $(nproc) cores, OpenBLAS $(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null || echo '?') (one thread inside each cnf thread)"
echo "- load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

echo "### Per-evaluation costs"
echo
"$dir/bench/bench_dyn" --threads 1 --no-solve --no-split --samples 15 2>/dev/null |
  sed '/^## cnf dynamics benchmark/d; s/^### /#### /'
echo

echo "### Training, FFJORD's toy settings, $iters steps"
echo
echo "2-64-64-64-2 concatsquash, tanh, batch 100, rtol = atol = 1e-5, Adam lr 1e-3, seed 0, one"
echo "thread; T = 0.5 learned unless noted. NFE: mean per step over the run, and the running mean"
echo "(weight 0.03, FFJORD's meter) at the end; backward NFE include a_theta's quadrature."
echo "Test NLL: 20000 fresh samples, exact trace."
echo
echo "| data | variant | s/iter (wall) | s/iter (CPU) | NFE fwd mean | NFE bwd mean | NFE fwd at end | NFE bwd at end | test NLL |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for d in 8gaussians checkerboard 2spirals; do
  while IFS='|' read -r label args; do
    # shellcheck disable=SC2086
    o=$("$cnf" --threads 1 train --data "$d" --iters "$iters" --test-n 20000 --seed 0 $args \
        --out "$tmp/m.cnf" 2>/dev/null) || { echo "| $d | $label | failed | | | | | | |"; continue; }
    printf '| %s | %s | %.4f | %.4f | %.1f | %.1f | %.1f | %.1f | %.3f |\n' "$d" "$label" \
      "$(get "$o" seconds_per_iter)" "$(get "$o" cpu_seconds_per_iter)" \
      "$(get "$o" nfe_forward_mean)" "$(get "$o" nfe_backward_mean)" \
      "$(get "$o" nfe_forward_running)" "$(get "$o" nfe_backward_running)" "$(get "$o" test_nll)"
  done <<'EOF'
exact, checkpoint|--adjoint checkpoint
exact, backsolve|--adjoint backsolve
gauss, checkpoint|--trace gauss
exact, checkpoint, BDF|--method bdf
exact, T = 1 fixed|--fixed-time --time 1
RNODE 0.05/0.05, T = 1 fixed|--fixed-time --time 1 --reg-kinetic 0.05 --reg-jacobian 0.05
RNODE 0.2/0.2, T = 1 fixed|--fixed-time --time 1 --reg-kinetic 0.2 --reg-jacobian 0.2
EOF
done
echo

echo "### Threads: one step at batch 1000"
echo
echo "8gaussians, defaults otherwise, 50 steps; the batch is split over the threads (1000 x 3"
echo "stacked rows with the exact trace)."
echo
echo "| threads | s/iter (wall) | s/iter (CPU) | loss_avg |"
echo "| ---: | ---: | ---: | ---: |"
for t in 1 2; do
  o=$("$cnf" --threads "$t" train --data 8gaussians --batch 1000 --iters 50 --seed 0 --out "$tmp/t.cnf" 2>/dev/null)
  printf '| %s | %.4f | %.4f | %s |\n' "$t" "$(get "$o" seconds_per_iter)" "$(get "$o" cpu_seconds_per_iter)" "$(get "$o" loss_avg)"
done
echo

echo "### Memory of a training step"
echo
"$dir/bench/bench_memory" --batch 1000 --times "0.5 2 8 32" --spacings "25 100 400"
echo

if [ -n "$data" ] && [ -f "$data/miniboone-val.csv" ] && [ -f "$data/miniboone-test.csv" ]; then
  echo "### MINIBOONE"
  echo
  rows=$(($(wc -l < "$data/miniboone-val.csv") - 1))
  o=$("$cnf" --threads "$(nproc)" train --data "$data/miniboone-val.csv" --standardize --hidden 256-256 \
      --batch 500 --iters "$mini_iters" --seed 1 --out "$tmp/mb.cnf" 2>/dev/null)
  spi=$(get "$o" seconds_per_iter)
  e=$("$cnf" --threads "$(nproc)" eval --model "$tmp/mb.cnf" --in "$data/miniboone-test.csv" 2>/dev/null | awk '$1 == "nll" { print $2 }')
  echo "Trained on miniboone-val.csv ($rows rows; an epoch is $rows/500 steps), 43-256-256-43,"
  echo "Gaussian Hutchinson, batch 500, $mini_iters steps, $(nproc) threads; test NLL with the exact trace."
  echo
  echo "| s/iter | s/epoch | NFE fwd | NFE bwd | test NLL |"
  echo "| ---: | ---: | ---: | ---: | ---: |"
  printf '| %.3f | %.2f | %.1f | %.1f | %.3f |\n' "$spi" \
    "$(python3 -c "print($spi * $rows / 500)")" "$(get "$o" nfe_forward_mean)" "$(get "$o" nfe_backward_mean)" "$e"
  echo
fi
echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"

if [ "$doc" = 1 ]; then
  python3 - docs/performance.md "$out" <<'EOF'
import sys
path, part = sys.argv[1], open(sys.argv[2]).read()
text = open(path).read()
b, e = "<!-- bench-suite:begin -->", "<!-- bench-suite:end -->"
if b in text and e in text:
    head, rest = text.split(b, 1)
    tail = rest.split(e, 1)[1]
    text = head + b + "\n" + part + e + tail
else:
    text += "\n## Benchmark suite (scripts/bench-suite.sh)\n\n" + b + "\n" + part + e + "\n"
tmp = path + ".tmp"
open(tmp, "w").write(text)
import os
os.replace(tmp, path)
EOF
  echo "bench-suite.sh: wrote docs/performance.md" >&2
fi
